/* ratelimit.h — pacing of LLM requests: token buckets for llm.rpm / llm.tpm,
 * the adaptive request rate after 429s (AIMD), exponential backoff with full
 * jitter from a seeded PRNG, and the share of the GLOBAL limits this rank may
 * use.
 *
 * The global limits are split equally over the ranks still calling; a rank
 * that finishes its calls announces it and the others take its share. The
 * announcement is a tiny point-to-point message (tag RT_LLM_SHARE_TAG on
 * MPI_COMM_WORLD) polled with MPI_Iprobe from the request loop: nothing
 * collective, so a rank may create a client, run it or not, in any order.
 * Without MPI (not initialised: unit tests, tools) the rank is alone. */
#ifndef RT_LLM_RATELIMIT_H
#define RT_LLM_RATELIMIT_H

#include "base/tags.h"

#include <stddef.h>
#include <stdint.h>

/* Reserved tag on MPI_COMM_WORLD for the share announcements. Code that
 * receives with MPI_ANY_TAG on MPI_COMM_WORLD would steal them. */
#define RT_LLM_SHARE_TAG RT_TAG_LLM_SHARE /* base/tags.h */

/* Token bucket: `rate` tokens per second up to `cap`. rate <= 0: unlimited. */
typedef struct rt_bucket {
  double rate, cap, level, last;
} rt_bucket;

void rt_bucket_init(rt_bucket *b, double rate, double cap, double now);
/* Change rate and capacity (a new share) keeping the current level. */
void rt_bucket_set_rate(rt_bucket *b, double rate, double cap, double now);
/* Take `amount` tokens if possible and return 0; else return the seconds
 * until they are there (nothing taken). An amount larger than the capacity
 * passes when the bucket is full and leaves it in debt, so it never blocks
 * forever. */
double rt_bucket_take(rt_bucket *b, double amount, double now);

/* Adaptive rate (AIMD, like TCP congestion control) for an endpoint that
 * answers 429 below the configured limits. The rank counts the responses the
 * endpoint accepted (any HTTP status but 429) in 100 ms bins over the last
 * second. A 429 for a request started after the last cut sets the rate to
 * 0.9 x min(accepted in the last second, current rate): the requests already
 * in flight under the old rate do not cut again (one decrease per window).
 * While the rate holds requests back and no 429 comes, it grows by 5% of
 * itself per second up to the ceiling (the rank's llm.rpm share; 0 = none).
 * A 429 with nothing accepted in the last second does not cut: the endpoint
 * takes nothing, so the caller pauses for Retry-After instead. Pure: time is
 * passed in, so tests drive it with synthetic clocks. */
#define RT_AIMD_DECREASE 0.9   /* cut to this fraction of the accepted rate */
#define RT_AIMD_INCREASE 0.05  /* growth per second, as a fraction of the rate */
#define RT_AIMD_MIN_RATE 1.0   /* requests/s: never cut below */

typedef struct rt_aimd {
  double rate;        /* requests/s; 0 = no 429 seen yet: not limited */
  double ceiling;     /* configured share, requests/s; 0 = none */
  double last_cut;    /* time of the last decrease (-1: never) */
  double last_tick;   /* time growth was last applied */
  int limited;        /* the rate held a request back since the last tick */
  int64_t bin;        /* index (time x 10) of the newest bin */
  uint32_t bins[10];  /* accepted responses per 100 ms, ring */
} rt_aimd;

enum { RT_AIMD_KEEP = 0, RT_AIMD_CUT = 1, RT_AIMD_NOTHING_ACCEPTED = 2 };

void rt_aimd_init(rt_aimd *a, double ceiling, double now);
/* The endpoint accepted a request (any response but a 429). */
void rt_aimd_accepted(rt_aimd *a, double now);
/* Accepted responses in the last second. */
uint32_t rt_aimd_accepted_last_s(rt_aimd *a, double now);
/* A 429 for a request started at `started`: RT_AIMD_CUT (the rate changed),
 * RT_AIMD_KEEP (the request predates the last cut) or
 * RT_AIMD_NOTHING_ACCEPTED (pause for Retry-After; rate unchanged). */
int rt_aimd_on_429(rt_aimd *a, double started, double now);
/* Apply growth (at most every 100 ms); returns 1 if the rate changed. */
int rt_aimd_tick(rt_aimd *a, double now);
/* The rate to pace at: min(rate, ceiling) of those set; 0 = unlimited. */
double rt_aimd_effective(const rt_aimd *a);

/* Evidence of a real rate limit (vs sporadic 429s). Hosted endpoints answer
 * 429 now and then whatever the rate (a busy shared capacity): such a 429
 * costs its own retry only. The rank's rate is lowered (rt_aimd_on_429) only
 * on evidence that the rate itself is refused:
 *   - the provider says a quota is exhausted (the caller checks: Gemini's
 *     RetryInfo in the 429 error);
 *   - or the last 2 s of responses hold at least RT_LIMIT_MIN_429 429s over
 *     at least `min_resp` responses, and the 429 share less two standard
 *     errors (sqrt(share (1 - share) / responses)) is above RT_LIMIT_SHARE.
 *     The caller passes min_resp = 2 x llm.concurrency (at most 1000). A 429
 *     comes back at once while answers take their latency, so until
 *     `settle_s` after the first response (the caller passes max(2 s, 4 x
 *     the median answer latency)) the share is biased up (20% at random
 *     looks like ~33% after one latency, ~25% after three) and must exceed
 *     RT_LIMIT_SHARE_EARLY instead;
 *   - once a limit was found (the rank paces at an adaptive rate) and the
 *     sporadic floor is known, when the share of the last 2 s exceeds the
 *     floor by 3 standard errors + 1 point. The floor is the lowest 429 share
 *     of the last five closed 2-s windows with >= 20 responses (the share at
 *     a rate under the limit); a floor under 0.5% means no sporadic 429s: any
 *     new 429 is evidence (the classic AIMD rule).
 * 20 bins of 100 ms. Pure: time is passed in. */
#define RT_LIMIT_SHARE 0.25
#define RT_LIMIT_SHARE_EARLY 0.5
#define RT_LIMIT_MIN_429 8
#define RT_LIMIT_FLOORS 5

typedef struct rt_win429 {
  int64_t bin;           /* index (time x 10) of the newest bin */
  uint32_t resp[20];     /* responses (any HTTP status) per 100 ms */
  uint32_t r429[20];     /* of which 429 (sporadic or limit; not quota 429s paced by headers) */
  double floors[RT_LIMIT_FLOORS]; /* shares of recent closed 2-s windows; < 0 = none */
  int nfloor;
  double closed_at;      /* when the last 2-s window was closed */
  double first;          /* time of the first response (-1: none yet) */
} rt_win429;

void rt_win429_init(rt_win429 *w, double now);
void rt_win429_add(rt_win429 *w, double now, int is429);
/* The last 2 s: responses, 429s. */
void rt_win429_get(rt_win429 *w, double now, uint32_t *resp, uint32_t *n429);
/* The sporadic floor (see above); 0 when no window was closed yet. */
double rt_win429_floor(const rt_win429 *w);
/* 1 when the last 2 s of responses are evidence of a rate limit. limited =
 * the rank already paces at an adaptive rate. */
int rt_win429_evidence(rt_win429 *w, double now, int limited, uint32_t min_resp, double settle_s);

/* A quota mirrored from the endpoint's headers (OpenAI x-ratelimit-limit-*,
 * -remaining-*, -reset-*): the refill rate is (limit - remaining) / reset;
 * the level is `remaining` less what this rank sent after the request the
 * response belongs to. Pacing on it keeps the rank under the quota, so the
 * 429s never come. Shared by the active ranks like llm.rpm. */
typedef struct rt_hdr_quota {
  double limit, remaining, reset_s; /* last values read; limit < 0: never seen */
  double rate;                      /* refill, units/s; 0 = unknown */
  uint64_t seq;                     /* start number of the request they came with */
} rt_hdr_quota;

/* OpenAI's reset durations, Go style: "12ms", "1.5s", "6m0s", "1h2m3.5s",
 * "250us", also a bare number of seconds. -1 when not one. */
double rt_parse_duration(const char *s);
/* Gemini's RetryInfo.retryDelay from a 429 error body (no JSON parse: a scan
 * for "google.rpc.RetryInfo" and its "retryDelay":"13s"); -1 when absent. */
double rt_retryinfo_delay(const char *body, size_t len);

/* splitmix64 stream: tiny, seedable, reproducible (backoff jitter). */
typedef struct rt_rng {
  uint64_t s;
} rt_rng;
static inline uint64_t rt_rng_next(rt_rng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
/* Uniform in [0, 1). */
static inline double rt_rng_unit(rt_rng *r) { return (double)(rt_rng_next(r) >> 11) * 0x1.0p-53; }

/* Full-jitter backoff before retry number `retry` (1 = first retry):
 * uniform in [0, min(cap, base * 2^(retry-1))). */
double rt_backoff_s(int retry, double base, double cap, rt_rng *r);

/* Which ranks are still calling, as this rank knows it. */
typedef struct rt_share {
  int mpi;                 /* 1 when MPI is initialised and not finalised */
  int rank, nranks;
  unsigned char *active;   /* [nranks] last state heard from each rank */
  int nactive;
  int me_active;           /* what this rank announced last (starts 1) */
  void *sends;             /* pending MPI_Request[] of announcements */
  size_t nsends, capsends;
  double last_poll;
} rt_share;

void rt_share_init(rt_share *s);
/* Announce that this rank starts (1) or stops (0) calling. */
void rt_share_set_active(rt_share *s, int active);
/* Receive the announcements that arrived; returns 1 if nactive changed. Cheap
 * enough to call every loop turn (rate-limited to one probe per 20 ms). */
int rt_share_poll(rt_share *s, double now);
void rt_share_free(rt_share *s);

#endif
