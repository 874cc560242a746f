/* gather.c — results to rank 0, sorted by pair. */
#include "pipeline/gather.h"
#include "base/metrics.h"
#include "pipeline/collective.h"

#include <stdlib.h>

static int cmp_result(const void *a, const void *b) {
  const rt_result *x = a, *y = b;
  return x->pair < y->pair ? -1 : x->pair > y->pair;
}

void rt_gather_results(MPI_Comm comm, const rt_result *mine, size_t n, rt_result **all, size_t *nall) {
  double t0 = rt_stage_begin();
  void *buf;
  size_t len;
  rt_gather_bytes(comm, 0, mine, n * sizeof *mine, &buf, &len);
  *all = buf;
  *nall = buf ? len / sizeof(rt_result) : 0;
  if (buf) qsort(*all, *nall, sizeof **all, cmp_result);
  rt_metric_add(RT_M_gather_results, n);
  rt_stage_end(RT_M_gather_us, t0);
}
