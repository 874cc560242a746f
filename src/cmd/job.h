/* job.h — what the MPI commands (refresh, aggregate) share: start-up
 * (MPI, flags, config, catalog), stages 1–5 (plan, read, shuffle, sequence,
 * count), and an orderly end (summary, exit status agreed by all ranks). */
#ifndef RT_CMD_JOB_H
#define RT_CMD_JOB_H

#include <mpi.h>
#include <stdint.h>

#include "base/err.h"
#include "format/catalog.h"
#include "format/config.h"
#include "pipeline/count.h"
#include "pipeline/plan.h"
#include "pipeline/sequence.h"

typedef struct rt_job {
  MPI_Comm comm;
  int rank, size;
  rt_config cfg;
  rt_catalog cat;
  rt_plan plan;
  int64_t created_at;   /* output.created_at or now */
  char run_id[64];
  double t_start;
  int no_cache;         /* --no-cache */
  const char *out;      /* --out (aggregate) */
  const char *out_format; /* --format (aggregate) */
  uint64_t *watch;      /* [cat.n] per-cluster watch counts (this rank) */
  int threads;          /* per rank (job.threads, or the CPUs of the rank's affinity mask) */
  int force;            /* --force (refresh): publish even over a table whose window ends later */
  int dry_run;          /* --dry-run (refresh): count and price the calls; no call, no lock, no file */
  int64_t attempt;      /* refresh: 1, or N for the Nth attempt of an interrupted run (TABLE.resume) */
  int64_t first_started; /* refresh: when the first attempt started (unix seconds) */
  struct rt_lock *lock; /* refresh, rank 0: TABLE.lock, held until rt_job_end */
  /* eval: --table, --previous, --json; --from/--to set the window */
  const char *eval_table, *eval_previous;
  int json;
} rt_job;

/* MPI_Init_thread (FUNNELED: only the main thread calls MPI; the stages'
 * threads run between collectives), install the stop signals' handlers
 * (pipeline/stop.h), parse `--config F --set k=v ... [--no-cache] [--force]
 * [--out F] [--format F]`, resolve input.window_days, load and validate
 * config and catalog on every rank. For refresh, rank 0 also takes the
 * table's lock (RT_ERR_LOCKED if a live run holds it) and records or resumes
 * the attempt (TABLE.resume: a resumed run keeps its first attempt's window
 * and created-at). On failure rank 0 prints the error; returns the status
 * (MPI stays initialised: call rt_job_end). */
int rt_job_start(int argc, char **argv, const char *cmd, rt_job *job, rt_err *err);

/* Stages 1–5: plan, read, shuffle (unless partitioned_by_user), sequence,
 * count. Leaves this rank's owned counts in *counts, sealed (one sorted,
 * reduced run; in files of the run directory under memory.per_rank_mb),
 * with their total in *records. Free with rt_runs_free. Collective. */
int rt_job_aggregate(rt_job *job, rt_runs **counts, uint64_t *records, rt_err *err);

/* Stages 1–5 replaced by a counts file (input.counts): every rank reads it
 * and keeps the records of the pairs it owns, re-windowed by day against
 * the configured window (and the previous one for trend). Collective. */
int rt_job_counts_from_file(rt_job *job, rt_runs **counts, rt_err *err);

/* Stages 1–4 without counting (offline evaluation): plan, read, shuffle,
 * then every kept sequence of the users this rank owns goes to
 * fn(ctx[thread], ...), thread in [0, job->threads); a user's sequences
 * all go to one thread, one after another. Collective. */
int rt_job_sequences(rt_job *job, rt_seq_fn fn, void **ctx, rt_err *err);

/* The held-out pass of the recall gate (pipeline/gates.h), after stages
 * 1–5: stages 1–4 over the held-out days, their (c1, c2, x) horizon counts
 * sent to the pairs' owners. The run's counters, watch counts and window
 * are left as they were. Collective. */
struct rt_gates;
int rt_job_holdout(rt_job *job, struct rt_gates *g, rt_err *err);

/* The run directory: output.run_dir, or <output>.run beside the output. */
void rt_job_run_dir(const rt_job *job, char *buf, size_t cap);

/* Print err on rank 0 (if rc); for refresh on rank 0, remove TABLE.resume
 * unless rc is RT_ERR_INTERRUPTED, and release the lock; free,
 * MPI_Finalize; returns rc. */
int rt_job_end(rt_job *job, int rc, rt_err *err);

#endif
