/* test_config.c — INI parsing, --set overrides, validation, errors with file:line. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "format/config.h"

static const char *write_ini(const char *text) {
  static char path[64];
  strcpy(path, "/tmp/rt_config_XXXXXX");
  int fd = mkstemp(path);
  cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  return path;
}

Test(config, defaults_file_and_overrides) {
  rt_config c;
  rt_err err = {0};
  rt_config_defaults(&c);
  cr_assert_eq(c.top_n, 1);
  cr_assert_float_eq(c.min_exact_match, 0.90, 1e-12);
  cr_assert_str_eq(c.dedup, "consecutive");
  const char *p = write_ini("[input]\ncatalog = cat.tsv\nlogs = logs/*.msgpack.zst\nwindow_start = 2026-01-01\n"
                            "window_end = 2026-01-08\n[retrieval]\ntop_n = 3\n[output]\ntable = t.rtt\n"
                            "created_at = 2026-02-01T00:00:00Z\n");
  cr_assert_eq(rt_config_load(&c, p, &err), RT_OK, "%s", err.msg);
  cr_assert_str_eq(c.catalog, "cat.tsv");
  cr_assert_eq(c.window_start, 1767225600);
  cr_assert_eq(c.window_end, 1767225600 + 7 * 86400);
  cr_assert_eq(c.created_at, 1769904000);
  cr_assert_eq(c.top_n, 3);
  cr_assert_eq(rt_config_set(&c, "retrieval.top_n=2", &err), RT_OK);
  cr_assert_eq(c.top_n, 2);
  cr_assert_eq(rt_config_set(&c, "input.dedup = unique", &err), RT_OK);
  cr_assert_str_eq(c.dedup, "unique");
  cr_assert_eq(rt_config_set(&c, "output.created_at=12345", &err), RT_OK);
  cr_assert_eq(c.created_at, 12345);
  cr_assert_eq(rt_config_validate(&c, "aggregate", &err), RT_OK, "%s", err.msg);
  uint64_t h = rt_config_hash(&c);
  cr_assert_eq(rt_config_set(&c, "output.table=other.rtt", &err), RT_OK);
  cr_assert_eq(rt_config_hash(&c), h, "output paths do not change the config hash");
  cr_assert_eq(rt_config_set(&c, "retrieval.top_n=4", &err), RT_OK);
  cr_assert_neq(rt_config_hash(&c), h);
  rt_config_free(&c);
  unlink(p);
}

Test(config, unknown_key_names_file_and_line) {
  rt_config c;
  rt_err err = {0};
  rt_config_defaults(&c);
  const char *p = write_ini("[input]\ncatalog = x\n\n[llm]\nconcurency = 4\n");
  cr_assert_eq(rt_config_load(&c, p, &err), RT_ERR_USAGE);
  char want[256];
  snprintf(want, sizeof want,
           "%s:5: unknown key \"llm.concurency\"; did you mean \"llm.concurrency\"? (`ragtide help config` lists "
           "the keys)", p);
  cr_assert_str_eq(err.msg, want);
  rt_config_free(&c);
  unlink(p);
}

Test(config, bad_values_are_refused) {
  rt_config c;
  rt_err err = {0};
  rt_config_defaults(&c);
  cr_assert_eq(rt_config_set(&c, "retrieval.top_n=two", &err), RT_ERR_USAGE);
  cr_assert(strstr(err.msg, "not an integer") != NULL);
  cr_assert_eq(rt_config_set(&c, "input.dedup=sometimes", &err), RT_ERR_USAGE);
  cr_assert(strstr(err.msg, "consecutive|unique") != NULL);
  cr_assert_eq(rt_config_set(&c, "input.window_start=2026-02-31", &err), RT_ERR_USAGE);
  cr_assert_eq(rt_config_set(&c, "llm.insecure=maybe", &err), RT_ERR_USAGE);
  cr_assert_eq(rt_config_set(&c, "nosuch.key=1", &err), RT_ERR_USAGE);
  cr_assert_eq(rt_config_set(&c, "noequals", &err), RT_ERR_USAGE);
  rt_config_free(&c);
}

Test(config, batch_input_chooses_inline_or_file) {
  rt_config c;
  rt_err err = {0};
  rt_config_defaults(&c);
  cr_assert_str_eq(c.batch_input, "auto");
  uint64_t h = rt_config_hash(&c);
  cr_assert_eq(rt_config_set(&c, "llm.batch_input=file", &err), RT_OK, "%s", err.msg);
  cr_assert_str_eq(c.batch_input, "file");
  cr_assert_eq(rt_config_hash(&c), h, "how requests travel does not change the answers, nor the config hash");
  cr_assert_eq(rt_config_set(&c, "llm.batch_input=inline", &err), RT_OK, "%s", err.msg);
  cr_assert_eq(rt_config_set(&c, "llm.batch_input=gcs", &err), RT_ERR_USAGE);
  cr_assert(strstr(err.msg, "auto|inline|file") != NULL, "%s", err.msg);
  /* a Gemini input file takes up to 2 GB */
  cr_assert_eq(rt_config_set(&c, "llm.batch_max_bytes=2000000000", &err), RT_OK, "%s", err.msg);
  cr_assert_eq(rt_config_set(&c, "llm.batch_max_bytes=2000000001", &err), RT_ERR_USAGE);
  rt_config_free(&c);
}

Test(config, validate_checks_required_and_ranges) {
  rt_config c;
  rt_err err = {0};
  rt_config_defaults(&c);
  cr_assert_eq(rt_config_validate(&c, "aggregate", &err), RT_ERR_USAGE);
  cr_assert(strstr(err.msg, "input.catalog") != NULL);
  rt_config_set(&c, "input.catalog=c", &err);
  rt_config_set(&c, "input.logs=l", &err);
  rt_config_set(&c, "input.window_start=2026-01-08", &err);
  rt_config_set(&c, "input.window_end=2026-01-01", &err);
  cr_assert_eq(rt_config_validate(&c, "aggregate", &err), RT_ERR_USAGE);
  cr_assert_str_eq(err.msg, "--set: input.window_end must be after input.window_start (--set)");
  rt_config_set(&c, "input.window_start=1970-01-02", &err); /* events carry 32-bit seconds from the start */
  rt_config_set(&c, "input.window_end=2060-01-01", &err);
  cr_assert_eq(rt_config_validate(&c, "aggregate", &err), RT_ERR_USAGE);
  cr_assert(strstr(err.msg, "shorter than 68 years") != NULL, "%s", err.msg);
  rt_config_set(&c, "input.window_start=2026-01-08", &err);
  rt_config_set(&c, "input.window_end=2026-01-09", &err);
  cr_assert_eq(rt_config_set(&c, "job.threads=-1", &err), RT_ERR_USAGE);
  cr_assert(strstr(err.msg, "job.threads") != NULL, "%s", err.msg);
  cr_assert_eq(c.threads, 0, "a refused value leaves the key as it was");
  rt_config_set(&c, "job.threads=0", &err);
  cr_assert_eq(rt_config_validate(&c, "aggregate", &err), RT_OK, "%s", err.msg);
  c.min_exact_match = 1.5;
  cr_assert_eq(rt_config_validate(&c, "aggregate", &err), RT_ERR_USAGE);
  rt_config_free(&c);
}

/* The message of rt_config_set(assignment) on a fresh config. */
static const char *set_msg(const char *assignment) {
  static rt_err err;
  rt_config c;
  rt_config_defaults(&c);
  memset(&err, 0, sizeof err);
  cr_assert_eq(rt_config_set(&c, assignment, &err), RT_ERR_USAGE, "%s was accepted", assignment);
  rt_config_free(&c);
  return err.msg;
}

Test(config, unknown_keys_suggest_the_nearest) {
  cr_assert_str_eq(set_msg("llm.concurency=4"),
                   "--set: unknown key \"llm.concurency\"; did you mean \"llm.concurrency\"? (`ragtide help config` "
                   "lists the keys)");
  cr_assert_str_eq(set_msg("retrieval.topn=2"),
                   "--set: unknown key \"retrieval.topn\"; did you mean \"retrieval.top_n\"? (`ragtide help config` "
                   "lists the keys)");
  /* a misspelt section, a key in the wrong section */
  cr_assert(strstr(set_msg("lmm.model=x"), "did you mean \"llm.model\"?") != NULL);
  cr_assert(strstr(set_msg("input.model=x"), "did you mean \"llm.model\"?") != NULL);
  /* nothing close: no suggestion */
  cr_assert_str_eq(set_msg("nosuch.thing=1"),
                   "--set: unknown key \"nosuch.thing\" (`ragtide help config` lists the keys)");
  cr_assert_str_eq(set_msg("input.dedup=uniq"),
                   "--set: input.dedup = \"uniq\" is not one of consecutive|unique; did you mean \"unique\"?");
  cr_assert(strstr(set_msg("llm.api=opena"), "; did you mean \"openai\"?") != NULL);
}

Test(config, out_of_range_values_name_the_origin_and_the_range) {
  cr_assert_str_eq(set_msg("output.keep=100"), "--set: output.keep = 100: must be in 0..99");
  cr_assert_str_eq(set_msg("retrieval.popular_n=-1"), "--set: retrieval.popular_n = -1: must be in 0..64");
  cr_assert_str_eq(set_msg("gates.min_exact_match=1.5"), "--set: gates.min_exact_match = 1.5: must be in [0, 1]");
  cr_assert_str_eq(set_msg("memory.per_rank_mb=-1"),
                   "--set: memory.per_rank_mb = -1: must be in 0..1073741824 (MiB; 0 = no cap)");
  cr_assert_str_eq(set_msg("output.flush_s=0"), "--set: output.flush_s = 0: must be in 1..3600");
  cr_assert_str_eq(set_msg("llm.temperature=2.5"), "--set: llm.temperature = 2.5: must be in [0, 2]");
  cr_assert_str_eq(set_msg("input.window_start=1969-12-31"),
                   "--set: input.window_start = \"1969-12-31\": must be 1970-01-01 or later");
  /* in a file: path:line of the very line, also for a key given twice */
  rt_config c;
  rt_err err = {0};
  rt_config_defaults(&c);
  const char *p = write_ini("[retrieval]\ntop_n = 2\n; comment\n\n[retrieval]\ntop_n = 0\n");
  cr_assert_eq(rt_config_load(&c, p, &err), RT_ERR_USAGE);
  char want[256];
  snprintf(want, sizeof want, "%s:6: retrieval.top_n = 0: must be in 1..100", p);
  cr_assert_str_eq(err.msg, want);
  rt_config_free(&c);
  unlink(p);
  /* errors across keys name where each came from */
  rt_config_defaults(&c);
  p = write_ini("[input]\ncatalog = c\nlogs = l\nwindow_start = 2026-01-08\nwindow_end = 2026-01-01\n");
  cr_assert_eq(rt_config_load(&c, p, &err), RT_OK, "%s", err.msg);
  cr_assert_eq(rt_config_validate(&c, "aggregate", &err), RT_ERR_USAGE);
  snprintf(want, sizeof want, "%s:5: input.window_end must be after input.window_start (%s:4)", p, p);
  cr_assert_str_eq(err.msg, want);
  rt_config_set(&c, "input.logs=", &err);
  cr_assert_eq(rt_config_validate(&c, "aggregate", &err), RT_ERR_USAGE);
  snprintf(want, sizeof want, "%s: input.logs is required by aggregate (`ragtide help config aggregate`)", p);
  cr_assert_str_eq(err.msg, want);
  rt_config_free(&c);
  unlink(p);
  /* the defaults are in range */
  rt_config_defaults(&c);
  cr_assert_eq(rt_config_validate(&c, NULL, &err), RT_OK, "%s", err.msg);
  /* a value set by code is checked by validate, named "config" */
  c.keep = -3;
  cr_assert_eq(rt_config_validate(&c, NULL, &err), RT_ERR_USAGE);
  cr_assert_str_eq(err.msg, "config: output.keep = -3: must be in 0..99");
  rt_config_free(&c);
}

Test(config, secrets_are_never_echoed) {
  /* a --set without '=' (the value may be a header) */
  const char *m = set_msg("llm.headers:Authorization Bearer sk-SECRET");
  cr_assert_str_eq(m, "--set: expected section.key=value (`ragtide help config` lists the keys)");
  /* an unknown key names the key only */
  m = set_msg("llm.header=Authorization: Bearer sk-SECRET");
  cr_assert(strstr(m, "SECRET") == NULL, "%s", m);
  cr_assert(strstr(m, "did you mean \"llm.headers\"?") != NULL, "%s", m);
}

Test(config, epoch_is_an_ordinary_date) {
  rt_config c;
  rt_err err = {0};
  rt_config_defaults(&c);
  cr_assert_eq(rt_config_given(&c, "input.window_start"), 0);
  cr_assert_eq(rt_config_set(&c, "input.catalog=c", &err), RT_OK);
  cr_assert_eq(rt_config_set(&c, "input.logs=l", &err), RT_OK);
  cr_assert_eq(rt_config_set(&c, "input.window_start=1970-01-01", &err), RT_OK);
  cr_assert_eq(rt_config_set(&c, "input.window_end=1970-01-08", &err), RT_OK);
  cr_assert_eq(c.window_start, 0);
  cr_assert(rt_config_given(&c, "input.window_start"));
  cr_assert_eq(rt_config_validate(&c, "aggregate", &err), RT_OK, "%s", err.msg);
  cr_assert_eq(rt_config_set(&c, "output.created_at=1970-01-01", &err), RT_OK);
  cr_assert(rt_config_given(&c, "output.created_at"), "a pinned created-at of 0 is pinned, not \"now\"");
  rt_config_free(&c);
}

Test(config, required_keys_depend_on_the_command) {
  rt_config c;
  rt_err err = {0};
  rt_config_defaults(&c);
  rt_config_set(&c, "input.catalog=c", &err);
  rt_config_set(&c, "output.table=t.rtt", &err);
  /* a base run needs neither logs nor a window */
  rt_config_set(&c, "prompt.mode=base", &err);
  cr_assert_eq(rt_config_validate(&c, "refresh", &err), RT_OK, "%s", err.msg);
  /* ... an aggregate run needs both */
  cr_assert_eq(rt_config_validate(&c, "aggregate", &err), RT_ERR_USAGE);
  cr_assert_str_eq(err.msg, "config: input.logs is required by aggregate (`ragtide help config aggregate`)");
  rt_config_set(&c, "prompt.mode=rag", &err);
  cr_assert_eq(rt_config_validate(&c, "refresh", &err), RT_ERR_USAGE);
  cr_assert_str_eq(err.msg, "config: input.logs is required by refresh, unless input.counts is set or prompt.mode = "
                            "base (`ragtide help config refresh`)");
  /* a counts-file run needs the window (its days are re-windowed), not the logs */
  rt_config_set(&c, "input.counts=x.rtc", &err);
  cr_assert_eq(rt_config_validate(&c, "refresh", &err), RT_ERR_USAGE);
  cr_assert_str_eq(err.msg, "config: input.window_start is required by refresh, unless input.window_days is set or "
                            "prompt.mode = base (`ragtide help config refresh`)");
  rt_config_set(&c, "input.window_days=7", &err);
  cr_assert_eq(rt_config_validate(&c, "refresh", &err), RT_OK, "%s", err.msg);
  /* export-finetune needs the catalog only; eval the catalog and the logs */
  cr_assert_eq(rt_config_validate(&c, "export-finetune", &err), RT_OK, "%s", err.msg);
  cr_assert_eq(rt_config_validate(&c, "eval", &err), RT_ERR_USAGE);
  cr_assert(strstr(err.msg, "input.logs is required by eval") != NULL, "%s", err.msg);
  rt_config_set(&c, "output.table=", &err);
  rt_config_set(&c, "input.logs=l", &err);
  cr_assert_eq(rt_config_validate(&c, "refresh", &err), RT_ERR_USAGE);
  cr_assert_str_eq(err.msg, "config: output.table is required by refresh (`ragtide help config refresh`)");
  rt_config_free(&c);
}
