/* count.h — stage 5: triple counts, summed on the rank that owns the pair.
 *
 * Owns the count record and its exchange. A triple (c1, c2, c_next) of dense
 * indices packs into one 60-bit key (20 bits each, c1 highest), so sorting
 * keys sorts by pair then successor. Counts are kept per day (the day of
 * c_next's event), so sub-windows and trends need no second pass over logs.
 * Local counts are combined (append + radix-sort compaction) before the exchange, so the
 * exchange moves distinct (triple, day) records, not raw triples. */
#ifndef RT_PIPELINE_COUNT_H
#define RT_PIPELINE_COUNT_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/util.h"
#include "format/counts.h" /* rt_count: the record, shared with the counts file */
#include "pipeline/plan.h"

#define RT_KEY_BITS 20
#define RT_KEY_MASK ((1ULL << RT_KEY_BITS) - 1)

static inline uint64_t rt_triple_key(uint32_t c1, uint32_t c2, uint32_t c3) {
  return ((uint64_t)c1 << (2 * RT_KEY_BITS)) | ((uint64_t)c2 << RT_KEY_BITS) | c3;
}
/* pair = c1 * 2^20 + c2: the key without its successor. */
static inline uint64_t rt_key_pair(uint64_t key) { return key >> RT_KEY_BITS; }
static inline uint32_t rt_key_next(uint64_t key) { return (uint32_t)(key & RT_KEY_MASK); }
static inline uint32_t rt_pair_c1(uint64_t pair) { return (uint32_t)(pair >> RT_KEY_BITS); }
static inline uint32_t rt_pair_c2(uint64_t pair) { return (uint32_t)(pair & RT_KEY_MASK); }

typedef RT_VEC(rt_count) rt_count_vec;

/* Local pre-aggregation of (key, day, win) -> n; memory ~ distinct records.
 * ncl: catalog size; every day added lies in [day_lo, day_hi]. */
typedef struct rt_counter rt_counter;
rt_counter *rt_counter_new(uint32_t ncl, int32_t day_lo, int32_t day_hi);
/* Buffer size before a compaction (default 8M triples); for tests. */
void rt_counter_set_limit(rt_counter *h, size_t limit);
void rt_counter_add(rt_counter *h, uint64_t key, int32_t day, uint32_t win, uint64_t n);
/* Move the contents out as a vector sorted by (key, day, win); frees h. */
void rt_counter_finish(rt_counter *h, rt_count_vec *out);

/* Sort by (key, day, win) and merge equal records. */
void rt_counts_reduce(rt_count_vec *v);

/* Collective: send each record to the owner of its pair, reduce there.
 * Replaces *v with this rank's owned records, sorted. */
int rt_counts_exchange(const rt_plan *plan, MPI_Comm comm, rt_count_vec *v, size_t round_bytes, rt_err *err);

/* Collective: every rank's owned records (sorted, unique, disjoint pairs
 * across ranks) reach rank 0 as ONE globally sorted stream: rank 0 pulls
 * fixed-size chunks from each rank on demand and merges them, calling emit
 * with batches in order. Rank 0 holds its own records plus one chunk per
 * rank, not everything (the counts file of `aggregate` is written this way). */
typedef int (*rt_count_emit)(void *ctx, const rt_count *rec, size_t n);
int rt_counts_merge_to_root(MPI_Comm comm, const rt_count_vec *mine, rt_count_emit emit, void *ctx);

#endif
