/* retrieve.h — stage 6: the RAG context of each pair.
 *
 * Owns the choice of what recent behaviour goes into a pair's prompt
 * (paper §2.3): retrieval.mode = frequency takes the top retrieval.top_n
 * successors by count in the window; trend takes those whose count rose
 * most against the previous window of equal length (only rises count).
 * Ties go to the smaller cluster id (dense indices follow id order).
 * Successors equal to c1 or c2 cannot occur (triples are distinct).
 * retrieval.granularity = global also builds one shared block of the top-100
 * triples over all ranks (rt_retrieve_global). */
#ifndef RT_RAG_RETRIEVE_H
#define RT_RAG_RETRIEVE_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "base/util.h"
#include "format/config.h"
#include "pipeline/count.h"

typedef struct rt_context {
  uint64_t pair;    /* c1 << 20 | c2 (dense) */
  uint64_t total;   /* triples of this pair in the refresh window */
  uint32_t off, n;  /* successors: next[off .. off+n) in the retrieval */
} rt_context;

typedef struct rt_retrieval {
  RT_VEC(rt_context) ctx;  /* pairs with data in the window, ascending pair */
  RT_VEC(uint32_t) next;   /* retrieved successors (dense) */
  RT_VEC(int64_t) score;   /* their count (frequency) or increase (trend) */
} rt_retrieval;

/* counts: this rank's owned records, sorted by (key, day, win). */
void rt_retrieve(const rt_count *counts, size_t n, const rt_config *cfg, rt_retrieval *out);
/* The same, appended to *out (zero it first): for records that arrive in
 * chunks of whole pairs (rt_runs_next_pairs), in order. */
void rt_retrieve_more(const rt_count *counts, size_t n, const rt_config *cfg, rt_retrieval *out);

/* Collective: the top `k` triples by window count over all ranks, ties by
 * smaller key; every rank receives the same list. */
typedef struct rt_triple_count {
  uint64_t key;
  uint64_t n;
} rt_triple_count;
int rt_retrieve_global(const rt_count *counts, size_t n, size_t k, MPI_Comm comm, rt_triple_count **out,
                       size_t *nout);
/* The same in chunks of whole triples: add each chunk's candidates to acc
 * (zeroed first; kept near k entries), then finish collectively (acc is
 * consumed). */
typedef RT_VEC(rt_triple_count) rt_triple_vec;
void rt_retrieve_global_add(const rt_count *counts, size_t n, size_t k, rt_triple_vec *acc);
int rt_retrieve_global_finish(rt_triple_vec *acc, size_t k, MPI_Comm comm, rt_triple_count **out, size_t *nout);

/* Collective: the top k clusters by watch count (watch: per-rank counts,
 * ncl entries), ties by smaller index. */
size_t rt_retrieve_popular(const uint64_t *watch, uint32_t ncl, size_t k, MPI_Comm comm, uint32_t *out);

void rt_retrieval_free(rt_retrieval *r);

#endif
