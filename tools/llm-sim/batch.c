/* batch.c — the simulated providers' batch endpoints (OpenAI Batch + Files
 * API, Gemini batchGenerateContent with inline requests or an input file
 * from the Files API's resumable upload), in memory.
 *
 * A batch moves through its states by time since its creation: OpenAI
 * validating (first fifth of --batch-delay-ms) -> in_progress -> completed;
 * Gemini BATCH_STATE_PENDING -> BATCH_STATE_RUNNING -> BATCH_STATE_SUCCEEDED.
 * With --batch-expire-ms below the delay it ends expired at that time (the
 * lines a proportional share of the way in are answered, the rest get
 * batch_expired); cancel ends it cancelled the same way. Each line is
 * answered by sim_respond(), the synchronous endpoint's function, so a
 * prompt gets the same answer in a batch as synchronously; --batch-fail X
 * fails a line (its own seeded draw per prompt sighting) with a 500 status.
 * A Gemini batch from an input file ({"key","request"} lines) answers in a
 * responses file ({"key","response"} or {"key","error"} lines) named by
 * response.responsesFile, with the same states and answers as inline.
 * No HTTP here: http.c routes and authenticates, this file answers. */
#include "sim.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"

typedef struct bline {
  char *id;    /* custom_id (OpenAI) / metadata.key (Gemini) */
  char *body;  /* the request body, compact JSON */
} bline;

typedef RT_VEC(char) charvec;

typedef struct bfile {
  char id[32];
  char purpose[32];      /* OpenAI's; Gemini files: gemini-input, gemini-output */
  char *data;
  size_t len;
  int64_t created;
  int pending;           /* Gemini: a resumable upload started, its bytes not yet finalized */
  size_t declared;       /* Gemini: X-Goog-Upload-Header-Content-Length of the start */
  char display[128];
} bfile;

typedef struct bbatch {
  char id[40];           /* batch_N / batches/N */
  sim_api api;
  char input_file[64];
  int from_file;         /* Gemini: inputConfig.fileName (answers in a responses file) */
  char model[128];
  char display[128];
  bline *lines;
  size_t n;
  double t0;             /* monotonic creation time */
  int64_t created;       /* unix */
  int terminal;          /* 0 running; 1 completed; 2 expired; 3 cancelled; 4 failed */
  int cancel_asked;
  double cancel_t;
  uint64_t gets;         /* GETs of this batch (--batch-get-fail) */
  size_t ok, failed;
  char out_file[32], err_file[32];
  json_t *inlined;       /* Gemini: the inlinedResponses array */
  char errors[256];      /* failed at validation: why */
} bbatch;

struct sim_batches {
  const sim_ctx *ctx;
  pthread_mutex_t mu;
  bfile *files;
  size_t nfiles, capfiles;
  bbatch *b;
  size_t nb, capb;
  sim_counts counts;
  uint64_t created, cancelled, uploads, downloads, gets, get_failures, lines, lines_ok, lines_failed, expired, rejected;
  uint64_t gemini_inline, gemini_file; /* Gemini batches created by input kind */
};

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

sim_batches *sim_batches_new(const sim_ctx *ctx) {
  sim_batches *b = rt_xcalloc(1, sizeof *b);
  b->ctx = ctx;
  pthread_mutex_init(&b->mu, NULL);
  return b;
}

void sim_batches_free(sim_batches *b) {
  if (!b) return;
  for (size_t i = 0; i < b->nfiles; i++) free(b->files[i].data);
  for (size_t i = 0; i < b->nb; i++) {
    for (size_t k = 0; k < b->b[i].n; k++) free(b->b[i].lines[k].id), free(b->b[i].lines[k].body);
    free(b->b[i].lines);
    json_decref(b->b[i].inlined);
  }
  free(b->files);
  free(b->b);
  sim_counts_free(&b->counts);
  pthread_mutex_destroy(&b->mu);
  free(b);
}

int sim_batches_route(const char *url) {
  if (!strncmp(url, "/v1/files", 9) || !strncmp(url, "/v1/batches", 11) || !strncmp(url, "/v1beta/batches", 15) ||
      !strcmp(url, "/upload/v1beta/files") || !strncmp(url, "/download/v1beta/files/", 23))
    return 1;
  size_t l = strlen(url);
  static const char suf[] = ":batchGenerateContent";
  return l > sizeof suf && !strncmp(url, "/v1beta/models/", 15) && !strcmp(url + l - (sizeof suf - 1), suf);
}

static char *dumps(json_t *j) {
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  return s;
}

/* j (consumed) as one JSONL line appended to v. */
static void push_line(charvec *v, json_t *j) {
  char *s = dumps(j);
  for (size_t i = 0; s[i]; i++) rt_vec_push(v, s[i]);
  rt_vec_push(v, '\n');
  free(s);
}

static unsigned err_reply(sim_api api, unsigned status, const char *msg, char **out) {
  *out = sim_error_body(api, (int)status, msg);
  return status;
}

static bfile *add_file(sim_batches *b, const char *purpose, char *data, size_t len) {
  if (b->nfiles == b->capfiles) {
    b->capfiles = b->capfiles ? 2 * b->capfiles : 16;
    b->files = rt_xrealloc(b->files, b->capfiles * sizeof *b->files);
  }
  bfile *f = &b->files[b->nfiles];
  memset(f, 0, sizeof *f);
  snprintf(f->id, sizeof f->id, "file-sim%zu", b->nfiles + 1);
  snprintf(f->purpose, sizeof f->purpose, "%s", purpose);
  f->data = data;
  f->len = len;
  f->created = (int64_t)time(NULL);
  b->nfiles++;
  return f;
}

static bfile *find_file(sim_batches *b, const char *id) {
  for (size_t i = 0; i < b->nfiles; i++)
    if (!strcmp(b->files[i].id, id)) return &b->files[i];
  return NULL;
}

static bbatch *find_batch(sim_batches *b, const char *id) {
  for (size_t i = 0; i < b->nb; i++)
    if (!strcmp(b->b[i].id, id)) return &b->b[i];
  return NULL;
}

static bbatch *new_batch(sim_batches *b, sim_api api) {
  if (b->nb == b->capb) {
    b->capb = b->capb ? 2 * b->capb : 16;
    b->b = rt_xrealloc(b->b, b->capb * sizeof *b->b);
  }
  bbatch *x = &b->b[b->nb++];
  memset(x, 0, sizeof *x);
  x->api = api;
  if (api == SIM_API_OPENAI) snprintf(x->id, sizeof x->id, "batch_sim%zu", b->nb);
  else snprintf(x->id, sizeof x->id, "batches/sim%zu", b->nb);
  x->t0 = mono();
  x->created = (int64_t)time(NULL);
  return x;
}

/* Answer line k of x: *resp (the endpoint's response object) or *status and *msg. */
static int answer_line(sim_batches *b, bbatch *x, size_t k, json_t **resp, int *status, char *msg, size_t cap) {
  const sim_ctx *ctx = b->ctx;
  sim_request rq;
  char why[400];
  const char *body = x->lines[k].body;
  if (sim_parse_request(x->api, body, strlen(body), &rq, why, sizeof why)) {
    *status = 400;
    snprintf(msg, cap, "%s", why);
    return -1;
  }
  uint64_t n = sim_counts_next(&b->counts, rq.prompt_hash);
  if (sim_draw_unit(ctx->opt.seed, rq.prompt_hash, n, SIM_D_BATCH_FAIL) < ctx->opt.batch_fail) {
    sim_request_free(&rq);
    *status = 500;
    snprintf(msg, cap, "simulated failure of a batch line (--batch-fail)");
    return -1;
  }
  sim_outcome o;
  sim_respond(ctx, &rq, n, &o);
  sim_request_free(&rq);
  int rc = -1;
  if (o.status == 200 && o.body) {
    json_error_t je;
    *resp = json_loadb(o.body, o.body_len, 0, &je);
    if (*resp) rc = 0;
    else *status = 500, snprintf(msg, cap, "simulated malformed response");
  } else {
    *status = o.status ? o.status : 500;
    snprintf(msg, cap, "simulated failure %d of the model", *status);
  }
  sim_outcome_free(&o);
  return rc;
}

/* End x: lines [0, upto) answered, the rest failed with `code` (NULL: none
 * left). state: 1 completed, 2 expired, 3 cancelled. */
static void finish(sim_batches *b, bbatch *x, size_t upto, int state, const char *code) {
  charvec out = {0}, errs = {0};
  json_t *inl = x->api == SIM_API_GEMINI && !x->from_file ? json_array() : NULL;
  for (size_t k = 0; k < x->n; k++) {
    json_t *resp = NULL;
    int status = 0;
    char msg[512] = "";
    int ok = -1;
    if (k < upto) ok = answer_line(b, x, k, &resp, &status, msg, sizeof msg);
    b->lines++;
    if (ok == 0) x->ok++, b->lines_ok++;
    else x->failed++, b->lines_failed++;
    if (x->api == SIM_API_GEMINI) {
      json_t *item = json_object();
      if (ok == 0) json_object_set_new(item, "response", resp);
      else
        json_object_set_new(item, "error", json_pack("{s:i,s:s,s:s}", "code", k < upto ? status : 499, "message",
                                                     k < upto ? msg : code, "status",
                                                     k < upto ? "INTERNAL" : "CANCELLED"));
      if (!x->from_file) {
        json_object_set_new(item, "metadata", json_pack("{s:s}", "key", x->lines[k].id));
        json_array_append_new(inl, item);
        continue;
      }
      json_object_set_new(item, "key", json_string(x->lines[k].id)); /* a responses file line */
      push_line(&out, item);
      continue;
    }
    char rid[48];
    snprintf(rid, sizeof rid, "batch_req_%s_%zu", x->id + 6, k);
    json_t *line;
    if (ok == 0)
      line = json_pack("{s:s,s:s,s:{s:i,s:s,s:o},s:n}", "id", rid, "custom_id", x->lines[k].id, "response",
                       "status_code", 200, "request_id", rid, "body", resp, "error");
    else if (k < upto)
      line = json_pack("{s:s,s:s,s:{s:i,s:s,s:{s:{s:s,s:s}}},s:n}", "id", rid, "custom_id", x->lines[k].id,
                       "response", "status_code", status, "request_id", rid, "body", "error", "message", msg,
                       "type", "server_error", "error");
    else
      line = json_pack("{s:s,s:s,s:n,s:{s:s,s:s}}", "id", rid, "custom_id", x->lines[k].id, "response", "error",
                       "code", code, "message",
                       state == 2 ? "This request could not be executed before the completion window expired."
                                  : "This request was not executed: the batch was cancelled.");
    push_line(ok == 0 ? &out : &errs, line);
  }
  x->terminal = state;
  if (x->api == SIM_API_GEMINI && !x->from_file) {
    x->inlined = inl;
  } else if (x->api == SIM_API_GEMINI) {
    bfile *f = add_file(b, "gemini-output", out.data, out.len);
    snprintf(f->display, sizeof f->display, "%s responses", x->id);
    snprintf(x->out_file, sizeof x->out_file, "%s", f->id);
  } else {
    if (out.len) snprintf(x->out_file, sizeof x->out_file, "%s", add_file(b, "batch_output", out.data, out.len)->id);
    else free(out.data);
    if (errs.len) snprintf(x->err_file, sizeof x->err_file, "%s", add_file(b, "batch_output", errs.data, errs.len)->id);
    else free(errs.data);
  }
}

/* Move x along its timeline. */
static void advance(sim_batches *b, bbatch *x) {
  if (x->terminal) return;
  const sim_opts *o = &b->ctx->opt;
  double t = (mono() - x->t0) * 1000.0, d = o->batch_delay_ms;
  if (x->cancel_asked) {
    size_t upto = d > 0 ? (size_t)((double)x->n * (x->cancel_t - x->t0) * 1000.0 / d) : x->n;
    if (upto > x->n) upto = x->n;
    b->cancelled++;
    finish(b, x, upto, 3, "batch_cancelled");
    return;
  }
  if (o->batch_expire_ms > 0 && o->batch_expire_ms < d && t >= o->batch_expire_ms) {
    b->expired++;
    finish(b, x, (size_t)((double)x->n * o->batch_expire_ms / d), 2, "batch_expired");
    return;
  }
  if (t >= d) finish(b, x, x->n, 1, NULL);
}

static const char *openai_state(const sim_batches *b, const bbatch *x) {
  static const char *const T[] = {"", "completed", "expired", "cancelled", "failed"};
  if (x->terminal) return T[x->terminal];
  if (x->cancel_asked) return "cancelling";
  double t = (mono() - x->t0) * 1000.0;
  return t < b->ctx->opt.batch_delay_ms / 5 ? "validating" : "in_progress";
}

static const char *gemini_state(const sim_batches *b, const bbatch *x) {
  static const char *const T[] = {"", "BATCH_STATE_SUCCEEDED", "BATCH_STATE_EXPIRED", "BATCH_STATE_CANCELLED",
                                  "BATCH_STATE_FAILED"};
  if (x->terminal) return T[x->terminal];
  double t = (mono() - x->t0) * 1000.0;
  return t < b->ctx->opt.batch_delay_ms / 5 ? "BATCH_STATE_PENDING" : "BATCH_STATE_RUNNING";
}

static json_t *openai_obj(const sim_batches *b, const bbatch *x) {
  size_t done = x->terminal ? x->ok : 0, failed = x->terminal ? x->failed : 0;
  if (!x->terminal && b->ctx->opt.batch_delay_ms > 0) { /* progress in between */
    double f = (mono() - x->t0) * 1000.0 / b->ctx->opt.batch_delay_ms;
    done = (size_t)((double)x->n * (f > 1 ? 1 : f));
  }
  json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:{s:I,s:I,s:I},s:o}", "id", x->id, "object", "batch",
                        "endpoint", "/v1/chat/completions", "input_file_id", x->input_file, "completion_window", "24h",
                        "status", openai_state(b, x), "created_at", (json_int_t)x->created, "expires_at",
                        (json_int_t)x->created + 86400, "request_counts", "total", (json_int_t)x->n, "completed",
                        (json_int_t)done, "failed", (json_int_t)failed, "metadata", json_object());
  json_object_set_new(o, "output_file_id", *x->out_file ? json_string(x->out_file) : json_null());
  json_object_set_new(o, "error_file_id", *x->err_file ? json_string(x->err_file) : json_null());
  json_object_set_new(o, "errors", *x->errors ? json_pack("{s:s,s:[{s:s,s:s}]}", "object", "list", "data", "code",
                                                          "invalid_input", "message", x->errors)
                                               : json_null());
  return o;
}

static json_t *gemini_op(const sim_batches *b, const bbatch *x) {
  json_t *md = json_pack("{s:s,s:s,s:s,s:s,s:s}", "@type",
                         "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch", "name",
                         x->id, "model", x->model, "displayName", x->display, "state", gemini_state(b, x));
  char n[32], p[32], s[32], f[32];
  snprintf(n, sizeof n, "%zu", x->n);
  snprintf(p, sizeof p, "%zu", x->terminal ? (size_t)0 : x->n);
  snprintf(s, sizeof s, "%zu", x->ok);
  snprintf(f, sizeof f, "%zu", x->failed);
  json_object_set_new(md, "batchStats", json_pack("{s:s,s:s,s:s,s:s}", "requestCount", n, "pendingRequestCount", p,
                                                  "successfulRequestCount", s, "failedRequestCount", f));
  json_t *op = json_pack("{s:s,s:o,s:b}", "name", x->id, "metadata", md, "done", x->terminal != 0);
  if (x->terminal == 1 && x->inlined)
    json_object_set_new(op, "response",
                        json_pack("{s:s,s:{s:O}}", "@type",
                                  "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput",
                                  "inlinedResponses", "inlinedResponses", x->inlined));
  if (x->terminal == 1 && x->from_file) {
    char rf[48];
    snprintf(rf, sizeof rf, "files/%s", x->out_file);
    json_object_set_new(op, "response",
                        json_pack("{s:s,s:s}", "@type",
                                  "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput",
                                  "responsesFile", rf));
  }
  return op;
}

/* One parsed line of an input file: its id and request body, or NULL with
 * why set. arg: the provider's context for the message. */
typedef const char *(*line_fn)(json_t *ln, const char *arg, json_t **body, size_t lineno, char *why, size_t cap);

/* {"custom_id","method":"POST","url":arg,"body":{...}} (OpenAI) */
static const char *openai_line(json_t *ln, const char *ep, json_t **body, size_t lineno, char *why, size_t cap) {
  const char *cid = json_string_value(json_object_get(ln, "custom_id"));
  const char *m = json_string_value(json_object_get(ln, "method"));
  const char *u = json_string_value(json_object_get(ln, "url"));
  *body = json_object_get(ln, "body");
  if (cid && m && !strcmp(m, "POST") && u && !strcmp(u, ep) && json_is_object(*body)) return cid;
  snprintf(why, cap, "line %zu is not {custom_id, method POST, url %s, body}", lineno, ep);
  return NULL;
}

/* {"key","request":{...}} (Gemini; arg: the file's name) */
static const char *gemini_line(json_t *ln, const char *fname, json_t **body, size_t lineno, char *why, size_t cap) {
  const char *key = json_string_value(json_object_get(ln, "key"));
  *body = json_object_get(ln, "request");
  if (key && json_is_object(*body)) return key;
  snprintf(why, cap, "line %zu of %s is not {\"key\": string, \"request\": object}", lineno, fname);
  return NULL;
}

/* The request lines of an uploaded JSONL input file, each checked by take,
 * ids unique. On the first bad line why is set (the lines read so far are
 * still returned, for the caller to free). */
static void input_lines(const bfile *f, line_fn take, const char *arg, bline **out, size_t *n, char *why,
                        size_t cap) {
  RT_VEC(bline) lines = {0};
  const char *p = f->data, *end = f->data + f->len;
  while (p < end && !*why) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
    if (l) {
      json_error_t je;
      json_t *ln = json_loadb(p, l, 0, &je), *body = NULL;
      const char *id = take(ln, arg, &body, lines.len + 1, why, cap);
      for (size_t i = 0; id && i < lines.len && !*why; i++)
        if (!strcmp(lines.data[i].id, id)) snprintf(why, cap, "duplicate id %s (custom_id / key)", id);
      if (!*why) rt_vec_push(&lines, ((bline){rt_xstrdup(id), json_dumps(body, JSON_COMPACT)}));
      json_decref(ln);
    }
    p += l + 1;
  }
  *out = lines.data;
  *n = lines.len;
}

/* POST /v1/batches */
static unsigned openai_create(sim_batches *b, const char *body, size_t len, char **out) {
  const sim_opts *o = &b->ctx->opt;
  json_error_t je;
  json_t *j = json_loadb(body, len, 0, &je);
  const char *fid = j ? json_string_value(json_object_get(j, "input_file_id")) : NULL;
  const char *ep = j ? json_string_value(json_object_get(j, "endpoint")) : NULL;
  const char *cw = j ? json_string_value(json_object_get(j, "completion_window")) : NULL;
  if (!fid || !ep || !cw) {
    json_decref(j);
    return err_reply(SIM_API_OPENAI, 400, "input_file_id, endpoint and completion_window are required", out);
  }
  if (strcmp(ep, "/v1/chat/completions") != 0 || strcmp(cw, "24h") != 0) {
    json_decref(j);
    return err_reply(SIM_API_OPENAI, 400, "the sim serves endpoint /v1/chat/completions, completion_window 24h", out);
  }
  char fidbuf[64];
  snprintf(fidbuf, sizeof fidbuf, "%s", fid);
  fid = fidbuf;
  bfile *f = find_file(b, fid);
  if (!f || strcmp(f->purpose, "batch") != 0) {
    json_decref(j);
    return err_reply(SIM_API_OPENAI, 404, "no such file with purpose batch", out);
  }
  if (o->batch_max_bytes && f->len > o->batch_max_bytes) {
    json_decref(j);
    b->rejected++;
    return err_reply(SIM_API_OPENAI, 400, "input file over the size limit (--batch-max-bytes)", out);
  }
  /* Parse the lines: {"custom_id","method","url","body"} */
  RT_VEC(bline) lines = {0};
  char why[256] = "";
  input_lines(f, openai_line, ep, &lines.data, &lines.len, why, sizeof why);
  if (!*why && o->batch_max_requests && lines.len > o->batch_max_requests)
    snprintf(why, sizeof why, "%zu requests: over the limit of %llu per batch (--batch-max-requests)", lines.len,
             (unsigned long long)o->batch_max_requests);
  if (!*why && !lines.len) snprintf(why, sizeof why, "the input file holds no request");
  json_decref(j);
  if (*why) {
    for (size_t i = 0; i < lines.len; i++) free(lines.data[i].id), free(lines.data[i].body);
    free(lines.data);
    b->rejected++;
    return err_reply(SIM_API_OPENAI, 400, why, out);
  }
  bbatch *x = new_batch(b, SIM_API_OPENAI);
  snprintf(x->input_file, sizeof x->input_file, "%s", fid);
  x->lines = lines.data;
  x->n = lines.len;
  b->created++;
  *out = dumps(openai_obj(b, x));
  return 200;
}

static void free_lines(bline *l, size_t n) {
  for (size_t i = 0; i < n; i++) free(l[i].id), free(l[i].body);
  free(l);
}

/* POST /v1beta/models/MODEL:batchGenerateContent with inputConfig.fileName:
 * the uploaded file's {"key","request"} lines. */
static unsigned gemini_create_file(sim_batches *b, const char *url, const char *fname, const char *dn, char **out) {
  const sim_opts *o = &b->ctx->opt;
  bfile *f = strncmp(fname, "files/", 6) ? NULL : find_file(b, fname + 6);
  if (!f || strcmp(f->purpose, "gemini-input") != 0) {
    b->rejected++;
    return err_reply(SIM_API_GEMINI, 404, "inputConfig.fileName: no such uploaded file (files/...)", out);
  }
  if (f->pending) {
    b->rejected++;
    return err_reply(SIM_API_GEMINI, 400, "inputConfig.fileName: the file's upload was never finalized", out);
  }
  if (o->batch_max_bytes && f->len > o->batch_max_bytes) {
    b->rejected++;
    return err_reply(SIM_API_GEMINI, 400, "input file over the size limit (--batch-max-bytes)", out);
  }
  RT_VEC(bline) lines = {0};
  char why[256] = "";
  input_lines(f, gemini_line, fname, &lines.data, &lines.len, why, sizeof why);
  if (!*why && o->batch_max_requests && lines.len > o->batch_max_requests)
    snprintf(why, sizeof why, "%zu requests: too many in one batch (--batch-max-requests)", lines.len);
  if (!*why && !lines.len) snprintf(why, sizeof why, "the input file %s holds no request", fname);
  if (*why) {
    free_lines(lines.data, lines.len);
    b->rejected++;
    return err_reply(SIM_API_GEMINI, 400, why, out);
  }
  char fid[64];
  snprintf(fid, sizeof fid, "%s", fname);
  bbatch *x = new_batch(b, SIM_API_GEMINI);
  const char *m = url + 15; /* MODEL:batchGenerateContent */
  snprintf(x->model, sizeof x->model, "models/%.*s", (int)(strchr(m, ':') - m), m);
  snprintf(x->display, sizeof x->display, "%s", dn ? dn : "");
  snprintf(x->input_file, sizeof x->input_file, "%s", fid);
  x->from_file = 1;
  x->lines = lines.data;
  x->n = lines.len;
  b->created++;
  b->gemini_file++;
  *out = dumps(gemini_op(b, x));
  return 200;
}

static json_t *gemini_file_obj(const bfile *f, const char *origin) {
  char name[48], size[32], uri[400];
  snprintf(name, sizeof name, "files/%s", f->id);
  snprintf(size, sizeof size, "%zu", f->len);
  snprintf(uri, sizeof uri, "%s/v1beta/%s", origin, name);
  return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "name", name, "displayName", f->display, "mimeType",
                   "application/jsonl", "sizeBytes", size, "state", "ACTIVE", "uri", uri);
}

/* The X-Goog-Upload-Command words, spaces ignored: "upload, finalize" -> "upload,finalize". */
static void squeeze(const char *in, char *out, size_t cap) {
  size_t k = 0;
  for (; in && *in && k + 1 < cap; in++)
    if (*in != ' ') out[k++] = *in;
  out[k] = '\0';
}

/* POST /upload/v1beta/files: a resumable upload's start (no upload_id) or
 * its single upload, finalize (the URL the start returned). */
static unsigned gemini_upload(sim_batches *b, const char *body, size_t len, sim_goog_upload *g, char **out) {
  char cmd[64];
  squeeze(g->command, cmd, sizeof cmd);
  if (!g->upload_id) {
    if (!g->protocol || strcmp(g->protocol, "resumable") != 0 || strcmp(cmd, "start") != 0)
      return err_reply(SIM_API_GEMINI, 400,
                       "the sim serves the resumable upload only: start with X-Goog-Upload-Protocol: resumable and "
                       "X-Goog-Upload-Command: start",
                       out);
    char *e = NULL;
    unsigned long long n = g->length ? strtoull(g->length, &e, 10) : 0;
    if (!g->length || !*g->length || *e || !n)
      return err_reply(SIM_API_GEMINI, 400, "X-Goog-Upload-Header-Content-Length must be the file's size in bytes",
                       out);
    json_error_t je;
    json_t *j = len ? json_loadb(body, len, 0, &je) : NULL;
    json_t *fo = json_object_get(j, "file");
    const char *dn = json_string_value(json_object_get(fo, "display_name"));
    if (!dn) dn = json_string_value(json_object_get(fo, "displayName"));
    if (len && !j)
      return err_reply(SIM_API_GEMINI, 400, "the start's body must be JSON {\"file\":{\"display_name\":...}}", out);
    bfile *f = add_file(b, "gemini-input", NULL, 0);
    f->pending = 1;
    f->declared = (size_t)n;
    snprintf(f->display, sizeof f->display, "%s", dn ? dn : "");
    json_decref(j);
    snprintf(g->url, sizeof g->url, "%s/upload/v1beta/files?upload_id=%s&upload_protocol=resumable", g->origin,
             f->id);
    snprintf(g->status, sizeof g->status, "active");
    *out = rt_xstrdup("{}");
    return 200;
  }
  bfile *f = find_file(b, g->upload_id);
  if (!f || strcmp(f->purpose, "gemini-input") != 0)
    return err_reply(SIM_API_GEMINI, 404, "no such upload session (upload_id)", out);
  if (!f->pending) return err_reply(SIM_API_GEMINI, 400, "this upload was already finalized", out);
  if (strcmp(cmd, "upload,finalize") != 0)
    return err_reply(SIM_API_GEMINI, 400, "the sim takes the bytes in one X-Goog-Upload-Command: upload, finalize",
                     out);
  if (!g->offset || strcmp(g->offset, "0") != 0)
    return err_reply(SIM_API_GEMINI, 400, "X-Goog-Upload-Offset must be 0 (one chunk)", out);
  if (len != f->declared) {
    char m[160];
    snprintf(m, sizeof m, "%zu bytes uploaded, %zu declared by X-Goog-Upload-Header-Content-Length", len,
             f->declared);
    return err_reply(SIM_API_GEMINI, 400, m, out);
  }
  f->data = rt_xmalloc(len + 1);
  memcpy(f->data, body, len);
  f->data[len] = '\0';
  f->len = len;
  f->pending = 0;
  b->uploads++;
  snprintf(g->status, sizeof g->status, "final");
  *out = dumps(json_pack("{s:o}", "file", gemini_file_obj(f, g->origin)));
  return 200;
}

/* POST /v1beta/models/MODEL:batchGenerateContent (inline requests) */
static unsigned gemini_create(sim_batches *b, const char *url, const char *body, size_t len, char **out) {
  const sim_opts *o = &b->ctx->opt;
  if (o->batch_max_bytes && len > o->batch_max_bytes) {
    b->rejected++;
    return err_reply(SIM_API_GEMINI, 400, "request over the inline size limit (--batch-max-bytes)", out);
  }
  json_error_t je;
  json_t *j = json_loadb(body, len, 0, &je);
  json_t *bt = j ? json_object_get(j, "batch") : NULL;
  json_t *ic = bt ? json_object_get(bt, "inputConfig") : NULL;
  if (!ic && bt) ic = json_object_get(bt, "input_config");
  json_t *rq = ic ? json_object_get(json_object_get(ic, "requests"), "requests") : NULL;
  const char *dn = bt ? json_string_value(json_object_get(bt, "displayName")) : NULL;
  if (!dn && bt) dn = json_string_value(json_object_get(bt, "display_name"));
  const char *fname = ic ? json_string_value(json_object_get(ic, "fileName")) : NULL;
  if (!fname && ic) fname = json_string_value(json_object_get(ic, "file_name"));
  if (fname) {
    unsigned st = gemini_create_file(b, url, fname, dn, out);
    json_decref(j);
    return st;
  }
  if (!json_is_array(rq) || !json_array_size(rq)) {
    json_decref(j);
    b->rejected++;
    return err_reply(SIM_API_GEMINI, 400, "batch.inputConfig.requests.requests must be a non-empty array", out);
  }
  if (o->batch_max_requests && json_array_size(rq) > o->batch_max_requests) {
    json_decref(j);
    b->rejected++;
    return err_reply(SIM_API_GEMINI, 400, "too many requests in one batch (--batch-max-requests)", out);
  }
  RT_VEC(bline) lines = {0};
  size_t i;
  json_t *it;
  int bad = 0;
  json_array_foreach(rq, i, it) {
    json_t *r = json_object_get(it, "request");
    const char *key = json_string_value(json_object_get(json_object_get(it, "metadata"), "key"));
    if (!json_is_object(r) || !key) {
      bad = 1;
      break;
    }
    rt_vec_push(&lines, ((bline){rt_xstrdup(key), json_dumps(r, JSON_COMPACT)}));
  }
  if (bad) {
    for (size_t k = 0; k < lines.len; k++) free(lines.data[k].id), free(lines.data[k].body);
    free(lines.data);
    json_decref(j);
    b->rejected++;
    return err_reply(SIM_API_GEMINI, 400, "every inline request needs request{} and metadata.key", out);
  }
  bbatch *x = new_batch(b, SIM_API_GEMINI);
  const char *m = url + 15; /* MODEL:batchGenerateContent */
  snprintf(x->model, sizeof x->model, "models/%.*s", (int)(strchr(m, ':') - m), m);
  snprintf(x->display, sizeof x->display, "%s", dn ? dn : "");
  x->lines = lines.data;
  x->n = lines.len;
  b->created++;
  b->gemini_inline++;
  json_decref(j);
  *out = dumps(gemini_op(b, x));
  return 200;
}

/* The id at the start of rest (up to sep), prefixed, into id; returns what
 * follows it from sep on ("" when nothing). */
static const char *url_id(const char *rest, char sep, const char *prefix, char *id, size_t cap) {
  const char *e = strchr(rest, sep);
  size_t n = e ? (size_t)(e - rest) : strlen(rest);
  snprintf(id, cap, "%s%.*s", prefix, (int)n, rest);
  return e ? e : "";
}

/* A file's bytes as the answer (OpenAI /content, Gemini :download). */
static unsigned download(sim_batches *b, const bfile *f, char **out, size_t *out_len, int *jsonl) {
  *out = rt_xmalloc(f->len + 1);
  if (f->len) memcpy(*out, f->data, f->len);
  (*out)[f->len] = '\0';
  *out_len = f->len;
  *jsonl = 1;
  b->downloads++;
  return 200;
}

unsigned sim_batches_handle(sim_batches *b, const char *method, const char *url, const char *body, size_t len,
                            const char *file, size_t file_len, const char *purpose, sim_goog_upload *g, char **out,
                            size_t *out_len, int *jsonl) {
  int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
  unsigned st;
  *jsonl = 0;
  *out = NULL;
  pthread_mutex_lock(&b->mu);
  if (!strcmp(url, "/v1/files") && post) {
    if (!file || !purpose) st = err_reply(SIM_API_OPENAI, 400, "multipart fields file and purpose are required", out);
    else {
      char *d = rt_xmalloc(file_len + 1);
      memcpy(d, file, file_len);
      d[file_len] = '\0';
      bfile *f = add_file(b, purpose, d, file_len);
      b->uploads++;
      *out = dumps(json_pack("{s:s,s:s,s:I,s:I,s:s,s:s}", "id", f->id, "object", "file", "bytes", (json_int_t)f->len,
                             "created_at", (json_int_t)f->created, "filename", "batch.jsonl", "purpose", f->purpose));
      st = 200;
    }
  } else if (!strncmp(url, "/v1/files/", 10) && get) {
    char id[64];
    int content = !strcmp(url_id(url + 10, '/', "", id, sizeof id), "/content");
    bfile *f = find_file(b, id);
    if (!f) st = err_reply(SIM_API_OPENAI, 404, "no such file", out);
    else if (content) st = download(b, f, out, out_len, jsonl);
    else {
      *out = dumps(json_pack("{s:s,s:s,s:I,s:s}", "id", f->id, "object", "file", "bytes", (json_int_t)f->len,
                             "purpose", f->purpose));
      st = 200;
    }
  } else if (!strcmp(url, "/v1/batches") && post) {
    st = openai_create(b, body, len, out);
  } else if (!strcmp(url, "/v1/batches") && get) {
    json_t *a = json_array();
    for (size_t i = b->nb; i-- > 0;)
      if (b->b[i].api == SIM_API_OPENAI) advance(b, &b->b[i]), json_array_append_new(a, openai_obj(b, &b->b[i]));
    *out = dumps(json_pack("{s:s,s:o,s:b}", "object", "list", "data", a, "has_more", 0));
    st = 200;
  } else if (!strncmp(url, "/v1/batches/", 12)) {
    char id[64];
    const char *rest = url_id(url + 12, '/', "", id, sizeof id);
    int slash = *rest != '\0', cancel = !strcmp(rest, "/cancel");
    bbatch *x = find_batch(b, id);
    if (!x || x->api != SIM_API_OPENAI) st = err_reply(SIM_API_OPENAI, 404, "no such batch", out);
    else if (cancel && post) {
      advance(b, x);
      if (!x->terminal && !x->cancel_asked) x->cancel_asked = 1, x->cancel_t = mono();
      *out = dumps(openai_obj(b, x));
      st = 200;
    } else if (!slash && get && b->ctx->opt.batch_get_fail && ++x->gets % b->ctx->opt.batch_get_fail == 0) {
      b->get_failures++;
      st = err_reply(SIM_API_OPENAI, 503, "simulated unavailability (--batch-get-fail)", out);
    } else if (!slash && get) {
      b->gets++;
      advance(b, x);
      *out = dumps(openai_obj(b, x));
      st = 200;
    } else st = err_reply(SIM_API_OPENAI, 405, "method not allowed", out);
  } else if (!strcmp(url, "/upload/v1beta/files") && post) {
    st = gemini_upload(b, body, len, g, out);
  } else if (!strncmp(url, "/download/v1beta/files/", 23) && get) {
    char id[64];
    int dl = !strcmp(url_id(url + 23, ':', "", id, sizeof id), ":download");
    bfile *f = find_file(b, id);
    if (!dl) st = err_reply(SIM_API_GEMINI, 404, "the download endpoint is files/{id}:download", out);
    else if (!g->alt || strcmp(g->alt, "media") != 0)
      st = err_reply(SIM_API_GEMINI, 400, "add ?alt=media to download the file's bytes", out);
    else if (!f || f->pending || strncmp(f->purpose, "gemini-", 7) != 0)
      st = err_reply(SIM_API_GEMINI, 404, "no such file", out);
    else st = download(b, f, out, out_len, jsonl);
  } else if (sim_batches_route(url) && !strncmp(url, "/v1beta/models/", 15) && post) {
    st = gemini_create(b, url, body, len, out);
  } else if (!strcmp(url, "/v1beta/batches") && get) {
    json_t *a = json_array();
    for (size_t i = b->nb; i-- > 0;)
      if (b->b[i].api == SIM_API_GEMINI) advance(b, &b->b[i]), json_array_append_new(a, gemini_op(b, &b->b[i]));
    *out = dumps(json_pack("{s:o}", "operations", a));
    st = 200;
  } else if (!strncmp(url, "/v1beta/batches/", 16)) {
    char id[80];
    const char *rest = url_id(url + 16, ':', "batches/", id, sizeof id);
    int colon = *rest != '\0', cancel = !strcmp(rest, ":cancel");
    bbatch *x = find_batch(b, id);
    if (!x || x->api != SIM_API_GEMINI) st = err_reply(SIM_API_GEMINI, 404, "no such batch", out);
    else if (cancel && post) {
      advance(b, x);
      if (!x->terminal && !x->cancel_asked) x->cancel_asked = 1, x->cancel_t = mono();
      advance(b, x); /* Gemini: cancelled at once */
      *out = rt_xstrdup("{}");
      st = 200;
    } else if (!colon && get && b->ctx->opt.batch_get_fail && ++x->gets % b->ctx->opt.batch_get_fail == 0) {
      b->get_failures++;
      st = err_reply(SIM_API_GEMINI, 503, "simulated unavailability (--batch-get-fail)", out);
    } else if (!colon && get) {
      b->gets++;
      advance(b, x);
      *out = dumps(gemini_op(b, x));
      st = 200;
    } else st = err_reply(SIM_API_GEMINI, 405, "method not allowed", out);
  } else {
    st = err_reply(strncmp(url, "/v1", 3) ? SIM_API_GEMINI : strncmp(url, "/v1beta", 7) ? SIM_API_OPENAI : SIM_API_GEMINI,
                   404, "no such batch endpoint", out);
  }
  pthread_mutex_unlock(&b->mu);
  if (!*jsonl) *out_len = *out ? strlen(*out) : 0; /* a download set its own length */
  return st;
}

char *sim_batches_stats(sim_batches *b) {
  pthread_mutex_lock(&b->mu);
  char *s = rt_xmalloc(640);
#define U(x) (unsigned long long)(x)
  snprintf(s, 640,
           "{\"created\":%llu,\"cancelled\":%llu,\"expired\":%llu,\"rejected\":%llu,\"uploads\":%llu,"
           "\"downloads\":%llu,\"gets\":%llu,\"get_failures\":%llu,\"lines\":%llu,\"lines_ok\":%llu,\"lines_failed\":%llu,"
           "\"gemini_inline\":%llu,\"gemini_file\":%llu}",
           U(b->created), U(b->cancelled), U(b->expired), U(b->rejected), U(b->uploads), U(b->downloads), U(b->gets), U(b->get_failures),
           U(b->lines), U(b->lines_ok), U(b->lines_failed), U(b->gemini_inline), U(b->gemini_file));
#undef U
  pthread_mutex_unlock(&b->mu);
  return s;
}
