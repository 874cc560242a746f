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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int write_tsv(const rt_job *job, const rt_count *c, size_t n, const char *path, rt_err *err) {
  RT_VEC(char) b = {0};
  for (size_t i = 0; i < n; i++) {
    if (c[i].win != 0) continue; /* the previous window is an input to trend only */
    char day[32], line[128];
    rt_format_utc((int64_t)c[i].day * 86400, day, sizeof day);
    uint64_t k = c[i].key;
    int len = snprintf(line, sizeof line, "%u\t%u\t%u\t%.10s\t%llu\n", job->cat.ids[rt_pair_c1(rt_key_pair(k))],
                       job->cat.ids[rt_pair_c2(rt_key_pair(k))], job->cat.ids[rt_key_next(k)], day,
                       (unsigned long long)c[i].n);
    rt_vec_reserve(&b, b.len + (size_t)len);
    memcpy(b.data + b.len, line, (size_t)len);
    b.len += (size_t)len;
  }
  int rc = rt_write_file_atomic(path, b.data ? b.data : "", b.len, err);
  free(b.data);
  return rc;
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
  rt_count_vec counts = {0};
  rc = rt_job_aggregate(&job, &counts, &err);
  if (rc) return rt_job_end(&job, rc, &err);
  /* Gather the owned counts to rank 0; sorted by key = by (c1, c2, c_next) id. */
  void *all;
  size_t nbytes;
  rt_gather_bytes(job.comm, 0, counts.data, counts.len * sizeof(rt_count), &all, &nbytes);
  free(counts.data);
  uint64_t total[RT_M_COUNT];
  rt_metrics_reduce(job.comm, total);
  json_t *rss = rt_summary_rss(job.comm);
  if (job.rank == 0) {
    rt_count_vec v = {all, nbytes / sizeof(rt_count), nbytes / sizeof(rt_count)};
    rt_counts_reduce(&v);
    if (job.out_format && !strcmp(job.out_format, "tsv")) {
      rc = write_tsv(&job, v.data, v.len, job.out, &err);
    } else {
      rt_counts_meta meta = {job.cat.ids, job.cat.n, job.cat.hash, job.cfg.window_start, job.cfg.window_end,
                             job.run_id};
      rc = rt_counts_write(job.out, &meta, v.data, v.len, &err);
    }
    if (rc == RT_OK)
      rt_info("wrote %zu (triple, day) counts to %s: %llu events read, %llu kept, %llu triples", v.len, job.out,
              (unsigned long long)total[RT_M_read_events], (unsigned long long)total[RT_M_read_kept],
              (unsigned long long)total[RT_M_sequence_triples]);
    /* A summary beside the output, the same shape as refresh's. */
    json_t *s = json_object();
    json_object_set_new(s, "run_id", json_string(job.run_id));
    json_object_set_new(s, "status", json_string(rc ? "failed" : "written"));
    json_object_set_new(s, "exit_code", json_integer(rc));
    json_object_set_new(s, "ranks", json_integer(job.size));
    json_object_set_new(s, "records", json_integer((json_int_t)v.len));
    json_object_set_new(s, "stages", rt_summary_stages(total));
    json_object_set_new(s, "peak_rss_kb_per_rank", rss);
    json_object_set_new(s, "wall_seconds", json_real(rt_now() - job.t_start));
    char path[4096];
    snprintf(path, sizeof path, "%s.summary.json", job.out);
    rt_err serr = {0};
    if (rt_summary_write(s, path, &serr)) rt_warn("%s", serr.msg);
    json_decref(s);
    free(v.data);
  }
  rc = rt_agree(job.comm, rc, &err);
  return rt_job_end(&job, rc, &err);
}
