/* metrics.h — the counters every stage reports.
 *
 * One X-macro list names every counter (stage, name, how ranks combine it).
 * Each process holds a flat array indexed by rt_metric; the refresh command
 * reduces the arrays over ranks once at the end (sum or max, per counter) and
 * writes them into the run summary under "stages". A later progress reporter
 * can reduce the same array with a nonblocking collective mid-run. Adding a
 * counter = adding one line here. */
#ifndef RT_BASE_METRICS_H
#define RT_BASE_METRICS_H

#include <stdint.h>

/* X(stage, name, combine) — combine: SUM over ranks, or MAX. Seconds are
 * stored as microseconds. */
#define RT_METRICS(X)                                                           \
  X(plan, shards, SUM)                                                         \
  X(plan, bytes, SUM)                                                          \
  X(plan, us, MAX)                                                             \
  X(read, shards, SUM)                                                         \
  X(read, bytes_in, SUM)                                                       \
  X(read, events, SUM)                                                         \
  X(read, kept, SUM)                                                           \
  X(read, below_engagement, SUM)                                               \
  X(read, outside_window, SUM)                                                 \
  X(read, previous_window, SUM)                                                \
  X(read, bad_unknown_cluster, SUM)                                            \
  X(read, bad_timestamp, SUM)                                                  \
  X(read, bad_engagement, SUM)                                                 \
  X(read, bad_fields, SUM)                                                     \
  X(read, bad_number, SUM)                                                     \
  X(read, bad_header, SUM)                                                     \
  X(read, us, MAX)                                                             \
  X(shuffle, events_sent, SUM)                                                 \
  X(shuffle, events_received, SUM)                                             \
  X(shuffle, rounds, MAX)                                                      \
  X(shuffle, spilled_events, SUM)                                              \
  X(shuffle, us, MAX)                                                          \
  X(sequence, users, SUM)                                                      \
  X(sequence, sequences, SUM)                                                  \
  X(sequence, short_sequences, SUM)                                            \
  X(sequence, triples, SUM)                                                    \
  X(sequence, us, MAX)                                                         \
  X(count, records_sent, SUM)                                                  \
  X(count, triples_distinct, SUM)                                              \
  X(count, pairs_with_data, SUM)                                               \
  X(count, spilled_records, SUM)                                               \
  X(count, us, MAX)                                                            \
  X(retrieve, pairs, SUM)                                                      \
  X(retrieve, successors, SUM)                                                 \
  X(retrieve, us, MAX)                                                         \
  X(prompt, rendered, SUM)                                                     \
  X(prompt, bytes, SUM)                                                        \
  X(prompt, us, MAX)                                                           \
  X(infer, calls, SUM)                                                         \
  X(infer, cache_hits, SUM)                                                    \
  X(infer, requests, SUM)                                                      \
  X(infer, retries, SUM)                                                       \
  X(infer, http_429, SUM)                                                      \
  X(infer, http_5xx, SUM)                                                      \
  X(infer, timeouts, SUM)                                                      \
  X(infer, conn_errors, SUM)                                                   \
  X(infer, bad_responses, SUM)                                                 \
  X(infer, failed, SUM)                                                        \
  X(infer, prompt_tokens, SUM)                                                 \
  X(infer, completion_tokens, SUM)                                             \
  X(infer, batches, SUM)                                                       \
  X(infer, batches_collected, SUM)                                             \
  X(infer, batch_lines, SUM)                                                   \
  X(infer, batch_lines_failed, SUM)                                            \
  X(infer, batch_prompt_tokens, SUM)                                           \
  X(infer, batch_completion_tokens, SUM)                                       \
  X(infer, batch_wait_us, MAX)                                                 \
  X(infer, us, MAX)                                                            \
  X(match, answers, SUM)                                                       \
  X(match, exact, SUM)                                                         \
  X(match, fuzzy, SUM)                                                         \
  X(match, not_novel, SUM)                                                     \
  X(match, unmatched, SUM)                                                     \
  X(match, matched, SUM)                                                       \
  X(match, novel, SUM)                                                         \
  X(match, fallback_failed, SUM)                                               \
  X(match, fallback_unmatched, SUM)                                            \
  X(match, fallback_not_novel, SUM)                                            \
  X(match, us, MAX)                                                            \
  X(gather, results, SUM)                                                      \
  X(gather, us, MAX)                                                           \
  X(table, us, MAX)                                                            \
  X(process, peak_rss_kb, MAX)                                                 \
  X(process, cpu_ms, SUM)                                                      \
  X(process, threads, MAX)

typedef enum {
#define RT_METRIC_ENUM(stage, name, combine) RT_M_##stage##_##name,
  RT_METRICS(RT_METRIC_ENUM)
#undef RT_METRIC_ENUM
  RT_M_COUNT
} rt_metric;

extern uint64_t rt_metrics[RT_M_COUNT];

/* Safe from any thread (the stages run job.threads threads per rank):
 * relaxed atomics, since a counter orders nothing. Hot loops still tally
 * locally and add once per chunk. */
static inline void rt_metric_add(rt_metric m, uint64_t v) { __atomic_fetch_add(&rt_metrics[m], v, __ATOMIC_RELAXED); }
static inline void rt_metric_max(rt_metric m, uint64_t v) {
  uint64_t cur = __atomic_load_n(&rt_metrics[m], __ATOMIC_RELAXED);
  while (v > cur && !__atomic_compare_exchange_n(&rt_metrics[m], &cur, v, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}

const char *rt_metric_stage(rt_metric m);
const char *rt_metric_name(rt_metric m);
int rt_metric_is_max(rt_metric m);
void rt_metrics_reset(void);

/* Times a stage: t = rt_stage_begin(); ...; rt_stage_end(RT_M_read_us, t); */
double rt_stage_begin(void);
void rt_stage_end(rt_metric us_metric, double t0);

#endif
