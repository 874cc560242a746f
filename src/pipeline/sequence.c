/* sequence.c — histories to triples (paper §2.4). */
#include "pipeline/sequence.h"
#include "base/util.h"

#include <stdlib.h>
#include <string.h>

void rt_seq_opts_from_config(const rt_config *cfg, rt_seq_opts *o) {
  o->unique = strcmp(cfg->dedup, "unique") == 0;
  o->min_len = cfg->min_seq_len;
  o->max_gap = cfg->max_gap_s;
}

int rt_ev_order(const void *a, const void *b) {
  const rt_ev *x = a, *y = b;
  if (x->user != y->user) return x->user < y->user ? -1 : 1;
  if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
  if (x->c != y->c) return x->c < y->c ? -1 : 1;
  return x->win < y->win ? -1 : x->win > y->win;
}

static int32_t day_of(int64_t ts) { return (int32_t)(ts / 86400); } /* ts >= 0 (read checks) */

/* Emit the triples of one deduplicated sequence s[0..m). */
static void emit(const rt_ev *s, size_t m, const rt_seq_opts *o, rt_triple_fn fn, void *ctx, rt_seq_stats *st) {
  st->sequences++;
  if ((int64_t)m < o->min_len) {
    st->short_sequences++;
    return;
  }
  for (size_t i = 2; i < m; i++) {
    uint32_t a = s[i - 2].c, b = s[i - 1].c, c = s[i].c;
    if (a == b || b == c || a == c) continue;
    fn(ctx, a, b, c, day_of(s[i].ts), s[i].win);
    st->triples++;
  }
}

/* Dedup one raw segment seg[0..n) into out, return its length. */
static size_t dedup(const rt_ev *seg, size_t n, int unique, rt_ev *out) {
  size_t m = 0;
  if (!unique) {
    for (size_t i = 0; i < n; i++)
      if (m == 0 || out[m - 1].c != seg[i].c) out[m++] = seg[i]; /* a run keeps its first event */
    return m;
  }
  /* unique: walk backwards keeping the first (= last in time) sighting of
   * each cluster, then reverse. Segments are short (one user, one session),
   * so a linear membership check beats a hash set here. */
  for (size_t i = n; i-- > 0;) {
    int seen = 0;
    for (size_t j = 0; j < m; j++)
      if (out[j].c == seg[i].c) {
        seen = 1;
        break;
      }
    if (!seen) out[m++] = seg[i];
  }
  for (size_t i = 0; i < m / 2; i++) {
    rt_ev t = out[i];
    out[i] = out[m - 1 - i];
    out[m - 1 - i] = t;
  }
  return m;
}

void rt_sequence_user(const rt_ev *ev, size_t n, const rt_seq_opts *o, rt_ev *scratch, rt_triple_fn fn,
                      void *ctx, rt_seq_stats *st) {
  st->users++;
  size_t start = 0;
  for (size_t i = 1; i <= n; i++) {
    int split = i == n || ev[i].win != ev[i - 1].win || (o->max_gap > 0 && ev[i].ts - ev[i - 1].ts > o->max_gap);
    if (!split) continue;
    size_t m = dedup(ev + start, i - start, o->unique, scratch);
    emit(scratch, m, o, fn, ctx, st);
    start = i;
  }
}

/* Group events by user into tmp, each user's events ordered by rt_ev_order.
 * A full comparison sort of n events costs n log n cache-missing compares;
 * users only need grouping (the triples do not depend on user order), so
 * events are first scattered by a hash of the user into ~n/32 buckets
 * (counting sort, two linear passes) and each small bucket is then sorted. */
static void group_by_user(rt_ev *ev, size_t n, rt_ev *tmp) {
  size_t nb = 1;
  while (nb * 32 < n) nb <<= 1;
  const uint64_t mask = nb - 1;
  size_t *start = rt_xcalloc(nb + 1, sizeof *start);
  for (size_t i = 0; i < n; i++) start[(rt_mix64(ev[i].user) & mask) + 1]++;
  for (size_t b = 0; b < nb; b++) start[b + 1] += start[b];
  size_t *pos = rt_xmalloc(nb * sizeof *pos);
  memcpy(pos, start, nb * sizeof *pos);
  for (size_t i = 0; i < n; i++) tmp[pos[rt_mix64(ev[i].user) & mask]++] = ev[i];
  for (size_t b = 0; b < nb; b++) {
    size_t lo = start[b], len = start[b + 1] - lo;
    if (len > 64) {
      qsort(tmp + lo, len, sizeof *tmp, rt_ev_order);
      continue;
    }
    /* Small buckets: insertion sort, linear on the nearly sorted input that
     * time-ordered shards give. */
    rt_ev *a = tmp + lo;
    for (size_t i = 1; i < len; i++) {
      rt_ev x = a[i];
      size_t j = i;
      while (j > 0 && rt_ev_order(&a[j - 1], &x) > 0) {
        a[j] = a[j - 1];
        j--;
      }
      a[j] = x;
    }
  }
  free(start);
  free(pos);
}

void rt_sequence_all(rt_ev *ev, size_t n, const rt_seq_opts *o, rt_triple_fn fn, void *ctx, rt_seq_stats *st) {
  rt_ev *grouped = rt_xmalloc((n ? n : 1) * sizeof *grouped);
  group_by_user(ev, n, grouped);
  /* ev's own storage is now free: it serves as the dedup scratch */
  size_t start = 0;
  for (size_t i = 1; i <= n; i++) {
    if (i < n && grouped[i].user == grouped[start].user) continue;
    rt_sequence_user(grouped + start, i - start, o, ev, fn, ctx, st);
    start = i;
  }
  free(grouped);
}
