/* config.h — the job configuration: an INI file plus `--set section.key=value`
 * overrides, checked against one table of known keys (config.c), so an
 * unknown or mistyped key is an error naming the file and line, never a
 * silently ignored setting. README "Configuration" lists the same table
 * (`ragtide help config` prints it from the code).
 *
 * Relative paths are taken relative to the current working directory. */
#ifndef RT_FORMAT_CONFIG_H
#define RT_FORMAT_CONFIG_H

#include <stdint.h>

#include "base/err.h"

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
  int64_t batch_max_bytes;    /* per batch input; 0 = the provider's limit */
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
} rt_config;

/* Fill cfg with every key's default. */
void rt_config_defaults(rt_config *cfg);

/* Parse an INI file over the current values. Unknown section or key, bad
 * value: RT_ERR_USAGE naming path:line and the key. */
int rt_config_load(rt_config *cfg, const char *path, rt_err *err);

/* Apply one "section.key=value" override (from --set). */
int rt_config_set(rt_config *cfg, const char *assignment, rt_err *err);

/* Defaults, then the file `path`, then every "--set section.key=value" found
 * in argv (in order; other arguments are ignored). No validation. */
int rt_config_from_args(rt_config *cfg, const char *path, int argc, char **argv, rt_err *err);

/* Cross-key checks after everything is applied (window order, required keys,
 * ranges). */
int rt_config_validate(const rt_config *cfg, rt_err *err);

/* Resolve input.window_days against `now` (unix seconds): the window ends
 * at the last UTC midnight at or before now - window_lag_h hours and starts
 * window_days before. No-op when window_days is 0. */
void rt_config_resolve_window(rt_config *cfg, int64_t now);

/* Stable hash of the effective configuration (for the table header). */
uint64_t rt_config_hash(const rt_config *cfg);

/* Print the key table (key, type, default, description) for `help config`. */
void rt_config_print_keys(void *file);

void rt_config_free(rt_config *cfg);

#endif
