/* catalog.h — the cluster catalog: external cluster ids <-> dense indices and
 * the keyword description of each cluster.
 *
 * File format (docs/formats.md §1): UTF-8 TSV, one cluster per line,
 *   cluster_id<TAB>keyword, keyword, ...
 * Blank lines and lines starting with '#' are ignored. Ids are any 32-bit
 * unsigned values; they need not be dense or sorted. Dense index = rank of the
 * id in ascending id order, so the indexing never depends on line order.
 * Two clusters may not share an id, nor a normalised description (an answer
 * must name exactly one cluster). Layer 0: no MPI, no curl. */
#ifndef RT_FORMAT_CATALOG_H
#define RT_FORMAT_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define RT_CATALOG_MAX 1000000u /* dense indices fit in 20 bits at most */

typedef struct rt_catalog {
  uint32_t n;        /* number of clusters */
  uint32_t *ids;     /* [n] external ids, ascending; ids[i] is dense index i */
  char **desc;       /* [n] description as written (trimmed) */
  char **norm;       /* [n] normalised description (rt_normalize_desc) */
  uint64_t hash;     /* FNV-1a over (id, normalised description) in index order */
  /* id -> index (private): a direct table when every id is below direct_n
   * (small ids: one load per lookup), else linear probing over map. */
  int32_t *direct;
  uint32_t direct_n;
  struct rt_catalog_slot { uint32_t id; int32_t idx; } *map; /* idx -1: empty */
  uint32_t map_mask;
  int map_shift;     /* 64 - log2(map size): slot = (id * golden) >> map_shift */
} rt_catalog;

/* Load and validate a catalog file. On error fills err with the file, line
 * and what is wrong (RT_ERR_INPUT) and leaves *cat empty. */
int rt_catalog_load(const char *path, rt_catalog *cat, rt_err *err);

/* Build a catalog from parallel arrays (ids need not be sorted). Copies the
 * strings. `origin` names the source in error messages. */
int rt_catalog_build(const uint32_t *ids, const char *const *desc, uint32_t n,
                     const char *origin, rt_catalog *cat, rt_err *err);

/* Write the catalog as TSV in dense-index order. */
int rt_catalog_write(const rt_catalog *cat, const char *path, rt_err *err);

/* Dense index of an external id, or -1 if the id is not in the catalog. O(1).
 * Inline: the read stage calls it once per event. */
static inline int32_t rt_catalog_index(const rt_catalog *cat, uint32_t id) {
  if (cat->direct) return id < cat->direct_n ? cat->direct[id] : -1;
  if (!cat->map) return -1;
  /* Fibonacci hashing: one multiply, top bits */
  uint32_t s = (uint32_t)(((uint64_t)id * 0x9e3779b97f4a7c15ULL) >> cat->map_shift);
  for (;;) {
    const struct rt_catalog_slot *e = &cat->map[s];
    if (e->id == id && e->idx >= 0) return e->idx;
    if (e->idx < 0) return -1;
    s = (s + 1) & cat->map_mask;
  }
}

/* Dense index whose normalised description equals `norm`, or -1. O(n): the
 * reference lookup; the match stage keeps its own hash index. */
int32_t rt_catalog_find_norm(const rt_catalog *cat, const char *norm);

void rt_catalog_free(rt_catalog *cat);

/* Canonical form of a cluster description, used to match LLM answers:
 * split into keywords on ',' ';' '|' and newlines; in each keyword lowercase
 * ASCII, turn every other ASCII punctuation into a space, collapse white
 * space, trim; drop empty keywords; sort and de-duplicate; join with ", ".
 * Bytes >= 0x80 (UTF-8) are kept as they are. Writes at most cap-1 bytes
 * plus NUL; returns the length it needed (like snprintf). */
size_t rt_normalize_desc(const char *in, char *out, size_t cap);

#endif
