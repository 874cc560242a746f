/* sequence.c — histories to triples (paper §2.4). */
#include "pipeline/sequence.h"
#include "base/util.h"

#include <stdlib.h>
#include <string.h>

void rt_seq_opts_from_config(const rt_config *cfg, rt_seq_opts *o) {
  o->unique = strcmp(cfg->dedup, "unique") == 0;
  o->min_len = cfg->min_seq_len;
  o->max_gap = cfg->max_gap_s;
  rt_window w;
  rt_window_from_config(cfg, &w);
  o->epoch = w.prev_start; /* what read.c counts t from */
}

int rt_ev_order(const void *a, const void *b) {
  const rt_ev *x = a, *y = b;
  if (x->user != y->user) return x->user < y->user ? -1 : 1;
  return x->tcw < y->tcw ? -1 : x->tcw > y->tcw;
}

static inline int ev_less(const rt_ev *x, const rt_ev *y) {
  return x->user < y->user || (x->user == y->user && x->tcw < y->tcw);
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
    uint32_t a = rt_ev_c(&s[i - 2]), b = rt_ev_c(&s[i - 1]), c = rt_ev_c(&s[i]);
    if (a == b || b == c || a == c) continue;
    fn(ctx, a, b, c, day_of(o->epoch + rt_ev_t(&s[i])), rt_ev_win(&s[i]));
    st->triples++;
  }
}

/* Dedup one raw segment seg[0..n) into out, return its length. */
static size_t dedup(const rt_ev *seg, size_t n, int unique, rt_ev *out) {
  size_t m = 0;
  if (!unique) {
    for (size_t i = 0; i < n; i++)
      if (m == 0 || rt_ev_c(&out[m - 1]) != rt_ev_c(&seg[i])) out[m++] = seg[i]; /* a run keeps its first event */
    return m;
  }
  /* unique: walk backwards keeping the first (= last in time) sighting of
   * each cluster, then reverse. Segments are short (one user, one session),
   * so a linear membership check beats a hash set here. */
  for (size_t i = n; i-- > 0;) {
    int seen = 0;
    for (size_t j = 0; j < m; j++)
      if (rt_ev_c(&out[j]) == rt_ev_c(&seg[i])) {
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

/* One user: split, dedup, then either emit triples (fn) or hand each kept
 * sequence over (seq_fn). */
static void sequence_user(const rt_ev *ev, size_t n, const rt_seq_opts *o, rt_ev *scratch, rt_triple_fn fn,
                          rt_seq_fn seq_fn, void *ctx, rt_seq_stats *st) {
  st->users++;
  size_t start = 0;
  for (size_t i = 1; i <= n; i++) {
    int split = i == n || rt_ev_win(&ev[i]) != rt_ev_win(&ev[i - 1]) ||
                (o->max_gap > 0 && (int64_t)rt_ev_t(&ev[i]) - (int64_t)rt_ev_t(&ev[i - 1]) > o->max_gap);
    if (!split) continue;
    size_t m = dedup(ev + start, i - start, o->unique, scratch);
    if (fn) {
      emit(scratch, m, o, fn, ctx, st);
    } else {
      st->sequences++;
      if ((int64_t)m < o->min_len) st->short_sequences++;
      else seq_fn(ctx, ev[0].user, scratch, m);
    }
    start = i;
  }
}

void rt_sequence_user(const rt_ev *ev, size_t n, const rt_seq_opts *o, rt_ev *scratch, rt_triple_fn fn,
                      void *ctx, rt_seq_stats *st) {
  sequence_user(ev, n, o, scratch, fn, NULL, ctx, st);
}

void rt_sequence_user_each(const rt_ev *ev, size_t n, const rt_seq_opts *o, rt_ev *scratch, rt_seq_fn fn,
                           void *ctx, rt_seq_stats *st) {
  sequence_user(ev, n, o, scratch, NULL, fn, ctx, st);
}

/* Sort a few events by rt_ev_order: insertion sort, linear on the nearly
 * sorted input that time-ordered shards give; qsort beyond 64. */
static void sort_small(rt_ev *a, size_t len) {
  if (len > 64) {
    qsort(a, len, sizeof *a, rt_ev_order);
    return;
  }
  for (size_t i = 1; i < len; i++) {
    rt_ev x = a[i];
    size_t j = i;
    while (j > 0 && ev_less(&x, &a[j - 1])) {
      a[j] = a[j - 1];
      j--;
    }
    a[j] = x;
  }
}

/* Counting sort of ev[0..n) into out by BUCKET, an expression of the
 * user's hash h_ in [0, nb); start[b] is where bucket b begins (nb + 1
 * entries). */
#define SCATTER(ev, n, out, nb, start, BUCKET)                                  \
  do {                                                                         \
    memset((start), 0, ((nb) + 1) * sizeof *(start));                          \
    for (size_t i_ = 0; i_ < (n); i_++) {                                      \
      uint64_t h_ = rt_mix64((ev)[i_].user);                                   \
      (start)[(BUCKET) + 1]++;                                                 \
    }                                                                          \
    for (size_t b_ = 0; b_ < (nb); b_++) (start)[b_ + 1] += (start)[b_];        \
    for (size_t i_ = 0; i_ < (n); i_++) {                                      \
      uint64_t h_ = rt_mix64((ev)[i_].user);                                   \
      (out)[(start)[BUCKET]++] = (ev)[i_];                                     \
    }                                                                          \
    memmove((start) + 1, (start), (nb) * sizeof *(start));                      \
    (start)[0] = 0;                                                            \
  } while (0)

/* Why two levels: users only need grouping (the triples do not depend on
 * user order), and a single counting sort into ~n/32 buckets scatters every
 * event to a cold cache line. So events are first split by the top bits of
 * a user hash into cache-sized parts (~8k events), and each part, while it
 * is hot, is split again by the low bits into buckets of a few users, each
 * sorted by rt_ev_order, and sequenced at once. */

static void sequence_all(rt_ev *ev, size_t n, const rt_seq_opts *o, rt_triple_fn fn, rt_seq_fn seq_fn, void *ctx,
                         rt_seq_stats *st) {
  if (n == 0) return;
  unsigned k1 = 0;
  while (k1 < 16 && ((size_t)8192 << k1) < n) k1++;
  size_t nb1 = (size_t)1 << k1;
  rt_ev *parts = rt_xmalloc(n * sizeof *parts);
  size_t *start1 = rt_xmalloc((nb1 + 1) * sizeof *start1);
  /* One part (a small bucket): split ev into parts directly. Several: ev
   * is scattered into parts, and each part is split back into ev at the
   * same offsets. Either way a part's input is free once it is split and
   * serves as the dedup scratch. */
  rt_ev *from = ev, *to = parts;
  if (k1 == 0) {
    start1[0] = 0;
    start1[1] = n;
  } else {
    SCATTER(ev, n, parts, nb1, start1, (size_t)(h_ >> (64 - k1)));
    from = parts;
    to = ev;
  }
  size_t cap2 = 0, *start2 = NULL;
  for (size_t p = 0; p < nb1; p++) {
    size_t lo = start1[p], m = start1[p + 1] - lo;
    if (m == 0) continue;
    size_t nb2 = 1;
    while (nb2 * 4 < m) nb2 <<= 1;
    if (nb2 + 1 > cap2) {
      cap2 = nb2 + 1;
      start2 = rt_xrealloc(start2, cap2 * sizeof *start2);
    }
    rt_ev *in = from + lo, *g = to + lo;
    SCATTER(in, m, g, nb2, start2, (size_t)(h_ & (nb2 - 1)));
    for (size_t b = 0; b < nb2; b++) sort_small(g + start2[b], start2[b + 1] - start2[b]);
    size_t s0 = 0;
    for (size_t i = 1; i <= m; i++) {
      if (i < m && g[i].user == g[s0].user) continue;
      sequence_user(g + s0, i - s0, o, in, fn, seq_fn, ctx, st);
      s0 = i;
    }
  }
  free(start2);
  free(start1);
  free(parts);
}

void rt_sequence_all(rt_ev *ev, size_t n, const rt_seq_opts *o, rt_triple_fn fn, void *ctx, rt_seq_stats *st) {
  sequence_all(ev, n, o, fn, NULL, ctx, st);
}

void rt_sequence_all_each(rt_ev *ev, size_t n, const rt_seq_opts *o, rt_seq_fn fn, void *ctx, rt_seq_stats *st) {
  sequence_all(ev, n, o, NULL, fn, ctx, st);
}
