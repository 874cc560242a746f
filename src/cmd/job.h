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
} rt_job;

/* MPI_Init_thread (FUNNELED: only the main thread calls MPI; the stages'
 * threads run between collectives), parse `--config F --set k=v ... [--no-cache] [--out F] [--format F]`,
 * load and validate config and catalog on every rank. On failure rank 0
 * prints the error; returns the status (MPI stays initialised: call
 * rt_job_end). */
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

/* The run directory: output.run_dir, or <output>.run beside the output. */
void rt_job_run_dir(const rt_job *job, char *buf, size_t cap);

/* Print err on rank 0 (if rc), free, MPI_Finalize; returns rc. */
int rt_job_end(rt_job *job, int rc, rt_err *err);

#endif
