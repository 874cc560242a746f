/* ratelimit.c — token buckets, backoff, and the MPI share of global limits. */
#include "llm/ratelimit.h"

#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define RT_HAVE_MPI 1 /* ragtide_llm links MPI: only for the shared rate-limit budget */

void rt_bucket_init(rt_bucket *b, double rate, double cap, double now) {
  b->rate = rate;
  b->cap = cap > 0 ? cap : 1;
  b->level = b->cap; /* start full: one capacity of burst */
  b->last = now;
}

static void refill(rt_bucket *b, double now) {
  if (now > b->last) {
    b->level += (now - b->last) * b->rate;
    if (b->level > b->cap) b->level = b->cap;
  }
  b->last = now;
}

void rt_bucket_set_rate(rt_bucket *b, double rate, double cap, double now) {
  refill(b, now);
  b->rate = rate;
  b->cap = cap > 0 ? cap : 1;
  if (b->level > b->cap) b->level = b->cap;
}

double rt_bucket_take(rt_bucket *b, double amount, double now) {
  if (b->rate <= 0) return 0;
  refill(b, now);
  double need = amount < b->cap ? amount : b->cap;
  if (b->level >= need - 1e-9) {
    b->level -= amount;
    return 0;
  }
  return (need - b->level) / b->rate;
}

double rt_backoff_s(int retry, double base, double cap, rt_rng *r) {
  if (retry < 1) retry = 1;
  double ceil_s = retry > 60 ? cap : base * ldexp(1.0, retry - 1);
  if (ceil_s > cap) ceil_s = cap;
  return ceil_s * rt_rng_unit(r);
}

/* --- adaptive rate (AIMD) --------------------------------------------------- */

void rt_aimd_init(rt_aimd *a, double ceiling, double now) {
  memset(a, 0, sizeof *a);
  a->ceiling = ceiling > 0 ? ceiling : 0;
  a->last_cut = -1;
  a->last_tick = now;
  a->bin = (int64_t)floor(now * 10);
}

/* Move the ring to the bin of `now`, zeroing the bins that passed. */
static void advance(rt_aimd *a, double now) {
  int64_t b = (int64_t)floor(now * 10);
  if (b <= a->bin) return;
  int64_t steps = b - a->bin;
  if (steps > 10) steps = 10;
  for (int64_t i = 1; i <= steps; i++) a->bins[(a->bin + i) % 10] = 0;
  a->bin = b;
}

void rt_aimd_accepted(rt_aimd *a, double now) {
  advance(a, now);
  a->bins[a->bin % 10]++;
}

uint32_t rt_aimd_accepted_last_s(rt_aimd *a, double now) {
  advance(a, now);
  uint32_t s = 0;
  for (int i = 0; i < 10; i++) s += a->bins[i];
  return s;
}

double rt_aimd_effective(const rt_aimd *a) {
  if (a->rate > 0 && a->ceiling > 0) return fmin(a->rate, a->ceiling);
  return a->rate > 0 ? a->rate : a->ceiling;
}

int rt_aimd_on_429(rt_aimd *a, double started, double now) {
  if (a->last_cut >= 0 && started < a->last_cut) return RT_AIMD_KEEP;
  uint32_t acc = rt_aimd_accepted_last_s(a, now);
  if (acc == 0) return RT_AIMD_NOTHING_ACCEPTED;
  double base = (double)acc, cur = rt_aimd_effective(a);
  if (cur > 0 && cur < base) base = cur;
  a->rate = fmax(RT_AIMD_MIN_RATE, RT_AIMD_DECREASE * base);
  a->last_cut = now;
  a->last_tick = now;
  a->limited = 0;
  return RT_AIMD_CUT;
}

int rt_aimd_tick(rt_aimd *a, double now) {
  double dt = now - a->last_tick;
  if (dt < 0.1) return 0;
  a->last_tick = now;
  int grow = a->limited && a->rate > 0;
  a->limited = 0;
  if (!grow) return 0;
  if (dt > 1.0) dt = 1.0; /* a stalled loop is not a second of evidence */
  double r = a->rate * (1.0 + RT_AIMD_INCREASE * dt);
  if (a->ceiling > 0 && r >= a->ceiling) r = a->ceiling;
  if (r == a->rate) return 0;
  a->rate = r;
  return 1;
}

/* --- evidence of a rate limit ------------------------------------------------ */

void rt_win429_init(rt_win429 *w, double now) {
  memset(w, 0, sizeof *w);
  w->bin = (int64_t)floor(now * 10);
  w->closed_at = now;
  w->first = -1;
}

static void win_advance(rt_win429 *w, double now) {
  int64_t b = (int64_t)floor(now * 10);
  if (b > w->bin) {
    int64_t steps = b - w->bin;
    if (steps > 20) steps = 20;
    for (int64_t i = 1; i <= steps; i++) {
      w->resp[(w->bin + i) % 20] = 0;
      w->r429[(w->bin + i) % 20] = 0;
    }
    w->bin = b;
  }
}

static void win_sum(const rt_win429 *w, uint32_t *resp, uint32_t *n429) {
  uint32_t a = 0, b = 0;
  for (int i = 0; i < 20; i++) {
    a += w->resp[i];
    b += w->r429[i];
  }
  *resp = a;
  *n429 = b;
}

/* Close a 2-s window into the floor ring when 2 s passed since the last. */
static void win_close(rt_win429 *w, double now) {
  if (now - w->closed_at < 2.0) return;
  w->closed_at = now;
  uint32_t a, b;
  win_sum(w, &a, &b);
  if (a < 20) return;
  w->floors[w->nfloor % RT_LIMIT_FLOORS] = (double)b / (double)a;
  w->nfloor++;
}

void rt_win429_add(rt_win429 *w, double now, int is429) {
  if (w->first < 0) w->first = now;
  win_advance(w, now);
  win_close(w, now);
  w->resp[w->bin % 20]++;
  if (is429) w->r429[w->bin % 20]++;
}

void rt_win429_get(rt_win429 *w, double now, uint32_t *resp, uint32_t *n429) {
  win_advance(w, now);
  win_sum(w, resp, n429);
}

double rt_win429_floor(const rt_win429 *w) {
  int n = w->nfloor < RT_LIMIT_FLOORS ? w->nfloor : RT_LIMIT_FLOORS;
  if (n == 0) return 0;
  double m = 1;
  for (int i = 0; i < n; i++)
    if (w->floors[i] < m) m = w->floors[i];
  return m;
}

int rt_win429_evidence(rt_win429 *w, double now, int limited, uint32_t min_resp, double settle_s) {
  uint32_t resp, n429;
  rt_win429_get(w, now, &resp, &n429);
  if (n429 == 0 || resp == 0) return 0;
  double share = (double)n429 / (double)resp;
  if (limited && w->nfloor > 0) {
    double f = rt_win429_floor(w);
    if (f < 0.005) return 1;
    return share > f + 3.0 * sqrt(f * (1 - f) / (double)resp) + 0.01;
  }
  if (n429 < RT_LIMIT_MIN_429 || resp < min_resp) return 0;
  /* The share less two standard errors: a few dozen responses of an endpoint
   * that refuses 20% at random often hold 30% 429s. */
  double lo = share - 2.0 * sqrt(share * (1 - share) / (double)resp);
  /* Until the responses settled, a 429 comes back at once and an answer after
   * its latency, so the share is biased up (20% at random looks like 30%
   * during the first latencies): only a clear majority counts then. */
  return lo > RT_LIMIT_SHARE_EARLY || (lo > RT_LIMIT_SHARE && now - w->first >= settle_s);
}

/* --- provider signals ---------------------------------------------------------- */

double rt_parse_duration(const char *s) {
  if (!s) return -1;
  while (*s == ' ' || *s == '\t') s++;
  if (!*s) return -1;
  double total = 0;
  int parts = 0;
  while (*s && *s != ' ' && *s != '\r' && *s != '\n') {
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v >= 0) || !isfinite(v)) return -1;
    s = end;
    double unit;
    if (s[0] == 'm' && s[1] == 's') unit = 1e-3, s += 2;
    else if (s[0] == 'u' && s[1] == 's') unit = 1e-6, s += 2;
    else if ((unsigned char)s[0] == 0xc2 && (unsigned char)s[1] == 0xb5 && s[2] == 's') unit = 1e-6, s += 3;
    else if (s[0] == 'n' && s[1] == 's') unit = 1e-9, s += 2;
    else if (s[0] == 'h') unit = 3600, s += 1;
    else if (s[0] == 'm') unit = 60, s += 1;
    else if (s[0] == 's') unit = 1, s += 1;
    else if (!*s || *s == ' ' || *s == '\r' || *s == '\n') {
      if (parts) return -1; /* "1m30": the last number needs its unit */
      unit = 1;             /* a bare number: seconds */
    } else
      return -1;
    total += v * unit;
    parts++;
  }
  return total;
}

double rt_retryinfo_delay(const char *body, size_t len) {
  if (!body || !len) return -1;
  static const char tag[] = "google.rpc.RetryInfo", key[] = "\"retryDelay\"";
  const char *end = body + len;
  const char *p = memmem(body, len, tag, sizeof tag - 1);
  if (!p) return -1;
  /* retryDelay is a member of the same detail object: search a little
   * around the @type (members may come in any order). */
  const char *lo = p - 200 > body ? p - 200 : body;
  const char *hi = p + 200 < end ? p + 200 : end;
  const char *k = memmem(lo, (size_t)(hi - lo), key, sizeof key - 1);
  if (!k) return -1;
  k += sizeof key - 1;
  while (k < end && (*k == ' ' || *k == ':' || *k == '\n' || *k == '\t' || *k == '\r')) k++;
  if (k >= end || *k != '"') return -1;
  k++;
  const char *q = memchr(k, '"', (size_t)(end - k));
  if (!q || q - k > 30) return -1;
  char tmp[32];
  memcpy(tmp, k, (size_t)(q - k));
  tmp[q - k] = '\0';
  return rt_parse_duration(tmp);
}

/* --- share of the global limits ------------------------------------------ */

void rt_share_init(rt_share *s) {
  memset(s, 0, sizeof *s);
  s->rank = 0;
  s->nranks = 1;
  s->me_active = 1;
#if RT_HAVE_MPI
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  if (init) MPI_Finalized(&fin);
  if (init && !fin) {
    s->mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &s->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &s->nranks);
  }
#endif
  s->active = rt_xmalloc((size_t)s->nranks);
  memset(s->active, 1, (size_t)s->nranks); /* until told otherwise, everyone calls */
  s->nactive = s->nranks;
  s->last_poll = -1;
}

#if RT_HAVE_MPI
static void reap_sends(rt_share *s) {
  MPI_Request *r = s->sends;
  size_t w = 0;
  for (size_t i = 0; i < s->nsends; i++) {
    int done = 0;
    MPI_Test(&r[i], &done, MPI_STATUS_IGNORE);
    if (!done) r[w++] = r[i];
  }
  s->nsends = w;
}
#endif

void rt_share_set_active(rt_share *s, int active) {
  active = !!active;
  if (active == s->me_active) return;
  s->me_active = active;
  s->nactive += active ? 1 : -1;
  s->active[s->rank] = (unsigned char)active;
#if RT_HAVE_MPI
  if (!s->mpi || s->nranks < 2) return;
  reap_sends(s);
  static const int states[2] = {0, 1}; /* send buffers must outlive the Isend */
  size_t need = s->nsends + (size_t)s->nranks;
  if (need > s->capsends) {
    s->capsends = need * 2;
    s->sends = rt_xrealloc(s->sends, s->capsends * sizeof(MPI_Request));
  }
  MPI_Request *r = s->sends;
  for (int p = 0; p < s->nranks; p++) {
    if (p == s->rank) continue;
    MPI_Isend((void *)&states[active], 1, MPI_INT, p, RT_LLM_SHARE_TAG, MPI_COMM_WORLD, &r[s->nsends++]);
  }
#endif
}

int rt_share_poll(rt_share *s, double now) {
#if RT_HAVE_MPI
  if (!s->mpi || s->nranks < 2) return 0;
  if (s->last_poll >= 0 && now - s->last_poll < 0.02) return 0;
  s->last_poll = now;
  int before = s->nactive;
  for (;;) {
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, RT_LLM_SHARE_TAG, MPI_COMM_WORLD, &flag, &st);
    if (!flag) break;
    int v = 0;
    MPI_Recv(&v, 1, MPI_INT, st.MPI_SOURCE, RT_LLM_SHARE_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    int src = st.MPI_SOURCE;
    if (src < 0 || src >= s->nranks || src == s->rank) continue;
    v = !!v;
    if (s->active[src] != v) {
      s->active[src] = (unsigned char)v;
      s->nactive += v ? 1 : -1;
    }
  }
  if (s->nsends) reap_sends(s);
  return s->nactive != before;
#else
  (void)s;
  (void)now;
  return 0;
#endif
}

void rt_share_free(rt_share *s) {
#if RT_HAVE_MPI
  if (s->mpi && s->nsends) {
    int fin = 0;
    MPI_Finalized(&fin);
    /* Small sends complete on their own; freeing the handles lets them. */
    if (!fin) {
      MPI_Request *r = s->sends;
      for (size_t i = 0; i < s->nsends; i++) MPI_Request_free(&r[i]);
    }
  }
#endif
  free(s->sends);
  free(s->active);
  memset(s, 0, sizeof *s);
}
