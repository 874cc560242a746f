/* summary.c — reduce counters, write the run summary. */
#include "pipeline/summary.h"
#include "base/metrics.h"
#include "base/util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

void rt_metrics_reduce(MPI_Comm comm, uint64_t *total) {
  long rss = rt_peak_rss_kb();
  if (rss > 0) rt_metric_max(RT_M_process_peak_rss_kb, (uint64_t)rss);
  /* CPU time (user + system, all threads) so far: on a shared machine a
   * steadier measure of cost than wall time. */
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    rt_metrics[RT_M_process_cpu_ms] = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
                                      (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
  uint64_t sum[RT_M_COUNT], max[RT_M_COUNT];
  MPI_Reduce(rt_metrics, sum, RT_M_COUNT, MPI_UINT64_T, MPI_SUM, 0, comm);
  MPI_Reduce(rt_metrics, max, RT_M_COUNT, MPI_UINT64_T, MPI_MAX, 0, comm);
  for (int i = 0; i < RT_M_COUNT; i++) total[i] = rt_metric_is_max((rt_metric)i) ? max[i] : sum[i];
}

json_t *rt_summary_stages(const uint64_t *total) {
  json_t *stages = json_object();
  for (int i = 0; i < RT_M_COUNT; i++) {
    const char *stage = rt_metric_stage((rt_metric)i), *name = rt_metric_name((rt_metric)i);
    json_t *s = json_object_get(stages, stage);
    if (!s) {
      s = json_object();
      json_object_set_new(stages, stage, s);
    }
    if (strcmp(name, "us") == 0) json_object_set_new(s, "seconds", json_real((double)total[i] / 1e6));
    else json_object_set_new(s, name, json_integer((json_int_t)total[i]));
  }
  return stages;
}

json_t *rt_summary_rss(MPI_Comm comm) {
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  long mine = rt_peak_rss_kb();
  long *all = rank == 0 ? rt_xmalloc((size_t)size * sizeof *all) : NULL;
  MPI_Gather(&mine, 1, MPI_LONG, all, 1, MPI_LONG, 0, comm);
  if (rank != 0) return NULL;
  json_t *a = json_array();
  for (int r = 0; r < size; r++) json_array_append_new(a, json_integer(all[r]));
  free(all);
  return a;
}

int rt_summary_write(json_t *obj, const char *path, rt_err *err) {
  char *text = json_dumps(obj, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
  if (!text) return rt_err_set(err, RT_ERR_INTERNAL, "cannot serialise the run summary");
  size_t n = strlen(text);
  char *withnl = rt_xmalloc(n + 2);
  memcpy(withnl, text, n);
  withnl[n] = '\n';
  free(text);
  int rc = rt_write_file_atomic(path, withnl, n + 1, err);
  free(withnl);
  return rc;
}
