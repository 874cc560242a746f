/* spill.c — user-bucketed event store with spill files. */
#include "pipeline/spill.h"
#include "base/metrics.h"
#include "base/util.h"

#include <errno.h>
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

int rt_spill_add(rt_spill *s, const rt_ev *ev, size_t n, rt_err *err) {
  if (n == 0) return RT_OK;
  if (s->nbuckets == 1) {
    rt_vec_reserve(&s->mem[0], s->mem[0].len + n);
    memcpy(s->mem[0].data + s->mem[0].len, ev, n * sizeof *ev);
    s->mem[0].len += n;
  } else {
    /* Counting scatter: each bucket grows once per batch, not per event. */
    uint32_t *b = rt_xmalloc(n * sizeof *b);
    size_t *cnt = rt_xcalloc(s->nbuckets, sizeof *cnt);
    for (size_t i = 0; i < n; i++) cnt[b[i] = (uint32_t)bucket_of(s, ev[i].user)]++;
    for (size_t k = 0; k < s->nbuckets; k++)
      if (cnt[k]) rt_vec_reserve(&s->mem[k], s->mem[k].len + cnt[k]);
    for (size_t i = 0; i < n; i++) {
      rt_ev_vec *v = &s->mem[b[i]];
      v->data[v->len++] = ev[i];
    }
    free(cnt);
    free(b);
  }
  s->mem_events += n;
  if (s->budget_events && s->mem_events > s->budget_events) return spill_all(s, err);
  return RT_OK;
}

void rt_spill_reserve(rt_spill *s, uint64_t events) {
  size_t per = (size_t)(events / s->nbuckets + events / s->nbuckets / 4 + 64); /* +25%: hashing is uneven */
  for (size_t b = 0; b < s->nbuckets; b++) rt_vec_reserve(&s->mem[b], per);
}

int rt_spill_take(rt_spill *s, size_t b, rt_ev_vec *out, rt_err *err) {
  if (s->on_disk[b] == 0) { /* all in memory: hand the vector over, no copy */
    free(out->data);
    *out = *(rt_ev_vec *)&s->mem[b];
    s->mem_events -= s->mem[b].len;
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
  s->mem_events -= s->mem[b].len;
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
