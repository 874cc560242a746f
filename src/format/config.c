/* config.c — the one table of configuration keys, and the INI parser (inih).
 *
 * KEYS below is the only place a key is defined: its name, type, default,
 * allowed range or values, whether it is a secret or left out of the config
 * hash, the commands that read it and the commands that require it, and its
 * one-line doc. Parsing (file and --set), the range checks, `ragtide help
 * config` and the README's key table (tests/scripts/usage.sh checks that it
 * lists every key) all follow it. Adding a key = a field in rt_config
 * (config.h) + one KEY(...) line here. */
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

enum {
  KF_SECRET = 1, /* never echoed in a message (its value may carry a credential) */
  KF_NOHASH = 2, /* where things are or how fast to go, not what the table means: not in the config hash */
};

/* A required key's exception, per command: the text help and messages show
 * ("unless ..."; NULL: none for that command), and, when c is not NULL,
 * whether it applies to c (*waived). */
typedef const char *(*waiver)(const rt_config *c, unsigned cmd, int *waived);

typedef struct {
  const char *name;    /* "section.key" */
  ktype type;
  size_t off;
  const char *dflt;    /* default as text ("" = unset) */
  int ranged;          /* K_INT, K_DBL: the value must lie in [lo, hi] */
  double lo, hi;
  const char *note;    /* appended to the range in messages and help ("0 = none") */
  const char *choices; /* K_ENUM: "a|b|c" */
  unsigned cmds;       /* RT_CFG_* commands that read the key */
  unsigned req;        /* RT_CFG_* commands that require it ... */
  waiver unless;       /* ... unless this */
  unsigned flags;      /* KF_* */
  const char *doc;
} keydef;

static int base_mode(const rt_config *c) { return strcmp(c->prompt_mode, "base") == 0; }
static const char *logs_unless(const rt_config *c, unsigned cmd, int *waived) {
  if (cmd != RT_CFG_REFRESH) return NULL;
  if (c) *waived = *c->counts || base_mode(c);
  return "unless input.counts is set or prompt.mode = base";
}
static const char *window_unless(const rt_config *c, unsigned cmd, int *waived) {
  if (c) *waived = c->window_days > 0 || (cmd == RT_CFG_REFRESH && base_mode(c));
  return cmd == RT_CFG_REFRESH ? "unless input.window_days is set or prompt.mode = base"
                               : "unless input.window_days is set";
}

#define R RT_CFG_REFRESH
#define A RT_CFG_AGGREGATE
#define E RT_CFG_EVAL
#define F RT_CFG_FINETUNE
#define O(f) offsetof(rt_config, f)
#define KEY(n, t, f, d, ...) {.name = n, .type = t, .off = O(f), .dflt = d, __VA_ARGS__}
#define RANGE(a, b) .ranged = 1, .lo = (a), .hi = (b)
#define ONEOF(s) .choices = s
#define FOR(c) .cmds = (c)
#define REQUIRED(c) .req = (c)
#define UNLESS(w) .unless = (w)
#define NOTE(s) .note = s
#define FLAGS(f) .flags = (f)
#define DOC(s) .doc = s

static const keydef KEYS[] = {
  KEY("input.catalog", K_STR, catalog, "", FOR(R | A | E | F), REQUIRED(R | A | E | F), FLAGS(KF_NOHASH),
      DOC("cluster catalog TSV (id<TAB>keywords)")),
  KEY("input.logs", K_STR, logs, "", FOR(R | A | E), REQUIRED(R | A | E), UNLESS(logs_unless), FLAGS(KF_NOHASH),
      DOC("event shards: a glob (quote it) or @MANIFEST (one path per line)")),
  KEY("input.counts", K_STR, counts, "", FOR(R), FLAGS(KF_NOHASH),
      DOC("start refresh from a counts file (`ragtide aggregate --out`) instead of reading input.logs")),
  KEY("input.window_start", K_DATE, window_start, "", FOR(R | A), REQUIRED(R | A), UNLESS(window_unless),
      DOC("first day of the refresh window, UTC (YYYY-MM-DD[THH:MM:SSZ]), inclusive")),
  KEY("input.window_end", K_DATE, window_end, "", FOR(R | A), REQUIRED(R | A), UNLESS(window_unless),
      DOC("end of the refresh window, UTC, exclusive")),
  KEY("input.window_days", K_INT, window_days, "0", RANGE(0, 3650), NOTE("0 = use window_start/window_end"),
      FOR(R | A), FLAGS(KF_NOHASH),
      DOC("instead of window_start/window_end: the N days ending at the last UTC midnight (minus window_lag_h); "
          "a resumed run keeps its first attempt's window")),
  KEY("input.window_lag_h", K_INT, window_lag_h, "0", RANGE(0, 8760), FOR(R | A), FLAGS(KF_NOHASH),
      DOC("with window_days: hours the logs arrive late (the window ends at the last midnight before now - lag)")),
  KEY("input.min_engagement", K_DBL, min_engagement, "0.5", FOR(R | A | E),
      DOC("keep events whose engagement is >= this (positive engagement)")),
  KEY("input.dedup", K_ENUM, dedup, "consecutive", ONEOF("consecutive|unique"), FOR(R | A | E),
      DOC("consecutive: collapse repeats; unique: keep each cluster's most recent occurrence")),
  KEY("input.min_seq_len", K_INT, min_seq_len, "3", RANGE(3, 1000000), NOTE("a triple needs three clusters"),
      FOR(R | A | E), DOC("drop deduplicated sequences shorter than this (3 = the shortest that yields a triple)")),
  KEY("input.max_gap_s", K_INT, max_gap_s, "0", RANGE(0, 2147483647), NOTE("0 = never"), FOR(R | A | E),
      DOC("a gap longer than this many seconds between watches starts a new sequence; 0 = never")),
  KEY("input.partitioned_by_user", K_BOOL, partitioned_by_user, "false", FOR(R | A | E), FLAGS(KF_NOHASH),
      DOC("shards are already split by user (each user in one shard): skip the user shuffle")),
  KEY("input.on_bad_event", K_ENUM, on_bad_event, "fail", ONEOF("fail|skip"), FOR(R | A | E), FLAGS(KF_NOHASH),
      DOC("an event with an unknown cluster, a malformed timestamp (negative, or >= 1e11: milliseconds) or a NaN "
          "engagement, or a malformed TSV line (wrong field count, not a number, a header line): fail the run "
          "naming file:line, or skip and count it per reason (events outside the window are always counted and "
          "skipped)")),
  KEY("retrieval.mode", K_ENUM, retrieval_mode, "frequency", ONEOF("frequency|trend"), FOR(R),
      DOC("frequency: most frequent successors in the window; trend: largest increase vs the previous window")),
  KEY("retrieval.top_n", K_INT, top_n, "1", RANGE(1, 100), FOR(R),
      DOC("retrieved successors per pair (the paper uses 1)")),
  KEY("retrieval.granularity", K_ENUM, granularity, "instance", ONEOF("instance|global"), FOR(R),
      DOC("instance: context per pair; global: one block of the top-100 triples for all pairs")),
  KEY("retrieval.popular_n", K_INT, popular_n, "5", RANGE(0, 64), FOR(R),
      DOC("size of the top popular clusters block")),
  KEY("prompt.mode", K_ENUM, prompt_mode, "rag", ONEOF("rag|base"), FOR(R),
      DOC("rag: prompts carry retrieved context (pairs with data); base: the fine-tuned prompt over all pairs")),
  KEY("prompt.template", K_STR, template_path, "jobs/prompts/rag.tmpl", FOR(R | F), FLAGS(KF_NOHASH),
      DOC("prompt template file")),
  KEY("llm.api", K_ENUM, api, "openai", ONEOF("openai|gemini|openai-batch|gemini-batch|retrieval"), FOR(R),
      DOC("openai: /v1/chat/completions; gemini: generateContent; openai-batch / gemini-batch: the same requests "
          "through the provider's Batch API (half price, results within 24 h); retrieval: no calls, top retrieved "
          "successor")),
  KEY("llm.base_url", K_STR, base_url, "http://127.0.0.1:8088", FOR(R), FLAGS(KF_NOHASH),
      DOC("endpoint base URL (without /v1/...)")),
  KEY("llm.model", K_STR, model, "ragtide-sim", FOR(R), DOC("model name sent with each request")),
  KEY("llm.concurrency", K_INT, concurrency, "32", RANGE(1, 65536), FOR(R), FLAGS(KF_NOHASH),
      DOC("requests in flight per rank")),
  KEY("llm.api_key_env", K_STR, api_key_env, "", FOR(R), FLAGS(KF_NOHASH),
      DOC("environment variable holding the API key")),
  KEY("llm.api_key_file", K_STR, api_key_file, "", FOR(R), FLAGS(KF_NOHASH),
      DOC("file holding the API key (must not be readable by group or others)")),
  KEY("llm.insecure", K_BOOL, insecure, "false", FOR(R), FLAGS(KF_NOHASH),
      DOC("disable TLS verification (never in production)")),
  KEY("llm.temperature", K_DBL, temperature, "0", RANGE(0, 2), FOR(R), DOC("sampling temperature")),
  KEY("llm.max_tokens", K_INT, max_tokens, "64", RANGE(1, 1048576), FOR(R), DOC("maximum tokens per answer")),
  KEY("llm.seed", K_INT, seed, "0", FOR(R), DOC("seed sent to endpoints that accept one")),
  KEY("llm.timeout_ms", K_INT, timeout_ms, "60000", RANGE(1, 86400000), FOR(R), FLAGS(KF_NOHASH),
      DOC("total timeout of one request")),
  KEY("llm.connect_timeout_ms", K_INT, connect_timeout_ms, "5000", RANGE(1, 3600000), FOR(R), FLAGS(KF_NOHASH),
      DOC("connect timeout")),
  KEY("llm.max_attempts", K_INT, max_attempts, "4", RANGE(1, 1000), FOR(R), FLAGS(KF_NOHASH),
      DOC("attempts per request, retries included")),
  KEY("llm.rpm", K_INT, rpm, "0", RANGE(0, 1e9), NOTE("0 = unlimited"), FOR(R), FLAGS(KF_NOHASH),
      DOC("global requests per minute over all ranks; 0 = unlimited")),
  KEY("llm.tpm", K_INT, tpm, "0", RANGE(0, 1e12), NOTE("0 = unlimited"), FOR(R), FLAGS(KF_NOHASH),
      DOC("global tokens per minute over all ranks; 0 = unlimited")),
  KEY("llm.constrain", K_ENUM, constrain, "off", ONEOF("off|json_schema|guided_choice"), FOR(R),
      DOC("restrict answers to catalog descriptions where the endpoint supports it")),
  KEY("llm.samples", K_INT, samples, "1", RANGE(1, 1000), FOR(R), DOC("answers per pair, majority vote")),
  KEY("llm.max_failed_fraction", K_DBL, max_failed_fraction, "0.01", RANGE(0, 1), FOR(R), FLAGS(KF_NOHASH),
      DOC("share of pairs whose calls may all fail before the run stops unpublished")),
  KEY("llm.headers", K_STR, headers, "", FOR(R), FLAGS(KF_NOHASH | KF_SECRET),
      DOC("extra request headers, \"Name: value; Name2: value\" (a secret: never printed)")),
  KEY("llm.price_in_per_mtok", K_DBL, price_in_per_mtok, "0", RANGE(0, 1e6), NOTE("USD; 0 = no estimate"), FOR(R),
      FLAGS(KF_NOHASH),
      DOC("price of a million prompt tokens (USD) for the cost estimate in the summary and --dry-run; 0 = none")),
  KEY("llm.price_out_per_mtok", K_DBL, price_out_per_mtok, "0", RANGE(0, 1e6), NOTE("USD"), FOR(R),
      FLAGS(KF_NOHASH), DOC("price of a million completion tokens (USD)")),
  KEY("llm.batch_retry", K_ENUM, batch_retry, "sync", ONEOF("sync|batch"), FOR(R), FLAGS(KF_NOHASH),
      DOC("batch mode: failed batch lines are retried through the synchronous endpoint (sync) or in a follow-up "
          "batch (batch); llm.max_attempts bounds the attempts")),
  KEY("llm.batch_deadline", K_INT, batch_deadline, "0", RANGE(0, 2592000), NOTE("s; 0 = no bound"), FOR(R),
      FLAGS(KF_NOHASH),
      DOC("batch mode: seconds the LLM stage waits for its batches; past it the run stops interrupted (exit 9) "
          "and a rerun collects them; 0 = no bound")),
  KEY("llm.batch_poll_s", K_DBL, batch_poll_s, "10", RANGE(0.01, 3600), NOTE("s"), FOR(R), FLAGS(KF_NOHASH),
      DOC("batch mode: first interval between polls of a batch's state; doubles up to llm.batch_poll_max_s")),
  KEY("llm.batch_poll_max_s", K_DBL, batch_poll_max_s, "300", RANGE(0.01, 86400), NOTE("s; >= llm.batch_poll_s"),
      FOR(R), FLAGS(KF_NOHASH), DOC("batch mode: longest interval between polls")),
  KEY("llm.batch_max_requests", K_INT, batch_max_requests, "0", RANGE(0, 50000), NOTE("0 = the provider's limit"),
      FOR(R), FLAGS(KF_NOHASH), DOC("batch mode: requests per batch; 0 = the provider's limit (50000)")),
  KEY("llm.batch_max_bytes", K_INT, batch_max_bytes, "0", RANGE(0, 2000000000), NOTE("0 = the default"),
      FOR(R), FLAGS(KF_NOHASH),
      DOC("batch mode: bytes of one batch's input; 0 = the default (OpenAI input file 200 MB; Gemini 200 MB as a "
          "file, 20 MB inline), at most the provider's limit (Gemini input file 2 GB)")),
  KEY("llm.batch_input", K_ENUM, batch_input, "auto", ONEOF("auto|inline|file"), FOR(R), FLAGS(KF_NOHASH),
      DOC("gemini-batch: requests inline in the batch-create request (20 MB at most), in a JSONL input file "
          "uploaded through the Files API (2 GB), or auto: inline when the batch fits, else a file; openai-batch "
          "always uploads a file")),
  KEY("match.fuzzy", K_BOOL, fuzzy, "false", FOR(R),
      DOC("match non-exact answers to the most similar description (counted separately)")),
  KEY("match.fuzzy_threshold", K_DBL, fuzzy_threshold, "0.5", RANGE(0, 1), FOR(R),
      DOC("minimum keyword-set Jaccard similarity for a fuzzy match")),
  KEY("gates.min_exact_match", K_DBL, min_exact_match, "0.90", RANGE(0, 1), FOR(R),
      DOC("halt before publishing when the exact-match rate is below this (paper: 0.90)")),
  KEY("gates.min_recall", K_DBL, min_recall, "0.015", RANGE(0, 1), FOR(R),
      DOC("with gates.holdout_days > 0: halt (exit 12) when the new table's hit rate at eval.horizon on the "
          "held-out days is below this (paper: 1.5%)")),
  KEY("gates.holdout_days", K_INT, holdout_days, "0", RANGE(0, 3650), NOTE("0 = no recall gate"), FOR(R),
      DOC("the last N days of the window are left out of retrieval and score the new table for gates.min_recall; "
          "0 = no recall gate")),
  KEY("gates.min_coverage_ratio", K_DBL, min_coverage_ratio, "0.5", RANGE(0, 1), NOTE("0 = off"), FOR(R),
      DOC("halt (exit 13) when the new table's rag+base pairs are fewer than this share of the served table's; "
          "0 = off")),
  KEY("eval.horizon", K_INT, eval_horizon, "5", RANGE(1, 1000), FOR(R | E), FLAGS(KF_NOHASH),
      DOC("ragtide eval (and gates.min_recall): a hit at horizon H = the prediction is among the next H clusters "
          "of the sequence")),
  KEY("eval.bootstrap", K_INT, eval_bootstrap, "1000", RANGE(0, 100000), NOTE("0 = no intervals"), FOR(E),
      FLAGS(KF_NOHASH), DOC("ragtide eval: bootstrap resamples over users for the 95% intervals; 0 = no intervals")),
  KEY("eval.seed", K_INT, eval_seed, "1", FOR(E), FLAGS(KF_NOHASH),
      DOC("ragtide eval: the bootstrap's seed (fixed: reruns give equal intervals)")),
  KEY("output.table", K_STR, table, "", FOR(R), REQUIRED(R), FLAGS(KF_NOHASH),
      DOC("where the transition table is published")),
  KEY("output.base_table", K_STR, base_table, "", FOR(R), FLAGS(KF_NOHASH),
      DOC("base table (monthly, fine-tuned) whose answers fill pairs without fresh data")),
  KEY("output.summary", K_STR, summary, "", FOR(R), FLAGS(KF_NOHASH),
      DOC("run summary JSON; default TABLE.summary.json")),
  KEY("output.created_at", K_TIME, created_at, "", FOR(R), FLAGS(KF_NOHASH),
      DOC("pin the header's created-at time (unix seconds or UTC date) for byte-identical reruns; default now")),
  KEY("output.candidates", K_INT, candidates, "1", RANGE(1, 16), FOR(R), FLAGS(KF_NOHASH),
      DOC("predicted clusters stored per pair")),
  KEY("output.keep", K_INT, keep, "3", RANGE(0, 99), FOR(R), FLAGS(KF_NOHASH), DOC("previous tables kept for rollback")),
  KEY("output.cache", K_STR, cache, "", FOR(R), FLAGS(KF_NOHASH),
      DOC("answer journal reused by later runs (incremental refresh); default TABLE.answers; \"off\" disables")),
  KEY("output.run_dir", K_STR, run_dir, "", FOR(R | A | E), FLAGS(KF_NOHASH),
      DOC("run directory for spill files under memory.per_rank_mb; default TABLE.run/ (aggregate: COUNTS.run/)")),
  KEY("output.progress_s", K_INT, progress_s, "10", RANGE(0, 86400), NOTE("0 = no progress lines"), FOR(R | A | E),
      FLAGS(KF_NOHASH), DOC("seconds between rank 0's progress lines, in every stage; 0 = none")),
  KEY("output.flush_s", K_INT, flush_s, "5", RANGE(1, 3600), FOR(R), FLAGS(KF_NOHASH),
      DOC("seconds between fsyncs of the answer journal during the LLM stage (every answer is written at once)")),
  KEY("output.metrics_file", K_STR, metrics_file, "", FOR(R), FLAGS(KF_NOHASH),
      DOC("Prometheus text file (node_exporter textfile collector), replaced atomically at the end of every run")),
  KEY("memory.per_rank_mb", K_INT, per_rank_mb, "0", RANGE(0, 1073741824), NOTE("MiB; 0 = no cap"), FOR(R | A | E),
      FLAGS(KF_NOHASH), DOC("memory cap per rank in MiB; 0 = none")),
  KEY("job.threads", K_INT, threads, "0", RANGE(0, 1024), NOTE("0 = the CPUs the rank may run on"), FOR(R | A | E),
      FLAGS(KF_NOHASH),
      DOC("threads per rank for reading, storing, sequencing and counting; 0 = the CPUs the rank may run on "
          "(its affinity: one core under mpirun's default binding of <= 2 ranks)")),
  KEY("job.grace_s", K_INT, grace_s, "30", RANGE(0, 86400), FOR(R), FLAGS(KF_NOHASH),
      DOC("after SIGTERM/SIGINT/SIGUSR1: seconds the LLM calls in flight may take to finish before the run stops "
          "(exit 9, resumable)")),
  KEY("job.lock_stale_s", K_INT, lock_stale_s, "600", RANGE(0, 31536000), NOTE("0 = never stale by age"), FOR(R),
      FLAGS(KF_NOHASH),
      DOC("a table lock whose holder (on another host) has not refreshed it for this long is taken over")),
};
#undef O
#define NKEYS (sizeof KEYS / sizeof KEYS[0])
_Static_assert(NKEYS <= RT_CONFIG_MAX_KEYS, "raise RT_CONFIG_MAX_KEYS");

/* The commands that read a configuration, in help order. */
static const struct {
  const char *name;
  unsigned bit;
} CMDS[] = {{"refresh", R}, {"aggregate", A}, {"eval", E}, {"export-finetune", F}};
#define NCMDS (sizeof CMDS / sizeof CMDS[0])

static const keydef *find_key(const char *name) {
  for (size_t i = 0; i < NKEYS; i++)
    if (strcmp(KEYS[i].name, name) == 0) return &KEYS[i];
  return NULL;
}

/* The key nearest to an unknown `name` ("section.key"): by the whole name,
 * else by the part after the dot in any section ("[input] model" ->
 * llm.model). NULL when none is close. */
static const char *nearest_key(const char *name) {
  const char *names[NKEYS], *parts[NKEYS];
  for (size_t i = 0; i < NKEYS; i++) names[i] = KEYS[i].name, parts[i] = strchr(KEYS[i].name, '.') + 1;
  const char *best = rt_nearest(name, names, NKEYS);
  if (best) return best;
  const char *dot = strchr(name, '.');
  const char *p = rt_nearest(dot ? dot + 1 : name, parts, NKEYS);
  for (size_t i = 0; p && i < NKEYS; i++)
    if (parts[i] == p) return names[i];
  return NULL;
}

/* `; did you mean "x"?` or "" into buf. */
static const char *hint(const char *nearest, char *buf, size_t cap) {
  if (nearest) snprintf(buf, cap, "; did you mean \"%s\"?", nearest);
  else if (cap) buf[0] = '\0';
  return buf;
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

/* "0..64", "[0, 1]", plus the note: the allowed range as messages and help print it. */
static const char *range_text(const keydef *k, char *buf, size_t cap) {
  if (k->type == K_INT)
    snprintf(buf, cap, "%.0f..%.0f%s%s%s", k->lo, k->hi, k->note ? " (" : "", k->note ? k->note : "",
             k->note ? ")" : "");
  else
    snprintf(buf, cap, "[%g, %g]%s%s%s", k->lo, k->hi, k->note ? " (" : "", k->note ? k->note : "",
             k->note ? ")" : "");
  return buf;
}

/* The value as messages may show it: never a secret's. */
static const char *shown(const keydef *k, const char *v) { return k->flags & KF_SECRET ? "(secret)" : v; }

static int out_of_range(const keydef *k, const char *value, const char *where, rt_err *err) {
  char r[160];
  return rt_err_set(err, RT_ERR_USAGE, "%s: %s = %s: must be in %s", where, k->name, shown(k, value),
                    range_text(k, r, sizeof r));
}

/* The choice of k nearest to v, copied to out; NULL if none is close. */
static const char *nearest_choice(const keydef *k, const char *v, char *out, size_t cap) {
  char buf[256];
  const char *c[16];
  size_t n = 0;
  snprintf(buf, sizeof buf, "%s", k->choices);
  char *save = NULL;
  for (char *s = strtok_r(buf, "|", &save); s && n < 16; s = strtok_r(NULL, "|", &save)) c[n++] = s;
  const char *p = rt_nearest(v, c, n);
  if (!p) return NULL;
  snprintf(out, cap, "%s", p);
  return out;
}

/* Apply value v to key k; `where` names the origin for messages (file:line,
 * --set, default). Parses by type and checks the key's range or choices. */
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
    char near[64];
    if (nearest_choice(k, v, near, sizeof near))
      return rt_err_set(err, RT_ERR_USAGE, "%s: %s = \"%s\" is not one of %s; did you mean \"%s\"?", where,
                        k->name, shown(k, v), k->choices, near);
    return rt_err_set(err, RT_ERR_USAGE, "%s: %s = \"%s\" is not one of %s", where, k->name, shown(k, v),
                      k->choices);
  }
  case K_INT: {
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno)
      return rt_err_set(err, RT_ERR_USAGE, "%s: %s = \"%s\" is not an integer", where, k->name, shown(k, v));
    if (k->ranged && ((double)x < k->lo || (double)x > k->hi)) return out_of_range(k, v, where, err);
    *(int64_t *)(base + k->off) = x;
    return RT_OK;
  }
  case K_DBL: {
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno || !isfinite(x))
      return rt_err_set(err, RT_ERR_USAGE, "%s: %s = \"%s\" is not a number", where, k->name, shown(k, v));
    if (k->ranged && (x < k->lo || x > k->hi)) return out_of_range(k, v, where, err);
    *(double *)(base + k->off) = x;
    return RT_OK;
  }
  case K_BOOL: {
    int b;
    if (parse_bool(v, &b))
      return rt_err_set(err, RT_ERR_USAGE, "%s: %s = \"%s\" is not true or false", where, k->name, shown(k, v));
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
                        k->name, shown(k, v), k->type == K_TIME ? " nor unix seconds" : "");
    if (t < 0)
      return rt_err_set(err, RT_ERR_USAGE, "%s: %s = \"%s\": must be 1970-01-01 or later", where, k->name,
                        shown(k, v));
    *(int64_t *)(base + k->off) = t;
    return RT_OK;
  }
  }
  return RT_ERR_INTERNAL;
}

/* apply(), and remember that the key was given (a 1970-01-01 window start
 * is a date, not "unset"); an empty value unsets it again. */
static int apply_given(rt_config *cfg, const keydef *k, const char *v, int line, const char *where, rt_err *err) {
  int rc = apply(cfg, k, v, where, err);
  if (rc == RT_OK) cfg->given_[k - KEYS] = *v ? line : 0;
  return rc;
}

int rt_config_given(const rt_config *cfg, const char *key) {
  const keydef *k = find_key(key);
  return k && cfg->given_[k - KEYS];
}

const char *rt_config_origin(const rt_config *cfg, const char *key, char *buf, size_t cap) {
  const keydef *k = find_key(key);
  int line = k ? cfg->given_[k - KEYS] : 0;
  if (line > 0 && cfg->file_) snprintf(buf, cap, "%s:%d", cfg->file_, line);
  else snprintf(buf, cap, "%s", line < 0 ? "--set" : "config");
  return buf;
}

void rt_config_defaults(rt_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  for (size_t i = 0; i < NKEYS; i++) {
    int rc = apply(cfg, &KEYS[i], KEYS[i].dflt, "default", NULL);
    (void)rc;
  }
}

/* Parsing a file: inih reads it line by line through our reader, so the
 * handler knows the line (Debian's inih is built without
 * INI_HANDLER_LINENO). */
typedef struct {
  rt_config *cfg;
  const char *path;
  FILE *f;
  int line;
  rt_err *err;
  int rc;
} load_ctx;

static char *read_line(char *str, int num, void *stream) {
  load_ctx *c = stream;
  char *r = fgets(str, num, c->f);
  if (r) c->line++;
  return r;
}

static int on_ini(void *user, const char *section, const char *name, const char *value) {
  load_ctx *c = user;
  if (c->rc) return 0;
  char full[256], where[1200], h[300];
  snprintf(full, sizeof full, "%s.%s", section, name);
  snprintf(where, sizeof where, "%s:%d", c->path, c->line);
  const keydef *k = find_key(full);
  if (!k) {
    c->rc = rt_err_set(c->err, RT_ERR_USAGE, "%s: unknown key \"%s\"%s (`ragtide help config` lists the keys)",
                       where, full, hint(nearest_key(full), h, sizeof h));
    return 0;
  }
  c->rc = apply_given(c->cfg, k, value, c->line, where, c->err);
  return c->rc == RT_OK;
}

int rt_config_load(rt_config *cfg, const char *path, rt_err *err) {
  FILE *f = fopen(path, "r");
  if (!f) return rt_err_set(err, RT_ERR_USAGE, "cannot open config %s: %s", path, strerror(errno));
  cfg->file_ = path;
  load_ctx c = {cfg, path, f, 0, err, RT_OK};
  int r = ini_parse_stream(read_line, &c, on_ini, &c);
  fclose(f);
  if (c.rc) return c.rc;
  if (r > 0)
    return rt_err_set(err, RT_ERR_USAGE, "%s:%d: not an INI line (expected [section] or key = value)", path, r);
  if (r < 0) return rt_err_set(err, RT_ERR_USAGE, "cannot read config %s", path);
  return RT_OK;
}

int rt_config_set(rt_config *cfg, const char *assignment, rt_err *err) {
  const char *eq = strchr(assignment, '=');
  /* Never echo the argument: it may be a secret with its '=' missing. */
  if (!eq || eq == assignment)
    return rt_err_set(err, RT_ERR_USAGE, "--set: expected section.key=value (`ragtide help config` lists the keys)");
  char name[256], h[300];
  size_t nl = (size_t)(eq - assignment);
  if (nl >= sizeof name) nl = sizeof name - 1;
  memcpy(name, assignment, nl);
  name[nl] = '\0';
  rt_trim(name);
  const keydef *k = find_key(name);
  if (!k)
    return rt_err_set(err, RT_ERR_USAGE, "--set: unknown key \"%s\"%s (`ragtide help config` lists the keys)", name,
                      hint(nearest_key(name), h, sizeof h));
  const char *v = eq + 1;
  while (*v == ' ') v++;
  return apply_given(cfg, k, v, -1, "--set", err);
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

static unsigned command_bit(const char *cmd) {
  for (size_t i = 0; cmd && i < NCMDS; i++)
    if (!strcmp(CMDS[i].name, cmd)) return CMDS[i].bit;
  return 0;
}

/* Is key k set (given, or a value other than the empty default)? */
static int has_value(const rt_config *c, const keydef *k) {
  const char *base = (const char *)c;
  if (c->given_[k - KEYS]) return 1;
  switch (k->type) {
  case K_STR:
  case K_ENUM: return **(char *const *)(base + k->off) != '\0';
  case K_DATE:
  case K_TIME:
  case K_INT: return *(const int64_t *)(base + k->off) != 0;
  case K_DBL: return *(const double *)(base + k->off) != 0;
  case K_BOOL: return *(const int *)(base + k->off) != 0;
  }
  return 0;
}

int rt_config_validate(const rt_config *c, const char *cmd, rt_err *err) {
  const char *base = (const char *)c;
  /* Every key's range (values a program set directly, not only parsed ones). */
  for (size_t i = 0; i < NKEYS; i++) {
    const keydef *k = &KEYS[i];
    if (!k->ranged) continue;
    double x = k->type == K_INT ? (double)*(const int64_t *)(base + k->off) : *(const double *)(base + k->off);
    if (!(x >= k->lo && x <= k->hi)) {
      char v[64];
      if (k->type == K_INT) snprintf(v, sizeof v, "%lld", (long long)*(const int64_t *)(base + k->off));
      else snprintf(v, sizeof v, "%g", x);
      return out_of_range(k, v, "config", err);
    }
  }
  /* The keys this command requires. */
  unsigned bit = command_bit(cmd);
  for (size_t i = 0; bit && i < NKEYS; i++) {
    const keydef *k = &KEYS[i];
    int waived = 0;
    const char *unless = k->unless ? k->unless(c, bit, &waived) : NULL;
    if (!(k->req & bit) || has_value(c, k) || waived) continue;
    return rt_err_set(err, RT_ERR_USAGE, "%s: %s is required by %s%s%s (`ragtide help config %s`)",
                      c->file_ ? c->file_ : "config", k->name, cmd, unless ? ", " : "", unless ? unless : "", cmd);
  }
  /* Across keys. */
  if (c->batch_poll_max_s < c->batch_poll_s)
    return rt_err_set(err, RT_ERR_USAGE, "%s: llm.batch_poll_max_s = %g must be >= llm.batch_poll_s = %g",
                      c->file_ ? c->file_ : "config", c->batch_poll_max_s, c->batch_poll_s);
  if ((!strcmp(c->api, "openai-batch") || !strcmp(c->api, "gemini-batch")) && c->samples != 1)
    return rt_err_set(err, RT_ERR_USAGE, "%s: llm.samples = %lld: batch mode (llm.api = %s) sends one request "
                      "per pair; set llm.samples = 1 or use the synchronous api", c->file_ ? c->file_ : "config",
                      (long long)c->samples, c->api);
  const keydef *ws = find_key("input.window_start"), *we = find_key("input.window_end");
  int window = has_value(c, ws) || has_value(c, we);
  char o1[300], o2[300];
  if (window && c->window_end <= c->window_start)
    return rt_err_set(err, RT_ERR_USAGE, "%s: input.window_end must be after input.window_start (%s)",
                      rt_config_origin(c, "input.window_end", o1, sizeof o1),
                      rt_config_origin(c, "input.window_start", o2, sizeof o2));
  /* events carry their time as 32-bit seconds from the start of the earliest
   * window (twice the window for trend): pipeline/read.h */
  if (window && c->window_end - c->window_start >= ((int64_t)1 << 31))
    return rt_err_set(err, RT_ERR_USAGE, "%s: the refresh window (input.window_start, %s, to input.window_end) "
                      "must be shorter than 68 years", rt_config_origin(c, "input.window_end", o1, sizeof o1),
                      rt_config_origin(c, "input.window_start", o2, sizeof o2));
  return RT_OK;
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
    if (k->flags & KF_NOHASH) continue;
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

/* "refresh (unless ...), aggregate" for the commands in mask. */
static void print_cmds(FILE *f, unsigned mask, waiver unless) {
  const char *sep = "";
  for (size_t i = 0; i < NCMDS; i++) {
    if (!(mask & CMDS[i].bit)) continue;
    const char *u = unless ? unless(NULL, CMDS[i].bit, NULL) : NULL;
    fprintf(f, "%s%s%s%s%s", sep, CMDS[i].name, u ? " (" : "", u ? u : "", u ? ")" : "");
    sep = ", ";
  }
}

void rt_config_print_keys(void *file, const char *cmd) {
  FILE *f = file;
  unsigned only = command_bit(cmd);
  fprintf(f, "Required, per command (one INI file may serve several commands; each reads the keys it needs):\n");
  for (size_t c = 0; c < NCMDS; c++) {
    if (only && CMDS[c].bit != only) continue;
    fprintf(f, "  %s:\n", CMDS[c].name);
    for (size_t i = 0; i < NKEYS; i++) {
      if (!(KEYS[i].req & CMDS[c].bit)) continue;
      const char *u = KEYS[i].unless ? KEYS[i].unless(NULL, CMDS[c].bit, NULL) : NULL;
      fprintf(f, "    %s%s%s%s\n", KEYS[i].name, u ? " (" : "", u ? u : "", u ? ")" : "");
    }
    if (CMDS[c].bit == E) fprintf(f, "    (the window comes from --from and --to)\n");
  }
  const char *sect = "";
  size_t sl = 0;
  static const char *tn[] = {"string", "integer", "number", "bool", "date", "time", "enum"};
  for (size_t i = 0; i < NKEYS; i++) {
    const keydef *k = &KEYS[i];
    if (only && !(k->cmds & only)) continue;
    const char *dot = strchr(k->name, '.');
    if ((size_t)(dot - k->name) != sl || strncmp(sect, k->name, sl) != 0) {
      sect = k->name, sl = (size_t)(dot - k->name);
      fprintf(f, "\n[%.*s]\n", (int)sl, sect);
    }
    char r[160] = "";
    if (k->type == K_ENUM) snprintf(r, sizeof r, "one of %s", k->choices);
    else if (k->ranged) snprintf(r, sizeof r, "%s ", tn[k->type]), range_text(k, r + strlen(r), sizeof r - strlen(r));
    else if (k->type == K_DATE) snprintf(r, sizeof r, "UTC date YYYY-MM-DD[THH:MM:SSZ]");
    else if (k->type == K_TIME) snprintf(r, sizeof r, "unix seconds or UTC date");
    else snprintf(r, sizeof r, "%s", tn[k->type]);
    fprintf(f, "  %-22s %s%s; default %s\n      read by ", dot + 1, r, k->flags & KF_SECRET ? ", secret" : "",
            *k->dflt ? k->dflt : "(none)");
    print_cmds(f, k->cmds, NULL);
    if (k->req) fprintf(f, "; required by "), print_cmds(f, k->req, k->unless);
    fprintf(f, "\n      %s\n", k->doc);
  }
}

void rt_config_print_names(void *file) {
  for (size_t i = 0; i < NKEYS; i++) fprintf(file, "%s\n", KEYS[i].name);
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
