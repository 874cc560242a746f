/* test_retrieve.c — counting and retrieval on hand-computed counts (paper §2.3). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/count.h"
#include "rag/retrieve.h"

static rt_count_vec counts_of(const rt_count *c, size_t n) {
  /* through the counter, as the pipeline does: splits and merges */
  rt_counter *h = rt_counter_new(10, 90, 120);
  for (size_t i = 0; i < n; i++) rt_counter_add(h, c[i].key, c[i].day, c[i].win, c[i].n);
  rt_runs *runs = rt_runs_new("/tmp", "unused", 0, 0); /* no budget: stays in memory */
  rt_err err = {0};
  cr_assert_eq(rt_counter_finish(h, runs, &err), RT_OK);
  rt_count_vec v = {0};
  rt_vec_reserve(&v, n + 1);
  long k;
  while ((k = rt_runs_read(runs, v.data + v.len, n + 1, &err)) > 0) v.len += (size_t)k;
  rt_runs_free(runs);
  return v;
}

Test(retrieve, paper_example_top1_is_most_frequent) {
  /* {(c1,c2,c3): 10, (c1,c2,c4): 8, (c1,c2,c5): 2} -> c3; counts spread over days */
  rt_count in[] = {{rt_triple_key(1, 2, 3), 100, 0, 6}, {rt_triple_key(1, 2, 3), 101, 0, 4},
                   {rt_triple_key(1, 2, 4), 100, 0, 8}, {rt_triple_key(1, 2, 5), 102, 0, 2},
                   {rt_triple_key(7, 2, 1), 100, 0, 1}};
  rt_count_vec v = counts_of(in, 5);
  cr_assert_eq(v.len, 5);
  rt_config cfg;
  rt_config_defaults(&cfg);
  rt_retrieval r;
  rt_retrieve(v.data, v.len, &cfg, &r);
  cr_assert_eq(r.ctx.len, 2);
  cr_assert_eq(r.ctx.data[0].pair, (1u << 20) | 2);
  cr_assert_eq(r.ctx.data[0].total, 20);
  cr_assert_eq(r.ctx.data[0].n, 1);
  cr_assert_eq(r.next.data[r.ctx.data[0].off], 3);
  cr_assert_eq(r.score.data[r.ctx.data[0].off], 10);
  cr_assert_eq(r.ctx.data[1].pair, (7u << 20) | 2);
  rt_retrieval_free(&r);
  cfg.top_n = 5;
  rt_retrieve(v.data, v.len, &cfg, &r);
  cr_assert_eq(r.ctx.data[0].n, 3);
  cr_assert_eq(r.next.data[0], 3);
  cr_assert_eq(r.next.data[1], 4);
  cr_assert_eq(r.next.data[2], 5);
  rt_retrieval_free(&r);
  free(v.data);
  rt_config_free(&cfg);
}

Test(retrieve, ties_go_to_the_smaller_cluster) {
  rt_count in[] = {{rt_triple_key(1, 2, 9), 100, 0, 5}, {rt_triple_key(1, 2, 4), 100, 0, 5},
                   {rt_triple_key(1, 2, 6), 100, 0, 5}};
  rt_count_vec v = counts_of(in, 3);
  rt_config cfg;
  rt_config_defaults(&cfg);
  cfg.top_n = 2;
  rt_retrieval r;
  rt_retrieve(v.data, v.len, &cfg, &r);
  cr_assert_eq(r.ctx.data[0].n, 2);
  cr_assert_eq(r.next.data[0], 4);
  cr_assert_eq(r.next.data[1], 6);
  rt_retrieval_free(&r);
  free(v.data);
  rt_config_free(&cfg);
}

Test(retrieve, trend_ranks_by_increase_over_previous_window) {
  /* c3: 10 now, 9 before (+1); c4: 6 now, 0 before (+6); c5: 2 now, 5 before (-3) */
  rt_count in[] = {{rt_triple_key(1, 2, 3), 110, 0, 10}, {rt_triple_key(1, 2, 3), 103, 1, 9},
                   {rt_triple_key(1, 2, 4), 111, 0, 6},  {rt_triple_key(1, 2, 5), 110, 0, 2},
                   {rt_triple_key(1, 2, 5), 104, 1, 5},  {rt_triple_key(8, 9, 1), 104, 1, 5}};
  rt_count_vec v = counts_of(in, 6);
  rt_config cfg;
  rt_config_defaults(&cfg);
  free(cfg.retrieval_mode);
  cfg.retrieval_mode = strdup("trend");
  cfg.top_n = 3;
  rt_retrieval r;
  rt_retrieve(v.data, v.len, &cfg, &r);
  cr_assert_eq(r.ctx.len, 1, "a pair with only previous-window data has no fresh context");
  cr_assert_eq(r.ctx.data[0].total, 18);
  cr_assert_eq(r.ctx.data[0].n, 2, "only rises are retrieved");
  cr_assert_eq(r.next.data[0], 4);
  cr_assert_eq(r.score.data[0], 6);
  cr_assert_eq(r.next.data[1], 3);
  cr_assert_eq(r.score.data[1], 1);
  rt_retrieval_free(&r);
  free(v.data);
  rt_config_free(&cfg);
}

Test(count, reduce_merges_equal_records_in_order) {
  rt_count_vec v = {0};
  rt_count a[] = {{rt_triple_key(2, 1, 3), 5, 0, 1}, {rt_triple_key(1, 2, 3), 5, 0, 2},
                  {rt_triple_key(2, 1, 3), 5, 0, 4}, {rt_triple_key(1, 2, 3), 4, 0, 1}};
  for (int i = 0; i < 4; i++) rt_vec_push(&v, a[i]);
  rt_counts_reduce(&v);
  cr_assert_eq(v.len, 3);
  cr_assert_eq(v.data[0].key, rt_triple_key(1, 2, 3));
  cr_assert_eq(v.data[0].day, 4);
  cr_assert_eq(v.data[1].day, 5);
  cr_assert_eq(v.data[1].n, 2);
  cr_assert_eq(v.data[2].n, 5);
  free(v.data);
}

Test(count, key_packing_round_trips) {
  uint64_t k = rt_triple_key(999999, 12345, 7);
  cr_assert_eq(rt_pair_c1(rt_key_pair(k)), 999999);
  cr_assert_eq(rt_pair_c2(rt_key_pair(k)), 12345);
  cr_assert_eq(rt_key_next(k), 7);
}

/* ---- collective parts, on one rank (Criterion runs MPI as a singleton) ---- */
#include <mpi.h>

static void mpi_up(void) {
  int up;
  MPI_Initialized(&up);
  if (!up) MPI_Init(NULL, NULL);
}

Test(retrieve, global_top_triples_by_window_count) {
  mpi_up();
  /* window counts: (1,2,3)=7 (two days), (4,5,6)=9, (7,8,9)=7, previous-window (1,2,4)=50 ignored */
  rt_count in[] = {{rt_triple_key(1, 2, 3), 100, 0, 4}, {rt_triple_key(1, 2, 3), 101, 0, 3},
                   {rt_triple_key(1, 2, 4), 99, 1, 50}, {rt_triple_key(4, 5, 6), 100, 0, 9},
                   {rt_triple_key(7, 8, 9), 100, 0, 7}};
  rt_count_vec v = counts_of(in, 5);
  rt_triple_count *top;
  size_t n;
  rt_retrieve_global(v.data, v.len, 2, MPI_COMM_WORLD, &top, &n);
  cr_assert_eq(n, 2);
  cr_assert_eq(top[0].key, rt_triple_key(4, 5, 6));
  cr_assert_eq(top[0].n, 9);
  cr_assert_eq(top[1].key, rt_triple_key(1, 2, 3), "ties (7 and 7) go to the smaller triple");
  cr_assert_eq(top[1].n, 7);
  free(top);
  free(v.data);
  MPI_Finalize();
}

Test(retrieve, popular_clusters_by_watch_count) {
  mpi_up();
  uint64_t watch[6] = {5, 0, 9, 5, 1, 0};
  uint32_t out[4];
  size_t n = rt_retrieve_popular(watch, 6, 4, MPI_COMM_WORLD, out);
  cr_assert_eq(n, 4);
  cr_assert_eq(out[0], 2);
  cr_assert_eq(out[1], 0, "ties go to the smaller index");
  cr_assert_eq(out[2], 3);
  cr_assert_eq(out[3], 4);
  cr_assert_eq(rt_retrieve_popular(watch, 6, 10, MPI_COMM_WORLD, out), 4, "never-watched clusters are not popular");
  MPI_Finalize();
}
