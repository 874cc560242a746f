/* read.c — stream shards, validate and filter events. */
#include "pipeline/read.h"
#include "base/metrics.h"
#include "format/events.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define READ_BATCH 65536
#define FAR_FUTURE_S (366LL * 86400) /* later than window_end + a year: a clock bug */

void rt_window_from_config(const rt_config *cfg, rt_window *w) {
  w->start = cfg->window_start;
  w->end = cfg->window_end;
  w->prev_start = w->start;
  if (strcmp(cfg->retrieval_mode, "trend") == 0) w->prev_start = w->start - (w->end - w->start);
}

static int bad_event(const rt_config *cfg, const char *path, uint64_t idx, const rt_event *e, const char *why,
                     rt_err *err) {
  if (strcmp(cfg->on_bad_event, "skip") == 0) return RT_OK;
  return rt_err_set(err, RT_ERR_INPUT,
                    "%s: event #%llu (user %llu, ts %lld, cluster %u): %s; fix the shard or set "
                    "input.on_bad_event = skip to count and skip such events",
                    path, (unsigned long long)idx, (unsigned long long)e->user, (long long)e->ts, e->cluster, why);
}

/* Validate and filter one decoded event; append it to out if kept. */
static inline int keep_event(const rt_read_cursor *c, const rt_event *e, uint64_t idx, rt_ev_vec *out,
                             uint64_t *watch, rt_err *err) {
  const rt_window *w = &c->win;
  int32_t ci = rt_catalog_index(c->cat, e->cluster);
  if (ci < 0) {
    rt_metric_add(RT_M_read_bad_unknown_cluster, 1);
    return bad_event(c->cfg, c->path, idx, e, "cluster id not in the catalog (input.catalog)", err);
  }
  if (e->ts < 0 || e->ts > w->end + FAR_FUTURE_S) {
    rt_metric_add(RT_M_read_bad_timestamp, 1);
    return bad_event(c->cfg, c->path, idx, e, "timestamp is negative or more than a year past the window", err);
  }
  if (isnan(e->engagement)) {
    rt_metric_add(RT_M_read_bad_engagement, 1);
    return bad_event(c->cfg, c->path, idx, e, "engagement is NaN", err);
  }
  if (!(e->engagement >= (float)c->cfg->min_engagement)) {
    rt_metric_add(RT_M_read_below_engagement, 1);
    return RT_OK;
  }
  if (e->ts >= w->start && e->ts < w->end) {
    out->data[out->len++] = (rt_ev){e->user, e->ts, (uint32_t)ci, 0};
    if (watch) watch[ci]++;
    rt_metric_add(RT_M_read_kept, 1);
  } else if (e->ts >= w->prev_start && e->ts < w->start) {
    out->data[out->len++] = (rt_ev){e->user, e->ts, (uint32_t)ci, 1};
    rt_metric_add(RT_M_read_previous_window, 1);
  } else {
    rt_metric_add(RT_M_read_outside_window, 1);
  }
  return RT_OK;
}

void rt_read_begin(rt_read_cursor *c, const rt_plan *plan, int rank, const rt_config *cfg, const rt_catalog *cat) {
  memset(c, 0, sizeof *c);
  c->plan = plan;
  c->rank = rank;
  c->cfg = cfg;
  c->cat = cat;
  rt_window_from_config(cfg, &c->win);
  c->buf = rt_xmalloc(READ_BATCH * sizeof *c->buf);
}

static void close_shard(rt_read_cursor *c) {
  if (!c->reader) return;
  rt_metric_add(RT_M_read_bytes_in, rt_events_bytes_in(c->reader));
  rt_metric_add(RT_M_read_shards, 1);
  rt_events_close(c->reader);
  c->reader = NULL;
}

int rt_read_batch(rt_read_cursor *c, size_t max, rt_ev_vec *out, uint64_t *watch, int *done, rt_err *err) {
  double t0 = rt_stage_begin();
  int rc = RT_OK;
  size_t target = out->len + max;
  rt_vec_reserve(out, target);
  *done = 0;
  while (out->len < target) {
    if (c->buf_pos == c->buf_len) { /* refill the decode buffer */
      while (!c->reader) {
        while (c->shard < c->plan->nshards && c->plan->owner[c->shard] != c->rank) c->shard++;
        if (c->shard == c->plan->nshards) {
          *done = 1;
          goto out;
        }
        c->path = c->plan->shards[c->shard++];
        c->idx = 0;
        if ((rc = rt_events_open(c->path, &c->reader, err))) goto out;
      }
      /* never decode more than fits the caller's batch */
      size_t want = target - out->len < READ_BATCH ? target - out->len : READ_BATCH;
      long got = rt_events_read(c->reader, c->buf, want, err);
      if (got < 0) {
        rc = err ? err->code : RT_ERR_INPUT;
        goto out;
      }
      if (got == 0) {
        close_shard(c);
        continue;
      }
      rt_metric_add(RT_M_read_events, (uint64_t)got);
      c->buf_len = (size_t)got;
      c->buf_pos = 0;
    }
    while (c->buf_pos < c->buf_len && out->len < target) {
      if ((rc = keep_event(c, &c->buf[c->buf_pos], c->idx, out, watch, err))) goto out;
      c->buf_pos++;
      c->idx++;
    }
  }
out:
  rt_stage_end(RT_M_read_us, t0);
  return rc;
}

void rt_read_end(rt_read_cursor *c) {
  close_shard(c);
  free(c->buf);
  memset(c, 0, sizeof *c);
}
