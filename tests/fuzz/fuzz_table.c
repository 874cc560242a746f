/* fuzz_table — the transition-table reader of libragtide
 * (src/table/table_read.c, ragtide_table_open) and its accessors.
 * Input: one selector byte, then
 *   selector & 1 clear: the table file; the harness writes the right XXH3
 *     checksum into its last 8 bytes (so mutations reach the header and body
 *     parsers instead of stopping at the checksum);
 *   selector & 1 set: [u32 LE header_len][header msgpack][raw body msgpack]:
 *     the harness writes the preamble, compresses the body into one zstd
 *     frame and adds the trailer and checksum (raw_len is the body's length,
 *     XORed with selector >> 4 when selector & 2, to reach the size checks). */
#include "fuzz_common.h"
#include <ragtide/table.h>

#include <xxhash.h>
#include <zstd.h>

static void put(uint8_t *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  unsigned sel = data[0];
  data++, size--;
  uint8_t *f = NULL;
  size_t fn = 0;
  if (sel & 1) {
    if (size < 4) return 0;
    uint32_t hl = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24;
    data += 4, size -= 4;
    if (hl > size) hl = (uint32_t)size;
    const uint8_t *body = data + hl;
    size_t rawn = size - hl;
    size_t cap = 32 + hl + ZSTD_compressBound(rawn) + 16;
    f = malloc(cap);
    memcpy(f, "RAGTIDE\x1a", 8);
    put(f + 8, 1, 2);
    put(f + 10, 0, 2);
    put(f + 12, hl, 4);
    memcpy(f + 32, data, hl);
    size_t zn = ZSTD_compress(f + 32 + hl, cap - 32 - hl - 16, body, rawn, 1);
    if (ZSTD_isError(zn)) abort();
    put(f + 16, zn, 8);
    put(f + 24, (sel & 2) ? rawn ^ (sel >> 4) : rawn, 8);
    fn = 32 + hl + zn + 16;
    memcpy(f + fn - 16, "RTTBLEND", 8);
  } else {
    f = malloc(size ? size : 1);
    memcpy(f, data, size);
    fn = size;
  }
  if (fn >= 48) put(f + fn - 8, XXH3_64bits(f, fn - 8), 8);
  const char *path = fz_path(0, "table.rtt");
  fz_write(path, f, fn);
  free(f);

  ragtide_table *t = NULL;
  char eb[512];
  int rc = ragtide_table_open(path, &t, eb, sizeof eb);
  if (rc != RAGTIDE_OK) {
    if (t) abort();
    fz_check_msg(eb, sizeof eb);
    (void)ragtide_strerror(rc);
    return 0;
  }
  const ragtide_table_info *info = ragtide_table_get_info(t);
  uint32_t n = 0;
  const uint32_t *ids = ragtide_table_cluster_ids(t, &n);
  if (n != info->n_clusters) abort();
  uint32_t lim = n < 8 ? n : 8;
  for (uint32_t a = 0; a < lim; a++) {
    if (ragtide_table_index_of(t, ids[a]) != (int32_t)a) abort();
    for (uint32_t b = 0; b < lim; b++) {
      uint32_t next;
      ragtide_provenance prov;
      ragtide_table_lookup(t, ids[a], ids[b], &next, &prov);
      ragtide_candidate cand[16];
      int k = ragtide_table_candidates(t, ids[a], ids[b], cand, 16);
      if (k < 0 || k > 16) abort();
      for (uint32_t j = 0; j < info->candidates && j < 16; j++) {
        uint32_t ni, day;
        ragtide_table_get_idx(t, a, b, j, &ni, &prov, &day);
        if (ni != UINT32_MAX && ni >= n) abort(); /* a next index outside the catalog */
      }
    }
  }
  ragtide_table_lookup(t, 0xffffffffu, 0, NULL, NULL);
  ragtide_table_close(t);
  return 0;
}
