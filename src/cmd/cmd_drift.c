/* cmd_drift.c — `ragtide drift`: how stable are the pairs' top-k successors
 * from one period to the next (paper §2.1: month-over-month Jaccard of the
 * top-5 sets, mean 0.17, variance 0.07) and how fast the top-k' sets move
 * away from the first period (Figure 3(b)). Reads a counts file written by
 * `ragtide aggregate --out`; a plain process, no MPI.
 * Exit codes: 0 ok, 2 bad flags, 3 counts file missing, corrupt or empty. */
#include "cmd/commands.h"

#include "base/err.h"
#include "base/util.h"
#include "format/counts.h"
#include "rag/successors.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct drift_opts {
  const char *counts;
  const char *period;
  uint32_t k;
  uint64_t min_count;
  int json;
} drift_opts;


static int parse_u64(const char *flag, const char *s, uint64_t lo, uint64_t hi, uint64_t *out, rt_err *err) {
  char *end;
  errno = 0;
  unsigned long long v = s[0] >= '0' && s[0] <= '9' ? strtoull(s, &end, 10) : 0;
  if (!(s[0] >= '0' && s[0] <= '9') || errno || *end || v < lo || v > hi)
    return rt_err_set(err, RT_ERR_USAGE, "%s \"%s\": expected an integer in %llu..%llu", flag, s,
                      (unsigned long long)lo, (unsigned long long)hi);
  *out = v;
  return RT_OK;
}

static int parse_opts(int argc, char **argv, drift_opts *o, rt_err *err) {
  memset(o, 0, sizeof *o);
  o->period = "month";
  o->k = 5;
  o->min_count = 1;
  for (int i = 1; i < argc; i++) {
    const char *v = NULL;
    int r;
    if (!strcmp(argv[i], "--json")) {
      o->json = 1;
    } else if ((r = rt_flag_value(argc, argv, &i, "--counts", &v, "drift", err))) {
      if (r < 0) return RT_ERR_USAGE;
      o->counts = v;
    } else if ((r = rt_flag_value(argc, argv, &i, "--period", &v, "drift", err))) {
      if (r < 0) return RT_ERR_USAGE;
      o->period = v;
    } else if ((r = rt_flag_value(argc, argv, &i, "--k", &v, "drift", err))) {
      uint64_t k;
      if (r < 0 || parse_u64("--k", v, 1, 1000, &k, err)) return RT_ERR_USAGE;
      o->k = (uint32_t)k;
    } else if ((r = rt_flag_value(argc, argv, &i, "--min-count", &v, "drift", err))) {
      if (r < 0 || parse_u64("--min-count", v, 1, UINT64_MAX, &o->min_count, err)) return RT_ERR_USAGE;
    } else {
      return rt_bad_arg("drift", argv[i], err);
    }
  }
  if (!o->counts)
    return rt_err_set(err, RT_ERR_USAGE, "drift: --counts COUNTS is required (see `ragtide help drift`)");
  return RT_OK;
}

/* How many successors the top-k sets really hold: per period (p >= 0) or
 * over all periods (p = -1), the number of sets of each size 1..k (hist,
 * k entries) and their mean size. Sparse data leaves most sets short of k,
 * which bounds every Jaccard value (a 1-set vs a 5-set is at most 0.2). */
static double set_sizes(const rt_succ *s, int32_t p, size_t *hist) {
  memset(hist, 0, s->k * sizeof *hist);
  size_t lo = p < 0 ? 0 : s->begin[p], hi = p < 0 ? s->n_sets : s->begin[p + 1], n = 0, sum = 0;
  for (size_t i = lo; i < hi; i++) {
    uint32_t m = s->sets[i].n;
    if (m >= 1 && m <= s->k) hist[m - 1]++;
    sum += m;
    n++;
  }
  return n ? (double)sum / (double)n : 0;
}

static json_t *sizes_json(const rt_succ *s, int32_t p) {
  size_t *hist = rt_xcalloc(s->k ? s->k : 1, sizeof *hist);
  double mean = set_sizes(s, p, hist);
  json_t *o = json_object(), *h = json_array();
  for (uint32_t k = 0; k < s->k; k++) json_array_append_new(h, json_integer((json_int_t)hist[k]));
  free(hist);
  json_object_set_new(o, "mean", json_real(mean));
  json_object_set_new(o, "sets_of_size", h); /* [sets with 1 successor, 2, ..., k] */
  return o;
}

/* JSON number, or null when no pair was in both periods (a mean of nothing). */
static json_t *num_or_null(size_t pairs, double v) { return pairs ? json_real(v) : json_null(); }

static json_t *stat_json(const rt_drift_stat *s, const char *from, const char *to) {
  json_t *o = json_object();
  if (from) json_object_set_new(o, "from", json_string(from));
  if (to) json_object_set_new(o, "to", json_string(to));
  json_object_set_new(o, "pairs", json_integer((json_int_t)s->pairs));
  json_object_set_new(o, "mean", num_or_null(s->pairs, s->mean));
  json_object_set_new(o, "variance", num_or_null(s->pairs, s->variance));
  return o;
}

static void print_json(const drift_opts *o, const rt_periods *per, const rt_drift *d, const rt_succ *su,
                       int32_t first, int32_t last) {
  char a[32], b[32];
  json_t *root = json_object();
  json_object_set_new(root, "counts", json_string(o->counts));
  json_object_set_new(root, "period", json_string(o->period));
  json_object_set_new(root, "k", json_integer(o->k));
  json_object_set_new(root, "min_count", json_integer((json_int_t)o->min_count));
  rt_day_format(first, a, sizeof a);
  rt_day_format(last, b, sizeof b);
  json_object_set_new(root, "first_day", json_string(a));
  json_object_set_new(root, "last_day", json_string(b));
  json_t *ps = json_array(), *steps = json_array(), *ov = json_array();
  for (int32_t p = 0; p < d->n_periods; p++) {
    int32_t f, e;
    rt_period_bounds(per, p, &f, &e);
    rt_period_name(per, p, a, sizeof a);
    json_t *x = json_object();
    json_object_set_new(x, "name", json_string(a));
    rt_day_format(f, b, sizeof b);
    json_object_set_new(x, "start", json_string(b));
    rt_day_format(e, b, sizeof b);
    json_object_set_new(x, "end", json_string(b)); /* exclusive */
    json_object_set_new(x, "pairs", json_integer((json_int_t)d->period_pairs[p]));
    json_object_set_new(x, "set_sizes", sizes_json(su, p));
    json_array_append_new(ps, x);
    if (p + 1 < d->n_periods) {
      rt_period_name(per, p + 1, b, sizeof b);
      json_array_append_new(steps, stat_json(&d->steps[p], a, b));
    }
    json_t *y = json_object(), *ks = json_array();
    json_object_set_new(y, "period", json_string(a));
    json_object_set_new(y, "pairs", json_integer((json_int_t)d->overlap_pairs[p]));
    for (uint32_t k = 0; k < d->k; k++)
      json_array_append_new(ks, num_or_null(d->overlap_pairs[p], d->overlap[(size_t)p * d->k + k]));
    json_object_set_new(y, "k", ks);
    json_array_append_new(ov, y);
  }
  json_object_set_new(root, "periods", ps);
  json_object_set_new(root, "steps", steps);
  json_object_set_new(root, "overall", stat_json(&d->overall, NULL, NULL));
  json_object_set_new(root, "set_sizes", sizes_json(su, -1));
  json_object_set_new(root, "overlap_with_first", ov);
  char *s = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
  if (s) puts(s);
  free(s);
  json_decref(root);
}

static void print_stat(const char *label, const rt_drift_stat *s) {
  if (s->pairs) printf("  %-24s %8zu  %8.4f  %8.4f\n", label, s->pairs, s->mean, s->variance);
  else printf("  %-24s %8zu  %8s  %8s\n", label, s->pairs, "-", "-");
}

static void print_text(const drift_opts *o, const rt_periods *per, const rt_drift *d, const rt_succ *su,
                       int32_t first, int32_t last) {
  char a[32], b[32], c[32];
  rt_day_format(first, a, sizeof a);
  rt_day_format(last, b, sizeof b);
  printf("drift of the top-%u successors per pair, by %s (%s .. %s, min count %llu): %s\n\n", o->k, o->period, a,
         b, (unsigned long long)o->min_count, o->counts);
  size_t *hist = rt_xcalloc(su->k ? su->k : 1, sizeof *hist);
  printf("  %-12s %-10s %-10s %8s  %9s  sets of 1..%u successors\n", "period", "first day", "last day", "pairs",
         "mean size", o->k);
  for (int32_t p = 0; p <= d->n_periods; p++) {
    double mean = set_sizes(su, p < d->n_periods ? p : -1, hist);
    if (p < d->n_periods) {
      int32_t f, e;
      rt_period_bounds(per, p, &f, &e);
      rt_period_name(per, p, a, sizeof a);
      rt_day_format(f, b, sizeof b);
      rt_day_format(e - 1, c, sizeof c);
      printf("  %-12s %-10s %-10s %8zu  %9.2f ", a, b, c, d->period_pairs[p], mean);
    } else {
      printf("  %-12s %-10s %-10s %8zu  %9.2f ", "all", "", "", su->n_sets, mean);
    }
    for (uint32_t k = 0; k < su->k; k++) printf(" %zu", hist[k]);
    printf("\n");
  }
  free(hist);
  printf("\nJaccard of consecutive top-%u sets (pairs with a set in both periods):\n", o->k);
  printf("  %-24s %8s  %8s  %8s\n", "step", "pairs", "mean", "variance");
  for (int32_t p = 0; p + 1 < d->n_periods; p++) {
    char label[80];
    rt_period_name(per, p, a, sizeof a);
    rt_period_name(per, p + 1, b, sizeof b);
    snprintf(label, sizeof label, "%s -> %s", a, b);
    print_stat(label, &d->steps[p]);
  }
  print_stat("overall", &d->overall);
  rt_period_name(per, 0, a, sizeof a);
  printf("\nTop-k' overlap with the first period %s: mean |top-k'(%s) ∩ top-k'(p)| / k'\n", a, a);
  printf("  %-12s %8s", "period", "pairs");
  for (uint32_t k = 1; k <= d->k; k++) {
    char h[16];
    snprintf(h, sizeof h, "k=%u", k);
    printf("  %8s", h);
  }
  printf("\n");
  for (int32_t p = 0; p < d->n_periods; p++) {
    rt_period_name(per, p, a, sizeof a);
    printf("  %-12s %8zu", a, d->overlap_pairs[p]);
    for (uint32_t k = 0; k < d->k; k++) {
      if (d->overlap_pairs[p]) printf("  %8.4f", d->overlap[(size_t)p * d->k + k]);
      else printf("  %8s", "-");
    }
    printf("\n");
  }
}

int rt_cmd_drift(int argc, char **argv) {
  rt_err err = {0};
  drift_opts o;
  rt_periods per;
  int rc = parse_opts(argc, argv, &o, &err);
  if (rc == RT_OK) rc = rt_periods_parse(o.period, &per, &err);
  if (rc) {
    fprintf(stderr, "ragtide drift: %s\n", err.msg);
    return rc;
  }
  /* Two streamed passes over the counts file (records are sorted by pair):
   * the first finds the days with data, which anchor the periods; the second
   * builds the top-k sets pair by pair. Memory: the sets, not the records. */
  int32_t first = 0, last = 0;
  size_t used = 0;
  rt_succ s;
  rt_succ_builder *b = NULL;
  enum { CHUNK = 65536 };
  rt_count *buf = rt_xmalloc(CHUNK * sizeof *buf);
  for (int pass = 0; pass < 2 && rc == RT_OK; pass++) {
    rt_counts_reader *r = NULL;
    rc = rt_counts_reader_open(o.counts, &r, &err);
    if (rc) {
      fprintf(stderr, "ragtide drift: %s (write one with `ragtide aggregate --out COUNTS`)\n", err.msg);
      break;
    }
    if (pass == 1) {
      per.anchor = first; /* periods start with the first day that has data */
      b = rt_succ_builder_new(&per, o.k, o.min_count);
    }
    long got;
    while (rc == RT_OK && (got = rt_counts_reader_next(r, buf, CHUNK, &err)) != 0) {
      if (got < 0) {
        rc = err.code ? err.code : RT_ERR_INPUT;
        fprintf(stderr, "ragtide drift: %s\n", err.msg);
      } else if (pass == 0) {
        int32_t f, l;
        size_t u = rt_counts_day_range(buf, (size_t)got, &f, &l);
        if (u && (!used || f < first)) first = f;
        if (u && (!used || l > last)) last = l;
        used += u;
      } else if ((rc = rt_succ_builder_add(b, buf, (size_t)got, &err))) {
        fprintf(stderr, "ragtide drift: %s: %s\n", o.counts, err.msg);
      }
    }
    rt_counts_reader_close(r);
    if (rc == RT_OK && pass == 0 && !used) {
      fprintf(stderr, "ragtide drift: %s holds no count records of the refresh window: nothing to measure\n",
              o.counts);
      rc = RT_ERR_INPUT;
    }
  }
  free(buf);
  if (rc) {
    rt_succ_builder_free(b);
    return rc;
  }
  rt_succ_builder_finish(b, &s);
  rt_drift d;
  rt_drift_compute(&s, &d);
  if (o.json) print_json(&o, &per, &d, &s, first, last);
  else print_text(&o, &per, &d, &s, first, last);
  rt_drift_free(&d);
  rt_succ_free(&s);
  if (fflush(stdout) != 0) {
    fprintf(stderr, "ragtide drift: writing to stdout failed: %s\n", strerror(errno));
    return RT_ERR_OUTPUT;
  }
  return RT_OK;
}
