/* count.h — stage 5: triple counts, summed on the rank that owns the pair.
 *
 * Owns the count record and its exchange. A triple (c1, c2, c_next) of dense
 * indices packs into one 60-bit key (20 bits each, c1 highest), so sorting
 * keys sorts by pair then successor. Counts are kept per day (the day of
 * c_next's event), so sub-windows and trends need no second pass over logs.
 * Local counts are combined (append + radix-sort compaction) before the
 * exchange, so the exchange moves distinct (triple, day) records, not raw
 * triples. Records live in rt_runs sets (pipeline/runs.h), so under a memory
 * budget they spill to sorted runs instead of growing with the input. */
#ifndef RT_PIPELINE_COUNT_H
#define RT_PIPELINE_COUNT_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/util.h"
#include "format/counts.h" /* rt_count: the record, shared with the counts file */
#include "pipeline/plan.h"
#include "pipeline/runs.h"

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

/* Local pre-aggregation of (key, day, win) -> n; memory ~ distinct records.
 * ncl: catalog size; every day added lies in [day_lo, day_hi]. */
typedef struct rt_counter rt_counter;
rt_counter *rt_counter_new(uint32_t ncl, int32_t day_lo, int32_t day_hi);
/* Buffer size before a compaction (default 16M triples); for tests and budgets. */
void rt_counter_set_limit(rt_counter *h, size_t limit);
/* Under a memory budget: once more than max_records distinct records are
 * held, they go to `runs` as a sorted run and the counter starts afresh. */
void rt_counter_spill_to(rt_counter *h, rt_runs *runs, size_t max_records);
void rt_counter_add(rt_counter *h, uint64_t key, int32_t day, uint32_t win, uint64_t n);
/* The last records as a sorted run into dst; frees h. Fails (RT_ERR_OUTPUT)
 * if a spill failed on the way. */
int rt_counter_finish(rt_counter *h, rt_runs *dst, rt_err *err);
/* The same for the k counters of one rank's threads, as ONE sorted run
 * (the last flushes and the merge run on the rank's threads); frees them
 * all. Runs a counter spilled on the way stay runs of their own in dst. */
int rt_counters_finish(rt_counter **h, int k, rt_runs *dst, rt_err *err);

/* Collective: send each record of `local` (this rank's counter runs) to the
 * owner of its pair, in chunks of round_bytes, where it is collected into
 * `owned` (an empty set; records beyond its budget spill to runs). Returns
 * the set this rank owns, ready to read or seal: `owned` (local is freed),
 * or `local` itself on one rank (owned is freed); NULL on failure (both
 * freed, err set). Every rank takes part until all are done, even after a
 * local failure; callers agree on the outcome. prog (may be NULL) gets
 * (records sent, records received) after every round. */
struct rt_progress;
rt_runs *rt_counts_exchange(const rt_plan *plan, MPI_Comm comm, rt_runs *local, rt_runs *owned,
                            size_t round_bytes, struct rt_progress *prog, rt_err *err);

/* Collective: every rank's owned records (sorted, unique, disjoint pairs
 * across ranks) reach rank 0 as ONE globally sorted stream: rank 0 pulls
 * fixed-size chunks from each rank on demand and merges them, calling emit
 * with batches in order. Rank 0 holds one chunk per rank, not everything
 * (the counts file of `aggregate` is written this way). Returns emit's first
 * failure or a run read error (then err says which). */
typedef int (*rt_count_emit)(void *ctx, const rt_count *rec, size_t n);
int rt_counts_merge_to_root(MPI_Comm comm, rt_runs *mine, rt_count_emit emit, void *ctx, rt_err *err);

#endif
