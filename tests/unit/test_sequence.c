/* test_sequence.c — stage 4 against hand-computed histories (paper §2.4). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/sequence.h"

enum { A = 1, B = 2, C = 3, D = 4, E = 5, F = 6 };

/* An event at ts seconds (the runs below use epoch 0: t = ts). */
#define EV(user, ts, c, win) rt_ev_make((user), (uint32_t)(ts), (c), (win))

typedef struct {
  uint32_t t[64][3];
  int32_t day[64];
  int n;
} sink;

static void collect(void *ctx, uint32_t c1, uint32_t c2, uint32_t c3, int32_t day, uint32_t win) {
  (void)win;
  sink *s = ctx;
  s->t[s->n][0] = c1;
  s->t[s->n][1] = c2;
  s->t[s->n][2] = c3;
  s->day[s->n] = day;
  s->n++;
}

static sink run(rt_ev *ev, size_t n, int unique, int64_t min_len, int64_t gap, rt_seq_stats *st) {
  sink s = {0};
  rt_seq_opts o = {unique, min_len, gap, 0};
  rt_seq_stats local = {0};
  rt_sequence_all(ev, n, &o, collect, &s, st ? st : &local);
  return s;
}

#define TRIPLE(s, i, a, b, c)                                                                        \
  do {                                                                                               \
    cr_assert_eq((s).t[i][0], a);                                                                    \
    cr_assert_eq((s).t[i][1], b);                                                                    \
    cr_assert_eq((s).t[i][2], c);                                                                    \
  } while (0)

Test(sequence, consecutive_collapses_repeats_and_requires_distinct) {
  /* A A B C A D -> A B C A D -> (A,B,C) (B,C,A) (C,A,D) */
  rt_ev ev[] = {EV(1, 10, A, 0), EV(1, 20, A, 0), EV(1, 30, B, 0), EV(1, 40, C, 0), EV(1, 50, A, 0), EV(1, 60, D, 0)};
  rt_seq_stats st = {0};
  sink s = run(ev, 6, 0, 3, 0, &st);
  cr_assert_eq(s.n, 3);
  TRIPLE(s, 0, A, B, C);
  TRIPLE(s, 1, B, C, A);
  TRIPLE(s, 2, C, A, D);
  cr_assert_eq(st.users, 1);
  cr_assert_eq(st.triples, 3);
}

Test(sequence, alternating_pair_gives_no_triple) {
  rt_ev ev[] = {EV(2, 10, A, 0), EV(2, 20, B, 0), EV(2, 30, A, 0), EV(2, 40, B, 0)};
  sink s = run(ev, 4, 0, 3, 0, NULL);
  cr_assert_eq(s.n, 0);
}

Test(sequence, unique_keeps_last_occurrence) {
  /* last sightings: B@30 C@40 A@50 D@60 -> (B,C,A) (C,A,D) */
  rt_ev ev[] = {EV(1, 10, A, 0), EV(1, 20, A, 0), EV(1, 30, B, 0), EV(1, 40, C, 0), EV(1, 50, A, 0), EV(1, 60, D, 0)};
  sink s = run(ev, 6, 1, 3, 0, NULL);
  cr_assert_eq(s.n, 2);
  TRIPLE(s, 0, B, C, A);
  TRIPLE(s, 1, C, A, D);
}

Test(sequence, gap_splits_sequences) {
  rt_ev ev[] = {EV(3, 0, A, 0), EV(3, 10, B, 0), EV(3, 20, C, 0), EV(3, 100, D, 0), EV(3, 110, E, 0), EV(3, 120, F, 0)};
  rt_ev copy[6];
  memcpy(copy, ev, sizeof ev);
  rt_seq_stats st = {0};
  sink s = run(ev, 6, 0, 3, 15, &st);
  cr_assert_eq(s.n, 2);
  TRIPLE(s, 0, A, B, C);
  TRIPLE(s, 1, D, E, F);
  cr_assert_eq(st.sequences, 2);
  sink all = run(copy, 6, 0, 3, 0, NULL);
  cr_assert_eq(all.n, 4); /* A B C D E F without a gap rule */
}

Test(sequence, min_len_drops_short_sequences) {
  rt_ev ev[] = {EV(3, 0, A, 0), EV(3, 10, B, 0), EV(3, 20, C, 0), EV(3, 100, D, 0), EV(3, 110, E, 0), EV(3, 120, F, 0)};
  rt_seq_stats st = {0};
  sink s = run(ev, 6, 0, 4, 15, &st);
  cr_assert_eq(s.n, 0);
  cr_assert_eq(st.short_sequences, 2);
}

Test(sequence, order_is_by_time_then_cluster_whatever_the_input_order) {
  /* same ts 10: B(2) before C(3); input shuffled and users interleaved */
  rt_ev ev[] = {EV(9, 30, D, 0), EV(7, 5, E, 0), EV(9, 10, C, 0), EV(9, 10, B, 0), EV(9, 0, A, 0)};
  sink s = run(ev, 5, 0, 3, 0, NULL);
  cr_assert_eq(s.n, 2); /* user 9: A B C D; user 7: one event */
  TRIPLE(s, 0, A, B, C);
  TRIPLE(s, 1, B, C, D);
}

Test(sequence, triple_is_dated_by_the_first_event_of_c_next_run) {
  /* C watched first on day 5 (ts 5*86400+100), again on day 6: collapsed, day 5 */
  rt_ev ev[] = {EV(1, 86400 * 4, A, 0), EV(1, 86400 * 4 + 50, B, 0), EV(1, 86400 * 5 + 100, C, 0), EV(1, 86400 * 6, C, 0)};
  sink s = run(ev, 4, 0, 3, 0, NULL);
  cr_assert_eq(s.n, 1);
  cr_assert_eq(s.day[0], 5);
}

Test(sequence, days_count_from_the_epoch) {
  /* t is seconds since o.epoch (the start of the earliest window read) */
  rt_ev ev[] = {EV(1, 10, A, 0), EV(1, 20, B, 0), EV(1, 86400 + 35, C, 0), EV(1, 2 * 86400, D, 0)};
  sink s = {0};
  rt_seq_opts o = {0, 3, 0, 86400 * 20000 - 30}; /* day 20000 starts 30 s after the epoch */
  rt_seq_stats st = {0};
  rt_sequence_all(ev, 4, &o, collect, &s, &st);
  cr_assert_eq(s.n, 2);
  TRIPLE(s, 0, A, B, C);
  cr_assert_eq(s.day[0], 20001, "epoch + 86435 s is 5 s into day 20001, got %d", s.day[0]);
  TRIPLE(s, 1, B, C, D);
  cr_assert_eq(s.day[1], 20001, "epoch + 172800 s is still day 20001 (30 s short of 20002), got %d", s.day[1]);
}

Test(sequence, window_change_splits) {
  /* previous-window events never form triples with refresh-window events */
  rt_ev ev[] = {EV(1, 10, A, 1), EV(1, 20, B, 1), EV(1, 30, C, 0), EV(1, 40, D, 0), EV(1, 50, E, 0)};
  sink s = run(ev, 5, 0, 3, 0, NULL);
  cr_assert_eq(s.n, 1);
  TRIPLE(s, 0, C, D, E);
}

/* Many users in shuffled order: the two-level grouping (hash parts, then
 * buckets within a part) must give exactly the triples of a plain sort by
 * rt_ev_order followed by rt_sequence_user per user. Compared as a
 * multiset through an order-independent sum and count. */
typedef struct {
  uint64_t n, sum, xor_;
} digest;

static void add_digest(void *ctx, uint32_t c1, uint32_t c2, uint32_t c3, int32_t day, uint32_t win) {
  digest *d = ctx;
  uint64_t x = ((uint64_t)c1 << 44) ^ ((uint64_t)c2 << 24) ^ ((uint64_t)c3 << 4) ^ (uint64_t)day * 7919 ^ win;
  x *= 0x9e3779b97f4a7c15ULL;
  d->n++;
  d->sum += x;
  d->xor_ ^= x ^ (x >> 29);
}

Test(sequence, many_users_grouped_like_a_full_sort) {
  size_t n = 300000;
  rt_ev *ev = malloc(n * sizeof *ev), *ref = malloc(n * sizeof *ref);
  uint64_t x = 12345;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    ev[i] = EV(x % 20000 * 1000003, 1700000000 + (x >> 40) % 500000, (uint32_t)(x >> 20) % 12,
               (uint32_t)((x >> 50) % 8 == 0));
  }
  memcpy(ref, ev, n * sizeof *ev);
  qsort(ref, n, sizeof *ref, rt_ev_order);
  rt_seq_opts o = {0, 3, 100000, 0};
  rt_seq_stats s1 = {0}, s2 = {0};
  digest want = {0}, got = {0};
  rt_ev *scratch = malloc(n * sizeof *scratch);
  for (size_t i = 0, s0 = 0; i <= n; i++) {
    if (i < n && ref[i].user == ref[s0].user) continue;
    rt_sequence_user(ref + s0, i - s0, &o, scratch, add_digest, &want, &s1);
    s0 = i;
  }
  rt_sequence_all(ev, n, &o, add_digest, &got, &s2);
  cr_assert_gt(want.n, 100000, "the fixture yields triples: %llu", (unsigned long long)want.n);
  cr_assert_eq(got.n, want.n);
  cr_assert_eq(got.sum, want.sum);
  cr_assert_eq(got.xor_, want.xor_);
  cr_assert_eq(s2.users, s1.users);
  cr_assert_eq(s2.users, 20000);
  cr_assert_eq(s2.sequences, s1.sequences);
  cr_assert_eq(s2.short_sequences, s1.short_sequences);
  free(ev);
  free(ref);
  free(scratch);
}
