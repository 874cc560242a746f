/* summary.c — reduce counters, write the run summary. */
#include "pipeline/summary.h"
#include "pipeline/collective.h"
#include "base/metrics.h"
#include "base/util.h"
#include "llm/infer.h"

#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

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

char *rt_summary_text(json_t *obj, size_t *len) {
  char *text = json_dumps(obj, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
  if (!text) return NULL;
  size_t n = strlen(text);
  char *withnl = rt_xmalloc(n + 2);
  memcpy(withnl, text, n);
  withnl[n] = '\n';
  withnl[n + 1] = '\0';
  free(text);
  *len = n + 1;
  return withnl;
}

int rt_summary_write(json_t *obj, const char *path, rt_err *err) {
  size_t n;
  char *text = rt_summary_text(obj, &n);
  if (!text) return rt_err_set(err, RT_ERR_INTERNAL, "cannot serialise the run summary");
  int rc = rt_write_file_atomic(path, text, n, err);
  free(text);
  return rc;
}

/* Newest first by modification time, then name. */
static int by_mtime_desc(const void *a, const void *b) {
  const struct { char *name; time_t t; } *x = a, *y = b;
  if (x->t != y->t) return x->t < y->t ? 1 : -1;
  return strcmp(y->name, x->name);
}

int rt_summary_write_run(json_t *obj, const char *dir, const char *run_id, char *path, size_t cap, rt_err *err) {
  snprintf(path, cap, "%s/%s.summary.json", dir, run_id);
  if (mkdir(dir, 0755) != 0 && errno != EEXIST)
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot create the run directory %s for the run summary: %s (set "
                      "output.run_dir)", dir, strerror(errno));
  int rc = rt_summary_write(obj, path, err);
  if (rc) return rc;
  /* Keep the newest RT_SUMMARY_RUNS_KEPT: a nightly that fails for weeks
   * must not fill the directory. */
  DIR *d = opendir(dir);
  if (!d) return RT_OK;
  struct { char *name; time_t t; } *f = NULL;
  size_t n = 0, cap2 = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t l = strlen(e->d_name);
    if (l < 14 || strcmp(e->d_name + l - 13, ".summary.json") != 0) continue;
    char full[8192];
    snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
    struct stat st;
    if (stat(full, &st) != 0) continue;
    if (n == cap2) f = rt_xrealloc(f, (cap2 = cap2 ? 2 * cap2 : 16) * sizeof *f);
    f[n].name = rt_xstrdup(full);
    f[n++].t = st.st_mtime;
  }
  closedir(d);
  if (n > 1) qsort(f, n, sizeof *f, by_mtime_desc);
  for (size_t i = 0; i < n; i++) {
    if (i >= RT_SUMMARY_RUNS_KEPT && strcmp(f[i].name, path) != 0) unlink(f[i].name);
    free(f[i].name);
  }
  free(f);
  return RT_OK;
}

json_t *rt_summary_llm(MPI_Comm comm, const rt_llm_stats *s) {
  /* One array: the counters, then the histogram. */
#define RT_LLM_SUM_FIELDS(X)                                                                                      \
  X(attempts, answered) X(attempts, http_429) X(attempts, http_429_quota) X(attempts, http_500)                  \
  X(attempts, http_502) X(attempts, http_503) X(attempts, http_504) X(attempts, http_5xx_other)                 \
  X(attempts, http_4xx) X(attempts, http_other) X(attempts, timeouts) X(attempts, conn_errors)                  \
  X(attempts, conn_resets) X(attempts, resolve_errors) X(attempts, bad_responses)
  enum { NF = 15, N = NF + 6 + RT_LLM_LAT_BUCKETS };
  uint64_t v[N], tot[N];
  memset(v, 0, sizeof v);
  if (s) {
    int k = 0;
#define RT_PUT(group, f) v[k++] = s->f;
    RT_LLM_SUM_FIELDS(RT_PUT)
#undef RT_PUT
    v[k++] = s->prompt_tokens;
    v[k++] = s->completion_tokens;
    v[k++] = s->est_tokens;
    v[k++] = s->rate_cuts;
    v[k++] = s->limit_batches;
    v[k++] = s->throttled_ms;
    memcpy(v + k, s->latency_buckets, sizeof s->latency_buckets);
  }
  MPI_Reduce(v, tot, N, MPI_UINT64_T, MPI_SUM, 0, comm);
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank != 0) return NULL;
  json_t *o = json_object(), *attempts = json_object(), *tok = json_object(), *rate = json_object(), *lat = json_object();
  int k = 0;
#define RT_GET(group, f) json_object_set_new(group, #f, json_integer((json_int_t)tot[k++]));
  RT_LLM_SUM_FIELDS(RT_GET)
#undef RT_GET
#undef RT_LLM_SUM_FIELDS
  json_object_set_new(tok, "prompt", json_integer((json_int_t)tot[k++]));
  json_object_set_new(tok, "completion", json_integer((json_int_t)tot[k++]));
  json_object_set_new(tok, "estimated", json_integer((json_int_t)tot[k++]));
  json_object_set_new(rate, "cuts", json_integer((json_int_t)tot[k++]));
  json_object_set_new(rate, "limit_batches", json_integer((json_int_t)tot[k++]));
  json_object_set_new(rate, "throttled_ms", json_integer((json_int_t)tot[k++]));
  const uint64_t *b = tot + k;
  uint64_t answered = 0;
  for (int i = 0; i < RT_LLM_LAT_BUCKETS; i++) answered += b[i];
  json_object_set_new(lat, "answered", json_integer((json_int_t)answered));
  static const char *const qn[3] = {"p50", "p95", "p99"};
  static const double qv[3] = {0.50, 0.95, 0.99};
  for (int i = 0; i < 3; i++)
    json_object_set_new(lat, qn[i], answered ? json_real(rt_llm_latency_quantile(b, qv[i])) : json_null());
  json_object_set_new(o, "latency_ms", lat);
  json_object_set_new(o, "attempts", attempts);
  json_object_set_new(o, "tokens", tok);
  json_object_set_new(o, "rate", rate);
  return o;
}

void rt_summary_batches(MPI_Comm comm, json_t *into, json_t *mine) {
  char *s = json_dumps(mine ? mine : json_array(), JSON_COMPACT);
  json_decref(mine);
  size_t len = strlen(s);
  void *all = NULL;
  size_t alen = 0;
  rt_gather_bytes(comm, s, len + 1, &all, &alen); /* each rank's array, NUL-terminated */
  free(s);
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank != 0 || !into) {
    free(all);
    return;
  }
  json_t *list = json_array(), *by = json_object();
  double longest = 0;
  json_int_t req = 0, ok = 0, failed = 0;
  for (size_t off = 0; off < alen;) {
    const char *p = (const char *)all + off;
    size_t l = strnlen(p, alen - off);
    json_error_t je;
    json_t *a = json_loadb(p, l, 0, &je);
    size_t i;
    json_t *b;
    json_array_foreach(a, i, b) {
      json_array_append(list, b);
      const char *st = json_string_value(json_object_get(b, "state"));
      json_t *n = json_object_get(by, st ? st : "?");
      json_object_set_new(by, st ? st : "?", json_integer(n ? json_integer_value(n) + 1 : 1));
      req += json_integer_value(json_object_get(b, "requests"));
      ok += json_integer_value(json_object_get(b, "ok"));
      failed += json_integer_value(json_object_get(b, "failed"));
      double sec = json_real_value(json_object_get(b, "seconds"));
      if (sec > longest) longest = sec;
    }
    json_decref(a);
    off += l + 1;
  }
  free(all);
  json_t *o = json_pack("{s:I,s:o,s:I,s:I,s:I,s:f,s:o}", "count", (json_int_t)json_array_size(list), "by_state", by,
                        "requests", req, "answered", ok, "failed_lines", failed, "seconds_to_complete", longest,
                        "list", list);
  json_object_set_new(into, "batches", o);
}
