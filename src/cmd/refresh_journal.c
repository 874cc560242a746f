/* refresh_journal.c — the answer journal across runs of `ragtide refresh`
 * (format/answers.h has the file format): at the start rank 0 absorbs what
 * a killed run left; during the run each rank appends to its own part; at
 * the end rank 0 absorbs the parts. Also --dry-run's report of what would
 * be asked. See refresh.h. */
#include "base/log.h"
#include "base/metrics.h"
#include "cmd/refresh.h"
#include "pipeline/collective.h"

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The parts beside the journal (CACHE.part-*): 1 when there are any. */
static int parts_glob(const char *cache_path, glob_t *g) {
  size_t n = strlen(cache_path) + 8;
  char *pat = rt_xmalloc(n);
  snprintf(pat, n, "%s.part-*", cache_path);
  int rc = glob(pat, 0, NULL, g);
  free(pat);
  return rc == 0;
}

/* Every part's records into dst; *total counts those added. */
static int absorb_all(rt_answers *dst, glob_t *g, uint64_t *total, rt_err *err) {
  int rc = RT_OK;
  *total = 0;
  for (size_t i = 0; i < g->gl_pathc && rc == RT_OK; i++) {
    uint64_t added = 0;
    rc = rt_answers_absorb(dst, g->gl_pathv[i], &added, err);
    *total += added;
  }
  return rc;
}

/* at_start: the parts are a killed or interrupted run's (said so); else
 * this run's own, at its end. */
static int absorb_parts(refresh *r, int at_start, rt_err *err) {
  glob_t g;
  if (!parts_glob(r->cache_path, &g)) return RT_OK;
  uint64_t total;
  int rc = absorb_all(r->cache, &g, &total, err);
  if (rc == RT_OK) rc = rt_answers_flush(r->cache, err);
  /* Only once their records are durable in the journal do the parts go. */
  for (size_t i = 0; i < g.gl_pathc && rc == RT_OK; i++) unlink(g.gl_pathv[i]);
  if (rc == RT_OK && total && at_start)
    rt_info("answer journal %s: %llu answers of an interrupted run recovered from %zu part%s", r->cache_path,
            (unsigned long long)total, g.gl_pathc, g.gl_pathc == 1 ? "" : "s");
  else if (rc == RT_OK && total)
    rt_debug("answer journal %s: %llu new answers", r->cache_path, (unsigned long long)total);
  globfree(&g);
  return rc;
}

/* The journal at the start of a run (collective): rank 0 opens it (which
 * repairs a torn tail) and absorbs the parts an interrupted or killed run
 * left, then every rank opens it to read and creates its own empty part to
 * write. */
int refresh_journal_begin(refresh *r, rt_err *err) {
  rt_job *job = r->job;
  int rc = RT_OK;
  if (job->rank == 0) {
    rc = rt_answers_open(r->cache_path, &r->cache, err);
    if (rc == RT_OK) rc = absorb_parts(r, 1, err);
  }
  rc = rt_agree(job->comm, rc, err);
  if (rc == RT_OK && job->rank != 0) rc = rt_answers_open(r->cache_path, &r->cache, err);
  if (rc == RT_OK) {
    size_t n = strlen(r->cache_path) + 32;
    char *pp = rt_xmalloc(n);
    snprintf(pp, n, "%s.part-%d", r->cache_path, job->rank);
    rc = rt_answers_open(pp, &r->part, err);
    free(pp);
    r->last_fsync = rt_now();
  }
  return rt_agree(job->comm, rc, err);
}

/* --dry-run: every rank reads a copy of the journal and of any parts a
 * killed run left, in memory (nothing is written, no lock is needed). */
int refresh_journal_peek(refresh *r, rt_err *err) {
  r->cache = rt_answers_new_memory();
  int rc = rt_answers_absorb(r->cache, r->cache_path, NULL, err);
  glob_t g;
  uint64_t total;
  if (rc == RT_OK && parts_glob(r->cache_path, &g)) {
    rc = absorb_all(r->cache, &g, &total, err);
    globfree(&g);
  }
  return rt_agree(r->job->comm, rc, err);
}

/* --dry-run's report (collective; rank 0 prints): what the LLM stage would
 * send, what the journal already answers, tokens and cost. */
void refresh_dry_report(refresh *r, uint64_t pairs) {
  const rt_config *cfg = r->cfg;
  uint64_t mine[3] = {r->dry_calls, r->dry_bytes, rt_metrics[RT_M_infer_cache_hits]}, all[3] = {0};
  MPI_Reduce(mine, all, 3, MPI_UINT64_T, MPI_SUM, 0, r->job->comm);
  if (r->job->rank != 0) return;
  uint64_t requests = all[0] * (uint64_t)cfg->samples;
  /* The client's estimate (infer.h est_tokens): bytes / 4 per prompt, and
   * at most llm.max_tokens per answer. */
  double in_tok = (double)all[1] * (double)cfg->samples / 4.0, out_tok = (double)requests * (double)cfg->max_tokens;
  char ws[32], we[32];
  rt_format_utc(cfg->window_start, ws, sizeof ws);
  rt_format_utc(cfg->window_end, we, sizeof we);
  printf("dry run of %s (run %s, window %s .. %s): nothing sent, nothing written\n", cfg->table, r->job->run_id,
         ws, we);
  printf("  pairs with a prompt        %llu\n", (unsigned long long)pairs);
  printf("  answered by the journal    %llu (%s)\n", (unsigned long long)all[2], r->cache_path ? r->cache_path : "off");
  printf("  would be asked             %llu pairs, %llu requests (llm.samples = %lld)\n", (unsigned long long)all[0],
         (unsigned long long)requests, (long long)cfg->samples);
  printf("  prompt tokens (estimate)   %.0f\n", in_tok);
  printf("  completion tokens (at most) %.0f (llm.max_tokens = %lld)\n", out_tok, (long long)cfg->max_tokens);
  if (cfg->price_in_per_mtok > 0 || cfg->price_out_per_mtok > 0)
    printf("  estimated cost             $%.2f (at most; $%g / $%g per million tokens in / out%s)\n",
           (rt_llm_client_batch(r->client) ? 0.5 : 1.0) * /* a Batch API charges half */
               (in_tok * cfg->price_in_per_mtok / 1e6 + out_tok * cfg->price_out_per_mtok / 1e6),
           cfg->price_in_per_mtok, cfg->price_out_per_mtok, rt_llm_client_batch(r->client) ? ", batch: half" : "");
  else
    printf("  estimated cost             set llm.price_in_per_mtok and llm.price_out_per_mtok to see it\n");
  fflush(stdout);
}

/* The journal at the end of a run, whatever its outcome (collective): every
 * rank makes its part durable; rank 0 then absorbs the parts into the
 * journal, compacts it when superseded records outnumber live ones, and
 * removes the parts. A failure here costs only a later rerun's reuse: warn. */
void refresh_journal_end(refresh *r) {
  rt_err e = {0};
  if (r->part && rt_answers_close(r->part, &e) != RT_OK) rt_warn("%s", e.msg);
  r->part = NULL;
  MPI_Barrier(r->job->comm);
  if (r->job->rank != 0 || !r->cache) return;
  int rc = absorb_parts(r, 0, &e);
  rt_answers_stats js = rt_answers_get_stats(r->cache);
  if (rc == RT_OK && js.records_loaded + js.appended > 2 * js.keys + 1024) rc = rt_answers_compact(r->cache, &e);
  if (rc) rt_warn("answer journal %s not updated (its parts stay for the next run): %s", r->cache_path, e.msg);
}

