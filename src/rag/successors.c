/* successors.c — periods, top-k successor sets, drift and fine-tuning picks. */
#include "rag/successors.h"
#include "base/util.h"
#include "pipeline/count.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- calendar (proleptic Gregorian, UTC), after H. Hinnant's algorithms -- */

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

static int64_t month_number(int32_t day) {
  int64_t y;
  int m, d;
  civil_from_days(day, &y, &m, &d);
  return y * 12 + (m - 1);
}

static int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

static int32_t clamp32(int64_t v) { return v < INT32_MIN ? INT32_MIN : v > INT32_MAX ? INT32_MAX : (int32_t)v; }

void rt_day_format(int32_t day, char *buf, size_t cap) {
  int64_t y;
  int m, d;
  civil_from_days(day, &y, &m, &d);
  snprintf(buf, cap, "%04lld-%02d-%02d", (long long)y, m, d);
}

int rt_day_parse(const char *s, int32_t *day) {
  int64_t t;
  if (strlen(s) != 10 || rt_parse_utc(s, &t) != 0) return -1;
  *day = (int32_t)floor_div(t, 86400);
  return 0;
}

int rt_periods_parse(const char *s, rt_periods *p, rt_err *err) {
  memset(p, 0, sizeof *p);
  if (!strcmp(s, "month")) {
    p->kind = RT_PERIOD_MONTH;
    return RT_OK;
  }
  p->kind = RT_PERIOD_DAYS;
  if (!strcmp(s, "week")) {
    p->days = 7;
    return RT_OK;
  }
  char *end;
  long v = strtol(s, &end, 10);
  if (end == s || strcmp(end, "d") != 0 || s[0] == '-' || s[0] == '+' || v < 1 || v > 36500)
    return rt_err_set(err, RT_ERR_USAGE,
                      "--period \"%s\": expected month, week or Nd with N in 1..36500 (e.g. 14d)", s);
  p->days = (int32_t)v;
  return RT_OK;
}

int64_t rt_period_of(const rt_periods *p, int32_t day) {
  switch (p->kind) {
  case RT_PERIOD_MONTH: return month_number(day) - month_number(p->anchor);
  case RT_PERIOD_DAYS: return floor_div((int64_t)day - p->anchor, p->days);
  case RT_PERIOD_SPLIT: return day < p->anchor ? 0 : 1;
  }
  return 0;
}

void rt_period_bounds(const rt_periods *p, int64_t idx, int32_t *first, int32_t *end) {
  switch (p->kind) {
  case RT_PERIOD_MONTH: {
    int64_t mi = month_number(p->anchor) + idx;
    int64_t y = floor_div(mi, 12), m = mi - y * 12 + 1;
    *first = clamp32(days_from_civil(y, m, 1));
    *end = clamp32(m == 12 ? days_from_civil(y + 1, 1, 1) : days_from_civil(y, m + 1, 1));
    return;
  }
  case RT_PERIOD_DAYS:
    *first = clamp32((int64_t)p->anchor + idx * p->days);
    *end = clamp32((int64_t)p->anchor + (idx + 1) * p->days);
    return;
  case RT_PERIOD_SPLIT:
    *first = idx == 0 ? INT32_MIN : p->anchor;
    *end = idx == 0 ? p->anchor : INT32_MAX;
    return;
  }
}

void rt_period_name(const rt_periods *p, int64_t idx, char *buf, size_t cap) {
  int32_t first, end;
  switch (p->kind) {
  case RT_PERIOD_MONTH: {
    int64_t mi = month_number(p->anchor) + idx;
    int64_t y = floor_div(mi, 12);
    snprintf(buf, cap, "%04lld-%02d", (long long)y, (int)(mi - y * 12 + 1));
    return;
  }
  case RT_PERIOD_DAYS:
    rt_period_bounds(p, idx, &first, &end);
    rt_day_format(first, buf, cap);
    return;
  case RT_PERIOD_SPLIT: snprintf(buf, cap, "%s", idx == 0 ? "train" : "test"); return;
  }
}

size_t rt_counts_day_range(const rt_count *rec, size_t n, int32_t *first, int32_t *last) {
  size_t used = 0;
  *first = *last = 0;
  for (size_t i = 0; i < n; i++) {
    if (rec[i].win != 0) continue;
    if (!used || rec[i].day < *first) *first = rec[i].day;
    if (!used || rec[i].day > *last) *last = rec[i].day;
    used++;
  }
  return used;
}

/* ---- top-k sets ----------------------------------------------------------- */

typedef struct {
  uint64_t key;
  int64_t period;
  uint64_t n;
} pk_rec;

static int cmp_pk(const void *a, const void *b) {
  const pk_rec *x = a, *y = b;
  if (x->period != y->period) return x->period < y->period ? -1 : 1;
  return x->key < y->key ? -1 : x->key > y->key;
}

/* Rank successors: count descending, then the smaller index (= smaller id). */
static int cmp_rank(const void *a, const void *b) {
  const pk_rec *x = a, *y = b;
  if (x->n != y->n) return x->n > y->n ? -1 : 1;
  uint32_t u = rt_key_next(x->key), v = rt_key_next(y->key);
  return u < v ? -1 : u > v;
}

struct rt_succ_builder {
  rt_periods p;
  uint32_t k;
  uint64_t min_count;
  RT_VEC(pk_rec) cur; /* the current pair's records (window 0, period >= 0) */
  uint64_t cur_pair;
  int have_pair;
  size_t fed; /* records seen, for messages */
  int64_t maxp;
  RT_VEC(rt_topk) sets;
  RT_VEC(uint32_t) next;
  RT_VEC(uint64_t) cnt;
};

rt_succ_builder *rt_succ_builder_new(const rt_periods *p, uint32_t k, uint64_t min_count) {
  rt_succ_builder *b = rt_xcalloc(1, sizeof *b);
  b->p = *p;
  b->k = k;
  b->min_count = min_count;
  b->maxp = -1;
  return b;
}

/* The current pair's top-k set of every period it has records in. */
static void flush_pair(rt_succ_builder *b) {
  pk_rec *v = b->cur.data;
  size_t len = b->cur.len;
  if (len) qsort(v, len, sizeof *v, cmp_pk);
  size_t m = 0; /* merge equal (period, triple) records: one triple has one record per day */
  for (size_t i = 0; i < len; i++) {
    if (m && v[m - 1].period == v[i].period && v[m - 1].key == v[i].key) v[m - 1].n += v[i].n;
    else v[m++] = v[i];
  }
  for (size_t i = 0; i < m;) {
    size_t j = i;
    uint64_t total = 0;
    while (j < m && v[j].period == v[i].period) total += v[j++].n;
    qsort(v + i, j - i, sizeof *v, cmp_rank);
    rt_topk t = {b->cur_pair, (int32_t)v[i].period, 0, total, b->next.len};
    for (size_t q = i; q < j && t.n < b->k && v[q].n >= b->min_count; q++, t.n++) {
      rt_vec_push(&b->next, rt_key_next(v[q].key));
      rt_vec_push(&b->cnt, v[q].n);
    }
    if (t.n) rt_vec_push(&b->sets, t);
    i = j;
  }
  b->cur.len = 0;
}

int rt_succ_builder_add(rt_succ_builder *b, const rt_count *rec, size_t n, rt_err *err) {
  for (size_t i = 0; i < n; i++) {
    size_t idx = b->fed++;
    if (rec[i].win != 0) continue; /* the previous window feeds trend retrieval only */
    int64_t per = rt_period_of(&b->p, rec[i].day);
    if (per < 0) continue;
    if (per >= RT_PERIODS_MAX) {
      char d[16];
      rt_day_format(rec[i].day, d, sizeof d);
      return rt_err_set(err, RT_ERR_INPUT,
                        "count record %zu is dated %s, more than %d periods after the first: a corrupt day "
                        "value, or choose a longer --period",
                        idx, d, RT_PERIODS_MAX);
    }
    uint64_t pair = rt_key_pair(rec[i].key);
    if (b->have_pair && pair != b->cur_pair) {
      if (pair < b->cur_pair)
        return rt_err_set(err, RT_ERR_INPUT, "count record %zu is out of order (records must come sorted by pair)",
                          idx);
      flush_pair(b);
    }
    b->cur_pair = pair;
    b->have_pair = 1;
    if (per > b->maxp) b->maxp = per;
    rt_vec_push(&b->cur, ((pk_rec){rec[i].key, per, rec[i].n}));
  }
  return RT_OK;
}

static int cmp_set(const void *a, const void *b) {
  const rt_topk *x = a, *y = b;
  if (x->period != y->period) return x->period < y->period ? -1 : 1;
  return x->pair < y->pair ? -1 : x->pair > y->pair;
}

void rt_succ_builder_finish(rt_succ_builder *b, rt_succ *out) {
  flush_pair(b);
  memset(out, 0, sizeof *out);
  out->k = b->k;
  out->n_periods = (int32_t)(b->maxp + 1);
  out->begin = rt_xcalloc((size_t)out->n_periods + 1, sizeof *out->begin);
  /* Built pair by pair; served by (period, pair). */
  if (b->sets.len) qsort(b->sets.data, b->sets.len, sizeof *b->sets.data, cmp_set);
  out->sets = b->sets.data;
  out->n_sets = b->sets.len;
  out->next = b->next.data;
  out->count = b->cnt.data;
  for (size_t i = 0; i < out->n_sets; i++) out->begin[out->sets[i].period + 1]++;
  for (int32_t q = 0; q < out->n_periods; q++) out->begin[q + 1] += out->begin[q];
  free(b->cur.data);
  free(b);
}

void rt_succ_builder_free(rt_succ_builder *b) {
  if (!b) return;
  free(b->cur.data);
  free(b->sets.data);
  free(b->next.data);
  free(b->cnt.data);
  free(b);
}

static int cmp_by_key(const void *a, const void *b) {
  const rt_count *x = a, *y = b;
  return x->key < y->key ? -1 : x->key > y->key;
}

int rt_succ_build(const rt_count *rec, size_t n, const rt_periods *p, uint32_t k, uint64_t min_count,
                  rt_succ *out, rt_err *err) {
  memset(out, 0, sizeof *out);
  if (k == 0) return rt_err_set(err, RT_ERR_USAGE, "top-k successor sets: k must be >= 1");
  /* Any order: a copy sorted by pair, unless it already is. */
  int sorted = 1;
  for (size_t i = 1; i < n && sorted; i++) sorted = rt_key_pair(rec[i - 1].key) <= rt_key_pair(rec[i].key);
  rt_count *copy = NULL;
  if (!sorted) {
    copy = rt_xmalloc(n * sizeof *copy);
    memcpy(copy, rec, n * sizeof *copy);
    qsort(copy, n, sizeof *copy, cmp_by_key);
    rec = copy;
  }
  rt_succ_builder *b = rt_succ_builder_new(p, k, min_count);
  int rc = rt_succ_builder_add(b, rec, n, err);
  free(copy);
  if (rc) {
    rt_succ_builder_free(b);
    return rc;
  }
  rt_succ_builder_finish(b, out);
  return RT_OK;
}

void rt_succ_free(rt_succ *s) {
  free(s->sets);
  free(s->begin);
  free(s->next);
  free(s->count);
  memset(s, 0, sizeof *s);
}

const rt_topk *rt_succ_find(const rt_succ *s, int32_t period, uint64_t pair) {
  if (period < 0 || period >= s->n_periods) return NULL;
  size_t lo = s->begin[period], hi = s->begin[period + 1];
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->sets[mid].pair < pair) lo = mid + 1;
    else hi = mid;
  }
  return lo < s->begin[period + 1] && s->sets[lo].pair == pair ? &s->sets[lo] : NULL;
}

/* ---- drift ------------------------------------------------------------------ */

static size_t intersect(const uint32_t *a, uint32_t na, const uint32_t *b, uint32_t nb) {
  size_t c = 0;
  for (uint32_t i = 0; i < na; i++)
    for (uint32_t j = 0; j < nb; j++)
      if (a[i] == b[j]) {
        c++;
        break;
      }
  return c;
}

double rt_jaccard(const uint32_t *a, uint32_t na, const uint32_t *b, uint32_t nb) {
  size_t in = intersect(a, na, b, nb), un = (size_t)na + nb - in;
  return un ? (double)in / (double)un : 1.0;
}

/* Welford's running mean and M2: one pass, no catastrophic cancellation. */
typedef struct {
  size_t n;
  double mean, m2;
} welford;

static void wf_add(welford *w, double x) {
  w->n++;
  double d = x - w->mean;
  w->mean += d / (double)w->n;
  w->m2 += d * (x - w->mean);
}

static rt_drift_stat wf_stat(const welford *w) {
  rt_drift_stat s = {w->n, w->n ? w->mean : 0, w->n ? w->m2 / (double)w->n : 0};
  if (s.variance < 0) s.variance = 0;
  return s;
}

/* Call fn for every pair with a set in both periods a and b (merge walk). */
typedef void (*pair_fn)(void *ctx, const rt_succ *s, const rt_topk *x, const rt_topk *y);
static void both(const rt_succ *s, int32_t a, int32_t b, pair_fn fn, void *ctx) {
  size_t i = s->begin[a], ie = s->begin[a + 1], j = s->begin[b], je = s->begin[b + 1];
  while (i < ie && j < je) {
    if (s->sets[i].pair < s->sets[j].pair) i++;
    else if (s->sets[i].pair > s->sets[j].pair) j++;
    else fn(ctx, s, &s->sets[i++], &s->sets[j++]);
  }
}

typedef struct {
  welford step, *all;
} jac_ctx;

static void on_jaccard(void *ctx, const rt_succ *s, const rt_topk *x, const rt_topk *y) {
  jac_ctx *c = ctx;
  double j = rt_jaccard(s->next + x->off, x->n, s->next + y->off, y->n);
  wf_add(&c->step, j);
  wf_add(c->all, j);
}

typedef struct {
  size_t pairs;
  double *sum; /* [k] */
} ov_ctx;

static void on_overlap(void *ctx, const rt_succ *s, const rt_topk *x, const rt_topk *y) {
  ov_ctx *c = ctx;
  c->pairs++;
  for (uint32_t kk = 1; kk <= s->k; kk++) {
    uint32_t na = x->n < kk ? x->n : kk, nb = y->n < kk ? y->n : kk;
    c->sum[kk - 1] += (double)intersect(s->next + x->off, na, s->next + y->off, nb) / kk;
  }
}

void rt_drift_compute(const rt_succ *s, rt_drift *d) {
  memset(d, 0, sizeof *d);
  d->n_periods = s->n_periods;
  d->k = s->k;
  size_t np = (size_t)s->n_periods;
  d->period_pairs = rt_xcalloc(np ? np : 1, sizeof *d->period_pairs);
  d->steps = rt_xcalloc(np ? np : 1, sizeof *d->steps);
  d->overlap_pairs = rt_xcalloc(np ? np : 1, sizeof *d->overlap_pairs);
  d->overlap = rt_xcalloc(np ? np * s->k : 1, sizeof *d->overlap);
  welford all = {0};
  for (size_t p = 0; p < np; p++) d->period_pairs[p] = s->begin[p + 1] - s->begin[p];
  for (size_t p = 0; p + 1 < np; p++) {
    jac_ctx c = {{0}, &all};
    both(s, (int32_t)p, (int32_t)p + 1, on_jaccard, &c);
    d->steps[p] = wf_stat(&c.step);
  }
  d->overall = wf_stat(&all);
  for (size_t p = 0; p < np; p++) {
    ov_ctx c = {0, d->overlap + p * s->k};
    both(s, 0, (int32_t)p, on_overlap, &c);
    d->overlap_pairs[p] = c.pairs;
    for (uint32_t kk = 0; kk < s->k; kk++) c.sum[kk] = c.pairs ? c.sum[kk] / (double)c.pairs : 0;
  }
}

void rt_drift_free(rt_drift *d) {
  free(d->period_pairs);
  free(d->steps);
  free(d->overlap_pairs);
  free(d->overlap);
  memset(d, 0, sizeof *d);
}

/* ---- fine-tuning picks ----------------------------------------------------------- */

uint64_t rt_ft_cap(size_t max_pairs, double cap_frac) {
  double c = ceil(cap_frac * (double)max_pairs - 1e-9);
  return c < 1 ? 1 : (uint64_t)c;
}

static int cmp_freq(const void *a, const void *b) {
  const rt_topk *x = *(const rt_topk *const *)a, *y = *(const rt_topk *const *)b;
  if (x->total != y->total) return x->total > y->total ? -1 : 1;
  return x->pair < y->pair ? -1 : x->pair > y->pair;
}

void rt_ft_select(const rt_succ *s, int32_t period, size_t max_pairs, uint64_t cap, rt_ft_pick **out,
                  size_t *n_out, rt_ft_stats *st) {
  memset(st, 0, sizeof *st);
  st->cap = cap;
  *out = NULL;
  *n_out = 0;
  if (period < 0 || period >= s->n_periods) return;
  size_t b = s->begin[period], n = s->begin[period + 1] - b;
  st->considered = n;
  if (!n || !max_pairs) return;
  const rt_topk **ord = rt_xmalloc(n * sizeof *ord);
  uint32_t maxl = 0;
  for (size_t i = 0; i < n; i++) {
    ord[i] = &s->sets[b + i];
    uint32_t l = s->next[ord[i]->off];
    if (l > maxl) maxl = l;
  }
  qsort(ord, n, sizeof *ord, cmp_freq);
  uint64_t *per = rt_xcalloc((size_t)maxl + 1, sizeof *per);
  rt_ft_pick *pk = rt_xmalloc((n < max_pairs ? n : max_pairs) * sizeof *pk);
  for (size_t i = 0; i < n && st->picked < max_pairs; i++) {
    uint32_t l = s->next[ord[i]->off];
    if (per[l] >= cap) {
      st->skipped_cap++;
      continue;
    }
    if (per[l]++ == 0) st->distinct_labels++;
    if (per[l] == cap) st->labels_capped++;
    pk[st->picked++] = (rt_ft_pick){ord[i]->pair, l, ord[i]->total};
  }
  free(per);
  free(ord);
  *out = pk;
  *n_out = st->picked;
}

/* ---- JSONL lines --------------------------------------------------------------- */

/* Owns every reference passed in (jansson's _new setters), so a NULL from an
 * invalid string frees what was built and returns NULL. */
static char *dump_line(json_t *o) {
  char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  return s;
}

static json_t *msg(const char *role, const char *key, json_t *val) {
  if (!val) return NULL;
  json_t *m = json_object();
  json_object_set_new(m, "role", json_string(role));
  json_object_set_new(m, key, val);
  return m;
}

static json_t *parts(const char *text) {
  json_t *t = json_string(text);
  if (!t) return NULL;
  json_t *p = json_object(), *a = json_array();
  json_object_set_new(p, "text", t);
  json_array_append_new(a, p);
  return a;
}

/* Append or fail: returns 0 and drops the container when v is NULL. */
static int add(json_t *arr, json_t *v) {
  if (!v) return 0;
  json_array_append_new(arr, v);
  return 1;
}

char *rt_ft_openai_line(const char *system, const char *user, const char *label) {
  json_t *o = json_object(), *m = json_array();
  json_object_set_new(o, "messages", m);
  int ok = (!*system || add(m, msg("system", "content", json_string(system)))) &&
           add(m, msg("user", "content", json_string(user))) &&
           add(m, msg("assistant", "content", json_string(label)));
  if (!ok) {
    json_decref(o);
    return NULL;
  }
  return dump_line(o);
}

char *rt_ft_gemini_line(const char *system, const char *user, const char *label) {
  json_t *o = json_object();
  if (*system) {
    json_t *si = msg("system", "parts", parts(system));
    if (!si) {
      json_decref(o);
      return NULL;
    }
    json_object_set_new(o, "systemInstruction", si);
  }
  json_t *c = json_array();
  json_object_set_new(o, "contents", c);
  if (!add(c, msg("user", "parts", parts(user))) || !add(c, msg("model", "parts", parts(label)))) {
    json_decref(o);
    return NULL;
  }
  return dump_line(o);
}
