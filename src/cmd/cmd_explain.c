/* cmd_explain.c — `ragtide explain --config F [TABLE] C1 C2`: why a pair of
 * the served table holds what it holds.
 *
 * Replays stages 1–9 of the refresh for one pair, as a dry run (no lock, no
 * endpoint call, nothing written): the pair's retrieved context over the
 * table's own window (checked against the fingerprint in TABLE.contexts),
 * the prompt the refresh renders for it, the answer the journal holds for
 * that exact request, how the answer matches the catalog, and the
 * provenance that follows — beside what the table holds. */
#include "base/util.h"
#include "cmd/commands.h"
#include "cmd/refresh.h"
#include "pipeline/collective.h"
#include "pipeline/table.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_indented(const char *label, const char *text) {
  printf("  [%s]\n", label);
  const char *p = text;
  while (*p) {
    const char *nl = strchr(p, '\n');
    int n = nl ? (int)(nl - p) : (int)strlen(p);
    printf("    %.*s\n", n, p);
    if (!nl) break;
    p = nl + 1;
  }
}

static const char *match_name(rt_match_kind k) {
  return k == RT_MATCH_EXACT ? "exact" : k == RT_MATCH_FUZZY ? "fuzzy" : "none";
}

/* The owner rank of the pair prints everything (the others have nothing). */
static void explain_pair(refresh *r, const char *table_path, const ragtide_table *t, uint32_t i1, uint32_t i2) {
  const rt_catalog *cat = &r->job->cat;
  const rt_config *cfg = r->cfg;
  const ragtide_table_info *in = ragtide_table_get_info(t);
  uint64_t pair = ((uint64_t)i1 << RT_KEY_BITS) | i2;
  char ws[32], we[32];
  rt_format_utc(in->window_start, ws, sizeof ws);
  rt_format_utc(in->window_end, we, sizeof we);
  printf("pair %u then %u in %s (run %s%s)\n", cat->ids[i1], cat->ids[i2], table_path, in->run_id,
         in->window_end ? "" : ", a base table");
  if (in->window_end) printf("  window %s .. %s\n", ws, we);
  printf("  c1 %u: %s\n  c2 %u: %s\n", cat->ids[i1], cat->desc[i1], cat->ids[i2], cat->desc[i2]);

  printf("table:\n");
  int any = 0;
  for (uint32_t j = 0; j < in->candidates; j++) {
    uint32_t nx, day;
    ragtide_provenance p;
    ragtide_table_get_idx(t, i1, i2, j, &nx, &p, &day);
    if (p == RAGTIDE_PROV_NONE) continue;
    char ds[32];
    rt_format_utc((int64_t)day * 86400, ds, sizeof ds);
    ds[10] = '\0';
    printf("  #%u %u (%s, %s): %s\n", j + 1, cat->ids[nx], ragtide_provenance_name(p), ds, cat->desc[nx]);
    any = 1;
  }
  if (!any) printf("  none: no prediction for this pair\n");

  /* The context: this rank owns the pair, so its retrieval holds it if the
   * window had data for it. */
  const rt_context *ctx = NULL;
  for (size_t k = 0; k < r->ret.ctx.len; k++)
    if (r->ret.ctx.data[k].pair == pair) ctx = &r->ret.ctx.data[k];
  if (!r->base_mode) {
    if (!ctx) {
      printf("retrieved context: none — no (c1, c2, next) triple in the window, so the refresh asked nothing "
             "for this pair; its entry comes from the base table (or is none)\n");
      return;
    }
    printf("retrieved context (retrieval.mode %s, %u of the pair's %" PRIu64 " triples' successors):\n",
           cfg->retrieval_mode, ctx->n, ctx->total);
    for (uint32_t k = 0; k < ctx->n; k++) {
      uint32_t nx = r->ret.next.data[ctx->off + k];
      printf("  %u (score %" PRId64 "): %s\n", cat->ids[nx], r->ret.score.data[ctx->off + k], cat->desc[nx]);
    }
    uint64_t h = rt_ctx_hash(r->ret.next.data + ctx->off, ctx->n);
    size_t n = strlen(table_path) + 16;
    char *cp = rt_xmalloc(n);
    snprintf(cp, n, "%s.contexts", table_path);
    rt_ctx_fp *fp;
    size_t nfp;
    rt_contexts_load(cp, cat->hash, &fp, &nfp);
    const char *verdict = "not in %s: the served table's run did not record it (another catalog, or none saved)";
    for (size_t k = 0; k < nfp; k++)
      if (fp[k].pair == pair)
        verdict = fp[k].hash == h ? "the same as in %s: the served table was built from this context"
                                  : "differs from %s: the logs of the window changed since the served table's run";
    printf("  fingerprint ");
    printf(verdict, cp);
    putchar('\n');
    free(fp);
    free(cp);
  }
  if (!r->client) {
    printf("llm.api = retrieval: no model asked; the prediction is the top retrieved successor (provenance "
           "retrieval)\n");
    return;
  }
  const uint32_t *rn = ctx ? &r->ret.next.data[ctx->off] : NULL;
  rt_prompt_vars v = {cat, i1, i2, rn, r->global || !ctx ? 0 : ctx->n, r->popular, r->n_popular, r->examples};
  char *sys, *usr;
  rt_prompt_render(&r->tmpl, &v, &sys, &usr);
  rt_llm_call call = {*sys ? sys : NULL, usr, pair, 2, {i1, i2}};
  uint64_t key = rt_llm_request_key(r->client, &call);
  printf("prompt (llm.model %s, template %s, request key %016" PRIx64 "):\n", cfg->model, cfg->template_path, key);
  if (*sys) print_indented("system", sys);
  print_indented("user", usr);
  const char *text = NULL;
  uint32_t day = 0;
  if (!r->cache || rt_answers_get(r->cache, key, &text, &day) != 1 || !*text) {
    printf("answer: none in the journal %s for this request%s\n", r->cache_path ? r->cache_path : "(output.cache = off)",
           text && !*text ? " (an earlier answer named no cluster and was forgotten: the next run asks again)"
                          : " — the prompt changed since the run, or its call failed (then the pair fell back)");
  } else {
    char ds[32];
    rt_format_utc((int64_t)day * 86400, ds, sizeof ds);
    ds[10] = '\0';
    printf("answer (journal %s, %s):\n", r->cache_path, ds);
    print_indented("raw", text);
    rt_match_result m = rt_match(&r->matcher, text, i1, i2);
    if (m.idx < 0)
      printf("match: none (names no catalog cluster) -> the pair falls back: provenance fallback\n");
    else if (!m.novel)
      printf("match: %s (similarity %.2f) -> %u, which is c1 or c2, not novel -> provenance fallback\n",
             match_name(m.kind), m.similarity, cat->ids[m.idx]);
    else
      printf("match: %s (similarity %.2f) -> %u: %s -> provenance %s\n", match_name(m.kind), m.similarity,
             cat->ids[m.idx], cat->desc[m.idx], r->base_mode ? "base" : "rag");
  }
  free(sys);
  free(usr);
}

int rt_cmd_explain(int argc, char **argv) {
  /* Positionals ([TABLE] C1 C2) out; the job's flags (--config, --set) stay. */
  char **rest = rt_xcalloc((size_t)argc + 1, sizeof *rest);
  const char *pos[3];
  int np = 0, nr = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (i > 0 && (!strcmp(a, "--config") || !strcmp(a, "--set")) && i + 1 < argc) {
      rest[nr++] = argv[i];
      rest[nr++] = argv[++i];
    } else if (i == 0 || a[0] == '-') {
      rest[nr++] = argv[i];
    } else if (np < 3) {
      pos[np++] = a;
    } else {
      np = 4;
    }
  }
  if (np < 2 || np > 3) {
    fprintf(stderr, "usage: ragtide explain --config F [TABLE] C1 C2\n");
    free(rest);
    return RT_ERR_USAGE;
  }
  uint32_t id1, id2;
  char *e1, *e2;
  unsigned long long v1 = strtoull(pos[np - 2], &e1, 10), v2 = strtoull(pos[np - 1], &e2, 10);
  if (*e1 || *e2 || v1 > UINT32_MAX || v2 > UINT32_MAX) {
    fprintf(stderr, "ragtide explain: cluster ids must be unsigned 32-bit integers, got \"%s\" \"%s\"\n",
            pos[np - 2], pos[np - 1]);
    free(rest);
    return RT_ERR_USAGE;
  }
  id1 = (uint32_t)v1;
  id2 = (uint32_t)v2;

  rt_job job;
  rt_err err = {0};
  int rc = rt_job_start(nr, rest, "explain", &job, &err);
  free(rest);
  if (rc) return rt_job_end(&job, rc, &err);
  const char *table_path = np == 3 ? pos[0] : job.cfg.table;
  ragtide_table *t = NULL;
  char eb[512];
  if (!table_path || !*table_path) rc = rt_err_set(&err, RT_ERR_USAGE, "explain: no TABLE and no output.table");
  else if (ragtide_table_open(table_path, &t, eb, sizeof eb) != RAGTIDE_OK)
    rc = rt_err_set(&err, RT_ERR_TABLE, "explain: %s", eb);
  else if (ragtide_table_get_info(t)->catalog_hash != job.cat.hash)
    rc = rt_err_set(&err, RT_ERR_INPUT, "explain: %s was built with another catalog than input.catalog %s",
                    table_path, job.cfg.catalog);
  int32_t i1 = rc ? -1 : rt_catalog_index(&job.cat, id1), i2 = rc ? -1 : rt_catalog_index(&job.cat, id2);
  if (rc == RT_OK && (i1 < 0 || i2 < 0 || i1 == i2))
    rc = rt_err_set(&err, RT_ERR_USAGE, "explain: %u is not a cluster of input.catalog %s%s", i1 < 0 ? id1 : id2,
                    job.cfg.catalog, i1 == i2 && i1 >= 0 ? " (or c1 = c2: no such pair)" : "");
  rc = rt_agree(job.comm, rc, &err);
  refresh r = {.job = &job, .cfg = &job.cfg};
  if (rc == RT_OK) {
    /* The table's own window and day; the key is never read: nothing is sent. */
    const ragtide_table_info *in = ragtide_table_get_info(t);
    rt_config *cfg = &job.cfg;
    if (in->window_end) {
      cfg->window_start = in->window_start;
      cfg->window_end = in->window_end;
    }
    cfg->window_days = 0;
    cfg->holdout_days = 0; /* the table's window already ends before any held-out days */
    free(cfg->api_key_env);
    cfg->api_key_env = rt_xstrdup("");
    free(cfg->api_key_file);
    cfg->api_key_file = rt_xstrdup("");
    job.dry_run = 1;
    r.day = (uint32_t)(in->created_at / 86400);
    r.base_mode = strcmp(cfg->prompt_mode, "base") == 0;
    /* output.cache: off, a path, or "" for TABLE.answers */
    if (strcmp(cfg->cache, "off")) {
      size_t n = strlen(table_path) + 16;
      r.cache_path = *cfg->cache ? rt_xstrdup(cfg->cache) : rt_xmalloc(n);
      if (!*cfg->cache) snprintf(r.cache_path, n, "%s.answers", table_path);
    }
    rc = refresh_setup(&r, &err);
    if (rc == RT_OK) rc = refresh_retrieve(&r, &err);
  }
  if (rc == RT_OK && rt_pair_owner(&job.plan, ((uint64_t)i1 << RT_KEY_BITS) | (uint64_t)i2) == job.rank) {
    explain_pair(&r, table_path, t, (uint32_t)i1, (uint32_t)i2);
    fflush(stdout);
  }
  refresh_free(&r);
  if (t) ragtide_table_close(t);
  return rt_job_end(&job, rc, &err);
}
