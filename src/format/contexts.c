/* contexts.c — the context fingerprint file: magic, catalog hash, count,
 * sorted (pair, hash) records, FNV checksum. */
#include "format/contexts.h"
#include "base/util.h"

#include <stdlib.h>
#include <string.h>

#define MAGIC "RTCTX001"

uint64_t rt_ctx_hash(const uint32_t *next, size_t n) { return rt_hash_bytes(next, n * sizeof *next); }

void rt_contexts_load(const char *path, uint64_t catalog_hash, rt_ctx_fp **out, size_t *n) {
  *out = NULL;
  *n = 0;
  char *buf;
  size_t len;
  rt_err err;
  if (rt_read_file(path, &buf, &len, &err)) return;
  uint64_t h, cnt, sum;
  if (len >= 32 && memcmp(buf, MAGIC, 8) == 0) {
    memcpy(&h, buf + 8, 8);
    memcpy(&cnt, buf + 16, 8);
    if (h == catalog_hash && cnt <= (len - 32) / sizeof(rt_ctx_fp) && len == 32 + cnt * sizeof(rt_ctx_fp)) {
      memcpy(&sum, buf + 24, 8);
      if (sum == rt_hash_bytes(buf + 32, cnt * sizeof(rt_ctx_fp))) {
        *out = rt_xmalloc((cnt ? cnt : 1) * sizeof **out);
        memcpy(*out, buf + 32, cnt * sizeof **out);
        *n = cnt;
      }
    }
  }
  free(buf);
}

char *rt_contexts_encode(uint64_t catalog_hash, const rt_ctx_fp *fp, size_t n, size_t *out_len) {
  size_t len = 32 + n * sizeof *fp;
  char *buf = rt_xmalloc(len);
  uint64_t cnt = n, sum = rt_hash_bytes(fp, n * sizeof *fp);
  memcpy(buf, MAGIC, 8);
  memcpy(buf + 8, &catalog_hash, 8);
  memcpy(buf + 16, &cnt, 8);
  memcpy(buf + 24, &sum, 8);
  if (n) memcpy(buf + 32, fp, n * sizeof *fp);
  *out_len = len;
  return buf;
}

int rt_contexts_save(const char *path, uint64_t catalog_hash, const rt_ctx_fp *fp, size_t n, rt_err *err) {
  size_t len;
  char *buf = rt_contexts_encode(catalog_hash, fp, n, &len);
  int rc = rt_write_file_atomic(path, buf, len, err);
  free(buf);
  return rc;
}


size_t rt_contexts_changed(const rt_ctx_fp *prev, size_t np, const rt_ctx_fp *cur, size_t nc) {
  size_t changed = 0, j = 0;
  for (size_t i = 0; i < nc; i++) {
    while (j < np && prev[j].pair < cur[i].pair) j++;
    if (j == np || prev[j].pair != cur[i].pair || prev[j].hash != cur[i].hash) changed++;
  }
  return changed;
}
