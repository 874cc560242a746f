/* progress.h — periodic progress lines for a long stage, across ranks,
 * without ever stopping the work.
 *
 * Why nonblocking collectives (the mpifileutils pattern): ranks finish their
 * batches at different times, so a blocking reduction every N seconds would
 * make every rank wait for the slowest. Here rank 0 decides when to report
 * and starts an MPI_Ibcast on a private duplicate of the communicator; each
 * rank notices it in rt_progress_update (MPI_Test, cheap), contributes its
 * counter with MPI_Ireduce and goes on; rank 0 prints when the reduction
 * completes. All ranks issue the same sequence of operations on the private
 * communicator, so it never mixes with the job's own collectives.
 *
 *   rt_progress p;
 *   rt_progress_start(&p, comm, "infer", total, 10.0);
 *   for (each batch) { ...; rt_progress_update(&p, done_so_far); }
 *   rt_progress_finish(&p, done_so_far);   // collective
 */
#ifndef RT_PIPELINE_PROGRESS_H
#define RT_PIPELINE_PROGRESS_H

#include <mpi.h>
#include <stdint.h>

typedef struct rt_progress {
  MPI_Comm comm;          /* private duplicate */
  int rank;
  const char *what;       /* stage name for the log line */
  uint64_t total;         /* over all ranks (0: unknown) */
  double interval, t_start, t_last;
  int state;              /* 0: waiting for rank 0's go; 1: reduction in flight; 2: finished */
  int flag;               /* broadcast payload: 1 report, 0 finish */
  uint64_t mine, sum;     /* reduction buffers */
  MPI_Request req;         /* non-root: the posted Ibcast or Ireduce */
  MPI_Request reqs[2];     /* rank 0: its Ibcast and Ireduce of the round */
  int reports;             /* rank 0: lines printed so far */
} rt_progress;

/* Collective. interval: seconds between lines (<= 0: never print). */
void rt_progress_start(rt_progress *p, MPI_Comm comm, const char *what, uint64_t total, double interval);

/* Not collective; call often (e.g. after each batch) with this rank's count. */
void rt_progress_update(rt_progress *p, uint64_t done);

/* Collective: completes outstanding operations and frees the communicator. */
void rt_progress_finish(rt_progress *p, uint64_t done);

#endif
