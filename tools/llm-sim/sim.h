/* sim.h — ragtide-llm-sim, a deterministic, fault-injecting local LLM endpoint.
 *
 * Owns: the simulated "model" (which cluster a prompt gets), the fault plan
 * (reset, hang, 429, 500, 502, 503, 504, malformed, off-catalog, noise, latency), the 429
 * token bucket and the request/response JSON of the OpenAI chat-completions
 * and Gemini generateContent shapes. Files:
 *   main.c    command line, start-up, signals, shutdown
 *   http.c    libmicrohttpd glue: routing, auth, capacity queue, latency timer, /stats
 *   answer.c  request parsing, the model's pick, constrained output, response bodies
 *   faults.c  seeded draws, fault decisions, noise/off-catalog text, latency, rate limiter
 * answer.c and faults.c do not use libmicrohttpd, so unit tests can include them.
 *
 * Determinism: every decision is a pure function of (--seed, prompt hash, n),
 * n = how many times the same prompt was served before; only the 429 limiter
 * depends on time. See docs/llm-sim.md. */
#ifndef RT_TOOLS_LLM_SIM_H
#define RT_TOOLS_LLM_SIM_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "format/catalog.h"

#define SIM_MODEL_ID "ragtide-sim"
#define SIM_MODEL_NAME "ragtide-sim (simulated)"

typedef struct sim_opts {
  const char *catalog_path;
  int port;                 /* 0: pick a free port */
  const char *port_file;    /* NULL: none */
  uint64_t seed;
  double latency_ms;        /* fixed latency, or the mean of the log-normal */
  int latency_lognormal;    /* 0 fixed, 1 log-normal */
  double latency_p99_ms;
  unsigned capacity;        /* max requests in service, 0 = unlimited */
  double rps;               /* 0 = unlimited */
  double tpm;               /* tokens per minute (prompt + max_tokens estimate, as OpenAI charges), 0 = unlimited */
  double fail500, fail503, hang, reset, malformed, off_catalog, noise;
  double fail429, fail502, fail504; /* rate-independent 429 (Retry-After: retry_after), 502, 504 */
  int retry_after;          /* seconds in the Retry-After of --fail-429 (default 1) */
  int fault_attempts;       /* --fault-attempts K: resets, hangs, 429s and 5xx only on a prompt's first K attempts (0: any) */
  int ratelimit_headers;    /* OpenAI x-ratelimit-*-requests/-tokens headers from the --rps/--tpm buckets */
  const char *upload_origin; /* --upload-origin: the Gemini upload URL names this origin (NULL: the sim's own) */
  double follow;
  unsigned threads;
  const char *require_key;  /* NULL: no auth */
  /* batch endpoints (batch.c) */
  double batch_delay_ms;    /* creation to completion */
  double batch_fail;        /* fraction of batch lines failed (500) */
  double batch_expire_ms;   /* > 0 and < delay: the batch expires then */
  unsigned long long batch_max_requests, batch_max_bytes; /* 0: no limit; over: 400 */
  unsigned long long batch_get_fail; /* every Nth GET of one batch answers 503 (0: never) */
  /* derived: log-normal parameters (ln ms) */
  double ln_mu, ln_sigma;
} sim_opts;

/* normalised description -> dense index, open addressing (built once). */
typedef struct sim_index {
  const rt_catalog *cat;
  uint32_t mask;
  int32_t *slot;
  uint64_t *hash;
} sim_index;

typedef struct sim_ctx {
  sim_opts opt;
  rt_catalog cat;
  sim_index idx;
} sim_ctx;

/* --- answer.c ------------------------------------------------------------- */

typedef enum { SIM_API_OPENAI = 0, SIM_API_GEMINI = 1 } sim_api;

typedef enum {
  SIM_FMT_TEXT = 0,     /* plain text answer */
  SIM_FMT_JSON,         /* {"cluster": "<answer>"} (json_object / application/json, no enum) */
  SIM_FMT_JSON_ENUM,    /* {"cluster": "<enum value>"} (OpenAI json_schema, Gemini JSON schema) */
  SIM_FMT_ENUM,         /* exactly one enum value (guided_choice, Gemini text/x.enum) */
} sim_format;

typedef struct sim_request {
  sim_api api;
  json_t *root;           /* owned parse tree */
  char *prompt;           /* message texts joined by '\n' (malloc'ed) */
  size_t prompt_len;
  size_t content_bytes;   /* sum of message content bytes, for prompt_tokens */
  uint64_t prompt_hash;
  sim_format fmt;
  json_t *choices;        /* borrowed from root: the enum array, for *_ENUM formats */
} sim_request;

int sim_index_build(sim_index *ix, const rt_catalog *cat);
void sim_index_free(sim_index *ix);
/* Dense index of the cluster whose normalised description is norm, or -1. */
int32_t sim_index_find(const sim_index *ix, const char *norm);

/* Clusters named by whole prompt lines, in order of appearance; writes at most
 * max indices and returns how many it wrote. */
size_t sim_named_clusters(const sim_index *ix, const char *prompt, size_t len, int32_t *out, size_t max);

/* Parse a request body. On failure returns -1 with a one-line reason in why
 * (the caller answers 400). */
int sim_parse_request(sim_api api, const char *body, size_t len, sim_request *rq, char *why, size_t cap);
void sim_request_free(sim_request *rq);

/* The model's pick for a prompt (dense index); depends on (seed, prompt) only. */
int32_t sim_pick(const sim_ctx *ctx, const sim_request *rq);

/* What the server does with one request. */
typedef enum {
  SIM_OUT_ANSWER = 0, SIM_OUT_OFF_CATALOG, SIM_OUT_NOISY, SIM_OUT_MALFORMED,
  SIM_OUT_500, SIM_OUT_503, SIM_OUT_HANG, SIM_OUT_RESET,
  SIM_OUT_429, SIM_OUT_502, SIM_OUT_504,
} sim_outcome_kind;

typedef struct sim_outcome {
  sim_outcome_kind kind;
  int status;          /* HTTP status to send (0 for hang/reset) */
  char *body;          /* malloc'ed response body (NULL for hang/reset) */
  size_t body_len;
  double delay_ms;     /* latency to apply before sending */
  char *content;       /* the answer text (malloc'ed), for tests and logs; NULL on errors */
} sim_outcome;

/* Decide and render the response to the n-th (0-based) sighting of rq's prompt. */
void sim_respond(const sim_ctx *ctx, const sim_request *rq, uint64_t n, sim_outcome *out);
void sim_outcome_free(sim_outcome *o);

/* Error bodies in the endpoint's style (malloc'ed JSON). */
char *sim_error_body(sim_api api, int status, const char *message);
/* A quota 429 (the --rps limiter): for Gemini the error carries
 * details[] = [google.rpc.QuotaFailure, google.rpc.RetryInfo{retryDelay:
 * "<retry_s>s"}], as the Gemini API does when a quota is exhausted; for
 * OpenAI it is sim_error_body's. */
char *sim_quota_error_body(sim_api api, const char *message, int retry_s);

/* Go-style duration as OpenAI's x-ratelimit-reset-* headers write it: "12ms",
 * "1.5s", "6m0s", "1h2m3s"; "0s" for <= 0. Writes at most cap bytes. */
void sim_format_duration(double seconds, char *out, size_t cap);

/* --- faults.c ------------------------------------------------------------- */

/* Draw-purpose tags: each decision reads its own independent stream. */
enum {
  SIM_D_FOLLOW = 1, SIM_D_CHOICE, SIM_D_ENUM, SIM_D_RESET, SIM_D_HANG, SIM_D_500, SIM_D_503,
  SIM_D_MALFORMED, SIM_D_OFF, SIM_D_NOISE, SIM_D_LAT1, SIM_D_LAT2, SIM_D_TEXT, SIM_D_ID,
  SIM_D_429, SIM_D_502, SIM_D_504, /* appended: the older streams keep their draws */
  SIM_D_BATCH_FAIL,
};

uint64_t sim_draw64(uint64_t seed, uint64_t prompt_hash, uint64_t n, unsigned tag);
double sim_draw_unit(uint64_t seed, uint64_t prompt_hash, uint64_t n, unsigned tag); /* [0,1) */

/* Log-normal parameters from mean and p99 (ms). Returns -1 with a reason when
 * no log-normal has that mean and p99 (p99 <= mean, or p99 > ~15x mean). */
int sim_lognormal_params(double mean_ms, double p99_ms, double *mu, double *sigma, char *why, size_t cap);
double sim_latency_ms(const sim_opts *o, uint64_t prompt_hash, uint64_t n);

/* Noisy rendering of a description: same normalised form, different text. */
char *sim_noisy_text(const char *desc, const char *norm, uint64_t r);
/* A description whose normalised form is in no catalog cluster. */
char *sim_off_catalog_text(const sim_index *ix, int32_t pick, uint64_t r);

/* Prompt-hash -> times seen (not thread-safe; http.c locks around it). */
typedef struct sim_counts {
  uint64_t *key;
  uint32_t *val;
  size_t cap, len;
} sim_counts;
uint64_t sim_counts_next(sim_counts *c, uint64_t key); /* returns the old count, then increments */
void sim_counts_free(sim_counts *c);

/* Token bucket of `rate` units/s, burst max(1, burst) (not thread-safe;
 * http.c locks around it). --rps: rate R, burst R; --tpm: rate T/60, burst
 * T/60 (one second's worth, as for --rps). take_n takes `cost` units (one
 * request, or its estimated tokens; a cost over the burst waits for a full
 * bucket). Returns 0 when they were taken, else the Retry-After seconds (>= 1). */
typedef struct sim_bucket {
  double rate, burst, tokens, last;
} sim_bucket;
void sim_bucket_init(sim_bucket *b, double rate, double burst, double now);
int sim_bucket_take(sim_bucket *b, double now);
int sim_bucket_take_n(sim_bucket *b, double cost, double now);
/* The bucket as OpenAI's headers show it (after a take): limit = burst,
 * remaining = whole tokens left, reset = seconds until it is full again. */
void sim_bucket_state(const sim_bucket *b, long *limit, long *remaining, double *reset_s);

/* --- batch.c -------------------------------------------------------------- */

/* The providers' batch endpoints in memory (thread-safe): OpenAI POST
 * /v1/files (multipart: purpose, file), GET /v1/files/{id}[/content], POST
 * and GET /v1/batches, GET /v1/batches/{id}, POST /v1/batches/{id}/cancel;
 * Gemini POST /v1beta/models/{m}:batchGenerateContent (inline requests or
 * inputConfig.fileName), GET /v1beta/batches[/{id}], POST
 * /v1beta/batches/{id}:cancel, the Files API's resumable upload (POST
 * /upload/v1beta/files: start, then upload, finalize at the returned URL)
 * and GET /download/v1beta/files/{id}:download?alt=media. */
typedef struct sim_batches sim_batches;
/* The Gemini resumable upload's HTTP parts: request headers and query
 * arguments in (NULL when absent), reply headers out ("" none). */
typedef struct sim_goog_upload {
  const char *protocol, *command, *length, *offset; /* X-Goog-Upload-Protocol, -Command, -Header-Content-Length, -Offset */
  const char *upload_id, *alt;                      /* ?upload_id= (the upload URL), ?alt= (download) */
  const char *origin;                               /* http://HOST: the upload URL points back here */
  char url[320];                                    /* out: x-goog-upload-url */
  char status[16];                                  /* out: x-goog-upload-status (active, final) */
} sim_goog_upload;
sim_batches *sim_batches_new(const sim_ctx *ctx);
void sim_batches_free(sim_batches *b);
/* 1 when url is one of the batch endpoints above. */
int sim_batches_route(const char *url);
/* Answer one request: returns the HTTP status, *out the malloc'ed body
 * (*jsonl = 1: JSON lines, else JSON). file/purpose: the multipart fields of
 * an upload (NULL otherwise); g: the Gemini upload's headers (in and out). */
unsigned sim_batches_handle(sim_batches *b, const char *method, const char *url, const char *body, size_t len,
                            const char *file, size_t file_len, const char *purpose, sim_goog_upload *g, char **out,
                            size_t *out_len, int *jsonl);
/* Counters as a JSON object (malloc'ed): created, cancelled, expired,
 * rejected, uploads, downloads, gets, get_failures, lines, lines_ok,
 * lines_failed, gemini_inline, gemini_file (Gemini batches by input). */
char *sim_batches_stats(sim_batches *b);

/* --- http.c ---------------------------------------------------------------- */

typedef struct sim_server sim_server;

/* Start serving on 127.0.0.1 (opt.port, 0 = any free port); *port gets the
 * bound port. RT_ERR_USAGE when the port cannot be bound. */
int sim_server_start(sim_ctx *ctx, sim_server **out, int *port, rt_err *err);
/* Stop accepting, close hung/queued/delayed requests, stop the daemon, free. */
void sim_server_stop(sim_server *s);

#endif
