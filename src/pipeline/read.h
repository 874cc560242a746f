/* read.h — stage 2: stream this rank's shards and keep the useful events.
 *
 * Owns: validating every event (unknown cluster, bad timestamp, NaN
 * engagement: counted per reason; input.on_bad_event decides fail or skip)
 * and filtering (engagement >= input.min_engagement, ts inside the window).
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
#include "pipeline/plan.h"

/* An event inside the pipeline. 24 bytes. */
typedef struct rt_ev {
  uint64_t user;
  int64_t ts;
  uint32_t c;   /* dense catalog index */
  uint32_t win; /* 0: refresh window; 1: the previous window (trend only) */
} rt_ev;

typedef RT_VEC(rt_ev) rt_ev_vec;

/* The windows a run reads, from the config. */
typedef struct rt_window {
  int64_t start, end;        /* [start, end): the refresh window */
  int64_t prev_start;        /* start of the previous window (== start if unused) */
} rt_window;

void rt_window_from_config(const rt_config *cfg, rt_window *w);

/* Read every shard the plan gives `rank`, appending kept events to out.
 * Also adds each kept window-0 event to watch[c] (cluster popularity; watch
 * has cat->n entries) when watch is not NULL. Not collective. */
int rt_read_shards(const rt_plan *plan, int rank, const rt_config *cfg, const rt_catalog *cat,
                   rt_ev_vec *out, uint64_t *watch, rt_err *err);

/* Read one shard (used by rt_read_shards and by tools). */
int rt_read_shard(const char *path, const rt_config *cfg, const rt_catalog *cat, const rt_window *w,
                  rt_ev_vec *out, uint64_t *watch, rt_err *err);

#endif
