/* batch.h — stage 8 through the providers' asynchronous Batch APIs
 * (llm.api = openai-batch | gemini-batch): the same requests as the
 * synchronous client, at half the price, answered within 24 hours.
 *
 * Owns: framing a rank's requests as batch lines (custom_id / key =
 * "<pair tag>-<request key>", 16 hex digits each), splitting them by the
 * provider's limits (llm.batch_max_requests / llm.batch_max_bytes), the
 * durable record of every batch submitted (TABLE.run/batches-r<RANK>.jsonl,
 * fsynced before any poll; docs/formats.md §6.1), polling with backoff
 * (llm.batch_poll_s doubling to llm.batch_poll_max_s), collecting output and
 * error lines back to the calls by id, retrying failed lines (llm.batch_retry:
 * sync through the synchronous client, or a follow-up batch), the deadline
 * (llm.batch_deadline), and resume: a rerun adopts the recorded batches whose
 * lines it still needs and never resubmits them. Listing and cancelling a
 * run's batches (`ragtide batches`) use the same records.
 *
 * Not owned: request bodies and response parsing (request.h: byte for byte
 * the synchronous bodies, so the request keys, the journal and the answers
 * are the same in both modes), keys and headers (keys.h), the synchronous
 * request loop (infer.c). The provider pieces are batch_openai.c (Files API
 * upload, /v1/batches, output and error files) and batch_gemini.c
 * (models/{model}:batchGenerateContent with inline requests or an input file
 * uploaded through the Files API, llm.batch_input; batches/{id} operations);
 * batch.c is the provider-neutral runner and the HTTP helper.
 *
 * Layer: beside infer.c; no MPI (the record files are per rank). docs/llm.md
 * "Batch mode" describes the behaviour for operators. */
#ifndef RT_LLM_BATCH_H
#define RT_LLM_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <jansson.h>

#include "base/err.h"
#include "format/config.h"
#include "llm/infer.h"
#include "llm/request.h"

typedef struct rt_batch rt_batch;

/* 1 when llm.api is a batch api (openai-batch, gemini-batch). */
int rt_batch_api(const char *api);

/* The batch side of a client: HTTP handle, key headers, limits, record
 * paths for this rank. RT_ERR_USAGE on bad config. */
int rt_batch_new(const rt_config *cfg, int rank, rt_batch **out, rt_err *err);
void rt_batch_free(rt_batch *b);

/* rt_llm_run for a batch client (infer.c dispatches here): the same
 * contract — answers[i] for calls[i], hooks.on_answer per call as it is
 * complete (answered, or failed for good), hooks.poll every poll turn (a stop
 * returns RT_ERR_INTERRUPTED: the batches go on at the provider and a rerun
 * collects them), stats filled where meaningful (requests = batch lines +
 * synchronous retries). RT_ERR_INTERRUPTED also past llm.batch_deadline;
 * RT_ERR_ENDPOINT when the batch endpoint refuses the key or cannot be
 * reached. */
int rt_batch_run(rt_batch *b, rt_llm_client *c, const rt_llm_call *calls, size_t n, rt_llm_answer *answers,
                 rt_err *err);

/* This rank's batches of the last rt_batch_run as a JSON array (new
 * reference): [{"id","provider","state","requests","ok","failed","round",
 * "adopted","submitted_at","ended_at","seconds"}]. */
json_t *rt_batch_report(const rt_batch *b);

/* `ragtide batches`: every batch recorded in the run directory of cfg (all
 * ranks' records), its state asked of the provider; with cancel, cancel
 * those not ended. Prints a table (or JSON lines with json) on stdout.
 * Returns RT_OK, or the first error. */
int rt_batch_list(const rt_config *cfg, int cancel, int json, rt_err *err);

/* --- internal to src/llm ---------------------------------------------------- */

/* infer.c's pieces the batch runner uses. */
const rt_llm_reqfmt *rt_llm_client_fmt(const rt_llm_client *c);
rt_llm_stats *rt_llm_client_stats_mut(rt_llm_client *c);
rt_llm_hooks *rt_llm_client_hooks(rt_llm_client *c);
/* The synchronous request loop, whatever llm.api says (llm.batch_retry = sync). */
int rt_llm_run_sync(rt_llm_client *c, const rt_llm_call *calls, size_t n, rt_llm_answer *answers, rt_err *err);
/* The body of a call (malloc'ed, *len bytes) and its request key: the same
 * bytes and key the synchronous path sends and journals. */
char *rt_llm_call_body(const rt_llm_client *c, const rt_llm_call *call, size_t *len, uint64_t *key);

/* One HTTP exchange of the batch endpoints (batch.c). */
typedef struct rt_bhttp {
  CURL *e;
  struct curl_slist *json_h; /* key + Content-Type: application/json (+ llm.headers) */
  struct curl_slist *auth_h; /* key (+ llm.headers) only: GET, multipart */
  char *base;                /* llm.base_url without a trailing '/' */
  long timeout_ms, connect_timeout_ms;
  int insecure;
  long last_status;          /* of the last exchange: 0 = no response (transport error) */
} rt_bhttp;

/* method "GET" / "POST"; body (len bytes) or mime (multipart) or neither.
 * *resp: malloc'ed, NUL-terminated body; *status the HTTP status (0: no
 * response, err says why). Transport errors are RT_ERR_ENDPOINT; any status
 * is RT_OK (the caller decides). */
int rt_bhttp_do(rt_bhttp *h, const char *method, const char *url, const char *body, size_t len, curl_mime *mime,
                long *status, char **resp, size_t *rlen, rt_err *err);
/* rt_bhttp_ok for a POST of raw bytes with extra request headers (extra:
 * added to the key headers, with their own Content-Type) and one response
 * header read back: want (its name) into got (cap bytes; "" when absent).
 * The Gemini Files API's resumable upload needs both. */
int rt_bhttp_post_h(rt_bhttp *h, const char *url, const char *body, size_t len, const struct curl_slist *extra,
                    const char *want, char *got, size_t cap, char **resp, size_t *rlen, rt_err *err);
/* GET url, a JSONL file (an output, error or responses file), and hand
 * each non-empty line to fn: parsed (NULL when it is not JSON) with its
 * 1-based number. The line's json_t is borrowed for the call. */
typedef void (*rt_jsonl_fn)(void *ud, json_t *line, long lineno);
int rt_bhttp_jsonl(rt_bhttp *h, const char *url, rt_jsonl_fn fn, void *ud, rt_err *err);
/* A non-2xx answer as an error naming method, URL, status and the
 * provider's message, with a hint for 401/403/404. */
int rt_bhttp_fail(const char *method, const char *url, long status, const char *resp, size_t rlen, rt_err *err);
/* rt_bhttp_do where only a 2xx answer will do: any other status is the
 * rt_bhttp_fail error. On failure *resp is NULL (nothing to free). */
int rt_bhttp_ok(rt_bhttp *h, const char *method, const char *url, const char *body, size_t len, curl_mime *mime,
                char **resp, size_t *rlen, rt_err *err);
/* rt_bhttp_ok, the answer parsed as JSON: the value (the caller's), or NULL
 * with err set (RT_ERR_ENDPOINT "... is not JSON" for a body that is not). */
json_t *rt_bhttp_json(rt_bhttp *h, const char *method, const char *url, const char *body, size_t len,
                      curl_mime *mime, rt_err *err);

/* A provider's state of one batch. */
typedef struct rt_batch_state {
  char state[48];            /* the provider's word: in_progress, BATCH_STATE_RUNNING, ... */
  int terminal;              /* 1: it ends here (completed, failed, expired, cancelled) */
  int64_t total, done, failed; /* request counts as the provider reports them (-1 unknown) */
  char out_file[160], err_file[160]; /* OpenAI output / error file ids ("" none) */
  json_t *op;                /* Gemini: the operation, kept for its inlined responses or responsesFile (owned) */
} rt_batch_state;

/* One collected line: custom_id / key (NULL: the provider gave none; then
 * index is its position in the batch), the response body as JSON text (NULL
 * when the line failed) or a reason. */
typedef void (*rt_batch_line_fn)(void *ud, const char *id, long index, const char *body, size_t len,
                                 const char *why);

/* llm.batch_input: how a Gemini batch carries its requests. */
typedef enum { RT_BATCH_INPUT_AUTO, RT_BATCH_INPUT_INLINE, RT_BATCH_INPUT_FILE } rt_batch_input;

typedef struct rt_batch_provider {
  const char *name;          /* "openai" | "gemini" */
  size_t max_requests;       /* documented limits (docs/llm.md "Batch mode") */
  size_t max_bytes;          /* one batch's input at most (an input file) */
  size_t default_bytes;      /* per batch when llm.batch_max_bytes is 0: below max_bytes to bound memory */
  size_t inline_bytes;       /* the inline request's limit (llm.batch_input = inline caps at it); 0: no inline */
  /* the bytes one request adds to a batch's input (line or inline item, with separator) */
  size_t (*line_bytes)(size_t id_len, size_t body_len);
  /* Submit lines ids[k] / bodies[k], k < n: *id gets the batch id. label
   * names the batch (OpenAI metadata, Gemini displayName). input: inline
   * requests or an uploaded file (auto: inline when they fit inline_bytes);
   * a provider with files only ignores it. */
  int (*submit)(rt_bhttp *h, const char *model, const char *label, rt_batch_input input, char *const *ids,
                char *const *bodies, const size_t *lens, size_t n, char *id, size_t idcap, rt_err *err);
  int (*get)(rt_bhttp *h, const char *id, rt_batch_state *st, rt_err *err);
  /* Every line of an ended batch to fn. */
  int (*collect)(rt_bhttp *h, const char *id, const rt_batch_state *st, rt_batch_line_fn fn, void *ud, rt_err *err);
  int (*cancel)(rt_bhttp *h, const char *id, rt_err *err);
  /* The batch submitted with this label, if the provider has one: *id set,
   * or "" when none (the submission never reached it). */
  int (*find)(rt_bhttp *h, const char *label, char *id, size_t idcap, rt_err *err);
} rt_batch_provider;

extern const rt_batch_provider rt_batch_openai;
extern const rt_batch_provider rt_batch_gemini;

#endif
