/* gates.c — the recall and coverage gates of refresh (gates.h). */
#include "pipeline/gates.h"
#include "base/log.h"
#include "base/util.h"
#include "pipeline/table.h"

#include <stdlib.h>
#include <string.h>

int rt_gates_begin(rt_config *cfg, rt_gates *g, rt_err *err) {
  memset(g, 0, sizeof *g);
  g->horizon = (int)cfg->eval_horizon;
  if (cfg->holdout_days <= 0) return RT_OK;
  if (!*cfg->logs)
    return rt_err_set(err, RT_ERR_USAGE, "config: gates.holdout_days = %lld needs input.logs: the held-out days are "
                      "read from the logs (set input.logs, or gates.holdout_days = 0)", (long long)cfg->holdout_days);
  int64_t h = cfg->holdout_days * 86400;
  if (cfg->window_end - h <= cfg->window_start)
    return rt_err_set(err, RT_ERR_USAGE, "config: gates.holdout_days = %lld leaves nothing of the window for "
                      "retrieval: make the window longer than the held-out days", (long long)cfg->holdout_days);
  g->holdout = 1;
  g->hold_start = cfg->window_end - h;
  g->hold_end = cfg->window_end;
  cfg->window_end = g->hold_start; /* retrieval reads the window without the held-out days */
  return RT_OK;
}

void rt_gates_threads(rt_gates *g, uint32_t ncl, int threads, rt_gates_ctx *ctxs) {
  g->threads = threads;
  g->counter = rt_xcalloc((size_t)threads, sizeof *g->counter);
  g->positions_t = rt_xcalloc((size_t)threads, sizeof *g->positions_t);
  for (int t = 0; t < threads; t++) {
    g->counter[t] = rt_counter_new(ncl, 0, 0);
    ctxs[t] = (rt_gates_ctx){g, t};
  }
}

void rt_gates_on_sequence(void *ctx, uint64_t user, const rt_ev *s, size_t m) {
  (void)user;
  rt_gates_ctx *c = ctx;
  rt_gates *g = c->g;
  const size_t H = g->horizon > 0 ? (size_t)g->horizon : 1;
  for (size_t i = 2; i < m; i++) {
    g->positions_t[c->t]++;
    uint32_t c1 = rt_ev_c(&s[i - 2]), c2 = rt_ev_c(&s[i - 1]);
    size_t end = i + H < m ? i + H : m;
    for (size_t j = i; j < end; j++) {
      uint32_t x = rt_ev_c(&s[j]);
      int seen = 0; /* each distinct cluster of the horizon once: a hit counts once per position */
      for (size_t k = i; k < j && !seen; k++) seen = rt_ev_c(&s[k]) == x;
      if (!seen) rt_counter_add(g->counter[c->t], rt_triple_key(c1, c2, x), 0, 0, 1);
    }
  }
}

int rt_gates_route(rt_gates *g, const rt_plan *plan, MPI_Comm comm, const char *run_dir, int rank, rt_err *err) {
  rt_runs *local = rt_runs_new(run_dir, "gates", rank, 0);
  int rc = rt_counters_finish(g->counter, g->threads, local, err); /* frees the counters */
  free(g->counter);
  g->counter = NULL;
  uint64_t pos = 0;
  for (int t = 0; t < g->threads; t++) pos += g->positions_t[t];
  g->positions = pos;
  rt_runs *owned = rt_runs_new(run_dir, "gates-owned", rank, 0);
  rt_err xerr = {0};
  owned = rt_counts_exchange(plan, comm, local, owned, 64u << 20, NULL, &xerr); /* collective: every rank takes part */
  if (!owned && rc == RT_OK) rc = xerr.code ? xerr.code : RT_ERR_INTERNAL, *err = xerr;
  uint64_t nrec = 0, pairs = 0;
  if (owned && rc == RT_OK) rc = rt_runs_seal(owned, &nrec, &pairs, err);
  g->owned = owned;
  return rc;
}

typedef struct {
  uint64_t pair;
  uint32_t next, prov;
} pred;

static int cmp_pred(const void *a, const void *b) {
  const pred *x = a, *y = b;
  return x->pair < y->pair ? -1 : x->pair > y->pair;
}

int rt_gates_eval(rt_gates *g, MPI_Comm comm, const rt_result_buf *results, const ragtide_table *base, uint32_t ncl,
                  rt_err *err) {
  (void)ncl;
  RT_VEC(pred) p = {0};
  uint64_t v[4] = {0, 0, 0, 0}; /* hits, positions, rag-or-base results, results over a base answer */
  size_t off = 0;
  rt_result r;
  int got, rc = RT_OK;
  while ((got = rt_result_next(results->data, results->len, &off, &r)) == 1) {
    if (!r.n) continue;
    rt_vec_push(&p, ((pred){r.pair, r.next[0], r.prov}));
    v[2] += r.prov == RAGTIDE_PROV_RAG || r.prov == RAGTIDE_PROV_BASE || r.prov == RAGTIDE_PROV_RETRIEVAL;
    v[3] += rt_base_next(base, rt_pair_c1(r.pair), rt_pair_c2(r.pair)) >= 0;
  }
  if (got < 0) rc = rt_err_set(err, RT_ERR_INTERNAL, "gates: malformed result buffer");
  if (p.len) qsort(p.data, p.len, sizeof *p.data, cmp_pred);
  if (rc == RT_OK && g->owned) {
    rt_count_vec chunk = {0};
    long n;
    while ((n = rt_runs_next_pairs(g->owned, &chunk, 1u << 16, err)) > 0) {
      for (size_t i = 0; i < chunk.len; i++) {
        uint64_t pair = rt_key_pair(chunk.data[i].key);
        pred key = {pair, 0, 0}, *hit = p.len ? bsearch(&key, p.data, p.len, sizeof key, cmp_pred) : NULL;
        int64_t predicted = hit ? (int64_t)hit->next : rt_base_next(base, rt_pair_c1(pair), rt_pair_c2(pair));
        if (predicted >= 0 && (uint32_t)predicted == rt_key_next(chunk.data[i].key)) v[0] += chunk.data[i].n;
      }
    }
    if (n < 0) rc = err->code ? err->code : RT_ERR_INPUT;
    free(chunk.data);
  }
  v[1] = g->positions;
  free(p.data);
  MPI_Allreduce(MPI_IN_PLACE, v, 4, MPI_UINT64_T, MPI_SUM, comm);
  g->hits = v[0];
  g->positions = v[1];
  uint64_t base_total = 0;
  if (base) {
    const ragtide_table_info *bi = ragtide_table_get_info(base);
    base_total = bi->count_by_prov[1] + bi->count_by_prov[2] + bi->count_by_prov[3] + bi->count_by_prov[4];
  }
  g->covered_new = v[2] + base_total - v[3];
  return rc;
}

/* Recall and coverage; served: the table now at cfg->table, or NULL. */
static int check_recall_coverage(const rt_gates *g, const rt_config *cfg, const ragtide_table_info *si,
                                 rt_err *err) {
  char a[32], b[32];
  if (g->holdout) {
    rt_format_utc(g->hold_start, a, sizeof a);
    rt_format_utc(g->hold_end, b, sizeof b);
    double recall = g->positions ? (double)g->hits / (double)g->positions : 0;
    if (!g->positions)
      return rt_err_set(err, RT_ERR_RECALL, "recall gate: the held-out days [%s, %s) (gates.holdout_days = %lld) "
                        "hold no position to score (no user with three kept clusters); nothing published — check "
                        "that the logs reach the window's end, or set gates.holdout_days = 0", a, b,
                        (long long)cfg->holdout_days);
    rt_info("recall gate: hit rate at %d on the held-out days [%s, %s): %.2f%% (%llu of %llu positions; floor "
            "gates.min_recall %.2f%%)", g->horizon, a, b, 100 * recall, (unsigned long long)g->hits,
            (unsigned long long)g->positions, 100 * cfg->min_recall);
    if (recall < cfg->min_recall)
      return rt_err_set(err, RT_ERR_RECALL, "recall gate: the new table's hit rate at %d on the held-out days [%s, %s) "
                        "is %.2f%% (%llu of %llu positions), below gates.min_recall %.2f%%; nothing published — "
                        "review the retrieval, model and prompt (`ragtide eval` compares the table with baselines)",
                        g->horizon, a, b, 100 * recall, (unsigned long long)g->hits, (unsigned long long)g->positions,
                        100 * cfg->min_recall);
  }
  if (cfg->min_coverage_ratio <= 0 || !si) return RT_OK; /* no gate, or nothing served yet */
  uint64_t old = si->count_by_prov[RAGTIDE_PROV_RAG] + si->count_by_prov[RAGTIDE_PROV_BASE] +
                 si->count_by_prov[RAGTIDE_PROV_RETRIEVAL];
  if (old && (double)g->covered_new < cfg->min_coverage_ratio * (double)old)
    return rt_err_set(err, RT_ERR_COVERAGE, "coverage gate: the new table predicts (rag or base) %llu pairs, %.1f%% "
                      "of the %llu of the served table %s, below gates.min_coverage_ratio %.1f%%; nothing published "
                      "— an empty window or timestamps in the wrong unit? See stages.read in the summary (kept, "
                      "outside_window); to publish anyway set gates.min_coverage_ratio = 0",
                      (unsigned long long)g->covered_new, 100.0 * (double)g->covered_new / (double)old,
                      (unsigned long long)old, cfg->table, 100 * cfg->min_coverage_ratio);
  return RT_OK;
}

int rt_gates_decide(const rt_gates *g, const rt_config *cfg, const rt_gate_input *in, const char **status,
                    double *exact_rate, double *failed_frac, rt_err *err) {
  double exact = in->answers ? (double)in->exact / (double)in->answers : -1;
  double failed = in->calls ? (double)in->failed / (double)in->calls : -1;
  *exact_rate = exact;
  *failed_frac = failed;
  *status = "halted";
  if (failed > cfg->max_failed_fraction)
    return rt_err_set(err, RT_ERR_ENDPOINT,
                      "%llu of %llu endpoint calls failed (%.1f%% > llm.max_failed_fraction %.1f%%) against %s; "
                      "nothing published — check the endpoint, then rerun",
                      (unsigned long long)in->failed, (unsigned long long)in->calls, failed * 100,
                      cfg->max_failed_fraction * 100, cfg->base_url);
  if (exact >= 0 && exact < cfg->min_exact_match)
    return rt_err_set(err, RT_ERR_GATE,
                      "quality gate: exact-match rate %.2f%% is below gates.min_exact_match %.2f%% (%llu of %llu "
                      "answers name a catalog cluster); nothing published — review the model and prompt, or "
                      "constrain its output (llm.constrain); answers that named no cluster are not reused, so a "
                      "rerun asks again",
                      exact * 100, cfg->min_exact_match * 100, (unsigned long long)in->exact,
                      (unsigned long long)in->answers);
  /* The served table, opened once for the coverage gate and the window. */
  ragtide_table *t = NULL;
  char msg[256];
  if (ragtide_table_open(cfg->table, &t, msg, sizeof msg) != RAGTIDE_OK) t = NULL; /* nothing served yet */
  const ragtide_table_info *si = t ? ragtide_table_get_info(t) : NULL;
  int rc = check_recall_coverage(g, cfg, si, err); /* recall (exit 12), coverage (exit 13) */
  int64_t served = si && !in->base_mode && !in->force ? si->window_end : 0;
  if (t) ragtide_table_close(t);
  if (rc) return rc;
  if (served > cfg->window_end) {
    /* Never a step back: a late or re-run of an older window must not
     * replace a table built from newer logs. */
    *status = "stale";
    char a[32], b[32];
    rt_format_utc(served, a, sizeof a);
    rt_format_utc(cfg->window_end, b, sizeof b);
    return rt_err_set(err, RT_ERR_STALE,
                      "not published: the served table %s was built from a window ending %s, later than this "
                      "run's %s; nothing replaced — rerun with --force to publish the older window anyway",
                      cfg->table, a, b);
  }
  *status = NULL;
  return RT_OK;
}

void rt_gates_free(rt_gates *g) {
  if (g->counter)
    for (int t = 0; t < g->threads; t++)
      if (g->counter[t]) {
        rt_runs *sink = rt_runs_new(".", "gates-drop", 0, 0);
        rt_counter_finish(g->counter[t], sink, NULL);
        rt_runs_free(sink);
      }
  free(g->counter);
  free(g->positions_t);
  rt_runs_free(g->owned);
  memset(g, 0, sizeof *g);
}
