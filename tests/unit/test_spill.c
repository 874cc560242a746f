/* test_spill.c — the event store between the shuffle and sequencing: every
 * event lands in its user's bucket exactly once, whether added as one array,
 * in parts by several threads, or spilled to files under a budget. */
#include <criterion/criterion.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/sequence.h"
#include "pipeline/spill.h"

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static rt_ev *random_events(size_t n, uint64_t users) {
  rt_ev *ev = malloc(n * sizeof *ev);
  for (size_t i = 0; i < n; i++)
    ev[i] = rt_ev_make(next_rand() % users, (uint32_t)(next_rand() % 1000000), (uint32_t)(next_rand() % 500),
                       (uint32_t)(next_rand() % 2));
  return ev;
}

/* Take every bucket; check no user spans two buckets, and that the events
 * taken are exactly `ev` (as a multiset). */
typedef struct {
  uint64_t user, bucket;
} ub;
static int cmp_ub(const void *a, const void *b) {
  const ub *x = a, *y = b;
  return x->user != y->user ? (x->user < y->user ? -1 : 1) : (x->bucket > y->bucket) - (x->bucket < y->bucket);
}

static void check_store(rt_spill *s, const rt_ev *ev, size_t n) {
  rt_ev *got = malloc((n + 1) * sizeof *got);
  ub *where = malloc((n + 1) * sizeof *where);
  size_t ngot = 0;
  rt_ev_vec b = {0};
  rt_err err = {0};
  for (size_t k = 0; k < s->nbuckets; k++) {
    cr_assert_eq(rt_spill_take(s, k, &b, &err), RT_OK, "%s", err.msg);
    cr_assert_leq(ngot + b.len, n, "more events taken than added");
    memcpy(got + ngot, b.data, b.len * sizeof *got);
    for (size_t i = 0; i < b.len; i++) where[ngot + i] = (ub){b.data[i].user, k};
    ngot += b.len;
  }
  free(b.data);
  cr_assert_eq(ngot, n, "events taken: %zu of %zu", ngot, n);
  qsort(where, n, sizeof *where, cmp_ub);
  for (size_t i = 1; i < n; i++)
    if (where[i].user == where[i - 1].user)
      cr_assert_eq(where[i].bucket, where[i - 1].bucket, "user %llu in two buckets",
                   (unsigned long long)where[i].user);
  qsort(got, n, sizeof *got, rt_ev_order);
  rt_ev *want = malloc((n + 1) * sizeof *want);
  memcpy(want, ev, n * sizeof *want);
  qsort(want, n, sizeof *want, rt_ev_order);
  cr_assert_eq(memcmp(got, want, n * sizeof *got), 0, "the events taken are the events added");
  free(want);
  free(where);
  free(got);
}

Test(spill, one_array_on_several_threads) {
  omp_set_num_threads(3);
  size_t n = 200000;
  rt_ev *ev = random_events(n, 7000);
  rt_spill s;
  rt_spill_init(&s, 64, 0, "", 0);
  rt_err err = {0};
  cr_assert_eq(rt_spill_add(&s, ev, n / 2, &err), RT_OK);
  cr_assert_eq(rt_spill_add(&s, ev + n / 2, n - n / 2, &err), RT_OK);
  check_store(&s, ev, n);
  rt_spill_free(&s);
  free(ev);
}

Test(spill, parts_of_unequal_size_including_empty) {
  omp_set_num_threads(4);
  size_t n = 90000;
  rt_ev *ev = random_events(n, 3000);
  rt_spill s;
  rt_spill_init(&s, 37, 0, "", 0);
  rt_spill_reserve(&s, 1000); /* too small: buckets must still grow */
  const rt_ev *part[4] = {ev, ev + 10, ev + 10, ev + 60000};
  size_t len[4] = {10, 0, 59990, 30000};
  rt_err err = {0};
  cr_assert_eq(rt_spill_add_parts(&s, part, len, 4, &err), RT_OK);
  check_store(&s, ev, n);
  rt_spill_free(&s);
  free(ev);
}

Test(spill, over_budget_buckets_go_to_files_and_come_back) {
  omp_set_num_threads(2);
  char dir[] = "/tmp/rt-test-spill-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  size_t n = 120000;
  rt_ev *ev = random_events(n, 5000);
  rt_spill s;
  rt_spill_init(&s, 16, 10000, dir, 0);
  rt_err err = {0};
  for (size_t off = 0; off < n; off += 7000) /* batches, as the read loop adds them */
    cr_assert_eq(rt_spill_add(&s, ev + off, n - off < 7000 ? n - off : 7000, &err), RT_OK, "%s", err.msg);
  cr_assert_gt(s.spilled, 0, "the store spilled");
  check_store(&s, ev, n);
  rt_spill_free(&s);
  cr_assert_neq(access(dir, F_OK), 0, "spill files and their directory removed");
  rmdir(dir);
  free(ev);
}
