/* count.c — pre-aggregate, exchange and reduce triple counts. */
#include "pipeline/count.h"
#include "base/metrics.h"
#include "pipeline/collective.h"

#include <stdlib.h>
#include <string.h>

struct rt_counter {
  rt_count *slot; /* n == 0: empty */
  size_t cap, used;
};

rt_counter *rt_counter_new(void) {
  rt_counter *h = rt_xcalloc(1, sizeof *h);
  h->cap = 1024;
  h->slot = rt_xcalloc(h->cap, sizeof *h->slot);
  return h;
}

static inline size_t slot_of(uint64_t key, int32_t day, uint32_t win, size_t mask) {
  return (size_t)(rt_mix64(key ^ ((uint64_t)(uint32_t)day << 44) ^ ((uint64_t)win << 63)) & mask);
}

static void grow(rt_counter *h) {
  size_t ncap = h->cap * 2, mask = ncap - 1;
  rt_count *ns = rt_xcalloc(ncap, sizeof *ns);
  for (size_t i = 0; i < h->cap; i++) {
    if (!h->slot[i].n) continue;
    size_t s = slot_of(h->slot[i].key, h->slot[i].day, h->slot[i].win, mask);
    while (ns[s].n) s = (s + 1) & mask;
    ns[s] = h->slot[i];
  }
  free(h->slot);
  h->slot = ns;
  h->cap = ncap;
}

void rt_counter_add(rt_counter *h, uint64_t key, int32_t day, uint32_t win, uint64_t n) {
  if ((h->used + 1) * 2 > h->cap) grow(h);
  size_t mask = h->cap - 1, s = slot_of(key, day, win, mask);
  while (h->slot[s].n) {
    if (h->slot[s].key == key && h->slot[s].day == day && h->slot[s].win == win) {
      h->slot[s].n += n;
      return;
    }
    s = (s + 1) & mask;
  }
  h->slot[s] = (rt_count){key, day, win, n};
  h->used++;
}

static int cmp_count(const void *a, const void *b) {
  const rt_count *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  if (x->day != y->day) return x->day < y->day ? -1 : 1;
  return x->win < y->win ? -1 : x->win > y->win;
}

void rt_counter_finish(rt_counter *h, rt_count_vec *out) {
  rt_vec_reserve(out, out->len + h->used);
  for (size_t i = 0; i < h->cap; i++)
    if (h->slot[i].n) out->data[out->len++] = h->slot[i];
  free(h->slot);
  free(h);
  qsort(out->data, out->len, sizeof *out->data, cmp_count);
}

void rt_counts_reduce(rt_count_vec *v) {
  if (v->len == 0) return;
  qsort(v->data, v->len, sizeof *v->data, cmp_count);
  size_t w = 0;
  for (size_t i = 1; i < v->len; i++) {
    if (cmp_count(&v->data[w], &v->data[i]) == 0) v->data[w].n += v->data[i].n;
    else v->data[++w] = v->data[i];
  }
  v->len = w + 1;
}

int rt_counts_exchange(const rt_plan *plan, MPI_Comm comm, rt_count_vec *v, size_t round_bytes, rt_err *err) {
  (void)err;
  int size = plan->nranks;
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
