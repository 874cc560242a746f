/* match.c — exact (hash of normalised text) and fuzzy (keyword Jaccard) matching. */
#include "rag/match.h"

#include "base/metrics.h"
#include "base/util.h"

#include <stdlib.h>
#include <string.h>

void rt_matcher_init(rt_matcher *m, const rt_catalog *cat, int fuzzy, double threshold) {
  memset(m, 0, sizeof *m);
  m->cat = cat;
  m->fuzzy = fuzzy;
  m->threshold = threshold;
  uint32_t cap = 16;
  while (cap < 2 * cat->n) cap *= 2;
  m->mask = cap - 1;
  m->slot = rt_xmalloc(cap * sizeof *m->slot);
  m->slot_h = rt_xmalloc(cap * sizeof *m->slot_h);
  for (uint32_t i = 0; i < cap; i++) m->slot[i] = -1;
  for (uint32_t i = 0; i < cat->n; i++) {
    uint64_t h = rt_hash_bytes(cat->norm[i], strlen(cat->norm[i]));
    uint32_t s = (uint32_t)h & m->mask;
    while (m->slot[s] >= 0) s = (s + 1) & m->mask;
    m->slot[s] = (int32_t)i;
    m->slot_h[s] = h;
  }
}

static int32_t exact(const rt_matcher *m, const char *norm) {
  uint64_t h = rt_hash_bytes(norm, strlen(norm));
  uint32_t s = (uint32_t)h & m->mask;
  while (m->slot[s] >= 0) {
    if (m->slot_h[s] == h && strcmp(m->cat->norm[m->slot[s]], norm) == 0) return m->slot[s];
    s = (s + 1) & m->mask;
  }
  return -1;
}

/* Keyword-set Jaccard of two normalised descriptions (", "-separated,
 * sorted, unique): a merge walk over the two sorted lists. */
static double jaccard(const char *a, const char *b) {
  size_t inter = 0, na = 0, nb = 0;
  const char *pa = a, *pb = b;
  while (*pa || *pb) {
    const char *ea = *pa ? strstr(pa, ", ") : NULL, *eb = *pb ? strstr(pb, ", ") : NULL;
    size_t la = *pa ? (ea ? (size_t)(ea - pa) : strlen(pa)) : 0;
    size_t lb = *pb ? (eb ? (size_t)(eb - pb) : strlen(pb)) : 0;
    int c;
    if (!*pa) c = 1;
    else if (!*pb) c = -1;
    else {
      size_t l = la < lb ? la : lb;
      c = strncmp(pa, pb, l);
      if (c == 0) c = la < lb ? -1 : la > lb;
    }
    if (c <= 0) {
      na++;
      pa = ea ? ea + 2 : pa + la;
    }
    if (c >= 0) {
      nb++;
      pb = eb ? eb + 2 : pb + lb;
    }
    if (c == 0) inter++;
  }
  size_t uni = na + nb - inter;
  return uni ? (double)inter / (double)uni : 0.0;
}

rt_match_result rt_match(const rt_matcher *m, const char *answer, uint32_t c1, uint32_t c2) {
  rt_match_result r = {RT_MATCH_NONE, -1, 0, 0.0};
  if (!answer) return r;
  char stackbuf[512];
  size_t need = rt_normalize_desc(answer, stackbuf, sizeof stackbuf);
  char *norm = stackbuf;
  if (need >= sizeof stackbuf) {
    norm = rt_xmalloc(need + 1);
    rt_normalize_desc(answer, norm, need + 1);
  }
  int32_t idx = exact(m, norm);
  if (idx >= 0) {
    r.kind = RT_MATCH_EXACT;
    r.idx = idx;
    r.similarity = 1.0;
  } else if (m->fuzzy && *norm) {
    double best = -1;
    for (uint32_t i = 0; i < m->cat->n; i++) {
      double s = jaccard(norm, m->cat->norm[i]);
      if (s > best) {
        best = s;
        idx = (int32_t)i;
      }
    }
    if (best >= m->threshold && best > 0) {
      r.kind = RT_MATCH_FUZZY;
      r.idx = idx;
      r.similarity = best;
    }
  }
  if (r.idx >= 0) r.novel = (uint32_t)r.idx != c1 && (uint32_t)r.idx != c2;
  if (norm != stackbuf) free(norm);
  /* The pair's outcome (match.h): matched (exact or fuzzy), novel (the
   * prediction), or the reason it falls back. */
  if (r.idx < 0) {
    rt_metric_add(RT_M_match_fallback_unmatched, 1);
  } else {
    rt_metric_add(RT_M_match_matched, 1);
    rt_metric_add(r.novel ? RT_M_match_novel : RT_M_match_fallback_not_novel, 1);
  }
  return r;
}

void rt_matcher_free(rt_matcher *m) {
  free(m->slot);
  free(m->slot_h);
  memset(m, 0, sizeof *m);
}
