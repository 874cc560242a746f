/* test_export_finetune.c — labels, the per-label cap, the train/test split
 * and both JSONL formats of `ragtide export-finetune`: first through the
 * module functions (src/rag/successors.h), then through the command itself
 * on hand-made counts, parsing every written line back with jansson. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "format/counts.h"
#include "pipeline/count.h"
#include "rag/successors.h"

#define JAN1 20454     /* 2026-01-01 */
#define S (JAN1 + 10)  /* split day 2026-01-11 */

static rt_count R(uint32_t c1, uint32_t c2, uint32_t c3, int32_t day, uint64_t n) {
  return (rt_count){rt_triple_key(c1, c2, c3), day, 0, n};
}
static uint64_t P(uint32_t c1, uint32_t c2) { return rt_key_pair(rt_triple_key(c1, c2, 0)); }

/* Train (days < S), by total: P1 (0,1) 10 -> 2 (tie 2:5 vs 3:5: the smaller
 * id), P2 (1,0) 8 -> 2, P5 (4,5) 7 -> 2, P3 (2,3) 6 -> 5, P4 (3,2) 5 -> 1,
 * P6 (5,4) 5 -> 0 (ties with P4 on total; P4 is the smaller pair).
 * Test (days >= S): P1 5 -> 3, P2 1 -> 4. */
static size_t records(rt_count *r) {
  size_t n = 0;
  r[n++] = R(0, 1, 3, S - 1, 5);
  r[n++] = R(0, 1, 2, S - 3, 5);
  r[n++] = R(1, 0, 2, S - 2, 8);
  r[n++] = R(4, 5, 2, S - 1, 7);
  r[n++] = R(2, 3, 4, S - 1, 2);
  r[n++] = R(2, 3, 5, S - 2, 4);
  r[n++] = R(3, 2, 1, S - 3, 5);
  r[n++] = R(5, 4, 0, S - 1, 5);
  r[n++] = (rt_count){rt_triple_key(5, 4, 1), S - 1, 1, 50}; /* previous window: ignored */
  r[n++] = R(0, 1, 3, S, 2);                                  /* the split day is test */
  r[n++] = R(0, 1, 3, S + 2, 2);
  r[n++] = R(0, 1, 2, S + 1, 1);
  r[n++] = R(1, 0, 4, S + 2, 1);
  return n;
}

Test(export_finetune, cap_rounding) {
  cr_assert_eq(rt_ft_cap(5000, 0.02), 100);
  cr_assert_eq(rt_ft_cap(4, 0.5), 2);
  cr_assert_eq(rt_ft_cap(3, 0.5), 2, "ceil");
  cr_assert_eq(rt_ft_cap(10, 0.02), 1, "never 0");
  cr_assert_eq(rt_ft_cap(7, 1.0), 7);
  cr_assert_eq(rt_ft_cap(300, 0.01), 3);
}

Test(export_finetune, labels_cap_and_split) {
  rt_count r[32];
  size_t n = records(r);
  rt_periods per = {RT_PERIOD_SPLIT, 0, S};
  rt_err err = {0};
  rt_succ s;
  cr_assert_eq(rt_succ_build(r, n, &per, 1, 1, &s, &err), RT_OK, "%s", err.msg);
  cr_assert_eq(s.n_periods, 2);
  rt_ft_pick *pk;
  size_t npk;
  rt_ft_stats st;
  rt_ft_select(&s, 0, 4, rt_ft_cap(4, 0.5), &pk, &npk, &st);
  cr_assert_eq(npk, 4);
  uint64_t want_pair[] = {P(0, 1), P(1, 0), P(2, 3), P(3, 2)};
  uint32_t want_label[] = {2, 2, 5, 1};
  uint64_t want_total[] = {10, 8, 6, 5};
  for (size_t i = 0; i < 4; i++) {
    cr_assert_eq(pk[i].pair, want_pair[i], "train pick %zu", i);
    cr_assert_eq(pk[i].label, want_label[i], "train pick %zu label %u", i, pk[i].label);
    cr_assert_eq(pk[i].total, want_total[i], "train pick %zu total", i);
  }
  cr_assert_eq(st.considered, 6);
  cr_assert_eq(st.picked, 4);
  cr_assert_eq(st.skipped_cap, 1, "(4,5) -> 2 came third, after label 2 had its 2 samples");
  cr_assert_eq(st.labels_capped, 1);
  cr_assert_eq(st.distinct_labels, 3);
  cr_assert_eq(st.cap, 2);
  free(pk);
  /* Without the cap pressure, (4,5) is taken in frequency order. */
  rt_ft_select(&s, 0, 3, 3, &pk, &npk, &st);
  cr_assert_eq(npk, 3);
  cr_assert_eq(pk[2].pair, P(4, 5));
  cr_assert_eq(st.skipped_cap, 0);
  free(pk);
  rt_ft_select(&s, 1, 4, 2, &pk, &npk, &st);
  cr_assert_eq(npk, 2);
  cr_assert_eq(pk[0].pair, P(0, 1));
  cr_assert_eq(pk[0].label, 3, "test label comes from test days only");
  cr_assert_eq(pk[0].total, 5, "the split day itself is a test day");
  cr_assert_eq(pk[1].pair, P(1, 0));
  cr_assert_eq(pk[1].label, 4);
  free(pk);
  rt_ft_select(&s, 2, 4, 2, &pk, &npk, &st);
  cr_assert_eq(npk, 0, "no such period");
  cr_assert_null(pk);
  rt_succ_free(&s);
  /* Moving the split one day later moves day S into train. */
  per.anchor = S + 1;
  cr_assert_eq(rt_succ_build(r, n, &per, 1, 1, &s, &err), RT_OK);
  const rt_topk *t = rt_succ_find(&s, 0, P(0, 1));
  cr_assert_eq(t->total, 12);
  cr_assert_eq(s.next[t->off], 3, "2:5 vs 3:7 in train now");
  rt_succ_free(&s);
}

static json_t *parse(const char *line) {
  json_error_t je;
  json_t *o = json_loads(line, 0, &je);
  cr_assert_not_null(o, "not JSON (%s): %s", je.text, line);
  return o;
}

static const char *str_at(json_t *o, const char *path) {
  json_t *v = o;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *tok = strtok(buf, "."); tok; tok = strtok(NULL, ".")) {
    if (tok[0] >= '0' && tok[0] <= '9') v = json_array_get(v, (size_t)atoi(tok));
    else v = json_object_get(v, tok);
    cr_assert_not_null(v, "no %s in %s", path, json_dumps(o, JSON_COMPACT));
  }
  cr_assert(json_is_string(v), "%s is not a string", path);
  return json_string_value(v);
}

static void check_openai(const char *line, const char *sys, const char *usr, const char *label) {
  json_t *o = parse(line);
  cr_assert_eq(json_object_size(o), 1, "only \"messages\"");
  json_t *m = json_object_get(o, "messages");
  size_t base = *sys ? 1 : 0;
  cr_assert_eq(json_array_size(m), base + 2);
  if (*sys) {
    cr_assert_str_eq(str_at(o, "messages.0.role"), "system");
    cr_assert_str_eq(str_at(o, "messages.0.content"), sys);
  }
  cr_assert_str_eq(json_string_value(json_object_get(json_array_get(m, base), "role")), "user");
  cr_assert_str_eq(json_string_value(json_object_get(json_array_get(m, base), "content")), usr);
  cr_assert_str_eq(json_string_value(json_object_get(json_array_get(m, base + 1), "role")), "assistant");
  cr_assert_str_eq(json_string_value(json_object_get(json_array_get(m, base + 1), "content")), label);
  json_decref(o);
}

static void check_gemini(const char *line, const char *sys, const char *usr, const char *label) {
  json_t *o = parse(line);
  cr_assert_eq(json_object_size(o), *sys ? 2 : 1);
  if (*sys) {
    cr_assert_str_eq(str_at(o, "systemInstruction.role"), "system");
    cr_assert_eq(json_array_size(json_object_get(json_object_get(o, "systemInstruction"), "parts")), 1);
    cr_assert_str_eq(str_at(o, "systemInstruction.parts.0.text"), sys);
  } else {
    cr_assert_null(json_object_get(o, "systemInstruction"));
  }
  cr_assert_eq(json_array_size(json_object_get(o, "contents")), 2);
  cr_assert_str_eq(str_at(o, "contents.0.role"), "user");
  cr_assert_str_eq(str_at(o, "contents.0.parts.0.text"), usr);
  cr_assert_str_eq(str_at(o, "contents.1.role"), "model");
  cr_assert_str_eq(str_at(o, "contents.1.parts.0.text"), label);
  json_decref(o);
}

Test(export_finetune, jsonl_lines_both_formats) {
  const char *sys = "Answer with \"one\" cluster.", *usr = "- jazz, blues\n- cooking\tnow\nNext? ü", *lab = "chess";
  char *a = rt_ft_openai_line(sys, usr, lab), *g = rt_ft_gemini_line(sys, usr, lab);
  cr_assert_not_null(a);
  cr_assert_not_null(g);
  cr_assert_null(strchr(a, '\n'), "one line");
  cr_assert_null(strchr(g, '\n'), "one line");
  check_openai(a, sys, usr, lab);
  check_gemini(g, sys, usr, lab);
  cr_assert(strstr(a, "{\"messages\":[{\"role\":\"system\",\"content\":") == a, "field order: %s", a);
  free(a);
  free(g);
  a = rt_ft_openai_line("", usr, lab);
  g = rt_ft_gemini_line("", usr, lab);
  check_openai(a, "", usr, lab);
  check_gemini(g, "", usr, lab);
  free(a);
  free(g);
  cr_assert_null(rt_ft_openai_line("", "bad \xff utf-8", lab));
  cr_assert_null(rt_ft_gemini_line("bad \xc3", usr, lab));
}

/* ---- the command, end to end -------------------------------------------- */

static char dir[64];

static void put(const char *name, const char *text) {
  char p[256];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
}

static int cmp_rec(const void *a, const void *b) { return rt_count_cmp(a, b); }

/* A counts file holds its records sorted by (key, day, win) (docs/formats.md
 * §4); the command streams it and relies on that order. */
static void write_counts(const char *name, const uint32_t *ids, uint32_t nids) {
  rt_count r[32];
  size_t n = records(r);
  qsort(r, n, sizeof *r, cmp_rec);
  char p[256];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  rt_counts_meta m = {ids, nids, 0, 0, 0, "test"};
  rt_err err = {0};
  cr_assert_eq(rt_counts_write(p, &m, r, n, &err), RT_OK, "%s", err.msg);
}

static void setup(void) {
  strcpy(dir, "/tmp/rt_ft_XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  put("catalog.tsv", "10\tjazz, blues\n20\tcooking\n30\tchess, strategy\n40\thiking\n50\tknitting\n60\tastronomy\n");
  put("t.tmpl", "### system\nPick one.\n### user\nWatched:\n- {{c1}}\n- {{c2}}\n{{#rag}}\nRecent:\n{{retrieved}}\n"
                "{{/rag}}\nNext?\n");
  put("nosys.tmpl", "{{c1}} then {{c2}}?\n");
  char ini[512];
  snprintf(ini, sizeof ini, "[input]\ncatalog = %s/catalog.tsv\n[prompt]\nmode = rag\ntemplate = %s/t.tmpl\n", dir,
           dir);
  put("job.ini", ini);
  uint32_t ids[] = {10, 20, 30, 40, 50, 60};
  write_counts("counts.rtc", ids, 6);
  uint32_t other[] = {10, 20, 30, 40, 50, 99};
  write_counts("other.rtc", other, 6);
}

static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

/* Run `ragtide export-finetune ARGS` with stderr in DIR/err; exit status. */
static int run(const char *args) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "cd %s && %s/ragtide export-finetune %s >%s/out 2>%s/err", dir, RAGTIDE_BUILD, args, dir,
           dir);
  int st = system(cmd);
  cr_assert(WIFEXITED(st));
  return WEXITSTATUS(st);
}

static char *slurp(const char *name) {
  char p[256], *s;
  snprintf(p, sizeof p, "%s/%s", dir, name);
  rt_err err = {0};
  cr_assert_eq(rt_read_file(p, &s, NULL, &err), RT_OK, "%s", err.msg);
  return s;
}

/* Split a file into lines (in place); returns the count. */
static size_t lines(char *s, char **out, size_t max) {
  size_t n = 0;
  for (char *p = s; *p && n < max;) {
    char *nl = strchr(p, '\n');
    cr_assert_not_null(nl, "last line lacks its newline");
    *nl = '\0';
    out[n++] = p;
    p = nl + 1;
  }
  return n;
}

static void check_file(const char *name, int gemini, size_t want, const char *sys, const char *const *usr,
                       const char *const *label) {
  char *s = slurp(name), *l[16];
  size_t n = lines(s, l, 16);
  cr_assert_eq(n, want, "%s: %zu lines, want %zu", name, n, want);
  for (size_t i = 0; i < n; i++) {
    if (gemini) check_gemini(l[i], sys, usr[i], label[i]);
    else check_openai(l[i], sys, usr[i], label[i]);
  }
  free(s);
}

Test(export_finetune, command_writes_both_formats, .init = setup, .fini = teardown) {
  if (access(RAGTIDE_BUILD "/ragtide", X_OK) != 0) cr_skip_test("build the ragtide binary first");
  cr_assert_eq(run("--config job.ini --counts counts.rtc --out ft --pairs 4 --cap-per-next 0.5 "
                   "--split-date 2026-01-11"),
               0, "%s", slurp("err"));
  /* prompt.mode = rag in the config does not matter: the base prompt has no RAG lines. */
  const char *usr[] = {"Watched:\n- jazz, blues\n- cooking\nNext?", "Watched:\n- cooking\n- jazz, blues\nNext?",
                       "Watched:\n- chess, strategy\n- hiking\nNext?", "Watched:\n- hiking\n- chess, strategy\nNext?"};
  const char *lab[] = {"chess, strategy", "chess, strategy", "astronomy", "cooking"};
  check_file("ft/train.openai.jsonl", 0, 4, "Pick one.", usr, lab);
  check_file("ft/train.gemini.jsonl", 1, 4, "Pick one.", usr, lab);
  const char *tlab[] = {"hiking", "knitting"};
  check_file("ft/test.openai.jsonl", 0, 2, "Pick one.", usr, tlab);
  check_file("ft/test.gemini.jsonl", 1, 2, "Pick one.", usr, tlab);
  char *m = slurp("ft/manifest.json");
  json_t *o = parse(m);
  cr_assert_str_eq(str_at(o, "split_date"), "2026-01-11");
  cr_assert_str_eq(str_at(o, "first_day"), "2026-01-08");
  cr_assert_str_eq(str_at(o, "last_day"), "2026-01-13");
  cr_assert_eq(strlen(str_at(o, "template_hash")), 16);
  cr_assert_eq(strlen(str_at(o, "catalog_hash")), 16);
  cr_assert_eq(json_integer_value(json_object_get(o, "cap")), 2);
  json_t *tr = json_object_get(o, "train"), *te = json_object_get(o, "test");
  cr_assert_eq(json_integer_value(json_object_get(tr, "samples")), 4);
  cr_assert_eq(json_integer_value(json_object_get(tr, "pairs_considered")), 6);
  cr_assert_eq(json_integer_value(json_object_get(tr, "pairs_skipped_by_cap")), 1);
  cr_assert_eq(json_integer_value(json_object_get(tr, "labels_capped")), 1);
  cr_assert_eq(json_integer_value(json_object_get(te, "samples")), 2);
  cr_assert_str_eq(str_at(o, "train.last_day"), "2026-01-10");
  cr_assert_str_eq(str_at(o, "test.first_day"), "2026-01-11");
  json_decref(o);
  free(m);
}

Test(export_finetune, default_split_and_no_system_part, .init = setup, .fini = teardown) {
  if (access(RAGTIDE_BUILD "/ragtide", X_OK) != 0) cr_skip_test("build the ragtide binary first");
  char set[256];
  snprintf(set, sizeof set, "--config job.ini --counts counts.rtc --out ft2 --set prompt.template=%s/nosys.tmpl", dir);
  cr_assert_eq(run(set), 0, "%s", slurp("err"));
  /* Days 2026-01-08 .. 01-13: 6 days, the last 6/5 -> 1 is test: only S+2. */
  char *m = slurp("ft2/manifest.json");
  json_t *o = parse(m);
  cr_assert_str_eq(str_at(o, "split_date"), "2026-01-13");
  json_decref(o);
  free(m);
  const char *usr[] = {"jazz, blues then cooking?", "cooking then jazz, blues?"};
  const char *lab[] = {"hiking", "knitting"};
  check_file("ft2/test.openai.jsonl", 0, 2, "", usr, lab);
  check_file("ft2/test.gemini.jsonl", 1, 2, "", usr, lab);
}

Test(export_finetune, errors_exit_codes, .init = setup, .fini = teardown) {
  if (access(RAGTIDE_BUILD "/ragtide", X_OK) != 0) cr_skip_test("build the ragtide binary first");
  cr_assert_eq(run("--config job.ini --counts nope.rtc --out ft"), 3);
  char *e = slurp("err");
  cr_assert(strstr(e, "nope.rtc"), "%s", e);
  free(e);
  cr_assert_eq(run("--config job.ini --counts other.rtc --out ft"), 3);
  e = slurp("err");
  cr_assert(strstr(e, "cluster id 99"), "%s", e);
  free(e);
  put("bad.rtc", "RTCOUNT1 not zstd at all");
  cr_assert_eq(run("--config job.ini --counts bad.rtc --out ft"), 3);
  cr_assert_eq(run("--config job.ini --counts counts.rtc --out ft --pairs 0"), 2);
  cr_assert_eq(run("--config job.ini --counts counts.rtc --out ft --cap-per-next 1.5"), 2);
  cr_assert_eq(run("--config job.ini --counts counts.rtc --out ft --split-date 2026-1-1"), 2);
  cr_assert_eq(run("--config job.ini --counts counts.rtc"), 2, "--out is required");
  cr_assert_eq(run("--config job.ini --counts counts.rtc --out ft --set prompt.nope=1"), 2);
  cr_assert_eq(run("--config job.ini --counts counts.rtc --out ft --bogus"), 2);
  cr_assert_eq(run("--config job.ini --counts counts.rtc --out /proc/ragtide-no"), 6);
  char ft[128];
  snprintf(ft, sizeof ft, "%s/ft", dir);
  cr_assert_eq(access(ft, F_OK), -1, "nothing written on failure");
}
