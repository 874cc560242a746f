/* gather.c — compact result records, streamed to rank 0 rank by rank. */
#include "pipeline/gather.h"
#include "base/metrics.h"
#include "pipeline/collective.h"

#include <stdlib.h>
#include <string.h>

void rt_result_put(rt_result_buf *b, const rt_result *r) {
  size_t need = 10 + 4 * (size_t)r->n;
  rt_vec_reserve(b, b->len + need);
  char *p = b->data + b->len;
  memcpy(p, &r->pair, 8);
  p[8] = (char)r->prov;
  p[9] = (char)r->n;
  memcpy(p + 10, r->next, 4 * (size_t)r->n);
  b->len += need;
}

int rt_result_next(const char *buf, size_t len, size_t *off, rt_result *r) {
  if (*off == len) return 0;
  if (len - *off < 10) return -1;
  const char *p = buf + *off;
  memcpy(&r->pair, p, 8);
  r->prov = (unsigned char)p[8];
  r->n = (unsigned char)p[9];
  if (r->n > RT_MAX_CAND || len - *off - 10 < 4 * (size_t)r->n) return -1;
  memcpy(r->next, p + 10, 4 * (size_t)r->n);
  *off += 10 + 4 * (size_t)r->n;
  return 1;
}

typedef struct {
  rt_result_cb cb;
  void *ctx;
} fwd;

static void forward(void *ctx, int rank, const void *buf, size_t len) {
  (void)rank;
  fwd *f = ctx;
  f->cb(f->ctx, buf, len);
}

void rt_gather_results(MPI_Comm comm, const rt_result_buf *mine, rt_result_cb cb, void *ctx) {
  double t0 = rt_stage_begin();
  fwd f = {cb, ctx};
  rt_gather_stream(comm, mine->data, mine->len, forward, &f);
  rt_stage_end(RT_M_gather_us, t0);
}
