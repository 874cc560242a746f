/* match.h — stage 9: map an LLM answer to a catalog cluster.
 *
 * Owns the exact-match rule of paper §2.2: the answer, normalised like every
 * catalog description (rt_normalize_desc: case, white space, punctuation,
 * keyword order), must equal one description. Only those count toward the
 * exact-match rate the quality gate checks. With match.fuzzy = on, other
 * answers map to the description with the highest keyword-set Jaccard
 * similarity if it reaches match.fuzzy_threshold (counted separately). An
 * answer naming c1 or c2 is "not novel": matched, but not a prediction.
 *
 * rt_match counts each answer's outcome in the metrics (base/metrics.h):
 * match.matched (names a catalog cluster, exact or fuzzy), match.novel
 * (matched and neither c1 nor c2: the pair's prediction), and the fallbacks
 * by reason, match.fallback_unmatched (names no cluster) and
 * match.fallback_not_novel (names c1 or c2); the caller counts
 * match.fallback_failed (the endpoint gave no answer). The exact-match rate
 * of the quality gate (gates.min_exact_match) is match.exact / match.answers:
 * every exact match, novel or not. With llm.constrain on, c1 and c2 are not
 * in the allowed answers (llm/request.h), so constrained exact matches are
 * novel by construction. */
#ifndef RT_RAG_MATCH_H
#define RT_RAG_MATCH_H

#include <stdint.h>

#include "format/catalog.h"

typedef enum { RT_MATCH_EXACT = 0, RT_MATCH_FUZZY = 1, RT_MATCH_NONE = 2 } rt_match_kind;

typedef struct rt_match_result {
  rt_match_kind kind;
  int32_t idx;       /* dense index, -1 for RT_MATCH_NONE */
  int novel;         /* idx is neither c1 nor c2 */
  double similarity; /* 1 for exact */
} rt_match_result;

typedef struct rt_matcher {
  const rt_catalog *cat;
  uint32_t mask;
  int32_t *slot;     /* hash of normalised description -> index */
  uint64_t *slot_h;
  int fuzzy;
  double threshold;
} rt_matcher;

void rt_matcher_init(rt_matcher *m, const rt_catalog *cat, int fuzzy, double threshold);
rt_match_result rt_match(const rt_matcher *m, const char *answer, uint32_t c1, uint32_t c2);
void rt_matcher_free(rt_matcher *m);

#endif
