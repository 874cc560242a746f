/* http.c — libmicrohttpd glue: routing, API key, 429 limiter, capacity FIFO,
 * latency timer and /stats.
 *
 * No server thread ever sleeps: a request that must wait (for a capacity slot
 * or for its latency) is suspended with MHD_suspend_connection() and resumed
 * later by whoever frees the slot or by the timer thread, so thousands of
 * delayed requests are in flight at once on a couple of threads. */
#include "sim.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "base/log.h"
#include "base/util.h"

#define MAX_BODY (64u << 20) /* a whole-catalog enum of 100k clusters fits */

typedef enum { R_CHAT, R_GEMINI, R_MODELS, R_STATS, R_HEALTH, R_404, R_405, R_BATCH } route;
typedef enum { ST_NEW, ST_QUEUED, ST_DELAYED, ST_HUNG, ST_DONE } req_state;

typedef struct sim_req {
  struct MHD_Connection *con;
  route route;
  sim_api api;
  req_state state;
  char *body;
  size_t len, cap;
  int too_big;
  sim_request rq;
  sim_outcome out;
  int has_slot;   /* holds one of --capacity service slots */
  int in_flight;  /* counted in in_flight */
  double due;     /* ST_DELAYED: when to resume (monotonic seconds) */
  int rl;         /* --ratelimit-headers: bit 1 the request trio, bit 2 the token trio */
  long rl_limit, rl_remaining, rl_tok_limit, rl_tok_remaining;
  double rl_reset, rl_tok_reset;
  struct sim_req *next; /* FIFO (ST_QUEUED) or hang list (ST_HUNG) */
  /* R_BATCH multipart upload (POST /v1/files) */
  RT_VEC(char) file;
  char *purpose;
  int has_file;
} sim_req;

typedef struct counters {
  uint64_t requests, answered, http_400, http_401, http_404, http_405, http_413, http_429, http_500,
      http_503, hangs, resets, malformed, off_catalog, noisy, queued;
  uint64_t http_502, http_504, sporadic_429; /* sporadic_429: --fail-429 (also in http_429) */
  uint64_t tpm_tokens;                       /* tokens the --tpm bucket let through */
  uint64_t ep_chat, ep_gemini, ep_models, ep_other;
  uint64_t in_flight, max_in_flight, in_service, max_in_service;
} counters;

struct sim_server {
  sim_ctx *ctx;
  struct MHD_Daemon *d;
  pthread_mutex_t mu; /* guards everything below */
  pthread_cond_t cv;  /* wakes the timer thread */
  pthread_t timer;
  int timer_started, timer_stop, stopping;
  counters st;
  sim_counts counts;
  sim_bucket bucket;              /* --rps */
  sim_bucket tok_bucket;          /* --tpm */
  sim_req *fifo_head, *fifo_tail; /* waiting for a capacity slot */
  sim_req *hung;                  /* never answered until shutdown */
  sim_req **heap;                 /* delayed, min-heap on due */
  size_t heap_len, heap_cap;
  uint64_t suspended;             /* connections we suspended and not yet saw again */
  sim_batches *batches;           /* the batch endpoints (batch.c, own lock) */
};

/* --- helpers --------------------------------------------------------------- */

/* The completion budget a request asks for (OpenAI max_tokens or
 * max_completion_tokens, Gemini generationConfig.maxOutputTokens); 0 if none. */
static json_int_t max_tokens_of(const sim_request *rq) {
  json_t *v = rq->api == SIM_API_GEMINI
                  ? json_object_get(json_object_get(rq->root, "generationConfig"), "maxOutputTokens")
                  : json_object_get(rq->root, "max_tokens");
  if (!v && rq->api != SIM_API_GEMINI) v = json_object_get(rq->root, "max_completion_tokens");
  return json_is_integer(v) && json_integer_value(v) > 0 ? json_integer_value(v) : 0;
}

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void heap_push(sim_server *s, sim_req *r) {
  if (s->heap_len == s->heap_cap) {
    s->heap_cap = s->heap_cap ? 2 * s->heap_cap : 256;
    s->heap = rt_xrealloc(s->heap, s->heap_cap * sizeof *s->heap);
  }
  size_t i = s->heap_len++;
  while (i > 0 && s->heap[(i - 1) / 2]->due > r->due) {
    s->heap[i] = s->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  s->heap[i] = r;
}

static sim_req *heap_pop(sim_server *s) {
  sim_req *top = s->heap[0], *last = s->heap[--s->heap_len];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= s->heap_len) break;
    if (c + 1 < s->heap_len && s->heap[c + 1]->due < s->heap[c]->due) c++;
    if (last->due <= s->heap[c]->due) break;
    s->heap[i] = s->heap[c];
    i = c;
  }
  if (s->heap_len) s->heap[i] = last;
  return top;
}

static void suspend_locked(sim_server *s, sim_req *r, req_state st) {
  MHD_suspend_connection(r->con);
  r->state = st;
  s->suspended++;
}

/* Give r's service slot to the head of the FIFO, or return it. */
static void release_slot_locked(sim_server *s, sim_req *r) {
  if (!r->has_slot) return;
  r->has_slot = 0;
  sim_req *h = s->fifo_head;
  if (h && !s->stopping) {
    s->fifo_head = h->next;
    if (!s->fifo_head) s->fifo_tail = NULL;
    h->next = NULL;
    h->has_slot = 1;
    MHD_resume_connection(h->con);
  } else {
    s->st.in_service--;
  }
}

static void leave_flight_locked(sim_server *s, sim_req *r) {
  if (r->in_flight) {
    r->in_flight = 0;
    s->st.in_flight--;
  }
  release_slot_locked(s, r);
}

/* OpenAI's x-ratelimit-{limit,remaining,reset}-KIND headers, in its formats. */
static void add_ratelimit(struct MHD_Response *resp, const char *kind, long limit, long remaining, double reset) {
  char name[48], b[32];
  snprintf(name, sizeof name, "x-ratelimit-limit-%s", kind);
  snprintf(b, sizeof b, "%ld", limit);
  MHD_add_response_header(resp, name, b);
  snprintf(name, sizeof name, "x-ratelimit-remaining-%s", kind);
  snprintf(b, sizeof b, "%ld", remaining);
  MHD_add_response_header(resp, name, b);
  snprintf(name, sizeof name, "x-ratelimit-reset-%s", kind);
  sim_format_duration(reset, b, sizeof b);
  MHD_add_response_header(resp, name, b);
}

static enum MHD_Result reply(struct MHD_Connection *con, unsigned status, char *body, size_t len,
                             int retry_after, const sim_req *rl) {
  struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback(len, body, free);
  if (!resp) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  if (retry_after > 0) {
    char b[24];
    snprintf(b, sizeof b, "%d", retry_after);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, b);
  }
  if (rl && (rl->rl & 1)) add_ratelimit(resp, "requests", rl->rl_limit, rl->rl_remaining, rl->rl_reset);
  if (rl && (rl->rl & 2)) add_ratelimit(resp, "tokens", rl->rl_tok_limit, rl->rl_tok_remaining, rl->rl_tok_reset);
  enum MHD_Result rc = MHD_queue_response(con, status, resp);
  MHD_destroy_response(resp);
  return rc;
}

static enum MHD_Result reply_error(sim_server *s, sim_req *r, unsigned status, const char *msg,
                                   int retry_after, uint64_t *counter) {
  pthread_mutex_lock(&s->mu);
  if (counter) (*counter)++;
  pthread_mutex_unlock(&s->mu);
  char *body = status == 429 ? sim_quota_error_body(r->api, msg, retry_after) /* only the --rps limiter */
                   : sim_error_body(r->api, (int)status, msg);
  r->state = ST_DONE;
  /* Gemini says when to retry in RetryInfo, not in a Retry-After header. */
  if (status == 429 && r->api == SIM_API_GEMINI) retry_after = 0;
  return reply(r->con, status, body, strlen(body), retry_after, r);
}

static route route_of(const char *url, const char *method, sim_api *api) {
  int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
  *api = SIM_API_OPENAI;
  if (strcmp(url, "/v1/chat/completions") == 0) return post ? R_CHAT : R_405;
  if (sim_batches_route(url)) {
    *api = strncmp(url, "/v1beta", 7) == 0 || strncmp(url, "/upload/", 8) == 0 || strncmp(url, "/download/", 10) == 0
               ? SIM_API_GEMINI
               : SIM_API_OPENAI;
    return get || post ? R_BATCH : R_405;
  }
  static const char gpre[] = "/v1beta/models/", gsuf[] = ":generateContent";
  size_t ul = strlen(url), pl = sizeof gpre - 1, sl = sizeof gsuf - 1;
  if (ul > pl + sl && strncmp(url, gpre, pl) == 0 && strcmp(url + ul - sl, gsuf) == 0 &&
      !memchr(url + pl, '/', ul - pl - sl)) {
    *api = SIM_API_GEMINI;
    return post ? R_GEMINI : R_405;
  }
  if (strcmp(url, "/v1/models") == 0) return get ? R_MODELS : R_405;
  if (strcmp(url, "/stats") == 0) return get ? R_STATS : R_405;
  if (strcmp(url, "/health") == 0) return get ? R_HEALTH : R_405;
  return R_404;
}

static int auth_ok(const sim_server *s, const sim_req *r) {
  const char *key = s->ctx->opt.require_key;
  if (!key) return 1;
  if (r->api == SIM_API_GEMINI) {
    const char *h = MHD_lookup_connection_value(r->con, MHD_HEADER_KIND, "x-goog-api-key");
    if (!h) h = MHD_lookup_connection_value(r->con, MHD_GET_ARGUMENT_KIND, "key");
    return h && strcmp(h, key) == 0;
  }
  const char *h = MHD_lookup_connection_value(r->con, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  return h && strncmp(h, "Bearer ", 7) == 0 && strcmp(h + 7, key) == 0;
}

static char *stats_json(sim_server *s) {
  pthread_mutex_lock(&s->mu);
  counters c = s->st;
  pthread_mutex_unlock(&s->mu);
  char *bs = sim_batches_stats(s->batches);
  char *b = rt_xmalloc(1536);
#define U(x) (unsigned long long)(x)
  snprintf(b, 1536,
           "{\"requests\":%llu,\"answered\":%llu,\"http_400\":%llu,\"http_401\":%llu,\"http_404\":%llu,"
           "\"http_405\":%llu,\"http_413\":%llu,\"http_429\":%llu,\"http_500\":%llu,\"http_503\":%llu,"
           "\"hangs\":%llu,\"resets\":%llu,\"malformed\":%llu,\"off_catalog\":%llu,\"noisy\":%llu,"
           "\"queued\":%llu,\"in_flight\":%llu,\"max_in_flight\":%llu,\"in_service\":%llu,"
           "\"max_in_service\":%llu,\"http_502\":%llu,\"http_504\":%llu,\"sporadic_429\":%llu,\"tpm_tokens\":%llu,"
           "\"by_endpoint\":{\"chat_completions\":%llu,"
           "\"generate_content\":%llu,\"models\":%llu,\"other\":%llu},\"batches\":%s}",
           U(c.requests), U(c.answered), U(c.http_400), U(c.http_401), U(c.http_404), U(c.http_405),
           U(c.http_413), U(c.http_429), U(c.http_500), U(c.http_503), U(c.hangs), U(c.resets),
           U(c.malformed), U(c.off_catalog), U(c.noisy), U(c.queued), U(c.in_flight),
           U(c.max_in_flight), U(c.in_service), U(c.max_in_service), U(c.http_502), U(c.http_504),
           U(c.sporadic_429), U(c.tpm_tokens), U(c.ep_chat), U(c.ep_gemini),
           U(c.ep_models), U(c.ep_other), bs);
#undef U
  free(bs);
  return b;
}

/* A multipart field of POST /v1/files: "purpose" and "file" (the JSONL). */
static enum MHD_Result on_post_field(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                     const char *ctype, const char *enc, const char *data, uint64_t off,
                                     size_t size) {
  (void)kind, (void)filename, (void)ctype, (void)enc, (void)off;
  sim_req *r = cls;
  if (strcmp(key, "file") == 0) {
    r->has_file = 1;
    for (size_t i = 0; i < size; i++) rt_vec_push(&r->file, data[i]);
  } else if (strcmp(key, "purpose") == 0) {
    size_t old = r->purpose ? strlen(r->purpose) : 0;
    r->purpose = rt_xrealloc(r->purpose, old + size + 1);
    memcpy(r->purpose + old, data, size);
    r->purpose[old + size] = '\0';
  }
  return MHD_YES;
}

/* --- request life cycle ---------------------------------------------------- */

/* Close the connection without a response (reset, hang at shutdown, shutdown). */
static enum MHD_Result drop(sim_server *s, sim_req *r) {
  pthread_mutex_lock(&s->mu);
  leave_flight_locked(s, r);
  pthread_mutex_unlock(&s->mu);
  r->state = ST_DONE;
  return MHD_NO;
}

static enum MHD_Result send_outcome(sim_server *s, sim_req *r) {
  sim_outcome *o = &r->out;
  pthread_mutex_lock(&s->mu);
  switch (o->kind) {
  case SIM_OUT_ANSWER: s->st.answered++; break;
  case SIM_OUT_OFF_CATALOG: s->st.answered++; s->st.off_catalog++; break;
  case SIM_OUT_NOISY: s->st.answered++; s->st.noisy++; break;
  case SIM_OUT_MALFORMED: s->st.malformed++; break;
  case SIM_OUT_500: s->st.http_500++; break;
  case SIM_OUT_503: s->st.http_503++; break;
  case SIM_OUT_502: s->st.http_502++; break;
  case SIM_OUT_504: s->st.http_504++; break;
  case SIM_OUT_429: s->st.http_429++; s->st.sporadic_429++; break;
  default: break;
  }
  leave_flight_locked(s, r);
  pthread_mutex_unlock(&s->mu);
  char *body = o->body;
  o->body = NULL;
  r->state = ST_DONE;
  int ra = o->kind == SIM_OUT_429 ? s->ctx->opt.retry_after : 0; /* --fail-429: both apis */
  return reply(r->con, (unsigned)o->status, body, o->body_len, ra, r);
}

/* r holds a service slot (or capacity is unlimited): decide and answer. */
static enum MHD_Result serve(sim_server *s, sim_req *r) {
  sim_ctx *ctx = s->ctx;
  pthread_mutex_lock(&s->mu);
  uint64_t n = sim_counts_next(&s->counts, r->rq.prompt_hash);
  pthread_mutex_unlock(&s->mu);
  sim_respond(ctx, &r->rq, n, &r->out);
  rt_debug("prompt %016llx #%llu: outcome %d, delay %.1f ms, answer \"%s\"",
           (unsigned long long)r->rq.prompt_hash, (unsigned long long)n, (int)r->out.kind,
           r->out.delay_ms, r->out.content ? r->out.content : "");
  sim_request_free(&r->rq);
  if (r->out.kind == SIM_OUT_RESET) {
    pthread_mutex_lock(&s->mu);
    s->st.resets++;
    pthread_mutex_unlock(&s->mu);
    return drop(s, r);
  }
  pthread_mutex_lock(&s->mu);
  if (r->out.kind == SIM_OUT_HANG) {
    s->st.hangs++;
    /* A hung request gives its slot back: it models a lost response, and a
     * slot held forever would silently turn --capacity into a deadlock. */
    release_slot_locked(s, r);
    if (s->stopping) {
      pthread_mutex_unlock(&s->mu);
      return drop(s, r);
    }
    suspend_locked(s, r, ST_HUNG);
    r->next = s->hung;
    s->hung = r;
    pthread_mutex_unlock(&s->mu);
    return MHD_YES;
  }
  if (r->out.delay_ms > 0 && !s->stopping) {
    r->due = mono() + r->out.delay_ms / 1000.0;
    suspend_locked(s, r, ST_DELAYED);
    heap_push(s, r);
    if (s->heap[0] == r) pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return MHD_YES;
  }
  pthread_mutex_unlock(&s->mu);
  return send_outcome(s, r);
}

static enum MHD_Result on_complete(sim_server *s, sim_req *r, const char *url, const char *method) {
  const sim_opts *o = &s->ctx->opt;
  char msg[512];
  switch (r->route) {
  case R_STATS: {
    char *b = stats_json(s);
    r->state = ST_DONE;
    return reply(r->con, 200, b, strlen(b), 0, NULL);
  }
  case R_HEALTH:
    r->state = ST_DONE;
    return reply(r->con, 200, rt_xstrdup("{\"status\":\"ok\"}"), 15, 0, NULL);
  case R_MODELS: {
    pthread_mutex_lock(&s->mu);
    s->st.requests++;
    s->st.ep_models++;
    pthread_mutex_unlock(&s->mu);
    char *b = rt_xmalloc(256);
    snprintf(b, 256, "{\"object\":\"list\",\"data\":[{\"id\":\"%s\",\"object\":\"model\",\"created\":0,"
             "\"owned_by\":\"ragtide\"}]}", SIM_MODEL_ID);
    r->state = ST_DONE;
    return reply(r->con, 200, b, strlen(b), 0, NULL);
  }
  case R_BATCH: {
    if (r->too_big) {
      snprintf(msg, sizeof msg, "request body over %u MiB", MAX_BODY >> 20);
      return reply_error(s, r, 413, msg, 0, &s->st.http_413);
    }
    if (!auth_ok(s, r))
      return reply_error(s, r, 401, "missing or wrong API key", 0, &s->st.http_401);
    if (strcmp(url, "/v1/files") == 0 && strcmp(method, "POST") == 0) {
      /* multipart/form-data: libmicrohttpd's post processor splits the fields */
      struct MHD_PostProcessor *pp = MHD_create_post_processor(r->con, 65536, on_post_field, r);
      if (!pp) return reply_error(s, r, 400, "POST /v1/files needs multipart/form-data (purpose, file)", 0,
                                  &s->st.http_400);
      MHD_post_process(pp, r->body ? r->body : "", r->len);
      MHD_destroy_post_processor(pp);
    }
    char *out = NULL;
    size_t out_len = 0;
    int jsonl = 0;
    sim_goog_upload g = {0};
    g.protocol = MHD_lookup_connection_value(r->con, MHD_HEADER_KIND, "X-Goog-Upload-Protocol");
    g.command = MHD_lookup_connection_value(r->con, MHD_HEADER_KIND, "X-Goog-Upload-Command");
    g.length = MHD_lookup_connection_value(r->con, MHD_HEADER_KIND, "X-Goog-Upload-Header-Content-Length");
    g.offset = MHD_lookup_connection_value(r->con, MHD_HEADER_KIND, "X-Goog-Upload-Offset");
    g.upload_id = MHD_lookup_connection_value(r->con, MHD_GET_ARGUMENT_KIND, "upload_id");
    g.alt = MHD_lookup_connection_value(r->con, MHD_GET_ARGUMENT_KIND, "alt");
    const char *host = MHD_lookup_connection_value(r->con, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    char origin[256];
    snprintf(origin, sizeof origin, "http://%s", host ? host : "127.0.0.1");
    if (s->ctx->opt.upload_origin) snprintf(origin, sizeof origin, "%s", s->ctx->opt.upload_origin);
    g.origin = origin;
    unsigned st = sim_batches_handle(s->batches, method, url, r->body, r->len, r->has_file ? r->file.data : NULL,
                                     r->file.len, r->purpose, &g, &out, &out_len, &jsonl);
    r->state = ST_DONE;
    if (!*g.url && !*g.status) return reply(r->con, st, out, out_len, 0, NULL);
    /* the resumable upload answers in headers too */
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback(out_len, out, free);
    if (!resp) {
      free(out);
      return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (*g.url) MHD_add_response_header(resp, "X-Goog-Upload-URL", g.url);
    if (*g.status) MHD_add_response_header(resp, "X-Goog-Upload-Status", g.status);
    enum MHD_Result rc = MHD_queue_response(r->con, st, resp);
    MHD_destroy_response(resp);
    return rc;
  }
  case R_404:
  case R_405:
    pthread_mutex_lock(&s->mu);
    s->st.requests++;
    s->st.ep_other++;
    pthread_mutex_unlock(&s->mu);
    snprintf(msg, sizeof msg, "%s %.200s: %s; the sim serves POST /v1/chat/completions, "
             "POST /v1beta/models/{model}:generateContent, GET /v1/models, GET /stats, GET /health",
             method, url, r->route == R_404 ? "no such endpoint" : "method not allowed");
    return reply_error(s, r, r->route == R_404 ? 404 : 405, msg, 0,
                       r->route == R_404 ? &s->st.http_404 : &s->st.http_405);
  default:
    break;
  }
  pthread_mutex_lock(&s->mu);
  s->st.requests++;
  if (r->route == R_CHAT) s->st.ep_chat++;
  else s->st.ep_gemini++;
  int retry = o->rps > 0 ? sim_bucket_take(&s->bucket, mono()) : 0;
  if (o->rps > 0 && o->ratelimit_headers && r->api == SIM_API_OPENAI) {
    r->rl |= 1;
    sim_bucket_state(&s->bucket, &r->rl_limit, &r->rl_remaining, &r->rl_reset);
  }
  pthread_mutex_unlock(&s->mu);
  if (r->too_big) {
    snprintf(msg, sizeof msg, "request body over %u MiB; send fewer enum values", MAX_BODY >> 20);
    return reply_error(s, r, 413, msg, 0, &s->st.http_413);
  }
  if (!auth_ok(s, r))
    return reply_error(s, r, 401,
                       r->api == SIM_API_GEMINI
                           ? "missing or wrong API key: send it in the x-goog-api-key header"
                           : "missing or wrong API key: send it as \"Authorization: Bearer <key>\"",
                       0, &s->st.http_401);
  if (retry) {
    snprintf(msg, sizeof msg, "rate limit of %g requests/s reached (--rps); retry after %d s", o->rps,
             retry);
    return reply_error(s, r, 429, msg, retry, &s->st.http_429);
  }
  char why[400];
  int bad = sim_parse_request(r->api, r->body ? r->body : "", r->len, &r->rq, why, sizeof why);
  free(r->body);
  r->body = NULL;
  if (bad) {
    snprintf(msg, sizeof msg, "%s %s: %s", method, url, why);
    return reply_error(s, r, 400, msg, 0, &s->st.http_400);
  }
  if (o->tpm > 0) { /* charged as OpenAI does: the prompt's tokens plus the completion it may use */
    double cost = (double)((r->rq.content_bytes + 3) / 4) + (double)max_tokens_of(&r->rq);
    pthread_mutex_lock(&s->mu);
    int wait = sim_bucket_take_n(&s->tok_bucket, cost, mono());
    if (!wait) s->st.tpm_tokens += (uint64_t)cost;
    if (o->ratelimit_headers && r->api == SIM_API_OPENAI) {
      r->rl |= 2;
      sim_bucket_state(&s->tok_bucket, &r->rl_tok_limit, &r->rl_tok_remaining, &r->rl_tok_reset);
    }
    pthread_mutex_unlock(&s->mu);
    if (wait) {
      snprintf(msg, sizeof msg, "rate limit of %g tokens/min reached (--tpm; this request: %.0f); retry after %d s",
               o->tpm, cost, wait);
      return reply_error(s, r, 429, msg, wait, &s->st.http_429);
    }
  }
  pthread_mutex_lock(&s->mu);
  if (s->stopping) {
    pthread_mutex_unlock(&s->mu);
    r->state = ST_DONE;
    return MHD_NO;
  }
  r->in_flight = 1;
  if (++s->st.in_flight > s->st.max_in_flight) s->st.max_in_flight = s->st.in_flight;
  if (o->capacity && s->st.in_service >= o->capacity) {
    s->st.queued++;
    suspend_locked(s, r, ST_QUEUED);
    if (s->fifo_tail) s->fifo_tail->next = r;
    else s->fifo_head = r;
    s->fifo_tail = r;
    pthread_mutex_unlock(&s->mu);
    return MHD_YES;
  }
  r->has_slot = 1;
  if (++s->st.in_service > s->st.max_in_service) s->st.max_in_service = s->st.in_service;
  pthread_mutex_unlock(&s->mu);
  return serve(s, r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls) {
  (void)version;
  sim_server *s = cls;
  sim_req *r = *req_cls;
  if (!r) {
    r = rt_xcalloc(1, sizeof *r);
    r->con = con;
    r->route = route_of(url, method, &r->api);
    *req_cls = r;
    return MHD_YES;
  }
  if (*upload_size) {
    if ((r->route == R_CHAT || r->route == R_GEMINI || r->route == R_BATCH) && !r->too_big) {
      if (rt_buf_append(&r->body, &r->len, &r->cap, upload, *upload_size, MAX_BODY, 4096)) {
        r->too_big = 1;
        free(r->body);
        r->body = NULL;
        r->len = r->cap = 0;
      }
    }
    *upload_size = 0;
    return MHD_YES;
  }
  req_state st = r->state;
  if (st == ST_QUEUED || st == ST_DELAYED || st == ST_HUNG) {
    pthread_mutex_lock(&s->mu);
    s->suspended--;
    int stopping = s->stopping;
    pthread_mutex_unlock(&s->mu);
    if (stopping || st == ST_HUNG) return drop(s, r);
    return st == ST_QUEUED ? serve(s, r) : send_outcome(s, r);
  }
  if (st == ST_DONE) return MHD_NO;
  return on_complete(s, r, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *con, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)con;
  (void)toe;
  sim_req *r = *req_cls;
  if (!r) return;
  free(r->body);
  free(r->file.data);
  free(r->purpose);
  sim_request_free(&r->rq);
  sim_outcome_free(&r->out);
  free(r);
  *req_cls = NULL;
}

static void *timer_main(void *arg) {
  sim_server *s = arg;
  pthread_mutex_lock(&s->mu);
  while (!s->timer_stop) {
    if (!s->heap_len) {
      pthread_cond_wait(&s->cv, &s->mu);
      continue;
    }
    double due = s->heap[0]->due;
    if (due <= mono()) {
      sim_req *r = heap_pop(s);
      MHD_resume_connection(r->con);
      continue;
    }
    struct timespec ts;
    ts.tv_sec = (time_t)due;
    ts.tv_nsec = (long)((due - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char line[512];
  vsnprintf(line, sizeof line, fmt, ap);
  size_t l = strlen(line);
  while (l && line[l - 1] == '\n') line[--l] = '\0';
  /* Our own MHD_NO (a --reset fault, a close at shutdown) is not worth a line each. */
  if (strstr(line, "Application reported internal error")) return;
  rt_warn("libmicrohttpd: %s", line);
}

/* --- start / stop ---------------------------------------------------------- */

int sim_server_start(sim_ctx *ctx, sim_server **out, int *port, rt_err *err) {
  sim_server *s = rt_xcalloc(1, sizeof *s);
  s->ctx = ctx;
  pthread_mutex_init(&s->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->cv, &ca);
  pthread_condattr_destroy(&ca);
  sim_bucket_init(&s->bucket, ctx->opt.rps, ctx->opt.rps, mono());
  sim_bucket_init(&s->tok_bucket, ctx->opt.tpm / 60, ctx->opt.tpm / 60, mono());
  s->batches = sim_batches_new(ctx);

  /* Thousands of concurrent delayed requests need as many descriptors. */
  struct rlimit rl;
  unsigned limit = 1000;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    if (rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      setrlimit(RLIMIT_NOFILE, &rl);
      getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 64)
      limit = rl.rlim_cur - 64 > 1000000 ? 1000000 : (unsigned)(rl.rlim_cur - 64);
    else if (rl.rlim_cur == RLIM_INFINITY)
      limit = 1000000;
  }
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)ctx->opt.port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  /* A pool of one is no pool (MHD warns), so the option is only passed for two or more. */
  struct MHD_OptionItem pool[] = {
    {ctx->opt.threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)ctx->opt.threads, NULL},
    {MHD_OPTION_END, 0, NULL},
  };
  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
                   MHD_USE_ERROR_LOG;
  s->d = MHD_start_daemon(flags, (uint16_t)ctx->opt.port, NULL, NULL, on_request, s,
                          MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                          MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                          MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                          MHD_OPTION_CONNECTION_LIMIT, limit,
                          MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u,
                          MHD_OPTION_CONNECTION_TIMEOUT, 0u,
                          MHD_OPTION_ARRAY, pool,
                          MHD_OPTION_END);
  if (!s->d) {
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return rt_err_set(err, RT_ERR_USAGE,
                      "cannot listen on 127.0.0.1:%d (port in use or not permitted); pick another "
                      "--port or use --port 0 for any free port", ctx->opt.port);
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
  *port = di ? di->port : ctx->opt.port;
  if (pthread_create(&s->timer, NULL, timer_main, s) != 0) {
    MHD_stop_daemon(s->d);
    free(s);
    return rt_err_set(err, RT_ERR_INTERNAL, "cannot start the latency timer thread");
  }
  s->timer_started = 1;
  *out = s;
  return RT_OK;
}

void sim_server_stop(sim_server *s) {
  if (!s) return;
  MHD_socket ls = MHD_quiesce_daemon(s->d);
  pthread_mutex_lock(&s->mu);
  s->stopping = 1;
  s->timer_stop = 1;
  pthread_cond_signal(&s->cv);
  /* Everything suspended comes back once, sees `stopping` and is closed. */
  while (s->heap_len) MHD_resume_connection(heap_pop(s)->con);
  for (sim_req *r = s->fifo_head, *nx; r; r = nx) {
    nx = r->next;
    MHD_resume_connection(r->con);
  }
  s->fifo_head = s->fifo_tail = NULL;
  for (sim_req *r = s->hung, *nx; r; r = nx) {
    nx = r->next;
    MHD_resume_connection(r->con);
  }
  s->hung = NULL;
  pthread_mutex_unlock(&s->mu);
  if (s->timer_started) pthread_join(s->timer, NULL);
  for (int i = 0; i < 500; i++) { /* up to 5 s for the workers to close them */
    pthread_mutex_lock(&s->mu);
    uint64_t left = s->suspended;
    pthread_mutex_unlock(&s->mu);
    if (!left) break;
    usleep(10000);
  }
  MHD_stop_daemon(s->d);
  if (ls != MHD_INVALID_SOCKET) close(ls);
  sim_counts_free(&s->counts);
  sim_batches_free(s->batches);
  free(s->heap);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  free(s);
}
