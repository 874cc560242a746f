/* sequence.h — stage 4: user histories -> (c1, c2, c_next) triples.
 *
 * Owns the paper's §2.4 semantics, in one place that offline evaluation
 * reuses (no MPI here):
 *   1. a user's events in (ts, cluster) order; a gap longer than
 *      input.max_gap_s (if > 0), or a change of window, starts a new sequence;
 *   2. dedup: `consecutive` collapses runs of one cluster into its first
 *      event; `unique` keeps each cluster's last occurrence only;
 *   3. sequences shorter than input.min_seq_len are dropped;
 *   4. every three consecutive clusters that are pairwise distinct form a
 *      triple, dated by the day of c_next's (kept) event.
 * docs/formats.md §2.2 states the same rules; tests/oracle/aggregate_oracle.py
 * is the executable reference with a hand-worked example. */
#ifndef RT_PIPELINE_SEQUENCE_H
#define RT_PIPELINE_SEQUENCE_H

#include <stddef.h>
#include <stdint.h>

#include "pipeline/read.h"

typedef struct rt_seq_opts {
  int unique;       /* dedup = unique */
  int64_t min_len;  /* >= 3 */
  int64_t max_gap;  /* seconds; 0 = no gap rule */
  int64_t epoch;    /* unix seconds of t = 0 in the events (rt_ev): dates the triples */
} rt_seq_opts;

void rt_seq_opts_from_config(const rt_config *cfg, rt_seq_opts *o);

/* Called once per triple; day = floor((epoch + t) / 86400) of c_next's event; win = the
 * window the triple's events belong to. */
typedef void (*rt_triple_fn)(void *ctx, uint32_t c1, uint32_t c2, uint32_t c3, int32_t day, uint32_t win);

typedef struct rt_seq_stats {
  uint64_t users, sequences, short_sequences, triples;
} rt_seq_stats;

/* Events of ONE user, already ordered by rt_ev_order. Emits its triples.
 * scratch must hold n entries. */
void rt_sequence_user(const rt_ev *ev, size_t n, const rt_seq_opts *o, rt_ev *scratch, rt_triple_fn fn,
                      void *ctx, rt_seq_stats *st);

/* Group events by user, order each user's events (rt_ev_order) and emit
 * every user's triples; users come in no particular order. ev's contents
 * are overwritten (used as scratch). */
void rt_sequence_all(rt_ev *ev, size_t n, const rt_seq_opts *o, rt_triple_fn fn, void *ctx, rt_seq_stats *st);

/* Called once per kept sequence (deduplicated, at least min_len entries)
 * of a user: s[0..m) in order, the clusters are rt_ev_c(&s[i]). The
 * sequences of one user come one after another. Offline evaluation
 * (pipeline/eval.h) scores predictions on them. */
typedef void (*rt_seq_fn)(void *ctx, uint64_t user, const rt_ev *s, size_t m);

/* rt_sequence_user and rt_sequence_all, handing over the sequences instead
 * of their triples (same split, dedup and length rules). */
void rt_sequence_user_each(const rt_ev *ev, size_t n, const rt_seq_opts *o, rt_ev *scratch, rt_seq_fn fn,
                           void *ctx, rt_seq_stats *st);
void rt_sequence_all_each(rt_ev *ev, size_t n, const rt_seq_opts *o, rt_seq_fn fn, void *ctx, rt_seq_stats *st);

/* The order sequencing relies on: user, ts, cluster, window. */
int rt_ev_order(const void *a, const void *b);

#endif
