/* runs.c — sorted count runs in memory or in files, merged on read. */
#include "pipeline/runs.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FANIN 64          /* runs merged at once: 64 x 192 KiB of buffers */
#define FILE_BUF 8192     /* records buffered per file run while merging */

static int cmp_count(const void *a, const void *b) { return rt_count_cmp(a, b); }

/* ---- sort and reduce -------------------------------------------------------
 * LSD radix sort by (key, day, win): 4 bytes of (day - min day) << 1 | win,
 * then the 8 bytes of key, skipping every byte position whose value is the
 * same in all records (with 1,000 clusters only 6 of 12 passes run). */
static void radix_sort(rt_count *a, size_t n) {
  if (n < 256) {
    qsort(a, n, sizeof *a, cmp_count);
    return;
  }
  int32_t dmin = a[0].day;
  for (size_t i = 1; i < n; i++)
    if (a[i].day < dmin) dmin = a[i].day;
  size_t(*hist)[256] = rt_xcalloc(12, sizeof *hist);
  for (size_t i = 0; i < n; i++) {
    uint32_t lo = ((uint32_t)(a[i].day - dmin) << 1) | (a[i].win & 1);
    for (int b = 0; b < 4; b++) hist[b][(lo >> (8 * b)) & 0xff]++;
    for (int b = 0; b < 8; b++) hist[4 + b][(a[i].key >> (8 * b)) & 0xff]++;
  }
  rt_count *tmp = rt_xmalloc(n * sizeof *tmp), *src = a, *dst = tmp;
  for (int d = 0; d < 12; d++) {
    int trivial = 0;
    for (int v = 0; v < 256; v++)
      if (hist[d][v] == n) trivial = 1;
    if (trivial) continue;
    size_t pos[256], sum = 0;
    for (int v = 0; v < 256; v++) {
      pos[v] = sum;
      sum += hist[d][v];
    }
    for (size_t i = 0; i < n; i++) {
      uint64_t digit = d < 4 ? ((((uint32_t)(src[i].day - dmin) << 1) | (src[i].win & 1)) >> (8 * d)) & 0xff
                             : (src[i].key >> (8 * (d - 4))) & 0xff;
      dst[pos[digit]++] = src[i];
    }
    rt_count *t = src;
    src = dst;
    dst = t;
  }
  if (src != a) memcpy(a, src, n * sizeof *a);
  free(tmp);
  free(hist);
}

void rt_counts_reduce(rt_count_vec *v) {
  if (v->len == 0) return;
  int sorted = 1; /* one rank's output is already sorted: skip the sort */
  for (size_t i = 1; i < v->len && sorted; i++) sorted = rt_count_cmp(&v->data[i - 1], &v->data[i]) <= 0;
  if (!sorted) radix_sort(v->data, v->len);
  size_t w = 0;
  for (size_t i = 1; i < v->len; i++) {
    if (rt_count_cmp(&v->data[w], &v->data[i]) == 0) v->data[w].n += v->data[i].n;
    else v->data[++w] = v->data[i];
  }
  v->len = w + 1;
}

/* ---- runs and merge streams ----------------------------------------------- */

typedef struct {
  rt_count_vec mem; /* an in-memory run, when path is NULL */
  char *path;       /* a file run of n records */
  uint64_t n;
} run;

/* ---- k-way merge ----------------------------------------------------------
 * Each source hands out its records a window at a time; the heap holds the
 * sources by their current record. */
typedef struct {
  rt_merge_src s;
  const rt_count *rec; /* current window: rec[pos..len) */
  size_t pos, len;
} msrc;

struct rt_merge {
  msrc *src;
  msrc **heap;
  size_t nheap;
};

/* The run sets' sources: an in-memory run is one window; a file run is read
 * FILE_BUF records at a time. */
typedef struct {
  const run *run;
  FILE *f;
  rt_count *buf;
  int given;
} run_src;

typedef struct {
  rt_merge *m;
  run_src *rs;
  size_t n;
} stream;

struct rt_runs {
  char *dir, *name;
  int rank;
  size_t mem_records;
  rt_count_vec loose; /* rt_runs_add's buffer, unsorted */
  RT_VEC(run) runs;
  unsigned next_id;
  uint64_t spilled;
  size_t files;
  stream *rd;         /* open merge stream; the set is closed while reading */
  rt_count_vec carry; /* rt_runs_next_pairs: records of a pair not yet returned */
  pthread_mutex_t put_lock; /* rt_runs_put: the counters of a rank's threads spill into one set */
};

rt_runs *rt_runs_new(const char *dir, const char *name, int rank, size_t mem_records) {
  rt_runs *r = rt_xcalloc(1, sizeof *r);
  r->dir = rt_xstrdup(dir ? dir : ".");
  r->name = rt_xstrdup(name);
  r->rank = rank;
  r->mem_records = mem_records;
  pthread_mutex_init(&r->put_lock, NULL);
  return r;
}

static void run_path(rt_runs *r, char *buf, size_t cap) {
  snprintf(buf, cap, "%s/runs-r%d-%s-%u.cnt", r->dir, r->rank, r->name, r->next_id++);
}

/* Pairs with window-0 records in rec[0..n), continuing from *last. */
static uint64_t count_pairs(const rt_count *rec, size_t n, uint64_t *last) {
  uint64_t np = 0;
  for (size_t i = 0; i < n; i++)
    if (rec[i].win == 0 && rec[i].key >> 20 != *last) {
      *last = rec[i].key >> 20;
      np++;
    }
  return np;
}

static int write_run(rt_runs *r, rt_count_vec *v, rt_err *err) {
  if (mkdir(r->dir, 0755) != 0 && errno != EEXIST)
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot create run directory %s for count runs: %s (set output.run_dir)",
                      r->dir, strerror(errno));
  char path[4096];
  run_path(r, path, sizeof path);
  FILE *f = fopen(path, "wb");
  if (!f) return rt_err_set(err, RT_ERR_OUTPUT, "cannot write count run %s: %s", path, strerror(errno));
  size_t w = fwrite(v->data, sizeof *v->data, v->len, f);
  if ((w != v->len) | (fclose(f) != 0)) {
    unlink(path);
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot write count run %s (disk full?)", path);
  }
  rt_vec_push(&r->runs, ((run){{0}, rt_xstrdup(path), v->len}));
  r->spilled += v->len;
  r->files++;
  free(v->data);
  memset(v, 0, sizeof *v);
  return RT_OK;
}

int rt_runs_put(rt_runs *r, rt_count_vec *v, rt_err *err) {
  if (v->len == 0) return RT_OK;
  int rc = RT_OK;
  pthread_mutex_lock(&r->put_lock);
  if (r->mem_records) {
    rc = write_run(r, v, err);
  } else {
    rt_vec_push(&r->runs, ((run){*v, NULL, v->len}));
    memset(v, 0, sizeof *v);
  }
  pthread_mutex_unlock(&r->put_lock);
  return rc;
}

static int flush_loose(rt_runs *r, rt_err *err) {
  if (r->loose.len == 0) return RT_OK;
  rt_counts_reduce(&r->loose);
  return rt_runs_put(r, &r->loose, err);
}

int rt_runs_add(rt_runs *r, const rt_count *rec, size_t n, rt_err *err) {
  while (n) {
    size_t room = r->mem_records ? r->mem_records - r->loose.len : n;
    size_t k = n < room ? n : room;
    rt_vec_reserve(&r->loose, r->loose.len + k);
    memcpy(r->loose.data + r->loose.len, rec, k * sizeof *rec);
    r->loose.len += k;
    rec += k;
    n -= k;
    if (r->mem_records && r->loose.len == r->mem_records) {
      int rc = flush_loose(r, err);
      if (rc) return rc;
    }
  }
  return RT_OK;
}

int rt_runs_add_pieces(rt_runs *r, const rt_count *rec, size_t n, rt_err *err) {
  size_t start = 0;
  for (size_t i = 1; i <= n; i++) {
    if (i < n && rt_count_cmp(&rec[i - 1], &rec[i]) < 0) continue;
    if (i - start < 4096) { /* small pieces (many ranks, small rounds) are cheaper sorted with the rest */
      int rc = rt_runs_add(r, rec + start, i - start, err);
      if (rc) return rc;
      start = i;
      continue;
    }
    rt_count_vec v = {0};
    rt_vec_reserve(&v, i - start);
    memcpy(v.data, rec + start, (i - start) * sizeof *rec);
    v.len = i - start;
    int rc = rt_runs_put(r, &v, err);
    free(v.data);
    if (rc) return rc;
    start = i;
  }
  return RT_OK;
}

static int src_less(const msrc *a, const msrc *b) { return rt_count_cmp(&a->rec[a->pos], &b->rec[b->pos]) < 0; }

static void sift_down(msrc **h, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    if (l < n && src_less(h[l], h[m])) m = l;
    if (l + 1 < n && src_less(h[l + 1], h[m])) m = l + 1;
    if (m == i) return;
    msrc *t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

/* The source's next window: 1 if it has one, 0 at its end, -1 on error. */
static int advance(msrc *x, rt_err *err) {
  const rt_count *w = NULL;
  long got = x->s.next(x->s.ctx, &w, err);
  if (got < 0) return -1;
  x->rec = w;
  x->pos = 0;
  x->len = (size_t)got;
  return got > 0;
}

rt_merge *rt_merge_open(const rt_merge_src *src, size_t n, rt_err *err) {
  rt_merge *m = rt_xcalloc(1, sizeof *m);
  m->src = rt_xcalloc(n ? n : 1, sizeof *m->src);
  m->heap = rt_xmalloc((n ? n : 1) * sizeof *m->heap);
  for (size_t i = 0; i < n; i++) {
    m->src[i].s = src[i];
    int more = advance(&m->src[i], err);
    if (more < 0) {
      rt_merge_close(m);
      return NULL;
    }
    if (more) m->heap[m->nheap++] = &m->src[i];
  }
  for (size_t i = m->nheap; i-- > 0;) sift_down(m->heap, m->nheap, i);
  return m;
}

void rt_merge_close(rt_merge *m) {
  if (!m) return;
  free(m->src);
  free(m->heap);
  free(m);
}

/* Take the smallest record; -1 on a read error. */
static int merge_pop(rt_merge *m, rt_count *out, rt_err *err) {
  msrc *t = m->heap[0];
  *out = t->rec[t->pos++];
  if (t->pos == t->len) {
    int more = advance(t, err);
    if (more < 0) return -1;
    if (!more) m->heap[0] = m->heap[--m->nheap];
  }
  if (m->nheap > 1) sift_down(m->heap, m->nheap, 0);
  return 0;
}

long rt_merge_read(rt_merge *m, rt_count *buf, size_t max, rt_err *err) {
  size_t o = 0;
  if (m->nheap == 1) { /* one source left: copy it out, nothing to compare */
    msrc *t = m->heap[0];
    while (o < max && m->nheap) {
      size_t k = t->len - t->pos < max - o ? t->len - t->pos : max - o;
      memcpy(buf + o, t->rec + t->pos, k * sizeof *buf);
      o += k;
      t->pos += k;
      if (t->pos == t->len) {
        int more = advance(t, err);
        if (more < 0) return -1;
        if (!more) m->nheap = 0;
      }
    }
    return (long)o;
  }
  /* Equal records can only come from different sources (each is reduced):
   * sum them as they surface together at the top of the heap. */
  while (o < max && m->nheap) {
    if (m->nheap == 1) break; /* (o > 0 here) the rest is copied by the next call */
    /* Records of the top source below every other source's head go out as
     * a block, without heap work: sources interleave by pair (the owners
     * are hashed), so blocks of a pair's ~10 records are the rule. */
    msrc *t = m->heap[0];
    const rt_count *bound = &m->heap[1]->rec[m->heap[1]->pos];
    if (m->nheap > 2 && rt_count_cmp(&m->heap[2]->rec[m->heap[2]->pos], bound) < 0)
      bound = &m->heap[2]->rec[m->heap[2]->pos];
    size_t p = t->pos;
    while (o < max && p < t->len && rt_count_cmp(&t->rec[p], bound) < 0) buf[o++] = t->rec[p++];
    if (p > t->pos) {
      t->pos = p;
      if (p == t->len) {
        int more = advance(t, err);
        if (more < 0) return -1;
        if (!more) m->heap[0] = m->heap[--m->nheap];
      }
      if (m->nheap > 1) sift_down(m->heap, m->nheap, 0);
      continue;
    }
    rt_count cur;
    if (merge_pop(m, &cur, err) < 0) return -1;
    while (m->nheap && rt_count_cmp(&m->heap[0]->rec[m->heap[0]->pos], &cur) == 0) {
      rt_count more;
      if (merge_pop(m, &more, err) < 0) return -1;
      cur.n += more.n;
    }
    buf[o++] = cur;
  }
  return (long)o;
}

static long run_next(void *ctx, const rt_count **window, rt_err *err) {
  run_src *x = ctx;
  if (!x->run->path) { /* in memory: the whole run, once */
    if (x->given) return 0;
    x->given = 1;
    *window = x->run->mem.data;
    return (long)x->run->mem.len;
  }
  size_t got = fread(x->buf, sizeof *x->buf, FILE_BUF, x->f);
  if (got == 0 && ferror(x->f)) return rt_err_set(err, RT_ERR_OUTPUT, "cannot read count run %s", x->run->path), -1;
  *window = x->buf;
  return (long)got;
}

static void stream_close(stream *s) {
  if (!s) return;
  rt_merge_close(s->m);
  for (size_t i = 0; i < s->n; i++) {
    if (s->rs[i].f) fclose(s->rs[i].f);
    free(s->rs[i].buf);
  }
  free(s->rs);
  free(s);
}

static stream *stream_open(const run *runs, size_t k, rt_err *err) {
  stream *s = rt_xcalloc(1, sizeof *s);
  s->rs = rt_xcalloc(k ? k : 1, sizeof *s->rs);
  rt_merge_src *src = rt_xcalloc(k ? k : 1, sizeof *src);
  for (size_t i = 0; i < k; i++, s->n++) {
    run_src *x = &s->rs[i];
    x->run = &runs[i];
    src[i] = (rt_merge_src){run_next, x};
    if (!runs[i].path) continue;
    x->f = fopen(runs[i].path, "rb");
    if (!x->f) {
      rt_err_set(err, RT_ERR_OUTPUT, "cannot read back count run %s: %s", runs[i].path, strerror(errno));
      free(src);
      stream_close(s);
      return NULL;
    }
    x->buf = rt_xmalloc(FILE_BUF * sizeof *x->buf);
  }
  s->m = rt_merge_open(src, k, err);
  free(src);
  if (!s->m) {
    stream_close(s);
    return NULL;
  }
  return s;
}

static long stream_read(stream *s, rt_count *buf, size_t max, rt_err *err) { return rt_merge_read(s->m, buf, max, err); }

static void run_free(run *x) {
  free(x->mem.data);
  if (x->path) unlink(x->path);
  free(x->path);
}

/* Merge runs[0..k) into one run (a file when the set has a budget), which
 * replaces them at the end of the list. */
static int merge_runs(rt_runs *r, size_t k, rt_err *err) {
  stream *s = stream_open(r->runs.data, k, err);
  if (!s) return RT_ERR_OUTPUT;
  rt_count_vec out = {0};
  int rc = RT_OK;
  FILE *f = NULL;
  char path[4096] = "";
  uint64_t n = 0;
  if (r->mem_records) {
    run_path(r, path, sizeof path);
    f = fopen(path, "wb");
    if (!f) rc = rt_err_set(err, RT_ERR_OUTPUT, "cannot write count run %s: %s", path, strerror(errno));
  }
  if (!f) { /* in memory: room for all (merging only shrinks) */
    uint64_t total = 0;
    for (size_t i = 0; i < k; i++) total += r->runs.data[i].n;
    rt_vec_reserve(&out, (size_t)total + 1);
  }
  rt_count *buf = rt_xmalloc(FILE_BUF * sizeof *buf);
  while (rc == RT_OK) {
    long got = stream_read(s, buf, FILE_BUF, err);
    if (got < 0) rc = RT_ERR_OUTPUT;
    if (got <= 0) break;
    n += (uint64_t)got;
    if (f) {
      if (fwrite(buf, sizeof *buf, (size_t)got, f) != (size_t)got)
        rc = rt_err_set(err, RT_ERR_OUTPUT, "cannot write count run %s (disk full?)", path);
    } else {
      rt_vec_reserve(&out, out.len + (size_t)got);
      memcpy(out.data + out.len, buf, (size_t)got * sizeof *buf);
      out.len += (size_t)got;
    }
  }
  free(buf);
  stream_close(s);
  if (f && fclose(f) != 0 && rc == RT_OK) rc = rt_err_set(err, RT_ERR_OUTPUT, "cannot write count run %s (disk full?)", path);
  if (rc) {
    if (f) unlink(path);
    free(out.data);
    return rc;
  }
  for (size_t i = 0; i < k; i++) run_free(&r->runs.data[i]);
  memmove(r->runs.data, r->runs.data + k, (r->runs.len - k) * sizeof *r->runs.data);
  r->runs.len -= k;
  if (f) {
    rt_vec_push(&r->runs, ((run){{0}, rt_xstrdup(path), n}));
    r->files++;
  } else {
    rt_vec_push(&r->runs, ((run){out, NULL, n}));
  }
  return RT_OK;
}

/* Close the set for reading: loose records become a run, and runs beyond
 * the fan-in are merged first so the final merge holds FANIN buffers. */
static int open_read(rt_runs *r, rt_err *err) {
  if (r->rd) return RT_OK;
  int rc = flush_loose(r, err);
  while (rc == RT_OK && r->runs.len > FANIN) rc = merge_runs(r, FANIN, err);
  if (rc) return rc;
  r->rd = stream_open(r->runs.data, r->runs.len, err);
  return r->rd ? RT_OK : RT_ERR_OUTPUT;
}

int rt_runs_seal(rt_runs *r, uint64_t *records, uint64_t *pairs, rt_err *err) {
  stream_close(r->rd);
  r->rd = NULL;
  int rc = RT_OK;
  if (r->runs.len == 0 && r->loose.len) { /* it all fitted: stays in memory, never written */
    rt_counts_reduce(&r->loose);
    rt_vec_push(&r->runs, ((run){r->loose, NULL, r->loose.len}));
    memset(&r->loose, 0, sizeof r->loose);
  }
  rc = flush_loose(r, err);
  while (rc == RT_OK && r->runs.len > 1) rc = merge_runs(r, r->runs.len < FANIN ? r->runs.len : FANIN, err);
  if (rc) return rc;
  uint64_t n = 0, np = 0, last = UINT64_MAX;
  const rt_count *v;
  size_t nv;
  if (pairs && rt_runs_view(r, &v, &nv)) {
    np = count_pairs(v, nv, &last);
  } else if (pairs) { /* one pass over the sealed run */
    if ((rc = open_read(r, err))) return rc;
    rt_count *buf = rt_xmalloc(FILE_BUF * sizeof *buf);
    long got;
    while ((got = stream_read(r->rd, buf, FILE_BUF, err)) > 0) np += count_pairs(buf, (size_t)got, &last);
    free(buf);
    if (got < 0) return RT_ERR_OUTPUT;
    stream_close(r->rd);
    r->rd = NULL;
  }
  for (size_t i = 0; i < r->runs.len; i++) n += r->runs.data[i].n;
  if (records) *records = n;
  if (pairs) *pairs = np;
  return RT_OK;
}

void rt_runs_rewind(rt_runs *r) {
  stream_close(r->rd);
  r->rd = NULL;
  r->carry.len = 0;
}

long rt_runs_read(rt_runs *r, rt_count *buf, size_t max, rt_err *err) {
  if (open_read(r, err)) return -1;
  return stream_read(r->rd, buf, max, err);
}

long rt_runs_next_pairs(rt_runs *r, rt_count_vec *v, size_t max, rt_err *err) {
  if (max == 0) max = 1;
  v->len = 0;
  /* Start from what the last call held back (a pair cut by its chunk). */
  rt_vec_reserve(v, r->carry.len + max);
  if (r->carry.len) memcpy(v->data, r->carry.data, r->carry.len * sizeof *v->data);
  v->len = r->carry.len;
  r->carry.len = 0;
  for (;;) {
    rt_vec_reserve(v, v->len + max);
    long got = rt_runs_read(r, v->data + v->len, max, err);
    if (got < 0) return -1;
    v->len += (size_t)got;
    if (got == 0) return (long)v->len; /* the end: everything is whole */
    /* keep back the last pair: its next records may be in the next chunk */
    uint64_t lastp = v->data[v->len - 1].key >> 20;
    size_t cut = v->len;
    while (cut > 0 && v->data[cut - 1].key >> 20 == lastp) cut--;
    if (cut == 0) continue; /* one pair bigger than the chunk: read on */
    rt_vec_reserve(&r->carry, v->len - cut);
    memcpy(r->carry.data, v->data + cut, (v->len - cut) * sizeof *v->data);
    r->carry.len = v->len - cut;
    v->len = cut;
    return (long)v->len;
  }
}

int rt_runs_view(const rt_runs *r, const rt_count **rec, size_t *n) {
  if (r->loose.len || r->runs.len > 1) return 0;
  if (r->runs.len == 1 && r->runs.data[0].path) return 0;
  *rec = r->runs.len ? r->runs.data[0].mem.data : NULL;
  *n = r->runs.len ? r->runs.data[0].mem.len : 0;
  return 1;
}

uint64_t rt_runs_spilled(const rt_runs *r) { return r->spilled; }
size_t rt_runs_files(const rt_runs *r) { return r->files; }

void rt_runs_free(rt_runs *r) {
  if (!r) return;
  stream_close(r->rd);
  for (size_t i = 0; i < r->runs.len; i++) run_free(&r->runs.data[i]);
  free(r->runs.data);
  free(r->loose.data);
  free(r->carry.data);
  if (r->files) rmdir(r->dir); /* only succeeds once empty (other sets may still hold runs) */
  pthread_mutex_destroy(&r->put_lock);
  free(r->dir);
  free(r->name);
  free(r);
}
