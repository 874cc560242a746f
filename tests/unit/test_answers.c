/* test_answers.c — the answer journal: round trip, latest-wins, torn-tail
 * recovery at every byte of the last record, compaction. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "format/answers.h"

static char g_dir[256];

static void setup(void) {
  strcpy(g_dir, "/tmp/rt_test_answers_XXXXXX");
  cr_assert_not_null(mkdtemp(g_dir));
}

static void teardown(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", g_dir);
}

static const char *jpath(const char *name) {
  static char buf[2][512];
  static int k;
  k ^= 1;
  snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
  return buf[k];
}

static long fsize(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static rt_answers *open_ok(const char *p) {
  rt_answers *j = NULL;
  rt_err err = {0};
  cr_assert_eq(rt_answers_open(p, &j, &err), RT_OK, "%s", err.msg);
  cr_assert_not_null(j);
  return j;
}

static void expect(rt_answers *j, uint64_t key, const char *text, uint32_t day) {
  const char *t = NULL;
  uint32_t d = 0;
  cr_assert_eq(rt_answers_get(j, key, &t, &d), 1, "key %llu missing", (unsigned long long)key);
  cr_assert_str_eq(t, text);
  cr_assert_eq(d, day);
}

TestSuite(answers, .init = setup, .fini = teardown);

Test(answers, round_trip_and_latest_wins) {
  rt_answers *j = open_ok(jpath("j"));
  rt_err err = {0};
  char text[64];
  for (uint64_t k = 0; k < 500; k++) {
    snprintf(text, sizeof text, "answer %llu: gardening, tools", (unsigned long long)k);
    cr_assert_eq(rt_answers_put(j, k * 0x9e3779b97f4a7c15ULL, (uint32_t)(20000 + k), text, &err), RT_OK);
  }
  cr_assert_eq(rt_answers_put(j, 7 * 0x9e3779b97f4a7c15ULL, 30000, "newer answer", &err), RT_OK);
  cr_assert_eq(rt_answers_put(j, 0, 1, "", &err), RT_OK); /* key 0 and empty text are fine */
  expect(j, 7 * 0x9e3779b97f4a7c15ULL, "newer answer", 30000); /* visible before flush */
  cr_assert_eq(rt_answers_get(j, 12345, NULL, NULL), 0);
  cr_assert_eq(rt_answers_close(j, &err), RT_OK);
  j = open_ok(jpath("j"));
  rt_answers_stats st = rt_answers_get_stats(j);
  cr_assert_eq(st.records_loaded, 502);
  cr_assert_eq(st.keys, 500);
  cr_assert_eq(st.torn_bytes, 0);
  for (uint64_t k = 1; k < 500; k++) {
    if (k == 7) continue;
    snprintf(text, sizeof text, "answer %llu: gardening, tools", (unsigned long long)k);
    expect(j, k * 0x9e3779b97f4a7c15ULL, text, (uint32_t)(20000 + k));
  }
  expect(j, 7 * 0x9e3779b97f4a7c15ULL, "newer answer", 30000);
  expect(j, 0, "", 1);
  rt_answers_close(j, NULL);
}

Test(answers, key_depends_on_model_and_body) {
  uint64_t a = rt_answers_key("m1", "body", 4), b = rt_answers_key("m1", "body", 4);
  cr_assert_eq(a, b);
  cr_assert_neq(a, rt_answers_key("m2", "body", 4));
  cr_assert_neq(a, rt_answers_key("m1", "bodY", 4));
  cr_assert_neq(rt_answers_key("m1b", "ody", 3), a, "model/body boundary is part of the key");
}

/* Crash simulation: cut the file at every byte inside the last record. */
Test(answers, torn_tail_recovery_at_every_byte) {
  rt_log_set_level(RT_LOG_ERROR); /* one warning per cut is expected here */
  const char *p = jpath("torn");
  rt_answers *j = open_ok(p);
  rt_err err = {0};
  rt_answers_put(j, 1, 10, "first answer", &err);
  rt_answers_put(j, 2, 11, "second answer", &err);
  cr_assert_eq(rt_answers_flush(j, &err), RT_OK);
  long good = fsize(p);
  rt_answers_put(j, 3, 12, "third answer, the one that tears", &err);
  rt_answers_close(j, &err);
  long full = fsize(p);
  cr_assert_eq(full, good + 24 + (long)strlen("third answer, the one that tears"));
  FILE *f = fopen(p, "rb");
  char *img = malloc((size_t)full);
  cr_assert_eq(fread(img, 1, (size_t)full, f), (size_t)full);
  fclose(f);
  for (long cut = good; cut < full; cut++) {
    const char *q = jpath("cut");
    f = fopen(q, "wb");
    fwrite(img, 1, (size_t)cut, f);
    fclose(f);
    j = open_ok(q);
    rt_answers_stats st = rt_answers_get_stats(j);
    cr_assert_eq(st.records_loaded, 2, "cut at %ld", cut);
    cr_assert_eq(st.torn_bytes, (uint64_t)(cut - good), "cut at %ld", cut);
    cr_assert_eq(fsize(q), good, "the torn tail is truncated away (cut %ld)", cut);
    expect(j, 1, "first answer", 10);
    expect(j, 2, "second answer", 11);
    cr_assert_eq(rt_answers_get(j, 3, NULL, NULL), 0);
    /* Appending after recovery yields a clean journal. */
    cr_assert_eq(rt_answers_put(j, 4, 13, "after recovery", &err), RT_OK);
    rt_answers_close(j, &err);
    j = open_ok(q);
    cr_assert_eq(rt_answers_get_stats(j).records_loaded, 3);
    cr_assert_eq(rt_answers_get_stats(j).torn_bytes, 0);
    expect(j, 4, "after recovery", 13);
    rt_answers_close(j, NULL);
    unlink(q);
  }
  /* A flipped byte in the last record's text is caught by its checksum. */
  img[full - 10] ^= 1;
  f = fopen(p, "wb");
  fwrite(img, 1, (size_t)full, f);
  fclose(f);
  j = open_ok(p);
  cr_assert_eq(rt_answers_get_stats(j).records_loaded, 2);
  cr_assert_eq(rt_answers_get_stats(j).torn_bytes, (uint64_t)(full - good));
  rt_answers_close(j, NULL);
  free(img);
}

Test(answers, torn_header_and_foreign_file) {
  const char *p = jpath("hdr");
  FILE *f = fopen(p, "wb");
  fwrite("RTANS", 1, 5, f); /* crash while creating */
  fclose(f);
  rt_answers *j = open_ok(p);
  cr_assert_eq(rt_answers_get_stats(j).torn_bytes, 5);
  rt_answers_close(j, NULL);
  cr_assert_eq(fsize(p), 16);
  const char *q = jpath("foreign");
  f = fopen(q, "wb");
  fputs("this is not a journal at all\n", f);
  fclose(f);
  rt_err err = {0};
  cr_assert_eq(rt_answers_open(q, &j, &err), RT_ERR_INPUT);
  cr_assert_null(j);
  cr_assert_not_null(strstr(err.msg, q), "%s", err.msg);
  cr_assert_eq(fsize(q), 29, "a foreign file is never truncated");
  cr_assert_eq(rt_answers_open("/nonexistent-dir/x", &j, &err), RT_ERR_OUTPUT);
}

Test(answers, compaction_keeps_latest_per_key) {
  const char *p = jpath("c");
  rt_answers *j = open_ok(p);
  rt_err err = {0};
  rt_answers_put(j, 1, 1, "k1 v1", &err);
  rt_answers_put(j, 2, 1, "k2 v1", &err);
  rt_answers_put(j, 1, 2, "k1 v2", &err);
  rt_answers_flush(j, &err);
  rt_answers_put(j, 1, 3, "k1 v3 (latest)", &err); /* still buffered at compaction */
  rt_answers_put(j, 3, 3, "k3 v1", &err);
  cr_assert_eq(rt_answers_compact(j, &err), RT_OK, "%s", err.msg);
  long want = 16 + 3 * 24 + (long)(strlen("k1 v3 (latest)") + strlen("k2 v1") + strlen("k3 v1"));
  cr_assert_eq(fsize(p), want);
  expect(j, 1, "k1 v3 (latest)", 3);
  rt_answers_put(j, 2, 4, "k2 v2", &err); /* appends continue after compaction */
  rt_answers_close(j, &err);
  j = open_ok(p);
  rt_answers_stats st = rt_answers_get_stats(j);
  cr_assert_eq(st.records_loaded, 4);
  cr_assert_eq(st.keys, 3);
  expect(j, 1, "k1 v3 (latest)", 3);
  expect(j, 2, "k2 v2", 4);
  expect(j, 3, "k3 v1", 3);
  rt_answers_close(j, NULL);
  char tmpname[600];
  snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", p, (long)getpid());
  cr_assert_eq(access(tmpname, F_OK), -1, "no temp file left behind");
}

/* Parts (docs/formats.md §5.4): absorb copies a part's latest records that
 * the journal lacks, skips identical ones, survives a torn part tail, and a
 * missing part adds nothing. */
Test(answers, absorb_parts, .init = setup, .fini = teardown) {
  rt_err err = {0};
  rt_answers *main_j = open_ok(jpath("j"));
  cr_assert_eq(rt_answers_put(main_j, 1, 10, "one", &err), RT_OK);
  cr_assert_eq(rt_answers_put(main_j, 2, 10, "two", &err), RT_OK);
  cr_assert_eq(rt_answers_flush(main_j, &err), RT_OK);
  rt_answers *part = open_ok(jpath("j.part-0"));
  cr_assert_eq(rt_answers_put(part, 2, 11, "two", &err), RT_OK);  /* same text: skipped */
  cr_assert_eq(rt_answers_put(part, 3, 11, "three", &err), RT_OK);
  cr_assert_eq(rt_answers_put(part, 4, 11, "old", &err), RT_OK);
  cr_assert_eq(rt_answers_put(part, 4, 12, "four", &err), RT_OK); /* latest wins */
  cr_assert_eq(rt_answers_write(part, &err), RT_OK);               /* written, not fsynced */
  long whole = fsize(jpath("j.part-0"));
  rt_answers_close(part, NULL);
  /* a torn record at the end of the part, as a kill mid-write leaves it */
  FILE *f = fopen(jpath("j.part-0"), "ab");
  fwrite("\x05\x00\x00\x00garbage", 1, 11, f);
  fclose(f);
  cr_assert_eq(fsize(jpath("j.part-0")), whole + 11);
  uint64_t added = 99;
  cr_assert_eq(rt_answers_absorb(main_j, jpath("j.part-0"), &added, &err), RT_OK, "%s", err.msg);
  cr_assert_eq(added, 2, "added %llu", (unsigned long long)added);
  const char *t;
  uint32_t day;
  cr_assert_eq(rt_answers_get(main_j, 3, &t, &day), 1);
  cr_assert_str_eq(t, "three");
  cr_assert_eq(day, 11);
  cr_assert_eq(rt_answers_get(main_j, 4, &t, &day), 1);
  cr_assert_str_eq(t, "four");
  cr_assert_eq(day, 12);
  cr_assert_eq(rt_answers_get(main_j, 2, &t, &day), 1);
  cr_assert_eq(day, 10, "an identical answer is not appended again");
  cr_assert_eq(rt_answers_absorb(main_j, jpath("no-such-part"), &added, &err), RT_OK);
  cr_assert_eq(added, 0);
  /* not a journal: refused, nothing appended */
  f = fopen(jpath("junk"), "wb");
  fwrite("NOTAJOURNAL.....", 1, 16, f);
  fclose(f);
  cr_assert_eq(rt_answers_absorb(main_j, jpath("junk"), &added, &err), RT_ERR_INPUT);
  cr_assert(strstr(err.msg, "junk") != NULL, "%s", err.msg);
  rt_answers_close(main_j, NULL);
  /* durable after reopening */
  rt_answers *again = open_ok(jpath("j"));
  cr_assert_eq(rt_answers_get(again, 4, &t, NULL), 1);
  cr_assert_str_eq(t, "four");
  cr_assert_eq(rt_answers_get_stats(again).keys, 4);
  rt_answers_close(again, NULL);
}
