/* eval.h — offline evaluation: score next-cluster predictors on held-out
 * sequences (`ragtide eval`, docs/eval.md). No MPI here: the command
 * (cmd/cmd_eval.c) replays the logs through stages 1–4 and hands every
 * kept sequence to rt_eval_sequence; the per-user tallies are then merged
 * by user and summarised with bootstrap intervals over users.
 *
 * Positions. In a held-out sequence s[0..m) (the clusters after the split,
 * dedup and min_seq_len rules of refresh, pipeline/sequence.h), every i with
 * 2 <= i < m is one position: the history is (c1, c2) = (s[i-2], s[i-1]),
 * the actual next cluster is s[i]. For each predictor, at each position:
 *   covered  the predictor has a prediction p for (c1, c2);
 *   next-1   covered and p == s[i];
 *   hit@H    covered and p is one of s[i], ..., s[min(i+H, m) - 1] (the H
 *            clusters that follow, fewer at the end of the sequence);
 *   novel    covered and p is none of s[0..i) (not already in the
 *            sequence before the position).
 * Rates are over all positions (an uncovered position is a miss), novelty
 * over covered positions. The table's positions are also split by the
 * provenance of its prediction (none, base, rag, fallback, retrieval). */
#ifndef RT_PIPELINE_EVAL_H
#define RT_PIPELINE_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include <ragtide/table.h>

enum { RT_EVAL_TABLE, RT_EVAL_POPULAR, RT_EVAL_HISTORY, RT_EVAL_PREVIOUS, RT_EVAL_NPRED };
enum { RT_EK_COVERED, RT_EK_NEXT1, RT_EK_HIT, RT_EK_NOVEL, RT_EK_N };
enum { RT_EP_POS, RT_EP_NEXT1, RT_EP_HIT, RT_EP_N };

/* Tally fields: positions, then per predictor RT_EK_N counts, then per
 * provenance of the table RT_EP_N counts. */
#define RT_EF_POS 0
#define RT_EF(pred, k) (1 + RT_EK_N * (pred) + (k))
#define RT_EF_PROV(prov, k) (1 + RT_EK_N * RT_EVAL_NPRED + RT_EP_N * (prov) + (k))
#define RT_EVAL_NF (1 + RT_EK_N * RT_EVAL_NPRED + RT_EP_N * RAGTIDE_PROV_COUNT)

typedef struct rt_eval_user {
  uint64_t user;
  uint32_t f[RT_EVAL_NF];
} rt_eval_user;

/* A predictor: returns 1 with *next (dense index) and *prov when it has a
 * prediction for the pair (c1, c2) of dense indices, else 0. */
typedef int (*rt_predict_fn)(const void *ctx, uint32_t c1, uint32_t c2, uint32_t *next, int *prov);

typedef struct rt_predictor {
  rt_predict_fn fn; /* NULL: absent (not scored, not reported) */
  const void *ctx;
} rt_predictor;

typedef struct rt_eval_opts {
  int horizon; /* H >= 1 */
  rt_predictor pred[RT_EVAL_NPRED];
} rt_eval_opts;

/* Add the positions of one sequence s[0..m) (dense indices) to f. */
void rt_eval_sequence(const rt_eval_opts *o, const uint32_t *s, size_t m, uint32_t *f);

/* Predictors. */
int rt_predict_table(const void *table, uint32_t c1, uint32_t c2, uint32_t *next, int *prov);

/* Most popular next cluster: `rank` lists clusters by count, largest first
 * (ties: smaller index), only those seen; the prediction is the first that
 * is neither c1 nor c2. */
typedef struct rt_popular {
  const uint32_t *rank;
  size_t n;
} rt_popular;
int rt_predict_popular(const void *popular, uint32_t c1, uint32_t c2, uint32_t *next, int *prov);
/* Fill rank[] (room for n) from per-cluster counts; returns how many. */
size_t rt_popular_rank(const uint64_t *count, uint32_t n, uint32_t *rank);

/* A pair's top successor: entries sorted by pair = c1 * n + c2. */
typedef struct rt_pair_next {
  uint64_t pair;
  uint32_t next, pad;
} rt_pair_next;
typedef struct rt_pair_map {
  const rt_pair_next *e;
  size_t len;
  uint32_t n; /* catalog size */
} rt_pair_map;
int rt_predict_pairs(const void *map, uint32_t c1, uint32_t c2, uint32_t *next, int *prov);

/* One figure: the point value over all users and its bootstrap interval;
 * defined = 0 when its denominator is 0. */
typedef struct rt_eval_ci {
  double value, lo, hi;
  int defined;
} rt_eval_ci;

typedef struct rt_eval_report {
  uint64_t users, tally[RT_EVAL_NF];
  rt_eval_ci next1[RT_EVAL_NPRED], hit[RT_EVAL_NPRED], coverage[RT_EVAL_NPRED], novelty[RT_EVAL_NPRED];
  /* predictor − table, same resamples (index RT_EVAL_TABLE unused) */
  rt_eval_ci d_next1[RT_EVAL_NPRED], d_hit[RT_EVAL_NPRED], d_coverage[RT_EVAL_NPRED];
  /* the table by provenance: share of positions, next-1 and hit@H within */
  rt_eval_ci prov_share[RAGTIDE_PROV_COUNT], prov_next1[RAGTIDE_PROV_COUNT], prov_hit[RAGTIDE_PROV_COUNT];
} rt_eval_report;

/* Sort u by user and merge entries of the same user in place; returns the
 * number of users. */
size_t rt_eval_merge_users(rt_eval_user *u, size_t n);

/* Point values, and 95% percentile intervals from `resamples` bootstrap
 * resamples of the users (with replacement, splitmix64 from `seed`): the
 * same users in the same order give the same report. resamples = 0: the
 * intervals equal the values. */
void rt_eval_summarize(const rt_eval_user *u, size_t nu, int resamples, uint64_t seed, rt_eval_report *r);

#endif
