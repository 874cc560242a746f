/* ragtide-gen-logs — deterministic synthetic catalog and event shards for
 * tests and benchmarks (model: docs/formats.md §2 "Synthetic logs").
 *
 * Everything is a pure function of (flags, seed): each user-day draws from a
 * counter-based hash stream, the per-user Markov state carries over from the
 * previous day, and zstd runs single-threaded at level 3, so equal flags give
 * byte-identical files. Users are processed in blocks whose events are
 * radix-sorted by time, so shards interleave users as real logs do while
 * memory stays bounded. */
#include "base/err.h"
#include "base/log.h"
#include "base/util.h"
#include "format/catalog.h"
#include "format/events.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char USAGE[] =
    "usage: ragtide-gen-logs --clusters N --users U --days D --seed S --out DIR [options]\n"
    "\n"
    "Writes DIR/catalog.tsv and DIR/logs/YYYY-MM-DD/part-KKKK.<ext>: synthetic watch events\n"
    "for tests and benchmarks. Same flags -> byte-identical files.\n"
    "\n"
    "  --clusters N              clusters in the catalog (4..1000000); required\n"
    "  --users U                 users (>= 1); required unless --only-catalog\n"
    "  --days D                  days of logs (>= 1); required unless --only-catalog\n"
    "  --seed S                  unsigned 64-bit seed; default 1\n"
    "  --out DIR                 output directory (created if missing); required\n"
    "  --start YYYY-MM-DD        first day (UTC); default 2026-01-01\n"
    "  --shards-per-day K        shards per day (1..9999); default 4\n"
    "  --events-per-user-day E   mean events per user and day (1..100000); default 8\n"
    "  --format F                msgpack.zst (default) | msgpack | tsv | tsv.zst\n"
    "  --threads T               worker threads (1..64; default: online CPUs); shards are\n"
    "                            split between threads, the files do not depend on T\n"
    "  --only-catalog            write only DIR/catalog.tsv\n"
    "  -h, --help                this text\n"
    "\n"
    "Catalog: ids are distinct hashed 32-bit values (not dense, not sorted by line);\n"
    "descriptions are 2-4 keywords from a built-in vocabulary, unique once normalised.\n"
    "\n"
    "Event model (each user, every day):\n"
    "  * events per user-day: uniform in [E - E/2, E + E/2] (mean E); each user-day goes to\n"
    "    shard hash(user, day) mod K, so a user's stream is spread over shards across days;\n"
    "  * timestamps increase within the day: gaps of 20 s..15 min inside a session (85%),\n"
    "    30 min..4.5 h between sessions (14%), 0 s (1%: same-second events);\n"
    "  * clusters follow a second-order Markov chain over the last two distinct clusters\n"
    "    (c1, c2), carried over from day to day:\n"
    "      10%  repeat c2 (a consecutive repeat);\n"
    "      60%  one of 3 favoured successors of (c1, c2) (weights 0.5/0.3/0.2), distinct from\n"
    "           c1 and c2, drawn by hash(seed, c1, c2, epoch) with epoch = day / 7; on day\n"
    "           o (0..6) of an epoch the current epoch's set is used with probability\n"
    "           (o+1)/8, else the previous epoch's, so preferences drift gradually;\n"
    "      30%  a popularity-biased random cluster (Zipf, exponent 1, over a hashed ranking);\n"
    "  * engagement: 20% uniform in [0, 0.5), 80% in [0.5, 1], multiples of 1/128;\n"
    "  * user ids: a bijective 64-bit hash of the user number (large, unique).\n"
    "Exit codes: 0 ok, 2 usage, 6 output error (see README \"Exit codes\").\n";

/* ---- vocabulary --------------------------------------------------------- */

static const char *const VOCAB[] = {
    "jazz", "piano", "guitar", "drums", "opera", "hip hop", "techno", "ambient", "folk", "blues",
    "rock", "metal", "punk", "reggae", "soul", "funk", "country", "classical", "choir", "lofi",
    "cooking", "baking", "street food", "vegan", "barbecue", "coffee", "tea", "wine", "cocktails", "sushi",
    "pasta", "curry", "desserts", "breakfast", "grilling", "fermentation", "travel", "hiking", "camping",
    "cycling", "running", "yoga", "climbing", "surfing", "skiing", "sailing", "fishing", "gardening",
    "woodworking", "pottery", "knitting", "painting", "drawing", "photography", "film", "animation",
    "anime", "comics", "poetry", "theatre", "dance", "stand up", "comedy", "pranks", "magic", "puzzles",
    "chess", "board games", "speedrun", "strategy", "racing", "football", "basketball", "tennis",
    "cricket", "boxing", "wrestling", "esports", "retro", "vintage", "fashion", "makeup", "skincare",
    "hair", "tattoos", "sneakers", "watches", "cars", "motorcycles", "trains", "aviation", "space",
    "astronomy", "physics", "chemistry", "biology", "math", "history", "archaeology", "geography",
    "languages", "linguistics", "philosophy", "psychology", "economics", "finance", "investing",
    "crypto", "startups", "productivity", "minimalism", "interior", "architecture", "diy", "repair",
    "electronics", "robots", "coding", "linux", "gadgets", "smartphones", "reviews", "unboxing", "asmr",
    "meditation", "sleep", "fitness", "nutrition", "medicine", "parenting", "pets", "dogs", "cats",
    "birds", "horses", "wildlife", "ocean", "forests", "weather", "volcanoes", "true crime", "mystery",
    "horror", "fantasy", "sci fi", "romance", "drama", "documentary", "news", "politics", "late night",
    "podcasts", "interviews", "kids", "teens", "nostalgia", "tutorials", "beginners", "advanced",
    "relaxing", "intense", "funny", "wholesome", "spooky", "cozy", "outdoor", "urban", "rural",
    "islands", "deserts", "mountains", "winter", "summer", "holidays", "weddings", "festivals",
    "concerts", "live", "covers", "remixes", "karaoke", "vlogs", "challenges", "experiments",
};
#define NVOCAB (sizeof VOCAB / sizeof VOCAB[0])

/* ---- hashing helpers ---------------------------------------------------- */

static inline uint64_t h2(uint64_t a, uint64_t b) { return rt_mix64(a ^ rt_mix64(b)); }
static inline uint64_t h3(uint64_t a, uint64_t b, uint64_t c) { return h2(h2(a, b), c); }
/* Uniform in [0, n) from the top 32 bits (multiply-shift, no division). */
static inline uint32_t below(uint64_t h, uint32_t n) { return (uint32_t)(((h >> 32) * (uint64_t)n) >> 32); }
/* Uniform in [0, 2^16) from other bits, for probabilities in 1/65536 steps. */
static inline uint32_t p16(uint64_t h) { return (uint32_t)(h >> 8) & 0xffff; }

typedef struct { uint64_t s; } rng;
static inline uint64_t next(rng *g) { return rt_mix64(g->s++); }

/* ---- catalog ------------------------------------------------------------ */

static int make_catalog(uint32_t n, uint64_t seed, rt_catalog *cat, rt_err *err) {
  uint32_t *ids = rt_xmalloc(n * sizeof *ids);
  char **desc = rt_xmalloc(n * sizeof *desc);
  /* open-addressing sets for ids and normalised-description hashes */
  uint32_t cap = 16;
  while (cap < 2 * n) cap *= 2;
  uint32_t *idset = rt_xcalloc(cap, sizeof *idset);
  uint8_t *iduse = rt_xcalloc(cap, 1);
  uint64_t *dset = rt_xcalloc(cap, sizeof *dset);
  uint32_t *didx = rt_xcalloc(cap, sizeof *didx);
  char **norm = rt_xmalloc(n * sizeof *norm);
  char buf[256], nb[256];
  for (uint32_t i = 0; i < n; i++) {
    for (uint64_t attempt = 0;; attempt++) {
      uint32_t id = (uint32_t)h3(seed, 0x1d5, ((uint64_t)i << 20) + attempt);
      uint32_t s = (uint32_t)rt_mix64(id) & (cap - 1);
      while (iduse[s] && idset[s] != id) s = (s + 1) & (cap - 1);
      if (iduse[s]) continue;
      iduse[s] = 1;
      idset[s] = id;
      ids[i] = id;
      break;
    }
    for (uint64_t attempt = 0;; attempt++) {
      rng g = {h3(seed, 0xde5c, ((uint64_t)i << 20) + attempt)};
      uint32_t k = 2 + below(next(&g), 3), w[4];
      size_t len = 0;
      for (uint32_t j = 0; j < k; j++) {
        int again;
        do {
          w[j] = below(next(&g), (uint32_t)NVOCAB);
          again = 0;
          for (uint32_t q = 0; q < j; q++) again |= w[q] == w[j];
        } while (again);
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", j ? ", " : "", VOCAB[w[j]]);
      }
      rt_normalize_desc(buf, nb, sizeof nb);
      uint64_t hh = rt_hash_bytes(nb, strlen(nb)) | 1; /* 0 marks an empty slot */
      uint32_t s = (uint32_t)hh & (cap - 1);
      int dup = 0;
      while (dset[s]) {
        if (dset[s] == hh && strcmp(norm[didx[s]], nb) == 0) {
          dup = 1;
          break;
        }
        s = (s + 1) & (cap - 1);
      }
      if (dup) continue;
      dset[s] = hh;
      didx[s] = i;
      norm[i] = rt_xstrdup(nb);
      desc[i] = rt_xstrdup(buf);
      break;
    }
  }
  int rc = rt_catalog_build(ids, (const char *const *)desc, n, "generated catalog", cat, err);
  for (uint32_t i = 0; i < n; i++) {
    free(desc[i]);
    free(norm[i]);
  }
  free(desc);
  free(norm);
  free(ids);
  free(idset);
  free(iduse);
  free(dset);
  free(didx);
  return rc;
}

/* ---- popularity: Zipf(1) via Vose's alias method ----------------------- */

typedef struct {
  uint32_t n;
  uint32_t *thresh; /* keep i if a 32-bit coin < thresh[i], else take alias[i] */
  uint32_t *alias;
} zipf;

static void zipf_init(zipf *z, uint32_t n) {
  z->n = n;
  z->thresh = rt_xmalloc(n * sizeof *z->thresh);
  z->alias = rt_xmalloc(n * sizeof *z->alias);
  double *p = rt_xmalloc(n * sizeof *p), sum = 0;
  for (uint32_t i = 0; i < n; i++) sum += 1.0 / (double)(i + 1);
  for (uint32_t i = 0; i < n; i++) p[i] = (double)n / ((double)(i + 1) * sum);
  uint32_t *small = rt_xmalloc(n * sizeof *small), *large = rt_xmalloc(n * sizeof *large);
  uint32_t ns = 0, nl = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (p[i] < 1.0) small[ns++] = i;
    else large[nl++] = i;
  }
  while (ns && nl) {
    uint32_t s = small[--ns], l = large[nl - 1];
    z->thresh[s] = p[s] >= 1.0 ? UINT32_MAX : (uint32_t)(p[s] * 4294967296.0);
    z->alias[s] = l;
    p[l] -= 1.0 - p[s];
    if (p[l] < 1.0) {
      nl--;
      small[ns++] = l;
    }
  }
  while (nl) {
    uint32_t l = large[--nl];
    z->thresh[l] = UINT32_MAX;
    z->alias[l] = l;
  }
  while (ns) { /* rounding leftovers */
    uint32_t s = small[--ns];
    z->thresh[s] = UINT32_MAX;
    z->alias[s] = s;
  }
  free(p);
  free(small);
  free(large);
}

static inline uint32_t zipf_draw(const zipf *z, uint64_t h) {
  uint32_t i = below(h, z->n);
  return (uint32_t)h < z->thresh[i] ? i : z->alias[i];
}

/* ---- the walk ------------------------------------------------------------ */

typedef struct {
  uint64_t seed;
  uint32_t n;          /* clusters */
  const uint32_t *id;  /* generation index -> external id */
  zipf z;
} model;

/* j-th favoured successor of (c1, c2) in an epoch: distinct from c1, c2 and
 * the earlier favoured ones (linear probing over generation indices). */
static uint32_t favoured(const model *m, uint32_t c1, uint32_t c2, int64_t epoch, uint32_t j) {
  uint32_t f[3];
  uint64_t base = h3(m->seed ^ 0xfa70, ((uint64_t)c1 << 32) | c2, (uint64_t)epoch);
  for (uint32_t q = 0; q <= j; q++) {
    uint32_t x = below(rt_mix64(base + q), m->n);
    for (uint32_t tries = 0; tries < m->n; tries++) {
      int clash = x == c1 || x == c2;
      for (uint32_t r = 0; r < q; r++) clash |= x == f[r];
      if (!clash) break;
      x = x + 1 == m->n ? 0 : x + 1;
    }
    f[q] = x;
  }
  return f[j];
}

typedef struct { uint32_t c1, c2; } ustate;

typedef struct {
  const char *out, *fmt_ext;
  uint32_t clusters, shards;
  uint64_t users, days, seed, per_day;
  int64_t start;
  uint32_t threads;
  int only_catalog;
} opts;

static int mkdir_p(const char *path, rt_err *err) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
      return rt_err_set(err, RT_ERR_OUTPUT, "cannot create directory %s: %s", tmp, strerror(errno));
    *p = '/';
  }
  if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot create directory %s: %s", tmp, strerror(errno));
  return RT_OK;
}

/* Stable LSD radix sort of a block by second-of-day (< 2^18): two 9-bit
 * passes, ev -> tmp -> ev, so no copy back is needed. */
static void sort_by_time(rt_event *ev, rt_event *tmp, size_t n, int64_t day0) {
  size_t cnt[512];
  rt_event *src = ev, *dst = tmp;
  for (int pass = 0; pass < 2; pass++) {
    int sh = pass * 9;
    memset(cnt, 0, sizeof cnt);
    for (size_t i = 0; i < n; i++) cnt[((uint64_t)(src[i].ts - day0) >> sh) & 511]++;
    size_t sum = 0;
    for (int b = 0; b < 512; b++) {
      size_t c = cnt[b];
      cnt[b] = sum;
      sum += c;
    }
    for (size_t i = 0; i < n; i++) dst[cnt[((uint64_t)(src[i].ts - day0) >> sh) & 511]++] = src[i];
    rt_event *t = src;
    src = dst;
    dst = t;
  }
}

/* One day's work, shared by the threads. Thread t owns the shards k with
 * k % nthreads == t: it generates exactly the users that hash to those shards
 * on this day and is the only one touching their state and writers, so the
 * bytes of every shard do not depend on the number of threads. */
typedef struct {
  const opts *o;
  const model *m;
  ustate *st;
  rt_event_writer **w;
  uint64_t d;
  uint32_t nthreads;
} day_job;

typedef struct {
  const day_job *job;
  uint32_t t;
  uint64_t events;
  int rc;
  rt_err err;
} day_worker;

static void *run_day(void *arg) {
  day_worker *dw = arg;
  const day_job *j = dw->job;
  const opts *o = j->o;
  const model *m = j->m;
  uint64_t E = o->per_day, lo = E - E / 2, span_n = 2 * (E / 2) + 1; /* count in [lo, lo+span_n) */
  uint64_t maxn = lo + span_n - 1;
  /* Block: about 64k events of buffer per shard whatever E is; each block is
   * sorted by time so users interleave in a shard as in real logs. */
  uint64_t block = 65536 / maxn;
  if (block < 1) block = 1;
  if (block > 4096) block = 4096;
  size_t cap = (size_t)(block * maxn);
  uint32_t nown = (o->shards - dw->t + j->nthreads - 1) / j->nthreads;
  rt_event **sb = rt_xcalloc(nown, sizeof *sb);
  size_t *sn = rt_xcalloc(nown, sizeof *sn);
  for (uint32_t i = 0; i < nown; i++) sb[i] = rt_xmalloc(cap * sizeof **sb);
  rt_event *tmp = rt_xmalloc(cap * sizeof *tmp);
  uint32_t *gap = rt_xmalloc(maxn * sizeof *gap);
  uint64_t d = j->d;
  int64_t day0 = o->start + (int64_t)d * 86400;
  int64_t epoch = (int64_t)(d / 7);
  uint32_t p_new = (uint32_t)(((d % 7) + 1) * 65536 / 8);
  dw->rc = RT_OK;
  for (uint64_t u0 = 0; u0 < o->users && dw->rc == RT_OK; u0 += block) {
    uint64_t u1 = u0 + block < o->users ? u0 + block : o->users;
    for (uint64_t u = u0; u < u1; u++) {
      uint64_t user = rt_mix64(u + o->seed * 0x2545f4914f6cdd1dULL);
      uint32_t k = (uint32_t)(rt_mix64(user ^ ((d + 1) * 0x9e3779b97f4a7c15ULL)) % o->shards);
      if (k % j->nthreads != dw->t) continue;
      uint32_t ki = k / j->nthreads;
      rng g = {h3(m->seed, u, d)};
      uint64_t n = lo + next(&g) % span_n;
      /* gaps first, so the day's span is known and the start fits the day */
      uint64_t span = 0;
      for (uint64_t i = 1; i < n; i++) {
        uint64_t h = next(&g);
        uint32_t p = p16(h);
        gap[i] = p < 655 ? 0 : p < 65536 - 9175 ? 20 + below(h, 881) : 1800 + below(h, 14401);
        span += gap[i];
      }
      if (span >= 86400) { /* too long for one day: squeeze every gap proportionally */
        uint64_t s2 = 0;
        for (uint64_t i = 1; i < n; i++) s2 += gap[i] = (uint32_t)((uint64_t)gap[i] * 86000 / span);
        span = s2;
      }
      int64_t ts = day0 + (int64_t)(next(&g) % (86400 - span));
      ustate *s = &j->st[u];
      rt_event *out = sb[ki] + sn[ki];
      for (uint64_t i = 0; i < n; i++) {
        if (i) ts += gap[i];
        uint32_t p = p16(next(&g)), c;
        if (p < 6554) { /* 10%: consecutive repeat */
          c = s->c2;
        } else if (p < 6554 + 39322) { /* 60%: a favoured successor, this or last epoch's */
          uint64_t hf = next(&g);
          int64_t ep = p16(hf) < p_new ? epoch : epoch - 1;
          uint32_t q = p16(hf >> 16);
          c = favoured(m, s->c1, s->c2, ep, q < 32768 ? 0 : q < 32768 + 19661 ? 1 : 2);
        } else { /* 30%: popular-biased random */
          c = zipf_draw(&m->z, next(&g));
        }
        if (c != s->c2) { /* the state is the last two distinct clusters */
          s->c1 = s->c2;
          s->c2 = c;
        }
        uint64_t he = next(&g);
        uint32_t eq = below(he, 100) < 20 ? below(he << 32, 64) : 64 + below(he << 32, 65);
        out[i].user = user;
        out[i].ts = ts;
        out[i].cluster = m->id[c];
        out[i].engagement = (float)eq / 128.0f;
      }
      sn[ki] += n;
    }
    for (uint32_t i = 0; i < nown && dw->rc == RT_OK; i++) {
      sort_by_time(sb[i], tmp, sn[i], day0);
      dw->rc = rt_events_write(j->w[dw->t + i * j->nthreads], sb[i], sn[i], &dw->err);
      dw->events += sn[i];
      sn[i] = 0;
    }
  }
  for (uint32_t i = 0; i < nown; i++) free(sb[i]);
  free(sb);
  free(sn);
  free(tmp);
  free(gap);
  return NULL;
}

static int gen_logs(const opts *o, const model *m, uint64_t *total, rt_err *err) {
  uint32_t nt = o->threads < o->shards ? o->threads : o->shards;
  rt_event_writer **w = rt_xcalloc(o->shards, sizeof *w);
  ustate *st = rt_xmalloc(o->users * sizeof *st);
  day_worker *dw = rt_xcalloc(nt, sizeof *dw);
  pthread_t *tid = rt_xcalloc(nt, sizeof *tid);
  for (uint64_t u = 0; u < o->users; u++) {
    rng g = {h3(m->seed, 0x57a7e, u)};
    st[u].c1 = zipf_draw(&m->z, next(&g));
    do st[u].c2 = zipf_draw(&m->z, next(&g)); while (st[u].c2 == st[u].c1);
  }
  int rc = RT_OK;
  *total = 0;
  char path[4096];
  for (uint64_t d = 0; d < o->days && rc == RT_OK; d++) {
    int64_t day0 = o->start + (int64_t)d * 86400;
    char date[32];
    rt_format_utc(day0, date, sizeof date);
    date[10] = '\0';
    snprintf(path, sizeof path, "%s/logs/%s", o->out, date);
    if ((rc = mkdir_p(path, err))) break;
    for (uint32_t k = 0; k < o->shards && rc == RT_OK; k++) {
      snprintf(path, sizeof path, "%s/logs/%s/part-%04u.%s", o->out, date, k, o->fmt_ext);
      rc = rt_events_create(path, 3, &w[k], err);
    }
    day_job job = {o, m, st, w, d, nt};
    for (uint32_t t = 0; t < nt && rc == RT_OK; t++) {
      dw[t] = (day_worker){.job = &job, .t = t};
      if (t > 0 && pthread_create(&tid[t], NULL, run_day, &dw[t]) != 0) {
        rc = rt_err_set(err, RT_ERR_INTERNAL, "cannot start a worker thread (try --threads 1)");
        nt = t; /* join the ones already started */
      }
    }
    if (rc == RT_OK) run_day(&dw[0]);
    for (uint32_t t = 1; t < nt; t++) pthread_join(tid[t], NULL);
    for (uint32_t t = 0; t < nt; t++) {
      *total += dw[t].events;
      if (rc == RT_OK && dw[t].rc != RT_OK) {
        rc = dw[t].rc;
        if (err) *err = dw[t].err;
      }
    }
    for (uint32_t k = 0; k < o->shards; k++) {
      if (!w[k]) continue;
      if (rc == RT_OK) rc = rt_events_finish(w[k], err);
      else rt_events_abort(w[k]);
      w[k] = NULL;
    }
  }
  free(w);
  free(st);
  free(dw);
  free(tid);
  return rc;
}

/* ---- command line ------------------------------------------------------- */

static int parse_u64_arg(const char *flag, const char *v, uint64_t lo, uint64_t hi, uint64_t *out) {
  char *end;
  errno = 0;
  if (!v || !*v || *v == '-') goto bad;
  unsigned long long x = strtoull(v, &end, 10);
  if (*end || errno || x < lo || x > hi) goto bad;
  *out = x;
  return 0;
bad:
  fprintf(stderr, "ragtide-gen-logs: %s \"%s\" must be an integer in %llu..%llu (see --help)\n", flag,
          v ? v : "", (unsigned long long)lo, (unsigned long long)hi);
  return -1;
}

int main(int argc, char **argv) {
  rt_log_set_rank(-1);
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  opts o = {.seed = 1, .shards = 4, .per_day = 8, .fmt_ext = "msgpack.zst",
            .threads = ncpu > 1 ? (uint32_t)(ncpu < 64 ? ncpu : 64) : 1};
  const char *start = "2026-01-01";
  uint64_t v;
  int have_users = 0, have_days = 0, have_clusters = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(USAGE, stdout);
      return RT_OK;
    } else if (!strcmp(a, "--only-catalog")) {
      o.only_catalog = 1;
      continue;
    }
    if (strncmp(a, "--", 2) != 0) {
      fprintf(stderr, "ragtide-gen-logs: unexpected argument \"%s\" (see --help)\n", a);
      return RT_ERR_USAGE;
    }
    if (!val) {
      fprintf(stderr, "ragtide-gen-logs: %s needs a value (see --help)\n", a);
      return RT_ERR_USAGE;
    }
    i++;
    if (!strcmp(a, "--clusters")) {
      if (parse_u64_arg(a, val, 4, RT_CATALOG_MAX, &v)) return RT_ERR_USAGE;
      o.clusters = (uint32_t)v;
      have_clusters = 1;
    } else if (!strcmp(a, "--users")) {
      if (parse_u64_arg(a, val, 1, 1000000000ULL, &o.users)) return RT_ERR_USAGE;
      have_users = 1;
    } else if (!strcmp(a, "--days")) {
      if (parse_u64_arg(a, val, 1, 36500, &o.days)) return RT_ERR_USAGE;
      have_days = 1;
    } else if (!strcmp(a, "--seed")) {
      if (parse_u64_arg(a, val, 0, UINT64_MAX, &o.seed)) return RT_ERR_USAGE;
    } else if (!strcmp(a, "--out")) {
      o.out = val;
    } else if (!strcmp(a, "--start")) {
      start = val;
    } else if (!strcmp(a, "--shards-per-day")) {
      if (parse_u64_arg(a, val, 1, 9999, &v)) return RT_ERR_USAGE;
      o.shards = (uint32_t)v;
    } else if (!strcmp(a, "--threads")) {
      if (parse_u64_arg(a, val, 1, 64, &v)) return RT_ERR_USAGE;
      o.threads = (uint32_t)v;
    } else if (!strcmp(a, "--events-per-user-day")) {
      if (parse_u64_arg(a, val, 1, 100000, &o.per_day)) return RT_ERR_USAGE;
    } else if (!strcmp(a, "--format")) {
      if (strcmp(val, "msgpack.zst") && strcmp(val, "msgpack") && strcmp(val, "tsv") &&
          strcmp(val, "tsv.zst")) {
        fprintf(stderr, "ragtide-gen-logs: --format \"%s\" must be msgpack.zst, msgpack, tsv or tsv.zst\n",
                val);
        return RT_ERR_USAGE;
      }
      o.fmt_ext = val;
    } else {
      fprintf(stderr, "ragtide-gen-logs: unknown flag %s (see --help)\n", a);
      return RT_ERR_USAGE;
    }
  }
  if (!o.out || !have_clusters || (!o.only_catalog && (!have_users || !have_days))) {
    fprintf(stderr, "ragtide-gen-logs: --out and --clusters are required, and --users and --days unless "
                    "--only-catalog (see --help)\n");
    return RT_ERR_USAGE;
  }
  if (rt_parse_utc(start, &o.start) != 0 || o.start % 86400 != 0) {
    fprintf(stderr, "ragtide-gen-logs: --start \"%s\" is not a UTC date YYYY-MM-DD\n", start);
    return RT_ERR_USAGE;
  }
  rt_err err = {0};
  double t0 = rt_now();
  int rc = mkdir_p(o.out, &err);
  rt_catalog cat = {0};
  if (rc == RT_OK) rc = make_catalog(o.clusters, o.seed, &cat, &err);
  char path[4096];
  snprintf(path, sizeof path, "%s/catalog.tsv", o.out);
  if (rc == RT_OK) rc = rt_catalog_write(&cat, path, &err);
  uint64_t total = 0;
  double t1 = rt_now();
  if (rc == RT_OK && !o.only_catalog) {
    /* Popularity ranks and walk states use generation order; the file ids are hashed. */
    model m = {.seed = o.seed, .n = o.clusters};
    uint32_t *gen_id = rt_xmalloc(o.clusters * sizeof *gen_id);
    for (uint32_t i = 0; i < o.clusters; i++) gen_id[i] = cat.ids[i];
    /* shuffle dense order into a hashed popularity order (Fisher-Yates, seeded) */
    for (uint32_t i = o.clusters - 1; i > 0; i--) {
      uint32_t j = below(h3(o.seed, 0x5f1e, i), i + 1), t = gen_id[i];
      gen_id[i] = gen_id[j];
      gen_id[j] = t;
    }
    m.id = gen_id;
    zipf_init(&m.z, o.clusters);
    snprintf(path, sizeof path, "%s/logs", o.out);
    rc = mkdir_p(path, &err);
    if (rc == RT_OK) rc = gen_logs(&o, &m, &total, &err);
    free(gen_id);
    free(m.z.thresh);
    free(m.z.alias);
  }
  rt_catalog_free(&cat);
  if (rc != RT_OK) {
    fprintf(stderr, "ragtide-gen-logs: %s\n", err.msg);
    return rc;
  }
  double t2 = rt_now();
  if (o.only_catalog)
    rt_info("wrote %s/catalog.tsv (%u clusters) in %.2f s", o.out, o.clusters, t1 - t0);
  else
    rt_info("wrote %s: %u clusters, %llu events in %llu x %u shards (%s) in %.2f s (%.2f M events/s)", o.out,
            o.clusters, (unsigned long long)total, (unsigned long long)o.days, o.shards, o.fmt_ext, t2 - t0,
            t2 > t1 ? (double)total / (t2 - t1) / 1e6 : 0.0);
  return RT_OK;
}
