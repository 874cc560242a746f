/* test_publish.c — publishing keeps K previous tables, rollback restores
 * them, and a failed publish leaves the served table byte-identical. */
#include <criterion/criterion.h>
#include <ragtide/table.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "format/publish.h"

static char g_dir[256];

static void setup(void) {
  strcpy(g_dir, "/tmp/rt_test_publish_XXXXXX");
  cr_assert_not_null(mkdtemp(g_dir));
}

static void teardown(void) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "chmod -R u+w %s; rm -rf %s", g_dir, g_dir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", g_dir);
}

static const char *ppath(const char *suffix) {
  static char buf[4][512];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/table%s", g_dir, suffix);
  return buf[k];
}

/* A 4-cluster table whose run id and pair (0,0) name the generation. */
static ragtide_table_builder *gen(int g) {
  uint32_t ids[] = {1, 2, 3, 4};
  ragtide_table_builder *b = ragtide_builder_new(ids, 4, 1);
  cr_assert_not_null(b);
  ragtide_builder_set(b, 0, 0, 0, (uint32_t)g % 4, RAGTIDE_PROV_RAG, 100 + (uint32_t)g);
  char run[32];
  snprintf(run, sizeof run, "run-%d", g);
  ragtide_table_info in = {.k = 2, .run_id = run, .model = "m", .base_run_id = ""};
  ragtide_builder_set_info(b, &in);
  return b;
}

static void publish(int g, int keep) {
  ragtide_table_builder *b = gen(g);
  rt_err err = {0};
  cr_assert_eq(rt_table_publish(b, ppath(""), keep, &err), RT_OK, "%s", err.msg);
  ragtide_builder_free(b);
}

/* Run id of the table at path, or "" if missing/invalid. */
static const char *run_of(const char *path) {
  static char out[64];
  ragtide_table *t;
  out[0] = '\0';
  if (ragtide_table_open(path, &t, NULL, 0) == RAGTIDE_OK) {
    snprintf(out, sizeof out, "%s", ragtide_table_get_info(t)->run_id);
    ragtide_table_close(t);
  }
  return out;
}

static char *slurp(const char *p, size_t *n) {
  FILE *f = fopen(p, "rb");
  cr_assert_not_null(f, "%s", p);
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  rewind(f);
  char *d = malloc(*n + 1);
  cr_assert_eq(fread(d, 1, *n, f), *n);
  fclose(f);
  return d;
}

TestSuite(publish, .init = setup, .fini = teardown);

Test(publish, keeps_k_previous_and_rollback_restores) {
  for (int g = 1; g <= 5; g++) publish(g, 2);
  cr_assert_str_eq(run_of(ppath("")), "run-5");
  cr_assert_str_eq(run_of(ppath(".1")), "run-4");
  cr_assert_str_eq(run_of(ppath(".2")), "run-3");
  cr_assert_eq(access(ppath(".3"), F_OK), -1, "only keep=2 backups");
  publish(6, 1); /* a smaller keep drops the extra backups */
  cr_assert_str_eq(run_of(ppath(".1")), "run-5");
  cr_assert_eq(access(ppath(".2"), F_OK), -1);
  publish(7, 3);
  publish(8, 3);
  cr_assert_str_eq(run_of(ppath("")), "run-8");
  cr_assert_str_eq(run_of(ppath(".1")), "run-7");
  cr_assert_str_eq(run_of(ppath(".2")), "run-6");
  cr_assert_str_eq(run_of(ppath(".3")), "run-5");
  rt_err err = {0};
  /* A rollback swaps the served generation with the previous one... */
  cr_assert_eq(rt_table_rollback(ppath(""), 1, NULL, 0, &err), RT_OK, "%s", err.msg);
  cr_assert_str_eq(run_of(ppath("")), "run-7");
  cr_assert_str_eq(run_of(ppath(".1")), "run-8");
  cr_assert_str_eq(run_of(ppath(".2")), "run-6");
  cr_assert_str_eq(run_of(ppath(".3")), "run-5");
  /* ...so a second one rolls forward again. */
  cr_assert_eq(rt_table_rollback(ppath(""), 1, NULL, 0, &err), RT_OK, "%s", err.msg);
  cr_assert_str_eq(run_of(ppath("")), "run-8");
  cr_assert_str_eq(run_of(ppath(".1")), "run-7");
  /* --to N brings generation N to the front, the others move down in order. */
  cr_assert_eq(rt_table_rollback(ppath(""), 3, NULL, 0, &err), RT_OK, "%s", err.msg);
  cr_assert_str_eq(run_of(ppath("")), "run-5");
  cr_assert_str_eq(run_of(ppath(".1")), "run-8");
  cr_assert_str_eq(run_of(ppath(".2")), "run-7");
  cr_assert_str_eq(run_of(ppath(".3")), "run-6");
  cr_assert_eq(access(ppath(".4"), F_OK), -1);
  cr_assert_eq(rt_table_rollback(ppath(""), 4, NULL, 0, &err), RT_ERR_TABLE, "no generation 4");
  cr_assert_not_null(strstr(err.msg, ".4"), "%s", err.msg);
  cr_assert_eq(rt_table_rollback(ppath(""), 0, NULL, 0, &err), RT_ERR_USAGE);
  cr_assert_str_eq(run_of(ppath("")), "run-5");
}

/* The text of a small file, or "" when it is missing. */
static const char *text_of(const char *path) {
  static char out[4][64];
  static int k;
  k = (k + 1) % 4;
  out[k][0] = '\0';
  FILE *f = fopen(path, "r");
  if (f) {
    size_t n = fread(out[k], 1, sizeof out[k] - 1, f);
    out[k][n] = '\0';
    fclose(f);
  }
  return out[k];
}

/* Publish generation g with a summary (and, if ctx, contexts) naming it. */
static void publish_with_sides(int g, int keep, int ctx) {
  ragtide_table_builder *b = gen(g);
  rt_err err = {0};
  char *staged;
  cr_assert_eq(rt_table_stage(b, ppath(""), &staged, &err), RT_OK, "%s", err.msg);
  ragtide_builder_free(b);
  cr_assert_eq(access(ppath(""), F_OK) == 0 ? strcmp(run_of(ppath("")), "") != 0 : 1, 1);
  char sum[32], cx[32];
  snprintf(sum, sizeof sum, "summary-%d", g);
  snprintf(cx, sizeof cx, "contexts-%d", g);
  char sp[512], cp[512];
  snprintf(sp, sizeof sp, "%s", ppath(".summary.json"));
  snprintf(cp, sizeof cp, "%s", ppath(".contexts"));
  rt_pub_side side[2] = {{sp, sum, strlen(sum)}, {cp, ctx ? cx : NULL, strlen(cx)}};
  cr_assert_eq(rt_table_commit(staged, ppath(""), keep, side, 2, &err), RT_OK, "%s", err.msg);
  cr_assert_eq(access(staged, F_OK), -1, "the staged table was renamed");
  free(staged);
}

Test(publish, side_files_rotate_and_roll_back_with_their_table) {
  publish_with_sides(1, 3, 1);
  publish_with_sides(2, 3, 0); /* generation 2 has no contexts (a base run) */
  char marker[64];
  snprintf(marker, sizeof marker, ".contexts.new.%ld.none", (long)getpid());
  cr_assert_eq(access(ppath(marker), F_OK), -1, "the no-contexts marker is removed by the commit");
  publish_with_sides(3, 3, 1);
  cr_assert_str_eq(run_of(ppath("")), "run-3");
  cr_assert_str_eq(text_of(ppath(".summary.json")), "summary-3");
  cr_assert_str_eq(text_of(ppath(".summary.json.1")), "summary-2");
  cr_assert_str_eq(text_of(ppath(".summary.json.2")), "summary-1");
  cr_assert_str_eq(text_of(ppath(".contexts")), "contexts-3");
  /* contexts rotate by the same index: generation 2's slot stays empty */
  cr_assert_eq(access(ppath(".contexts.1"), F_OK), -1, "generation 2 had no contexts");
  cr_assert_str_eq(text_of(ppath(".contexts.2")), "contexts-1");
  const char *side[2];
  char sp[512], cp[512];
  snprintf(sp, sizeof sp, "%s", ppath(".summary.json"));
  snprintf(cp, sizeof cp, "%s", ppath(".contexts"));
  side[0] = sp;
  side[1] = cp;
  rt_err err = {0};
  cr_assert_eq(rt_table_rollback(ppath(""), 2, side, 2, &err), RT_OK, "%s", err.msg);
  cr_assert_str_eq(run_of(ppath("")), "run-1");
  cr_assert_str_eq(text_of(ppath(".summary.json")), "summary-1");
  cr_assert_str_eq(run_of(ppath(".1")), "run-3");
  cr_assert_str_eq(text_of(ppath(".summary.json.1")), "summary-3");
  cr_assert_str_eq(text_of(ppath(".summary.json.2")), "summary-2");
  cr_assert_str_eq(text_of(ppath(".contexts")), "contexts-1");
  cr_assert_str_eq(text_of(ppath(".contexts.1")), "contexts-3");
  cr_assert_eq(access(ppath(".contexts.2"), F_OK), -1, "generation 2 (now .2) has none");
  rt_err e2 = {0};
  cr_assert_eq(rt_table_rollback(ppath(""), 2, side, 2, &e2), RT_OK, "%s", e2.msg);
  cr_assert_str_eq(run_of(ppath("")), "run-2");
  cr_assert_eq(access(ppath(".contexts"), F_OK), -1, "the served generation 2 has no contexts");
  cr_assert_str_eq(text_of(ppath(".contexts.1")), "contexts-1");
  cr_assert_eq(rt_table_rollback(ppath(""), 2, side, 2, &err), RT_OK, "%s", err.msg);
  cr_assert_str_eq(run_of(ppath("")), "run-3");
  cr_assert_eq(rt_table_rollback(ppath(""), 2, side, 2, &err), RT_OK, "%s", err.msg);
  cr_assert_str_eq(run_of(ppath("")), "run-1");
  cr_assert_eq(rt_table_rollback(ppath(""), 1, side, 2, &err), RT_OK, "%s", err.msg);
  cr_assert_str_eq(run_of(ppath("")), "run-3");
  cr_assert_str_eq(text_of(ppath(".summary.json")), "summary-3");
  cr_assert_str_eq(text_of(ppath(".summary.json.1")), "summary-1");
}

Test(publish, open_reader_keeps_old_table) {
  publish(1, 1);
  ragtide_table *old;
  cr_assert_eq(ragtide_table_open(ppath(""), &old, NULL, 0), RAGTIDE_OK);
  publish(2, 1);
  publish(3, 1); /* run-1 is now deleted from the directory */
  uint32_t next;
  ragtide_provenance p;
  cr_assert_eq(ragtide_table_lookup(old, 1, 1, &next, &p), RAGTIDE_OK);
  cr_assert_eq(next, 2); /* ids[1 % 4] */
  cr_assert_str_eq(ragtide_table_get_info(old)->run_id, "run-1");
  ragtide_table_close(old);
  cr_assert_str_eq(run_of(ppath("")), "run-3");
}

Test(publish, rollback_refuses_invalid_previous) {
  publish(1, 2);
  publish(2, 2);
  size_t n;
  char *prev = slurp(ppath(".1"), &n);
  prev[n / 2] ^= 0x10;
  FILE *f = fopen(ppath(".1"), "wb");
  fwrite(prev, 1, n, f);
  fclose(f);
  free(prev);
  size_t n0, n1;
  char *before = slurp(ppath(""), &n0);
  rt_err err = {0};
  cr_assert_eq(rt_table_rollback(ppath(""), 1, NULL, 0, &err), RT_ERR_TABLE);
  cr_assert_not_null(strstr(err.msg, "invalid"), "%s", err.msg);
  char *after = slurp(ppath(""), &n1);
  cr_assert_eq(n0, n1);
  cr_assert_arr_eq(before, after, n0);
  free(before);
  free(after);
}

Test(publish, failed_publish_leaves_old_file_byte_identical) {
  publish(1, 2);
  publish(2, 2);
  size_t n0, n1, m0, m1;
  char *before = slurp(ppath(""), &n0), *bak = slurp(ppath(".1"), &m0);
  /* Root ignores permission bits, so block the temp file name with a
   * directory; as a normal user, a read-only directory fails too. */
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.new.%ld.tmp.%ld", ppath(""), (long)getpid(), (long)getpid());
  cr_assert_eq(mkdir(tmp, 0755), 0);
  ragtide_table_builder *b = gen(3);
  rt_err err = {0};
  cr_assert_eq(rt_table_publish(b, ppath(""), 2, &err), RT_ERR_OUTPUT);
  cr_assert_not_null(strstr(err.msg, tmp), "%s", err.msg);
  rmdir(tmp);
  if (geteuid() != 0) {
    cr_assert_eq(chmod(g_dir, 0555), 0);
    cr_assert_eq(rt_table_publish(b, ppath(""), 2, &err), RT_ERR_OUTPUT);
    chmod(g_dir, 0755);
  }
  ragtide_builder_free(b);
  char *after = slurp(ppath(""), &n1), *bak1 = slurp(ppath(".1"), &m1);
  cr_assert_eq(n0, n1);
  cr_assert_arr_eq(before, after, n0);
  cr_assert_eq(m0, m1);
  cr_assert_arr_eq(bak, bak1, m0);
  cr_assert_eq(access(ppath(".2"), F_OK), -1, "no rotation on a failed write");
  free(before);
  free(after);
  free(bak);
  free(bak1);
  /* A missing directory fails cleanly too. */
  cr_assert_eq(rt_table_publish_bytes("x", 1, "/nonexistent-dir/t", 1, &err), RT_ERR_OUTPUT);
}

static void put(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f, "%s", path);
  fputs(text, f);
  fclose(f);
}

Test(publish, sweep_completes_a_publish_that_died_after_its_table) {
  /* A pid that is surely dead: a child that has exited and been reaped. */
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  cr_assert_gt(dead, 0);
  while (waitpid(dead, NULL, 0) < 0) {
  }
  char sfx[64];
  /* Died after renaming its table: the staged summary goes into place. */
  put(ppath(".summary.json"), "old");
  snprintf(sfx, sizeof sfx, ".summary.json.new.%ld", (long)dead);
  put(ppath(sfx), "new");
  snprintf(sfx, sizeof sfx, ".contexts.new.%ld", (long)dead);
  put(ppath(sfx), "ctx");
  snprintf(sfx, sizeof sfx, ".summary.json.new.%ld.tmp.%ld", (long)dead, (long)dead);
  put(ppath(sfx), "half"); /* a side file still being written: removed */
  int removed = -1;
  cr_assert_eq(rt_table_sweep(ppath(""), &removed), 0);
  cr_assert_eq(removed, 1);
  cr_assert_str_eq(text_of(ppath(".summary.json")), "new");
  cr_assert_str_eq(text_of(ppath(".contexts")), "ctx");
  cr_assert_str_eq(text_of(ppath(sfx)), "");
  /* Died before its table's rename (the staged table is still there): all of
   * it is removed, the served files stay. */
  snprintf(sfx, sizeof sfx, ".new.%ld", (long)dead);
  put(ppath(sfx), "staged table");
  snprintf(sfx, sizeof sfx, ".summary.json.new.%ld", (long)dead);
  put(ppath(sfx), "newer");
  cr_assert_eq(rt_table_sweep(ppath(""), &removed), 0);
  cr_assert_eq(removed, 2);
  cr_assert_str_eq(text_of(ppath(".summary.json")), "new");
  cr_assert_str_eq(text_of(ppath(sfx)), "");
  /* A generation without contexts died after its table: its marker removes
   * the previous generation's contexts from beside the new table. */
  snprintf(sfx, sizeof sfx, ".contexts.new.%ld.none", (long)dead);
  put(ppath(sfx), "");
  cr_assert_eq(rt_table_sweep(ppath(""), &removed), 0);
  cr_assert_eq(access(ppath(".contexts"), F_OK), -1, "the old contexts stay beside the new table");
  cr_assert_eq(access(ppath(sfx), F_OK), -1, "the marker stays");
  /* A live writer's files are left alone. */
  snprintf(sfx, sizeof sfx, ".summary.json.new.%ld", (long)getpid());
  put(ppath(sfx), "mine");
  cr_assert_eq(rt_table_sweep(ppath(""), &removed), 0);
  cr_assert_eq(removed, 0);
  cr_assert_str_eq(text_of(ppath(".summary.json")), "new");
  cr_assert_str_eq(text_of(ppath(sfx)), "mine");
}
