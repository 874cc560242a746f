/* counts.c — counts file: msgpack records in one zstd frame. */
#include "format/counts.h"
#include "table/msgpack_bound.h"
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
#define COUNTS_VERSION 2 /* written; read: 1 and 2 */

/* Version 2 body (docs/formats.md §4): groups `[c1, c2, n]` (dense catalog
 * indices, 1 <= n <= GRP_MAX) each followed by n records of four plain
 * msgpack integers: next - the group's previous next (the first record:
 * next itself), day - day_base (day_base = floor(window_start / 86400)),
 * win, count. A pair's records are split into groups of GRP_MAX.
 *
 * Records are packed by hand (no packer callback, no growing sbuffer per
 * field): the bytes are exactly those msgpack-c's msgpack_pack_array /
 * uint64 / int64 emit (smallest encoding; an int >= 0 is packed as
 * unsigned). A group's records are staged in `grp` until its size is known,
 * so the bytes do not depend on how the records were split over add calls. */
#define PACK_CAP (1u << 20) /* bytes handed to zstd per call */
#define REC_MAX 32          /* 9 (next delta, int64) + 9 (day delta) + 5 (win) + 9 (count) */
#define GRP_HDR_MAX 16      /* 1 + 5 + 5 + 3 (n <= GRP_MAX < 2^16) */
#define GRP_MAX 4096        /* records per group at most */

struct rt_counts_writer {
  char *path;
  rt_atomic_file af; /* PATH.tmp.PID until finished */
  ZSTD_CCtx *cc;
  unsigned char *buf; /* packed bytes not yet given to zstd */
  size_t len, cap;
  unsigned char *grp; /* the open group's packed records, */
  size_t glen;
  uint32_t gn;      /* their number (0: no group open), */
  uint64_t gpair;   /* the group's c1 << 20 | c2 */
  int64_t gprev;    /* and the next of its last record */
  int64_t day_base; /* floor(window_start / 86400) */
  char *zbuf;
  size_t zcap;
  uint64_t declared, added; /* records the header announces, records added */
  rt_count last;            /* the last record added: the next must sort after it */
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

/* As msgpack_pack_int64: >= 0 as put_uint, else negative fixint down to
 * -32, then int8/16/32/64. */
static inline unsigned char *put_int(unsigned char *p, int64_t d) {
  if (d >= 0) return put_uint(p, (uint64_t)d);
  uint64_t u = (uint64_t)d;
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
  if (d >= INT32_MIN) {
    p[0] = 0xd2;
    for (int i = 0; i < 4; i++) p[1 + i] = (unsigned char)(u >> (24 - 8 * i));
    return p + 5;
  }
  p[0] = 0xd3;
  for (int i = 0; i < 8; i++) p[1 + i] = (unsigned char)(u >> (56 - 8 * i));
  return p + 9;
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
    if (out.pos && fwrite(w->zbuf, 1, out.pos, w->af.f) != out.pos)
      return rt_err_set(err, RT_ERR_OUTPUT, "cannot write %s (disk full?)", w->af.tmp);
  } while (end ? left != 0 : in.pos < in.size);
  return RT_OK;
}

int rt_counts_writer_open(const char *path, const rt_counts_meta *m, uint64_t records, rt_counts_writer **out,
                          rt_err *err) {
  rt_counts_writer *w = rt_xcalloc(1, sizeof *w);
  w->path = rt_xstrdup(path);
  int orc = rt_atomic_open(&w->af, path, err);
  if (orc) {
    free(w->path);
    free(w);
    return orc;
  }
  w->cc = ZSTD_createCCtx();
  /* Level 1: on 12 M records it takes 0.36 CPU s against level 3's 0.48 s
   * for a file 4% larger (26.4 vs 25.3 MB); writing it is most of
   * aggregate's gather, and the file is an intermediate. */
  ZSTD_CCtx_setParameter(w->cc, ZSTD_c_compressionLevel, 1);
  ZSTD_CCtx_setParameter(w->cc, ZSTD_c_checksumFlag, 1);
  /* Compress in worker threads while this one keeps packing records (a
   * libzstd built without threads ignores this and compresses inline).
   * Compression is the slow side, so two workers where a core is free; the
   * bytes do not depend on the worker count. */
  ZSTD_CCtx_setParameter(w->cc, ZSTD_c_nbWorkers, 2);
  w->zcap = ZSTD_CStreamOutSize();
  w->zbuf = rt_xmalloc(w->zcap);
  w->grp = rt_xmalloc((size_t)GRP_MAX * REC_MAX);
  w->gpair = UINT64_MAX;
  w->declared = records;
  w->day_base = m->window_start >= 0 ? m->window_start / 86400 : -((-(m->window_start + 1)) / 86400) - 1;
  /* The header goes through msgpack-c (once, any size) into the front of
   * the buffer: a small file is then compressed in one call. */
  msgpack_sbuffer sb;
  msgpack_packer pkr;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pkr, &sb, msgpack_sbuffer_write);
  msgpack_packer *pk = &pkr;
  msgpack_pack_map(pk, 7);
  msgpack_pack_str_with_body(pk, "version", 7);
  msgpack_pack_uint32(pk, COUNTS_VERSION);
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
  int rc = fwrite(MAGIC, 1, 8, w->af.f) == 8 ? RT_OK : rt_err_set(err, RT_ERR_OUTPUT, "cannot write %s", w->af.tmp);
  w->cap = sb.size > PACK_CAP ? sb.size : PACK_CAP;
  w->buf = rt_xmalloc(w->cap);
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

/* Close the open group (if any): its header, then its staged records. */
static int flush_group(rt_counts_writer *w, rt_err *err) {
  if (!w->gn) return RT_OK;
  if (w->len + GRP_HDR_MAX + w->glen > w->cap) {
    int rc = pump(w, w->buf, w->len, 0, err);
    if (rc) return rc;
    w->len = 0;
  }
  unsigned char *p = w->buf + w->len;
  *p++ = 0x93; /* fixarray of 3 */
  p = put_uint(p, w->gpair >> 20);
  p = put_uint(p, w->gpair & 0xFFFFF);
  p = put_uint(p, w->gn);
  memcpy(p, w->grp, w->glen);
  w->len = (size_t)(p + w->glen - w->buf);
  w->gn = 0, w->glen = 0;
  return RT_OK;
}

/* Readers (and the streamed tools) rely on the order and on the count in
 * the header; a caller that breaks either gets an error, not a file. */
static int out_of_order(rt_counts_writer *w, const rt_count *r, rt_err *err) {
  return rt_err_set(err, RT_ERR_INTERNAL,
                    "%s: record %llu (key %llx, day %d, window %u) does not sort after the one before (key %llx, "
                    "day %d, window %u): a counts file holds records sorted by (key, day, window), each once",
                    w->path, (unsigned long long)w->added, (unsigned long long)r->key, r->day, r->win,
                    (unsigned long long)w->last.key, w->last.day, w->last.win);
}

int rt_counts_writer_add(rt_counts_writer *w, const rt_count *rec, size_t n, rt_err *err) {
  unsigned char *p = w->grp + w->glen;
  for (size_t i = 0; i < n; i++) {
    uint64_t k = rec[i].key;
    if (w->added && rt_count_cmp(&rec[i], &w->last) <= 0) {
      w->glen = (size_t)(p - w->grp);
      return out_of_order(w, &rec[i], err);
    }
    w->last = rec[i];
    w->added++;
    if (k >> 20 != w->gpair || w->gn == GRP_MAX) { /* sorted input: (c1, c2) changes rarely */
      w->glen = (size_t)(p - w->grp);
      int rc = flush_group(w, err);
      if (rc) return rc;
      p = w->grp;
      w->gpair = k >> 20;
      w->gprev = 0;
    }
    int64_t next = (int64_t)(k & 0xFFFFF);
    p = put_int(p, next - w->gprev);
    w->gprev = next;
    p = put_int(p, (int64_t)rec[i].day - w->day_base);
    p = put_uint(p, rec[i].win);
    p = put_uint(p, rec[i].n);
    w->gn++;
  }
  w->glen = (size_t)(p - w->grp);
  return RT_OK;
}

void rt_counts_writer_abort(rt_counts_writer *w) {
  if (!w) return;
  rt_atomic_abort(&w->af); /* nothing left once committed */
  ZSTD_freeCCtx(w->cc);
  free(w->buf);
  free(w->grp);
  free(w->zbuf);
  free(w->path);
  free(w);
}

int rt_counts_writer_finish(rt_counts_writer *w, rt_err *err) {
  int rc = w->added == w->declared
               ? RT_OK
               : rt_err_set(err, RT_ERR_INTERNAL, "%s: %llu records written, but the header announces %llu",
                            w->path, (unsigned long long)w->added, (unsigned long long)w->declared);
  if (rc == RT_OK) rc = flush_group(w, err);
  if (rc == RT_OK) rc = pump(w, w->buf, w->len, 1, err);
  if (rc == RT_OK) rc = rt_atomic_commit(&w->af, err); /* fsync, rename, fsync the directory */
  rt_counts_writer_abort(w); /* frees; removes the temp file unless committed */
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
#define RD_SLACK 64        /* a fast-path record is at most 1 + 6 * 9 = 55 bytes (v1), 1 + 3 * 9 + 4 * 9 = 64 (v2) */
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
  uint64_t version;   /* of the body: 1 or 2 */
  uint64_t id0, id1; /* v1: sorted records: c1, c2 repeat */
  int ix0, ix1;
  int64_t day_base;  /* v2: floor(window_start / 86400), 0 without window_start */
  uint64_t g_left;   /* v2: records left in the current group */
  uint64_t g_c1, g_c2;
  int64_t g_prev;    /* v2: the group's previous next */
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

/* msgpack_unpack_next at r->pos, except that an object whose declared
 * lengths exceed the bytes at hand is CONTINUE, never allocated for
 * (table/msgpack_bound.h): a corrupt length cannot ask for gigabytes. */
static int unpack_bounded(rt_counts_reader *r, size_t *off) {
  size_t used;
  int w = rt_mp_bounded(r->buf + r->pos, r->end - r->pos, &used);
  if (w == RT_MP_INCOMPLETE) return MSGPACK_UNPACK_CONTINUE;
  if (w == RT_MP_INVALID) return MSGPACK_UNPACK_PARSE_ERROR;
  return msgpack_unpack_next(&r->u, (const char *)r->buf, r->end, off);
}

/* Parse the header map at the front of the body into r. */
static int read_header(rt_counts_reader *r) {
  size_t off;
  int ret;
  for (;;) {
    off = r->pos;
    ret = unpack_bounded(r, &off);
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
  uint64_t version = 0;
  int has_version = 0;
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
    } else if (kl == 7 && !memcmp(k, "version", 7)) {
      has_version = 1;
      version = kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER ? kv->val.via.u64 : 0;
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
  if (!has_version || (version != 1 && version != 2)) {
    if (!has_version) return rt_err_set(&r->fail, RT_ERR_INPUT, "%s: header has no counts file version", r->path);
    return rt_err_set(&r->fail, RT_ERR_INPUT,
                      "%s: counts file version %llu is not supported (this ragtide reads versions 1 and 2); "
                      "upgrade ragtide",
                      r->path, (unsigned long long)version);
  }
  r->version = version;
  int64_t ws = r->has_ws ? r->ws : 0;
  r->day_base = ws >= 0 ? ws / 86400 : -((-(ws + 1)) / 86400) - 1;
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
    ret = unpack_bounded(r, &off);
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
  if (r->pos == r->end && r->g_left) {
    rt_err_set(&r->fail, RT_ERR_INPUT,
               "%s: header claims %llu records, but the body's last group promises %llu more (the body ends at "
               "byte %llu)",
               r->path, (unsigned long long)r->records, (unsigned long long)r->g_left,
               (unsigned long long)(r->base + r->pos));
    return -1;
  }
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

static long next_v1(rt_counts_reader *r, rt_count *buf, size_t max) {
  size_t k = 0;
  const uint32_t *ids = r->ids;
  uint32_t n = r->n;
  uint64_t id0 = r->id0, id1 = r->id1, i = r->i;
  int ix0 = r->ix0, ix1 = r->ix1;
  while (k < max) {
    if (r->end - r->pos < RD_SLACK && !r->body_end && refill(r)) return -1;
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
        if (slow_record(r, v)) return -1;
        b = r->buf, end = r->end, p = r->pos, all = r->body_end; /* a refill may have moved the window */
      }
      if (v[0] != id0) ix0 = find_index(ids, n, id0 = v[0]);
      if (v[1] != id1) ix1 = find_index(ids, n, id1 = v[1]);
      int c3 = find_index(ids, n, v[2]);
      if (ix0 < 0 || ix1 < 0 || c3 < 0) {
        rt_err_set(&r->fail, RT_ERR_INPUT, "%s: record %llu names a cluster not in the file's catalog", r->path,
                   (unsigned long long)i);
        return -1;
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
}

/* ---- version 2 body ------------------------------------------------------ */

/* One msgpack value at r->pos through msgpack-c, into r->u, r->pos past it
 * (refilling the window when it cuts the value short). `at` is the body
 * offset of the record (with its group header) being read. */
static int slow_value(rt_counts_reader *r, uint64_t at) {
  int ret;
  size_t off;
  for (;;) {
    off = r->pos;
    ret = unpack_bounded(r, &off);
    if (ret != MSGPACK_UNPACK_CONTINUE || r->body_end || (r->pos == 0 && r->end == r->cap)) break;
    if (refill(r)) return r->fail.code;
  }
  if (ret == MSGPACK_UNPACK_CONTINUE && r->pos == r->end && r->body_end && r->base + r->pos == at)
    return rt_err_set(&r->fail, RT_ERR_INPUT,
                      "%s: header claims %llu records, more than the file holds (the body ends after record %llu, "
                      "at byte %llu)",
                      r->path, (unsigned long long)r->records, (unsigned long long)r->i, (unsigned long long)at);
  if (ret != MSGPACK_UNPACK_SUCCESS)
    return rt_err_set(&r->fail, RT_ERR_INPUT, "%s: record %llu at byte %llu of the decompressed body is malformed%s",
                      r->path, (unsigned long long)r->i, (unsigned long long)at,
                      ret == MSGPACK_UNPACK_CONTINUE && r->body_end ? " (the body ends inside it)" : "");
  r->pos = off;
  return RT_OK;
}

static int non_integer(rt_counts_reader *r, uint64_t at) {
  return rt_err_set(&r->fail, RT_ERR_INPUT,
                    "%s: record %llu at byte %llu of the decompressed body has a non-integer field", r->path,
                    (unsigned long long)r->i, (unsigned long long)at);
}

/* The record at r->pos (with its group header when hdr) that the fast path
 * refused, through msgpack-c: the header's three fields into g, the
 * record's four into v (neg[f]: v[f] holds a negative int64), r->pos past
 * it; or an error in r->fail. */
static int slow_record_v2(rt_counts_reader *r, uint64_t at, int hdr, uint64_t g[3], uint64_t v[4], int neg[4]) {
  if (hdr) {
    if (slow_value(r, at)) return r->fail.code;
    msgpack_object *o = &r->u.data;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3)
      return rt_err_set(&r->fail, RT_ERR_INPUT,
                        "%s: record %llu at byte %llu of the decompressed body is malformed (no [c1, c2, n] group "
                        "header)",
                        r->path, (unsigned long long)r->i, (unsigned long long)at);
    for (int f = 0; f < 3; f++) {
      if (o->via.array.ptr[f].type != MSGPACK_OBJECT_POSITIVE_INTEGER) return non_integer(r, at);
      g[f] = o->via.array.ptr[f].via.u64;
    }
  }
  for (int f = 0; f < 4; f++) {
    if (slow_value(r, at)) return r->fail.code;
    msgpack_object *o = &r->u.data;
    neg[f] = o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER && !(f < 2 && neg[f])) return non_integer(r, at);
    v[f] = o->via.u64; /* a negative value: its i64 bits, as via.i64 */
  }
  return RT_OK;
}

static long next_v2(rt_counts_reader *r, rt_count *buf, size_t max) {
  size_t k = 0;
  uint64_t i = r->i, left = r->g_left, c1 = r->g_c1, c2 = r->g_c2, n = r->n;
  int64_t prev = r->g_prev, day_base = r->day_base;
  while (k < max) {
    if (r->end - r->pos < RD_SLACK && !r->body_end && refill(r)) return -1;
    const unsigned char *b = r->buf;
    size_t end = r->end, p = r->pos;
    int all = r->body_end; /* (as in next_v1) */
    for (; k < max && (all || end - p >= RD_SLACK); k++, i++) {
      /* Fast path for what the writer emits: a group header (fixarray of 3)
       * when the group is used up, then four integers; anything else (or
       * anything wrong) is decoded again by msgpack-c, with its errors. */
      uint64_t g[3] = {c1, c2, left}, v[4];
      int neg[4] = {0, 0, 0, 0}, hdr = left == 0, ng = 0, ok = 1;
      size_t q = p;
      if (hdr) {
        ok = q < end && b[q] == 0x93;
        q++;
        for (int f = 0; ok && f < 3; f++) ok = get_int(b, end, &q, &g[f], &ng) && !ng;
      }
      for (int f = 0; ok && f < 4; f++) ok = get_int(b, end, &q, &v[f], &neg[f]) && (!neg[f] || f < 2);
      uint64_t at = r->base + p;
      if (ok) {
        p = q;
      } else {
        r->pos = p, r->i = i;
        if (slow_record_v2(r, at, hdr, g, v, neg)) return -1;
        b = r->buf, end = r->end, p = r->pos, all = r->body_end; /* a refill may have moved the window */
      }
      if (hdr) {
        c1 = g[0], c2 = g[1], left = g[2], prev = 0;
        if (left == 0) {
          rt_err_set(&r->fail, RT_ERR_INPUT,
                     "%s: record %llu at byte %llu of the decompressed body is malformed (a group of 0 records)",
                     r->path, (unsigned long long)i, (unsigned long long)at);
          return -1;
        }
      }
      /* next = prev + v[0], day = day_base + v[3], both checked */
      int64_t next, day;
      int bad_next = (neg[0] ? 0 : v[0] > (uint64_t)INT64_MAX) ||
                     __builtin_add_overflow(prev, (int64_t)v[0], &next) || next < 0 || (uint64_t)next >= n;
      if (c1 >= n || c2 >= n || bad_next) {
        rt_err_set(&r->fail, RT_ERR_INPUT,
                   "%s: record %llu at byte %llu of the decompressed body names a cluster not in the file's catalog",
                   r->path, (unsigned long long)i, (unsigned long long)at);
        return -1;
      }
      if ((neg[1] ? 0 : v[1] > (uint64_t)INT64_MAX) || __builtin_add_overflow(day_base, (int64_t)v[1], &day) ||
          day < INT32_MIN || day > INT32_MAX || v[2] > UINT32_MAX) {
        rt_err_set(&r->fail, RT_ERR_INPUT,
                   "%s: record %llu at byte %llu of the decompressed body has a day or window out of range", r->path,
                   (unsigned long long)i, (unsigned long long)at);
        return -1;
      }
      buf[k].key = c1 << 40 | c2 << 20 | (uint64_t)next;
      buf[k].day = (int32_t)day;
      buf[k].win = (uint32_t)v[2];
      buf[k].n = v[3];
      prev = next;
      left--;
    }
    r->pos = p;
  }
  r->i = i, r->g_left = left, r->g_c1 = c1, r->g_c2 = c2, r->g_prev = prev;
  return (long)k;
}

long rt_counts_reader_next(rt_counts_reader *r, rt_count *buf, size_t max, rt_err *err) {
  if (r->state > 0) return 0;
  if (r->state == 0) {
    if (r->i == r->records) {
      if (finish(r) == 0) return 0;
    } else {
      uint64_t todo = r->records - r->i;
      if (todo < max) max = (size_t)todo;
      long got = r->version == 2 ? next_v2(r, buf, max) : next_v1(r, buf, max);
      if (got >= 0) return got;
    }
  }
  r->state = -1;
  if (err) *err = r->fail;
  return -1;
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
