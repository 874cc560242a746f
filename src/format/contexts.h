/* contexts.h — fingerprints of the RAG context each pair was prompted with,
 * kept between runs (TABLE.contexts), so a refresh can report how much of
 * the retrieved context actually changed since the previous run: the share
 * of pairs whose recent top successors moved, i.e. the drift the refresh is
 * paying LLM calls to follow. Layer 0: no MPI. */
#ifndef RT_FORMAT_CONTEXTS_H
#define RT_FORMAT_CONTEXTS_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

typedef struct rt_ctx_fp {
  uint64_t pair;  /* c1 << 20 | c2 (dense indices of the catalog named by the file's hash) */
  uint64_t hash;  /* hash of the retrieved successor list, in rank order */
} rt_ctx_fp;

/* Hash of a retrieved list (dense indices). */
uint64_t rt_ctx_hash(const uint32_t *next, size_t n);

/* Load fingerprints saved for catalog_hash. A missing file, another
 * catalog, or a damaged file give *n = 0 (everything counts as changed):
 * this is a report, never a reason to fail a run. */
void rt_contexts_load(const char *path, uint64_t catalog_hash, rt_ctx_fp **out, size_t *n);

/* Save fingerprints (sorted by pair) atomically. */
/* The file image rt_contexts_save writes (malloc'ed, *len bytes). */
char *rt_contexts_encode(uint64_t catalog_hash, const rt_ctx_fp *fp, size_t n, size_t *len);
int rt_contexts_save(const char *path, uint64_t catalog_hash, const rt_ctx_fp *fp, size_t n, rt_err *err);

/* How many of cur (sorted by pair) are new or differ from prev (sorted). */
size_t rt_contexts_changed(const rt_ctx_fp *prev, size_t np, const rt_ctx_fp *cur, size_t nc);

#endif
