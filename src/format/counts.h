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

/* The order of records everywhere (counts files, count runs): key, then
 * day, then window; -1, 0 or 1. */
static inline int rt_count_cmp(const rt_count *x, const rt_count *y) {
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  if (x->day != y->day) return x->day < y->day ? -1 : 1;
  return (x->win > y->win) - (x->win < y->win);
}

typedef struct rt_counts_meta {
  const uint32_t *ids;   /* catalog ids, dense order */
  uint32_t n_clusters;
  uint64_t catalog_hash;
  int64_t window_start, window_end;
  const char *run_id;
} rt_counts_meta;

/* Write records (sorted by key, day, win) with their catalog to path,
 * atomically: "RTCOUNT1" magic, then a zstd frame of msgpack: a header map
 * {version: 2, clusters: [ids], catalog_hash, window_start, window_end,
 * run_id, records: n} followed by the n records as groups: [c1, c2, k] (dense
 * indices) then k records of four integers (next delta, day - day_base, win,
 * count); docs/formats.md §4. Readers also read version 1 bodies (n arrays
 * [c1_id, c2_id, next_id, day, win, count]). */
int rt_counts_write(const char *path, const rt_counts_meta *meta, const rt_count *rec, size_t n, rt_err *err);

/* The same, streamed: open with the total record count, add records in
 * global (key, day, win) order in as many calls as convenient, finish (fsync,
 * rename into place). A record that does not sort after the one before (out
 * of order, or repeated) fails add, and a total other than the one announced
 * fails finish, with RT_ERR_INTERNAL naming the record: readers rely on both. Memory stays at a few MiB (the packing buffer, 128 KiB
 * for the open group, zstd workers' buffers) whatever the count.
 * A failed or aborted writer leaves nothing at path. */
typedef struct rt_counts_writer rt_counts_writer;
int rt_counts_writer_open(const char *path, const rt_counts_meta *meta, uint64_t records, rt_counts_writer **w,
                          rt_err *err);
int rt_counts_writer_add(rt_counts_writer *w, const rt_count *rec, size_t n, rt_err *err);
int rt_counts_writer_finish(rt_counts_writer *w, rt_err *err);
void rt_counts_writer_abort(rt_counts_writer *w);

/* Read a counts file in bounded memory, a batch of records at a time.
 *
 * rt_counts_reader_open checks the "RTCOUNT1" magic and reads the header
 * map (version 1 or 2; another version is refused); the cluster ids, the window and the record count are then available
 * through the accessors (valid until close; the window is 0..0 when the
 * header lacks it).
 *
 * rt_counts_reader_next puts the next up to max (>= 1) records in buf,
 * re-indexed to dense indices of the file's own ids as rt_counts_read does,
 * and returns how many (> 0). It returns 0 at a clean end: exactly as many
 * records as the header says, nothing after them, and the zstd frame(s)
 * ended with a good checksum (only checked once every record is read, so a
 * consumer that stops early has not validated the file). It returns -1 on
 * an error, and again on every later call: err (RT_ERR_INPUT) names the
 * file and, for a bad record, its number and byte offset in the
 * decompressed body — the messages rt_counts_read gives. Records of a batch
 * that fails are not valid.
 *
 * Errors at open (err set, *r NULL): the file cannot be opened or read, bad
 * magic, a corrupt zstd frame before the header ends, a header that is not
 * a msgpack map, lacks the cluster list or is over 64 MiB. A header whose
 * record count disagrees with the body is found by _next: at the end of
 * the body, or at the first record past the count.
 *
 * Memory: the zstd decompression context (its window, a few MiB for files
 * rt_counts_write wrote) + a 1 MiB buffer of decompressed bytes + 128 KiB of
 * input + 4 bytes per cluster id, whatever the number of records. Opening
 * briefly holds the whole header map (ids as msgpack objects). Not
 * thread-safe; one reader per thread. */
typedef struct rt_counts_reader rt_counts_reader;
int rt_counts_reader_open(const char *path, rt_counts_reader **r, rt_err *err);
const uint32_t *rt_counts_reader_ids(const rt_counts_reader *r, uint32_t *n_clusters);
void rt_counts_reader_window(const rt_counts_reader *r, int64_t *window_start, int64_t *window_end);
uint64_t rt_counts_reader_records(const rt_counts_reader *r); /* as the header says */
long rt_counts_reader_next(rt_counts_reader *r, rt_count *buf, size_t max, rt_err *err);
void rt_counts_reader_close(rt_counts_reader *r); /* NULL is fine */

/* Read a whole counts file (through the reader above); records are
 * re-indexed to the dense indices of the file's own catalog ids (returned
 * in *ids / *n_clusters, malloc'ed; *rec malloc'ed, 24 bytes per record).
 * *window_start / *window_end (either may be NULL) are set only when the
 * header has them. Errors as rt_counts_reader_next; nothing to free then. */
int rt_counts_read(const char *path, uint32_t **ids, uint32_t *n_clusters, rt_count **rec, size_t *n,
                   int64_t *window_start, int64_t *window_end, rt_err *err);

#endif
