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
 *   rt_progress_start(&p, comm, "llm", total, 10.0);
 *   rt_progress_labels(&p, "pairs", "requests", "retries", ...);  // optional
 *   for (each batch) { ...; rt_progress_update(&p, done_so_far); }
 *   rt_progress_finish(&p, done_so_far);   // collective
 *
 * A report is one line: the stage, counter 0 (with its share of `total` when
 * known), its rate over the last minute, the other counters, and (with a
 * total) the time left at the recent rate. On a terminal rank 0 rewrites one
 * line in place; elsewhere (Slurm output files, pipes) it prints log lines.
 */
#ifndef RT_PIPELINE_PROGRESS_H
#define RT_PIPELINE_PROGRESS_H

#include <mpi.h>
#include <stdint.h>

#define RT_PROGRESS_MAX 6   /* counters per report */
#define RT_PROGRESS_HIST 64 /* rank 0's samples for the rate over the last minute */

typedef struct rt_progress {
  MPI_Comm comm;          /* private duplicate */
  int rank;
  const char *what;       /* stage name for the log line */
  const char *labels[RT_PROGRESS_MAX]; /* counter names; NULL: not shown */
  uint64_t total;         /* of counter 0, over all ranks (0: unknown) */
  double interval, t_start, t_last;
  int state;              /* 0: waiting for rank 0's go; 1: reduction in flight; 2: finished;
                           * 3: finished, a last reduction due */
  int flag;               /* broadcast payload: 1 report, 0 finish, 2 finish after a last reduction */
  uint64_t cur[RT_PROGRESS_MAX];  /* this rank's latest counters */
  uint64_t mine[RT_PROGRESS_MAX], sum[RT_PROGRESS_MAX]; /* reduction buffers */
  MPI_Request req;         /* non-root: the posted Ibcast or Ireduce */
  MPI_Request reqs[2];     /* rank 0: its Ibcast and Ireduce of the round */
  int reports;             /* rank 0: lines printed so far */
  int tty;                 /* rank 0: stderr is a terminal (one line rewritten in place) */
  double hist_t[RT_PROGRESS_HIST]; /* rank 0: (time, counter 0) of recent reports, a ring */
  uint64_t hist_v[RT_PROGRESS_HIST];
  int hist_n, hist_head;
} rt_progress;

/* Collective. interval: seconds between lines (<= 0: never print). */
void rt_progress_start(rt_progress *p, MPI_Comm comm, const char *what, uint64_t total, double interval);

/* Name the counters (up to RT_PROGRESS_MAX; the rest stay hidden). Not
 * collective; only rank 0's labels are printed. Default: counter 0 "done". */
void rt_progress_labels(rt_progress *p, const char *l0, const char *l1, const char *l2, const char *l3,
                        const char *l4, const char *l5);

/* Not collective; call often (e.g. after each batch) with this rank's count
 * (counter 0; the others keep their last values). */
void rt_progress_update(rt_progress *p, uint64_t done);
/* The same with every counter: v[RT_PROGRESS_MAX]. */
void rt_progress_update_v(rt_progress *p, const uint64_t *v);

/* Collective: completes outstanding operations and frees the communicator.
 * When the stage took longer than the interval, rank 0 prints a last line
 * with the totals (so even a stage done in one long batch reports). */
void rt_progress_finish(rt_progress *p, uint64_t done);

#endif
