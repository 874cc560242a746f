/* test_catalog.c — catalog loading, indexing, normalisation. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/catalog.h"

static char *write_tmp(const char *text) {
  static char path[64];
  strcpy(path, "/tmp/rt_catalog_XXXXXX");
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  return path;
}

Test(catalog, normalises_case_spaces_punctuation_order) {
  char out[128];
  rt_normalize_desc("  Blues ,  JAZZ. ", out, sizeof out);
  cr_assert_str_eq(out, "blues, jazz");
  rt_normalize_desc("Sci-Fi; space opera|space opera", out, sizeof out);
  cr_assert_str_eq(out, "sci fi, space opera");
  cr_assert_eq(rt_normalize_desc(" , ;", out, sizeof out), 0);
  /* truncation reports the needed length like snprintf */
  cr_assert_eq(rt_normalize_desc("jazz, blues", out, 4), strlen("blues, jazz"));
}

Test(catalog, loads_and_indexes_by_ascending_id) {
  const char *p = write_tmp("# comment\n900\tjazz, blues\n7\tcooking, street food\r\n\n42\tchess\n");
  rt_catalog cat;
  rt_err err = {0};
  cr_assert_eq(rt_catalog_load(p, &cat, &err), RT_OK, "%s", err.msg);
  cr_assert_eq(cat.n, 3);
  cr_assert_eq(cat.ids[0], 7);
  cr_assert_eq(cat.ids[1], 42);
  cr_assert_eq(cat.ids[2], 900);
  cr_assert_eq(rt_catalog_index(&cat, 900), 2);
  cr_assert_eq(rt_catalog_index(&cat, 7), 0);
  cr_assert_eq(rt_catalog_index(&cat, 8), -1);
  cr_assert_str_eq(cat.desc[0], "cooking, street food");
  cr_assert_str_eq(cat.norm[2], "blues, jazz");
  cr_assert_eq(rt_catalog_find_norm(&cat, "chess"), 1);
  uint64_t h = cat.hash;
  rt_catalog_free(&cat);
  /* same clusters in another line order: same indices and hash */
  p = write_tmp("42\tchess\n900\tjazz, blues\n7\tcooking, street food\n");
  cr_assert_eq(rt_catalog_load(p, &cat, &err), RT_OK);
  cr_assert_eq(cat.hash, h);
  rt_catalog_free(&cat);
  unlink(p);
}

static void expect_error(const char *text, const char *needle) {
  const char *p = write_tmp(text);
  rt_catalog cat;
  rt_err err = {0};
  cr_assert_eq(rt_catalog_load(p, &cat, &err), RT_ERR_INPUT, "expected failure for: %s", text);
  cr_assert(strstr(err.msg, needle) != NULL, "message \"%s\" lacks \"%s\"", err.msg, needle);
  cr_assert(strstr(err.msg, p) != NULL, "message \"%s\" lacks the path", err.msg);
  unlink(p);
}

Test(catalog, malformed_lines_name_file_and_line) {
  expect_error("1\tjazz\n2 no tab here\n", ":2: expected");
  expect_error("1\tjazz\nx7\trock\n", ":2: cluster id \"x7\"");
  expect_error("1\tjazz\n4294967296\trock\n", ":2: cluster id");
  expect_error("1\tjazz\n2\t , \n", ":2: cluster 2 has no keywords");
  expect_error("1\tjazz\n\n1\trock\n", ":3: duplicate cluster id 1 (first at line 1)");
  expect_error("1\tjazz, blues\n2\tBlues, Jazz\n", "same description");
  expect_error("# only a comment\n", "no clusters");
}

Test(catalog, missing_file) {
  rt_catalog cat;
  rt_err err = {0};
  cr_assert_eq(rt_catalog_load("/nonexistent/catalog.tsv", &cat, &err), RT_ERR_INPUT);
  cr_assert(strstr(err.msg, "/nonexistent/catalog.tsv") != NULL);
}
