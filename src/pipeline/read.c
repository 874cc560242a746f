/* read.c — stream shards, validate and filter events. */
#include "pipeline/read.h"
#include "base/log.h"
#include "base/metrics.h"
#include "format/events.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_BATCH 65536
/* Unix seconds reach 1e11 in the year 5138, unix milliseconds passed it in
 * 1973: a timestamp this large is milliseconds (or microseconds), not a
 * valid date in seconds. Any other timestamp >= 0 outside every window the
 * run reads is a valid event of another period (a backtest's later logs):
 * counted in read.outside_window and skipped, never a bad event. */
#define TS_UNIT_LIMIT 100000000000LL

void rt_window_from_config(const rt_config *cfg, rt_window *w) {
  w->start = cfg->window_start;
  w->end = cfg->window_end;
  w->prev_start = w->start;
  if (strcmp(cfg->retrieval_mode, "trend") == 0) w->prev_start = w->start - (w->end - w->start);
}

static int skipping(const rt_config *cfg) { return strcmp(cfg->on_bad_event, "skip") == 0; }

/* A bad event fails the run unless input.on_bad_event = skip. The message
 * names where the event is, PATH:LINE (TSV) or PATH: byte D (msgpack): the
 * reader does not track it per event (that would cost the fast path), so
 * the shard is read again up to the event, once, on the way out. */
static int bad_event(const rt_config *cfg, const char *path, uint64_t idx, const rt_event *e, const char *why,
                     rt_err *err) {
  if (skipping(cfg)) return RT_OK;
  char where[RT_ERR_MSG_MAX / 2];
  if (rt_events_locate(path, idx, 0, where, sizeof where) != 0)
    snprintf(where, sizeof where, "%s: event #%llu", path, (unsigned long long)idx);
  return rt_err_set(err, RT_ERR_INPUT,
                    "%s: %s: user %llu, ts %lld, cluster %u; fix the shard or set input.on_bad_event = skip "
                    "to count and skip such events",
                    where, why, (unsigned long long)e->user, (long long)e->ts, e->cluster);
}

const char *rt_ts_problem(int64_t ts) {
  if (ts < 0) return "timestamp is negative (ts must be unix seconds, UTC)";
  if (ts >= TS_UNIT_LIMIT)
    return ts >= TS_UNIT_LIMIT * 1000
               ? "timestamp looks like microseconds or nanoseconds, not unix seconds (past the year 5138 in "
                 "seconds); convert the logs to seconds"
               : "timestamp looks like milliseconds, not unix seconds (past the year 5138 in seconds); divide "
                 "it by 1000";
  return NULL;
}

/* Per-chunk tallies, added to the metrics once per chunk: rt_metrics and the
 * output are both uint64_t arrays, so a per-event rt_metric_add would be a
 * load and store the compiler cannot keep in a register. */
typedef struct tally {
  uint64_t kept, prev, below, outside;
} tally;

static void tally_flush(tally *t) {
  rt_metric_add(RT_M_read_kept, t->kept);
  rt_metric_add(RT_M_read_previous_window, t->prev);
  rt_metric_add(RT_M_read_below_engagement, t->below);
  rt_metric_add(RT_M_read_outside_window, t->outside);
  *t = (tally){0};
}

/* Validate and filter n decoded events; append the kept ones to out (room
 * reserved by the caller). Stops at a bad event that fails the run, with
 * *used = its position; otherwise *used = n. */
static int keep_events(const rt_read_cursor *c, const rt_event *ev, size_t n, rt_ev_vec *out, uint64_t *watch,
                       size_t *used, rt_err *err) {
  const rt_window w = c->win;
  const float min_eng = (float)c->cfg->min_engagement;
  /* a local copy: stores to out and watch cannot alias it, so its fields
   * stay in registers instead of being reloaded for every event */
  const rt_catalog cat = *c->cat;
  rt_ev *o = out->data + out->len;
  tally t = {0};
  int rc = RT_OK;
  size_t i;
  for (i = 0; i < n; i++) {
    const rt_event *e = &ev[i];
    int32_t ci = rt_catalog_index(&cat, e->cluster);
    /* the three bad cases, rare, share one test so the loop stays short */
    if (__builtin_expect(ci < 0 || (uint64_t)e->ts >= (uint64_t)TS_UNIT_LIMIT || isnan(e->engagement), 0)) {
      const char *why;
      if (ci < 0) {
        rt_metric_add(RT_M_read_bad_unknown_cluster, 1);
        why = "cluster id not in the catalog (input.catalog)";
      } else if ((why = rt_ts_problem(e->ts))) {
        rt_metric_add(RT_M_read_bad_timestamp, 1);
      } else {
        rt_metric_add(RT_M_read_bad_engagement, 1);
        why = "engagement is NaN";
      }
      if ((rc = bad_event(c->cfg, c->path, c->idx + i, e, why, err))) break;
      continue;
    }
    if (!(e->engagement >= min_eng)) {
      t.below++;
    } else if (e->ts >= w.start && e->ts < w.end) {
      *o++ = rt_ev_make(e->user, (uint32_t)(e->ts - w.prev_start), (uint32_t)ci, 0);
      if (watch) watch[ci]++;
      t.kept++;
    } else if (e->ts >= w.prev_start && e->ts < w.start) {
      *o++ = rt_ev_make(e->user, (uint32_t)(e->ts - w.prev_start), (uint32_t)ci, 1);
      t.prev++;
    } else {
      t.outside++;
    }
  }
  out->len = (size_t)(o - out->data);
  tally_flush(&t);
  *used = i;
  return rc;
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

void rt_read_share(rt_read_cursor *c, size_t *queue) { c->queue = queue; }

static void close_shard(rt_read_cursor *c) {
  if (!c->reader) return;
  const rt_events_skips *sk = rt_events_skipped(c->reader);
  if (sk->fields + sk->number + sk->header) {
    rt_metric_add(RT_M_read_bad_fields, sk->fields);
    rt_metric_add(RT_M_read_bad_number, sk->number);
    rt_metric_add(RT_M_read_bad_header, sk->header);
    rt_warn("%s: skipped %llu malformed line(s) (input.on_bad_event = skip): %llu with a wrong field count, "
            "%llu with a field that is not a number, %llu header line(s); the first: %s",
            c->path, (unsigned long long)(sk->fields + sk->number + sk->header), (unsigned long long)sk->fields,
            (unsigned long long)sk->number, (unsigned long long)sk->header, sk->first);
  }
  rt_metric_add(RT_M_read_bytes_in, rt_events_bytes_in(c->reader));
  rt_metric_add(RT_M_read_shards, 1);
  rt_events_close(c->reader);
  c->reader = NULL;
}

int rt_read_batch(rt_read_cursor *c, size_t max, rt_ev_vec *out, uint64_t *watch, int *done, rt_err *err) {
  int rc = RT_OK;
  size_t target = out->len + max;
  rt_vec_reserve(out, target);
  *done = 0;
  while (out->len < target) {
    if (c->buf_pos == c->buf_len) { /* refill the decode buffer */
      while (!c->reader) {
        size_t k;
        do k = c->queue ? __atomic_fetch_add(c->queue, 1, __ATOMIC_RELAXED) : c->shard++;
        while (k < c->plan->nshards && c->plan->owner[k] != c->rank);
        if (k >= c->plan->nshards) {
          *done = 1;
          goto out;
        }
        c->path = c->plan->shards[k];
        c->idx = 0;
        if ((rc = rt_events_open(c->path, &c->reader, err))) goto out;
        rt_events_skip_malformed(c->reader, skipping(c->cfg));
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
    size_t n = c->buf_len - c->buf_pos, used;
    if (n > target - out->len) n = target - out->len;
    rc = keep_events(c, c->buf + c->buf_pos, n, out, watch, &used, err);
    c->buf_pos += used;
    c->idx += used;
    if (rc) goto out;
  }
out:
  return rc;
}

void rt_read_end(rt_read_cursor *c) {
  close_shard(c);
  free(c->buf);
  memset(c, 0, sizeof *c);
}
