/* refresh.h — what the files of `ragtide refresh` share (command layer,
 * private to it). The command reads like its data flow:
 *
 *   cmd_refresh.c      the command: set-up, stages 1–6 (counts, retrieval),
 *                      10–11 (gather, gates, publish) and the outcome
 *   refresh_llm.c      stages 7–9, batch by batch: prompt, journal or
 *                      endpoint, match, and each pair's result
 *   refresh_journal.c  the answer journal across runs (begin, --dry-run's
 *                      peek, end) and --dry-run's report
 *   refresh_report.c   the run summary and the metrics file
 *   cmd_explain.c      `ragtide explain`: stages 1–9 replayed for one pair
 *
 * Every function here is collective unless it says "rank 0". */
#ifndef RT_CMD_REFRESH_H
#define RT_CMD_REFRESH_H

#include <jansson.h>
#include <stdint.h>

#include "base/util.h"
#include "cmd/job.h"
#include "format/answers.h"
#include "format/contexts.h"
#include "llm/infer.h"
#include "pipeline/gates.h"
#include "pipeline/gather.h"
#include "pipeline/progress.h"
#include "rag/match.h"
#include "rag/prompt.h"
#include "rag/retrieve.h"

typedef struct refresh {
  rt_job *job;
  const rt_config *cfg;
  rt_template tmpl;
  ragtide_table *base;      /* NULL without output.base_table */
  rt_llm_client *client;    /* NULL for llm.api = retrieval */
  rt_answers *cache;        /* NULL when output.cache = off: the journal (read; rank 0 appends at the end) */
  rt_answers *part;         /* this rank's journal part (CACHE.part-RANK): every answer, as it arrives */
  char *cache_path;
  char *summary_path;       /* the served table's summary (output.summary or TABLE.summary.json) */
  rt_err part_err;          /* the first failed write to the part (reported once) */
  double last_fsync;
  /* the batch in flight, for the client's hooks */
  const uint64_t *batch_keys;
  const size_t *batch_miss;
  rt_progress *prog;
  uint64_t done_before;     /* pairs done before the batch in flight */
  uint64_t batch_done;      /* calls of the batch in flight complete so far */
  int journal;              /* refresh_journal_begin ran (on every rank alike); refresh_journal_end is due */
  uint64_t dry_calls, dry_bytes; /* --dry-run: calls that would be sent, their prompt bytes */
  rt_matcher matcher;
  uint32_t popular[64];
  size_t n_popular;
  char *examples;           /* global granularity block, or "" */
  uint32_t day;             /* day the answers are produced */
  int base_mode;            /* prompt.mode = base */
  int global;               /* retrieval.granularity = global: no per-pair context in prompts */
  rt_retrieval ret;         /* stages 1–6: this rank's pairs and their retrieved successors */
  RT_VEC(rt_ctx_fp) fps;    /* fingerprints of those contexts (drift report, TABLE.contexts) */
  uint64_t npairs;          /* pairs the LLM stage covers, all ranks */
  rt_gates gates;           /* recall and coverage gates (pipeline/gates.h) */
  rt_result_buf results;    /* this rank's per-pair results (gather.h encoding) */
  const char *status;       /* published | failed | halted | stale | interrupted */
  int summary_due;          /* start-up succeeded: a failure still leaves a summary */
} refresh;

/* Set-up: template, base table, endpoint client, matcher, and the journal
 * (read only when job->dry_run). */
int refresh_setup(refresh *r, rt_err *err);
/* Stages 1–6 into r->ret, r->popular, r->examples, r->fps (base mode:
 * the pairs-only plan). */
int refresh_retrieve(refresh *r, rt_err *err);
/* Release what refresh_setup and refresh_retrieve hold. */
void refresh_free(refresh *r);

/* Stages 7–9 over every pair of r->ret (or every owned pair in base mode):
 * answers go to r->results; --dry-run only counts. RT_ERR_INTERRUPTED on a
 * stop. */
int refresh_llm_stage(refresh *r, rt_err *err);
/* Copy the client's counters into the run's metrics (this rank). */
void refresh_copy_llm_stats(const rt_llm_client *c);

int refresh_journal_begin(refresh *r, rt_err *err);
int refresh_journal_peek(refresh *r, rt_err *err);
void refresh_journal_end(refresh *r);
void refresh_dry_report(refresh *r, uint64_t pairs);

/* Rank 0: the summary object (info: the table this run publishes, or NULL). */
json_t *refresh_summary(refresh *r, const uint64_t *total, int rc, const rt_err *err, const char *status,
                        const char *table_path, const ragtide_table_info *info, double exact_rate, double failed_frac);
void refresh_add_endpoint(json_t *s, json_t *endpoint, const uint64_t *total, const rt_config *cfg);
void refresh_write_metrics(refresh *r, const uint64_t *total, int rc, const char *status,
                           const ragtide_table_info *pub, double exact, double failed);

#endif
