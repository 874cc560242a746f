/* eval.c — positions, predictors and bootstrap intervals (eval.h). */
#include "pipeline/eval.h"
#include "base/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void rt_eval_sequence(const rt_eval_opts *o, const uint32_t *s, size_t m, uint32_t *f) {
  const size_t H = o->horizon > 0 ? (size_t)o->horizon : 1;
  for (size_t i = 2; i < m; i++) {
    f[RT_EF_POS]++;
    size_t end = i + H < m ? i + H : m;
    for (int p = 0; p < RT_EVAL_NPRED; p++) {
      if (!o->pred[p].fn) continue;
      uint32_t next = 0;
      int prov = RAGTIDE_PROV_NONE;
      int covered = o->pred[p].fn(o->pred[p].ctx, s[i - 2], s[i - 1], &next, &prov);
      int n1 = covered && next == s[i], hit = 0, novel = covered;
      for (size_t j = i; covered && j < end && !hit; j++) hit = next == s[j];
      for (size_t j = 0; covered && j < i && novel; j++) novel = next != s[j];
      f[RT_EF(p, RT_EK_COVERED)] += (uint32_t)covered;
      f[RT_EF(p, RT_EK_NEXT1)] += (uint32_t)n1;
      f[RT_EF(p, RT_EK_HIT)] += (uint32_t)hit;
      f[RT_EF(p, RT_EK_NOVEL)] += (uint32_t)novel;
      if (p == RT_EVAL_TABLE) {
        int v = covered && (unsigned)prov < RAGTIDE_PROV_COUNT ? prov : RAGTIDE_PROV_NONE;
        f[RT_EF_PROV(v, RT_EP_POS)]++;
        f[RT_EF_PROV(v, RT_EP_NEXT1)] += (uint32_t)n1;
        f[RT_EF_PROV(v, RT_EP_HIT)] += (uint32_t)hit;
      }
    }
  }
}

int rt_predict_table(const void *table, uint32_t c1, uint32_t c2, uint32_t *next, int *prov) {
  uint32_t nx;
  ragtide_provenance pv = RAGTIDE_PROV_NONE;
  if (ragtide_table_get_idx(table, c1, c2, 0, &nx, &pv, NULL) != RAGTIDE_OK || pv == RAGTIDE_PROV_NONE) return 0;
  *next = nx;
  *prov = (int)pv;
  return 1;
}

int rt_predict_popular(const void *popular, uint32_t c1, uint32_t c2, uint32_t *next, int *prov) {
  const rt_popular *p = popular;
  for (size_t i = 0; i < p->n && i < 3; i++)
    if (p->rank[i] != c1 && p->rank[i] != c2) {
      *next = p->rank[i];
      *prov = RAGTIDE_PROV_NONE;
      return 1;
    }
  return 0;
}

static const uint64_t *g_count; /* qsort has no context argument */
static int cmp_popular(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  if (g_count[x] != g_count[y]) return g_count[x] > g_count[y] ? -1 : 1;
  return x < y ? -1 : x > y;
}

size_t rt_popular_rank(const uint64_t *count, uint32_t n, uint32_t *rank) {
  size_t k = 0;
  for (uint32_t c = 0; c < n; c++)
    if (count[c]) rank[k++] = c;
  g_count = count;
  qsort(rank, k, sizeof *rank, cmp_popular);
  g_count = NULL;
  return k;
}

int rt_predict_pairs(const void *map, uint32_t c1, uint32_t c2, uint32_t *next, int *prov) {
  const rt_pair_map *m = map;
  uint64_t key = (uint64_t)c1 * m->n + c2;
  size_t lo = 0, hi = m->len;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (m->e[mid].pair < key) lo = mid + 1;
    else hi = mid;
  }
  if (lo == m->len || m->e[lo].pair != key) return 0;
  *next = m->e[lo].next;
  *prov = RAGTIDE_PROV_NONE;
  return 1;
}

static int cmp_user(const void *a, const void *b) {
  const rt_eval_user *x = a, *y = b;
  return x->user < y->user ? -1 : x->user > y->user;
}

size_t rt_eval_merge_users(rt_eval_user *u, size_t n) {
  if (!n) return 0;
  qsort(u, n, sizeof *u, cmp_user);
  size_t k = 0;
  for (size_t i = 1; i < n; i++) {
    if (u[i].user == u[k].user) {
      for (int f = 0; f < RT_EVAL_NF; f++) u[k].f[f] += u[i].f[f];
    } else {
      u[++k] = u[i];
    }
  }
  return k + 1;
}

/* The report's figures as (numerator, denominator) field pairs, and a
 * second pair subtracted for differences (-1: none). */
typedef struct {
  rt_eval_ci *out;
  int num, den, num2, den2;
} figure;

static size_t figures(rt_eval_report *r, figure *fg) {
  size_t k = 0;
  for (int p = 0; p < RT_EVAL_NPRED; p++) {
    fg[k++] = (figure){&r->next1[p], RT_EF(p, RT_EK_NEXT1), RT_EF_POS, -1, -1};
    fg[k++] = (figure){&r->hit[p], RT_EF(p, RT_EK_HIT), RT_EF_POS, -1, -1};
    fg[k++] = (figure){&r->coverage[p], RT_EF(p, RT_EK_COVERED), RT_EF_POS, -1, -1};
    fg[k++] = (figure){&r->novelty[p], RT_EF(p, RT_EK_NOVEL), RT_EF(p, RT_EK_COVERED), -1, -1};
    if (p == RT_EVAL_TABLE) continue;
    fg[k++] = (figure){&r->d_next1[p], RT_EF(p, RT_EK_NEXT1), RT_EF_POS, RT_EF(RT_EVAL_TABLE, RT_EK_NEXT1), RT_EF_POS};
    fg[k++] = (figure){&r->d_hit[p], RT_EF(p, RT_EK_HIT), RT_EF_POS, RT_EF(RT_EVAL_TABLE, RT_EK_HIT), RT_EF_POS};
    fg[k++] = (figure){&r->d_coverage[p], RT_EF(p, RT_EK_COVERED), RT_EF_POS, RT_EF(RT_EVAL_TABLE, RT_EK_COVERED),
                       RT_EF_POS};
  }
  for (int v = 0; v < RAGTIDE_PROV_COUNT; v++) {
    fg[k++] = (figure){&r->prov_share[v], RT_EF_PROV(v, RT_EP_POS), RT_EF_POS, -1, -1};
    fg[k++] = (figure){&r->prov_next1[v], RT_EF_PROV(v, RT_EP_NEXT1), RT_EF_PROV(v, RT_EP_POS), -1, -1};
    fg[k++] = (figure){&r->prov_hit[v], RT_EF_PROV(v, RT_EP_HIT), RT_EF_PROV(v, RT_EP_POS), -1, -1};
  }
  return k;
}

static double fig_value(const figure *g, const double *t) {
  if (t[g->den] == 0) return NAN;
  double v = t[g->num] / t[g->den];
  if (g->num2 >= 0) {
    if (t[g->den2] == 0) return NAN;
    v -= t[g->num2] / t[g->den2];
  }
  return v;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void rt_eval_summarize(const rt_eval_user *u, size_t nu, int resamples, uint64_t seed, rt_eval_report *r) {
  memset(r, 0, sizeof *r);
  r->users = nu;
  double t[RT_EVAL_NF] = {0};
  for (size_t i = 0; i < nu; i++)
    for (int f = 0; f < RT_EVAL_NF; f++) r->tally[f] += u[i].f[f];
  for (int f = 0; f < RT_EVAL_NF; f++) t[f] = (double)r->tally[f];
  figure fg[64];
  size_t nf = figures(r, fg);
  for (size_t k = 0; k < nf; k++) {
    double v = fig_value(&fg[k], t);
    fg[k].out->defined = !isnan(v);
    fg[k].out->value = fg[k].out->lo = fg[k].out->hi = fg[k].out->defined ? v : 0;
  }
  if (resamples <= 0 || nu == 0) return;
  double *vals = rt_xmalloc((size_t)resamples * nf * sizeof *vals);
  uint64_t st = seed;
  for (int b = 0; b < resamples; b++) {
    double s[RT_EVAL_NF] = {0};
    for (size_t i = 0; i < nu; i++) {
      const rt_eval_user *x = &u[splitmix64(&st) % nu];
      for (int f = 0; f < RT_EVAL_NF; f++) s[f] += x->f[f];
    }
    for (size_t k = 0; k < nf; k++) vals[k * (size_t)resamples + (size_t)b] = fig_value(&fg[k], s);
  }
  for (size_t k = 0; k < nf; k++) {
    if (!fg[k].out->defined) continue;
    double *v = vals + k * (size_t)resamples;
    size_t n = 0; /* resamples where the figure is defined */
    for (int b = 0; b < resamples; b++)
      if (!isnan(v[b])) v[n++] = v[b];
    if (!n) continue;
    qsort(v, n, sizeof *v, cmp_double);
    /* percentile method, nearest rank: the 2.5% and 97.5% order statistics */
    size_t lo = (size_t)floor(0.025 * (double)n), hi = (size_t)ceil(0.975 * (double)n);
    if (hi > 0) hi--;
    if (lo >= n) lo = n - 1;
    if (hi >= n) hi = n - 1;
    fg[k].out->lo = v[lo];
    fg[k].out->hi = v[hi];
  }
  free(vals);
}
