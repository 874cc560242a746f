/* cmd_aggregate.c — `ragtide aggregate`: stages 1–5 only, counts to a file.
 *
 * The counts file (docs/formats.md §4) lets several experiments (retrieval
 * modes, drift, fine-tuning export) share one pass over the logs. --format
 * tsv writes `c1 c2 c_next YYYY-MM-DD count` lines with external ids instead,
 * the form the Python oracle prints, for checking and for humans. */
#include "base/log.h"
#include "base/metrics.h"
#include "cmd/commands.h"
#include "cmd/job.h"
#include "format/counts.h"
#include "pipeline/collective.h"
#include "pipeline/summary.h"

#include <errno.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rank 0's side of the merge: records arrive in global order. */
typedef struct {
  const rt_job *job;
  rt_counts_writer *w; /* counts format */
  FILE *tsv;           /* --format tsv: `c1 c2 c_next YYYY-MM-DD count`, refresh window only (af.f) */
  rt_atomic_file af;   /* the TSV goes to OUT.tmp.PID, renamed into place at the end */
  rt_err err;
} out_ctx;

static int emit_counts(void *ctx, const rt_count *c, size_t n) {
  out_ctx *o = ctx;
  if (o->w) return rt_counts_writer_add(o->w, c, n, &o->err);
  if (!o->tsv) return RT_OK;
  const uint32_t *ids = o->job->cat.ids;
  for (size_t i = 0; i < n; i++) {
    if (c[i].win != 0) continue; /* the previous window is an input to trend only */
    char day[32];
    rt_format_utc((int64_t)c[i].day * 86400, day, sizeof day);
    uint64_t k = c[i].key;
    fprintf(o->tsv, "%u\t%u\t%u\t%.10s\t%llu\n", ids[rt_pair_c1(rt_key_pair(k))], ids[rt_pair_c2(rt_key_pair(k))],
            ids[rt_key_next(k)], day, (unsigned long long)c[i].n);
  }
  return RT_OK;
}

int rt_cmd_aggregate(int argc, char **argv) {
  rt_job job;
  rt_err err = {0};
  rt_metrics_reset();
  int rc = rt_job_start(argc, argv, "aggregate", &job, &err);
  if (rc == RT_OK && !job.out) rc = rt_err_set(&err, RT_ERR_USAGE, "aggregate: --out COUNTS is required");
  if (rc == RT_OK && job.out_format && strcmp(job.out_format, "tsv") && strcmp(job.out_format, "counts"))
    rc = rt_err_set(&err, RT_ERR_USAGE, "aggregate: --format must be counts or tsv, not \"%s\"", job.out_format);
  if (rc) return rt_job_end(&job, rc, &err);
  rt_runs *counts = NULL;
  uint64_t mine = 0, nrec;
  rc = rt_job_aggregate(&job, &counts, &mine, &err);
  if (rc) return rt_job_end(&job, rc, &err);
  /* Owned counts reach rank 0 as one sorted stream (by key = by (c1, c2,
   * c_next) id), written as they arrive: rank 0 never holds all of them. */
  MPI_Allreduce(&mine, &nrec, 1, MPI_UINT64_T, MPI_SUM, job.comm);
  out_ctx oc = {.job = &job};
  if (job.rank == 0) {
    if (job.out_format && !strcmp(job.out_format, "tsv")) {
      rc = rt_atomic_open(&oc.af, job.out, &err);
      oc.tsv = rc == RT_OK ? oc.af.f : NULL;
    } else {
      rt_counts_meta meta = {job.cat.ids, job.cat.n, job.cat.hash, job.cfg.window_start, job.cfg.window_end,
                             job.run_id};
      rc = rt_counts_writer_open(job.out, &meta, nrec, &oc.w, &err);
    }
  }
  double t0 = rt_stage_begin(); /* the merge to rank 0 is this command's gather */
  rt_err merr = {0};
  int rc2 = rt_counts_merge_to_root(job.comm, counts, emit_counts, &oc, &merr);
  if (rc2 && merr.code) oc.err = merr; /* a run read error rather than the writer's */
  if (job.rank != 0 && rc == RT_OK && rc2) rc = rc2, err = oc.err; /* agreed at the end */
  rt_stage_end(RT_M_gather_us, t0);
  rt_runs_free(counts);
  uint64_t total[RT_M_COUNT];
  rt_metrics_reduce(job.comm, total);
  json_t *rss = rt_summary_rss(job.comm);
  if (job.rank == 0) {
    if (rc == RT_OK && rc2) rc = rc2, err = oc.err;
    if (oc.w) {
      if (rc == RT_OK) rc = rt_counts_writer_finish(oc.w, &err);
      else rt_counts_writer_abort(oc.w);
    }
    if (oc.tsv) {
      if (rc == RT_OK) rc = rt_atomic_commit(&oc.af, &err);
      else rt_atomic_abort(&oc.af);
    }
    if (rc == RT_OK)
      rt_info("wrote %llu (triple, day) counts to %s: %llu events read, %llu kept, %llu triples",
              (unsigned long long)nrec, job.out, (unsigned long long)total[RT_M_read_events],
              (unsigned long long)total[RT_M_read_kept], (unsigned long long)total[RT_M_sequence_triples]);
    /* A summary beside the output, the same shape as refresh's. */
    json_t *s = json_object();
    json_object_set_new(s, "run_id", json_string(job.run_id));
    json_object_set_new(s, "status", json_string(rc ? "failed" : "written"));
    json_object_set_new(s, "exit_code", json_integer(rc));
    json_object_set_new(s, "ranks", json_integer(job.size));
    json_object_set_new(s, "records", json_integer((json_int_t)nrec));
    json_object_set_new(s, "stages", rt_summary_stages(total));
    json_object_set_new(s, "peak_rss_kb_per_rank", rss);
    json_object_set_new(s, "wall_seconds", json_real(rt_now() - job.t_start));
    char path[4096];
    snprintf(path, sizeof path, "%s.summary.json", job.out);
    rt_err serr = {0};
    if (rt_summary_write(s, path, &serr)) rt_warn("%s", serr.msg);
    json_decref(s);
  }
  rc = rt_agree(job.comm, rc, &err);
  return rt_job_end(&job, rc, &err);
}
