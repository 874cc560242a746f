/* config.h — the job configuration: an INI file plus `--set section.key=value`
 * overrides, checked against ONE table of known keys (config.c: name, type,
 * default, range or values, secret, the commands that read and require it,
 * doc). An unknown or mistyped key is an error naming the file and line
 * (or --set) with the nearest key; a value out of range names its range;
 * never a silently ignored setting. `ragtide help config` prints the table;
 * README "Configuration" lists the same keys (tests/scripts/usage.sh checks).
 *
 * Relative paths are taken relative to the current working directory. */
#ifndef RT_FORMAT_CONFIG_H
#define RT_FORMAT_CONFIG_H

#include <stdint.h>

#include "base/err.h"

/* The commands that read a configuration (what a key applies to and is
 * required for). */
enum { RT_CFG_REFRESH = 1, RT_CFG_AGGREGATE = 2, RT_CFG_EVAL = 4, RT_CFG_FINETUNE = 8 };

#define RT_CONFIG_MAX_KEYS 128

typedef struct rt_config {
  /* [input] */
  char *catalog;           /* cluster catalog TSV */
  char *logs;              /* shard glob ("dir/\*.msgpack.zst") or manifest ("@file" / *.txt) */
  char *counts;            /* counts file to start from instead of logs ("" = read logs) */
  int64_t window_start;    /* unix seconds, inclusive */
  int64_t window_end;      /* unix seconds, exclusive */
  int64_t window_days;     /* > 0: the window is the N days before the last UTC midnight (minus the lag) */
  int64_t window_lag_h;    /* hours the logs lag behind: the window ends at the last midnight before now - lag */
  double min_engagement;   /* keep events with engagement >= this */
  char *dedup;             /* "consecutive" | "unique" */
  int64_t min_seq_len;     /* drop deduplicated sequences shorter than this */
  int64_t max_gap_s;       /* 0: none; else a gap > this starts a new sequence */
  int partitioned_by_user; /* shards already split by user: skip the shuffle */
  char *on_bad_event;      /* "fail" | "skip" */
  /* [retrieval] */
  char *retrieval_mode;    /* "frequency" | "trend" */
  int64_t top_n;           /* successors per pair in the prompt */
  char *granularity;       /* "instance" | "global" */
  int64_t popular_n;       /* size of the "top popular clusters" block */
  /* [prompt] */
  char *prompt_mode;       /* "rag" | "base" */
  char *template_path;     /* prompt template file */
  /* [llm] */
  char *api;               /* "openai" | "gemini" | "openai-batch" | "gemini-batch" | "retrieval" */
  char *base_url;
  char *model;
  int64_t concurrency;     /* requests in flight per rank */
  char *api_key_env;
  char *api_key_file;
  int insecure;
  double temperature;
  int64_t max_tokens;
  int64_t seed;
  int64_t timeout_ms;
  int64_t connect_timeout_ms;
  int64_t max_attempts;
  int64_t rpm;             /* global requests/minute, 0 = unlimited */
  int64_t tpm;             /* global tokens/minute, 0 = unlimited */
  char *constrain;         /* "off" | "json_schema" | "guided_choice" */
  int64_t samples;
  double max_failed_fraction;
  char *headers;           /* extra headers, "Name: value; Name2: value2" */
  double price_in_per_mtok;  /* USD per million prompt tokens (0: no cost estimate) */
  double price_out_per_mtok; /* USD per million completion tokens */
  /* llm.api = openai-batch | gemini-batch (llm/batch.h) */
  char *batch_retry;         /* "sync" | "batch": where failed batch lines go */
  int64_t batch_deadline;    /* seconds the LLM stage may wait for batches (0 = no bound) */
  double batch_poll_s;       /* first poll interval; doubles up to batch_poll_max_s */
  double batch_poll_max_s;
  int64_t batch_max_requests; /* per batch; 0 = the provider's limit */
  int64_t batch_max_bytes;    /* per batch input; 0 = the provider's default (capped at its limit) */
  char *batch_input;          /* "auto" | "inline" | "file": how a Gemini batch carries its requests */
  /* [match] */
  int fuzzy;
  double fuzzy_threshold;
  /* [gates] */
  double min_exact_match;
  double min_recall;        /* recall gate floor (hit rate at eval.horizon on the held-out days) */
  int64_t holdout_days;     /* > 0: the last days of the window are held out for the recall gate */
  double min_coverage_ratio; /* new rag+base pairs >= this share of the served table's */
  /* [eval] */
  int64_t eval_horizon;    /* hit rate at H: the prediction among the next H clusters */
  int64_t eval_bootstrap;  /* bootstrap resamples over users for the 95% intervals; 0 = none */
  int64_t eval_seed;       /* the bootstrap's seed */
  /* [output] */
  char *table;
  char *base_table;
  char *summary;
  int64_t created_at;      /* unix seconds; 0 = now */
  int64_t candidates;
  int64_t keep;
  char *cache;             /* answer journal; "" = TABLE.answers, "off" = none */
  char *run_dir;
  int64_t progress_s;      /* seconds between progress lines; 0 = none */
  int64_t flush_s;         /* seconds between journal fsyncs during the LLM stage */
  char *metrics_file;      /* Prometheus textfile ("" = none) */
  /* [memory] */
  int64_t per_rank_mb;
  /* [job] */
  int64_t threads;         /* per rank; 0 = the CPUs in the rank's affinity mask */
  int64_t grace_s;         /* after a stop signal: seconds in-flight calls may take to finish */
  int64_t lock_stale_s;    /* a lock whose heartbeat is older than this is taken over */
  /* where each key (by table index) got its value: 0 default, -1 --set, N
   * line N of file_ (the last file loaded; not owned) */
  int32_t given_[RT_CONFIG_MAX_KEYS];
  const char *file_;
} rt_config;

/* Fill cfg with every key's default. */
void rt_config_defaults(rt_config *cfg);

/* Parse an INI file over the current values. Unknown section or key (with
 * the nearest known key), bad or out-of-range value (with the allowed range
 * or values): RT_ERR_USAGE naming path:line and the key. */
int rt_config_load(rt_config *cfg, const char *path, rt_err *err);

/* Apply one "section.key=value" override (from --set); errors as for a file,
 * naming "--set" instead of path:line, and never echoing a secret's value. */
int rt_config_set(rt_config *cfg, const char *assignment, rt_err *err);

/* Defaults, then the file `path`, then every "--set section.key=value" found
 * in argv (in order; other arguments are ignored). No validation. */
int rt_config_from_args(rt_config *cfg, const char *path, int argc, char **argv, rt_err *err);

/* Checks after everything is applied: every key's range (values set by
 * code too), the keys `cmd` requires ("refresh", "aggregate", "eval",
 * "export-finetune"; NULL: none), and across keys (window order and
 * length). */
int rt_config_validate(const rt_config *cfg, const char *cmd, rt_err *err);

/* Whether `key` ("section.key") was set by the file or --set (so a window
 * start of 1970-01-01 is a date, not "unset"). */
int rt_config_given(const rt_config *cfg, const char *key);
/* Where `key` got its value, for messages: "FILE:LINE", "--set", or
 * "config" (a default, or set by code). Returns buf. */
const char *rt_config_origin(const rt_config *cfg, const char *key, char *buf, size_t cap);

/* Resolve input.window_days against `now` (unix seconds): the window ends
 * at the last UTC midnight at or before now - window_lag_h hours and starts
 * window_days before. No-op when window_days is 0. */
void rt_config_resolve_window(rt_config *cfg, int64_t now);

/* Stable hash of the effective configuration (for the table header). */
uint64_t rt_config_hash(const rt_config *cfg);

/* `help config [COMMAND]`: the keys each command requires, then every key
 * (type, range or values, default, the commands reading it, doc); only the
 * keys COMMAND reads when cmd is one. */
void rt_config_print_keys(void *file, const char *cmd);
/* Every key's name, one per line (`help config --names`: tests compare them
 * with the README). */
void rt_config_print_names(void *file);

void rt_config_free(rt_config *cfg);

#endif
