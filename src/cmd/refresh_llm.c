/* refresh_llm.c — `ragtide refresh` stages 7–9, batch by batch: render
 * each pair's prompt, answer it from the journal or the endpoint, match the
 * answer to the catalog, and record the pair's result (rag, base or
 * fallback). See refresh.h. */
#include "base/log.h"
#include "base/metrics.h"
#include "cmd/refresh.h"
#include "pipeline/collective.h"
#include "pipeline/stop.h"
#include "pipeline/table.h"

#include <stdlib.h>
#include <string.h>

/* Contexts for prompt.mode = base: the next `max` ordered pairs of distinct
 * clusters this rank owns, from *cursor on (pair index c1 * n + c2). Made
 * batch by batch: a 10,000-cluster catalog has 10^8 pairs. */
static size_t base_contexts(const rt_job *job, uint64_t *cursor, rt_context *out, size_t max) {
  const uint64_t n = job->cat.n, total = n * n;
  size_t k = 0;
  for (; *cursor < total && k < max; (*cursor)++) {
    uint64_t a = *cursor / n, b = *cursor % n;
    if (a == b) continue;
    uint64_t pair = (a << RT_KEY_BITS) | b;
    if (rt_pair_owner(&job->plan, pair) == job->rank) out[k++] = (rt_context){pair, 0, 0, 0};
  }
  return k;
}

/* What a pair gets when the endpoint failed or the answer is unusable: the
 * base answer if there is one, else the top retrieved successor. */
static void fallback(refresh *r, uint64_t pair, const uint32_t *ret, uint32_t nret) {
  uint32_t c1 = rt_pair_c1(pair), c2 = rt_pair_c2(pair);
  int32_t b = rt_base_next(r->base, c1, c2);
  rt_result out = {.pair = pair, .prov = RAGTIDE_PROV_FALLBACK, .n = 0};
  if (b >= 0) out.next[out.n++] = (uint32_t)b;
  else /* a base answer stands alone, as in the base table; else the retrieved list */
    for (uint32_t k = 0; k < nret && out.n < (uint32_t)r->cfg->candidates; k++) out.next[out.n++] = ret[k];
  if (out.n) rt_result_put(&r->results, &out);
}

static void add_result(refresh *r, uint64_t pair, uint32_t answer, const uint32_t *ret, uint32_t nret,
                       uint32_t prov) {
  rt_result res = {.pair = pair, .prov = prov, .n = 0};
  res.next[res.n++] = answer;
  for (uint32_t k = 0; k < nret && res.n < (uint32_t)r->cfg->candidates; k++)
    if (ret[k] != answer) res.next[res.n++] = ret[k];
  rt_result_put(&r->results, &res);
}

/* Progress of the LLM stage: the counters rank 0 sums (progress.h). */
static void llm_progress(refresh *r) {
  if (!r->prog) return;
  const rt_llm_stats *st = r->client ? rt_llm_get_stats(r->client) : NULL;
  uint64_t v[RT_PROGRESS_MAX] = {r->done_before + r->batch_done, st ? st->requests : 0, st ? st->retries : 0,
                                 st ? st->http_429 : 0, st ? st->failed : 0};
  rt_progress_update_v(r->prog, v);
}

/* The client's hook: call i of the batch is complete. Its answer goes to
 * this rank's journal part at once (one write(2): a killed process loses
 * nothing written), fsynced every output.flush_s (a machine crash loses at
 * most that much). */
static void on_answer(void *ud, size_t i, const rt_llm_answer *a) {
  refresh *r = ud;
  r->batch_done++;
  if (!a->ok || !r->part || r->part_err.code) return;
  rt_err e = {0};
  int rc = rt_answers_put(r->part, r->batch_keys[r->batch_miss[i]], r->day, a->text, &e);
  if (rc == RT_OK) rc = rt_answers_write(r->part, &e);
  double now = rt_now();
  if (rc == RT_OK && now - r->last_fsync >= (double)r->cfg->flush_s) {
    rc = rt_answers_flush(r->part, &e);
    r->last_fsync = now;
  }
  if (rc) {
    r->part_err = e;
    rt_warn("answers are no longer journaled on this rank (a rerun would ask again): %s", e.msg);
  }
}

/* The client's hook, every loop turn: progress, and whether to stop. */
static int on_poll(void *ud) {
  refresh *r = ud;
  llm_progress(r);
  return rt_stop_poll() != 0;
}

/* An answer that names no catalog cluster is not reused: a later run (after
 * the model, prompt or endpoint was fixed, say after a gate halt) asks
 * again. An empty record in the journal part supersedes it. */
static void forget(refresh *r, uint64_t key) {
  if (!r->part || r->part_err.code) return;
  rt_err e = {0};
  if (rt_answers_put(r->part, key, r->day, "", &e) == RT_OK) rt_answers_write(r->part, &e);
}

/* One batch of pairs: prompts, cache, endpoint, match. */
static int run_batch(refresh *r, const rt_context *ctx, size_t n, const rt_retrieval *ret, rt_err *err) {
  const rt_catalog *cat = &r->job->cat;
  if (!r->client) { /* llm.api = retrieval: the prediction is the top retrieved successor */
    for (size_t i = 0; i < n; i++)
      if (ctx[i].n) add_result(r, ctx[i].pair, ret->next.data[ctx[i].off], &ret->next.data[ctx[i].off], ctx[i].n,
                               RAGTIDE_PROV_RETRIEVAL);
    return RT_OK;
  }
  double t0 = rt_stage_begin();
  rt_llm_call *calls = rt_xcalloc(n, sizeof *calls);
  char **sys = rt_xcalloc(n, sizeof *sys), **usr = rt_xcalloc(n, sizeof *usr);
  const char **cached = rt_xcalloc(n, sizeof *cached);
  uint64_t *keys = rt_xcalloc(n, sizeof *keys);
  size_t *miss = rt_xmalloc(n * sizeof *miss), nmiss = 0;
  for (size_t i = 0; i < n; i++) {
    const uint32_t *rn = ret ? &ret->next.data[ctx[i].off] : NULL;
    rt_prompt_vars v = {cat, rt_pair_c1(ctx[i].pair), rt_pair_c2(ctx[i].pair), rn, r->global ? 0 : ctx[i].n, r->popular,
                        r->n_popular, r->examples};
    rt_prompt_render(&r->tmpl, &v, &sys[i], &usr[i]);
    calls[i] = (rt_llm_call){*sys[i] ? sys[i] : NULL, usr[i], ctx[i].pair, 2, {v.c1, v.c2}};
    rt_metric_add(RT_M_prompt_bytes, strlen(sys[i]) + strlen(usr[i]));
  }
  rt_metric_add(RT_M_prompt_rendered, n);
  rt_stage_end(RT_M_prompt_us, t0);
  t0 = rt_stage_begin();
  for (size_t i = 0; i < n; i++) {
    keys[i] = rt_llm_request_key(r->client, &calls[i]);
    uint32_t d;
    if (r->cache && !r->job->no_cache && rt_answers_get(r->cache, keys[i], &cached[i], &d) == 1) {
      if (*cached[i]) {
        rt_metric_add(RT_M_infer_cache_hits, 1);
        continue;
      }
      cached[i] = NULL; /* forgotten: it named no cluster (forget()) */
    }
    miss[nmiss++] = i;
  }
  if (r->job->dry_run) { /* count what would be sent; send nothing */
    for (size_t k = 0; k < nmiss; k++) r->dry_bytes += strlen(sys[miss[k]]) + strlen(usr[miss[k]]);
    r->dry_calls += nmiss;
    rt_metric_add(RT_M_infer_calls, n);
    nmiss = 0; /* nothing below runs for them: no answers, no results */
    for (size_t i = 0; i < n; i++) cached[i] = NULL;
  }
  rt_llm_call *mcalls = rt_xmalloc((nmiss ? nmiss : 1) * sizeof *mcalls);
  rt_llm_answer *ans = rt_xcalloc(nmiss ? nmiss : 1, sizeof *ans);
  for (size_t k = 0; k < nmiss; k++) mcalls[k] = calls[miss[k]];
  rt_metric_add(RT_M_infer_calls, n);
  r->batch_keys = keys;
  r->batch_miss = miss;
  r->batch_done = n - nmiss; /* the cached ones */
  int rc = nmiss ? rt_llm_run(r->client, mcalls, nmiss, ans, err) : RT_OK;
  r->batch_keys = NULL;
  r->batch_miss = NULL;
  rt_stage_end(RT_M_infer_us, t0);
  t0 = rt_stage_begin();
  const char **text = rt_xcalloc(n, sizeof *text);
  for (size_t i = 0; i < n; i++) text[i] = cached[i];
  for (size_t k = 0; k < nmiss && rc == RT_OK; k++) {
    if (ans[k].ok) {
      text[miss[k]] = ans[k].text; /* already in the journal part (on_answer) */
    } else {
      rt_debug("pair (%u, %u): no answer after %d attempts: %s", cat->ids[rt_pair_c1(ctx[miss[k]].pair)],
               cat->ids[rt_pair_c2(ctx[miss[k]].pair)], ans[k].attempts, ans[k].error ? ans[k].error : "?");
    }
  }
  for (size_t i = 0; i < n && rc == RT_OK && !r->job->dry_run; i++) {
    const uint32_t *rn = ret ? &ret->next.data[ctx[i].off] : NULL;
    if (!text[i]) { /* the endpoint failed for this pair */
      rt_metric_add(RT_M_match_fallback_failed, 1);
      fallback(r, ctx[i].pair, rn, ctx[i].n);
      continue;
    }
    rt_metric_add(RT_M_match_answers, 1);
    rt_match_result m = rt_match(&r->matcher, text[i], rt_pair_c1(ctx[i].pair), rt_pair_c2(ctx[i].pair));
    if (m.kind == RT_MATCH_EXACT) rt_metric_add(RT_M_match_exact, 1);
    else if (m.kind == RT_MATCH_FUZZY) rt_metric_add(RT_M_match_fuzzy, 1);
    else rt_metric_add(RT_M_match_unmatched, 1), forget(r, keys[i]);
    if (m.idx >= 0 && !m.novel) rt_metric_add(RT_M_match_not_novel, 1);
    if (m.idx >= 0 && m.novel) {
      /* A base run's answers are the base (fine-tuned model's) answers. */
      add_result(r, ctx[i].pair, (uint32_t)m.idx, rn, ctx[i].n, r->base_mode ? RAGTIDE_PROV_BASE : RAGTIDE_PROV_RAG);
    } else {
      fallback(r, ctx[i].pair, rn, ctx[i].n);
    }
  }
  rt_stage_end(RT_M_match_us, t0);
  for (size_t i = 0; i < n; i++) {
    free(sys[i]);
    free(usr[i]);
  }
  for (size_t k = 0; k < nmiss; k++) rt_llm_answer_free(&ans[k]);
  free(ans);
  free(mcalls);
  free(sys);
  free(usr);
  free(cached);
  free(keys);
  free(miss);
  free(calls);
  free(text);
  return rc;
}

/* Stages 7–9 in batches, so prompts and answers in memory stay bounded. */
int refresh_llm_stage(refresh *r, rt_err *err) {
  rt_job *job = r->job;
  const rt_config *cfg = r->cfg;
  int rc = RT_OK;
  size_t batch = (size_t)cfg->concurrency * 16;
  if (batch < 1024) batch = 1024;
  if (rt_llm_client_batch(r->client)) batch = SIZE_MAX; /* batch mode: one provider run for all of a rank's pairs */
  uint64_t mine = r->ret.ctx.len, done = 0;
  r->npairs = (uint64_t)job->cat.n * (job->cat.n - 1);
  if (!r->base_mode) MPI_Allreduce(&mine, &r->npairs, 1, MPI_UINT64_T, MPI_SUM, job->comm);
  rt_progress prog;
  rt_progress_start(&prog, job->comm, "llm", r->npairs, (double)cfg->progress_s);
  rt_progress_labels(&prog, "pairs", r->client ? "requests" : NULL, r->client ? "retries" : NULL,
                     r->client ? "429s" : NULL, r->client ? "failed" : NULL, NULL);
  r->prog = &prog;
  if (r->client) {
    rt_llm_hooks hooks = {on_answer, on_poll, r, (double)cfg->grace_s};
    rt_llm_set_hooks(r->client, &hooks);
  }
  /* Between batches too: a stop asked while this rank answers from the
   * journal, or before its first call, ends the stage. */
  int stopped = 0;
  if (r->base_mode) {
    rt_context *buf = rt_xmalloc(batch * sizeof *buf);
    uint64_t cursor = 0;
    size_t n;
    while (rc == RT_OK && !(stopped = rt_stop_poll() != 0) && (n = base_contexts(job, &cursor, buf, batch)) > 0) {
      rc = run_batch(r, buf, n, NULL, err);
      r->done_before = done += n;
      r->batch_done = 0;
      llm_progress(r);
    }
    free(buf);
  }
  for (size_t off = 0; !r->base_mode && off < r->ret.ctx.len && rc == RT_OK && !(stopped = rt_stop_poll() != 0);
       off += batch) {
    size_t n = r->ret.ctx.len - off < batch ? r->ret.ctx.len - off : batch;
    rc = run_batch(r, r->ret.ctx.data + off, n, &r->ret, err);
    r->done_before = done += n;
    r->batch_done = 0;
    llm_progress(r);
  }
  if (rc == RT_OK && stopped)
    rc = rt_err_set(err, RT_ERR_INTERRUPTED, "interrupted by %s after %llu pairs on this rank",
                    rt_stop_name(rt_stop_requested()), (unsigned long long)done);
  if (rc == RT_ERR_INTERRUPTED && rt_stop_requested()) /* (no signal: llm.batch_deadline said why) */
    rt_err_set(err, RT_ERR_INTERRUPTED, "interrupted by %s: the LLM stage stopped (calls in flight had "
               "job.grace_s = %lld s); nothing published; every answer received is in the journal %s — rerun "
               "the same command to resume", rt_stop_name(rt_stop_requested()), (long long)cfg->grace_s,
               r->cache_path ? r->cache_path : "(off: output.cache = off, a rerun asks again)");
  rt_progress_finish(&prog, done);
  r->prog = NULL;
  refresh_copy_llm_stats(r->client);
  return rt_agree(job->comm, rc, err);
}

void refresh_copy_llm_stats(const rt_llm_client *c) {
  if (!c) return;
  const rt_llm_stats *s = rt_llm_get_stats(c);
  rt_metrics[RT_M_infer_requests] = s->requests;
  rt_metrics[RT_M_infer_retries] = s->retries;
  rt_metrics[RT_M_infer_http_429] = s->http_429;
  rt_metrics[RT_M_infer_http_5xx] = s->http_5xx;
  rt_metrics[RT_M_infer_timeouts] = s->timeouts;
  rt_metrics[RT_M_infer_conn_errors] = s->conn_errors;
  rt_metrics[RT_M_infer_bad_responses] = s->bad_responses;
  rt_metrics[RT_M_infer_failed] = s->failed;
  rt_metrics[RT_M_infer_prompt_tokens] = s->prompt_tokens;
  rt_metrics[RT_M_infer_completion_tokens] = s->completion_tokens;
}

