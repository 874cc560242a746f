/* counts.c — counts file: msgpack records in one zstd frame. */
#include "format/counts.h"
#include "base/util.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define MAGIC "RTCOUNT1"

int rt_counts_write(const char *path, const rt_counts_meta *m, const rt_count *rec, size_t n, rt_err *err) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 7);
  msgpack_pack_str_with_body(&pk, "version", 7);
  msgpack_pack_uint32(&pk, 1);
  msgpack_pack_str_with_body(&pk, "clusters", 8);
  msgpack_pack_array(&pk, m->n_clusters);
  for (uint32_t i = 0; i < m->n_clusters; i++) msgpack_pack_uint32(&pk, m->ids[i]);
  msgpack_pack_str_with_body(&pk, "catalog_hash", 12);
  msgpack_pack_uint64(&pk, m->catalog_hash);
  msgpack_pack_str_with_body(&pk, "window_start", 12);
  msgpack_pack_int64(&pk, m->window_start);
  msgpack_pack_str_with_body(&pk, "window_end", 10);
  msgpack_pack_int64(&pk, m->window_end);
  msgpack_pack_str_with_body(&pk, "run_id", 6);
  msgpack_pack_str_with_body(&pk, m->run_id, strlen(m->run_id));
  msgpack_pack_str_with_body(&pk, "records", 7);
  msgpack_pack_uint64(&pk, n);
  for (size_t i = 0; i < n; i++) {
    uint64_t k = rec[i].key;
    msgpack_pack_array(&pk, 6);
    msgpack_pack_uint32(&pk, m->ids[k >> 40]);
    msgpack_pack_uint32(&pk, m->ids[(k >> 20) & 0xFFFFF]);
    msgpack_pack_uint32(&pk, m->ids[k & 0xFFFFF]);
    msgpack_pack_int32(&pk, rec[i].day);
    msgpack_pack_uint32(&pk, rec[i].win);
    msgpack_pack_uint64(&pk, rec[i].n);
  }
  size_t cap = ZSTD_compressBound(sb.size);
  char *out = rt_xmalloc(8 + cap);
  memcpy(out, MAGIC, 8);
  size_t z = ZSTD_compress(out + 8, cap, sb.data, sb.size, 3);
  msgpack_sbuffer_destroy(&sb);
  if (ZSTD_isError(z)) {
    free(out);
    return rt_err_set(err, RT_ERR_INTERNAL, "compressing counts: %s", ZSTD_getErrorName(z));
  }
  int rc = rt_write_file_atomic(path, out, 8 + z, err);
  free(out);
  return rc;
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
  unsigned long long raw = ZSTD_getFrameContentSize(file + 8, len - 8);
  if (raw == ZSTD_CONTENTSIZE_ERROR || raw == ZSTD_CONTENTSIZE_UNKNOWN || raw > (1ULL << 36)) {
    free(file);
    return rt_err_set(err, RT_ERR_INPUT, "%s: byte 8: corrupt zstd frame", path);
  }
  char *body = rt_xmalloc(raw + 1);
  size_t got = ZSTD_decompress(body, raw, file + 8, len - 8);
  free(file);
  if (ZSTD_isError(got) || got != raw) {
    free(body);
    return rt_err_set(err, RT_ERR_INPUT, "%s: corrupt zstd frame (%s)", path,
                      ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short");
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
