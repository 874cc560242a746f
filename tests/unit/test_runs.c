/* test_runs.c — count runs: whatever the budget (all in memory, or many
 * spilled runs, beyond the merge fan-in), the stream is the sorted, reduced
 * input; chunks of whole pairs cut nothing; files are removed. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/runs.h"

static uint64_t rng = 2463534242ULL;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static size_t files_in(const char *dir) {
  DIR *d = opendir(dir);
  size_t n = 0;
  for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
  if (d) closedir(d);
  return n;
}

/* n random records (few pairs, so equal records recur across runs). */
static void random_records(rt_count_vec *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint64_t key = ((next_rand() % 9) << 40) | ((next_rand() % 11) << 20) | (next_rand() % 23);
    rt_vec_push(v, ((rt_count){key, 20000 + (int32_t)(next_rand() % 3), (uint32_t)(next_rand() % 2),
                               1 + next_rand() % 4}));
  }
}

static void check(size_t mem_records, size_t n, int expect_files) {
  char dir[] = "/tmp/rt-test-runs-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  rt_runs *r = rt_runs_new(dir, "t", 3, mem_records);
  rt_count_vec in = {0};
  random_records(&in, n);
  rt_err err = {0};
  for (size_t off = 0; off < n; off += 777) /* in odd-sized pieces */
    cr_assert_eq(rt_runs_add(r, in.data + off, n - off < 777 ? n - off : 777, &err), RT_OK, "%s", err.msg);
  /* a pre-sorted run as well, as the counter hands over */
  rt_count_vec sorted = {0};
  random_records(&sorted, 1000);
  rt_counts_reduce(&sorted);
  for (size_t i = 0; i < sorted.len; i++) rt_vec_push(&in, sorted.data[i]);
  cr_assert_eq(rt_runs_put(r, &sorted, &err), RT_OK);
  cr_assert_eq(sorted.len, 0, "put takes the vector over");
  if (expect_files) cr_assert_gt(files_in(dir), 64, "more runs than the fan-in: %zu", files_in(dir));
  else cr_assert_eq(files_in(dir), 0);
  rt_counts_reduce(&in);

  /* 1. the merged stream in small reads */
  rt_count buf[100];
  size_t at = 0;
  long k;
  uint64_t total_ref = 0, total = 0;
  for (size_t i = 0; i < in.len; i++) total_ref += in.data[i].n;
  while ((k = rt_runs_read(r, buf, 100, &err)) > 0)
    for (long i = 0; i < k; i++, at++) {
      cr_assert_lt(at, in.len);
      cr_assert(buf[i].key == in.data[at].key && buf[i].day == in.data[at].day && buf[i].win == in.data[at].win &&
                    buf[i].n == in.data[at].n,
                "record %zu differs", at);
      total += buf[i].n;
    }
  cr_assert_eq(k, 0, "%s", err.msg);
  cr_assert_eq(at, in.len);
  cr_assert_eq(total, total_ref);

  /* 2. sealed: one run, totals known, and read again in whole pairs */
  uint64_t nrec, pairs;
  cr_assert_eq(rt_runs_seal(r, &nrec, &pairs, &err), RT_OK, "%s", err.msg);
  cr_assert_eq(nrec, in.len);
  uint64_t pairs_ref = 0, last = UINT64_MAX;
  for (size_t i = 0; i < in.len; i++)
    if (in.data[i].win == 0 && in.data[i].key >> 20 != last) last = in.data[i].key >> 20, pairs_ref++;
  cr_assert_eq(pairs, pairs_ref);
  if (expect_files) cr_assert_eq(files_in(dir), 1, "sealed into one run file");
  rt_count_vec chunk = {0};
  at = 0;
  while ((k = rt_runs_next_pairs(r, &chunk, 7, &err)) > 0) {
    cr_assert_eq((size_t)k, chunk.len);
    if (at + chunk.len < in.len) /* a chunk ends where a pair ends */
      cr_assert_neq(chunk.data[chunk.len - 1].key >> 20, in.data[at + chunk.len].key >> 20, "pair cut at %zu", at);
    for (size_t i = 0; i < chunk.len; i++, at++) cr_assert_eq(chunk.data[i].n, in.data[at].n);
  }
  cr_assert_eq(k, 0);
  cr_assert_eq(at, in.len);
  rt_runs_free(r);
  if (expect_files) cr_assert_neq(access(dir, F_OK), 0, "run files and their directory removed");
  rmdir(dir);
  free(in.data);
  free(chunk.data);
}

Test(runs, in_memory_without_budget) { check(0, 50000, 0); }

Test(runs, spilled_beyond_the_fan_in) { check(500, 50000, 1); }

Test(runs, unwritable_directory_is_an_output_error) {
  rt_runs *r = rt_runs_new("/proc/no-such-dir/x", "t", 0, 10);
  rt_count_vec in = {0};
  random_records(&in, 100);
  rt_err err = {0};
  int rc = rt_runs_add(r, in.data, in.len, &err);
  cr_assert_eq(rc, RT_ERR_OUTPUT);
  cr_assert(strstr(err.msg, "/proc/no-such-dir/x") != NULL, "names the directory: %s", err.msg);
  rt_runs_free(r);
  free(in.data);
}

/* What an all-to-all delivers: sorted, reduced pieces back to back (big and
 * small, the same record in several pieces). The stream must equal a full
 * sort-and-reduce of everything. */
static void check_pieces(size_t mem_records) {
  char dir[] = "/tmp/rt-test-runs-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  rt_runs *r = rt_runs_new(dir, "p", 0, mem_records);
  rt_count_vec all = {0}, msg = {0};
  size_t sizes[] = {9000, 100, 20000, 1, 5000, 4095, 4096};
  for (size_t p = 0; p < sizeof sizes / sizeof *sizes; p++) {
    rt_count_vec piece = {0};
    random_records(&piece, sizes[p]);
    rt_counts_reduce(&piece);
    for (size_t i = 0; i < piece.len; i++) {
      rt_vec_push(&msg, piece.data[i]);
      rt_vec_push(&all, piece.data[i]);
    }
    free(piece.data);
  }
  rt_err err = {0};
  cr_assert_eq(rt_runs_add_pieces(r, msg.data, msg.len, &err), RT_OK, "%s", err.msg);
  rt_counts_reduce(&all);
  uint64_t nrec;
  cr_assert_eq(rt_runs_seal(r, &nrec, NULL, &err), RT_OK, "%s", err.msg);
  cr_assert_eq(nrec, all.len);
  rt_count buf[333];
  size_t at = 0;
  long k;
  while ((k = rt_runs_read(r, buf, 333, &err)) > 0)
    for (long i = 0; i < k; i++, at++)
      cr_assert(buf[i].key == all.data[at].key && buf[i].day == all.data[at].day && buf[i].win == all.data[at].win &&
                    buf[i].n == all.data[at].n,
                "record %zu differs", at);
  cr_assert_eq(at, all.len);
  rt_runs_free(r);
  rmdir(dir);
  free(all.data);
  free(msg.data);
}

Test(runs, pieces_in_memory) { check_pieces(0); }
Test(runs, pieces_spilled) { check_pieces(1000); }
