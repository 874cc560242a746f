/* test_eval.c — offline evaluation (src/pipeline/eval.c, docs/eval.md) on
 * hand-computed sequences: positions, next-1 and hit@H at the horizon's
 * edges, coverage, novelty, provenance, ties of the baselines, users with
 * one event (no position), merging and the bootstrap. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "pipeline/eval.h"
#include "pipeline/sequence.h"

/* A fixed predictor: pairs (c1, c2) -> next with a provenance. */
typedef struct {
  uint32_t c1[8], c2[8], next[8];
  int prov[8], n;
} fixed;

static int predict_fixed(const void *ctx, uint32_t c1, uint32_t c2, uint32_t *next, int *prov) {
  const fixed *f = ctx;
  for (int i = 0; i < f->n; i++)
    if (f->c1[i] == c1 && f->c2[i] == c2) {
      *next = f->next[i];
      *prov = f->prov[i];
      return 1;
    }
  return 0;
}

static void score(const fixed *f, int horizon, const uint32_t *s, size_t m, uint32_t *out) {
  rt_eval_opts o = {.horizon = horizon};
  o.pred[RT_EVAL_TABLE] = (rt_predictor){predict_fixed, f};
  memset(out, 0, RT_EVAL_NF * sizeof *out);
  rt_eval_sequence(&o, s, m, out);
}

#define T(k) f[RT_EF(RT_EVAL_TABLE, k)]

Test(eval, positions_next1_and_horizon_edges) {
  /* s = 1 2 3 4 5; (1,2) -> 5 is 3 clusters ahead of position 2: a hit at H = 3, not at H = 2 */
  const uint32_t s[] = {1, 2, 3, 4, 5};
  fixed p = {{1}, {2}, {5}, {RAGTIDE_PROV_RAG}, 1};
  uint32_t f[RT_EVAL_NF];
  score(&p, 2, s, 5, f);
  cr_assert_eq(f[RT_EF_POS], 3, "positions: i = 2, 3, 4 of a 5-cluster sequence");
  cr_assert_eq(T(RT_EK_COVERED), 1);
  cr_assert_eq(T(RT_EK_NEXT1), 0);
  cr_assert_eq(T(RT_EK_HIT), 0, "5 is 3 ahead: outside H = 2");
  score(&p, 3, s, 5, f);
  cr_assert_eq(T(RT_EK_HIT), 1, "5 is exactly H = 3 ahead");
  /* the horizon is cut at the sequence's end: (3,4) -> 5 at the last position */
  fixed q = {{3}, {4}, {5}, {RAGTIDE_PROV_BASE}, 1};
  score(&q, 5, s, 5, f);
  cr_assert_eq(T(RT_EK_NEXT1), 1);
  cr_assert_eq(T(RT_EK_HIT), 1);
  cr_assert_eq(f[RT_EF_PROV(RAGTIDE_PROV_BASE, RT_EP_POS)], 1);
  cr_assert_eq(f[RT_EF_PROV(RAGTIDE_PROV_NONE, RT_EP_POS)], 2, "two positions without a prediction");
  cr_assert_eq(f[RT_EF_PROV(RAGTIDE_PROV_BASE, RT_EP_NEXT1)], 1);
  /* two clusters: no position at all (a user with one or two events is not scored) */
  score(&q, 5, s, 2, f);
  cr_assert_eq(f[RT_EF_POS], 0);
  score(&q, 5, s, 1, f);
  cr_assert_eq(f[RT_EF_POS], 0);
}

Test(eval, novelty_is_against_the_sequence_before_the_position) {
  /* s = 3 1 2 5: (1,2) -> 3 was seen at s[0]: covered, not novel; (3,1) -> 4 novel */
  const uint32_t s[] = {3, 1, 2, 5};
  fixed p = {{1, 3}, {2, 1}, {3, 4}, {RAGTIDE_PROV_RAG, RAGTIDE_PROV_FALLBACK}, 2};
  uint32_t f[RT_EVAL_NF];
  score(&p, 5, s, 4, f);
  cr_assert_eq(f[RT_EF_POS], 2);
  cr_assert_eq(T(RT_EK_COVERED), 2);
  cr_assert_eq(T(RT_EK_NOVEL), 1);
  cr_assert_eq(T(RT_EK_HIT), 0);
  cr_assert_eq(f[RT_EF_PROV(RAGTIDE_PROV_FALLBACK, RT_EP_POS)], 1);
}

Test(eval, popular_ties_and_exclusion_of_the_pair) {
  /* counts: cluster 4 and 2 tie at 7 (smaller index first), 0 at 3, 1 never seen */
  uint64_t count[5] = {3, 0, 7, 1, 7};
  uint32_t rank[5];
  size_t n = rt_popular_rank(count, 5, rank);
  cr_assert_eq(n, 4);
  cr_assert_eq(rank[0], 2);
  cr_assert_eq(rank[1], 4);
  cr_assert_eq(rank[2], 0);
  cr_assert_eq(rank[3], 3);
  rt_popular pop = {rank, n};
  uint32_t next;
  int prov;
  cr_assert(rt_predict_popular(&pop, 0, 1, &next, &prov));
  cr_assert_eq(next, 2);
  cr_assert(rt_predict_popular(&pop, 2, 4, &next, &prov));
  cr_assert_eq(next, 0, "the two most popular are the pair itself: the third");
  rt_pair_next e[] = {{0 * 5 + 1, 3, 0}, {2 * 5 + 4, 1, 0}};
  rt_pair_map m = {e, 2, 5};
  cr_assert(rt_predict_pairs(&m, 2, 4, &next, &prov));
  cr_assert_eq(next, 1);
  cr_assert(!rt_predict_pairs(&m, 4, 2, &next, &prov));
}

static void collect_seq(void *ctx, uint64_t user, const rt_ev *s, size_t m) {
  uint32_t *out = ctx; /* [0] sequences, [1] users' sum, [2..] clusters */
  out[0]++;
  out[1] += (uint32_t)user;
  for (size_t i = 0; i < m; i++) out[2 + out[0] * 8 + i] = rt_ev_c(&s[i]);
}

Test(eval, sequences_follow_the_refresh_rules_and_one_event_users_give_none) {
  /* user 7: 1 1 2 3 (dedup: 1 2 3); user 8: one event; user 9: 4 5 (short) */
  rt_ev ev[] = {rt_ev_make(7, 10, 1, 0), rt_ev_make(7, 20, 1, 0), rt_ev_make(7, 30, 2, 0), rt_ev_make(7, 40, 3, 0),
                rt_ev_make(8, 10, 4, 0), rt_ev_make(9, 10, 4, 0), rt_ev_make(9, 20, 5, 0)};
  rt_seq_opts o = {0, 3, 0, 0};
  rt_seq_stats st = {0};
  uint32_t out[64] = {0};
  rt_sequence_all_each(ev, 7, &o, collect_seq, out, &st);
  cr_assert_eq(out[0], 1, "one kept sequence");
  cr_assert_eq(out[1], 7, "of user 7");
  cr_assert_eq(out[2 + 8], 1);
  cr_assert_eq(out[2 + 9], 2);
  cr_assert_eq(out[2 + 10], 3);
  cr_assert_eq(st.users, 3);
  cr_assert_eq(st.short_sequences, 2);
}

Test(eval, merge_and_bootstrap) {
  rt_eval_user u[3];
  memset(u, 0, sizeof u);
  /* user 5 in two records (two ranks or sequences), user 2 once */
  u[0].user = 5, u[0].f[RT_EF_POS] = 2, u[0].f[RT_EF(RT_EVAL_TABLE, RT_EK_NEXT1)] = 1;
  u[1].user = 2, u[1].f[RT_EF_POS] = 4, u[1].f[RT_EF(RT_EVAL_TABLE, RT_EK_NEXT1)] = 0;
  u[2].user = 5, u[2].f[RT_EF_POS] = 2, u[2].f[RT_EF(RT_EVAL_TABLE, RT_EK_NEXT1)] = 1;
  size_t n = rt_eval_merge_users(u, 3);
  cr_assert_eq(n, 2);
  cr_assert_eq(u[0].user, 2);
  cr_assert_eq(u[1].f[RT_EF_POS], 4);
  rt_eval_report a, b;
  rt_eval_summarize(u, n, 0, 1, &a);
  cr_assert_float_eq(a.next1[RT_EVAL_TABLE].value, 2.0 / 8, 1e-12);
  cr_assert(!a.novelty[RT_EVAL_TABLE].defined, "no covered position: novelty undefined");
  rt_eval_summarize(u, n, 500, 7, &a);
  rt_eval_summarize(u, n, 500, 7, &b);
  cr_assert(!memcmp(&a, &b, sizeof a), "same seed, same intervals");
  /* resamples are {2,2}: 0, {2,5}: 2/8, {5,5}: 1/2 -> the interval spans [0, 0.5] */
  cr_assert_float_eq(a.next1[RT_EVAL_TABLE].lo, 0.0, 1e-12);
  cr_assert_float_eq(a.next1[RT_EVAL_TABLE].hi, 0.5, 1e-12);
}
