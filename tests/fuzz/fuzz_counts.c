/* fuzz_counts — the counts file reader (src/format/counts.c,
 * rt_counts_read through rt_counts_reader). Input: one selector byte, then
 *   selector & 1 clear: the file as is;
 *   selector & 1 set:   the decompressed body: the harness writes the
 *                       "RTCOUNT1" magic and compresses the rest into a zstd
 *                       frame with a checksum, so the fuzzer mutates the
 *                       msgpack header and records rather than zstd data. */
#include "fuzz_common.h"
#include "format/counts.h"

#include <zstd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  unsigned sel = data[0];
  data++, size--;
  const char *path = fz_path(0, "counts.cnt");
  if (sel & 1) {
    size_t cap = 8 + ZSTD_compressBound(size);
    uint8_t *f = malloc(cap);
    memcpy(f, "RTCOUNT1", 8);
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 1);
    size_t zn = ZSTD_compress2(c, f + 8, cap - 8, data, size);
    ZSTD_freeCCtx(c);
    if (ZSTD_isError(zn)) abort();
    fz_write(path, f, 8 + zn);
    free(f);
  } else {
    fz_write(path, data, size);
  }
  uint32_t *ids = NULL, n_clusters = 0;
  rt_count *rec = NULL;
  size_t n = 0;
  int64_t ws = 0, we = 0;
  rt_err err = {0};
  if (rt_counts_read(path, &ids, &n_clusters, &rec, &n, &ws, &we, &err) == RT_OK) {
    for (size_t i = 0; i < n; i++) {
      uint32_t c1 = (uint32_t)(rec[i].key >> 40), c2 = (uint32_t)(rec[i].key >> 20) & 0xfffff,
               c3 = (uint32_t)rec[i].key & 0xfffff;
      if (c1 >= n_clusters || c2 >= n_clusters || c3 >= n_clusters) abort(); /* indices must be valid */
    }
    free(ids);
    free(rec);
  } else {
    if (err.code == RT_OK) abort();
    fz_check_msg(err.msg, sizeof err.msg);
  }
  return 0;
}
