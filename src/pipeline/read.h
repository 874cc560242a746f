/* read.h — stage 2: stream this rank's shards and keep the useful events.
 *
 * Owns: validating every event (unknown cluster, malformed timestamp —
 * negative, or milliseconds —, NaN engagement: counted per reason;
 * input.on_bad_event decides fail or skip) and filtering (engagement >=
 * input.min_engagement, ts inside the window; a valid event outside every
 * window read is counted in read.outside_window and skipped).
 * With retrieval.mode = trend the previous window of equal length is kept
 * too, marked, because trend retrieval compares the two. Cluster ids become
 * dense catalog indices here; nothing downstream sees external ids. */
#ifndef RT_PIPELINE_READ_H
#define RT_PIPELINE_READ_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "format/catalog.h"
#include "format/config.h"
#include "format/events.h"
#include "pipeline/plan.h"

/* An event inside the pipeline, 16 bytes: the user, and one word whose
 * integer order is the order of a user's events, (time, cluster, window):
 *   tcw = t << 32 | c << 1 | win
 * t: seconds since the run's epoch (rt_window.prev_start, the start of the
 * earliest window read: every kept event is at or after it, and a window
 * shorter than 68 years keeps t within 32 bits); c: dense catalog index;
 * win: 0 the refresh window, 1 the previous window (trend only). Why packed:
 * every event is moved three times (shuffle, user bucket, grouping), and
 * 16 bytes instead of 24 is a third less memory traffic and spill. */
typedef struct rt_ev {
  uint64_t user;
  uint64_t tcw;
} rt_ev;

static inline rt_ev rt_ev_make(uint64_t user, uint32_t t, uint32_t c, uint32_t win) {
  return (rt_ev){user, (uint64_t)t << 32 | (uint64_t)c << 1 | (win & 1)};
}
static inline uint32_t rt_ev_t(const rt_ev *e) { return (uint32_t)(e->tcw >> 32); }
static inline uint32_t rt_ev_c(const rt_ev *e) { return (uint32_t)e->tcw >> 1; }
static inline uint32_t rt_ev_win(const rt_ev *e) { return (uint32_t)(e->tcw & 1); }

typedef RT_VEC(rt_ev) rt_ev_vec;

/* The windows a run reads, from the config. */
typedef struct rt_window {
  int64_t start, end;        /* [start, end): the refresh window */
  int64_t prev_start;        /* start of the previous window (== start if unused) */
} rt_window;

void rt_window_from_config(const rt_config *cfg, rt_window *w);

/* Why a timestamp is malformed (negative; >= 1e11, i.e. milliseconds or
 * finer, which the message says), or NULL for a valid one. Valid
 * timestamps outside every window the run reads are not bad: the read stage
 * counts them (read.outside_window) and skips them. */
const char *rt_ts_problem(int64_t ts);

/* A position in this rank's shards, so reading can proceed in batches that
 * bound memory (see rt_read_batch). */
typedef struct rt_read_cursor {
  const rt_plan *plan;
  int rank;
  const rt_config *cfg;
  const rt_catalog *cat;
  rt_window win;
  size_t shard;                  /* next shard index to open (own queue) */
  size_t *queue;                 /* or a queue shared with other cursors (rt_read_share) */
  rt_event_reader *reader;        /* open shard, or NULL */
  const char *path;              /* its path */
  uint64_t idx;                  /* events read from it so far */
  rt_event *buf;                 /* decode buffer */
  size_t buf_len, buf_pos;
} rt_read_cursor;

void rt_read_begin(rt_read_cursor *c, const rt_plan *plan, int rank, const rt_config *cfg, const rt_catalog *cat);
/* Threads of one rank each read with their own cursor; cursors that share
 * `*queue` (a shard index, 0 to start) take the rank's shards from it one at
 * a time, so every shard is read once by whichever thread is free. Call
 * after rt_read_begin, before the first batch. */
void rt_read_share(rt_read_cursor *c, size_t *queue);
/* Append up to `max` kept events to out (fewer at the end). Returns RT_OK;
 * *done = 1 once every shard is read. Not collective; safe to call from
 * several threads on distinct cursors (and distinct out and watch). The
 * caller times the stage (RT_M_read_us): with threads, per-call times would
 * add up to more than the wall time. */
int rt_read_batch(rt_read_cursor *c, size_t max, rt_ev_vec *out, uint64_t *watch, int *done, rt_err *err);
void rt_read_end(rt_read_cursor *c);

#endif
