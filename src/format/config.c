/* config.c — the one table of configuration keys, and the INI parser (inih). */
#include "format/config.h"
#include "base/util.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum { K_STR, K_INT, K_DBL, K_BOOL, K_DATE, K_TIME, K_ENUM } ktype;

typedef struct {
  const char *name;    /* "section.key" */
  ktype type;
  size_t off;
  const char *dflt;    /* default as text ("" = unset) */
  const char *choices; /* K_ENUM: "a|b|c" */
  const char *doc;
} keydef;

#define O(f) offsetof(rt_config, f)
static const keydef KEYS[] = {
  {"input.catalog", K_STR, O(catalog), "", NULL, "cluster catalog TSV (id<TAB>keywords); required"},
  {"input.logs", K_STR, O(logs), "", NULL,
   "event shards: a glob (quote it) or @MANIFEST (one path per line); required"},
  {"input.counts", K_STR, O(counts), "", NULL,
   "start refresh from a counts file (`ragtide aggregate --out`) instead of reading input.logs"},
  {"input.window_start", K_DATE, O(window_start), "", NULL,
   "first day of the refresh window, UTC (YYYY-MM-DD[THH:MM:SSZ]), inclusive; required"},
  {"input.window_end", K_DATE, O(window_end), "", NULL, "end of the refresh window, UTC, exclusive; required"},
  {"input.window_days", K_INT, O(window_days), "0", NULL,
   "instead of window_start/window_end: the N days ending at the last UTC midnight (minus window_lag_h); "
   "a resumed run keeps its first attempt's window"},
  {"input.window_lag_h", K_INT, O(window_lag_h), "0", NULL,
   "with window_days: hours the logs arrive late (the window ends at the last midnight before now - lag)"},
  {"input.min_engagement", K_DBL, O(min_engagement), "0.5", NULL,
   "keep events whose engagement is >= this (positive engagement)"},
  {"input.dedup", K_ENUM, O(dedup), "consecutive", "consecutive|unique",
   "consecutive: collapse repeats; unique: keep each cluster's most recent occurrence"},
  {"input.min_seq_len", K_INT, O(min_seq_len), "3", NULL,
   "drop deduplicated sequences shorter than this (3 = the shortest that yields a triple)"},
  {"input.max_gap_s", K_INT, O(max_gap_s), "0", NULL,
   "a gap longer than this many seconds between watches starts a new sequence; 0 = never"},
  {"input.partitioned_by_user", K_BOOL, O(partitioned_by_user), "false", NULL,
   "shards are already split by user (each user in one shard): skip the user shuffle"},
  {"input.on_bad_event", K_ENUM, O(on_bad_event), "fail", "fail|skip",
   "an event with an unknown cluster, a malformed timestamp (negative, or >= 1e11: milliseconds) or a NaN "
   "engagement: fail the run, or skip and count it (events outside the window are always counted and skipped)"},
  {"retrieval.mode", K_ENUM, O(retrieval_mode), "frequency", "frequency|trend",
   "frequency: most frequent successors in the window; trend: largest increase vs the previous window"},
  {"retrieval.top_n", K_INT, O(top_n), "1", NULL, "retrieved successors per pair (the paper uses 1)"},
  {"retrieval.granularity", K_ENUM, O(granularity), "instance", "instance|global",
   "instance: context per pair; global: one block of the top-100 triples for all pairs"},
  {"retrieval.popular_n", K_INT, O(popular_n), "5", NULL, "size of the top popular clusters block"},
  {"prompt.mode", K_ENUM, O(prompt_mode), "rag", "rag|base",
   "rag: prompts carry retrieved context (pairs with data); base: the fine-tuned prompt over all pairs"},
  {"prompt.template", K_STR, O(template_path), "jobs/prompts/rag.tmpl", NULL, "prompt template file"},
  {"llm.api", K_ENUM, O(api), "openai", "openai|gemini|openai-batch|gemini-batch|retrieval",
   "openai: /v1/chat/completions; gemini: generateContent; openai-batch / gemini-batch: the same requests "
   "through the provider's Batch API (half price, results within 24 h); retrieval: no calls, top retrieved "
   "successor"},
  {"llm.base_url", K_STR, O(base_url), "http://127.0.0.1:8088", NULL,
   "endpoint base URL (without /v1/...)"},
  {"llm.model", K_STR, O(model), "ragtide-sim", NULL, "model name sent with each request"},
  {"llm.concurrency", K_INT, O(concurrency), "32", NULL, "requests in flight per rank"},
  {"llm.api_key_env", K_STR, O(api_key_env), "", NULL, "environment variable holding the API key"},
  {"llm.api_key_file", K_STR, O(api_key_file), "", NULL,
   "file holding the API key (must not be readable by group or others)"},
  {"llm.insecure", K_BOOL, O(insecure), "false", NULL, "disable TLS verification (never in production)"},
  {"llm.temperature", K_DBL, O(temperature), "0", NULL, "sampling temperature"},
  {"llm.max_tokens", K_INT, O(max_tokens), "64", NULL, "maximum tokens per answer"},
  {"llm.seed", K_INT, O(seed), "0", NULL, "seed sent to endpoints that accept one"},
  {"llm.timeout_ms", K_INT, O(timeout_ms), "60000", NULL, "total timeout of one request"},
  {"llm.connect_timeout_ms", K_INT, O(connect_timeout_ms), "5000", NULL, "connect timeout"},
  {"llm.max_attempts", K_INT, O(max_attempts), "4", NULL, "attempts per request, retries included"},
  {"llm.rpm", K_INT, O(rpm), "0", NULL, "global requests per minute over all ranks; 0 = unlimited"},
  {"llm.tpm", K_INT, O(tpm), "0", NULL, "global tokens per minute over all ranks; 0 = unlimited"},
  {"llm.constrain", K_ENUM, O(constrain), "off", "off|json_schema|guided_choice",
   "restrict answers to catalog descriptions where the endpoint supports it"},
  {"llm.samples", K_INT, O(samples), "1", NULL, "answers per pair, majority vote"},
  {"llm.max_failed_fraction", K_DBL, O(max_failed_fraction), "0.01", NULL,
   "share of pairs whose calls may all fail before the run stops unpublished"},
  {"llm.headers", K_STR, O(headers), "", NULL, "extra request headers, \"Name: value; Name2: value\""},
  {"llm.price_in_per_mtok", K_DBL, O(price_in_per_mtok), "0", NULL,
   "price of a million prompt tokens (USD) for the cost estimate in the summary and --dry-run; 0 = none"},
  {"llm.price_out_per_mtok", K_DBL, O(price_out_per_mtok), "0", NULL,
   "price of a million completion tokens (USD)"},
  {"llm.batch_retry", K_ENUM, O(batch_retry), "sync", "sync|batch",
   "batch mode: failed batch lines are retried through the synchronous endpoint (sync) or in a follow-up "
   "batch (batch); llm.max_attempts bounds the attempts"},
  {"llm.batch_deadline", K_INT, O(batch_deadline), "0", NULL,
   "batch mode: seconds the LLM stage waits for its batches; past it the run stops interrupted (exit 9) and a "
   "rerun collects them; 0 = no bound"},
  {"llm.batch_poll_s", K_DBL, O(batch_poll_s), "10", NULL,
   "batch mode: first interval between polls of a batch's state; doubles up to llm.batch_poll_max_s"},
  {"llm.batch_poll_max_s", K_DBL, O(batch_poll_max_s), "300", NULL, "batch mode: longest interval between polls"},
  {"llm.batch_max_requests", K_INT, O(batch_max_requests), "0", NULL,
   "batch mode: requests per batch; 0 = the provider's limit (50000)"},
  {"llm.batch_max_bytes", K_INT, O(batch_max_bytes), "0", NULL,
   "batch mode: bytes of one batch's input; 0 = the provider's limit (OpenAI input file 200 MB, Gemini inline "
   "request 20 MB)"},
  {"match.fuzzy", K_BOOL, O(fuzzy), "false", NULL,
   "match non-exact answers to the most similar description (counted separately)"},
  {"match.fuzzy_threshold", K_DBL, O(fuzzy_threshold), "0.5", NULL,
   "minimum keyword-set Jaccard similarity for a fuzzy match"},
  {"gates.min_exact_match", K_DBL, O(min_exact_match), "0.90", NULL,
   "halt before publishing when the exact-match rate is below this (paper: 0.90)"},
  {"gates.min_recall", K_DBL, O(min_recall), "0.015", NULL,
   "with gates.holdout_days > 0: halt (exit 12) when the new table's hit rate at eval.horizon on the held-out "
   "days is below this (paper: 1.5%)"},
  {"gates.holdout_days", K_INT, O(holdout_days), "0", NULL,
   "the last N days of the window are left out of retrieval and score the new table for gates.min_recall; "
   "0 = no recall gate"},
  {"gates.min_coverage_ratio", K_DBL, O(min_coverage_ratio), "0.5", NULL,
   "halt (exit 13) when the new table's rag+base pairs are fewer than this share of the served table's; 0 = off"},
  {"eval.horizon", K_INT, O(eval_horizon), "5", NULL,
   "ragtide eval: a hit at horizon H = the prediction is among the next H clusters of the sequence"},
  {"eval.bootstrap", K_INT, O(eval_bootstrap), "1000", NULL,
   "ragtide eval: bootstrap resamples over users for the 95% intervals; 0 = no intervals"},
  {"eval.seed", K_INT, O(eval_seed), "1", NULL, "ragtide eval: the bootstrap's seed (fixed: reruns give equal intervals)"},
  {"output.table", K_STR, O(table), "", NULL, "where the transition table is published; required by refresh"},
  {"output.base_table", K_STR, O(base_table), "", NULL,
   "base table (monthly, fine-tuned) whose answers fill pairs without fresh data"},
  {"output.summary", K_STR, O(summary), "", NULL, "run summary JSON; default TABLE.summary.json"},
  {"output.created_at", K_TIME, O(created_at), "", NULL,
   "pin the header's created-at time (unix seconds or UTC date) for byte-identical reruns"},
  {"output.candidates", K_INT, O(candidates), "1", NULL, "predicted clusters stored per pair"},
  {"output.keep", K_INT, O(keep), "3", NULL, "previous tables kept for rollback"},
  {"output.cache", K_STR, O(cache), "", NULL,
   "answer journal reused by later runs (incremental refresh); default TABLE.answers; \"off\" disables"},
  {"output.run_dir", K_STR, O(run_dir), "", NULL,
   "run directory for spill files under memory.per_rank_mb; default TABLE.run/ (aggregate: COUNTS.run/)"},
  {"output.progress_s", K_INT, O(progress_s), "10", NULL,
   "seconds between rank 0's progress lines, in every stage; 0 = none"},
  {"output.flush_s", K_INT, O(flush_s), "5", NULL,
   "seconds between fsyncs of the answer journal during the LLM stage (every answer is written at once)"},
  {"output.metrics_file", K_STR, O(metrics_file), "", NULL,
   "Prometheus text file (node_exporter textfile collector), replaced atomically at the end of every run"},
  {"memory.per_rank_mb", K_INT, O(per_rank_mb), "0", NULL, "memory cap per rank in MiB; 0 = none"},
  {"job.threads", K_INT, O(threads), "0", NULL,
   "threads per rank for reading, storing, sequencing and counting; 0 = the CPUs the rank may run on "
   "(its affinity: one core under mpirun's default binding of <= 2 ranks)"},
  {"job.grace_s", K_INT, O(grace_s), "30", NULL,
   "after SIGTERM/SIGINT/SIGUSR1: seconds the LLM calls in flight may take to finish before the run stops "
   "(exit 9, resumable)"},
  {"job.lock_stale_s", K_INT, O(lock_stale_s), "600", NULL,
   "a table lock whose holder (on another host) has not refreshed it for this long is taken over"},
};
#undef O
#define NKEYS (sizeof KEYS / sizeof KEYS[0])

static const keydef *find_key(const char *name) {
  for (size_t i = 0; i < NKEYS; i++)
    if (strcmp(KEYS[i].name, name) == 0) return &KEYS[i];
  return NULL;
}

static int parse_bool(const char *v, int *out) {
  if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on") || !strcmp(v, "1")) {
    *out = 1;
    return 0;
  }
  if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off") || !strcmp(v, "0")) {
    *out = 0;
    return 0;
  }
  return -1;
}

/* Apply value v to key k; `where` names the origin for messages. */
static int apply(rt_config *cfg, const keydef *k, const char *v, const char *where, rt_err *err) {
  char *base = (char *)cfg;
  char *end;
  switch (k->type) {
  case K_STR: {
    char **slot = (char **)(base + k->off);
    free(*slot);
    *slot = rt_xstrdup(v);
    return RT_OK;
  }
  case K_ENUM: {
    size_t vl = strlen(v);
    const char *c = k->choices;
    while (c && *c) {
      const char *bar = strchr(c, '|');
      size_t cl = bar ? (size_t)(bar - c) : strlen(c);
      if (cl == vl && strncmp(c, v, cl) == 0) {
        char **slot = (char **)(base + k->off);
        free(*slot);
        *slot = rt_xstrdup(v);
        return RT_OK;
      }
      c = bar ? bar + 1 : NULL;
    }
    return rt_err_set(err, RT_ERR_USAGE, "%s: %s = \"%s\" is not one of %s", where, k->name, v, k->choices);
  }
  case K_INT: {
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno)
      return rt_err_set(err, RT_ERR_USAGE, "%s: %s = \"%s\" is not an integer", where, k->name, v);
    *(int64_t *)(base + k->off) = x;
    return RT_OK;
  }
  case K_DBL: {
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno || !isfinite(x))
      return rt_err_set(err, RT_ERR_USAGE, "%s: %s = \"%s\" is not a number", where, k->name, v);
    *(double *)(base + k->off) = x;
    return RT_OK;
  }
  case K_BOOL: {
    int b;
    if (parse_bool(v, &b))
      return rt_err_set(err, RT_ERR_USAGE, "%s: %s = \"%s\" is not true or false", where, k->name, v);
    *(int *)(base + k->off) = b;
    return RT_OK;
  }
  case K_DATE:
  case K_TIME: {
    int64_t t;
    if (!*v) {
      *(int64_t *)(base + k->off) = 0;
      return RT_OK;
    }
    if (k->type == K_TIME) {
      errno = 0;
      long long x = strtoll(v, &end, 10);
      if (!*end && !errno && x >= 0) {
        *(int64_t *)(base + k->off) = x;
        return RT_OK;
      }
    }
    if (rt_parse_utc(v, &t))
      return rt_err_set(err, RT_ERR_USAGE,
                        "%s: %s = \"%s\" is not a UTC date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)%s", where,
                        k->name, v, k->type == K_TIME ? " nor unix seconds" : "");
    *(int64_t *)(base + k->off) = t;
    return RT_OK;
  }
  }
  return RT_ERR_INTERNAL;
}

void rt_config_defaults(rt_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  for (size_t i = 0; i < NKEYS; i++) {
    int rc = apply(cfg, &KEYS[i], KEYS[i].dflt, "default", NULL);
    (void)rc;
  }
}

typedef struct {
  rt_config *cfg;
  const char *path;
  rt_err *err;
  int rc;
} load_ctx;

/* Debian's inih is built without INI_HANDLER_LINENO, so the handler does not
 * get line numbers: find the line of a key ourselves for error messages. */
static int line_of(const char *path, const char *section, const char *name) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[4096], sect[256] = "";
  int n = 0, found = 0;
  while (!found && fgets(line, sizeof line, f)) {
    n++;
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '[') {
      char *e = strchr(p, ']');
      if (e) snprintf(sect, sizeof sect, "%.*s", (int)(e - p - 1), p + 1);
      continue;
    }
    size_t nl = strlen(name);
    if (strcmp(sect, section) == 0 && strncmp(p, name, nl) == 0 &&
        (p[nl] == '=' || p[nl] == ' ' || p[nl] == '\t' || p[nl] == ':'))
      found = n;
  }
  fclose(f);
  return found;
}

static int on_ini(void *user, const char *section, const char *name, const char *value) {
  load_ctx *c = user;
  int lineno = line_of(c->path, section, name);
  if (c->rc) return 0;
  char full[256], where[1200];
  snprintf(full, sizeof full, "%s.%s", section, name);
  snprintf(where, sizeof where, "%s:%d", c->path, lineno);
  const keydef *k = find_key(full);
  if (!k) {
    c->rc = rt_err_set(c->err, RT_ERR_USAGE,
                       "%s: unknown key \"%s\" (see `ragtide help config` for the keys)", where, full);
    return 0;
  }
  c->rc = apply(c->cfg, k, value, where, c->err);
  return c->rc == RT_OK;
}

int rt_config_load(rt_config *cfg, const char *path, rt_err *err) {
  FILE *f = fopen(path, "r");
  if (!f) return rt_err_set(err, RT_ERR_USAGE, "cannot open config %s: %s", path, strerror(errno));
  load_ctx c = {cfg, path, err, RT_OK};
  int r = ini_parse_file(f, on_ini, &c);
  fclose(f);
  if (c.rc) return c.rc;
  if (r > 0)
    return rt_err_set(err, RT_ERR_USAGE, "%s:%d: not an INI line (expected [section] or key = value)", path, r);
  if (r < 0) return rt_err_set(err, RT_ERR_USAGE, "cannot read config %s", path);
  return RT_OK;
}

int rt_config_set(rt_config *cfg, const char *assignment, rt_err *err) {
  const char *eq = strchr(assignment, '=');
  if (!eq || eq == assignment)
    return rt_err_set(err, RT_ERR_USAGE, "--set %s: expected section.key=value", assignment);
  char name[256];
  size_t nl = (size_t)(eq - assignment);
  if (nl >= sizeof name) nl = sizeof name - 1;
  memcpy(name, assignment, nl);
  name[nl] = '\0';
  while (nl && name[nl - 1] == ' ') name[--nl] = '\0';
  const keydef *k = find_key(name);
  if (!k)
    return rt_err_set(err, RT_ERR_USAGE, "--set: unknown key \"%s\" (see `ragtide help config`)", name);
  const char *v = eq + 1;
  while (*v == ' ') v++;
  return apply(cfg, k, v, "--set", err);
}

int rt_config_from_args(rt_config *cfg, const char *path, int argc, char **argv, rt_err *err) {
  rt_config_defaults(cfg);
  int rc = rt_config_load(cfg, path, err);
  for (int i = 1; i < argc && rc == RT_OK; i++) {
    if (!strcmp(argv[i], "--set") && i + 1 < argc) rc = rt_config_set(cfg, argv[++i], err);
    else if (!strncmp(argv[i], "--set=", 6)) rc = rt_config_set(cfg, argv[i] + 6, err);
  }
  return rc;
}

int rt_config_validate(const rt_config *c, rt_err *err) {
  if (!*c->catalog) return rt_err_set(err, RT_ERR_USAGE, "config: input.catalog is required");
  if (!*c->logs && !*c->counts && strcmp(c->prompt_mode, "base") != 0)
    return rt_err_set(err, RT_ERR_USAGE, "config: input.logs (or input.counts) is required");
  if (c->window_days < 0 || c->window_days > 3650)
    return rt_err_set(err, RT_ERR_USAGE, "config: input.window_days must be in 0..3650 (0 = use window_start/end)");
  if (c->window_lag_h < 0 || c->window_lag_h > 8760)
    return rt_err_set(err, RT_ERR_USAGE, "config: input.window_lag_h must be in 0..8760");
  if (c->grace_s < 0 || c->grace_s > 86400)
    return rt_err_set(err, RT_ERR_USAGE, "config: job.grace_s must be in 0..86400");
  if (c->lock_stale_s < 0)
    return rt_err_set(err, RT_ERR_USAGE, "config: job.lock_stale_s must be >= 0 (0 = never stale by age)");
  if (c->flush_s < 1 || c->flush_s > 3600)
    return rt_err_set(err, RT_ERR_USAGE, "config: output.flush_s must be in 1..3600");
  if ((*c->logs || *c->counts) && (c->window_start == 0 || c->window_end == 0))
    return rt_err_set(err, RT_ERR_USAGE, "config: input.window_start and input.window_end are required "
                                         "(or input.window_days)");
  if ((*c->logs || *c->counts) && c->window_end <= c->window_start)
    return rt_err_set(err, RT_ERR_USAGE, "config: input.window_end must be after input.window_start");
  /* events carry their time as 32-bit seconds from the start of the earliest
   * window (twice the window for trend): pipeline/read.h */
  if (c->window_end - c->window_start >= ((int64_t)1 << 31))
    return rt_err_set(err, RT_ERR_USAGE, "config: the refresh window (input.window_start to input.window_end) "
                                         "must be shorter than 68 years");
  if (c->min_seq_len < 3)
    return rt_err_set(err, RT_ERR_USAGE, "config: input.min_seq_len must be >= 3 (a triple needs three clusters)");
  if (c->top_n < 1 || c->top_n > 100)
    return rt_err_set(err, RT_ERR_USAGE, "config: retrieval.top_n must be in 1..100");
  if (c->concurrency < 1 || c->concurrency > 65536)
    return rt_err_set(err, RT_ERR_USAGE, "config: llm.concurrency must be in 1..65536");
  if (c->max_attempts < 1) return rt_err_set(err, RT_ERR_USAGE, "config: llm.max_attempts must be >= 1");
  if (c->samples < 1) return rt_err_set(err, RT_ERR_USAGE, "config: llm.samples must be >= 1");
  if (c->candidates < 1 || c->candidates > 16)
    return rt_err_set(err, RT_ERR_USAGE, "config: output.candidates must be in 1..16");
  if (c->min_exact_match < 0 || c->min_exact_match > 1)
    return rt_err_set(err, RT_ERR_USAGE, "config: gates.min_exact_match must be in [0, 1]");
  if (c->max_failed_fraction < 0 || c->max_failed_fraction > 1)
    return rt_err_set(err, RT_ERR_USAGE, "config: llm.max_failed_fraction must be in [0, 1]");
  if (c->min_recall < 0 || c->min_recall > 1)
    return rt_err_set(err, RT_ERR_USAGE, "config: gates.min_recall must be in [0, 1]");
  if (c->holdout_days < 0 || c->holdout_days > 3650)
    return rt_err_set(err, RT_ERR_USAGE, "config: gates.holdout_days must be in 0..3650");
  if (c->min_coverage_ratio < 0 || c->min_coverage_ratio > 1)
    return rt_err_set(err, RT_ERR_USAGE, "config: gates.min_coverage_ratio must be in [0, 1]");
  if (c->eval_horizon < 1 || c->eval_horizon > 1000)
    return rt_err_set(err, RT_ERR_USAGE, "config: eval.horizon must be in 1..1000");
  if (c->eval_bootstrap < 0 || c->eval_bootstrap > 100000)
    return rt_err_set(err, RT_ERR_USAGE, "config: eval.bootstrap must be in 0..100000");
  if (c->max_gap_s < 0) return rt_err_set(err, RT_ERR_USAGE, "config: input.max_gap_s must be >= 0");
  if (c->popular_n < 0 || c->popular_n > 64)
    return rt_err_set(err, RT_ERR_USAGE, "config: retrieval.popular_n = %lld: must be in 0..64",
                      (long long)c->popular_n);
  if (c->keep < 0 || c->keep > 99)
    return rt_err_set(err, RT_ERR_USAGE, "config: output.keep = %lld: must be in 0..99", (long long)c->keep);
  if (c->per_rank_mb < 0 || c->per_rank_mb > (int64_t)1 << 30)
    return rt_err_set(err, RT_ERR_USAGE, "config: memory.per_rank_mb = %lld: must be 0 (no cap) or a size in MiB",
                      (long long)c->per_rank_mb);
  if (c->max_tokens < 1 || c->max_tokens > 1 << 20)
    return rt_err_set(err, RT_ERR_USAGE, "config: llm.max_tokens = %lld: must be in 1..1048576",
                      (long long)c->max_tokens);
  if (!(c->price_in_per_mtok >= 0) || !(c->price_out_per_mtok >= 0))
    return rt_err_set(err, RT_ERR_USAGE, "config: llm.price_in_per_mtok and llm.price_out_per_mtok must be >= 0");
  if (c->progress_s < 0)
    return rt_err_set(err, RT_ERR_USAGE, "config: output.progress_s must be >= 0 (0 = no progress lines)");
  if (c->batch_deadline < 0 || c->batch_deadline > 30LL * 86400)
    return rt_err_set(err, RT_ERR_USAGE, "config: llm.batch_deadline = %lld: must be 0 (no bound) to 2592000 s",
                      (long long)c->batch_deadline);
  if (!(c->batch_poll_s >= 0.01 && c->batch_poll_s <= 3600) || !(c->batch_poll_max_s >= c->batch_poll_s) ||
      !(c->batch_poll_max_s <= 86400))
    return rt_err_set(err, RT_ERR_USAGE,
                      "config: llm.batch_poll_s = %g / llm.batch_poll_max_s = %g: need 0.01 <= poll_s <= 3600 and "
                      "poll_s <= poll_max_s <= 86400", c->batch_poll_s, c->batch_poll_max_s);
  if (c->batch_max_requests < 0 || c->batch_max_requests > 50000)
    return rt_err_set(err, RT_ERR_USAGE, "config: llm.batch_max_requests = %lld: must be 0 (the provider's limit) "
                      "to 50000", (long long)c->batch_max_requests);
  if (c->batch_max_bytes < 0 || c->batch_max_bytes > 200000000LL)
    return rt_err_set(err, RT_ERR_USAGE, "config: llm.batch_max_bytes = %lld: must be 0 (the provider's limit) to "
                      "200000000", (long long)c->batch_max_bytes);
  if ((!strcmp(c->api, "openai-batch") || !strcmp(c->api, "gemini-batch")) && c->samples != 1)
    return rt_err_set(err, RT_ERR_USAGE, "config: llm.samples = %lld: batch mode (llm.api = %s) sends one request "
                      "per pair; set llm.samples = 1 or use the synchronous api", (long long)c->samples, c->api);
  if (!(c->fuzzy_threshold >= 0 && c->fuzzy_threshold <= 1))
    return rt_err_set(err, RT_ERR_USAGE, "config: match.fuzzy_threshold must be in [0, 1]");
  if (c->threads < 0 || c->threads > 1024)
    return rt_err_set(err, RT_ERR_USAGE, "config: job.threads must be 0 (the CPUs the rank may use) to 1024");
  return RT_OK;
}

/* Keys that say where things are or how fast to go, not what the table
 * means: left out of the config hash, so the same data and semantics give
 * the same header (and byte-identical tables) whatever the paths, endpoint
 * address or concurrency. The catalog and template enter the header through
 * their own content hashes. */
static int operational(const char *name) {
  static const char *const OPS[] = {"input.catalog", "input.logs", "input.counts", "input.partitioned_by_user",
                                    "input.on_bad_event", "prompt.template", "llm.base_url",
                                    "llm.concurrency", "llm.api_key_env", "llm.api_key_file",
                                    "llm.insecure", "llm.timeout_ms", "llm.connect_timeout_ms",
                                    "llm.max_attempts", "llm.rpm", "llm.tpm", "llm.headers",
                                    "llm.max_failed_fraction", "memory.per_rank_mb",
                                    "job.threads", "job.grace_s", "job.lock_stale_s",
                                    "llm.price_in_per_mtok", "llm.price_out_per_mtok",
                                    "input.window_days", "input.window_lag_h", "llm.batch_retry",
                                    "llm.batch_deadline", "llm.batch_poll_s", "llm.batch_poll_max_s",
                                    "llm.batch_max_requests", "llm.batch_max_bytes"};
  /* (output.* keys, progress_s included, are skipped below) */
  if (!strncmp(name, "output.", 7)) return 1;
  if (!strncmp(name, "eval.", 5)) return 1; /* read by `ragtide eval` only: never changes a table */
  for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++)
    if (!strcmp(name, OPS[i])) return 1;
  return 0;
}

void rt_config_resolve_window(rt_config *cfg, int64_t now) {
  if (cfg->window_days <= 0) return;
  int64_t t = now - cfg->window_lag_h * 3600;
  int64_t end = (t >= 0 ? t / 86400 : (t - 86399) / 86400) * 86400;
  cfg->window_end = end;
  cfg->window_start = end - cfg->window_days * 86400;
}

uint64_t rt_config_hash(const rt_config *cfg) {
  uint64_t h = 0xcbf29ce484222325ULL;
  const char *base = (const char *)cfg;
  for (size_t i = 0; i < NKEYS; i++) {
    const keydef *k = &KEYS[i];
    if (operational(k->name)) continue;
    char buf[64];
    const char *v = buf;
    switch (k->type) {
    case K_STR:
    case K_ENUM: v = *(char *const *)(base + k->off); break;
    case K_INT:
    case K_DATE:
    case K_TIME: snprintf(buf, sizeof buf, "%lld", (long long)*(const int64_t *)(base + k->off)); break;
    case K_DBL: snprintf(buf, sizeof buf, "%.17g", *(const double *)(base + k->off)); break;
    case K_BOOL: snprintf(buf, sizeof buf, "%d", *(const int *)(base + k->off)); break;
    }
    /* Batch mode sends the same requests another way: same table. */
    if (!strcmp(k->name, "llm.api") && !strcmp(v, "openai-batch")) v = "openai";
    if (!strcmp(k->name, "llm.api") && !strcmp(v, "gemini-batch")) v = "gemini";
    h = (h ^ rt_hash_bytes(k->name, strlen(k->name))) * 0x100000001b3ULL;
    h = (h ^ rt_hash_bytes(v, strlen(v))) * 0x100000001b3ULL;
  }
  return h;
}

void rt_config_print_keys(void *file) {
  FILE *f = file;
  const char *sect = "";
  for (size_t i = 0; i < NKEYS; i++) {
    const keydef *k = &KEYS[i];
    const char *dot = strchr(k->name, '.');
    if (strncmp(sect, k->name, (size_t)(dot - k->name)) != 0 || sect[dot - k->name] != '\0') {
      static char s[32];
      snprintf(s, sizeof s, "%.*s", (int)(dot - k->name), k->name);
      sect = s;
      fprintf(f, "\n[%s]\n", sect);
    }
    static const char *tn[] = {"string", "integer", "number", "bool", "date", "time", "enum"};
    fprintf(f, "  %-24s %-7s default %-12s %s%s%s\n", dot + 1, k->type == K_ENUM ? k->choices : tn[k->type],
            *k->dflt ? k->dflt : "(none)", k->doc, "", "");
  }
}

void rt_config_free(rt_config *cfg) {
  char *base = (char *)cfg;
  for (size_t i = 0; i < NKEYS; i++)
    if (KEYS[i].type == K_STR || KEYS[i].type == K_ENUM) {
      char **slot = (char **)(base + KEYS[i].off);
      free(*slot);
      *slot = NULL;
    }
}
