/* counts.c — counts file: msgpack records in one zstd frame. */
#include "format/counts.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define MAGIC "RTCOUNT1"

/* Records are packed by hand into a flat buffer (no packer callback, no
 * growing sbuffer per field): the bytes are exactly those msgpack-c's
 * msgpack_pack_array/uint32/int32/uint64 emit (smallest encoding; an int32
 * >= 0 is packed as unsigned), so files stay byte-identical. */
#define PACK_CAP (1u << 20) /* bytes handed to zstd per call */
#define REC_MAX 48          /* 1 + 3*5 + 5 + 5 + 9 = 35, plus slack for 8- and 16-byte copies */

typedef struct {
  unsigned char b[7], n; /* msgpack bytes of one catalog id, and their count */
} id_enc;

struct rt_counts_writer {
  char *path, tmp[4096];
  FILE *f;
  ZSTD_CCtx *cc;
  unsigned char *buf; /* packed bytes not yet given to zstd */
  size_t len, cap;
  id_enc *ids;        /* per dense index: ids repeat, so encode each once */
  uint64_t pair;      /* (c1, c2) of the last record, and its packed prefix */
  unsigned char pfx[16];
  size_t pfx_len;
  char *zbuf;
  size_t zcap;
};

static inline unsigned char *put_uint(unsigned char *p, uint64_t d) {
  if (d < 0x80) {
    p[0] = (unsigned char)d;
    return p + 1;
  }
  if (d < 0x100) {
    p[0] = 0xcc, p[1] = (unsigned char)d;
    return p + 2;
  }
  if (d < 0x10000) {
    p[0] = 0xcd, p[1] = (unsigned char)(d >> 8), p[2] = (unsigned char)d;
    return p + 3;
  }
  if (d < 0x100000000ull) {
    p[0] = 0xce;
    for (int i = 0; i < 4; i++) p[1 + i] = (unsigned char)(d >> (24 - 8 * i));
    return p + 5;
  }
  p[0] = 0xcf;
  for (int i = 0; i < 8; i++) p[1 + i] = (unsigned char)(d >> (56 - 8 * i));
  return p + 9;
}

/* As msgpack_pack_int32: negative fixint down to -32, then int8/16/32. */
static inline unsigned char *put_int32(unsigned char *p, int32_t d) {
  if (d >= 0) return put_uint(p, (uint64_t)d);
  uint32_t u = (uint32_t)d;
  if (d >= -32) {
    p[0] = (unsigned char)u;
    return p + 1;
  }
  if (d >= -128) {
    p[0] = 0xd0, p[1] = (unsigned char)u;
    return p + 2;
  }
  if (d >= -32768) {
    p[0] = 0xd1, p[1] = (unsigned char)(u >> 8), p[2] = (unsigned char)u;
    return p + 3;
  }
  p[0] = 0xd2;
  for (int i = 0; i < 4; i++) p[1 + i] = (unsigned char)(u >> (24 - 8 * i));
  return p + 5;
}

/* Compress size bytes at data (and end the frame when `end`). */
static int pump(rt_counts_writer *w, const void *data, size_t size, int end, rt_err *err) {
  ZSTD_inBuffer in = {data, size, 0};
  ZSTD_EndDirective mode = end ? ZSTD_e_end : ZSTD_e_continue;
  size_t left;
  do {
    ZSTD_outBuffer out = {w->zbuf, w->zcap, 0};
    left = ZSTD_compressStream2(w->cc, &out, &in, mode);
    if (ZSTD_isError(left))
      return rt_err_set(err, RT_ERR_INTERNAL, "compressing %s: %s", w->path, ZSTD_getErrorName(left));
    if (out.pos && fwrite(w->zbuf, 1, out.pos, w->f) != out.pos)
      return rt_err_set(err, RT_ERR_OUTPUT, "cannot write %s (disk full?)", w->tmp);
  } while (end ? left != 0 : in.pos < in.size);
  return RT_OK;
}

int rt_counts_writer_open(const char *path, const rt_counts_meta *m, uint64_t records, rt_counts_writer **out,
                          rt_err *err) {
  rt_counts_writer *w = rt_xcalloc(1, sizeof *w);
  w->path = rt_xstrdup(path);
  snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%ld", path, (long)getpid());
  w->f = fopen(w->tmp, "wb");
  if (!w->f) {
    int rc = rt_err_set(err, RT_ERR_OUTPUT, "cannot create %s: %s (check that the directory exists)", w->tmp,
                        strerror(errno));
    free(w->path);
    free(w);
    return rc;
  }
  w->cc = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(w->cc, ZSTD_c_compressionLevel, 3);
  ZSTD_CCtx_setParameter(w->cc, ZSTD_c_checksumFlag, 1);
  /* Compress in worker threads while this one keeps packing records (a
   * libzstd built without threads ignores this and compresses inline).
   * Compression is the slow side (packing is ~5x cheaper), so two workers
   * where a core is free; the bytes do not depend on the worker count. */
  ZSTD_CCtx_setParameter(w->cc, ZSTD_c_nbWorkers, 2);
  w->zcap = ZSTD_CStreamOutSize();
  w->zbuf = rt_xmalloc(w->zcap);
  w->ids = rt_xmalloc((m->n_clusters ? m->n_clusters : 1) * sizeof *w->ids);
  for (uint32_t i = 0; i < m->n_clusters; i++) {
    unsigned char t[16];
    w->ids[i].n = (unsigned char)(put_uint(t, m->ids[i]) - t);
    memcpy(w->ids[i].b, t, 7);
  }
  w->pair = UINT64_MAX;
  /* The header goes through msgpack-c (once, any size) into the front of
   * the buffer: a small file is then compressed in one call, as before. */
  msgpack_sbuffer sb;
  msgpack_packer pkr;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pkr, &sb, msgpack_sbuffer_write);
  msgpack_packer *pk = &pkr;
  msgpack_pack_map(pk, 7);
  msgpack_pack_str_with_body(pk, "version", 7);
  msgpack_pack_uint32(pk, 1);
  msgpack_pack_str_with_body(pk, "clusters", 8);
  msgpack_pack_array(pk, m->n_clusters);
  for (uint32_t i = 0; i < m->n_clusters; i++) msgpack_pack_uint32(pk, m->ids[i]);
  msgpack_pack_str_with_body(pk, "catalog_hash", 12);
  msgpack_pack_uint64(pk, m->catalog_hash);
  msgpack_pack_str_with_body(pk, "window_start", 12);
  msgpack_pack_int64(pk, m->window_start);
  msgpack_pack_str_with_body(pk, "window_end", 10);
  msgpack_pack_int64(pk, m->window_end);
  msgpack_pack_str_with_body(pk, "run_id", 6);
  msgpack_pack_str_with_body(pk, m->run_id, strlen(m->run_id));
  msgpack_pack_str_with_body(pk, "records", 7);
  msgpack_pack_uint64(pk, records);
  int rc = fwrite(MAGIC, 1, 8, w->f) == 8 ? RT_OK : rt_err_set(err, RT_ERR_OUTPUT, "cannot write %s", w->tmp);
  w->cap = sb.size > PACK_CAP ? sb.size : PACK_CAP;
  w->buf = rt_xmalloc(w->cap + REC_MAX);
  memcpy(w->buf, sb.data, sb.size);
  w->len = sb.size;
  msgpack_sbuffer_destroy(&sb);
  if (rc) {
    rt_counts_writer_abort(w);
    return rc;
  }
  *out = w;
  return RT_OK;
}

int rt_counts_writer_add(rt_counts_writer *w, const rt_count *rec, size_t n, rt_err *err) {
  size_t i = 0;
  while (i < n) {
    if (w->len + REC_MAX > w->cap) {
      int rc = pump(w, w->buf, w->len, 0, err);
      if (rc) return rc;
      w->len = 0;
    }
    /* As many records as surely fit, with no bound check inside. */
    size_t room = (w->cap - w->len) / REC_MAX, stop = n - i < room ? n : i + room;
    unsigned char *p = w->buf + w->len;
    for (; i < stop; i++) {
      uint64_t k = rec[i].key;
      if (k >> 20 != w->pair) { /* sorted input: (c1, c2) changes rarely */
        const id_enc *a = &w->ids[k >> 40], *b = &w->ids[(k >> 20) & 0xFFFFF];
        w->pfx[0] = 0x96; /* fixarray of 6 */
        memcpy(w->pfx + 1, a->b, 7);
        memcpy(w->pfx + 1 + a->n, b->b, 7);
        w->pfx_len = 1u + a->n + b->n;
        w->pair = k >> 20;
      }
      memcpy(p, w->pfx, 16);
      p += w->pfx_len;
      const id_enc *c = &w->ids[k & 0xFFFFF];
      memcpy(p, c->b, 7);
      p += c->n;
      p = put_int32(p, rec[i].day);
      p = put_uint(p, rec[i].win);
      p = put_uint(p, rec[i].n);
    }
    w->len = (size_t)(p - w->buf);
  }
  return RT_OK;
}

void rt_counts_writer_abort(rt_counts_writer *w) {
  if (!w) return;
  if (w->f) fclose(w->f);
  unlink(w->tmp);
  ZSTD_freeCCtx(w->cc);
  free(w->buf);
  free(w->ids);
  free(w->zbuf);
  free(w->path);
  free(w);
}

int rt_counts_writer_finish(rt_counts_writer *w, rt_err *err) {
  int rc = pump(w, w->buf, w->len, 1, err);
  if (rc == RT_OK && (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0))
    rc = rt_err_set(err, RT_ERR_OUTPUT, "cannot flush %s: %s", w->tmp, strerror(errno));
  if (rc == RT_OK) {
    fclose(w->f);
    w->f = NULL;
    if (rename(w->tmp, w->path) != 0)
      rc = rt_err_set(err, RT_ERR_OUTPUT, "cannot rename %s to %s: %s", w->tmp, w->path, strerror(errno));
    else rc = rt_fsync_dir_of(w->path, err);
  }
  rt_counts_writer_abort(w); /* frees; the temp file is gone after a rename */
  return rc;
}

int rt_counts_write(const char *path, const rt_counts_meta *meta, const rt_count *rec, size_t n, rt_err *err) {
  rt_counts_writer *w;
  int rc = rt_counts_writer_open(path, meta, n, &w, err);
  if (rc) return rc;
  rc = rt_counts_writer_add(w, rec, n, err);
  if (rc) {
    rt_counts_writer_abort(w);
    return rc;
  }
  return rt_counts_writer_finish(w, err);
}

static int find_index(const uint32_t *ids, uint32_t n, uint64_t id) {
  uint32_t lo = 0, hi = n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (ids[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return lo < n && ids[lo] == id ? (int)lo : -1;
}

/* One msgpack integer at b[*p] (any width), as msgpack-c sees it: `neg` only
 * for a value below zero, *v its two's-complement bits then. 0: not an
 * integer, or cut short. */
static inline int get_int(const unsigned char *b, size_t end, size_t *p, uint64_t *v, int *neg) {
  if (*p >= end) return 0;
  unsigned c = b[(*p)++];
  if (c < 0x80 || c >= 0xe0) {
    *v = c < 0x80 ? c : (uint64_t)(int64_t)(int8_t)c;
    *neg = c >= 0xe0;
    return 1;
  }
  if (c < 0xcc || c > 0xd3) return 0;
  size_t len = (size_t)1 << ((c - 0xcc) & 3);
  if (end - *p < len) return 0;
  uint64_t x = 0;
  for (size_t k = 0; k < len; k++) x = x << 8 | b[*p + k];
  *p += len;
  *neg = 0;
  if (c >= 0xd0 && len < 8 && (x >> (8 * len - 1))) x |= ~0ull << (8 * len); /* sign-extend */
  if (c >= 0xd0 && (int64_t)x < 0) *neg = 1;
  *v = x;
  return 1;
}


/* ---- streaming reader ----------------------------------------------------
 * The file is read in ZSTD_DStreamInSize() chunks and decompressed into a
 * window `buf` of RD_CAP bytes; [pos, end) is what is not consumed yet, and
 * `base` the body offset of buf[0]. When fewer than RD_SLACK bytes are left
 * (unless the body has ended) the tail is moved to the front and the window
 * refilled, so a record never straddles the window for the fast path; the
 * msgpack-c fallback asks for a refill when it reports a record cut short.
 * The header map alone may grow the window (it holds the cluster ids). */
#define RD_CAP (1u << 20)
#define RD_SLACK 64        /* a fast-path record is at most 1 + 6 * 9 = 55 bytes */
#define HDR_MAX (64u << 20) /* 2^20 clusters take 5 MiB of msgpack */

struct rt_counts_reader {
  char *path;
  int fd;
  ZSTD_DCtx *dc;
  void *zin; /* compressed input */
  size_t zin_cap;
  ZSTD_inBuffer in;
  int eof;        /* the file is read to its end */
  size_t zr;      /* last ZSTD_decompressStream result: 0 at the end of a frame */
  int frame_done; /* at least one frame ended */
  int body_end;   /* every frame ended and the file is read: no more bytes */
  unsigned char *buf;
  size_t cap, pos, end;
  uint64_t base; /* body offset of buf[0] */
  uint32_t *ids, n;
  uint64_t records, i; /* as the header says; handed out so far */
  int64_t ws, we;
  int has_ws, has_we;
  uint64_t id0, id1; /* sorted records: c1, c2 repeat */
  int ix0, ix1;
  msgpack_unpacked u;
  int state;   /* 0: reading; 1: clean end; -1: failed (fail holds why) */
  rt_err fail;
};

static int zstd_fail(rt_counts_reader *r, const char *why) {
  return rt_err_set(&r->fail, RT_ERR_INPUT, "%s: corrupt or truncated zstd frame (%s); rerun `ragtide aggregate`",
                    r->path, why);
}

/* Decompress more bytes into buf[end, cap) (cap > end). 1: some came; 0: the
 * body ended cleanly (body_end); -1: error in r->fail. */
static int fill(rt_counts_reader *r) {
  for (;;) {
    if (r->in.pos == r->in.size && !r->eof) {
      ssize_t k;
      do k = read(r->fd, r->zin, r->zin_cap);
      while (k < 0 && errno == EINTR);
      if (k < 0) {
        rt_err_set(&r->fail, RT_ERR_INPUT, "cannot read %s: I/O error", r->path);
        return -1;
      }
      if (k == 0) r->eof = 1;
      r->in.src = r->zin, r->in.size = (size_t)k, r->in.pos = 0;
    }
    int dry = r->in.pos == r->in.size; /* (then eof) */
    if (dry && r->zr == 0 && r->frame_done) {
      r->body_end = 1;
      return 0;
    }
    ZSTD_outBuffer out = {r->buf + r->end, r->cap - r->end, 0};
    size_t zr = ZSTD_decompressStream(r->dc, &out, &r->in);
    if (ZSTD_isError(zr)) {
      zstd_fail(r, ZSTD_getErrorName(zr));
      return -1;
    }
    r->zr = zr;
    if (zr == 0) r->frame_done = 1;
    r->end += out.pos;
    if (out.pos) return 1;
    if (dry) { /* nothing more to feed, nothing flushed, frame not over */
      zstd_fail(r, "ends inside a frame");
      return -1;
    }
  }
}

/* Move the unconsumed tail to the front (giving back a window the header
 * grew, once it is not needed) and fill up to cap. 0, or -1 (r->fail). */
static int refill(rt_counts_reader *r) {
  size_t left = r->end - r->pos;
  memmove(r->buf, r->buf + r->pos, left);
  r->base += r->pos;
  r->pos = 0;
  r->end = left;
  if (r->cap > RD_CAP && left <= RD_CAP / 2) r->buf = rt_xrealloc(r->buf, r->cap = RD_CAP);
  while (r->end < r->cap && !r->body_end)
    if (fill(r) < 0) return -1;
  return 0;
}

static int read_full(int fd, void *p, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t k = read(fd, (char *)p + got, n - got);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return -1;
    if (k == 0) break;
    got += (size_t)k;
  }
  return (int)got;
}

/* Parse the header map at the front of the body into r. */
static int read_header(rt_counts_reader *r) {
  size_t off;
  int ret;
  for (;;) {
    off = r->pos;
    ret = msgpack_unpack_next(&r->u, (const char *)r->buf, r->end, &off);
    if (ret != MSGPACK_UNPACK_CONTINUE || r->body_end) break;
    if (r->pos == 0 && r->end == r->cap) { /* the header fills the window: grow it */
      if (r->cap >= HDR_MAX)
        return rt_err_set(&r->fail, RT_ERR_INPUT, "%s: header is larger than %u MiB", r->path, HDR_MAX >> 20);
      r->buf = rt_xrealloc(r->buf, r->cap *= 2);
    }
    if (refill(r)) return r->fail.code;
  }
  if (ret != MSGPACK_UNPACK_SUCCESS || r->u.data.type != MSGPACK_OBJECT_MAP)
    return rt_err_set(&r->fail, RT_ERR_INPUT, "%s: header is not a msgpack map", r->path);
  /* (strings in r->u point into buf: nothing moves it before they are used) */
  for (uint32_t i = 0; i < r->u.data.via.map.size; i++) {
    msgpack_object_kv *kv = &r->u.data.via.map.ptr[i];
    if (kv->key.type != MSGPACK_OBJECT_STR) continue;
    const char *k = kv->key.via.str.ptr;
    uint32_t kl = kv->key.via.str.size;
    if (kl == 8 && !memcmp(k, "clusters", 8) && kv->val.type == MSGPACK_OBJECT_ARRAY) {
      free(r->ids);
      r->n = kv->val.via.array.size;
      r->ids = rt_xmalloc((r->n ? r->n : 1) * sizeof *r->ids);
      for (uint32_t j = 0; j < r->n; j++) r->ids[j] = (uint32_t)kv->val.via.array.ptr[j].via.u64;
    } else if (kl == 7 && !memcmp(k, "records", 7) && kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
      r->records = kv->val.via.u64;
    } else if (kl == 12 && !memcmp(k, "window_start", 12)) {
      r->ws = kv->val.via.i64, r->has_ws = 1;
    } else if (kl == 10 && !memcmp(k, "window_end", 10)) {
      r->we = kv->val.via.i64, r->has_we = 1;
    }
  }
  r->pos = off;
  /* The parsed header (one msgpack_object per cluster id) is not needed any more. */
  msgpack_unpacked_destroy(&r->u);
  msgpack_unpacked_init(&r->u);
  if (!r->ids) return rt_err_set(&r->fail, RT_ERR_INPUT, "%s: header has no cluster list", r->path);
  return RT_OK;
}

int rt_counts_reader_open(const char *path, rt_counts_reader **out, rt_err *err) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return rt_err_set(err, RT_ERR_INPUT, "cannot open %s: %s", path, strerror(errno));
  char magic[8];
  int got = read_full(fd, magic, 8);
  if (got < 0) {
    close(fd);
    return rt_err_set(err, RT_ERR_INPUT, "cannot read %s: I/O error", path);
  }
  if (got < 8 || memcmp(magic, MAGIC, 8) != 0) {
    close(fd);
    return rt_err_set(err, RT_ERR_INPUT, "%s: not a ragtide counts file (bad magic)", path);
  }
  rt_counts_reader *r = rt_xcalloc(1, sizeof *r);
  r->path = rt_xstrdup(path);
  r->fd = fd;
  r->dc = ZSTD_createDCtx();
  r->zin_cap = ZSTD_DStreamInSize();
  r->zin = rt_xmalloc(r->zin_cap);
  r->zr = 1; /* no frame seen yet */
  r->cap = RD_CAP;
  r->buf = rt_xmalloc(r->cap);
  r->id0 = r->id1 = UINT64_MAX;
  r->ix0 = r->ix1 = -1;
  msgpack_unpacked_init(&r->u);
  if (!r->dc) {
    rt_err_set(&r->fail, RT_ERR_NOMEM, "%s: cannot create a zstd decompression context", path);
  } else if (refill(r) == 0) {
    read_header(r);
  }
  int rc = r->fail.code;
  if (rc) {
    if (err) *err = r->fail;
    rt_counts_reader_close(r);
    return rc;
  }
  *out = r;
  return RT_OK;
}

const uint32_t *rt_counts_reader_ids(const rt_counts_reader *r, uint32_t *n_clusters) {
  if (n_clusters) *n_clusters = r->n;
  return r->ids;
}

void rt_counts_reader_window(const rt_counts_reader *r, int64_t *window_start, int64_t *window_end) {
  if (window_start) *window_start = r->ws;
  if (window_end) *window_end = r->we;
}

uint64_t rt_counts_reader_records(const rt_counts_reader *r) { return r->records; }

void rt_counts_reader_close(rt_counts_reader *r) {
  if (!r) return;
  close(r->fd);
  ZSTD_freeDCtx(r->dc);
  msgpack_unpacked_destroy(&r->u);
  free(r->zin);
  free(r->buf);
  free(r->ids);
  free(r->path);
  free(r);
}

/* The record at r->pos that the fast path refused, through msgpack-c: its six
 * fields into v and r->pos past it, or an error in r->fail. */
static int slow_record(rt_counts_reader *r, uint64_t v[6]) {
  int ret;
  size_t off;
  for (;;) {
    off = r->pos;
    ret = msgpack_unpack_next(&r->u, (const char *)r->buf, r->end, &off);
    if (ret != MSGPACK_UNPACK_CONTINUE || r->body_end || (r->pos == 0 && r->end == r->cap)) break;
    if (refill(r)) return r->fail.code; /* cut short by the window: move it, read on */
  }
  uint64_t at = r->base + r->pos;
  if (ret == MSGPACK_UNPACK_CONTINUE && r->pos == r->end && r->body_end)
    return rt_err_set(&r->fail, RT_ERR_INPUT,
                      "%s: header claims %llu records, more than the file holds (the body ends after record %llu, "
                      "at byte %llu)",
                      r->path, (unsigned long long)r->records, (unsigned long long)r->i, (unsigned long long)at);
  if (ret != MSGPACK_UNPACK_SUCCESS || r->u.data.type != MSGPACK_OBJECT_ARRAY || r->u.data.via.array.size != 6)
    return rt_err_set(&r->fail, RT_ERR_INPUT, "%s: record %llu at byte %llu of the decompressed body is malformed",
                      r->path, (unsigned long long)r->i, (unsigned long long)at);
  msgpack_object *a = r->u.data.via.array.ptr;
  for (int f = 0; f < 6; f++)
    if (a[f].type != MSGPACK_OBJECT_POSITIVE_INTEGER && !(f == 3 && a[f].type == MSGPACK_OBJECT_NEGATIVE_INTEGER))
      return rt_err_set(&r->fail, RT_ERR_INPUT,
                        "%s: record %llu at byte %llu of the decompressed body has a non-integer field", r->path,
                        (unsigned long long)r->i, (unsigned long long)at);
  for (int f = 0; f < 6; f++) v[f] = a[f].via.u64; /* a negative day: its i64 bits, as via.i64 */
  r->pos = off;
  return RT_OK;
}

/* All records read: the body must end here, and the frame end cleanly. */
static long finish(rt_counts_reader *r) {
  if (r->pos == r->end && !r->body_end && refill(r)) return -1;
  if (r->pos < r->end) {
    rt_err_set(&r->fail, RT_ERR_INPUT,
               "%s: header claims %llu records, but the body holds more (byte %llu of the decompressed body "
               "follows record %llu)",
               r->path, (unsigned long long)r->records, (unsigned long long)(r->base + r->pos),
               (unsigned long long)(r->records ? r->records - 1 : 0));
    return -1;
  }
  r->state = 1;
  return 0;
}

long rt_counts_reader_next(rt_counts_reader *r, rt_count *buf, size_t max, rt_err *err) {
  if (r->state > 0) return 0;
  long rc = 0;
  size_t k = 0;
  if (r->state < 0) goto failed;
  if (r->i == r->records) {
    if (finish(r) < 0) goto failed;
    return 0;
  }
  const uint32_t *ids = r->ids;
  uint32_t n = r->n;
  uint64_t id0 = r->id0, id1 = r->id1, i = r->i, todo = r->records - r->i;
  int ix0 = r->ix0, ix1 = r->ix1;
  if (todo < max) max = (size_t)todo;
  while (k < max) {
    if (r->end - r->pos < RD_SLACK && !r->body_end && refill(r)) goto failed;
    const unsigned char *b = r->buf;
    size_t end = r->end, p = r->pos;
    /* A record starting RD_SLACK bytes before the end of the window is whole
     * in it; once the body has ended, every byte is there (a record cut short
     * fails the bound checks and goes to msgpack-c, which says so). */
    int all = r->body_end;
    for (; k < max && (all || end - p >= RD_SLACK); k++, i++) {
      /* Fast path for what the writer emits; anything else (or anything
       * wrong) is decoded again by msgpack-c, with its errors. */
      uint64_t v[6];
      size_t q = p;
      int ok = q < end && b[q] == 0x96, neg = 0;
      q++;
      for (int f = 0; ok && f < 6; f++) ok = get_int(b, end, &q, &v[f], &neg) && (!neg || f == 3);
      if (ok) {
        p = q;
      } else {
        r->pos = p, r->i = i;
        if (slow_record(r, v)) goto failed;
        b = r->buf, end = r->end, p = r->pos, all = r->body_end; /* a refill may have moved the window */
      }
      if (v[0] != id0) ix0 = find_index(ids, n, id0 = v[0]);
      if (v[1] != id1) ix1 = find_index(ids, n, id1 = v[1]);
      int c3 = find_index(ids, n, v[2]);
      if (ix0 < 0 || ix1 < 0 || c3 < 0) {
        rt_err_set(&r->fail, RT_ERR_INPUT, "%s: record %llu names a cluster not in the file's catalog", r->path,
                   (unsigned long long)i);
        goto failed;
      }
      buf[k].key = ((uint64_t)ix0 << 40) | ((uint64_t)ix1 << 20) | (uint64_t)c3;
      buf[k].day = (int32_t)(int64_t)v[3];
      buf[k].win = (uint32_t)v[4];
      buf[k].n = v[5];
    }
    r->pos = p;
  }
  r->i = i, r->id0 = id0, r->id1 = id1, r->ix0 = ix0, r->ix1 = ix1;
  return (long)k;
failed:
  r->state = -1;
  rc = -1;
  if (err) *err = r->fail;
  return rc;
}

int rt_counts_read(const char *path, uint32_t **ids_out, uint32_t *ncl, rt_count **rec_out, size_t *nrec,
                   int64_t *ws, int64_t *we, rt_err *err) {
  rt_counts_reader *r;
  int rc = rt_counts_reader_open(path, &r, err);
  if (rc) return rc;
  /* The header's count is not trusted for the allocation: grow towards it. */
  uint64_t want = r->records;
  size_t cap = want < (1u << 16) ? (size_t)want + 1 : (size_t)1 << 16, n = 0; /* +1: never 0 */
  rt_count *rec = rt_xmalloc(cap * sizeof *rec);
  long got;
  while ((got = rt_counts_reader_next(r, rec + n, cap - n, err)) > 0) {
    n += (size_t)got;
    if (n == cap && n < want) {
      cap = want - n < cap ? (size_t)want : cap * 2;
      rec = rt_xrealloc(rec, cap * sizeof *rec);
    }
  }
  if (got < 0) {
    rc = r->fail.code;
    free(rec);
    rt_counts_reader_close(r);
    return rc;
  }
  if (ws && r->has_ws) *ws = r->ws;
  if (we && r->has_we) *we = r->we;
  *ids_out = r->ids;
  r->ids = NULL;
  *ncl = r->n;
  *rec_out = rec;
  *nrec = n;
  rt_counts_reader_close(r);
  return RT_OK;
}
