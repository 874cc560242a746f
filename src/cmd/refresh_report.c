/* refresh_report.c — what a run of `ragtide refresh` tells its operator
 * once it ends: the run summary (JSON, docs/operations.md) and the
 * Prometheus metrics file (pipeline/promfile.h). See refresh.h. */
#include "base/log.h"
#include "base/metrics.h"
#include "cmd/refresh.h"
#include "pipeline/promfile.h"
#include "pipeline/stop.h"
#include "pipeline/summary.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

json_t *refresh_summary(refresh *r, const uint64_t *total, int rc, const rt_err *err, const char *status,
                        const char *table_path, const ragtide_table_info *info, double exact_rate,
                            double failed_frac) {
  const rt_job *job = r->job;
  const rt_config *cfg = r->cfg;
  json_t *o = json_object();
  char ts[32];
  json_object_set_new(o, "run_id", json_string(job->run_id));
  json_object_set_new(o, "status", json_string(status));
  json_object_set_new(o, "exit_code", json_integer(rc));
  json_object_set_new(o, "error", rc ? json_string(err->msg) : json_null());
  rt_format_utc(job->created_at, ts, sizeof ts);
  json_object_set_new(o, "created_at", json_string(ts));
  json_object_set_new(o, "ranks", json_integer(job->size));
  json_object_set_new(o, "attempt", json_integer((json_int_t)job->attempt));
  /* Where the status comes from: the signal that stopped the run, the gate
   * that halted it, or the error (in "error"). */
  int sig = rt_stop_requested();
  json_object_set_new(o, "stopped_by", rc == RT_ERR_INTERRUPTED && sig ? json_string(rt_stop_name(sig)) : json_null());
  json_t *sl = json_object();
  static const char *const SLURM[][2] = {{"job_id", "SLURM_JOB_ID"},           {"array_job_id", "SLURM_ARRAY_JOB_ID"},
                                         {"array_task_id", "SLURM_ARRAY_TASK_ID"}, {"restart_count", "SLURM_RESTART_COUNT"},
                                         {"job_name", "SLURM_JOB_NAME"}};
  for (size_t i = 0; i < sizeof SLURM / sizeof *SLURM; i++) {
    const char *v = getenv(SLURM[i][1]);
    if (v && *v) json_object_set_new(sl, SLURM[i][0], json_string(v));
  }
  json_object_set_new(o, "slurm", json_object_size(sl) ? sl : (json_decref(sl), json_null()));
  json_t *w = json_object();
  rt_format_utc(cfg->window_start, ts, sizeof ts);
  json_object_set_new(w, "start", json_string(ts));
  rt_format_utc(cfg->window_end, ts, sizeof ts);
  json_object_set_new(w, "end", json_string(ts));
  json_object_set_new(o, "window", w);
  json_t *l = json_object();
  json_object_set_new(l, "api", json_string(cfg->api));
  int asks = strcmp(cfg->api, "retrieval") != 0; /* llm.api = retrieval asks no model, renders no prompt */
  json_object_set_new(l, "model", asks ? json_string(cfg->model) : json_null());
  json_object_set_new(l, "prompt_mode", asks ? json_string(cfg->prompt_mode) : json_null());
  json_object_set_new(l, "template", asks ? json_string(cfg->template_path) : json_null());
  json_object_set_new(o, "llm", l);
  json_t *q = json_object();
  json_object_set_new(q, "answers", json_integer((json_int_t)total[RT_M_match_answers]));
  json_object_set_new(q, "exact_match_rate", exact_rate >= 0 ? json_real(exact_rate) : json_null());
  json_object_set_new(q, "min_exact_match", json_real(cfg->min_exact_match));
  json_object_set_new(q, "failed_fraction", failed_frac >= 0 ? json_real(failed_frac) : json_null());
  json_object_set_new(q, "max_failed_fraction", json_real(cfg->max_failed_fraction));
  uint64_t pairs_ctx = total[RT_M_retrieve_pairs];
  json_object_set_new(q, "pairs_with_context", json_integer((json_int_t)pairs_ctx));
  json_object_set_new(o, "quality", q);
  json_t *t = json_object();
  json_object_set_new(t, "path", json_string(table_path));
  json_object_set_new(t, "published", json_boolean(strcmp(status, "published") == 0));
  if (info) {
    json_t *p = json_object();
    for (int i = 0; i < RAGTIDE_PROV_COUNT; i++)
      json_object_set_new(p, ragtide_provenance_name((ragtide_provenance)i),
                          json_integer((json_int_t)info->count_by_prov[i]));
    json_object_set_new(t, "pairs", p);
  }
  json_object_set_new(o, "table", t);
  json_object_set_new(o, "stages", rt_summary_stages(total));
  json_object_set_new(o, "wall_seconds", json_real(rt_now() - job->t_start));
  return o;
}

/* The endpoint's latency, attempts and tokens (rt_summary_llm, reduced
 * over ranks) and, with llm.price_*_per_mtok, the cost of the tokens the
 * endpoint reported (or, where it reported none, the client's estimate). */
void refresh_add_endpoint(json_t *s, json_t *endpoint, const uint64_t *total, const rt_config *cfg) {
  if (endpoint) json_object_set_new(s, "endpoint", endpoint);
  if (!(cfg->price_in_per_mtok > 0 || cfg->price_out_per_mtok > 0)) {
    json_object_set_new(s, "cost", json_null());
    return;
  }
  double in = (double)total[RT_M_infer_prompt_tokens], out = (double)total[RT_M_infer_completion_tokens];
  /* Tokens answered through a Batch API cost half (both providers). */
  double bin = (double)total[RT_M_infer_batch_prompt_tokens], bout = (double)total[RT_M_infer_batch_completion_tokens];
  json_t *c = json_object();
  json_object_set_new(c, "usd", json_real((in - bin / 2) * cfg->price_in_per_mtok / 1e6 +
                                          (out - bout / 2) * cfg->price_out_per_mtok / 1e6));
  json_object_set_new(c, "batch_prompt_tokens", json_integer((json_int_t)bin));
  json_object_set_new(c, "batch_completion_tokens", json_integer((json_int_t)bout));
  json_object_set_new(c, "prompt_tokens", json_integer((json_int_t)in));
  json_object_set_new(c, "completion_tokens", json_integer((json_int_t)out));
  json_object_set_new(c, "price_in_per_mtok", json_real(cfg->price_in_per_mtok));
  json_object_set_new(c, "price_out_per_mtok", json_real(cfg->price_out_per_mtok));
  json_object_set_new(s, "cost", c);
}

/* output.metrics_file (rank 0), whatever the outcome. */
void refresh_write_metrics(refresh *r, const uint64_t *total, int rc, const char *status,
                          const ragtide_table_info *pub, double exact, double failed) {
  const rt_config *cfg = r->cfg;
  if (!*cfg->metrics_file) return;
  rt_prom_run m = {.table = cfg->table,
                   .status = status,
                   .exit_code = rc,
                   .attempt = r->job->attempt,
                   .duration_s = rt_now() - r->job->t_start,
                   .finished_at = (int64_t)time(NULL),
                   .calls = total[RT_M_infer_calls],
                   .cached = total[RT_M_infer_cache_hits],
                   .requests = total[RT_M_infer_requests],
                   .failed = total[RT_M_infer_failed],
                   .retries = total[RT_M_infer_retries],
                   .http_429 = total[RT_M_infer_http_429],
                   .exact_match = exact,
                   .gate_exact = exact >= 0 ? exact >= cfg->min_exact_match : -1,
                   .gate_errors = failed >= 0 ? failed <= cfg->max_failed_fraction : -1};
  /* The served table's file time is its publish time (rename keeps it). */
  struct stat st;
  if (stat(cfg->table, &st) == 0) m.last_publish = (int64_t)st.st_mtime;
  if (pub) {
    m.have_pairs = 1;
    for (int i = 0; i < RAGTIDE_PROV_COUNT; i++) m.pairs[i] = pub->count_by_prov[i];
  }
  rt_err e = {0};
  if (rt_prom_write(cfg->metrics_file, &m, &e)) rt_warn("%s", e.msg);
}

