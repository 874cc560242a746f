/* test_drift.c — periods, top-k successor sets and the drift statistics of
 * `ragtide drift` (src/rag/successors.h), on hand-computed examples. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/count.h"
#include "rag/successors.h"

#define EPS 1e-12
#define JAN1 20454 /* 2026-01-01 */
#define FEB1 20485 /* 2026-02-01 */

static rt_count R(uint32_t c1, uint32_t c2, uint32_t c3, int32_t day, uint64_t n) {
  return (rt_count){rt_triple_key(c1, c2, c3), day, 0, n};
}

static void expect_set(const rt_succ *s, int32_t period, uint32_t c1, uint32_t c2, const uint32_t *want,
                       uint32_t nwant) {
  const rt_topk *t = rt_succ_find(s, period, rt_triple_key(c1, c2, 0) >> RT_KEY_BITS);
  if (!nwant) {
    cr_assert_null(t, "pair (%u, %u) in period %d should have no set", c1, c2, period);
    return;
  }
  cr_assert_not_null(t, "pair (%u, %u) has no set in period %d", c1, c2, period);
  cr_assert_eq(t->n, nwant, "pair (%u, %u) period %d: %u successors, want %u", c1, c2, period, t->n, nwant);
  for (uint32_t i = 0; i < nwant; i++)
    cr_assert_eq(s->next[t->off + i], want[i], "pair (%u, %u) period %d rank %u: %u, want %u", c1, c2, period, i,
                 s->next[t->off + i], want[i]);
}

/* Two months, four pairs (k = 5):
 *   A (0,1): Jan {2:10 3:9 4:8 5:7 6:6 7:5} -> [2 3 4 5 6]; Feb 2..6 -> same: J = 1
 *   B (1,2): Jan {3:5 4:5 5:1} -> [3 4 5] (tie -> smaller id);
 *            Feb {5:3 6:2 7..10:1} -> [5 6 7 8 9]: J = 1/7
 *   C (2,3): Jan [0], Feb [1]: J = 0
 *   D (3,4): Jan [0] only: not in the step.
 * mean = 8/21, population variance = 86/441. */
static size_t example(rt_count *r) {
  size_t n = 0;
  /* A, with one successor's count split over two days (merged per period) */
  r[n++] = R(0, 1, 2, JAN1 + 2, 6);
  r[n++] = R(0, 1, 2, JAN1 + 19, 4);
  r[n++] = R(0, 1, 3, JAN1, 9);
  r[n++] = R(0, 1, 4, JAN1 + 30, 8);
  r[n++] = R(0, 1, 5, JAN1 + 5, 7);
  r[n++] = R(0, 1, 6, JAN1 + 5, 6);
  r[n++] = R(0, 1, 7, JAN1 + 5, 5);
  for (uint32_t c = 2; c <= 6; c++) r[n++] = R(0, 1, c, FEB1 + 3, 7 - c);
  /* B: the tied successor with the larger id comes first in the input */
  r[n++] = R(1, 2, 4, JAN1 + 1, 5);
  r[n++] = R(1, 2, 3, JAN1 + 1, 5);
  r[n++] = R(1, 2, 5, JAN1 + 1, 1);
  r[n++] = R(1, 2, 10, FEB1, 1);
  r[n++] = R(1, 2, 9, FEB1, 1);
  r[n++] = R(1, 2, 8, FEB1 + 27, 1);
  r[n++] = R(1, 2, 7, FEB1, 1);
  r[n++] = R(1, 2, 6, FEB1, 2);
  r[n++] = R(1, 2, 5, FEB1, 3);
  /* C, plus a previous-window record that must be ignored */
  r[n++] = R(2, 3, 0, JAN1 + 9, 4);
  r[n++] = (rt_count){rt_triple_key(2, 3, 1), JAN1 + 9, 1, 100};
  r[n++] = R(2, 3, 1, FEB1 + 9, 2);
  /* D */
  r[n++] = R(3, 4, 0, JAN1 + 9, 1);
  return n;
}

Test(drift, monthly_sets_with_tie_rule) {
  rt_count r[64];
  size_t n = example(r);
  rt_periods p;
  rt_err err = {0};
  cr_assert_eq(rt_periods_parse("month", &p, &err), RT_OK);
  p.anchor = JAN1 + 5; /* any day of January: months are calendar months */
  rt_succ s;
  cr_assert_eq(rt_succ_build(r, n, &p, 5, 1, &s, &err), RT_OK, "%s", err.msg);
  cr_assert_eq(s.n_periods, 2);
  cr_assert_eq(s.begin[1] - s.begin[0], 4, "January pairs");
  cr_assert_eq(s.begin[2] - s.begin[1], 3, "February pairs");
  expect_set(&s, 0, 0, 1, (uint32_t[]){2, 3, 4, 5, 6}, 5);
  expect_set(&s, 1, 0, 1, (uint32_t[]){2, 3, 4, 5, 6}, 5);
  expect_set(&s, 0, 1, 2, (uint32_t[]){3, 4, 5}, 3);
  expect_set(&s, 1, 1, 2, (uint32_t[]){5, 6, 7, 8, 9}, 5);
  expect_set(&s, 0, 2, 3, (uint32_t[]){0}, 1);
  expect_set(&s, 1, 2, 3, (uint32_t[]){1}, 1);
  expect_set(&s, 1, 3, 4, NULL, 0);
  const rt_topk *a = rt_succ_find(&s, 0, rt_key_pair(rt_triple_key(0, 1, 0)));
  cr_assert_eq(a->total, 10 + 9 + 8 + 7 + 6 + 5, "A's January total counts every successor");
  cr_assert_eq(s.count[a->off], 10, "A's best successor merges its two days");
  rt_succ_free(&s);
}

Test(drift, jaccard_mean_variance_and_overlap) {
  rt_count r[64];
  size_t n = example(r);
  rt_periods p = {RT_PERIOD_MONTH, 0, JAN1};
  rt_err err = {0};
  rt_succ s;
  cr_assert_eq(rt_succ_build(r, n, &p, 5, 1, &s, &err), RT_OK, "%s", err.msg);
  rt_drift d;
  rt_drift_compute(&s, &d);
  cr_assert_eq(d.n_periods, 2);
  cr_assert_eq(d.period_pairs[0], 4);
  cr_assert_eq(d.period_pairs[1], 3);
  cr_assert_eq(d.steps[0].pairs, 3);
  cr_assert_float_eq(d.steps[0].mean, 8.0 / 21, EPS, "mean %.15f", d.steps[0].mean);
  cr_assert_float_eq(d.steps[0].variance, 86.0 / 441, EPS, "variance %.15f", d.steps[0].variance);
  cr_assert_eq(d.overall.pairs, 3);
  cr_assert_float_eq(d.overall.mean, 8.0 / 21, EPS);
  cr_assert_float_eq(d.overall.variance, 86.0 / 441, EPS);
  /* Figure 3(b): overlap with January. January with itself counts |top-k'| / k'
   * (A: 5 successors, B: 3, C and D: 1). */
  double jan[5] = {1, 0.75, 2.0 / 3, 0.5625, 0.5};
  double feb[5] = {1.0 / 3, 1.0 / 3, 4.0 / 9, 5.0 / 12, 2.0 / 5};
  cr_assert_eq(d.overlap_pairs[0], 4);
  cr_assert_eq(d.overlap_pairs[1], 3);
  for (int k = 0; k < 5; k++) {
    cr_assert_float_eq(d.overlap[k], jan[k], EPS, "Jan k'=%d: %f", k + 1, d.overlap[k]);
    cr_assert_float_eq(d.overlap[5 + k], feb[k], EPS, "Feb k'=%d: %f", k + 1, d.overlap[5 + k]);
  }
  rt_drift_free(&d);
  rt_succ_free(&s);
}

Test(drift, min_count_drops_rare_successors) {
  rt_count r[64];
  size_t n = example(r);
  rt_periods p = {RT_PERIOD_MONTH, 0, JAN1};
  rt_err err = {0};
  rt_succ s;
  cr_assert_eq(rt_succ_build(r, n, &p, 5, 2, &s, &err), RT_OK, "%s", err.msg);
  expect_set(&s, 0, 1, 2, (uint32_t[]){3, 4}, 2);
  expect_set(&s, 1, 1, 2, (uint32_t[]){5, 6}, 2);
  expect_set(&s, 1, 0, 1, (uint32_t[]){2, 3, 4, 5}, 4);
  expect_set(&s, 0, 3, 4, NULL, 0); /* its only successor was seen once */
  rt_drift d;
  rt_drift_compute(&s, &d);
  /* A: {2..6} vs {2..5}: 4/5; B: {3,4} vs {5,6}: 0; C: 0 -> mean 4/15, variance 32/225 */
  cr_assert_eq(d.steps[0].pairs, 3);
  cr_assert_float_eq(d.steps[0].mean, 4.0 / 15, EPS);
  cr_assert_float_eq(d.steps[0].variance, 32.0 / 225, EPS);
  rt_drift_free(&d);
  rt_succ_free(&s);
}

Test(drift, jaccard_values) {
  uint32_t a[] = {1, 2, 3}, b[] = {3, 4}, c[] = {2, 1, 3};
  cr_assert_float_eq(rt_jaccard(a, 3, b, 2), 1.0 / 4, EPS);
  cr_assert_float_eq(rt_jaccard(a, 3, c, 3), 1.0, EPS, "order does not matter");
  cr_assert_float_eq(rt_jaccard(a, 3, NULL, 0), 0.0, EPS);
  cr_assert_float_eq(rt_jaccard(NULL, 0, NULL, 0), 1.0, EPS);
}

Test(drift, period_parsing) {
  rt_periods p;
  rt_err err = {0};
  cr_assert_eq(rt_periods_parse("week", &p, &err), RT_OK);
  cr_assert_eq(p.kind, RT_PERIOD_DAYS);
  cr_assert_eq(p.days, 7);
  cr_assert_eq(rt_periods_parse("10d", &p, &err), RT_OK);
  cr_assert_eq(p.days, 10);
  cr_assert_eq(rt_periods_parse("month", &p, &err), RT_OK);
  cr_assert_eq(p.kind, RT_PERIOD_MONTH);
  const char *bad[] = {"0d", "d", "-3d", "+3d", "3", "3dd", "months", "", "99999999999d"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memset(&err, 0, sizeof err);
    cr_assert_eq(rt_periods_parse(bad[i], &p, &err), RT_ERR_USAGE, "accepted \"%s\"", bad[i]);
    cr_assert(strstr(err.msg, "--period"), "message lacks the flag: %s", err.msg);
  }
}

Test(drift, calendar_months) {
  rt_periods p = {RT_PERIOD_MONTH, 0, JAN1 + 14};
  cr_assert_eq(rt_period_of(&p, JAN1 - 1), -1, "2025-12-31");
  cr_assert_eq(rt_period_of(&p, JAN1), 0);
  cr_assert_eq(rt_period_of(&p, FEB1 - 1), 0, "2026-01-31");
  cr_assert_eq(rt_period_of(&p, FEB1), 1);
  cr_assert_eq(rt_period_of(&p, FEB1 + 27), 1, "2026-02-28");
  cr_assert_eq(rt_period_of(&p, FEB1 + 28), 2, "2026-03-01");
  cr_assert_eq(rt_period_of(&p, JAN1 + 365 + 14), 12, "2027-01-15");
  int32_t f, e;
  rt_period_bounds(&p, 1, &f, &e);
  cr_assert_eq(f, FEB1);
  cr_assert_eq(e, FEB1 + 28);
  rt_period_bounds(&p, 11, &f, &e);
  cr_assert_eq(e, JAN1 + 365, "December ends on 2027-01-01");
  char buf[32];
  rt_period_name(&p, 11, buf, sizeof buf);
  cr_assert_str_eq(buf, "2026-12");
  rt_period_name(&p, 12, buf, sizeof buf);
  cr_assert_str_eq(buf, "2027-01");
  rt_period_name(&p, -1, buf, sizeof buf);
  cr_assert_str_eq(buf, "2025-12");
  /* A leap February: 2024-02 has 29 days. */
  int32_t d;
  cr_assert_eq(rt_day_parse("2024-02-10", &d), 0);
  rt_periods leap = {RT_PERIOD_MONTH, 0, d};
  rt_period_bounds(&leap, 0, &f, &e);
  cr_assert_eq(e - f, 29);
  rt_day_format(f, buf, sizeof buf);
  cr_assert_str_eq(buf, "2024-02-01");
  rt_day_format(e, buf, sizeof buf);
  cr_assert_str_eq(buf, "2024-03-01");
  cr_assert_eq(rt_day_parse("2026-01-01", &d), 0);
  cr_assert_eq(d, JAN1);
  cr_assert_eq(rt_day_parse("2026-01-01T00:00:00Z", &d), -1, "a date, not a timestamp");
  cr_assert_eq(rt_day_parse("2026-13-01", &d), -1);
}

Test(drift, day_blocks) {
  rt_periods p;
  rt_err err = {0};
  cr_assert_eq(rt_periods_parse("10d", &p, &err), RT_OK);
  p.anchor = JAN1;
  cr_assert_eq(rt_period_of(&p, JAN1 + 9), 0);
  cr_assert_eq(rt_period_of(&p, JAN1 + 10), 1);
  cr_assert_eq(rt_period_of(&p, JAN1 - 1), -1);
  char buf[32];
  rt_period_name(&p, 2, buf, sizeof buf);
  cr_assert_str_eq(buf, "2026-01-21");
  /* One pair over three 10-day blocks; a gap block in the middle for another. */
  rt_count r[] = {R(0, 1, 2, JAN1, 3),      R(0, 1, 3, JAN1 + 9, 1), R(0, 1, 3, JAN1 + 10, 5),
                  R(0, 1, 2, JAN1 + 12, 1), R(0, 1, 2, JAN1 + 25, 2), R(5, 6, 7, JAN1 + 1, 1),
                  R(5, 6, 7, JAN1 + 29, 1)};
  rt_succ s;
  cr_assert_eq(rt_succ_build(r, sizeof r / sizeof r[0], &p, 1, 1, &s, &err), RT_OK, "%s", err.msg);
  cr_assert_eq(s.n_periods, 3);
  expect_set(&s, 0, 0, 1, (uint32_t[]){2}, 1);
  expect_set(&s, 1, 0, 1, (uint32_t[]){3}, 1);
  expect_set(&s, 2, 0, 1, (uint32_t[]){2}, 1);
  expect_set(&s, 1, 5, 6, NULL, 0);
  rt_drift d;
  rt_drift_compute(&s, &d);
  cr_assert_eq(d.steps[0].pairs, 1);
  cr_assert_float_eq(d.steps[0].mean, 0.0, EPS);
  cr_assert_eq(d.steps[1].pairs, 1, "(5,6) has no set in block 1, so it is in no step");
  cr_assert_float_eq(d.steps[1].mean, 0.0, EPS);
  cr_assert_eq(d.overall.pairs, 2);
  cr_assert_eq(d.overlap_pairs[2], 2, "both pairs have sets in blocks 0 and 2");
  cr_assert_float_eq(d.overlap[2], 1.0, EPS, "both keep their top-1 from block 0");
  rt_drift_free(&d);
  rt_succ_free(&s);
}

Test(drift, corrupt_day_is_an_input_error) {
  rt_count r[] = {R(0, 1, 2, JAN1, 3), R(0, 1, 2, 2000000000, 1)};
  rt_periods p = {RT_PERIOD_DAYS, 1, JAN1};
  rt_err err = {0};
  rt_succ s;
  cr_assert_eq(rt_succ_build(r, 2, &p, 5, 1, &s, &err), RT_ERR_INPUT);
  cr_assert(strstr(err.msg, "record 1"), "%s", err.msg);
  cr_assert_eq(rt_succ_build(r, 1, &p, 0, 1, &s, &err), RT_ERR_USAGE, "k = 0");
}

Test(drift, empty_input) {
  rt_periods p = {RT_PERIOD_MONTH, 0, JAN1};
  rt_err err = {0};
  rt_succ s;
  cr_assert_eq(rt_succ_build(NULL, 0, &p, 5, 1, &s, &err), RT_OK);
  cr_assert_eq(s.n_periods, 0);
  cr_assert_eq(s.n_sets, 0);
  rt_drift d;
  rt_drift_compute(&s, &d);
  cr_assert_eq(d.overall.pairs, 0);
  cr_assert_float_eq(d.overall.mean, 0.0, EPS);
  rt_drift_free(&d);
  rt_succ_free(&s);
  int32_t f, l;
  rt_count only_prev = {rt_triple_key(0, 1, 2), JAN1, 1, 4};
  cr_assert_eq(rt_counts_day_range(&only_prev, 1, &f, &l), 0, "previous-window records do not count");
}

static int by_key_day(const void *a, const void *b) {
  const rt_count *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  return x->day < y->day ? -1 : x->day > y->day;
}

/* The streamed builder (as `ragtide drift` feeds it from a counts file, in
 * chunks that cut pairs anywhere) gives the very sets of rt_succ_build, and
 * refuses records out of pair order. */
Test(drift, streamed_builder_in_chunks_equals_build) {
  rt_count r[64];
  size_t n = example(r);
  qsort(r, n, sizeof *r, by_key_day); /* the order of a counts file */
  rt_periods p = {RT_PERIOD_MONTH, 0, JAN1};
  rt_err err = {0};
  rt_succ want;
  cr_assert_eq(rt_succ_build(r, n, &p, 5, 1, &want, &err), RT_OK, "%s", err.msg);
  for (size_t chunk = 1; chunk <= n; chunk++) {
    rt_succ_builder *b = rt_succ_builder_new(&p, 5, 1);
    for (size_t off = 0; off < n; off += chunk)
      cr_assert_eq(rt_succ_builder_add(b, r + off, n - off < chunk ? n - off : chunk, &err), RT_OK, "%s", err.msg);
    rt_succ got;
    rt_succ_builder_finish(b, &got);
    cr_assert_eq(got.n_periods, want.n_periods);
    cr_assert_eq(got.n_sets, want.n_sets, "chunk %zu", chunk);
    for (size_t i = 0; i < want.n_sets; i++) {
      const rt_topk *g = &got.sets[i], *w = &want.sets[i];
      cr_assert(g->pair == w->pair && g->period == w->period && g->n == w->n && g->total == w->total,
                "set %zu, chunk %zu", i, chunk);
      for (uint32_t q = 0; q < w->n; q++) {
        cr_assert_eq(got.next[g->off + q], want.next[w->off + q]);
        cr_assert_eq(got.count[g->off + q], want.count[w->off + q]);
      }
    }
    for (int32_t q = 0; q <= want.n_periods; q++) cr_assert_eq(got.begin[q], want.begin[q]);
    rt_succ_free(&got);
  }
  rt_succ_free(&want);
  /* out of pair order: refused, naming the record */
  rt_count bad[2] = {R(2, 3, 0, JAN1 + 1, 1), R(0, 1, 2, JAN1 + 1, 1)};
  rt_succ_builder *b = rt_succ_builder_new(&p, 5, 1);
  cr_assert_eq(rt_succ_builder_add(b, bad, 2, &err), RT_ERR_INPUT);
  cr_assert(strstr(err.msg, "record 1") != NULL, "%s", err.msg);
  rt_succ_builder_free(b);
}
