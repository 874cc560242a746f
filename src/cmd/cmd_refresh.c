/* cmd_refresh.c — `ragtide refresh`: the whole job, stages 1–11.
 *
 * Data flow (one rank's view):
 *   plan -> read -> shuffle -> sequence -> count     (cmd/job.c)
 *   -> retrieve                                       (refresh_retrieve, here)
 *   -> [per batch: prompt -> journal/infer -> match]  (refresh_llm.c)
 *   -> gather -> (rank 0) gates -> overlay on base -> publish with summary
 *      and contexts                                   (publish_stage, here)
 * Nothing is published unless every rank finished and every gate passed;
 * the summary and contexts beside the table always describe the served
 * table, and a run that publishes nothing writes its summary in the run
 * directory under its run id (refresh.h lists the other files). */
#include "base/log.h"
#include "base/metrics.h"
#include "base/util.h"
#include "cmd/commands.h"
#include "cmd/refresh.h"
#include "format/publish.h"
#include "pipeline/collective.h"
#include "pipeline/stop.h"
#include "pipeline/summary.h"
#include "pipeline/table.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *path_or(const char *v, const char *table, const char *suffix) {
  if (v && *v) return rt_xstrdup(v);
  size_t n = strlen(table) + strlen(suffix) + 1;
  char *p = rt_xmalloc(n);
  snprintf(p, n, "%s%s", table, suffix);
  return p;
}

static char *render_examples(const rt_catalog *cat, const rt_triple_count *t, size_t n) {
  RT_VEC(char) b = {0};
  for (size_t i = 0; i < n; i++) {
    char line[4096];
    uint64_t k = t[i].key;
    int len = snprintf(line, sizeof line, "%s- %s | %s -> %s", i ? "\n" : "",
                       cat->desc[rt_pair_c1(rt_key_pair(k))], cat->desc[rt_pair_c2(rt_key_pair(k))],
                       cat->desc[rt_key_next(k)]);
    rt_vec_reserve(&b, b.len + (size_t)len + 1);
    memcpy(b.data + b.len, line, (size_t)len + 1);
    b.len += (size_t)len;
  }
  if (!b.data) return rt_xstrdup("");
  return b.data;
}

/* The table stage's side of the results gather (rank 0). */
typedef struct {
  ragtide_table_builder *b; /* NULL: a gate failed, results are dropped */
  int candidates;
  uint32_t day;
  int bad;
  uint64_t applied;
  ragtide_table_info info;
} overlay_ctx;

static void on_results(void *ctx, const char *buf, size_t len) {
  overlay_ctx *oc = ctx;
  if (!oc->b) return;
  long n = rt_table_overlay(oc->b, oc->candidates, buf, len, oc->day);
  if (n < 0) oc->bad = 1;
  else oc->applied += (uint64_t)n;
}

static int cmp_fp(const void *a, const void *b) {
  const rt_ctx_fp *x = a, *y = b;
  return x->pair < y->pair ? -1 : x->pair > y->pair;
}


/* Set-up every rank does; each may fail alone, so agree after each. */
int refresh_setup(refresh *r, rt_err *err) {
  rt_job *job = r->job;
  const rt_config *cfg = r->cfg;
  int rc = RT_OK;
  /* llm.api = retrieval asks no model: it needs no template. */
  if (strcmp(cfg->api, "retrieval") != 0) rc = rt_template_load(cfg->template_path, &r->tmpl, err);
  if (rc == RT_OK && *cfg->base_table) rc = rt_base_open(cfg->base_table, &job->cat, &r->base, err);
  if (rc == RT_OK && strcmp(cfg->api, "retrieval") != 0) rc = rt_llm_client_new(cfg, &job->cat, &r->client, err);
  if ((rc = rt_agree(job->comm, rc, err))) return rc;
  r->summary_due = 1;
  rt_matcher_init(&r->matcher, &job->cat, cfg->fuzzy, cfg->fuzzy_threshold);
  /* The journal: answers paid for in earlier runs (interrupted ones too). */
  if (r->cache_path && r->client && job->dry_run) return refresh_journal_peek(r, err);
  if (r->cache_path && r->client) {
    r->journal = 1;
    return refresh_journal_begin(r, err);
  }
  return RT_OK;
}

/* Stages 1–6: counts (from the logs or a counts file), the recall gate's
 * held-out pass, then retrieval: each owned pair's top successors, the
 * popular block, and the global examples. Base mode needs none of it. */
int refresh_retrieve(refresh *r, rt_err *err) {
  rt_job *job = r->job;
  const rt_config *cfg = r->cfg;
  if (r->base_mode) {
    rt_plan_pairs_only(job->size, &job->plan);
    r->examples = rt_xstrdup("");
    return RT_OK;
  }
  rt_runs *counts = NULL;
  uint64_t nrec = 0;
  int rc = rt_gates_begin(&job->cfg, &r->gates, err); /* gates.holdout_days: the last days leave the window */
  if (rc == RT_OK)
    rc = *cfg->counts ? rt_job_counts_from_file(job, &counts, err) : rt_job_aggregate(job, &counts, &nrec, err);
  if (rc == RT_OK && r->gates.holdout) rc = rt_job_holdout(job, &r->gates, err);
  if (rc) {
    rt_runs_free(counts);
    return rc;
  }
  /* The owned records stream past retrieval in chunks of whole pairs: only
   * the retrieved successors stay. */
  int global = strcmp(cfg->granularity, "global") == 0;
  rt_count_vec chunk = {0};
  rt_triple_vec acc = {0};
  long got;
  while ((got = rt_runs_next_pairs(counts, &chunk, 1u << 16, err)) > 0) {
    rt_retrieve_more(chunk.data, chunk.len, cfg, &r->ret);
    if (global) rt_retrieve_global_add(chunk.data, chunk.len, 100, &acc);
  }
  free(chunk.data);
  rt_runs_free(counts);
  if ((rc = rt_agree(job->comm, got < 0 ? err->code : RT_OK, err))) {
    free(acc.data);
    return rc;
  }
  r->n_popular = rt_retrieve_popular(job->watch, job->cat.n, (size_t)(cfg->popular_n < 64 ? cfg->popular_n : 64),
                                     job->comm, r->popular);
  if (global) {
    rt_triple_count *top;
    size_t ntop;
    rt_retrieve_global_finish(&acc, 100, job->comm, &top, &ntop);
    r->examples = render_examples(&job->cat, top, ntop);
    free(top);
    /* Global granularity: one shared context block in every prompt, none
     * per pair (the pair's own successors still serve as its fallback). */
    r->global = 1;
  } else {
    r->examples = rt_xstrdup("");
  }
  /* Fingerprint every pair's retrieved context, to report how much of it
   * moved since the served table's run (rank 0 compares after the gather). */
  for (size_t i = 0; i < r->ret.ctx.len; i++)
    rt_vec_push(&r->fps, ((rt_ctx_fp){r->ret.ctx.data[i].pair,
                                      rt_ctx_hash(r->ret.next.data + r->ret.ctx.data[i].off, r->ret.ctx.data[i].n)}));
  return RT_OK;
}

/* A run that publishes nothing leaves its summary in the run directory,
 * under its run id, and says where: the summary beside the table keeps
 * describing the served table. Rank 0. */
static void summary_of_failed_run(refresh *r, json_t *s) {
  char dir[4096], path[4200];
  rt_job_run_dir(r->job, dir, sizeof dir);
  rt_err e = {0};
  if (rt_summary_write_run(s, dir, r->job->run_id, path, sizeof path, &e)) rt_warn("%s", e.msg);
  else rt_info("run summary: %s (nothing published; %s still describes the served table)", path, r->summary_path);
}

/* Stages 10–11: fingerprints and counters to rank 0, the gates, then the
 * results stream to rank 0 into the table builder; rank 0 stages the table,
 * reads it back, and publishes it with its summary and contexts as one
 * generation (format/publish.h). */
static int publish_stage(refresh *r, rt_err *err) {
  rt_job *job = r->job;
  const rt_config *cfg = r->cfg;
  int rc = rt_gates_eval(&r->gates, job->comm, &r->results, r->base, job->cat.n, err);
  if ((rc = rt_agree(job->comm, rc, err))) return rc;

  void *allfp;
  size_t nfpb;
  rt_gather_bytes(job->comm, r->fps.data, r->fps.len * sizeof *r->fps.data, &allfp, &nfpb);
  uint64_t total[RT_M_COUNT];
  rt_metrics_reduce(job->comm, total);
  json_t *endpoint = rt_summary_llm(job->comm, r->client ? rt_llm_get_stats(r->client) : NULL); /* rank 0 */
  if (rt_llm_client_batch(r->client)) rt_summary_batches(job->comm, endpoint, rt_llm_batch_report(r->client));

  overlay_ctx oc = {.candidates = (int)cfg->candidates, .day = r->day};
  double exact = -1, failed = -1, ctx_changed = -1;
  size_t nfp = nfpb / sizeof(rt_ctx_fp);
  if (job->rank == 0) {
    /* Context drift since the served table's run (a report; never fails the run). */
    if (!r->base_mode) {
      rt_ctx_fp *cur = allfp;
      qsort(cur, nfp, sizeof *cur, cmp_fp);
      char *ctx_path = path_or(NULL, cfg->table, ".contexts");
      rt_ctx_fp *prev;
      size_t nprev;
      rt_contexts_load(ctx_path, job->cat.hash, &prev, &nprev);
      if (nfp) ctx_changed = (double)rt_contexts_changed(prev, nprev, cur, nfp) / (double)nfp;
      free(prev);
      free(ctx_path);
    }
    rt_gate_input gi = {.calls = total[RT_M_infer_calls] - total[RT_M_infer_cache_hits],
                        .failed = total[RT_M_infer_failed],
                        .answers = total[RT_M_match_answers],
                        .exact = total[RT_M_match_exact],
                        .force = job->force,
                        .base_mode = r->base_mode};
    const char *why = NULL;
    rc = rt_gates_decide(&r->gates, cfg, &gi, &why, &exact, &failed, err);
    if (rc) r->status = why;
    else {
      ragtide_table_info info = {0};
      info.k = 2;
      info.created_at = job->created_at;
      info.window_start = r->base_mode ? 0 : cfg->window_start;
      info.window_end = r->base_mode ? 0 : cfg->window_end;
      info.catalog_hash = job->cat.hash;
      info.template_hash = r->tmpl.hash;
      info.config_hash = rt_config_hash(cfg);
      info.model = r->client ? cfg->model : "retrieval";
      info.run_id = job->run_id;
      info.base_run_id = r->base ? ragtide_table_get_info(r->base)->run_id : "";
      rc = rt_table_begin(&job->cat, (int)cfg->candidates, r->base, &oc.b, err);
      oc.info = info;
    }
  }
  /* Results stream to rank 0 rank by rank, straight into the builder. */
  rt_gather_results(job->comm, &r->results, on_results, &oc);

  /* Rank 0: stage, verify, describe, publish; or describe what stopped it. */
  ragtide_table *pub = NULL; /* the table this run publishes, read back from its staged file */
  char *staged = NULL;
  if (job->rank == 0 && oc.b) {
    if (oc.bad) rc = rt_err_set(err, RT_ERR_INTERNAL, "a rank sent a malformed result buffer; nothing published");
    if (rc == RT_OK && ragtide_builder_set_info(oc.b, &oc.info) != RAGTIDE_OK)
      rc = rt_err_set(err, RT_ERR_INTERNAL, "table header rejected by the builder");
    if (rc == RT_OK) rc = rt_table_stage(oc.b, cfg->table, &staged, err);
    ragtide_builder_free(oc.b);
    char msg[512];
    if (rc == RT_OK && ragtide_table_open(staged, &pub, msg, sizeof msg) != RAGTIDE_OK)
      rc = rt_err_set(err, RT_ERR_OUTPUT, "the new table does not read back, nothing published: %s", msg);
    /* Last chance to honour a stop: past this point the run publishes. */
    if (rc == RT_OK && rt_stop_poll()) {
      r->status = "interrupted";
      rc = rt_err_set(err, RT_ERR_INTERRUPTED, "interrupted by %s before publishing; nothing published — "
                      "rerun the same command to resume", rt_stop_name(rt_stop_requested()));
    }
  }
  /* Peak memory after the table was built (rank 0's largest moment). */
  json_t *rss = rt_summary_rss(job->comm);
  if (job->rank == 0) {
    long own = rt_peak_rss_kb();
    if (own > 0 && (uint64_t)own > total[RT_M_process_peak_rss_kb]) total[RT_M_process_peak_rss_kb] = (uint64_t)own;
    /* gather and table ran on rank 0 after the counters were reduced */
    total[RT_M_gather_us] = rt_metrics[RT_M_gather_us];
    total[RT_M_gather_results] = oc.applied;
    total[RT_M_table_us] = rt_metrics[RT_M_table_us];
    const ragtide_table_info *pi = pub ? ragtide_table_get_info(pub) : NULL;
    if (rc == RT_OK) r->status = "published"; /* what the summary beside the table will say */
    else if (!r->status) r->status = "failed";
    json_t *s = refresh_summary(r, total, rc, err, r->status, cfg->table, pi, exact, failed);
    json_object_set_new(s, "peak_rss_kb_per_rank", rss);
    struct stat st;
    if (staged && stat(staged, &st) == 0)
      json_object_set_new(json_object_get(s, "table"), "bytes", json_integer((json_int_t)st.st_size));
    json_t *inc = json_object();
    json_object_set_new(inc, "calls_made", json_integer((json_int_t)total[RT_M_infer_requests]));
    json_object_set_new(inc, "answers_reused", json_integer((json_int_t)total[RT_M_infer_cache_hits]));
    json_object_set_new(inc, "context_changed_share", ctx_changed >= 0 ? json_real(ctx_changed) : json_null());
    json_object_set_new(s, "incremental", inc);
    refresh_add_endpoint(s, endpoint, total, cfg);
    endpoint = NULL;
    if (rc == RT_OK) {
      /* One generation: the table, the summary that describes it and the
       * contexts it was built from (a base run has none: the served
       * contexts move to backup 1 with their table). */
      size_t slen = 0, clen = 0;
      char *stext = rt_summary_text(s, &slen);
      char *ctext = r->base_mode ? NULL : rt_contexts_encode(job->cat.hash, allfp, nfp, &clen);
      char *ctx_path = path_or(NULL, cfg->table, ".contexts");
      rt_pub_side side[2] = {{r->summary_path, stext, slen}, {ctx_path, ctext, clen}};
      rt_stop_arm(0);
      rc = rt_table_commit(staged, cfg->table, (int)cfg->keep, side, 2, err);
      free(stext);
      free(ctext);
      free(ctx_path);
      if (rc) { /* the staged files are gone and nothing served changed */
        r->status = "failed";
        json_object_set_new(s, "status", json_string("failed"));
        json_object_set_new(s, "exit_code", json_integer(rc));
        json_object_set_new(s, "error", json_string(err->msg));
        json_object_set_new(json_object_get(s, "table"), "published", json_false());
      }
    }
    if (rc) summary_of_failed_run(r, s);
    json_decref(s);
    refresh_write_metrics(r, total, rc, r->status, rc == RT_OK ? pi : NULL, exact, failed);
    if (rc == RT_OK) {
      char rate[32] = "n/a";
      if (exact >= 0) snprintf(rate, sizeof rate, "%.2f%%", exact * 100);
      rt_info("published %s: %llu rag, %llu retrieval, %llu base, %llu fallback, %llu none; exact match %s; "
              "summary %s", cfg->table, (unsigned long long)pi->count_by_prov[RAGTIDE_PROV_RAG],
              (unsigned long long)pi->count_by_prov[RAGTIDE_PROV_RETRIEVAL],
              (unsigned long long)pi->count_by_prov[RAGTIDE_PROV_BASE],
              (unsigned long long)pi->count_by_prov[RAGTIDE_PROV_FALLBACK],
              (unsigned long long)pi->count_by_prov[RAGTIDE_PROV_NONE], rate, r->summary_path);
    }
  } else {
    json_decref(rss);
  }
  if (pub) ragtide_table_close(pub);
  if (staged && rc) unlink(staged); /* a refused or failed publish leaves no staged table */
  free(staged);
  free(allfp);
  json_decref(endpoint);
  r->summary_due = 0;
  rt_stop_arm(0); /* the outcome is decided and reported: a late signal changes nothing */
  return rt_agree(job->comm, rc, err);
}

/* A run that failed after start-up (the same rc on every rank) still
 * leaves a summary, so the operator sees how far it got and why it
 * stopped. */
static void failed_summary(refresh *r, int rc, const rt_err *err) {
  refresh_copy_llm_stats(r->client);
  uint64_t tot[RT_M_COUNT];
  rt_metrics_reduce(r->job->comm, tot);
  json_t *ep = rt_summary_llm(r->job->comm, r->client ? rt_llm_get_stats(r->client) : NULL);
  if (rt_llm_client_batch(r->client)) rt_summary_batches(r->job->comm, ep, rt_llm_batch_report(r->client));
  json_t *rss = rt_summary_rss(r->job->comm);
  if (r->job->rank != 0) return;
  const char *st = rc == RT_ERR_INTERRUPTED ? "interrupted" : "failed";
  json_t *s = refresh_summary(r, tot, rc, err, st, r->cfg->table, NULL, -1, -1);
  json_object_set_new(s, "peak_rss_kb_per_rank", rss);
  refresh_add_endpoint(s, ep, tot, r->cfg);
  summary_of_failed_run(r, s);
  json_decref(s);
  refresh_write_metrics(r, tot, rc, st, NULL, -1, -1);
}

int rt_cmd_refresh(int argc, char **argv) {
  rt_job job;
  rt_err err = {0};
  rt_metrics_reset();
  int rc = rt_job_start(argc, argv, "refresh", &job, &err);
  if (rc) return rt_job_end(&job, rc, &err);
  refresh r = {.job = &job, .cfg = &job.cfg};
  const rt_config *cfg = &job.cfg;
  r.day = (uint32_t)(job.created_at / 86400);
  r.summary_path = path_or(cfg->summary, cfg->table, ".summary.json");
  r.cache_path = strcmp(cfg->cache, "off") ? path_or(cfg->cache, cfg->table, ".answers") : NULL;
  r.base_mode = strcmp(cfg->prompt_mode, "base") == 0;

  rc = refresh_setup(&r, &err);
  if (rc == RT_OK) rc = refresh_retrieve(&r, &err);
  if (rc == RT_OK) rc = refresh_llm_stage(&r, &err);
  if (rc == RT_OK && job.dry_run) { /* nothing was sent: report, publish nothing, write nothing */
    refresh_dry_report(&r, r.npairs);
    r.summary_due = 0;
  }
  if (r.journal) refresh_journal_end(&r), r.journal = 0;
  if (rc == RT_OK && !job.dry_run) rc = publish_stage(&r, &err);
  if (rc && r.summary_due) failed_summary(&r, rc, &err);

  refresh_free(&r);
  return rt_job_end(&job, rc, &err);
}

void refresh_free(refresh *r) {
  rt_gates_free(&r->gates);
  rt_retrieval_free(&r->ret);
  free(r->fps.data);
  free(r->results.data);
  free(r->examples);
  rt_template_free(&r->tmpl);
  rt_matcher_free(&r->matcher);
  if (r->cache) rt_answers_close(r->cache, NULL);
  if (r->client) rt_llm_client_free(r->client);
  if (r->base) ragtide_table_close(r->base);
  free(r->summary_path);
  free(r->cache_path);
}
