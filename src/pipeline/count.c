/* count.c — pre-aggregate, exchange and reduce triple counts. */
#include "pipeline/count.h"
#include "base/metrics.h"
#include "pipeline/collective.h"

#include <stdlib.h>
#include <string.h>

static int cmp_count(const void *a, const void *b) {
  const rt_count *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  if (x->day != y->day) return x->day < y->day ? -1 : 1;
  return x->win < y->win ? -1 : x->win > y->win;
}

/* LSD radix sort by (key, day, win): 4 bytes of (day - min day) << 1 | win,
 * then the 8 bytes of key, skipping every byte position whose value is the
 * same in all records (with 1,000 clusters only 6 of 12 passes run). */
static void radix_sort(rt_count *a, size_t n) {
  if (n < 256) {
    qsort(a, n, sizeof *a, cmp_count);
    return;
  }
  int32_t dmin = a[0].day;
  for (size_t i = 1; i < n; i++)
    if (a[i].day < dmin) dmin = a[i].day;
  size_t(*hist)[256] = rt_xcalloc(12, sizeof *hist);
  for (size_t i = 0; i < n; i++) {
    uint32_t lo = ((uint32_t)(a[i].day - dmin) << 1) | (a[i].win & 1);
    for (int b = 0; b < 4; b++) hist[b][(lo >> (8 * b)) & 0xff]++;
    for (int b = 0; b < 8; b++) hist[4 + b][(a[i].key >> (8 * b)) & 0xff]++;
  }
  rt_count *tmp = rt_xmalloc(n * sizeof *tmp), *src = a, *dst = tmp;
  for (int d = 0; d < 12; d++) {
    int trivial = 0;
    for (int v = 0; v < 256; v++)
      if (hist[d][v] == n) trivial = 1;
    if (trivial) continue;
    size_t pos[256], sum = 0;
    for (int v = 0; v < 256; v++) {
      pos[v] = sum;
      sum += hist[d][v];
    }
    for (size_t i = 0; i < n; i++) {
      uint64_t digit = d < 4 ? ((((uint32_t)(src[i].day - dmin) << 1) | (src[i].win & 1)) >> (8 * d)) & 0xff
                             : (src[i].key >> (8 * (d - 4))) & 0xff;
      dst[pos[digit]++] = src[i];
    }
    rt_count *t = src;
    src = dst;
    dst = t;
  }
  if (src != a) memcpy(a, src, n * sizeof *a);
  free(tmp);
  free(hist);
}

void rt_counts_reduce(rt_count_vec *v) {
  if (v->len == 0) return;
  int sorted = 1; /* one rank's output is already sorted: skip the sort */
  for (size_t i = 1; i < v->len && sorted; i++) sorted = cmp_count(&v->data[i - 1], &v->data[i]) <= 0;
  if (!sorted) radix_sort(v->data, v->len);
  size_t w = 0;
  for (size_t i = 1; i < v->len; i++) {
    if (cmp_count(&v->data[w], &v->data[i]) == 0) v->data[w].n += v->data[i].n;
    else v->data[++w] = v->data[i];
  }
  v->len = w + 1;
}

/* ---- the counter ---------------------------------------------------------
 * Why this shape: one record per triple is appended (sequential writes, no
 * hash probing) and the buffer is sorted and run-length merged whenever it
 * fills, so memory follows the distinct (triple, day) records, not the
 * events. When the catalog and the day range allow (n^3 x days x 2 < 2^63,
 * e.g. 10,000 clusters over two years), a triple, its day and window are
 * packed into one 64-bit key in mixed radix, which keeps the (c1, c2, c_next,
 * day, win) order: the buffer holds 8-byte keys instead of 24-byte records
 * and sorts in a few 11-bit radix passes. Larger catalogs use rt_count
 * records and rt_counts_reduce. */

typedef struct {
  uint64_t k, n;
} kn;

struct rt_counter {
  int compact;
  uint64_t ncl, span; /* clusters; days in [day_lo, day_lo + span) */
  int32_t day_lo;
  RT_VEC(uint64_t) raw; /* compact keys, one per triple, unsorted */
  RT_VEC(kn) agg;       /* sorted, unique */
  RT_VEC(kn) extra;     /* weighted adds (n > 1), unsorted */
  rt_count_vec wide;    /* non-compact mode */
  size_t limit;
};

#define COUNTER_LIMIT (16u << 20) /* 128 MiB of keys before a compaction */

rt_counter *rt_counter_new(uint32_t ncl, int32_t day_lo, int32_t day_hi) {
  rt_counter *h = rt_xcalloc(1, sizeof *h);
  h->ncl = ncl ? ncl : 1;
  h->day_lo = day_lo;
  h->span = day_hi >= day_lo ? (uint64_t)(day_hi - day_lo) + 1 : 1;
  long double room = (long double)h->ncl * h->ncl * h->ncl * (long double)(2 * h->span);
  h->compact = room < 9.2e18L;
  h->limit = COUNTER_LIMIT;
  return h;
}

static inline uint64_t encode(const rt_counter *h, uint64_t key, int32_t day, uint32_t win) {
  uint64_t c1 = key >> 40, c2 = (key >> 20) & RT_KEY_MASK, c3 = key & RT_KEY_MASK;
  return ((c1 * h->ncl + c2) * h->ncl + c3) * (2 * h->span) + (uint64_t)(day - h->day_lo) * 2 + (win & 1);
}

static inline rt_count decode(const rt_counter *h, kn e) {
  uint64_t x = e.k, w = x & 1, d = (x >> 1) % h->span;
  x /= 2 * h->span;
  uint64_t c3 = x % h->ncl;
  x /= h->ncl;
  uint64_t c2 = x % h->ncl, c1 = x / h->ncl;
  return (rt_count){rt_triple_key((uint32_t)c1, (uint32_t)c2, (uint32_t)c3), h->day_lo + (int32_t)d, (uint32_t)w,
                    e.n};
}

/* LSD radix sort of 64-bit keys in 11-bit digits, only as many passes as the
 * largest key needs. */
static void radix_u64(uint64_t *a, size_t n) {
  if (n < 2) return;
  uint64_t mx = 0;
  for (size_t i = 0; i < n; i++) mx |= a[i];
  int bits = mx ? 64 - __builtin_clzll(mx) : 1;
  uint64_t *tmp = rt_xmalloc(n * sizeof *tmp), *src = a, *dst = tmp;
  size_t *cnt = rt_xmalloc(2048 * sizeof *cnt);
  for (int shift = 0; shift < bits; shift += 11) {
    memset(cnt, 0, 2048 * sizeof *cnt);
    for (size_t i = 0; i < n; i++) cnt[(src[i] >> shift) & 2047]++;
    size_t sum = 0;
    for (int v = 0; v < 2048; v++) {
      size_t c = cnt[v];
      cnt[v] = sum;
      sum += c;
    }
    for (size_t i = 0; i < n; i++) dst[cnt[(src[i] >> shift) & 2047]++] = src[i];
    uint64_t *t = src;
    src = dst;
    dst = t;
  }
  if (src != a) memcpy(a, src, n * sizeof *a);
  free(tmp);
  free(cnt);
}

static int cmp_kn(const void *a, const void *b) {
  const kn *x = a, *y = b;
  return x->k < y->k ? -1 : x->k > y->k;
}

/* Fold raw keys and weighted adds into agg (all sorted-unique merges). */
static void flush(rt_counter *h) {
  radix_u64(h->raw.data, h->raw.len);
  size_t m = 0; /* run-length encode raw in place into a kn list */
  kn *runs = rt_xmalloc((h->raw.len + h->extra.len + 1) * sizeof *runs);
  for (size_t i = 0; i < h->raw.len;) {
    size_t j = i + 1;
    while (j < h->raw.len && h->raw.data[j] == h->raw.data[i]) j++;
    runs[m++] = (kn){h->raw.data[i], j - i};
    i = j;
  }
  h->raw.len = 0;
  if (h->extra.len) { /* rare: weighted adds; merge them into runs */
    qsort(h->extra.data, h->extra.len, sizeof *h->extra.data, cmp_kn);
    memcpy(runs + m, h->extra.data, h->extra.len * sizeof *runs);
    size_t total = m + h->extra.len;
    qsort(runs, total, sizeof *runs, cmp_kn);
    size_t w = 0;
    for (size_t i = 1; i < total; i++) {
      if (runs[i].k == runs[w].k) runs[w].n += runs[i].n;
      else runs[++w] = runs[i];
    }
    m = total ? w + 1 : 0;
    h->extra.len = 0;
  }
  /* merge runs[0..m) with agg */
  kn *out = rt_xmalloc((m + h->agg.len + 1) * sizeof *out);
  size_t i = 0, j = 0, o = 0;
  while (i < m || j < h->agg.len) {
    if (j == h->agg.len || (i < m && runs[i].k < h->agg.data[j].k)) out[o++] = runs[i++];
    else if (i == m || h->agg.data[j].k < runs[i].k) out[o++] = h->agg.data[j++];
    else {
      out[o] = h->agg.data[j++];
      out[o++].n += runs[i++].n;
    }
  }
  free(runs);
  free(h->agg.data);
  h->agg.data = out;
  h->agg.len = h->agg.cap = o;
}

void rt_counter_set_limit(rt_counter *h, size_t limit) { h->limit = limit ? limit : 1; }

void rt_counter_add(rt_counter *h, uint64_t key, int32_t day, uint32_t win, uint64_t n) {
  if (!h->compact) {
    if (h->wide.len == h->limit) {
      rt_counts_reduce(&h->wide);
      if (h->wide.len * 2 > h->limit) h->limit *= 2;
    }
    rt_vec_push(&h->wide, ((rt_count){key, day, win, n}));
    return;
  }
  uint64_t k = encode(h, key, day, win);
  if (n == 1) {
    if (h->raw.len == h->limit) flush(h);
    rt_vec_push(&h->raw, k);
  } else {
    rt_vec_push(&h->extra, ((kn){k, n}));
  }
}

void rt_counter_finish(rt_counter *h, rt_count_vec *out) {
  rt_count_vec mine = {0};
  if (h->compact) {
    flush(h);
    rt_vec_reserve(&mine, h->agg.len);
    for (size_t i = 0; i < h->agg.len; i++) mine.data[i] = decode(h, h->agg.data[i]);
    mine.len = h->agg.len;
  } else {
    rt_counts_reduce(&h->wide);
    mine = h->wide;
    h->wide = (rt_count_vec){0};
  }
  if (out->len == 0) {
    free(out->data);
    *out = mine;
  } else {
    for (size_t i = 0; i < mine.len; i++) rt_vec_push(out, mine.data[i]);
    free(mine.data);
    rt_counts_reduce(out);
  }
  free(h->raw.data);
  free(h->agg.data);
  free(h->extra.data);
  free(h->wide.data);
  free(h);
}

int rt_counts_exchange(const rt_plan *plan, MPI_Comm comm, rt_count_vec *v, size_t round_bytes, rt_err *err) {
  (void)err;
  int size = plan->nranks;
  if (size == 1) return RT_OK; /* already reduced and owned */
  int *dest = rt_xmalloc((v->len ? v->len : 1) * sizeof *dest);
  for (size_t i = 0; i < v->len; i++) dest[i] = rt_pair_owner(plan, rt_key_pair(v->data[i].key));
  rt_metric_add(RT_M_count_records_sent, v->len);
  size_t n = v->len;
  rt_route(comm, (void **)&v->data, &n, sizeof(rt_count), dest, round_bytes);
  free(dest);
  v->len = v->cap = n;
  rt_counts_reduce(v);
  return RT_OK;
}

/* ---- merge to rank 0 ------------------------------------------------------ */

#define MERGE_CHUNK 65536
#define TAG_PULL 91
#define TAG_CHUNK 92

typedef struct {
  const rt_count *rec;
  size_t n, pos;
  int rank, done;
} source;

/* Pull the next chunk of rank s->rank into buf; a 0-record chunk ends it. */
static void pull(MPI_Comm comm, source *s, rt_count *buf) {
  int go = 1;
  MPI_Send(&go, 1, MPI_INT, s->rank, TAG_PULL, comm);
  MPI_Status st;
  MPI_Recv(buf, (int)(MERGE_CHUNK * sizeof *buf), MPI_BYTE, s->rank, TAG_CHUNK, comm, &st);
  int bytes;
  MPI_Get_count(&st, MPI_BYTE, &bytes);
  s->rec = buf;
  s->n = (size_t)bytes / sizeof *buf;
  s->pos = 0;
  s->done = s->n == 0;
}

static int src_less(const source *a, const source *b) {
  return cmp_count(&a->rec[a->pos], &b->rec[b->pos]) < 0;
}

static void sift_down(source **h, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && src_less(h[l], h[m])) m = l;
    if (r < n && src_less(h[r], h[m])) m = r;
    if (m == i) return;
    source *t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

int rt_counts_merge_to_root(MPI_Comm comm, const rt_count_vec *mine, rt_count_emit emit, void *ctx) {
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  if (rank != 0) { /* serve chunks until an empty one has been sent */
    size_t off = 0;
    for (;;) {
      int go;
      MPI_Recv(&go, 1, MPI_INT, 0, TAG_PULL, comm, MPI_STATUS_IGNORE);
      size_t k = mine->len - off < MERGE_CHUNK ? mine->len - off : MERGE_CHUNK;
      MPI_Send(mine->data + off, (int)(k * sizeof(rt_count)), MPI_BYTE, 0, TAG_CHUNK, comm);
      off += k;
      if (k == 0) return RT_OK;
    }
  }
  source *src = rt_xcalloc((size_t)size, sizeof *src);
  rt_count *bufs = rt_xmalloc((size_t)size * MERGE_CHUNK * sizeof *bufs);
  source **heap = rt_xmalloc((size_t)size * sizeof *heap);
  size_t nh = 0;
  src[0] = (source){mine->data, mine->len, 0, 0, mine->len == 0};
  if (!src[0].done) heap[nh++] = &src[0];
  for (int r = 1; r < size; r++) {
    src[r].rank = r;
    pull(comm, &src[r], bufs + (size_t)r * MERGE_CHUNK);
    if (!src[r].done) heap[nh++] = &src[r];
  }
  for (size_t i = nh; i-- > 0;) sift_down(heap, nh, i);
  rt_count *out = rt_xmalloc(MERGE_CHUNK * sizeof *out);
  size_t nout = 0;
  int rc = RT_OK;
  while (nh) {
    source *s = heap[0];
    out[nout++] = s->rec[s->pos++];
    if (nout == MERGE_CHUNK) {
      if (rc == RT_OK) rc = emit(ctx, out, nout); /* after a failure keep pulling so the ranks finish */
      nout = 0;
    }
    if (s->pos == s->n) {
      if (s->rank != 0) pull(comm, s, bufs + (size_t)s->rank * MERGE_CHUNK);
      else s->done = 1;
      if (s->done) heap[0] = heap[--nh];
    }
    sift_down(heap, nh, 0);
  }
  if (nout && rc == RT_OK) rc = emit(ctx, out, nout);
  free(out);
  free(heap);
  free(bufs);
  free(src);
  return rc;
}
