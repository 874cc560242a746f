/* answer.c — the simulated model: parse a request, pick a cluster, apply the
 * fault plan and render the OpenAI or Gemini response body. No HTTP here. */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "base/util.h"

/* --- normalised description index ------------------------------------------ */

int sim_index_build(sim_index *ix, const rt_catalog *cat) {
  uint32_t cap = 16;
  while (cap < 2 * cat->n) cap *= 2;
  ix->cat = cat;
  ix->mask = cap - 1;
  ix->slot = rt_xmalloc(cap * sizeof *ix->slot);
  ix->hash = rt_xmalloc(cap * sizeof *ix->hash);
  for (uint32_t i = 0; i < cap; i++) ix->slot[i] = -1;
  for (uint32_t i = 0; i < cat->n; i++) {
    uint64_t h = XXH3_64bits(cat->norm[i], strlen(cat->norm[i]));
    uint32_t s = (uint32_t)h & ix->mask;
    while (ix->slot[s] >= 0) s = (s + 1) & ix->mask;
    ix->slot[s] = (int32_t)i;
    ix->hash[s] = h;
  }
  return 0;
}

void sim_index_free(sim_index *ix) {
  free(ix->slot);
  free(ix->hash);
  memset(ix, 0, sizeof *ix);
}

int32_t sim_index_find(const sim_index *ix, const char *norm) {
  uint64_t h = XXH3_64bits(norm, strlen(norm));
  for (uint32_t s = (uint32_t)h & ix->mask; ix->slot[s] >= 0; s = (s + 1) & ix->mask)
    if (ix->hash[s] == h && strcmp(ix->cat->norm[ix->slot[s]], norm) == 0) return ix->slot[s];
  return -1;
}

size_t sim_named_clusters(const sim_index *ix, const char *prompt, size_t len, int32_t *out,
                          size_t max) {
  char line_buf[1024], norm_buf[1024];
  size_t found = 0;
  const char *p = prompt, *end = prompt + len;
  while (p < end && found < max) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
    if (l > 0) {
      char *line = l < sizeof line_buf ? line_buf : rt_xmalloc(l + 1);
      memcpy(line, p, l);
      line[l] = '\0';
      size_t need = rt_normalize_desc(line, norm_buf, sizeof norm_buf);
      char *norm = norm_buf;
      if (need >= sizeof norm_buf) {
        norm = rt_xmalloc(need + 1);
        rt_normalize_desc(line, norm, need + 1);
      }
      if (*norm) {
        int32_t c = sim_index_find(ix, norm);
        if (c >= 0) out[found++] = c;
      }
      if (norm != norm_buf) free(norm);
      if (line != line_buf) free(line);
    }
    p += l + 1;
  }
  return found;
}

/* --- request parsing ------------------------------------------------------- */

typedef struct {
  char *buf;
  size_t len, cap, content;
} text_acc;

static void acc_add(text_acc *a, const char *s, size_t n) {
  if (a->len + n + 2 > a->cap) {
    size_t nc = a->cap ? a->cap : 256;
    while (nc < a->len + n + 2) nc *= 2;
    a->buf = rt_xrealloc(a->buf, nc);
    a->cap = nc;
  }
  if (a->len) a->buf[a->len++] = '\n';
  memcpy(a->buf + a->len, s, n);
  a->len += n;
  a->buf[a->len] = '\0';
  a->content += n;
}

static int fail(char *why, size_t cap, const char *fmt, const char *arg) {
  snprintf(why, cap, fmt, arg);
  return -1;
}

/* Enum array check: non-empty array of strings. */
static int check_enum(json_t *e, const char *where, char *why, size_t cap) {
  if (!json_is_array(e) || json_array_size(e) == 0)
    return fail(why, cap, "%s must be a non-empty array of strings", where);
  size_t i;
  json_t *v;
  json_array_foreach(e, i, v) {
    if (!json_is_string(v)) return fail(why, cap, "%s holds a value that is not a string", where);
  }
  return 0;
}

/* OpenAI message content: a string or an array of {"type":"text","text":...} parts. */
static int add_openai_content(text_acc *a, json_t *c, char *why, size_t cap) {
  if (json_is_string(c)) {
    acc_add(a, json_string_value(c), json_string_length(c));
    return 0;
  }
  if (json_is_array(c)) {
    size_t i;
    json_t *part;
    json_array_foreach(c, i, part) {
      json_t *t = json_object_get(part, "text");
      if (!json_is_string(t))
        return fail(why, cap, "%s", "messages[].content[] parts must have a string \"text\"");
      acc_add(a, json_string_value(t), json_string_length(t));
    }
    return 0;
  }
  return fail(why, cap, "%s", "messages[].content must be a string or an array of text parts");
}

static int parse_openai(sim_request *rq, text_acc *a, char *why, size_t cap) {
  json_t *root = rq->root;
  if (!json_is_string(json_object_get(root, "model")))
    return fail(why, cap, "%s", "missing \"model\" (a string)");
  json_t *msgs = json_object_get(root, "messages");
  if (!json_is_array(msgs) || json_array_size(msgs) == 0)
    return fail(why, cap, "%s", "\"messages\" must be a non-empty array");
  size_t i;
  json_t *m;
  json_array_foreach(msgs, i, m) {
    if (!json_is_object(m) || !json_is_string(json_object_get(m, "role")))
      return fail(why, cap, "%s", "each message must be an object with a string \"role\"");
    if (add_openai_content(a, json_object_get(m, "content"), why, cap)) return -1;
  }
  json_t *rf = json_object_get(root, "response_format");
  json_t *gc = json_object_get(root, "guided_choice");
  if (rf && !json_is_null(rf)) {
    const char *type = json_string_value(json_object_get(rf, "type"));
    if (!type) return fail(why, cap, "%s", "response_format.type must be a string");
    if (strcmp(type, "json_schema") == 0) {
      json_t *e = json_object_get(json_object_get(json_object_get(json_object_get(
          json_object_get(rf, "json_schema"), "schema"), "properties"), "cluster"), "enum");
      if (check_enum(e, "response_format.json_schema.schema.properties.cluster.enum", why, cap))
        return -1;
      rq->fmt = SIM_FMT_JSON_ENUM;
      rq->choices = e;
    } else if (strcmp(type, "json_object") == 0) {
      rq->fmt = SIM_FMT_JSON;
    } else if (strcmp(type, "text") != 0) {
      return fail(why, cap, "response_format.type \"%s\" is not one of text, json_object, json_schema",
                  type);
    }
  }
  if (gc && !json_is_null(gc)) {
    if (rq->fmt != SIM_FMT_TEXT)
      return fail(why, cap, "%s", "set either response_format or guided_choice, not both");
    if (check_enum(gc, "guided_choice", why, cap)) return -1;
    rq->fmt = SIM_FMT_ENUM;
    rq->choices = gc;
  }
  return 0;
}

static int add_gemini_parts(text_acc *a, json_t *content, const char *where, char *why, size_t cap) {
  json_t *parts = json_object_get(content, "parts");
  if (!json_is_array(parts)) return fail(why, cap, "%s.parts must be an array", where);
  size_t i;
  json_t *p;
  json_array_foreach(parts, i, p) {
    json_t *t = json_object_get(p, "text");
    if (!json_is_string(t)) return fail(why, cap, "%s.parts[] must have a string \"text\"", where);
    acc_add(a, json_string_value(t), json_string_length(t));
  }
  return 0;
}

static int parse_gemini(sim_request *rq, text_acc *a, char *why, size_t cap) {
  json_t *root = rq->root;
  json_t *si = json_object_get(root, "systemInstruction");
  if (si && !json_is_null(si) && add_gemini_parts(a, si, "systemInstruction", why, cap)) return -1;
  json_t *contents = json_object_get(root, "contents");
  if (!json_is_array(contents) || json_array_size(contents) == 0)
    return fail(why, cap, "%s", "\"contents\" must be a non-empty array");
  size_t i;
  json_t *c;
  json_array_foreach(contents, i, c) {
    if (!json_is_object(c)) return fail(why, cap, "%s", "contents[] must be objects");
    if (add_gemini_parts(a, c, "contents[]", why, cap)) return -1;
  }
  json_t *gen = json_object_get(root, "generationConfig");
  const char *mime = json_string_value(json_object_get(gen, "responseMimeType"));
  json_t *schema = json_object_get(gen, "responseSchema");
  if (mime && strcmp(mime, "text/x.enum") == 0) {
    json_t *e = json_object_get(schema, "enum");
    if (check_enum(e, "generationConfig.responseSchema.enum", why, cap)) return -1;
    rq->fmt = SIM_FMT_ENUM;
    rq->choices = e;
  } else if (mime && strcmp(mime, "application/json") == 0) {
    json_t *e = json_object_get(json_object_get(json_object_get(schema, "properties"), "cluster"), "enum");
    if (e) {
      if (check_enum(e, "generationConfig.responseSchema.properties.cluster.enum", why, cap)) return -1;
      rq->fmt = SIM_FMT_JSON_ENUM;
      rq->choices = e;
    } else {
      rq->fmt = SIM_FMT_JSON;
    }
  } else if (mime && strcmp(mime, "text/plain") != 0) {
    return fail(why, cap, "generationConfig.responseMimeType \"%s\" is not one of text/plain, "
                "application/json, text/x.enum", mime);
  }
  return 0;
}

int sim_parse_request(sim_api api, const char *body, size_t len, sim_request *rq, char *why, size_t cap) {
  memset(rq, 0, sizeof *rq);
  rq->api = api;
  json_error_t je;
  rq->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
  if (!rq->root) {
    snprintf(why, cap, "request body is not valid JSON: %s at line %d column %d (byte %d)", je.text,
             je.line, je.column, je.position);
    return -1;
  }
  if (!json_is_object(rq->root)) {
    sim_request_free(rq);
    return fail(why, cap, "%s", "request body must be a JSON object");
  }
  text_acc a = {0};
  int rc = api == SIM_API_OPENAI ? parse_openai(rq, &a, why, cap) : parse_gemini(rq, &a, why, cap);
  if (rc) {
    free(a.buf);
    sim_request_free(rq);
    return -1;
  }
  rq->prompt = a.buf ? a.buf : rt_xstrdup("");
  rq->prompt_len = a.len;
  rq->content_bytes = a.content;
  rq->prompt_hash = XXH3_64bits(rq->prompt, rq->prompt_len);
  return 0;
}

void sim_request_free(sim_request *rq) {
  if (rq->root) json_decref(rq->root);
  free(rq->prompt);
  memset(rq, 0, sizeof *rq);
}

/* --- the model ------------------------------------------------------------- */

int32_t sim_pick(const sim_ctx *ctx, const sim_request *rq) {
  const sim_opts *o = &ctx->opt;
  int32_t named[3];
  size_t nn = sim_named_clusters(&ctx->idx, rq->prompt, rq->prompt_len, named, 3);
  uint64_t h = rq->prompt_hash;
  if (nn >= 3 && sim_draw_unit(o->seed, h, 0, SIM_D_FOLLOW) < o->follow) return named[2];
  /* Uniform over the catalog minus named[0] and named[1] (the pair itself). */
  uint32_t ex[2];
  size_t nex = 0;
  for (size_t i = 0; i < nn && i < 2; i++)
    if (nex == 0 || ex[0] != (uint32_t)named[i]) ex[nex++] = (uint32_t)named[i];
  if (nex == 2 && ex[0] > ex[1]) {
    uint32_t t = ex[0];
    ex[0] = ex[1];
    ex[1] = t;
  }
  uint32_t n = ctx->cat.n;
  uint64_t r = sim_draw64(o->seed, h, 0, SIM_D_CHOICE);
  if (n <= nex) return (int32_t)(r % n);
  uint32_t k = (uint32_t)(r % (n - nex));
  for (size_t i = 0; i < nex; i++)
    if (k >= ex[i]) k++;
  return (int32_t)k;
}

/* The enum value naming `pick`: exact text first, then equal normalised form,
 * else one chosen by hash (the model must answer inside the enum). */
static const char *enum_answer(const sim_ctx *ctx, const sim_request *rq, int32_t pick) {
  json_t *e = rq->choices;
  size_t n = json_array_size(e), i;
  json_t *v;
  const char *want = ctx->cat.desc[pick];
  json_array_foreach(e, i, v) if (strcmp(json_string_value(v), want) == 0) return json_string_value(v);
  const char *want_norm = ctx->cat.norm[pick];
  char buf[1024];
  json_array_foreach(e, i, v) {
    const char *s = json_string_value(v);
    size_t need = rt_normalize_desc(s, buf, sizeof buf);
    if (need < sizeof buf && strcmp(buf, want_norm) == 0) return s;
  }
  uint64_t r = sim_draw64(ctx->opt.seed, rq->prompt_hash, 0, SIM_D_ENUM);
  return json_string_value(json_array_get(e, (size_t)(r % n)));
}

static char *dump(json_t *j) {
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if (!s) {
    fprintf(stderr, "ragtide-llm-sim: out of memory rendering a response\n");
    exit(RT_ERR_NOMEM);
  }
  return s;
}

static json_int_t tokens(size_t bytes) { return (json_int_t)((bytes + 3) / 4); }

static char *render_body(const sim_ctx *ctx, const sim_request *rq, uint64_t n, const char *content) {
  json_int_t pt = tokens(rq->content_bytes), ct = tokens(strlen(content));
  if (rq->api == SIM_API_OPENAI) {
    char id[40];
    snprintf(id, sizeof id, "chatcmpl-sim-%016llx",
             (unsigned long long)sim_draw64(ctx->opt.seed, rq->prompt_hash, n, SIM_D_ID));
    return dump(json_pack(
        "{s:s, s:s, s:I, s:s, s:[{s:i, s:{s:s, s:s}, s:s}], s:{s:I, s:I, s:I}}", "id", id, "object",
        "chat.completion", "created", (json_int_t)time(NULL), "model", SIM_MODEL_NAME, "choices",
        "index", 0, "message", "role", "assistant", "content", content, "finish_reason", "stop",
        "usage", "prompt_tokens", pt, "completion_tokens", ct, "total_tokens", pt + ct));
  }
  return dump(json_pack(
      "{s:[{s:{s:s, s:[{s:s}]}, s:s, s:i}], s:{s:I, s:I, s:I}, s:s}", "candidates", "content", "role",
      "model", "parts", "text", content, "finishReason", "STOP", "index", 0, "usageMetadata",
      "promptTokenCount", pt, "candidatesTokenCount", ct, "totalTokenCount", pt + ct, "modelVersion",
      SIM_MODEL_NAME));
}

char *sim_error_body(sim_api api, int status, const char *message) {
  const char *type = "invalid_request_error", *code = NULL, *gstatus = "INVALID_ARGUMENT";
  switch (status) {
  case 401: type = "invalid_request_error"; code = "invalid_api_key"; gstatus = "UNAUTHENTICATED"; break;
  case 404: code = "not_found"; gstatus = "NOT_FOUND"; break;
  case 405: code = "method_not_allowed"; gstatus = "INVALID_ARGUMENT"; break;
  case 413: code = "request_too_large"; gstatus = "INVALID_ARGUMENT"; break;
  case 429: type = "rate_limit_error"; code = "rate_limit_exceeded"; gstatus = "RESOURCE_EXHAUSTED"; break;
  case 500: type = "server_error"; code = "internal_error"; gstatus = "INTERNAL"; break;
  case 502: type = "server_error"; code = "bad_gateway"; gstatus = "UNAVAILABLE"; break;
  case 504: type = "server_error"; code = "gateway_timeout"; gstatus = "DEADLINE_EXCEEDED"; break;
  case 503: type = "server_error"; code = "service_unavailable"; gstatus = "UNAVAILABLE"; break;
  default: break;
  }
  if (api == SIM_API_GEMINI)
    return dump(json_pack("{s:{s:i, s:s, s:s}}", "error", "code", status, "message", message, "status",
                          gstatus));
  return dump(json_pack("{s:{s:s, s:s, s:n, s:o}}", "error", "message", message, "type", type, "param",
                        "code", code ? json_string(code) : json_null()));
}

char *sim_quota_error_body(sim_api api, const char *message, int retry_s) {
  if (api != SIM_API_GEMINI) return sim_error_body(api, 429, message);
  char delay[32];
  snprintf(delay, sizeof delay, "%ds", retry_s);
  return dump(json_pack("{s:{s:i, s:s, s:s, s:[{s:s, s:[{s:s, s:s}]}, {s:s, s:s}]}}", "error", "code", 429,
                        "message", message, "status", "RESOURCE_EXHAUSTED", "details", "@type",
                        "type.googleapis.com/google.rpc.QuotaFailure", "violations", "quotaMetric",
                        "generativelanguage.googleapis.com/generate_content_requests", "quotaId",
                        "SimRequestsPerSecond", "@type", "type.googleapis.com/google.rpc.RetryInfo", "retryDelay",
                        delay));
}

static void error_outcome(sim_outcome *out, const sim_request *rq, sim_outcome_kind kind, int status,
                          const char *msg) {
  out->kind = kind;
  out->status = status;
  out->body = sim_error_body(rq->api, status, msg);
  out->body_len = strlen(out->body);
}

void sim_respond(const sim_ctx *ctx, const sim_request *rq, uint64_t n, sim_outcome *out) {
  const sim_opts *o = &ctx->opt;
  uint64_t h = rq->prompt_hash, seed = o->seed;
  memset(out, 0, sizeof *out);
  out->delay_ms = sim_latency_ms(o, h, n);
  /* Faults in a fixed order, each from its own draw; the first that fires wins.
   * With --fault-attempts K only a prompt's first K attempts can fail (the
   * endpoint of issue 11: a retry goes through). */
  if (o->fault_attempts && n >= (uint64_t)o->fault_attempts) goto answer; /* n counts from 0 */
  if (sim_draw_unit(seed, h, n, SIM_D_RESET) < o->reset) {
    out->kind = SIM_OUT_RESET;
    return;
  }
  if (sim_draw_unit(seed, h, n, SIM_D_HANG) < o->hang) {
    out->kind = SIM_OUT_HANG;
    return;
  }
  if (sim_draw_unit(seed, h, n, SIM_D_429) < o->fail429) {
    /* A busy shared capacity, not a quota: no RetryInfo, no rate-limit headers. */
    error_outcome(out, rq, SIM_OUT_429, 429, "simulated overload: resource exhausted, try again later (--fail-429)");
    out->delay_ms = 0; /* a rejection: answered at once */
    return;
  }
  if (sim_draw_unit(seed, h, n, SIM_D_500) < o->fail500) {
    error_outcome(out, rq, SIM_OUT_500, 500, "simulated internal server error (--fail-500)");
    return;
  }
  if (sim_draw_unit(seed, h, n, SIM_D_502) < o->fail502) {
    error_outcome(out, rq, SIM_OUT_502, 502, "simulated bad gateway (--fail-502)");
    return;
  }
  if (sim_draw_unit(seed, h, n, SIM_D_503) < o->fail503) {
    error_outcome(out, rq, SIM_OUT_503, 503, "simulated overload, try again later (--fail-503)");
    return;
  }
  if (sim_draw_unit(seed, h, n, SIM_D_504) < o->fail504) {
    error_outcome(out, rq, SIM_OUT_504, 504, "simulated gateway timeout (--fail-504)");
    return;
  }
answer:;
  int malformed = sim_draw_unit(seed, h, n, SIM_D_MALFORMED) < o->malformed;
  int off = sim_draw_unit(seed, h, n, SIM_D_OFF) < o->off_catalog;
  int noisy = sim_draw_unit(seed, h, n, SIM_D_NOISE) < o->noise;
  int32_t pick = sim_pick(ctx, rq);
  uint64_t tr = sim_draw64(seed, h, n, SIM_D_TEXT);
  char *answer;
  out->kind = SIM_OUT_ANSWER;
  if (rq->fmt == SIM_FMT_JSON_ENUM || rq->fmt == SIM_FMT_ENUM) {
    answer = rt_xstrdup(enum_answer(ctx, rq, pick)); /* constrained: no text faults */
  } else if (off) {
    answer = sim_off_catalog_text(&ctx->idx, pick, tr);
    out->kind = SIM_OUT_OFF_CATALOG;
  } else if (noisy) {
    answer = sim_noisy_text(ctx->cat.desc[pick], ctx->cat.norm[pick], tr);
    out->kind = SIM_OUT_NOISY;
  } else {
    answer = rt_xstrdup(ctx->cat.desc[pick]);
  }
  if (rq->fmt == SIM_FMT_JSON || rq->fmt == SIM_FMT_JSON_ENUM) {
    out->content = dump(json_pack("{s:s}", "cluster", answer));
    free(answer);
  } else {
    out->content = answer;
  }
  out->status = 200;
  out->body = render_body(ctx, rq, n, out->content);
  out->body_len = strlen(out->body);
  if (malformed) {
    /* A strict prefix of a JSON object never parses: cut it roughly in half. */
    out->kind = SIM_OUT_MALFORMED;
    out->body_len /= 2;
    out->body[out->body_len] = '\0';
  }
}

void sim_outcome_free(sim_outcome *o) {
  free(o->body);
  free(o->content);
  memset(o, 0, sizeof *o);
}
