/* test_match.c — exact and fuzzy matching of answers to the catalog. */
#include <criterion/criterion.h>

#include "rag/match.h"

static rt_catalog cat4(void) {
  uint32_t ids[] = {10, 20, 30, 40};
  const char *d[] = {"jazz, blues", "cooking, street food", "chess, strategy, board games", "hiking"};
  rt_catalog c;
  rt_err err = {0};
  cr_assert_eq(rt_catalog_build(ids, d, 4, "test", &c, &err), RT_OK);
  return c;
}

Test(match, exact_after_normalisation) {
  rt_catalog cat = cat4();
  rt_matcher m;
  rt_matcher_init(&m, &cat, 0, 0.5);
  rt_match_result r = rt_match(&m, "  Street Food,  COOKING.", 0, 3);
  cr_assert_eq(r.kind, RT_MATCH_EXACT);
  cr_assert_eq(r.idx, 1);
  cr_assert_eq(r.novel, 1);
  r = rt_match(&m, "Blues, Jazz", 0, 3); /* names c1: matched but not novel */
  cr_assert_eq(r.kind, RT_MATCH_EXACT);
  cr_assert_eq(r.idx, 0);
  cr_assert_eq(r.novel, 0);
  r = rt_match(&m, "chess, strategy", 0, 1); /* a subset is not exact */
  cr_assert_eq(r.kind, RT_MATCH_NONE);
  cr_assert_eq(r.idx, -1);
  r = rt_match(&m, NULL, 0, 1);
  cr_assert_eq(r.kind, RT_MATCH_NONE);
  rt_matcher_free(&m);
  rt_catalog_free(&cat);
}

Test(match, fuzzy_by_keyword_jaccard) {
  rt_catalog cat = cat4();
  rt_matcher m;
  rt_matcher_init(&m, &cat, 1, 0.5);
  rt_match_result r = rt_match(&m, "chess, strategy", 0, 1); /* 2 of 3 keywords: 0.667 */
  cr_assert_eq(r.kind, RT_MATCH_FUZZY);
  cr_assert_eq(r.idx, 2);
  cr_assert_float_eq(r.similarity, 2.0 / 3.0, 1e-9);
  r = rt_match(&m, "chess, poker, dice, cards", 0, 1); /* 1 of 6: below threshold */
  cr_assert_eq(r.kind, RT_MATCH_NONE);
  rt_matcher_free(&m);
  rt_catalog_free(&cat);
}
