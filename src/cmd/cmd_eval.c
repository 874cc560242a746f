/* cmd_eval.c — `ragtide eval`: score a transition table on held-out logs
 * against baselines, under MPI (docs/eval.md).
 *
 *   pass 1  stages 1–5 over the history before the held-out window
 *           ([--from − 68 years, --from)): the popular-next baseline (counts
 *           of every c_next) and the pair baseline (each pair's top
 *           successor over the days before the table's window_start);
 *   pass 2  stages 1–4 over [--from, --to): every kept sequence of the users
 *           a rank owns is scored (pipeline/eval.h), per user;
 *   rank 0  merges the users' tallies (sorted by user), bootstraps, prints.
 * Integer tallies summed per user and a bootstrap over users in user order
 * make the report the same for every rank and thread count. */
#include "base/log.h"
#include "base/metrics.h"
#include "base/util.h"
#include "cmd/commands.h"
#include "cmd/job.h"
#include "pipeline/collective.h"
#include "pipeline/eval.h"
#include "pipeline/runs.h"
#include "pipeline/summary.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef RT_VEC(rt_eval_user) user_vec;
typedef RT_VEC(rt_pair_next) pair_vec;

typedef struct {
  const rt_eval_opts *o;
  user_vec users;
  RT_VEC(uint32_t) buf;
} thread_ctx;

static void on_sequence(void *ctx, uint64_t user, const rt_ev *s, size_t m) {
  thread_ctx *tc = ctx;
  rt_vec_reserve(&tc->buf, m);
  for (size_t i = 0; i < m; i++) tc->buf.data[i] = rt_ev_c(&s[i]);
  if (!tc->users.len || tc->users.data[tc->users.len - 1].user != user) {
    rt_eval_user u;
    memset(&u, 0, sizeof u);
    u.user = user;
    rt_vec_push(&tc->users, u);
  }
  rt_eval_sequence(tc->o, tc->buf.data, m, tc->users.data[tc->users.len - 1].f);
}

static int open_table(const char *path, const rt_catalog *cat, ragtide_table **t, rt_err *err) {
  char msg[512];
  if (ragtide_table_open(path, t, msg, sizeof msg) != RAGTIDE_OK)
    return rt_err_set(err, RT_ERR_TABLE, "eval: cannot open table %s: %s", path, msg);
  uint32_t n;
  const uint32_t *ids = ragtide_table_cluster_ids(*t, &n);
  if (n != cat->n || memcmp(ids, cat->ids, n * sizeof *ids) != 0) {
    ragtide_table_close(*t);
    *t = NULL;
    return rt_err_set(err, RT_ERR_TABLE, "eval: table %s was built for another catalog (%u clusters; input.catalog "
                      "has %u): evaluate it with the catalog it was built from", path, n, cat->n);
  }
  return RT_OK;
}

static int cmp_pair(const void *a, const void *b) {
  const rt_pair_next *x = a, *y = b;
  return x->pair < y->pair ? -1 : x->pair > y->pair;
}

/* Pass 1's counts (this rank's owned pairs): popular-next counts over all of
 * them, and each pair's top successor over the days before pair_end_day
 * (count, ties by smaller index). */
static int baselines(rt_runs *counts, uint32_t n, int32_t pair_end_day, uint64_t *popular, pair_vec *pairs,
                     rt_err *err) {
  rt_count_vec chunk = {0};
  long got;
  while ((got = rt_runs_next_pairs(counts, &chunk, 1u << 16, err)) > 0) {
    size_t i = 0;
    while (i < chunk.len) {
      uint64_t pair = rt_key_pair(chunk.data[i].key);
      uint64_t best_n = 0;
      uint32_t best = 0;
      while (i < chunk.len && rt_key_pair(chunk.data[i].key) == pair) {
        uint64_t key = chunk.data[i].key, sum = 0;
        for (; i < chunk.len && chunk.data[i].key == key; i++) {
          popular[rt_key_next(key)] += chunk.data[i].n;
          if (chunk.data[i].day < pair_end_day) sum += chunk.data[i].n;
        }
        if (sum > best_n) best_n = sum, best = rt_key_next(key); /* keys ascend by next: ties keep the smaller */
      }
      if (best_n) rt_vec_push(pairs, ((rt_pair_next){(uint64_t)rt_pair_c1(pair) * n + rt_pair_c2(pair), best, 0}));
    }
  }
  free(chunk.data);
  return got < 0 ? (err->code ? err->code : RT_ERR_INPUT) : RT_OK;
}

static const char *PRED_NAME[RT_EVAL_NPRED] = {"table", "popular", "history", "previous"};

static json_t *ci_json(const rt_eval_ci *c) {
  if (!c->defined) return json_null();
  json_t *o = json_object();
  json_object_set_new(o, "value", json_real(c->value));
  json_object_set_new(o, "lo", json_real(c->lo));
  json_object_set_new(o, "hi", json_real(c->hi));
  return o;
}

static void ci_text(char *b, size_t cap, const rt_eval_ci *c, int sign) {
  if (!c->defined) snprintf(b, cap, "%-26s", "n/a");
  else if (sign) snprintf(b, cap, "%+7.2f%% [%+.2f, %+.2f]", 100 * c->value, 100 * c->lo, 100 * c->hi);
  else snprintf(b, cap, "%6.2f%% [%.2f, %.2f]", 100 * c->value, 100 * c->lo, 100 * c->hi);
}

static void report(const rt_job *job, const rt_eval_opts *o, const rt_eval_report *r, int64_t d1, int64_t d2,
                   int64_t hist_end, uint64_t kept, const ragtide_table_info *ti) {
  const rt_config *cfg = &job->cfg;
  char f[32], t[32], he[32], ws[32], we[32];
  rt_format_utc(d1, f, sizeof f);
  rt_format_utc(d2, t, sizeof t);
  rt_format_utc(hist_end, he, sizeof he);
  rt_format_utc(ti->window_start, ws, sizeof ws);
  rt_format_utc(ti->window_end, we, sizeof we);
  if (job->json) {
    json_t *j = json_object();
    json_object_set_new(j, "table", json_string(job->eval_table));
    json_object_set_new(j, "table_window", json_pack("[s,s]", ws, we));
    json_object_set_new(j, "from", json_string(f));
    json_object_set_new(j, "to", json_string(t));
    json_object_set_new(j, "horizon", json_integer(o->horizon));
    json_object_set_new(j, "bootstrap", json_integer((json_int_t)cfg->eval_bootstrap));
    json_object_set_new(j, "seed", json_integer((json_int_t)cfg->eval_seed));
    json_object_set_new(j, "events_kept", json_integer((json_int_t)kept));
    json_object_set_new(j, "users", json_integer((json_int_t)r->users));
    json_object_set_new(j, "positions", json_integer((json_int_t)r->tally[RT_EF_POS]));
    json_object_set_new(j, "history_end", json_string(he));
    json_t *preds = json_object();
    for (int p = 0; p < RT_EVAL_NPRED; p++) {
      if (!o->pred[p].fn) continue;
      json_t *x = json_object();
      json_object_set_new(x, "covered", json_integer(r->tally[RT_EF(p, RT_EK_COVERED)]));
      json_object_set_new(x, "next1_hits", json_integer(r->tally[RT_EF(p, RT_EK_NEXT1)]));
      json_object_set_new(x, "horizon_hits", json_integer(r->tally[RT_EF(p, RT_EK_HIT)]));
      json_object_set_new(x, "novel", json_integer(r->tally[RT_EF(p, RT_EK_NOVEL)]));
      json_object_set_new(x, "next1", ci_json(&r->next1[p]));
      json_object_set_new(x, "hit_rate", ci_json(&r->hit[p]));
      json_object_set_new(x, "coverage", ci_json(&r->coverage[p]));
      json_object_set_new(x, "novelty", ci_json(&r->novelty[p]));
      if (p != RT_EVAL_TABLE) {
        json_t *d = json_object();
        json_object_set_new(d, "next1", ci_json(&r->d_next1[p]));
        json_object_set_new(d, "hit_rate", ci_json(&r->d_hit[p]));
        json_object_set_new(d, "coverage", ci_json(&r->d_coverage[p]));
        json_object_set_new(x, "minus_table", d);
      }
      json_object_set_new(preds, PRED_NAME[p], x);
    }
    json_object_set_new(j, "predictors", preds);
    json_t *pv = json_object();
    for (int v = 0; v < RAGTIDE_PROV_COUNT; v++) {
      json_t *x = json_object();
      json_object_set_new(x, "positions", json_integer(r->tally[RT_EF_PROV(v, RT_EP_POS)]));
      json_object_set_new(x, "share", ci_json(&r->prov_share[v]));
      json_object_set_new(x, "next1", ci_json(&r->prov_next1[v]));
      json_object_set_new(x, "hit_rate", ci_json(&r->prov_hit[v]));
      json_object_set_new(pv, ragtide_provenance_name((ragtide_provenance)v), x);
    }
    json_object_set_new(j, "table_by_provenance", pv);
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    puts(s);
    free(s);
    json_decref(j);
    return;
  }
  printf("eval %s (window %.10s .. %.10s) on [%s, %s): %llu events kept, %llu users, %llu positions\n",
         job->eval_table, ws, we, f, t, (unsigned long long)kept, (unsigned long long)r->users,
         (unsigned long long)r->tally[RT_EF_POS]);
  printf("hit@%d = prediction among the next %d clusters; 95%% bootstrap intervals over users (%lld resamples, "
         "seed %lld); history baseline: days before %.10s\n\n", o->horizon, o->horizon,
         (long long)cfg->eval_bootstrap, (long long)cfg->eval_seed, he);
  printf("%-9s %-26s %-26s %-26s %-26s\n", "predictor", "next-1", "hit@H", "coverage", "novelty");
  for (int p = 0; p < RT_EVAL_NPRED; p++) {
    if (!o->pred[p].fn) continue;
    char a[64], b[64], c[64], d[64];
    ci_text(a, sizeof a, &r->next1[p], 0);
    ci_text(b, sizeof b, &r->hit[p], 0);
    ci_text(c, sizeof c, &r->coverage[p], 0);
    ci_text(d, sizeof d, &r->novelty[p], 0);
    printf("%-9s %-26s %-26s %-26s %-26s\n", PRED_NAME[p], a, b, c, d);
  }
  printf("\n%-9s %-26s %-26s %-26s\n", "minus tbl", "next-1", "hit@H", "coverage");
  for (int p = 1; p < RT_EVAL_NPRED; p++) {
    if (!o->pred[p].fn) continue;
    char a[64], b[64], c[64];
    ci_text(a, sizeof a, &r->d_next1[p], 1);
    ci_text(b, sizeof b, &r->d_hit[p], 1);
    ci_text(c, sizeof c, &r->d_coverage[p], 1);
    printf("%-9s %-26s %-26s %-26s\n", PRED_NAME[p], a, b, c);
  }
  printf("\n%-9s %-10s %-26s %-26s %-26s\n", "table by", "positions", "share", "next-1", "hit@H");
  for (int v = 0; v < RAGTIDE_PROV_COUNT; v++) {
    char a[64], b[64], c[64];
    ci_text(a, sizeof a, &r->prov_share[v], 0);
    ci_text(b, sizeof b, &r->prov_next1[v], 0);
    ci_text(c, sizeof c, &r->prov_hit[v], 0);
    printf("%-9s %-10llu %-26s %-26s %-26s\n", ragtide_provenance_name((ragtide_provenance)v), (unsigned long long)r->tally[RT_EF_PROV(v, RT_EP_POS)],
           a, b, c);
  }
}

static void set_str(char **field, const char *v) {
  free(*field);
  *field = rt_xstrdup(v);
}

int rt_cmd_eval(int argc, char **argv) {
  rt_job job;
  rt_err err = {0};
  rt_metrics_reset();
  int rc = rt_job_start(argc, argv, "eval", &job, &err);
  if (rc) return rt_job_end(&job, rc, &err);
  rt_config *cfg = &job.cfg;
  if (!*cfg->logs) {
    rc = rt_err_set(&err, RT_ERR_USAGE, "eval: input.logs is required (eval replays the logs)");
    return rt_job_end(&job, rc, &err);
  }
  /* eval reads one window at a time; spill files (memory.per_rank_mb) go
   * beside the table, never into a refresh's run directory */
  set_str(&cfg->retrieval_mode, "frequency");
  if (!*cfg->run_dir) {
    char d[4096];
    snprintf(d, sizeof d, "%s.eval.run", job.eval_table);
    set_str(&cfg->run_dir, d);
  }
  ragtide_table *tab = NULL, *prev = NULL;
  rc = open_table(job.eval_table, &job.cat, &tab, &err);
  if (rc == RT_OK && job.eval_previous) rc = open_table(job.eval_previous, &job.cat, &prev, &err);
  rc = rt_agree(job.comm, rc, &err);
  if (rc) goto out;
  const ragtide_table_info *ti = ragtide_table_get_info(tab);
  const int64_t d1 = cfg->window_start, d2 = cfg->window_end;
  int64_t hist_end = ti->window_start > 0 && ti->window_start < d1 ? ti->window_start : d1;
  if (job.rank == 0 && ti->window_end > d1) {
    char a[32], b[32];
    rt_format_utc(ti->window_end, a, sizeof a);
    rt_format_utc(d1, b, sizeof b);
    rt_warn("the table's window ends %s, after --from %s: the held-out logs overlap the data it was built from", a, b);
  }

  /* Pass 1: the history before the held-out window. */
  const uint32_t n = job.cat.n;
  uint64_t *popular = rt_xcalloc(n, sizeof *popular);
  pair_vec pairs = {0};
  cfg->window_end = d1;
  cfg->window_start = d1 - ((int64_t)1 << 31) + 86400 > 0 ? d1 - ((int64_t)1 << 31) + 86400 : 0;
  rt_runs *counts = NULL;
  uint64_t nrec = 0;
  rc = rt_job_aggregate(&job, &counts, &nrec, &err);
  if (rc == RT_OK) rc = baselines(counts, n, (int32_t)(hist_end / 86400), popular, &pairs, &err);
  rt_runs_free(counts);
  rc = rt_agree(job.comm, rc, &err);
  if (rc) goto out1;
  MPI_Allreduce(MPI_IN_PLACE, popular, (int)n, MPI_UINT64_T, MPI_SUM, job.comm);
  void *allp = NULL;
  size_t allb = 0;
  rt_gather_bytes(job.comm, pairs.data, pairs.len * sizeof *pairs.data, &allp, &allb);
  uint64_t npairs = allb / sizeof(rt_pair_next);
  MPI_Bcast(&npairs, 1, MPI_UINT64_T, 0, job.comm);
  free(pairs.data);
  pairs.data = job.rank == 0 ? allp : rt_xmalloc((npairs ? npairs : 1) * sizeof *pairs.data);
  pairs.len = npairs;
  if (job.rank == 0) qsort(pairs.data, npairs, sizeof *pairs.data, cmp_pair);
  for (uint64_t off = 0; off < npairs * sizeof *pairs.data;) { /* in pieces below 2 GiB */
    uint64_t len = npairs * sizeof *pairs.data - off;
    if (len > (1u << 30)) len = 1u << 30;
    MPI_Bcast((char *)pairs.data + off, (int)len, MPI_BYTE, 0, job.comm);
    off += len;
  }
  uint32_t *rank = rt_xmalloc((n ? n : 1) * sizeof *rank);
  rt_popular pop = {rank, rt_popular_rank(popular, n, rank)};
  rt_pair_map pmap = {pairs.data, pairs.len, n};

  /* Pass 2: the held-out window, scored user by user. */
  rt_eval_opts o = {.horizon = (int)cfg->eval_horizon};
  o.pred[RT_EVAL_TABLE] = (rt_predictor){rt_predict_table, tab};
  o.pred[RT_EVAL_POPULAR] = (rt_predictor){rt_predict_popular, &pop};
  o.pred[RT_EVAL_HISTORY] = (rt_predictor){rt_predict_pairs, &pmap};
  if (prev) o.pred[RT_EVAL_PREVIOUS] = (rt_predictor){rt_predict_table, prev};
  cfg->window_start = d1;
  cfg->window_end = d2;
  rt_metrics_reset();
  thread_ctx *tc = rt_xcalloc((size_t)job.threads, sizeof *tc);
  void **ctxs = rt_xcalloc((size_t)job.threads, sizeof *ctxs);
  for (int t = 0; t < job.threads; t++) tc[t].o = &o, ctxs[t] = &tc[t];
  rc = rt_job_sequences(&job, on_sequence, ctxs, &err);
  uint64_t total[RT_M_COUNT];
  rt_metrics_reduce(job.comm, total);
  if (rc == RT_OK) {
    user_vec mine = {0};
    for (int t = 0; t < job.threads; t++)
      for (size_t i = 0; i < tc[t].users.len; i++) rt_vec_push(&mine, tc[t].users.data[i]);
    void *all = NULL;
    size_t allu = 0;
    rt_gather_bytes(job.comm, mine.data, mine.len * sizeof *mine.data, &all, &allu);
    free(mine.data);
    if (job.rank == 0) {
      size_t nu = rt_eval_merge_users(all, allu / sizeof(rt_eval_user));
      rt_eval_report r;
      rt_eval_summarize(all, nu, (int)cfg->eval_bootstrap, (uint64_t)cfg->eval_seed, &r);
      report(&job, &o, &r, d1, d2, hist_end, total[RT_M_read_kept], ti);
      fflush(stdout);
    }
    free(all);
  }
  for (int t = 0; t < job.threads; t++) free(tc[t].users.data), free(tc[t].buf.data);
  free(tc);
  free(ctxs);
  free(rank);
out1:
  free(pairs.data);
  free(popular);
out:
  if (tab) ragtide_table_close(tab);
  if (prev) ragtide_table_close(prev);
  return rt_job_end(&job, rc, &err);
}
