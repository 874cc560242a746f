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
  cr_assert_eq(rt_config_validate(&c, &err), RT_OK, "%s", err.msg);
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
  char want[128];
  snprintf(want, sizeof want, "%s:5: unknown key \"llm.concurency\"", p);
  cr_assert(strstr(err.msg, want) != NULL, "got: %s", err.msg);
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

Test(config, validate_checks_required_and_ranges) {
  rt_config c;
  rt_err err = {0};
  rt_config_defaults(&c);
  cr_assert_eq(rt_config_validate(&c, &err), RT_ERR_USAGE);
  cr_assert(strstr(err.msg, "input.catalog") != NULL);
  rt_config_set(&c, "input.catalog=c", &err);
  rt_config_set(&c, "input.logs=l", &err);
  rt_config_set(&c, "input.window_start=2026-01-08", &err);
  rt_config_set(&c, "input.window_end=2026-01-01", &err);
  cr_assert_eq(rt_config_validate(&c, &err), RT_ERR_USAGE);
  cr_assert(strstr(err.msg, "window_end must be after") != NULL);
  rt_config_set(&c, "input.window_start=1970-01-02", &err); /* events carry 32-bit seconds from the start */
  rt_config_set(&c, "input.window_end=2060-01-01", &err);
  cr_assert_eq(rt_config_validate(&c, &err), RT_ERR_USAGE);
  cr_assert(strstr(err.msg, "shorter than 68 years") != NULL, "%s", err.msg);
  rt_config_set(&c, "input.window_start=2026-01-08", &err);
  rt_config_set(&c, "input.window_end=2026-01-09", &err);
  rt_config_set(&c, "job.threads=-1", &err);
  cr_assert_eq(rt_config_validate(&c, &err), RT_ERR_USAGE);
  cr_assert(strstr(err.msg, "job.threads") != NULL, "%s", err.msg);
  rt_config_set(&c, "job.threads=0", &err);
  cr_assert_eq(rt_config_validate(&c, &err), RT_OK, "%s", err.msg);
  rt_config_set(&c, "gates.min_exact_match=1.5", &err);
  cr_assert_eq(rt_config_validate(&c, &err), RT_ERR_USAGE);
  rt_config_free(&c);
}
