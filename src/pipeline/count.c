/* count.c — pre-aggregate, exchange and reduce triple counts. */
#include "pipeline/count.h"
#include "pipeline/progress.h"
#include "base/metrics.h"
#include "base/tags.h"
#include "pipeline/collective.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ---- the counter ---------------------------------------------------------
 * Why this shape: one record per triple is appended (sequential writes, no
 * hash probing) and the buffer is sorted and run-length merged whenever it
 * fills, so memory follows the distinct (triple, day) records, not the
 * events. When the fields fit (3 x bits(clusters) + bits(2 x days) <= 64,
 * e.g. 10,000 clusters over two years), a triple, its day and window are
 * bit-packed into one 64-bit key, c1 highest, which keeps the (c1, c2,
 * c_next, day, win) order: the buffer holds 8-byte keys instead of 24-byte
 * records, and decoding is shifts. Larger catalogs use rt_count records and
 * rt_counts_reduce. */

typedef struct {
  uint64_t k, n;
} kn;
typedef RT_VEC(kn) kn_vec;

struct rt_counter {
  int compact;
  unsigned cb, db;    /* bits per cluster index, bits of (day - day_lo) << 1 | win */
  int32_t day_lo;
  RT_VEC(uint64_t) raw; /* compact keys, one per triple, unsorted */
  uint64_t *scratch;    /* the sort's buffer, raw.cap keys, kept between flushes */
  size_t scratch_cap;
  kn_vec agg;           /* sorted, unique */
  kn_vec spare;         /* the previous agg buffer, reused as the next merge's output */
  kn_vec extra;         /* weighted adds (n > 1), unsorted */
  rt_count_vec wide;    /* non-compact mode */
  size_t limit;
  rt_runs *spill;       /* set: agg beyond spill_at records becomes a run there */
  size_t spill_at;
  int rc;               /* a failed spill: reported by rt_counter_finish */
  rt_err err;
};

#define COUNTER_LIMIT (16u << 20) /* 128 MiB of keys before a compaction */

static unsigned bits_for(uint64_t values) { /* bits to hold 0 .. values-1 */
  unsigned b = 0;
  while (b < 64 && ((uint64_t)1 << b) < values) b++;
  return b;
}

rt_counter *rt_counter_new(uint32_t ncl, int32_t day_lo, int32_t day_hi) {
  rt_counter *h = rt_xcalloc(1, sizeof *h);
  uint64_t span = day_hi >= day_lo ? (uint64_t)(day_hi - day_lo) + 1 : 1;
  h->day_lo = day_lo;
  h->cb = bits_for(ncl ? ncl : 1);
  h->db = bits_for(2 * span);
  h->compact = 3 * h->cb + h->db <= 64;
  h->limit = COUNTER_LIMIT;
  return h;
}

static inline uint64_t encode(const rt_counter *h, uint64_t key, int32_t day, uint32_t win) {
  uint64_t c1 = key >> 40, c2 = (key >> 20) & RT_KEY_MASK, c3 = key & RT_KEY_MASK;
  uint64_t d = ((uint64_t)(day - h->day_lo) << 1) | (win & 1);
  return (((c1 << h->cb | c2) << h->cb | c3) << h->db) | d;
}

static inline rt_count decode(const rt_counter *h, kn e) {
  uint64_t x = e.k, cm = ((uint64_t)1 << h->cb) - 1, d = x & (((uint64_t)1 << h->db) - 1);
  x >>= h->db;
  uint64_t c3 = x & cm, c2 = (x >> h->cb) & cm, c1 = x >> (2 * h->cb);
  return (rt_count){rt_triple_key((uint32_t)c1, (uint32_t)c2, (uint32_t)c3), h->day_lo + (int32_t)(d >> 1),
                    (uint32_t)(d & 1), e.n};
}

/* LSD radix sort of a[0..n) on its low `bits` bits, 8-bit digits, through
 * tmp; result in a. For cache-sized pieces. */
static void lsd_small(uint64_t *a, size_t n, uint64_t *tmp, int bits) {
  if (n < 48) { /* insertion sort */
    for (size_t i = 1; i < n; i++) {
      uint64_t x = a[i];
      size_t j = i;
      for (; j > 0 && a[j - 1] > x; j--) a[j] = a[j - 1];
      a[j] = x;
    }
    return;
  }
  uint64_t *src = a, *dst = tmp;
  for (int shift = 0; shift < bits; shift += 8) {
    uint32_t cnt[256] = {0};
    for (size_t i = 0; i < n; i++) cnt[(src[i] >> shift) & 255]++;
    uint32_t sum = 0;
    for (int v = 0; v < 256; v++) {
      uint32_t c = cnt[v];
      cnt[v] = sum;
      sum += c;
    }
    for (size_t i = 0; i < n; i++) dst[cnt[(src[i] >> shift) & 255]++] = src[i];
    uint64_t *t = src;
    src = dst;
    dst = t;
  }
  if (src != a) memcpy(a, src, n * sizeof *a);
}

/* Sort a[0..n) using tmp (n keys). One pass over memory scatters keys by
 * their top bits into pieces of ~2k keys; each piece is then sorted while
 * it sits in cache. (Four full LSD passes over a 128 MiB buffer cost twice
 * as much on the dev VM.) */
static void sort_keys(uint64_t *a, size_t n, uint64_t *tmp) {
  if (n < 4096) {
    lsd_small(a, n, tmp, 64);
    return;
  }
  uint64_t mx = 0;
  for (size_t i = 0; i < n; i++) mx |= a[i];
  int bits = mx ? 64 - __builtin_clzll(mx) : 1;
  int top = 1;
  while (top < 16 && ((size_t)2048 << top) < n) top++;
  if (top > bits) top = bits;
  int shift = bits - top;
  size_t nb = (size_t)1 << top;
  size_t *start = rt_xcalloc(nb + 1, sizeof *start);
  for (size_t i = 0; i < n; i++) start[(a[i] >> shift) + 1]++;
  for (size_t b = 0; b < nb; b++) start[b + 1] += start[b];
  size_t *pos = rt_xmalloc(nb * sizeof *pos);
  memcpy(pos, start, nb * sizeof *pos);
  for (size_t i = 0; i < n; i++) tmp[pos[a[i] >> shift]++] = a[i];
  for (size_t b = 0; b < nb; b++) {
    size_t lo = start[b], m = start[b + 1] - lo;
    memcpy(a + lo, tmp + lo, m * sizeof *a);
    lsd_small(a + lo, m, tmp + lo, shift);
  }
  free(pos);
  free(start);
}

static int cmp_kn(const void *a, const void *b) {
  const kn *x = a, *y = b;
  return x->k < y->k ? -1 : x->k > y->k;
}

/* Fold raw keys and weighted adds into agg: sort raw, then ONE merge pass
 * over three sorted inputs (raw, run-length counted on the fly; extra;
 * agg) into the spare buffer, which becomes agg. */
static void flush(rt_counter *h) {
  if (h->scratch_cap < h->raw.len) {
    free(h->scratch);
    h->scratch_cap = h->raw.cap;
    h->scratch = rt_xmalloc(h->scratch_cap * sizeof *h->scratch);
  }
  sort_keys(h->raw.data, h->raw.len, h->scratch);
  size_t ne = 0;
  if (h->extra.len) { /* rare: weighted adds, sorted and summed */
    qsort(h->extra.data, h->extra.len, sizeof *h->extra.data, cmp_kn);
    for (size_t i = 1; i < h->extra.len; i++) {
      if (h->extra.data[i].k == h->extra.data[ne].k) h->extra.data[ne].n += h->extra.data[i].n;
      else h->extra.data[++ne] = h->extra.data[i];
    }
    ne++;
  }
  const uint64_t *r = h->raw.data;
  const kn *e = h->extra.data, *g = h->agg.data;
  size_t nr = h->raw.len, ng = h->agg.len, i = 0, j = 0, k = 0;
  rt_vec_reserve(&h->spare, nr + ne + ng + 1);
  kn *out = h->spare.data;
  size_t o = 0;
  while (i < nr || j < ne || k < ng) {
    uint64_t key = i < nr ? r[i] : j < ne ? e[j].k : g[k].k; /* the smallest head */
    if (j < ne && e[j].k < key) key = e[j].k;
    if (k < ng && g[k].k < key) key = g[k].k;
    uint64_t n = 0;
    while (i < nr && r[i] == key) n++, i++;
    if (j < ne && e[j].k == key) n += e[j++].n;
    if (k < ng && g[k].k == key) n += g[k++].n;
    out[o++] = (kn){key, n};
  }
  h->spare.len = o;
  kn *t = h->agg.data;
  size_t tc = h->agg.cap;
  h->agg = h->spare;
  h->spare.data = t;
  h->spare.cap = tc;
  h->spare.len = 0;
  h->raw.len = 0;
  h->extra.len = 0;
}

void rt_counter_set_limit(rt_counter *h, size_t limit) { h->limit = limit ? limit : 1; }

void rt_counter_spill_to(rt_counter *h, rt_runs *runs, size_t max_records) {
  h->spill = runs;
  h->spill_at = max_records ? max_records : 1;
}

/* The aggregated records so far as one sorted run into `dst`; agg empties. */
static int put_agg(rt_counter *h, rt_runs *dst, rt_err *err) {
  rt_count_vec v = {0};
  rt_vec_reserve(&v, h->agg.len + 1);
  for (size_t i = 0; i < h->agg.len; i++) v.data[i] = decode(h, h->agg.data[i]);
  v.len = h->agg.len;
  free(h->agg.data);
  memset(&h->agg, 0, sizeof h->agg);
  free(h->spare.data); /* sized for the records just handed over */
  memset(&h->spare, 0, sizeof h->spare);
  int rc = rt_runs_put(dst, &v, err);
  free(v.data);
  return rc;
}

static void maybe_spill(rt_counter *h) {
  if (!h->spill || h->rc) return;
  size_t held = h->compact ? h->agg.len : h->wide.len;
  if (held <= h->spill_at) return;
  if (h->compact) h->rc = put_agg(h, h->spill, &h->err);
  else h->rc = rt_runs_put(h->spill, &h->wide, &h->err);
}

void rt_counter_add(rt_counter *h, uint64_t key, int32_t day, uint32_t win, uint64_t n) {
  if (!h->compact) {
    if (h->wide.len == h->limit) {
      rt_counts_reduce(&h->wide);
      maybe_spill(h);
      if (h->wide.len * 2 > h->limit) h->limit *= 2;
    }
    rt_vec_push(&h->wide, ((rt_count){key, day, win, n}));
    return;
  }
  uint64_t k = encode(h, key, day, win);
  if (n == 1) {
    if (h->raw.len == h->limit) {
      flush(h);
      maybe_spill(h);
    }
    rt_vec_push(&h->raw, k);
  } else {
    rt_vec_push(&h->extra, ((kn){k, n}));
  }
}

static void counter_free(rt_counter *h) {
  free(h->raw.data);
  free(h->scratch);
  free(h->agg.data);
  free(h->spare.data);
  free(h->extra.data);
  free(h->wide.data);
  free(h);
}

int rt_counter_finish(rt_counter *h, rt_runs *dst, rt_err *err) {
  int rc = h->rc;
  if (rc) rt_err_set(err, rc, "%s", h->err.msg);
  if (rc == RT_OK && h->compact) {
    flush(h);
    rc = put_agg(h, dst, err);
  } else if (rc == RT_OK) {
    rt_counts_reduce(&h->wide);
    rc = rt_runs_put(dst, &h->wide, err);
  }
  counter_free(h);
  return rc;
}

/* First index in a[from..n) whose key is >= key. */
static size_t lower_bound(const kn *a, size_t from, size_t n, uint64_t key) {
  while (from < n) {
    size_t m = from + (n - from) / 2;
    if (a[m].k < key) from = m + 1;
    else n = m;
  }
  return from;
}

/* Keys of several sorted, unique kn arrays in [lo, hi) (in [lo, end) when
 * `last`), merged into out with equal keys summed. k is small (the threads
 * of one rank): a linear scan of the heads beats a heap. */
static void merge_range(kn_vec *const *in, int k, uint64_t lo, uint64_t hi, int last, kn_vec *out) {
  enum { MAXK = 64 };
  const kn *p[MAXK], *e[MAXK];
  size_t total = 0;
  for (int i = 0; i < k; i++) {
    const kn *a = in[i]->data;
    size_t n = in[i]->len, b = lower_bound(a, 0, n, lo), f = last ? n : lower_bound(a, b, n, hi);
    p[i] = a + b;
    e[i] = a + f;
    total += f - b;
  }
  rt_vec_reserve(out, total + 1);
  kn *o = out->data;
  size_t no = 0;
  if (k == 2) { /* the common case (two threads), as a plain two-way merge */
    const kn *x = p[0], *xe = e[0], *y = p[1], *ye = e[1];
    while (x < xe && y < ye) {
      if (x->k < y->k) o[no++] = *x++;
      else if (y->k < x->k) o[no++] = *y++;
      else o[no++] = (kn){x->k, x->n + y->n}, x++, y++;
    }
    while (x < xe) o[no++] = *x++;
    while (y < ye) o[no++] = *y++;
  } else {
    for (;;) {
      uint64_t key = UINT64_MAX;
      int any = 0;
      for (int i = 0; i < k; i++)
        if (p[i] < e[i] && (!any || p[i]->k < key)) key = p[i]->k, any = 1;
      if (!any) break;
      uint64_t n = 0;
      for (int i = 0; i < k; i++)
        if (p[i] < e[i] && p[i]->k == key) n += p[i]++->n;
      o[no++] = (kn){key, n};
    }
  }
  out->len = no;
}

/* Why: with one counter per thread, their records must end up as ONE
 * sorted run, and a k-way merge on one thread (then a decode) costs more
 * than the counting itself. Here each counter's last flush runs on its own
 * thread, then the key space is cut at quantiles of the largest counter so
 * each thread merges one key range of all counters, and decodes it into
 * its place in the output. */
int rt_counters_finish(rt_counter **hs, int k, rt_runs *dst, rt_err *err) {
  int rc = RT_OK, compact = 1;
  for (int i = 0; i < k; i++) {
    if (hs[i]->rc && rc == RT_OK) rc = rt_err_set(err, hs[i]->rc, "%s", hs[i]->err.msg);
    compact &= hs[i]->compact;
  }
  if (rc || !compact || k == 1 || k > 64) { /* one at a time */
    for (int i = 0; i < k; i++) {
      rt_err e = {0};
      int r = rt_counter_finish(hs[i], dst, &e);
      if (r && rc == RT_OK) rc = r, *err = e;
    }
    return rc;
  }
#pragma omp parallel for schedule(static, 1)
  for (int i = 0; i < k; i++) flush(hs[i]);
  int big = 0;
  for (int i = 1; i < k; i++)
    if (hs[i]->agg.len > hs[big]->agg.len) big = i;
  uint64_t split[65];
  kn_vec *in[64];
  for (int i = 0; i < k; i++) in[i] = &hs[i]->agg;
  for (int j = 0; j <= k; j++) {
    size_t at = hs[big]->agg.len * (size_t)j / (size_t)k;
    split[j] = j == 0 ? 0 : at < hs[big]->agg.len ? hs[big]->agg.data[at].k : UINT64_MAX;
  }
  kn_vec *part = rt_xcalloc((size_t)k, sizeof *part);
#pragma omp parallel for schedule(static, 1)
  for (int j = 0; j < k; j++) merge_range(in, k, split[j], split[j + 1], j == k - 1, &part[j]);
  size_t *off = rt_xcalloc((size_t)k + 1, sizeof *off);
  for (int j = 0; j < k; j++) off[j + 1] = off[j] + part[j].len;
  for (int i = 0; i < k; i++) { /* the inputs are merged: give their memory back before the decode */
    free(hs[i]->agg.data);
    memset(&hs[i]->agg, 0, sizeof hs[i]->agg);
  }
  rt_count_vec v = {0};
  rt_vec_reserve(&v, off[k] + 1);
  v.len = off[k];
  const rt_counter *h0 = hs[0];
#pragma omp parallel for schedule(static, 1)
  for (int j = 0; j < k; j++) {
    for (size_t i = 0; i < part[j].len; i++) v.data[off[j] + i] = decode(h0, part[j].data[i]);
    free(part[j].data);
  }
  free(part);
  free(off);
  rc = rt_runs_put(dst, &v, err);
  free(v.data);
  for (int i = 0; i < k; i++) counter_free(hs[i]);
  return rc;
}


rt_runs *rt_counts_exchange(const rt_plan *plan, MPI_Comm comm, rt_runs *local, rt_runs *owned,
                            size_t round_bytes, rt_progress *prog, rt_err *err) {
  if (plan->nranks == 1) { /* every record is already owned */
    rt_runs_free(owned);
    return local;
  }
  /* Stream the local records out in chunks (bounded memory on both sides):
   * each chunk is routed to the pairs' owners, which collect what arrives
   * as runs; all ranks go round until every rank is done. */
  size_t chunk = round_bytes / sizeof(rt_count);
  if (chunk < 1024) chunk = 1024;
  int *dest = rt_xmalloc(chunk * sizeof *dest);
  int rc = RT_OK, done = 0;
  uint64_t sent = 0, received = 0;
  for (;;) {
    long got = 0;
    rt_count *buf = rt_xmalloc(chunk * sizeof *buf); /* rt_route takes it over */
    if (rc) done = 1; /* keep taking part in the rounds, sending nothing */
    if (!done) {
      got = rt_runs_read(local, buf, chunk, err);
      if (got < 0) rc = err->code ? err->code : RT_ERR_OUTPUT, got = 0;
      if (got == 0) done = 1;
    }
    size_t n = (size_t)got;
    for (size_t i = 0; i < n; i++) dest[i] = rt_pair_owner(plan, rt_key_pair(buf[i].key));
    rt_metric_add(RT_M_count_records_sent, n);
    void *in = buf;
    rt_route(comm, &in, &n, sizeof(rt_count), dest, round_bytes);
    /* what arrives is one sorted piece per sender (per round): kept as
     * runs, merged at the seal rather than sorted again */
    if (rc == RT_OK) rc = rt_runs_add_pieces(owned, in, n, err);
    free(in);
    sent += (uint64_t)got;
    received += n;
    if (prog) {
      uint64_t v[RT_PROGRESS_MAX] = {sent, received};
      rt_progress_update_v(prog, v);
    }
    int all_done, mine = done;
    MPI_Allreduce(&mine, &all_done, 1, MPI_INT, MPI_MIN, comm);
    if (all_done) break;
  }
  free(dest);
  rt_runs_free(local);
  if (rc) {
    rt_runs_free(owned);
    return NULL;
  }
  return owned;
}

/* ---- merge to rank 0 ------------------------------------------------------ */

#define MERGE_CHUNK 65536
#define TAG_PULL RT_TAG_MERGE_PULL /* base/tags.h */
#define TAG_CHUNK RT_TAG_MERGE_CHUNK

/* Rank 0's sources for rt_merge: another rank's chunks, pulled on demand
 * (a 0-record chunk ends them), and its own runs. */
typedef struct {
  MPI_Comm comm;
  int rank, done;
  rt_count *buf;
} pull_src;

static long pull_next(void *ctx, const rt_count **window, rt_err *err) {
  (void)err;
  pull_src *p = ctx;
  if (p->done) return 0;
  int go = 1;
  MPI_Send(&go, 1, MPI_INT, p->rank, TAG_PULL, p->comm);
  MPI_Status st;
  MPI_Recv(p->buf, (int)(MERGE_CHUNK * sizeof *p->buf), MPI_BYTE, p->rank, TAG_CHUNK, p->comm, &st);
  int bytes;
  MPI_Get_count(&st, MPI_BYTE, &bytes);
  p->done = bytes == 0;
  *window = p->buf;
  return bytes / (int)sizeof *p->buf;
}

typedef struct {
  rt_runs *runs;
  rt_count *buf;
} own_src;

static long own_next(void *ctx, const rt_count **window, rt_err *err) {
  own_src *o = ctx;
  *window = o->buf;
  return rt_runs_read(o->runs, o->buf, MERGE_CHUNK, err);
}

int rt_counts_merge_to_root(MPI_Comm comm, rt_runs *mine, rt_count_emit emit, void *ctx, rt_err *err) {
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  if (rank != 0) { /* serve chunks until an empty one has been sent */
    /* The next chunk is read before rank 0 asks for it, and the wait for
     * the request sleeps instead of spinning: rank 0 (merging, packing,
     * compressing) needs the cores more than this rank does. */
    rt_count *buf = rt_xmalloc(2 * MERGE_CHUNK * sizeof *buf);
    int rc = RT_OK, cur = 0;
    long k = rt_runs_read(mine, buf, MERGE_CHUNK, err);
    for (;;) {
      if (k < 0) rc = err->code ? err->code : RT_ERR_OUTPUT, k = 0; /* end this rank's stream; agreed after */
      int go;
      MPI_Request req;
      MPI_Irecv(&go, 1, MPI_INT, 0, TAG_PULL, comm, &req);
      rt_mpi_wait_idle(&req);
      MPI_Send(buf + (size_t)cur * MERGE_CHUNK, (int)((size_t)k * sizeof(rt_count)), MPI_BYTE, 0, TAG_CHUNK, comm);
      if (k == 0) {
        free(buf);
        return rc;
      }
      cur ^= 1;
      k = rc ? 0 : rt_runs_read(mine, buf + (size_t)cur * MERGE_CHUNK, MERGE_CHUNK, err);
    }
  }
  const rt_count *view;
  size_t nview;
  if (size == 1 && rt_runs_view(mine, &view, &nview)) { /* one rank, in memory: nothing to merge */
    int rc = RT_OK;
    for (size_t off = 0; off < nview && rc == RT_OK; off += MERGE_CHUNK)
      rc = emit(ctx, view + off, nview - off < MERGE_CHUNK ? nview - off : MERGE_CHUNK);
    return rc;
  }
  rt_merge_src *src = rt_xcalloc((size_t)size, sizeof *src);
  pull_src *ps = rt_xcalloc((size_t)size, sizeof *ps);
  own_src own = {mine, rt_xmalloc(MERGE_CHUNK * sizeof(rt_count))};
  src[0] = (rt_merge_src){own_next, &own};
  for (int r = 1; r < size; r++) {
    ps[r] = (pull_src){comm, r, 0, rt_xmalloc(MERGE_CHUNK * sizeof(rt_count))};
    src[r] = (rt_merge_src){pull_next, &ps[r]};
  }
  int rc = RT_OK, rrc = RT_OK; /* rrc: reading rank 0's own runs */
  rt_merge *m = rt_merge_open(src, (size_t)size, err);
  if (!m) rrc = err->code ? err->code : RT_ERR_OUTPUT;
  rt_count *out = rt_xmalloc(MERGE_CHUNK * sizeof *out);
  long got;
  while (m && (got = rt_merge_read(m, out, MERGE_CHUNK, err)) != 0) {
    if (got < 0) {
      rrc = err->code ? err->code : RT_ERR_OUTPUT;
      break;
    }
    if (rc == RT_OK) rc = emit(ctx, out, (size_t)got); /* after a failure keep pulling so the ranks finish */
  }
  for (int r = 1; r < size; r++) /* a failed read stops the merge early: let every rank finish */
    while (!ps[r].done) {
      const rt_count *w;
      pull_next(&ps[r], &w, NULL);
    }
  rt_merge_close(m);
  for (int r = 1; r < size; r++) free(ps[r].buf);
  free(ps);
  free(own.buf);
  free(out);
  free(src);
  return rrc ? rrc : rc;
}
