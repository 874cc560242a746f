/* count.c — pre-aggregate, exchange and reduce triple counts. */
#include "pipeline/count.h"
#include "base/metrics.h"
#include "pipeline/collective.h"

#include <stdlib.h>
#include <string.h>

/* The counter appends one record per triple (sequential writes, no hash
 * probing) and compacts the buffer with a radix sort + merge whenever it
 * fills: memory stays proportional to the distinct (triple, day) records,
 * not to the number of events. */
struct rt_counter {
  rt_count_vec v;
  size_t limit; /* compact when v.len reaches this */
};

#define COUNTER_MIN_LIMIT (4u << 20)

rt_counter *rt_counter_new(void) {
  rt_counter *h = rt_xcalloc(1, sizeof *h);
  h->limit = COUNTER_MIN_LIMIT;
  return h;
}

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
  radix_sort(v->data, v->len);
  size_t w = 0;
  for (size_t i = 1; i < v->len; i++) {
    if (cmp_count(&v->data[w], &v->data[i]) == 0) v->data[w].n += v->data[i].n;
    else v->data[++w] = v->data[i];
  }
  v->len = w + 1;
}

void rt_counter_add(rt_counter *h, uint64_t key, int32_t day, uint32_t win, uint64_t n) {
  if (h->v.len == h->limit) {
    rt_counts_reduce(&h->v);
    /* Little to merge: the distinct records alone fill the buffer, so let it
     * grow rather than compact again and again. */
    if (h->v.len * 2 > h->limit) h->limit *= 2;
  }
  rt_vec_reserve(&h->v, h->v.len + 1);
  h->v.data[h->v.len++] = (rt_count){key, day, win, n};
}

void rt_counter_finish(rt_counter *h, rt_count_vec *out) {
  rt_counts_reduce(&h->v);
  if (out->len == 0) {
    free(out->data);
    *out = h->v;
  } else {
    for (size_t i = 0; i < h->v.len; i++) rt_vec_push(out, h->v.data[i]);
    free(h->v.data);
    rt_counts_reduce(out);
  }
  free(h);
}

int rt_counts_exchange(const rt_plan *plan, MPI_Comm comm, rt_count_vec *v, size_t round_bytes, rt_err *err) {
  (void)err;
  int size = plan->nranks;
  if (size == 1) return RT_OK; /* already reduced and owned */
  size_t *counts = rt_xcalloc((size_t)size, sizeof *counts), *pos = rt_xcalloc((size_t)size, sizeof *pos);
  for (size_t i = 0; i < v->len; i++) counts[rt_pair_owner(plan, rt_key_pair(v->data[i].key))]++;
  for (int r = 1; r < size; r++) pos[r] = pos[r - 1] + counts[r - 1];
  rt_count *send = rt_xmalloc((v->len ? v->len : 1) * sizeof *send);
  for (size_t i = 0; i < v->len; i++) send[pos[rt_pair_owner(plan, rt_key_pair(v->data[i].key))]++] = v->data[i];
  rt_metric_add(RT_M_count_records_sent, v->len);
  free(v->data);
  v->data = NULL;
  v->len = v->cap = 0;
  void *recv = NULL;
  size_t nrecv = 0;
  rt_alltoallv_rounds(comm, send, counts, sizeof(rt_count), &recv, &nrecv, round_bytes);
  free(send);
  free(counts);
  free(pos);
  v->data = recv;
  v->len = v->cap = nrecv;
  rt_counts_reduce(v);
  return RT_OK;
}
