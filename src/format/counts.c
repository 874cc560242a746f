/* counts.c — counts file: msgpack records in one zstd frame. */
#include "format/counts.h"
#include "base/util.h"

#include <errno.h>
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

int rt_counts_read(const char *path, uint32_t **ids_out, uint32_t *ncl, rt_count **rec_out, size_t *nrec,
                   int64_t *ws, int64_t *we, rt_err *err) {
  char *file;
  size_t len;
  int rc = rt_read_file(path, &file, &len, err);
  if (rc) return rc;
  if (len < 8 || memcmp(file, MAGIC, 8) != 0) {
    free(file);
    return rt_err_set(err, RT_ERR_INPUT, "%s: not a ragtide counts file (bad magic)", path);
  }
  /* One or more zstd frames, content size possibly unknown (the streaming
   * writer does not know it in advance): decompress into a growing buffer. */
  ZSTD_DCtx *dc = ZSTD_createDCtx();
  size_t cap = (len - 8) * 4 + 4096, got = 0, zr = 1;
  char *body = rt_xmalloc(cap);
  ZSTD_inBuffer in = {file + 8, len - 8, 0};
  while (in.pos < in.size) {
    if (cap - got < 65536) body = rt_xrealloc(body, cap *= 2);
    ZSTD_outBuffer out = {body + got, cap - got, 0};
    zr = ZSTD_decompressStream(dc, &out, &in);
    got += out.pos;
    if (ZSTD_isError(zr)) break;
    if (zr != 0 && in.pos == in.size && out.pos < out.size) break; /* input ends inside a frame */
  }
  while (!ZSTD_isError(zr) && zr != 0) { /* flush what the last frame still holds */
    if (cap - got < 65536) body = rt_xrealloc(body, cap *= 2);
    ZSTD_outBuffer out = {body + got, cap - got, 0};
    size_t before = got;
    zr = ZSTD_decompressStream(dc, &out, &in);
    got += out.pos;
    if (got == before) break;
  }
  ZSTD_freeDCtx(dc);
  free(file);
  if (ZSTD_isError(zr) || zr != 0) {
    free(body);
    return rt_err_set(err, RT_ERR_INPUT, "%s: corrupt or truncated zstd frame (%s); rerun `ragtide aggregate`",
                      path, ZSTD_isError(zr) ? ZSTD_getErrorName(zr) : "ends inside a frame");
  }
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  uint32_t *ids = NULL, n = 0;
  uint64_t records = 0;
  rc = RT_OK;
  if (msgpack_unpack_next(&u, body, got, &off) != MSGPACK_UNPACK_SUCCESS || u.data.type != MSGPACK_OBJECT_MAP) {
    rc = rt_err_set(err, RT_ERR_INPUT, "%s: header is not a msgpack map", path);
    goto done;
  }
  for (uint32_t i = 0; i < u.data.via.map.size; i++) {
    msgpack_object_kv *kv = &u.data.via.map.ptr[i];
    if (kv->key.type != MSGPACK_OBJECT_STR) continue;
    const char *k = kv->key.via.str.ptr;
    uint32_t kl = kv->key.via.str.size;
    if (kl == 8 && !memcmp(k, "clusters", 8) && kv->val.type == MSGPACK_OBJECT_ARRAY) {
      n = kv->val.via.array.size;
      ids = rt_xmalloc((n ? n : 1) * sizeof *ids);
      for (uint32_t j = 0; j < n; j++) ids[j] = (uint32_t)kv->val.via.array.ptr[j].via.u64;
    } else if (kl == 7 && !memcmp(k, "records", 7) && kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
      records = kv->val.via.u64;
    } else if (kl == 12 && !memcmp(k, "window_start", 12)) {
      if (ws) *ws = kv->val.via.i64;
    } else if (kl == 10 && !memcmp(k, "window_end", 10)) {
      if (we) *we = kv->val.via.i64;
    }
  }
  if (!ids) {
    rc = rt_err_set(err, RT_ERR_INPUT, "%s: header has no cluster list", path);
    goto done;
  }
  /* Every record takes at least 7 bytes: a larger count is a corrupt header,
   * not a reason to allocate. */
  if (records > (got - off) / 7 + 1) {
    free(ids);
    rc = rt_err_set(err, RT_ERR_INPUT, "%s: header claims %llu records, more than the file holds", path,
                    (unsigned long long)records);
    goto done;
  }
  rt_count *rec = rt_xmalloc((records ? records : 1) * sizeof *rec);
  const unsigned char *b = (const unsigned char *)body;
  uint64_t id0 = UINT64_MAX, id1 = UINT64_MAX; /* sorted records: c1, c2 repeat */
  int ix0 = -1, ix1 = -1;
  size_t i = 0;
  for (; i < records; i++) {
    /* Fast path for what the writer emits; anything else (or anything
     * wrong) is decoded again by msgpack-c below, with its errors. */
    uint64_t v[6];
    size_t p = off;
    int ok = p < got && b[p] == 0x96, neg = 0;
    p++;
    for (int f = 0; ok && f < 6; f++) {
      ok = get_int(b, got, &p, &v[f], &neg) && (!neg || f == 3);
    }
    if (ok) {
      off = p;
    } else {
      size_t at = off;
      if (msgpack_unpack_next(&u, body, got, &off) != MSGPACK_UNPACK_SUCCESS ||
          u.data.type != MSGPACK_OBJECT_ARRAY || u.data.via.array.size != 6) {
        rc = rt_err_set(err, RT_ERR_INPUT, "%s: record %zu at byte %zu of the decompressed body is malformed", path,
                        i, at);
        break;
      }
      msgpack_object *a = u.data.via.array.ptr;
      int typed = 1;
      for (int f = 0; f < 6; f++)
        if (a[f].type != MSGPACK_OBJECT_POSITIVE_INTEGER && !(f == 3 && a[f].type == MSGPACK_OBJECT_NEGATIVE_INTEGER))
          typed = 0;
      if (!typed) {
        rc = rt_err_set(err, RT_ERR_INPUT,
                        "%s: record %zu at byte %zu of the decompressed body has a non-integer field", path, i, at);
        break;
      }
      for (int f = 0; f < 6; f++) v[f] = a[f].via.u64; /* a negative day: its i64 bits, as via.i64 */
    }
    if (v[0] != id0) ix0 = find_index(ids, n, id0 = v[0]);
    if (v[1] != id1) ix1 = find_index(ids, n, id1 = v[1]);
    int c3 = find_index(ids, n, v[2]);
    if (ix0 < 0 || ix1 < 0 || c3 < 0) {
      rc = rt_err_set(err, RT_ERR_INPUT, "%s: record %zu names a cluster not in the file's catalog", path, i);
      break;
    }
    rec[i].key = ((uint64_t)ix0 << 40) | ((uint64_t)ix1 << 20) | (uint64_t)c3;
    rec[i].day = (int32_t)(int64_t)v[3];
    rec[i].win = (uint32_t)v[4];
    rec[i].n = v[5];
  }
  if (rc) {
    free(rec);
    free(ids);
    goto done;
  }
  *ids_out = ids;
  *ncl = n;
  *rec_out = rec;
  *nrec = i;
done:
  msgpack_unpacked_destroy(&u);
  free(body);
  return rc;
}
