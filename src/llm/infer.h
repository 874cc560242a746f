/* infer.h — stage 8: the LLM endpoint client.
 *
 * Owns: turning prompts into answers through an endpoint (llm.api = openai:
 * POST {base_url}/v1/chat/completions; gemini: models/{model}:generateContent),
 * with up to llm.concurrency requests in flight on libcurl's multi interface,
 * retries with backoff, rate limits, timeouts, API-key handling and redaction,
 * and constrained output (llm.constrain). It does not match answers to the
 * catalog (rag/match.h does) and does not decide what a failed pair gets
 * (the refresh command does).
 *
 * Layer: beside the MPI stages; uses MPI only to share global rate limits
 * (point-to-point announcements on tag RT_LLM_SHARE_TAG, see ratelimit.h;
 * nothing collective). Without MPI initialised the process is one rank.
 *
 * Pieces: request.h (bodies and responses), keys.h (key and headers),
 * ratelimit.h (buckets, backoff, global share); this file's infer.c runs the
 * curl multi loop. docs/llm.md describes the behaviour for operators. */
#ifndef RT_LLM_INFER_H
#define RT_LLM_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "format/catalog.h"
#include "format/config.h"

typedef struct rt_llm_call {
  const char *system;  /* system message, or NULL */
  const char *user;    /* the rendered prompt */
  uint64_t tag;        /* caller's id (the pair), echoed in logs */
  /* With llm.constrain on, clusters (dense catalog indices) left out of the
   * allowed answers: the pair's c1 and c2, so a constrained answer is novel
   * by construction. n_exclude = 0 (a zeroed call): the whole catalog. */
  int n_exclude;
  uint32_t exclude[2];
} rt_llm_call;

typedef struct rt_llm_answer {
  int ok;              /* 1: answered; 0: every attempt failed */
  char *text;          /* malloc'ed answer text (content of the first choice), NULL if !ok */
  int attempts;
  int http_status;     /* last HTTP status, 0 if none */
  char *error;         /* malloc'ed reason of the last failure, NULL if ok */
} rt_llm_answer;

/* Latency histogram: RT_LLM_LAT_BUCKETS fixed log buckets, 4 per doubling:
 * bucket 0 holds < 1 ms, bucket k in 1..RT_LLM_LAT_BUCKETS-2 holds
 * [2^((k-1)/4), 2^(k/4)) ms, the last one everything from 2^(70/4) ms
 * (~185 s) up. Fixed edges, so histograms of ranks (and runs) merge by adding
 * the counts bucket by bucket; rt_llm_latency_quantile reads any sum. */
#define RT_LLM_LAT_BUCKETS 72

typedef struct rt_llm_stats {
  uint64_t calls;          /* calls given to rt_llm_run */
  uint64_t requests;       /* HTTP requests sent, retries included */
  uint64_t retries;
  uint64_t http_429, http_5xx, timeouts, conn_errors, bad_responses;
  uint64_t failed;         /* calls with ok = 0 */
  uint64_t prompt_tokens, completion_tokens; /* as reported by the endpoint (usage) */
  double seconds;
  /* Per-status detail (http_5xx above is their 5xx sum). */
  uint64_t answered;       /* requests that got a usable 2xx answer */
  uint64_t http_500, http_502, http_503, http_504, http_5xx_other;
  uint64_t http_4xx;       /* 4xx other than 429: not retried */
  uint64_t http_other;     /* any other non-2xx status */
  uint64_t samples;        /* answers voted on (llm.samples > 1) */
  uint64_t est_tokens;     /* tokens charged to llm.tpm: ceil(prompt bytes / 4) + max_tokens */
  uint64_t throttled_ms;   /* time new requests waited on 429 / Retry-After ("not before") */
  /* Adaptive rate (AIMD on 429, see ratelimit.h). */
  uint64_t rate_cuts;      /* times a 429 lowered the rank's request rate */
  double rate_limit;       /* the rank's adaptive rate at the end, requests/s; 0 = never limited */
  /* Rate-limit evidence (docs/llm.md "Sporadic 429s and real limits"). */
  uint64_t http_429_quota; /* of http_429: the provider said a quota is exhausted (Gemini RetryInfo,
                              OpenAI x-ratelimit-remaining-* = 0) */
  uint64_t limit_batches;  /* batches of 429s taken as evidence of a rate limit (cut or pause) */
  double hdr_rate;         /* refill rate read from x-ratelimit-*-requests headers at the end, requests/s
                              (the whole quota, all ranks); 0 = no such headers */
  uint64_t conn_resets;    /* of conn_errors: connection closed or reset with no response (curl's
                              silent resends included) */
  uint64_t resolve_errors; /* of conn_errors: the host name did not resolve */
  /* Latency of answered requests (start of the transfer to its end), ms. */
  uint64_t latency_buckets[RT_LLM_LAT_BUCKETS];
} rt_llm_stats;

/* Bucket of a latency in ms, and a bucket's upper edge in ms (INFINITY for
 * the last). */
int rt_llm_latency_bucket(double ms);
double rt_llm_latency_bucket_upper_ms(int k);
/* The q-quantile (0 < q <= 1) of a histogram, in ms: the upper edge of the
 * bucket where the count reaches q x total (at most 19% above the true
 * value; the last bucket reports its lower edge). 0 when empty. */
double rt_llm_latency_quantile(const uint64_t *buckets, double q);

typedef struct rt_llm_client rt_llm_client;

/* Create a client from the [llm] config. The catalog supplies the enum for
 * constrained output. Reads the API key (llm.api_key_env / llm.api_key_file),
 * registers it with rt_secret_add(). RT_ERR_USAGE on bad config. */
int rt_llm_client_new(const rt_config *cfg, const rt_catalog *cat, rt_llm_client **out, rt_err *err);

/* Answer n calls; answers[i] corresponds to calls[i]. Returns RT_OK when every
 * call has an answer or a per-call failure recorded; RT_ERR_ENDPOINT (with
 * the URL in err) when the endpoint is unusable (e.g. the failures already
 * exceed llm.max_failed_fraction of n, or every connection is refused) so a
 * dead endpoint fails fast; RT_ERR_INTERRUPTED when the poll hook asked to
 * stop before every call was complete. */
int rt_llm_run(rt_llm_client *c, const rt_llm_call *calls, size_t n, rt_llm_answer *answers, rt_err *err);

/* Optional hooks for the next rt_llm_run calls (zeroed: none).
 *   on_answer(ud, i, a): call i of the current run is complete (answered,
 *     or failed for good), called from the request loop as it happens, so a
 *     caller that journals it there loses only the calls in flight when the
 *     process dies. Not called for calls abandoned by a stop.
 *   poll(ud): called every turn of the request loop (at least once a second,
 *     and after each wake-up); nonzero asks the run to stop: no request
 *     starts any more, the ones in flight get grace_s seconds to finish (and
 *     reach on_answer), then rt_llm_run returns RT_ERR_INTERRUPTED with the
 *     unfinished calls marked not answered (not counted as failed). */
typedef struct rt_llm_hooks {
  void (*on_answer)(void *ud, size_t i, const rt_llm_answer *a);
  int (*poll)(void *ud);
  void *ud;
  double grace_s;
} rt_llm_hooks;

void rt_llm_set_hooks(rt_llm_client *c, const rt_llm_hooks *h);

/* 64-bit hash of the exact request a call produces (model id + body), the key
 * of the response cache: same key, same request. */
uint64_t rt_llm_request_key(const rt_llm_client *c, const rt_llm_call *call);

const rt_llm_stats *rt_llm_get_stats(const rt_llm_client *c);

/* llm.api = openai-batch | gemini-batch: rt_llm_run submits the calls as
 * provider batches and collects them (llm/batch.h); same contract. */
int rt_llm_client_batch(const rt_llm_client *c);
/* The batches of the last rt_llm_run (ids, states, times) as a JSON array
 * (new reference; llm/batch.h rt_batch_report), NULL for a synchronous
 * client. */
struct json_t;
struct json_t *rt_llm_batch_report(const rt_llm_client *c);

/* The endpoint URL requests go to (no key in it), for messages. */
const char *rt_llm_client_url(const rt_llm_client *c);
void rt_llm_answer_free(rt_llm_answer *a);
void rt_llm_client_free(rt_llm_client *c);

#endif
