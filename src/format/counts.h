/* counts.h — the triple-count record and the counts file.
 *
 * A count record says: the triple (c1, c2, c_next) of dense catalog indices,
 * packed in `key` (20 bits each, c1 highest), was seen n times on `day` in
 * window `win`. The counts file (docs/formats.md §4) stores a run's records
 * with the catalog ids they index, so later tools (drift, export-finetune,
 * refresh from counts) need not re-read logs. Layer 0: no MPI. */
#ifndef RT_FORMAT_COUNTS_H
#define RT_FORMAT_COUNTS_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

typedef struct rt_count {
  uint64_t key;  /* c1 << 40 | c2 << 20 | c_next (dense indices) */
  int32_t day;   /* days since 1970-01-01 UTC of c_next's event */
  uint32_t win;  /* 0: refresh window; 1: previous window (trend) */
  uint64_t n;
} rt_count;

typedef struct rt_counts_meta {
  const uint32_t *ids;   /* catalog ids, dense order */
  uint32_t n_clusters;
  uint64_t catalog_hash;
  int64_t window_start, window_end;
  const char *run_id;
} rt_counts_meta;

/* Write records (sorted by key, day, win) with their catalog to path,
 * atomically: "RTCOUNT1" magic, then a zstd frame of msgpack: a header map
 * {version, clusters: [ids], catalog_hash, window_start, window_end, run_id,
 * records: n} followed by n arrays [c1_id, c2_id, next_id, day, win, count]. */
int rt_counts_write(const char *path, const rt_counts_meta *meta, const rt_count *rec, size_t n, rt_err *err);

/* The same, streamed: open with the total record count, add records in
 * global (key, day, win) order in as many calls as convenient, finish (fsync,
 * rename into place). Memory stays at a few MiB (the packing buffer, zstd
 * workers' buffers, 8 bytes per cluster) whatever the count.
 * A failed or aborted writer leaves nothing at path. */
typedef struct rt_counts_writer rt_counts_writer;
int rt_counts_writer_open(const char *path, const rt_counts_meta *meta, uint64_t records, rt_counts_writer **w,
                          rt_err *err);
int rt_counts_writer_add(rt_counts_writer *w, const rt_count *rec, size_t n, rt_err *err);
int rt_counts_writer_finish(rt_counts_writer *w, rt_err *err);
void rt_counts_writer_abort(rt_counts_writer *w);

/* Read a counts file; records are re-indexed to the dense indices of the
 * file's own catalog ids (returned in *ids / *n_clusters, malloc'ed). */
int rt_counts_read(const char *path, uint32_t **ids, uint32_t *n_clusters, rt_count **rec, size_t *n,
                   int64_t *window_start, int64_t *window_end, rt_err *err);

#endif
