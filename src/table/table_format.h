/* table_format.h — private layout constants of the transition-table file
 * (docs/formats.md §3) shared by the reader (table_read.c) and the builder
 * (table_build.c). Not installed: consumers see only <ragtide/table.h>.
 *
 * File = preamble (32 bytes) | header (msgpack map) | body (zstd frame of a
 * msgpack map, columns) | trailer (8-byte magic + XXH3-64 of all bytes before
 * the checksum). Every integer in the preamble/trailer is little-endian. */
#ifndef RT_TABLE_FORMAT_H
#define RT_TABLE_FORMAT_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define RAGTIDE_STATIC_LINKING_ONLY /* the builder is ours */
#include <ragtide/table.h>

#define TBL_MAGIC "RAGTIDE\x1a" /* 8 bytes; 0x1a stops a `type`/`cat` of the binary */
#define TBL_TRAILER_MAGIC "RTTBLEND"
#define TBL_MAGIC_LEN 8
#define TBL_PREAMBLE 32  /* magic, major u16, minor u16, header_len u32, body_len u64, raw_len u64 */
#define TBL_TRAILER 16   /* trailer magic, xxh3 u64 */
#define TBL_MINOR RAGTIDE_FORMAT_MINOR

/* Entries in memory: (prov << 29) | next dense index. Dense indices stay below
 * 2^20 (catalog limit), so three spare bits carry the provenance and a
 * lookup touches a single 32-bit word. 0 = no prediction (prov NONE). On
 * disk the provenance is a 2-bit column (retrieval written as rag) plus,
 * since format 1.1, a bit column "retrieval" in ranks that have any. */
#define TBL_IDX_MASK 0x1fffffffu
#define TBL_PROV_SHIFT 29
#define TBL_MAX_CLUSTERS (1u << 20)
#define TBL_MAX_CANDIDATES 16u
/* One process holds n*n*candidates entries (8 bytes each in memory). Larger
 * catalogs need the part-file layout sketched in the spec. */
#define TBL_MAX_ENTRIES (1ull << 31)
#define TBL_ZSTD_LEVEL 9

static inline void tbl_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void tbl_put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void tbl_put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t tbl_get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t tbl_get32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t tbl_get64(const uint8_t *p) {
  return (uint64_t)tbl_get32(p) | ((uint64_t)tbl_get32(p + 4) << 32);
}

/* Bytes needed to hold v (0 for v == 0). */
static inline uint32_t tbl_width(uint32_t v) {
  return v == 0 ? 0 : v < 0x100u ? 1 : v < 0x10000u ? 2 : v < 0x1000000u ? 3 : 4;
}

/* Table builder internals, shared with the merge/copy helpers. */
struct ragtide_table_builder {
  uint32_t n, cand;
  uint64_t npairs;
  uint32_t *ids;  /* [n] */
  uint32_t *ent;  /* [cand * npairs], rank-major, packed as above */
  uint32_t *day;  /* [cand * npairs] */
  int64_t created_at, window_start, window_end;
  uint64_t catalog_hash, template_hash, config_hash;
  uint32_t k;
  char *model, *run_id, *base_run_id;
};

/* An opened table: flat arrays, immutable after ragtide_table_open(). */
struct ragtide_table {
  ragtide_table_info info;
  char *model, *run_id, *base_run_id;
  uint32_t n, cand;
  uint64_t npairs;
  uint32_t *ids;  /* [n] ascending */
  uint32_t *ent;  /* [cand * npairs] packed entries, rank-major */
  uint32_t *day;  /* [cand * npairs], 0 for no prediction */
  /* external id -> dense index: a direct array when ids are dense enough ... */
  int32_t *direct;
  uint32_t id_min, direct_len;
  /* ... else open addressing (linear probing, hval < 0 = empty slot). */
  uint32_t *hkey;
  int32_t *hval;
  uint32_t hmask;
};

/* Fill errbuf (if any) with a message and return code: every failure path of
 * the library reports through this. */
static inline int fail(char *errbuf, size_t errcap, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline int fail(char *errbuf, size_t errcap, int code, const char *fmt, ...) {
  if (errbuf && errcap) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errcap, fmt, ap);
    va_end(ap);
  }
  return code;
}

#endif
