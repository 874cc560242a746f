/* test_prompt.c — template validation and rendering. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rag/prompt.h"

static const char *write_tmp(const char *text) {
  static char path[64];
  strcpy(path, "/tmp/rt_tmpl_XXXXXX");
  int fd = mkstemp(path);
  cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  return path;
}

static rt_catalog cat4(void) {
  uint32_t ids[] = {10, 20, 30, 40};
  const char *d[] = {"jazz, blues", "cooking", "chess, strategy", "hiking"};
  rt_catalog c;
  rt_err err = {0};
  cr_assert_eq(rt_catalog_build(ids, d, 4, "test", &c, &err), RT_OK);
  return c;
}

Test(prompt, renders_rag_and_base_forms) {
  const char *p = write_tmp("### system\nBe brief.\n### user\n1. {{c1}}\n2. {{c2}}\n{{#rag}}\nRecent next:\n"
                            "{{retrieved}}\n{{/rag}}\n{{#popular}}\nPopular:\n{{popular}}\n{{/popular}}\nNext?\n");
  rt_template t;
  rt_err err = {0};
  cr_assert_eq(rt_template_load(p, &t, &err), RT_OK, "%s", err.msg);
  rt_catalog cat = cat4();
  uint32_t ret[] = {2, 3};
  rt_prompt_vars v = {&cat, 0, 1, ret, 2, NULL, 0, ""};
  char *sys, *usr;
  rt_prompt_render(&t, &v, &sys, &usr);
  cr_assert_str_eq(sys, "Be brief.");
  cr_assert_str_eq(usr, "1. jazz, blues\n2. cooking\nRecent next:\n- chess, strategy\n- hiking\nNext?");
  free(sys);
  free(usr);
  v.n_retrieved = 0; /* no context: the RAG lines disappear */
  uint32_t pop[] = {3};
  v.popular = pop;
  v.n_popular = 1;
  rt_prompt_render(&t, &v, &sys, &usr);
  cr_assert_str_eq(usr, "1. jazz, blues\n2. cooking\nPopular:\n- hiking\nNext?");
  free(sys);
  free(usr);
  rt_template_free(&t);
  rt_catalog_free(&cat);
  unlink(p);
}

Test(prompt, examples_block_only_when_non_empty) {
  const char *p = write_tmp("{{c1}} / {{c2}}\n{{#examples}}\nRecent transitions:\n{{examples}}\n{{/examples}}\nNext?\n");
  rt_template t;
  rt_err err = {0};
  cr_assert_eq(rt_template_load(p, &t, &err), RT_OK, "%s", err.msg);
  rt_catalog cat = cat4();
  rt_prompt_vars v = {&cat, 2, 3, NULL, 0, NULL, 0, "- jazz, blues | cooking -> hiking"};
  char *sys, *usr;
  rt_prompt_render(&t, &v, &sys, &usr);
  cr_assert_str_eq(usr, "chess, strategy / hiking\nRecent transitions:\n- jazz, blues | cooking -> hiking\nNext?");
  cr_assert_str_eq(sys, "");
  free(sys);
  free(usr);
  v.examples = "";
  rt_prompt_render(&t, &v, &sys, &usr);
  cr_assert_str_eq(usr, "chess, strategy / hiking\nNext?");
  free(sys);
  free(usr);
  rt_template_free(&t);
  rt_catalog_free(&cat);
  unlink(p);
}

static void expect_bad(const char *text, const char *needle) {
  const char *p = write_tmp(text);
  rt_template t;
  rt_err err = {0};
  cr_assert_eq(rt_template_load(p, &t, &err), RT_ERR_INPUT, "accepted: %s", text);
  cr_assert(strstr(err.msg, needle), "message \"%s\" lacks \"%s\"", err.msg, needle);
  unlink(p);
}

Test(prompt, bad_templates_name_the_line) {
  expect_bad("1. {{c1}}\n2. {{c3}}\n", ":2: unknown placeholder {{c3}}");
  expect_bad("{{#rag}}\nx\n", ":1: block {{#rag}} is never closed");
  expect_bad("x\n{{/rag}}\n", ":2: {{/rag}} does not close");
  expect_bad("{{#bogus}}\n{{/bogus}}\n", ":1: unknown block");
  expect_bad("a {{c1\n", ":1: \"{{\" without");
}

Test(prompt, shipped_templates_load) {
  rt_template t;
  rt_err err = {0};
  cr_assert_eq(rt_template_load(RAGTIDE_SRC "/jobs/prompts/rag.tmpl", &t, &err), RT_OK, "%s", err.msg);
  rt_template_free(&t);
  cr_assert_eq(rt_template_load(RAGTIDE_SRC "/jobs/prompts/base.tmpl", &t, &err), RT_OK, "%s", err.msg);
  rt_template_free(&t);
}
