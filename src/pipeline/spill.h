/* spill.h — where a rank keeps the events it owns between the shuffle and
 * sequencing, within memory.per_rank_mb.
 *
 * Why: sequencing needs all of a user's events at once, but a rank may own
 * more events than fit in memory. Events are split into buckets by a hash
 * of the user (so a user never spans buckets); buckets stay in memory while
 * the budget allows and are appended to files in the run directory beyond
 * it. Sequencing then takes one bucket at a time, so peak memory is about
 * one bucket plus the budget, whatever the input size. With no budget
 * nothing is ever written, and the buckets only keep each one small. */
#ifndef RT_PIPELINE_SPILL_H
#define RT_PIPELINE_SPILL_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "pipeline/read.h"

typedef struct rt_spill {
  size_t nbuckets;
  rt_ev_vec *mem;       /* [nbuckets] events held in memory */
  uint64_t *on_disk;    /* [nbuckets] events appended to the bucket's file */
  size_t mem_events, budget_events; /* budget_events = 0: no limit */
  char *dir;            /* run directory for spill files ("" until needed) */
  int rank;
  uint64_t spilled;     /* events written to disk, for the summary */
} rt_spill;

/* nbuckets >= 1 (any number: without a budget, buckets keep the work of
 * sequencing one bucket cache-sized); budget_events 0 = unlimited. */
void rt_spill_init(rt_spill *s, size_t nbuckets, size_t budget_events, const char *dir, int rank);

/* Room for about `events` in all (no budget): buckets then grow in place
 * instead of by repeated doubling and copying. */
void rt_spill_reserve(rt_spill *s, uint64_t events);

/* Add events (any users); spills the buckets to disk when over budget.
 * The scatter runs on the rank's threads (omp_get_max_threads). */
int rt_spill_add(rt_spill *s, const rt_ev *ev, size_t n, rt_err *err);
/* The same for events in several arrays (one per reading thread), without
 * joining them first; one thread per part. */
int rt_spill_add_parts(rt_spill *s, const rt_ev *const *part, const size_t *len, int nparts, rt_err *err);

/* Move bucket b (its file part, then its memory part) into out; deletes
 * the bucket's file. Threads may take distinct buckets at once. */
int rt_spill_take(rt_spill *s, size_t b, rt_ev_vec *out, rt_err *err);

/* Free memory and delete any remaining files. */
void rt_spill_free(rt_spill *s);

#endif
