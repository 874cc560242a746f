/* progress.c — rank 0 asks (Ibcast), everyone answers (Ireduce), nobody waits.
 *
 * Sequence on the private communicator, identical on every rank:
 *   { Ibcast(flag = 1), Ireduce(count) }*  Ibcast(flag = 0)
 * Rank 0 starts a round when `interval` has passed; the others keep one
 * Ibcast posted and answer it when they next call rt_progress_update. */
#include "pipeline/progress.h"
#include "base/log.h"
#include "base/util.h"

#include <stdio.h>

static void report(const rt_progress *p) {
  double el = rt_now() - p->t_start;
  double rate = el > 0 ? (double)p->sum / el : 0;
  if (p->total) {
    double left = rate > 0 ? (double)(p->total - (p->sum < p->total ? p->sum : p->total)) / rate : 0;
    rt_info("%s: %.1f%% (%llu of %llu), %.0f/s, about %.0f s left", p->what, 100.0 * (double)p->sum / (double)p->total,
            (unsigned long long)p->sum, (unsigned long long)p->total, rate, left);
  } else {
    rt_info("%s: %llu done, %.0f/s", p->what, (unsigned long long)p->sum, rate);
  }
}

void rt_progress_start(rt_progress *p, MPI_Comm comm, const char *what, uint64_t total, double interval) {
  MPI_Comm_dup(comm, &p->comm);
  MPI_Comm_rank(p->comm, &p->rank);
  p->what = what;
  p->total = total;
  p->interval = interval;
  p->t_start = p->t_last = rt_now();
  p->state = 0;
  p->reports = 0;
  p->req = p->reqs[0] = p->reqs[1] = MPI_REQUEST_NULL;
  if (p->rank != 0) MPI_Ibcast(&p->flag, 1, MPI_INT, 0, p->comm, &p->req); /* wait for rank 0's go */
}

/* Non-root: answer a completed go (flag 1) with a reduction, then re-arm. */
static void answer(rt_progress *p, uint64_t done) {
  p->mine = done;
  MPI_Ireduce(&p->mine, &p->sum, 1, MPI_UINT64_T, MPI_SUM, 0, p->comm, &p->req);
  p->state = 1;
}

void rt_progress_update(rt_progress *p, uint64_t done) {
  int ready = 0;
  if (p->rank == 0) {
    if (p->state == 0) {
      if (p->interval <= 0 || rt_now() - p->t_last < p->interval) return;
      p->flag = 1;
      MPI_Ibcast(&p->flag, 1, MPI_INT, 0, p->comm, &p->reqs[0]);
      p->mine = done;
      MPI_Ireduce(&p->mine, &p->sum, 1, MPI_UINT64_T, MPI_SUM, 0, p->comm, &p->reqs[1]);
      p->state = 1;
    }
    MPI_Testall(2, p->reqs, &ready, MPI_STATUSES_IGNORE);
    if (ready) {
      report(p);
      p->reports++;
      p->t_last = rt_now();
      p->state = 0;
    }
    return;
  }
  if (p->state == 2) return; /* rank 0 has already said it is finishing */
  MPI_Test(&p->req, &ready, MPI_STATUS_IGNORE);
  if (!ready) return;
  if (p->state == 0) {
    if (p->flag == 0) p->state = 2; /* rank 0 is in rt_progress_finish: no more rounds */
    else answer(p, done);           /* rank 0's go */
  } else {            /* our answer went out: wait for the next go */
    p->state = 0;
    MPI_Ibcast(&p->flag, 1, MPI_INT, 0, p->comm, &p->req);
  }
}

void rt_progress_finish(rt_progress *p, uint64_t done) {
  if (p->rank == 0) {
    if (p->state == 1) MPI_Waitall(2, p->reqs, MPI_STATUSES_IGNORE); /* a round in flight */
    p->flag = 0; /* nonblocking too: a blocking Bcast would not match the others' Ibcast */
    MPI_Ibcast(&p->flag, 1, MPI_INT, 0, p->comm, &p->reqs[0]);
    MPI_Wait(&p->reqs[0], MPI_STATUS_IGNORE);
  } else {
    while (p->state != 2) {
      MPI_Wait(&p->req, MPI_STATUS_IGNORE);
      if (p->state == 1) { /* our answer completed: take the next broadcast */
        p->state = 0;
        MPI_Ibcast(&p->flag, 1, MPI_INT, 0, p->comm, &p->req);
        continue;
      }
      if (p->flag == 0) break;
      answer(p, done);
    }
  }
  MPI_Comm_free(&p->comm);
}
