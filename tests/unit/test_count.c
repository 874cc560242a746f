/* test_count.c — the counter (stage 5 pre-aggregation) against a plain
 * sort-and-merge of the same records, in both of its representations and
 * across many compactions. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "pipeline/count.h"

#include <omp.h>

static uint64_t rng = 88172645463325252ULL;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* spill_at > 0: the counter writes its records as runs to a temporary
 * directory beyond spill_at of them; the merged stream must be the same.
 * k > 1: the records are spread over k counters (the threads of a rank;
 * with k > 2 the last one gets none) finished together by
 * rt_counters_finish on k threads. */
static void check_counters(uint32_t ncl, size_t limit, size_t n, int weighted, size_t spill_at, int k) {
  char dir[] = "/tmp/rt-test-count-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  rt_runs *runs = rt_runs_new(dir, "t", 0, spill_at);
  rt_counter *hs[8];
  for (int j = 0; j < k; j++) {
    hs[j] = rt_counter_new(ncl, 20000, 20009);
    rt_counter_set_limit(hs[j], limit);
    if (spill_at) rt_counter_spill_to(hs[j], runs, spill_at);
  }
  rt_count_vec ref = {0};
  for (size_t i = 0; i < n; i++) {
    /* skewed so that many records repeat */
    uint32_t c1 = (uint32_t)(next_rand() % 7), c2 = (uint32_t)(next_rand() % (ncl < 50 ? ncl : 50));
    uint32_t c3 = (uint32_t)(next_rand() % ncl);
    int32_t day = 20000 + (int32_t)(next_rand() % 10);
    uint32_t win = (uint32_t)(next_rand() % 2);
    uint64_t cnt = weighted && i % 5 == 0 ? 1 + next_rand() % 9 : 1;
    uint64_t key = rt_triple_key(c1, c2, c3);
    rt_counter_add(hs[k > 2 ? next_rand() % (unsigned)(k - 1) : next_rand() % (unsigned)k], key, day, win, cnt);
    rt_vec_push(&ref, ((rt_count){key, day, win, cnt}));
  }
  rt_err err = {0};
  if (k == 1) {
    cr_assert_eq(rt_counter_finish(hs[0], runs, &err), RT_OK, "%s", err.msg);
  } else {
    omp_set_num_threads(k);
    cr_assert_eq(rt_counters_finish(hs, k, runs, &err), RT_OK, "%s", err.msg);
  }
  if (spill_at) cr_assert_gt(rt_runs_files(runs), 1, "the counter spilled");
  rt_count_vec got = {0};
  rt_vec_reserve(&got, n + 1);
  long r;
  while ((r = rt_runs_read(runs, got.data + got.len, 1000, &err)) > 0) got.len += (size_t)r;
  cr_assert_eq(r, 0, "%s", err.msg);
  rt_runs_free(runs);
  if (spill_at) cr_assert_neq(access(dir, F_OK), 0, "run files and their directory removed");
  rmdir(dir);
  rt_counts_reduce(&ref);
  cr_assert_eq(got.len, ref.len, "distinct records: %zu vs %zu", got.len, ref.len);
  uint64_t total = 0;
  for (size_t i = 0; i < got.len; i++) {
    cr_assert_eq(got.data[i].key, ref.data[i].key, "record %zu", i);
    cr_assert_eq(got.data[i].day, ref.data[i].day, "record %zu", i);
    cr_assert_eq(got.data[i].win, ref.data[i].win, "record %zu", i);
    cr_assert_eq(got.data[i].n, ref.data[i].n, "record %zu", i);
    total += got.data[i].n;
  }
  cr_assert_gt(total, n - 1);
  free(got.data);
  free(ref.data);
}

static void check_against_reference_spill(uint32_t ncl, size_t limit, size_t n, int weighted, size_t spill_at) {
  check_counters(ncl, limit, n, weighted, spill_at, 1);
}
static void check_against_reference(uint32_t ncl, size_t limit, size_t n, int weighted) {
  check_counters(ncl, limit, n, weighted, 0, 1);
}

/* The counters of a rank's threads, finished as one sorted run: merged by
 * key range on k threads, whatever the range cuts (2, 3 and 7 counters). */
Test(count, thread_counters_finish_as_one_run) {
  for (int k = 2; k <= 7; k += k == 3 ? 4 : 1) check_counters(1000, 1 << 20, 150000, 1, 0, k);
}
Test(count, thread_counters_that_spill) { check_counters(1000, 997, 200000, 1, 5000, 3); }
Test(count, thread_counters_of_huge_catalogs) { check_counters(1000000, 4096, 60000, 1, 0, 2); }

Test(count, compact_counter_spills_sorted_runs) { check_against_reference_spill(1000, 997, 200000, 1, 5000); }

Test(count, wide_counter_spills_sorted_runs) { check_against_reference_spill(1000000, 4096, 60000, 1, 3000); }

Test(count, compact_counter_matches_reference_across_compactions) {
  check_against_reference(1000, 997, 200000, 0); /* ~200 compactions */
}

Test(count, compact_counter_with_weighted_adds) { check_against_reference(300, 5000, 60000, 1); }

Test(count, wide_counter_for_huge_catalogs) {
  /* 1,000,000 clusters do not fit the packed key: the rt_count path */
  check_against_reference(1000000, 4096, 60000, 1);
}
