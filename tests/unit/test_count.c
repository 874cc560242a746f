/* test_count.c — the counter (stage 5 pre-aggregation) against a plain
 * sort-and-merge of the same records, in both of its representations and
 * across many compactions. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "pipeline/count.h"

static uint64_t rng = 88172645463325252ULL;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void check_against_reference(uint32_t ncl, size_t limit, size_t n, int weighted) {
  rt_counter *h = rt_counter_new(ncl, 20000, 20009);
  rt_counter_set_limit(h, limit);
  rt_count_vec ref = {0};
  for (size_t i = 0; i < n; i++) {
    /* skewed so that many records repeat */
    uint32_t c1 = (uint32_t)(next_rand() % 7), c2 = (uint32_t)(next_rand() % (ncl < 50 ? ncl : 50));
    uint32_t c3 = (uint32_t)(next_rand() % ncl);
    int32_t day = 20000 + (int32_t)(next_rand() % 10);
    uint32_t win = (uint32_t)(next_rand() % 2);
    uint64_t cnt = weighted && i % 5 == 0 ? 1 + next_rand() % 9 : 1;
    uint64_t key = rt_triple_key(c1, c2, c3);
    rt_counter_add(h, key, day, win, cnt);
    rt_vec_push(&ref, ((rt_count){key, day, win, cnt}));
  }
  rt_count_vec got = {0};
  rt_counter_finish(h, &got);
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

Test(count, compact_counter_matches_reference_across_compactions) {
  check_against_reference(1000, 997, 200000, 0); /* ~200 compactions */
}

Test(count, compact_counter_with_weighted_adds) { check_against_reference(300, 5000, 60000, 1); }

Test(count, wide_counter_for_huge_catalogs) {
  /* 1,000,000 clusters do not fit the packed key: the rt_count path */
  check_against_reference(1000000, 4096, 60000, 1);
}
