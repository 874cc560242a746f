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

int rt_read_shard(const char *path, const rt_config *cfg, const rt_catalog *cat, const rt_window *w,
                  rt_ev_vec *out, uint64_t *watch, rt_err *err) {
  rt_event_reader *r;
  int rc = rt_events_open(path, &r, err);
  if (rc) return rc;
  rt_event *buf = rt_xmalloc(READ_BATCH * sizeof *buf);
  uint64_t idx = 0;
  const float minv = (float)cfg->min_engagement;
  const int64_t future = w->end + FAR_FUTURE_S;
  long got;
  while ((got = rt_events_read(r, buf, READ_BATCH, err)) > 0) {
    rt_metric_add(RT_M_read_events, (uint64_t)got);
    rt_vec_reserve(out, out->len + (size_t)got);
    for (long i = 0; i < got; i++, idx++) {
      const rt_event *e = &buf[i];
      int32_t c = rt_catalog_index(cat, e->cluster);
      if (c < 0) {
        rt_metric_add(RT_M_read_bad_unknown_cluster, 1);
        if ((rc = bad_event(cfg, path, idx, e, "cluster id not in the catalog (input.catalog)", err))) goto done;
        continue;
      }
      if (e->ts < 0 || e->ts > future) {
        rt_metric_add(RT_M_read_bad_timestamp, 1);
        if ((rc = bad_event(cfg, path, idx, e, "timestamp is negative or more than a year past the window", err)))
          goto done;
        continue;
      }
      if (isnan(e->engagement)) {
        rt_metric_add(RT_M_read_bad_engagement, 1);
        if ((rc = bad_event(cfg, path, idx, e, "engagement is NaN", err))) goto done;
        continue;
      }
      if (!(e->engagement >= minv)) {
        rt_metric_add(RT_M_read_below_engagement, 1);
        continue;
      }
      if (e->ts >= w->start && e->ts < w->end) {
        out->data[out->len++] = (rt_ev){e->user, e->ts, (uint32_t)c, 0};
        if (watch) watch[c]++;
        rt_metric_add(RT_M_read_kept, 1);
      } else if (e->ts >= w->prev_start && e->ts < w->start) {
        out->data[out->len++] = (rt_ev){e->user, e->ts, (uint32_t)c, 1};
        rt_metric_add(RT_M_read_previous_window, 1);
      } else {
        rt_metric_add(RT_M_read_outside_window, 1);
      }
    }
  }
  if (got < 0) rc = err ? err->code : RT_ERR_INPUT;
done:
  rt_metric_add(RT_M_read_bytes_in, rt_events_bytes_in(r));
  rt_events_close(r);
  free(buf);
  return rc;
}

int rt_read_shards(const rt_plan *plan, int rank, const rt_config *cfg, const rt_catalog *cat,
                   rt_ev_vec *out, uint64_t *watch, rt_err *err) {
  double t0 = rt_stage_begin();
  rt_window w;
  rt_window_from_config(cfg, &w);
  int rc = RT_OK;
  for (size_t i = 0; i < plan->nshards && rc == RT_OK; i++) {
    if (plan->owner[i] != rank) continue;
    rc = rt_read_shard(plan->shards[i], cfg, cat, &w, out, watch, err);
    rt_metric_add(RT_M_read_shards, 1);
  }
  rt_stage_end(RT_M_read_us, t0);
  return rc;
}
