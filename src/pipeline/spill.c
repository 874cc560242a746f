/* spill.c — user-bucketed event store with spill files. */
#include "pipeline/spill.h"
#include "base/metrics.h"
#include "base/util.h"

#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void bucket_path(const rt_spill *s, size_t b, char *buf, size_t cap) {
  snprintf(buf, cap, "%s/spill-r%d-b%zu.ev", s->dir, s->rank, b);
}

void rt_spill_init(rt_spill *s, size_t nbuckets, size_t budget_events, const char *dir, int rank) {
  memset(s, 0, sizeof *s);
  s->nbuckets = nbuckets ? nbuckets : 1;
  s->mem = rt_xcalloc(s->nbuckets, sizeof *s->mem);
  s->on_disk = rt_xcalloc(s->nbuckets, sizeof *s->on_disk);
  s->budget_events = budget_events;
  s->dir = rt_xstrdup(dir ? dir : "");
  s->rank = rank;
}

static int spill_all(rt_spill *s, rt_err *err) {
  if (mkdir(s->dir, 0755) != 0 && errno != EEXIST)
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot create run directory %s for spill files: %s (set output.run_dir)",
                      s->dir, strerror(errno));
  for (size_t b = 0; b < s->nbuckets; b++) {
    if (s->mem[b].len == 0) continue;
    char path[4096];
    bucket_path(s, b, path, sizeof path);
    /* "wb" the first time: a file left by a killed run must not be read back */
    FILE *f = fopen(path, s->on_disk[b] ? "ab" : "wb");
    if (!f) return rt_err_set(err, RT_ERR_OUTPUT, "cannot write spill file %s: %s", path, strerror(errno));
    size_t w = fwrite(s->mem[b].data, sizeof(rt_ev), s->mem[b].len, f);
    int bad = w != s->mem[b].len || fclose(f) != 0;
    if (bad) return rt_err_set(err, RT_ERR_OUTPUT, "cannot write spill file %s (disk full?)", path);
    s->on_disk[b] += s->mem[b].len;
    s->spilled += s->mem[b].len;
    rt_metric_add(RT_M_shuffle_spilled_events, s->mem[b].len);
    s->mem[b].len = 0;
  }
  s->mem_events = 0;
  return RT_OK;
}

/* Bucket of a user: a different mix than the user->rank map, so buckets
 * are balanced within a rank; multiply-high maps it to [0, nbuckets)
 * without a division. */
static inline size_t bucket_of(const rt_spill *s, uint64_t user) {
  return (size_t)(((unsigned __int128)rt_mix64(user ^ 0x5350494c4cULL) * s->nbuckets) >> 64);
}

/* Counting scatter, each bucket grown once per batch, not per event. With
 * several parts (one per thread) it runs in parallel: each part counts its
 * events per bucket, every bucket then reserves its total once and hands
 * each part its own range, and the parts write without locks. Within a
 * bucket the order of events follows the parts' order, which sequencing
 * does not depend on (it orders each user's events itself). */
int rt_spill_add_parts(rt_spill *s, const rt_ev *const *part, const size_t *len, int nparts, rt_err *err) {
  size_t n = 0;
  for (int p = 0; p < nparts; p++) n += len[p];
  if (n == 0) return RT_OK;
  const size_t nb = s->nbuckets;
  if (nb == 1) {
    rt_vec_reserve(&s->mem[0], s->mem[0].len + n);
    for (int p = 0; p < nparts; p++) {
      memcpy(s->mem[0].data + s->mem[0].len, part[p], len[p] * sizeof **part);
      s->mem[0].len += len[p];
    }
  } else {
    uint32_t **bk = rt_xcalloc((size_t)nparts, sizeof *bk);
    size_t *cnt = rt_xcalloc((size_t)nparts * nb, sizeof *cnt); /* [part][bucket]: count, then write position */
#pragma omp parallel for schedule(static, 1)
    for (int p = 0; p < nparts; p++) {
      const rt_ev *ev = part[p];
      size_t *c = cnt + (size_t)p * nb;
      uint32_t *b = bk[p] = rt_xmalloc((len[p] ? len[p] : 1) * sizeof *b);
      for (size_t i = 0; i < len[p]; i++) c[b[i] = (uint32_t)bucket_of(s, ev[i].user)]++;
    }
    for (size_t k = 0; k < nb; k++) {
      size_t tot = 0;
      for (int p = 0; p < nparts; p++) tot += cnt[(size_t)p * nb + k];
      if (!tot) continue;
      rt_ev_vec *v = &s->mem[k];
      rt_vec_reserve(v, v->len + tot);
      for (int p = 0; p < nparts; p++) {
        size_t c = cnt[(size_t)p * nb + k];
        cnt[(size_t)p * nb + k] = v->len;
        v->len += c;
      }
    }
#pragma omp parallel for schedule(static, 1)
    for (int p = 0; p < nparts; p++) {
      const rt_ev *ev = part[p];
      const uint32_t *b = bk[p];
      size_t *pos = cnt + (size_t)p * nb;
      for (size_t i = 0; i < len[p]; i++) s->mem[b[i]].data[pos[b[i]]++] = ev[i];
      free(bk[p]);
    }
    free(cnt);
    free(bk);
  }
  s->mem_events += n;
  if (s->budget_events && s->mem_events > s->budget_events) return spill_all(s, err);
  return RT_OK;
}

int rt_spill_add(rt_spill *s, const rt_ev *ev, size_t n, rt_err *err) {
  /* one slice per thread, so the scatter runs on all of them */
  enum { MAXP = 64 };
  int np = omp_get_max_threads();
  if (np > MAXP) np = MAXP;
  if (n < (size_t)np * 4096) np = 1;
  const rt_ev *part[MAXP];
  size_t len[MAXP];
  for (int p = 0; p < np; p++) {
    size_t lo = n * (size_t)p / (size_t)np, hi = n * (size_t)(p + 1) / (size_t)np;
    part[p] = ev + lo;
    len[p] = hi - lo;
  }
  return rt_spill_add_parts(s, part, len, np, err);
}

void rt_spill_reserve(rt_spill *s, uint64_t events) {
  size_t per = (size_t)(events / s->nbuckets + events / s->nbuckets / 4 + 64); /* +25%: hashing is uneven */
  for (size_t b = 0; b < s->nbuckets; b++) rt_vec_reserve(&s->mem[b], per);
}

int rt_spill_take(rt_spill *s, size_t b, rt_ev_vec *out, rt_err *err) {
  if (s->on_disk[b] == 0) { /* all in memory: hand the vector over, no copy */
    free(out->data);
    *out = *(rt_ev_vec *)&s->mem[b];
    __atomic_fetch_sub(&s->mem_events, s->mem[b].len, __ATOMIC_RELAXED);
    memset(&s->mem[b], 0, sizeof s->mem[b]);
    return RT_OK;
  }
  out->len = 0;
  rt_vec_reserve(out, s->on_disk[b] + s->mem[b].len);
  if (s->on_disk[b]) {
    char path[4096];
    bucket_path(s, b, path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f) return rt_err_set(err, RT_ERR_OUTPUT, "cannot read back spill file %s: %s", path, strerror(errno));
    size_t r = fread(out->data, sizeof(rt_ev), s->on_disk[b], f);
    fclose(f);
    unlink(path);
    if (r != s->on_disk[b])
      return rt_err_set(err, RT_ERR_OUTPUT, "spill file %s is short (%zu of %llu events)", path, r,
                        (unsigned long long)s->on_disk[b]);
    out->len = r;
    s->on_disk[b] = 0;
  }
  if (s->mem[b].len) memcpy(out->data + out->len, s->mem[b].data, s->mem[b].len * sizeof(rt_ev));
  out->len += s->mem[b].len;
  __atomic_fetch_sub(&s->mem_events, s->mem[b].len, __ATOMIC_RELAXED);
  free(s->mem[b].data);
  memset(&s->mem[b], 0, sizeof s->mem[b]);
  return RT_OK;
}

void rt_spill_free(rt_spill *s) {
  for (size_t b = 0; b < s->nbuckets; b++) {
    free(s->mem[b].data);
    if (s->on_disk[b]) {
      char path[4096];
      bucket_path(s, b, path, sizeof path);
      unlink(path);
    }
  }
  if (s->spilled && *s->dir) rmdir(s->dir); /* only succeeds when empty */
  free(s->mem);
  free(s->on_disk);
  free(s->dir);
  memset(s, 0, sizeof *s);
}
