/* retrieve.c — top successors per pair, global triples, popular clusters. */
#include "rag/retrieve.h"
#include "base/metrics.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  uint32_t next;
  int64_t score;
  uint64_t cur;
} cand;

static int cmp_cand(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->score != y->score) return x->score > y->score ? -1 : 1;
  return x->next < y->next ? -1 : x->next > y->next;
}

void rt_retrieve(const rt_count *counts, size_t n, const rt_config *cfg, rt_retrieval *out) {
  memset(out, 0, sizeof *out);
  rt_retrieve_more(counts, n, cfg, out);
}

void rt_retrieve_more(const rt_count *counts, size_t n, const rt_config *cfg, rt_retrieval *out) {
  double t0 = rt_stage_begin();
  size_t pairs0 = out->ctx.len;
  int trend = strcmp(cfg->retrieval_mode, "trend") == 0;
  size_t top = (size_t)cfg->top_n;
  RT_VEC(cand) cs = {0};
  size_t i = 0;
  while (i < n) {
    uint64_t pair = rt_key_pair(counts[i].key);
    uint64_t total = 0;
    cs.len = 0;
    /* counts are sorted by key, so one successor's days are contiguous */
    while (i < n && rt_key_pair(counts[i].key) == pair) {
      uint64_t key = counts[i].key, cur = 0, prev = 0;
      for (; i < n && counts[i].key == key; i++) {
        if (counts[i].win == 0) cur += counts[i].n;
        else prev += counts[i].n;
      }
      total += cur;
      int64_t score = trend ? (int64_t)cur - (int64_t)prev : (int64_t)cur;
      if (cur > 0 && score > 0) rt_vec_push(&cs, ((cand){rt_key_next(key), score, cur}));
    }
    if (total == 0) continue; /* only previous-window data: not a pair with fresh data */
    qsort(cs.data, cs.len, sizeof *cs.data, cmp_cand);
    rt_context c = {pair, total, (uint32_t)out->next.len, 0};
    for (size_t k = 0; k < cs.len && k < top; k++) {
      rt_vec_push(&out->next, cs.data[k].next);
      rt_vec_push(&out->score, cs.data[k].score);
      c.n++;
    }
    rt_vec_push(&out->ctx, c);
    rt_metric_add(RT_M_retrieve_successors, c.n);
  }
  free(cs.data);
  rt_metric_add(RT_M_retrieve_pairs, out->ctx.len - pairs0);
  rt_stage_end(RT_M_retrieve_us, t0);
}

static int cmp_tc(const void *a, const void *b) {
  const rt_triple_count *x = a, *y = b;
  if (x->n != y->n) return x->n > y->n ? -1 : 1;
  return x->key < y->key ? -1 : x->key > y->key;
}

void rt_retrieve_global_add(const rt_count *counts, size_t n, size_t k, rt_triple_vec *acc) {
  /* Window totals per triple; the list is cut back to the top k whenever
   * it doubles, so it stays small whatever the input. */
  for (size_t i = 0; i < n;) {
    uint64_t key = counts[i].key, cur = 0;
    for (; i < n && counts[i].key == key; i++)
      if (counts[i].win == 0) cur += counts[i].n;
    if (cur) rt_vec_push(acc, ((rt_triple_count){key, cur}));
    if (acc->len >= 2 * k + 1024) {
      qsort(acc->data, acc->len, sizeof *acc->data, cmp_tc);
      acc->len = k;
    }
  }
}

int rt_retrieve_global_finish(rt_triple_vec *acc, size_t k, MPI_Comm comm, rt_triple_count **out, size_t *nout) {
  /* Local top k, gather, global top k. */
  rt_triple_vec loc = *acc;
  memset(acc, 0, sizeof *acc);
  qsort(loc.data, loc.len, sizeof *loc.data, cmp_tc);
  if (loc.len > k) loc.len = k;
  int size, rank;
  MPI_Comm_size(comm, &size);
  MPI_Comm_rank(comm, &rank);
  int mine = (int)(loc.len * sizeof(rt_triple_count));
  int *lens = rt_xmalloc((size_t)size * sizeof *lens), *displ = rt_xmalloc((size_t)size * sizeof *displ);
  MPI_Allgather(&mine, 1, MPI_INT, lens, 1, MPI_INT, comm);
  int total = 0;
  for (int r = 0; r < size; r++) {
    displ[r] = total;
    total += lens[r];
  }
  rt_triple_count *all = rt_xmalloc((size_t)total + 1);
  MPI_Allgatherv(loc.data, mine, MPI_BYTE, all, lens, displ, MPI_BYTE, comm);
  size_t na = (size_t)total / sizeof(rt_triple_count);
  qsort(all, na, sizeof *all, cmp_tc);
  *nout = na < k ? na : k;
  *out = all;
  free(loc.data);
  free(lens);
  free(displ);
  return 0;
}

int rt_retrieve_global(const rt_count *counts, size_t n, size_t k, MPI_Comm comm, rt_triple_count **out,
                       size_t *nout) {
  rt_triple_vec acc = {0};
  rt_retrieve_global_add(counts, n, k, &acc);
  return rt_retrieve_global_finish(&acc, k, comm, out, nout);
}

size_t rt_retrieve_popular(const uint64_t *watch, uint32_t ncl, size_t k, MPI_Comm comm, uint32_t *out) {
  uint64_t *sum = rt_xmalloc(ncl * sizeof *sum);
  MPI_Allreduce(watch, sum, (int)ncl, MPI_UINT64_T, MPI_SUM, comm);
  size_t m = 0;
  /* k is small (a prompt block): selection by repeated scans is enough. */
  for (; m < k; m++) {
    int64_t best = -1;
    for (uint32_t c = 0; c < ncl; c++) {
      int taken = 0;
      for (size_t j = 0; j < m; j++)
        if (out[j] == c) taken = 1;
      if (!taken && sum[c] > 0 && (best < 0 || sum[c] > sum[best])) best = c;
    }
    if (best < 0) break;
    out[m] = (uint32_t)best;
  }
  free(sum);
  return m;
}

void rt_retrieval_free(rt_retrieval *r) {
  free(r->ctx.data);
  free(r->next.data);
  free(r->score.data);
  memset(r, 0, sizeof *r);
}
