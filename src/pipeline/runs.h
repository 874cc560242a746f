/* runs.h — count records beyond memory: sorted runs and their merge.
 *
 * Why: the distinct (triple, day) records of a large window outgrow any
 * fixed memory budget (with 1,000 clusters almost every triple is new), so
 * under memory.per_rank_mb the counter, the exchange and the owner keep them
 * as sorted, reduced runs in files of the run directory and read them back
 * as ONE stream in (key, day, win) order, equal records summed, holding a
 * small buffer per run. Without a budget every run stays in memory and the
 * stream is a copy out of it. Layer: no MPI.
 *
 * Life cycle: add (runs or loose records) -> read / next_pairs (a merged
 * stream; the first read closes the set) -> free. rt_runs_seal merges
 * everything into one run first, when the total must be known in advance
 * (the counts file's header) or the records are read more than once. */
#ifndef RT_PIPELINE_RUNS_H
#define RT_PIPELINE_RUNS_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/util.h"
#include "format/counts.h"

typedef RT_VEC(rt_count) rt_count_vec;
typedef struct rt_runs rt_runs;

/* Records of one set go to `dir` as "runs-r<rank>-<name>-<k>.cnt" (raw
 * rt_count records, removed by rt_runs_free) once more than mem_records are
 * held; mem_records = 0: never write, all in memory. */
rt_runs *rt_runs_new(const char *dir, const char *name, int rank, size_t mem_records);

/* Records in any order; buffered, and sorted + reduced into a run (written
 * to a file when over budget) as the buffer fills. */
int rt_runs_add(rt_runs *r, const rt_count *rec, size_t n, rt_err *err);

/* A run already sorted and reduced: *v is taken over (left empty); written
 * to a file at once when the set has a budget, kept as it is otherwise.
 * The one call several threads may make on a set at once (each thread's
 * counter spills into the rank's set); the others must not overlap. */
int rt_runs_put(rt_runs *r, rt_count_vec *v, rt_err *err);

/* Records that are a concatenation of sorted, reduced pieces (what an
 * all-to-all of sorted streams delivers): each maximal ascending piece
 * becomes a run, so sealing merges them instead of sorting everything. */
int rt_runs_add_pieces(rt_runs *r, const rt_count *rec, size_t n, rt_err *err);

/* Merge everything added into one sorted, reduced run (a file if the set
 * ever spilled) and rewind it. Returns the total in *records and the pairs
 * with window-0 records in *pairs (either may be NULL). Idempotent; after a
 * seal the stream can be read again with rt_runs_rewind. */
int rt_runs_seal(rt_runs *r, uint64_t *records, uint64_t *pairs, rt_err *err);
void rt_runs_rewind(rt_runs *r);

/* The next up to `max` records of the merged stream, in order and reduced;
 * 0 at the end, -1 on a read error (err names the run file). */
long rt_runs_read(rt_runs *r, rt_count *buf, size_t max, rt_err *err);

/* The same, whole pairs only: *v (cleared first) receives the next records
 * up to a pair boundary, about `max` of them (more if one pair is larger).
 * Returns v->len, 0 at the end, -1 on error. */
long rt_runs_next_pairs(rt_runs *r, rt_count_vec *v, size_t max, rt_err *err);

/* When the set is one run in memory (sealed, no budget), its records
 * without a copy: returns 1 and sets *rec, *n; 0 otherwise (read instead). */
int rt_runs_view(const rt_runs *r, const rt_count **rec, size_t *n);

/* Records written to files so far, and the number of run files. */
uint64_t rt_runs_spilled(const rt_runs *r);
size_t rt_runs_files(const rt_runs *r);

void rt_runs_free(rt_runs *r);

/* A k-way merge of sorted, reduced sources that each hand out their
 * records a window at a time (a run file, another rank's chunks): records
 * come out in (key, day, win) order, equal ones summed. The sets above read
 * their runs through it; so does the merge to rank 0 (count.h).
 * next: > 0 records at *window (valid until the next call), 0 at the end,
 * -1 on error (err set). */
typedef long (*rt_merge_next)(void *ctx, const rt_count **window, rt_err *err);
typedef struct rt_merge_src {
  rt_merge_next next;
  void *ctx;
} rt_merge_src;
typedef struct rt_merge rt_merge;
/* Takes every source's first window; NULL if one fails (err set). */
rt_merge *rt_merge_open(const rt_merge_src *src, size_t n, rt_err *err);
/* Up to max records; 0 at the end; -1 when a source fails (err set). */
long rt_merge_read(rt_merge *m, rt_count *buf, size_t max, rt_err *err);
void rt_merge_close(rt_merge *m);

/* Sort by (key, day, win) and merge equal records (radix sort). */
void rt_counts_reduce(rt_count_vec *v);

#endif
