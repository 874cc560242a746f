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

struct rt_counts_writer {
  char *path, tmp[4096];
  FILE *f;
  ZSTD_CCtx *cc;
  msgpack_sbuffer sb;
  msgpack_packer pk;
  const uint32_t *ids;
  char *zbuf;
  size_t zcap;
  int failed;
};

/* Compress what the packer holds (and end the frame when `end`). */
static int pump(rt_counts_writer *w, int end, rt_err *err) {
  ZSTD_inBuffer in = {w->sb.data, w->sb.size, 0};
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
  msgpack_sbuffer_clear(&w->sb);
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
  w->ids = m->ids;
  w->cc = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(w->cc, ZSTD_c_compressionLevel, 3);
  ZSTD_CCtx_setParameter(w->cc, ZSTD_c_checksumFlag, 1);
  /* Compress in a worker thread while this one keeps packing records (a
   * libzstd built without threads ignores this and compresses inline). */
  ZSTD_CCtx_setParameter(w->cc, ZSTD_c_nbWorkers, 1);
  w->zcap = ZSTD_CStreamOutSize();
  w->zbuf = rt_xmalloc(w->zcap);
  msgpack_sbuffer_init(&w->sb);
  msgpack_packer_init(&w->pk, &w->sb, msgpack_sbuffer_write);
  msgpack_packer *pk = &w->pk;
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
  if (rc) {
    rt_counts_writer_abort(w);
    return rc;
  }
  *out = w;
  return RT_OK;
}

int rt_counts_writer_add(rt_counts_writer *w, const rt_count *rec, size_t n, rt_err *err) {
  for (size_t i = 0; i < n; i++) {
    uint64_t k = rec[i].key;
    msgpack_pack_array(&w->pk, 6);
    msgpack_pack_uint32(&w->pk, w->ids[k >> 40]);
    msgpack_pack_uint32(&w->pk, w->ids[(k >> 20) & 0xFFFFF]);
    msgpack_pack_uint32(&w->pk, w->ids[k & 0xFFFFF]);
    msgpack_pack_int32(&w->pk, rec[i].day);
    msgpack_pack_uint32(&w->pk, rec[i].win);
    msgpack_pack_uint64(&w->pk, rec[i].n);
    if (w->sb.size >= (1u << 20)) {
      int rc = pump(w, 0, err);
      if (rc) return rc;
    }
  }
  return RT_OK;
}

void rt_counts_writer_abort(rt_counts_writer *w) {
  if (!w) return;
  if (w->f) fclose(w->f);
  unlink(w->tmp);
  ZSTD_freeCCtx(w->cc);
  msgpack_sbuffer_destroy(&w->sb);
  free(w->zbuf);
  free(w->path);
  free(w);
}

int rt_counts_writer_finish(rt_counts_writer *w, rt_err *err) {
  int rc = pump(w, 1, err);
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
  size_t i = 0;
  for (; i < records; i++) {
    size_t at = off;
    if (msgpack_unpack_next(&u, body, got, &off) != MSGPACK_UNPACK_SUCCESS || u.data.type != MSGPACK_OBJECT_ARRAY ||
        u.data.via.array.size != 6) {
      rc = rt_err_set(err, RT_ERR_INPUT, "%s: record %zu at byte %zu of the decompressed body is malformed", path, i,
                      at);
      break;
    }
    msgpack_object *a = u.data.via.array.ptr;
    int typed = 1;
    for (int f = 0; f < 6; f++)
      if (a[f].type != MSGPACK_OBJECT_POSITIVE_INTEGER && !(f == 3 && a[f].type == MSGPACK_OBJECT_NEGATIVE_INTEGER))
        typed = 0;
    if (!typed) {
      rc = rt_err_set(err, RT_ERR_INPUT, "%s: record %zu at byte %zu of the decompressed body has a non-integer field",
                      path, i, at);
      break;
    }
    int c1 = find_index(ids, n, a[0].via.u64), c2 = find_index(ids, n, a[1].via.u64),
        c3 = find_index(ids, n, a[2].via.u64);
    if (c1 < 0 || c2 < 0 || c3 < 0) {
      rc = rt_err_set(err, RT_ERR_INPUT, "%s: record %zu names a cluster not in the file's catalog", path, i);
      break;
    }
    rec[i].key = ((uint64_t)c1 << 40) | ((uint64_t)c2 << 20) | (uint64_t)c3;
    rec[i].day = (int32_t)a[3].via.i64;
    rec[i].win = (uint32_t)a[4].via.u64;
    rec[i].n = a[5].via.u64;
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
