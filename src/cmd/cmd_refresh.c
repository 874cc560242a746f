/* cmd_refresh.c — `ragtide refresh`: the whole job, stages 1–11.
 *
 * Data flow (one rank's view):
 *   plan -> read -> shuffle -> sequence -> count     (cmd/job.c)
 *   -> retrieve -> [per batch: prompt -> cache/infer -> match]
 *   -> gather -> (rank 0) overlay on base -> gates -> publish -> summary
 * Nothing is published unless every rank finished and both gates passed. */
#include "base/log.h"
#include "base/metrics.h"
#include "base/util.h"
#include "cmd/commands.h"
#include "cmd/job.h"
#include "format/answers.h"
#include "format/contexts.h"
#include "format/publish.h"
#include "llm/infer.h"
#include "pipeline/collective.h"
#include "pipeline/gates.h"
#include "pipeline/gather.h"
#include "pipeline/progress.h"
#include "pipeline/promfile.h"
#include "pipeline/stop.h"
#include "pipeline/summary.h"
#include "pipeline/table.h"
#include "rag/match.h"
#include "rag/prompt.h"
#include "rag/retrieve.h"

#include <glob.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct refresh {
  rt_job *job;
  const rt_config *cfg;
  rt_template tmpl;
  ragtide_table *base;      /* NULL without output.base_table */
  rt_llm_client *client;    /* NULL for llm.api = retrieval */
  rt_answers *cache;        /* NULL when output.cache = off: the journal (read; rank 0 appends at the end) */
  rt_answers *part;         /* this rank's journal part (CACHE.part-RANK): every answer, as it arrives */
  char *cache_path;
  rt_err part_err;          /* the first failed write to the part (reported once) */
  double last_fsync;
  /* the batch in flight, for the client's hooks */
  const uint64_t *batch_keys;
  const size_t *batch_miss;
  rt_progress *prog;
  uint64_t done_before;     /* pairs done before the batch in flight */
  uint64_t batch_done;      /* calls of the batch in flight complete so far */
  int journal;              /* journal_begin ran (on every rank alike) and journal_end is due */
  uint64_t dry_calls, dry_bytes; /* --dry-run: calls that would be sent, their prompt bytes */
  rt_matcher matcher;
  uint32_t popular[64];
  size_t n_popular;
  char *examples;           /* global granularity block, or "" */
  uint32_t day;             /* day the answers are produced */
  int base_mode;            /* prompt.mode = base */
  int global;               /* retrieval.granularity = global: no per-pair context in prompts */
  rt_result_buf results;    /* this rank's per-pair results (gather.h encoding) */
} refresh;

static char *path_or(const char *v, const char *table, const char *suffix) {
  if (v && *v) return rt_xstrdup(v);
  size_t n = strlen(table) + strlen(suffix) + 1;
  char *p = rt_xmalloc(n);
  snprintf(p, n, "%s%s", table, suffix);
  return p;
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
                               RAGTIDE_PROV_RAG);
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

/* The journal at the start of a run (collective): rank 0 opens it (which
 * repairs a torn tail) and absorbs the parts an interrupted or killed run
 * left (CACHE.part-*), then every rank opens it to read and creates its own
 * empty part to write. */
static int parts_glob(const char *cache_path, glob_t *g) {
  size_t n = strlen(cache_path) + 8;
  char *pat = rt_xmalloc(n);
  snprintf(pat, n, "%s.part-*", cache_path);
  int rc = glob(pat, 0, NULL, g);
  free(pat);
  return rc == 0;
}

/* at_start: the parts are a killed or interrupted run's (said so); else
 * this run's own, at its end. */
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

static int journal_begin(refresh *r, rt_err *err) {
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
static int journal_peek(refresh *r, rt_err *err) {
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
static void dry_report(refresh *r, uint64_t pairs) {
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
static void journal_end(refresh *r) {
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

static void copy_llm_stats(const rt_llm_client *c) {
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

static json_t *summary_json(refresh *r, const uint64_t *total, int rc, const rt_err *err, const char *status,
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
  json_object_set_new(l, "model", json_string(cfg->model));
  json_object_set_new(l, "prompt_mode", json_string(cfg->prompt_mode));
  json_object_set_new(l, "template", json_string(cfg->template_path));
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
    static const char *names[] = {"none", "base", "rag", "fallback"};
    for (int i = 0; i < 4; i++) json_object_set_new(p, names[i], json_integer((json_int_t)info->count_by_prov[i]));
    json_object_set_new(t, "pairs", p);
    struct stat st;
    if (stat(table_path, &st) == 0) json_object_set_new(t, "bytes", json_integer((json_int_t)st.st_size));
  }
  json_object_set_new(o, "table", t);
  json_object_set_new(o, "stages", rt_summary_stages(total));
  json_object_set_new(o, "wall_seconds", json_real(rt_now() - job->t_start));
  return o;
}

/* The endpoint's latency, attempts and tokens (rt_summary_llm, reduced
 * over ranks) and, with llm.price_*_per_mtok, the cost of the tokens the
 * endpoint reported (or, where it reported none, the client's estimate). */
static void add_endpoint(json_t *s, json_t *endpoint, const uint64_t *total, const rt_config *cfg) {
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

/* The window end of the table served at path (0: none, or a base table). */
static int64_t served_window_end(const char *path) {
  ragtide_table *t;
  char msg[256];
  if (ragtide_table_open(path, &t, msg, sizeof msg) != RAGTIDE_OK) return 0;
  int64_t we = ragtide_table_get_info(t)->window_end;
  ragtide_table_close(t);
  return we;
}

/* output.metrics_file (rank 0), whatever the outcome. */
static void write_metrics(refresh *r, const uint64_t *total, int rc, const char *status,
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
    for (int i = 0; i < 4; i++) m.pairs[i] = pub->count_by_prov[i];
  }
  rt_err e = {0};
  if (rt_prom_write(cfg->metrics_file, &m, &e)) rt_warn("%s", e.msg);
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
  char *summary_path = path_or(cfg->summary, cfg->table, ".summary.json");
  char *cache_path = strcmp(cfg->cache, "off") ? path_or(cfg->cache, cfg->table, ".answers") : NULL;
  int base_mode = strcmp(cfg->prompt_mode, "base") == 0;
  r.base_mode = base_mode;
  rt_runs *counts = NULL;
  rt_retrieval ret = {0};
  const char *status = "failed";
  int summary_due = 0; /* set once start-up succeeded; cleared when the summary is written */
  rt_gates gates = {0};  /* recall and coverage gates (pipeline/gates.h) */

  /* Set-up every rank does; each may fail alone, so agree after each. */
  /* llm.api = retrieval asks no model: it needs no template. */
  if (strcmp(cfg->api, "retrieval") != 0) rc = rt_template_load(cfg->template_path, &r.tmpl, &err);
  if (rc == RT_OK && *cfg->base_table) rc = rt_base_open(cfg->base_table, &job.cat, &r.base, &err);
  if (rc == RT_OK && strcmp(cfg->api, "retrieval") != 0) rc = rt_llm_client_new(cfg, &job.cat, &r.client, &err);
  rc = rt_agree(job.comm, rc, &err);
  if (rc) goto out;
  summary_due = 1;
  rt_matcher_init(&r.matcher, &job.cat, cfg->fuzzy, cfg->fuzzy_threshold);
  /* The journal: answers paid for in earlier runs (interrupted ones too). */
  r.cache_path = cache_path;
  if (cache_path && r.client && job.dry_run) {
    rc = journal_peek(&r, &err);
    if (rc) goto out;
  } else if (cache_path && r.client) {
    r.journal = 1;
    rc = journal_begin(&r, &err);
    if (rc) goto out;
  }

  /* Stages 1–6: counts and retrieval (not needed for the base prompt). */
  if (!base_mode) {
    uint64_t nrec = 0;
    rc = rt_gates_begin(&job.cfg, &gates, &err); /* gates.holdout_days: the last days leave the window */
    if (rc == RT_OK)
      rc = *cfg->counts ? rt_job_counts_from_file(&job, &counts, &err) : rt_job_aggregate(&job, &counts, &nrec, &err);
    if (rc == RT_OK && gates.holdout) rc = rt_job_holdout(&job, &gates, &err);
    if (rc) goto out;
    /* The owned records stream past retrieval in chunks of whole pairs:
     * only the retrieved successors stay. */
    int global = strcmp(cfg->granularity, "global") == 0;
    rt_count_vec chunk = {0};
    rt_triple_vec acc = {0};
    long got;
    while ((got = rt_runs_next_pairs(counts, &chunk, 1u << 16, &err)) > 0) {
      rt_retrieve_more(chunk.data, chunk.len, cfg, &ret);
      if (global) rt_retrieve_global_add(chunk.data, chunk.len, 100, &acc);
    }
    free(chunk.data);
    rt_runs_free(counts);
    counts = NULL;
    rc = rt_agree(job.comm, got < 0 ? err.code : RT_OK, &err);
    if (rc) {
      free(acc.data);
      goto out;
    }
    r.n_popular = rt_retrieve_popular(job.watch, job.cat.n, (size_t)(cfg->popular_n < 64 ? cfg->popular_n : 64),
                                      job.comm, r.popular);
    if (global) {
      rt_triple_count *top;
      size_t ntop;
      rt_retrieve_global_finish(&acc, 100, job.comm, &top, &ntop);
      r.examples = render_examples(&job.cat, top, ntop);
      free(top);
      /* Global granularity: one shared context block in every prompt, none
       * per pair (the pair's own successors still serve as its fallback). */
      r.global = 1;
    }
  } else {
    rt_plan_pairs_only(job.size, &job.plan);
  }
  if (!r.examples) r.examples = rt_xstrdup("");

  /* Fingerprint every pair's retrieved context, to report how much of it
   * moved since the previous run (rank 0 compares after the gather). */
  RT_VEC(rt_ctx_fp) fps = {0};
  if (!base_mode)
    for (size_t i = 0; i < ret.ctx.len; i++)
      rt_vec_push(&fps, ((rt_ctx_fp){ret.ctx.data[i].pair,
                                      rt_ctx_hash(ret.next.data + ret.ctx.data[i].off, ret.ctx.data[i].n)}));

  /* Stages 7–9 in batches, so prompts and answers in memory stay bounded. */
  size_t batch = (size_t)cfg->concurrency * 16;
  if (batch < 1024) batch = 1024;
  if (rt_llm_client_batch(r.client)) batch = SIZE_MAX; /* batch mode: one provider run for all of a rank's pairs */
  uint64_t mine = ret.ctx.len, npairs = (uint64_t)job.cat.n * (job.cat.n - 1), done = 0;
  if (!base_mode) MPI_Allreduce(&mine, &npairs, 1, MPI_UINT64_T, MPI_SUM, job.comm);
  rt_progress prog;
  rt_progress_start(&prog, job.comm, "llm", npairs, (double)cfg->progress_s);
  rt_progress_labels(&prog, "pairs", r.client ? "requests" : NULL, r.client ? "retries" : NULL,
                     r.client ? "429s" : NULL, r.client ? "failed" : NULL, NULL);
  r.prog = &prog;
  if (r.client) {
    rt_llm_hooks hooks = {on_answer, on_poll, &r, (double)cfg->grace_s};
    rt_llm_set_hooks(r.client, &hooks);
  }
  /* Between batches too: a stop asked while this rank answers from the
   * journal, or before its first call, ends the stage. */
  int stopped = 0;
  if (base_mode) {
    rt_context *buf = rt_xmalloc(batch * sizeof *buf);
    uint64_t cursor = 0;
    size_t n;
    while (rc == RT_OK && !(stopped = rt_stop_poll() != 0) && (n = base_contexts(&job, &cursor, buf, batch)) > 0) {
      rc = run_batch(&r, buf, n, NULL, &err);
      r.done_before = done += n;
      r.batch_done = 0;
      llm_progress(&r);
    }
    free(buf);
  }
  for (size_t off = 0; !base_mode && off < ret.ctx.len && rc == RT_OK && !(stopped = rt_stop_poll() != 0);
       off += batch) {
    size_t n = ret.ctx.len - off < batch ? ret.ctx.len - off : batch;
    rc = run_batch(&r, ret.ctx.data + off, n, &ret, &err);
    r.done_before = done += n;
    r.batch_done = 0;
    llm_progress(&r);
  }
  if (rc == RT_OK && stopped)
    rc = rt_err_set(&err, RT_ERR_INTERRUPTED, "interrupted by %s after %llu pairs on this rank",
                    rt_stop_name(rt_stop_requested()), (unsigned long long)done);
  if (rc == RT_ERR_INTERRUPTED && rt_stop_requested()) /* (no signal: llm.batch_deadline said why) */
    rt_err_set(&err, RT_ERR_INTERRUPTED, "interrupted by %s: the LLM stage stopped (calls in flight had "
               "job.grace_s = %lld s); nothing published; every answer received is in the journal %s — rerun "
               "the same command to resume", rt_stop_name(rt_stop_requested()), (long long)cfg->grace_s,
               cache_path ? cache_path : "(off: output.cache = off, a rerun asks again)");
  rt_progress_finish(&prog, done);
  r.prog = NULL;
  copy_llm_stats(r.client);
  rc = rt_agree(job.comm, rc, &err);
  if (rc == RT_OK && job.dry_run) { /* nothing was sent: report, publish nothing, write nothing */
    dry_report(&r, npairs);
    summary_due = 0;
    goto out;
  }
  if (r.journal) journal_end(&r), r.journal = 0;
  if (rc == RT_OK) rc = rt_gates_eval(&gates, job.comm, &r.results, r.base, job.cat.n, &err);
  rc = rt_agree(job.comm, rc, &err);
  if (rc) goto out;

  /* Stage 10: context fingerprints and counters to rank 0 (the results
   * follow once rank 0 knows whether it will build a table). */
  void *allfp;
  size_t nfpb;
  rt_gather_bytes(job.comm, fps.data, fps.len * sizeof *fps.data, &allfp, &nfpb);
  free(fps.data);
  fps.data = NULL;
  uint64_t total[RT_M_COUNT];
  rt_metrics_reduce(job.comm, total);
  json_t *endpoint = rt_summary_llm(job.comm, r.client ? rt_llm_get_stats(r.client) : NULL); /* rank 0 */
  if (rt_llm_client_batch(r.client)) rt_summary_batches(job.comm, endpoint, rt_llm_batch_report(r.client));

  /* Stage 11 (rank 0): gates, overlay, publish, summary. */
  overlay_ctx oc = {.candidates = (int)cfg->candidates, .day = r.day};
  double exact = -1, failed = -1, ctx_changed = -1;
  if (job.rank == 0) {
    exact = total[RT_M_match_answers] ? (double)total[RT_M_match_exact] / (double)total[RT_M_match_answers] : -1;
    failed = total[RT_M_infer_calls] - total[RT_M_infer_cache_hits]
                        ? (double)total[RT_M_infer_failed] /
                              (double)(total[RT_M_infer_calls] - total[RT_M_infer_cache_hits])
                        : -1;
    /* Context drift since the previous run (a report; never fails the run). */
    if (!base_mode) {
      size_t nfp = nfpb / sizeof(rt_ctx_fp);
      rt_ctx_fp *cur = allfp;
      qsort(cur, nfp, sizeof *cur, cmp_fp);
      char *ctx_path = path_or(NULL, cfg->table, ".contexts");
      rt_ctx_fp *prev;
      size_t nprev;
      rt_contexts_load(ctx_path, job.cat.hash, &prev, &nprev);
      if (nfp) ctx_changed = (double)rt_contexts_changed(prev, nprev, cur, nfp) / (double)nfp;
      free(prev);
      free(ctx_path);
    }
    if (failed > cfg->max_failed_fraction) {
      status = "halted";
      rc = rt_err_set(&err, RT_ERR_ENDPOINT,
                      "%llu of %llu endpoint calls failed (%.1f%% > llm.max_failed_fraction %.1f%%) against %s; "
                      "nothing published — check the endpoint, then rerun",
                      (unsigned long long)total[RT_M_infer_failed],
                      (unsigned long long)(total[RT_M_infer_calls] - total[RT_M_infer_cache_hits]), failed * 100,
                      cfg->max_failed_fraction * 100, cfg->base_url);
    } else if (exact >= 0 && exact < cfg->min_exact_match) {
      status = "halted";
      rc = rt_err_set(&err, RT_ERR_GATE,
                      "quality gate: exact-match rate %.2f%% is below gates.min_exact_match %.2f%% (%llu of %llu "
                      "answers name a catalog cluster); nothing published — review the model and prompt, or "
                      "constrain its output (llm.constrain)",
                      exact * 100, cfg->min_exact_match * 100, (unsigned long long)total[RT_M_match_exact],
                      (unsigned long long)total[RT_M_match_answers]);
    } else if (rt_gates_check(&gates, cfg, &err)) { /* recall (exit 12), coverage (exit 13) */
      status = "halted";
      rc = err.code;
    } else if (!job.force && !base_mode && served_window_end(cfg->table) > cfg->window_end) {
      /* Never a step back: a late or re-run of an older window must not
       * replace a table built from newer logs. */
      status = "stale";
      char a[32], b[32];
      rt_format_utc(served_window_end(cfg->table), a, sizeof a);
      rt_format_utc(cfg->window_end, b, sizeof b);
      rc = rt_err_set(&err, RT_ERR_STALE,
                      "not published: the served table %s was built from a window ending %s, later than this "
                      "run's %s; nothing replaced — rerun with --force to publish the older window anyway",
                      cfg->table, a, b);
    } else {
      ragtide_table_info info = {0};
      info.k = 2;
      info.created_at = job.created_at;
      info.window_start = base_mode ? 0 : cfg->window_start;
      info.window_end = base_mode ? 0 : cfg->window_end;
      info.catalog_hash = job.cat.hash;
      info.template_hash = r.tmpl.hash;
      info.config_hash = rt_config_hash(cfg);
      info.model = r.client ? cfg->model : "retrieval";
      info.run_id = job.run_id;
      info.base_run_id = r.base ? ragtide_table_get_info(r.base)->run_id : "";
      rc = rt_table_begin(&job.cat, (int)cfg->candidates, r.base, &oc.b, &err);
      oc.info = info;
    }
  }
  /* Results stream to rank 0 rank by rank, straight into the builder. */
  rt_gather_results(job.comm, &r.results, on_results, &oc);
  ragtide_table *pub = NULL; /* the published table, read back (rank 0) */
  if (job.rank == 0) {
    if (oc.b) {
      if (oc.bad)
        rc = rt_err_set(&err, RT_ERR_INTERNAL, "a rank sent a malformed result buffer; nothing published");
      if (rc == RT_OK && ragtide_builder_set_info(oc.b, &oc.info) != RAGTIDE_OK)
        rc = rt_err_set(&err, RT_ERR_INTERNAL, "table header rejected by the builder");
      /* Last chance to honour a stop: past this point the run publishes. */
      if (rc == RT_OK && rt_stop_poll()) {
        status = "interrupted";
        rc = rt_err_set(&err, RT_ERR_INTERRUPTED, "interrupted by %s before publishing; nothing published — "
                        "rerun the same command to resume", rt_stop_name(rt_stop_requested()));
      }
      if (rc == RT_OK) rt_stop_arm(0);
      if (rc == RT_OK) rc = rt_table_publish(oc.b, cfg->table, (int)cfg->keep, &err);
      ragtide_builder_free(oc.b);
      if (rc == RT_OK) {
        char msg[512];
        if (ragtide_table_open(cfg->table, &pub, msg, sizeof msg) != RAGTIDE_OK)
          rc = rt_err_set(&err, RT_ERR_OUTPUT, "published table does not read back: %s", msg);
        else status = "published";
        /* The contexts beside the table describe the served table: saved
         * only once this run's table is the one served. */
        if (rc == RT_OK && !base_mode) {
          char *ctx_path = path_or(NULL, cfg->table, ".contexts");
          rt_err cerr = {0};
          if (rt_contexts_save(ctx_path, job.cat.hash, (rt_ctx_fp *)allfp, nfpb / sizeof(rt_ctx_fp), &cerr))
            rt_warn("%s", cerr.msg);
          free(ctx_path);
        }
      }
    }
  }
  /* Peak memory after the table was built (rank 0's largest moment). */
  json_t *rss = rt_summary_rss(job.comm);
  if (job.rank == 0) {
    long own = rt_peak_rss_kb();
    if (own > 0 && (uint64_t)own > total[RT_M_process_peak_rss_kb]) total[RT_M_process_peak_rss_kb] = (uint64_t)own;
    /* gather and table ran on rank 0 after the counters were reduced */
    total[RT_M_gather_us] = rt_metrics[RT_M_gather_us];
    total[RT_M_gather_results] = oc.applied;
    total[RT_M_table_us] = rt_metrics[RT_M_table_us];
    json_t *s = summary_json(&r, total, rc, &err, status, cfg->table, pub ? ragtide_table_get_info(pub) : NULL,
                             exact, failed);
    json_object_set_new(s, "peak_rss_kb_per_rank", rss);
    json_t *inc = json_object();
    json_object_set_new(inc, "calls_made", json_integer((json_int_t)total[RT_M_infer_requests]));
    json_object_set_new(inc, "answers_reused", json_integer((json_int_t)total[RT_M_infer_cache_hits]));
    json_object_set_new(inc, "context_changed_share", ctx_changed >= 0 ? json_real(ctx_changed) : json_null());
    json_object_set_new(s, "incremental", inc);
    add_endpoint(s, endpoint, total, cfg);
    endpoint = NULL;
    rt_err serr = {0};
    if (rt_summary_write(s, summary_path, &serr)) rt_warn("%s", serr.msg);
    json_decref(s);
    write_metrics(&r, total, rc, status, pub ? ragtide_table_get_info(pub) : NULL, exact, failed);
    if (pub) {
      const ragtide_table_info *ti = ragtide_table_get_info(pub);
      char rate[32] = "n/a";
      if (exact >= 0) snprintf(rate, sizeof rate, "%.2f%%", exact * 100);
      rt_info("published %s: %llu rag, %llu base, %llu fallback, %llu none; exact match %s; summary %s", cfg->table,
              (unsigned long long)ti->count_by_prov[RAGTIDE_PROV_RAG],
              (unsigned long long)ti->count_by_prov[RAGTIDE_PROV_BASE],
              (unsigned long long)ti->count_by_prov[RAGTIDE_PROV_FALLBACK],
              (unsigned long long)ti->count_by_prov[RAGTIDE_PROV_NONE], rate, summary_path);
      ragtide_table_close(pub);
    }
  }
  free(allfp);
  summary_due = 0;
  rt_stop_arm(0); /* the outcome is decided and reported: a late signal changes nothing */
  rc = rt_agree(job.comm, rc, &err);

out:
  if (r.journal) journal_end(&r), r.journal = 0;
  if (rc && summary_due) {
    /* Failed after start-up (the same rc on every rank): still leave a
     * summary, so the operator sees how far the run got and why it stopped. */
    copy_llm_stats(r.client);
    uint64_t tot[RT_M_COUNT];
    rt_metrics_reduce(job.comm, tot);
    json_t *ep = rt_summary_llm(job.comm, r.client ? rt_llm_get_stats(r.client) : NULL);
    if (rt_llm_client_batch(r.client)) rt_summary_batches(job.comm, ep, rt_llm_batch_report(r.client));
    json_t *rss2 = rt_summary_rss(job.comm);
    if (job.rank == 0) {
      const char *st = rc == RT_ERR_INTERRUPTED ? "interrupted" : "failed";
      json_t *s = summary_json(&r, tot, rc, &err, st, cfg->table, NULL, -1, -1);
      json_object_set_new(s, "peak_rss_kb_per_rank", rss2);
      add_endpoint(s, ep, tot, cfg);
      ep = NULL;
      rt_err serr = {0};
      if (rt_summary_write(s, summary_path, &serr)) rt_warn("%s", serr.msg);
      json_decref(s);
      write_metrics(&r, tot, rc, st, NULL, -1, -1);
    }
  }
  rt_runs_free(counts);
  rt_gates_free(&gates);
  rt_retrieval_free(&ret);
  free(r.results.data);
  free(r.examples);
  rt_template_free(&r.tmpl);
  rt_matcher_free(&r.matcher);
  if (r.cache) rt_answers_close(r.cache, NULL);
  if (r.client) rt_llm_client_free(r.client);
  if (r.base) ragtide_table_close(r.base);
  free(summary_path);
  free(cache_path);
  (void)status;
  return rt_job_end(&job, rc, &err);
}
