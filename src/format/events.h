/* events.h — event log shards: streaming reader and writer.
 *
 * An event is one watch: (user_id, ts, cluster_id, engagement). Shard files
 * (docs/formats.md §2):
 *   *.msgpack.zst  a zstd stream (one or more frames) of back-to-back msgpack
 *                  arrays [user_id (uint64), ts (int64, unix seconds),
 *                  cluster_id (uint32), engagement (float32/float64; integers
 *                  accepted)]
 *   *.msgpack      the same, uncompressed
 *   *.tsv[.zst]    text, one event per line: user_id<TAB>ts<TAB>cluster_id<TAB>engagement
 * The format is chosen by the file name's ending. Layer 0: no MPI, no curl.
 * An empty file is a valid empty shard; TSV blank lines are skipped. A NaN
 * engagement is passed through (the read stage decides what it means).
 *
 * Errors name the file and the byte offset in the decompressed stream of the
 * bad record (msgpack) or the line (TSV): "logs/d1.msgpack.zst: byte 4711: ...".
 * After an error the reader is spent: every later read repeats it. */
#ifndef RT_FORMAT_EVENTS_H
#define RT_FORMAT_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

typedef struct rt_event {
  uint64_t user;
  int64_t ts;          /* unix seconds, UTC */
  uint32_t cluster;    /* external cluster id as in the catalog */
  float engagement;
} rt_event;

typedef enum { RT_EVFMT_MSGPACK_ZST, RT_EVFMT_MSGPACK, RT_EVFMT_TSV, RT_EVFMT_TSV_ZST } rt_event_format;

/* Format implied by a path's ending; -1 if none of the above. */
int rt_events_format_of(const char *path);

typedef struct rt_event_reader rt_event_reader;

/* Open a shard for streaming. RT_ERR_INPUT if missing/unreadable/unknown ending. */
int rt_events_open(const char *path, rt_event_reader **out, rt_err *err);

/* Read up to `max` events into buf. Returns the number read (> 0), 0 at a
 * clean end of stream, or -1 on error with err filled (RT_ERR_INPUT: corrupt
 * zstd frame, truncated or mistyped msgpack record, malformed TSV line), the
 * message naming the file and byte offset or line. Memory use is bounded by
 * the decompression window and `max`, whatever the shard size. */
long rt_events_read(rt_event_reader *r, rt_event *buf, size_t max, rt_err *err);

/* Malformed TSV lines a reader skipped (rt_events_skip_malformed), by reason. */
typedef struct rt_events_skips {
  uint64_t fields;             /* not 4 tab-separated fields */
  uint64_t number;             /* a field that is not a number of its type */
  uint64_t header;             /* a header line: the first non-blank line, malformed, starting with a letter */
  char first[RT_ERR_MSG_MAX];  /* "PATH:LINE: why" of the first one skipped; "" if none */
} rt_events_skips;

/* TSV shards: skip malformed lines (wrong field count, a field that is not a
 * number, a header line) instead of failing, counting them by reason
 * (input.on_bad_event = skip). Without it (the default) such a line is an
 * error naming PATH:LINE (1-based). No effect on msgpack shards: a damaged
 * msgpack stream cannot be resynchronised, so its errors always fail. */
void rt_events_skip_malformed(rt_event_reader *r, int on);
const rt_events_skips *rt_events_skipped(const rt_event_reader *r);

/* Where event #idx (0-based, counting the events rt_events_read returned,
 * with the same skip_malformed setting) of the shard at path is: writes
 * "PATH:LINE" (TSV, 1-based) or "PATH: byte D" (msgpack, offset in the
 * decompressed stream) to out and returns 0; -1 if the shard holds no such
 * event. Re-reads the shard from the start: for error messages only. */
int rt_events_locate(const char *path, uint64_t idx, int skip_malformed, char *out, size_t cap);

/* Compressed bytes consumed so far (for progress reporting). */
uint64_t rt_events_bytes_in(const rt_event_reader *r);

void rt_events_close(rt_event_reader *r);

typedef struct rt_event_writer rt_event_writer;

/* Create a shard; format by the path's ending; zstd `level` (1..19) for
 * compressed formats. Written to path.tmp and renamed on finish. */
int rt_events_create(const char *path, int level, rt_event_writer **out, rt_err *err);
int rt_events_write(rt_event_writer *w, const rt_event *ev, size_t n, rt_err *err);
/* Flush, fsync, rename into place and free the writer (also on error). */
int rt_events_finish(rt_event_writer *w, rt_err *err);
/* Abandon: remove the temporary file and free. */
void rt_events_abort(rt_event_writer *w);

#endif
