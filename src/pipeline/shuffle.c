/* shuffle.c — events to their user's owner rank. */
#include "pipeline/shuffle.h"
#include "base/metrics.h"
#include "pipeline/collective.h"

#include <stdlib.h>

int rt_shuffle_by_user(const rt_plan *plan, MPI_Comm comm, rt_ev_vec *ev, size_t round_bytes, rt_err *err) {
  (void)err;
  double t0 = rt_stage_begin();
  int size = plan->nranks;
  if (size == 1) { /* every user is ours */
    rt_metric_add(RT_M_shuffle_events_received, ev->len);
    rt_stage_end(RT_M_shuffle_us, t0);
    return RT_OK;
  }
  int *dest = rt_xmalloc((ev->len ? ev->len : 1) * sizeof *dest);
  for (size_t i = 0; i < ev->len; i++) dest[i] = rt_user_owner(plan, ev->data[i].user);
  rt_metric_add(RT_M_shuffle_events_sent, ev->len);
  size_t nrecv = ev->len;
  int rounds = rt_route(comm, (void **)&ev->data, &nrecv, sizeof(rt_ev), dest, round_bytes);
  free(dest);
  ev->len = ev->cap = nrecv;
  rt_metric_add(RT_M_shuffle_events_received, nrecv);
  rt_metric_max(RT_M_shuffle_rounds, (uint64_t)rounds);
  rt_stage_end(RT_M_shuffle_us, t0);
  return RT_OK;
}
