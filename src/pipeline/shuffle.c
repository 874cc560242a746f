/* shuffle.c — events to their user's owner rank. */
#include "pipeline/shuffle.h"
#include "base/metrics.h"
#include "pipeline/collective.h"

#include <stdlib.h>

int rt_shuffle_by_user(const rt_plan *plan, MPI_Comm comm, const rt_ev_vec *part, int nparts, rt_ev_vec *out,
                       size_t round_bytes, rt_err *err) {
  (void)err;
  double t0 = rt_stage_begin();
  size_t n = 0;
  for (int p = 0; p < nparts; p++) n += part[p].len;
  int *dest = rt_xmalloc((n ? n : 1) * sizeof *dest);
  const void *pp[nparts];
  size_t pl[nparts];
  size_t i = 0;
  for (int p = 0; p < nparts; p++) {
    pp[p] = part[p].data;
    pl[p] = part[p].len;
    for (size_t j = 0; j < part[p].len; j++) dest[i++] = rt_user_owner(plan, part[p].data[j].user);
  }
  rt_metric_add(RT_M_shuffle_events_sent, n);
  free(out->data);
  void *recv;
  size_t nrecv;
  int rounds = rt_route_parts(comm, pp, pl, nparts, sizeof(rt_ev), dest, &recv, &nrecv, round_bytes);
  free(dest);
  out->data = recv;
  out->len = out->cap = nrecv;
  rt_metric_add(RT_M_shuffle_events_received, nrecv);
  rt_metric_max(RT_M_shuffle_rounds, (uint64_t)rounds);
  rt_stage_end(RT_M_shuffle_us, t0);
  return RT_OK;
}
