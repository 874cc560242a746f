/* summary.h — the run summary: every stage's counters, reduced over ranks,
 * plus run facts, as one JSON document an operator or a scheduler reads.
 *
 * Shape (docs/summary.md): {"run_id", "status", "exit_code", "error",
 * "ranks", "window", "stages": {"read": {"events": .., "seconds": ..}, ...},
 * "quality": {...}, "table": {...}}. Counter values are summed over ranks;
 * "seconds" and peak RSS are the maximum over ranks (the critical path). */
#ifndef RT_PIPELINE_SUMMARY_H
#define RT_PIPELINE_SUMMARY_H

#include <jansson.h>
#include <stdint.h>
#include <mpi.h>

#include "base/err.h"

/* Collective: reduce rt_metrics over ranks into rank 0's `total` array
 * (others get garbage). Also records this process's peak RSS first. */
void rt_metrics_reduce(MPI_Comm comm, uint64_t *total);

/* Build the "stages" object from a reduced metrics array. */
json_t *rt_summary_stages(const uint64_t *total);

/* Collective: every rank's peak RSS in kB, as a JSON array on rank 0 (NULL
 * elsewhere): memory per rank is what a scheduler must reserve. */
json_t *rt_summary_rss(MPI_Comm comm);

struct rt_llm_stats;
/* Collective: the LLM client's figures summed over ranks, on rank 0 (NULL
 * elsewhere); s = NULL on a rank without a client counts as zeros:
 *   {"latency_ms": {"answered": N, "p50": .., "p95": .., "p99": ..} (null
 *      quantiles without answers; docs/llm.md "Stats"),
 *    "attempts": {"answered", "http_429", "http_429_quota", "http_500",
 *      "http_502", "http_503", "http_504", "http_5xx_other", "http_4xx",
 *      "http_other", "timeouts", "conn_errors", "conn_resets",
 *      "resolve_errors", "bad_responses"},
 *    "tokens": {"prompt", "completion", "estimated"},
 *    "rate": {"cuts", "limit_batches", "throttled_ms"}}
 * The latency histograms are merged by adding their buckets. */
json_t *rt_summary_llm(MPI_Comm comm, const struct rt_llm_stats *s);

/* Collective: every rank's batches (llm.api = *-batch; `mine` = its
 * rt_llm_batch_report array, stolen; NULL = none) into rank 0's `into`
 * object as "batches": {"count", "by_state": {STATE: N}, "requests",
 * "answered", "failed_lines", "seconds_to_complete" (the longest submission
 * to end), "list": [{"id", "provider", "state", "requests", "ok", "failed",
 * "round", "adopted", "submitted_at", "ended_at", "seconds"}]}. */
void rt_summary_batches(MPI_Comm comm, json_t *into, json_t *mine);

/* Write obj as pretty JSON to path atomically. */
int rt_summary_write(json_t *obj, const char *path, rt_err *err);
/* The summary as written: indented JSON and a newline (malloc'ed; *len
 * bytes, NUL-terminated), or NULL when jansson cannot serialise it. */
char *rt_summary_text(json_t *obj, size_t *len);
/* The summary of a run that published nothing, written as DIR/RUN_ID.summary.json
 * (DIR created; the path is returned in path), keeping the newest
 * RT_SUMMARY_RUNS_KEPT such files of DIR: the summary beside the table keeps
 * describing the served table. */
#define RT_SUMMARY_RUNS_KEPT 20
int rt_summary_write_run(json_t *obj, const char *dir, const char *run_id, char *path, size_t cap, rt_err *err);

#endif
