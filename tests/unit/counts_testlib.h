/* counts_testlib.h — helpers shared by the counts file suites
 * (test_counts_stream.c, test_counts_v2.c): a seeded rng, a temp dir per
 * test, record comparison, streaming a file whole or to its failure, and
 * hand-made files (a byte buffer, msgpack into it, "RTCOUNT1" + zstd frame).
 * Header-only and static: each suite gets its own copy of the state. Helpers
 * fail the running test through cr_assert. */
#ifndef RAGTIDE_TESTS_COUNTS_TESTLIB_H
#define RAGTIDE_TESTS_COUNTS_TESTLIB_H

#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "base/util.h"
#include "format/counts.h"

/* ---- rng and temp dir ------------------------------------------------------ */

static uint64_t rng;
static char dir[64];

/* xorshift64 step of the suite's rng (seeded by tl_setup). */
static inline uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Suite .init body: seed the rng and make a temp dir from template (…XXXXXX). */
static inline void tl_setup(const char *template, uint64_t seed) {
  rng = seed;
  snprintf(dir, sizeof dir, "%s", template);
  cr_assert_not_null(mkdtemp(dir));
}

/* Suite .fini: remove the temp dir. */
static inline void tl_teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

/* dir/name in one of 4 rotating buffers (up to 4 paths live at once). */
static inline const char *tpath(const char *name) {
  static char p[4][256];
  static int k;
  k = (k + 1) % 4;
  snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
  return p[k];
}

/* ---- records --------------------------------------------------------------- */

/* qsort order of records: key, then day, then win. */
static inline int cmp_count(const void *a, const void *b) { return rt_count_cmp(a, b); }

/* Sort r[0..n) and drop repeats of (key, day, win); returns how many remain. */
static inline size_t sort_unique(rt_count *r, size_t n) {
  qsort(r, n, sizeof *r, cmp_count);
  size_t m = 0;
  for (size_t k = 0; k < n; k++)
    if (m == 0 || cmp_count(&r[m - 1], &r[k]) != 0) r[m++] = r[k];
  return m;
}

/* Assert got[0..n) equals want[0..n) field by field; what names the case. */
static inline void assert_same(const rt_count *got, const rt_count *want, size_t n, const char *what) {
  for (size_t i = 0; i < n; i++) {
    cr_assert_eq(got[i].key, want[i].key, "%s: record %zu key", what, i);
    cr_assert_eq(got[i].day, want[i].day, "%s: record %zu day %d != %d", what, i, got[i].day, want[i].day);
    cr_assert_eq(got[i].win, want[i].win, "%s: record %zu win", what, i);
    cr_assert_eq(got[i].n, want[i].n, "%s: record %zu n", what, i);
  }
}

/* ---- streaming -------------------------------------------------------------- */

/* Stream path in chunks of max into a fresh array; the end must be clean. */
static inline rt_count *stream_all(const char *path, size_t max, size_t *n_out) {
  rt_counts_reader *r;
  rt_err err = {0};
  cr_assert_eq(rt_counts_reader_open(path, &r, &err), RT_OK, "%s", err.msg);
  uint64_t records = rt_counts_reader_records(r);
  rt_count *all = malloc((records + 1) * sizeof *all), *chunk = malloc(max * sizeof *chunk);
  size_t n = 0;
  long got;
  while ((got = rt_counts_reader_next(r, chunk, max, &err)) > 0) {
    cr_assert_leq((size_t)got, max, "a chunk of %ld records for max %zu", got, max);
    cr_assert_leq(n + (size_t)got, records, "more records than the header says");
    memcpy(all + n, chunk, (size_t)got * sizeof *chunk);
    n += (size_t)got;
  }
  cr_assert_eq(got, 0, "max %zu: %s", max, err.msg);
  cr_assert_eq(n, records);
  cr_assert_eq(rt_counts_reader_next(r, chunk, max, &err), 0, "the end stays the end");
  rt_counts_reader_close(r);
  free(chunk);
  *n_out = n;
  return all;
}

/* stream_all(path, max) must hand out exactly want[0..n); what names the case. */
static inline void assert_streams_as(const char *path, size_t max, const rt_count *want, size_t n, const char *what) {
  size_t m;
  rt_count *got = stream_all(path, max, &m);
  cr_assert_eq(m, n, "%s: %zu records, want %zu", what, m, n);
  assert_same(got, want, n, what);
  free(got);
}

/* Stream path (chunks of 1000): returns the records handed out before the
 * failure and leaves its message in msg; rt_counts_read must fail alike. */
static inline size_t stream_until_failure(const char *path, char *msg) {
  rt_counts_reader *r;
  rt_err err = {0};
  size_t n = 0;
  if (rt_counts_reader_open(path, &r, &err) != RT_OK) {
    cr_assert_eq(err.code, RT_ERR_INPUT);
    strcpy(msg, err.msg);
  } else {
    rt_count chunk[1000];
    long got;
    while ((got = rt_counts_reader_next(r, chunk, 1000, &err)) > 0) n += (size_t)got;
    cr_assert_eq(got, -1, "%s: no error after %zu records", path, n);
    cr_assert_eq(err.code, RT_ERR_INPUT);
    strcpy(msg, err.msg);
    rt_err again = {0};
    cr_assert_eq(rt_counts_reader_next(r, chunk, 1000, &again), -1, "a failed reader stays failed");
    cr_assert_str_eq(again.msg, msg);
    rt_counts_reader_close(r);
  }
  uint32_t *ids_out;
  uint32_t ncl;
  rt_count *rec;
  size_t m;
  cr_assert_eq(rt_counts_read(path, &ids_out, &ncl, &rec, &m, NULL, NULL, &err), RT_ERR_INPUT, "%s", path);
  cr_assert_str_eq(err.msg, msg, "rt_counts_read and the reader agree");
  cr_assert(strstr(msg, path), "names the file: %s", msg);
  return n;
}

/* ---- hand-made files --------------------------------------------------------- */

typedef struct {
  unsigned char *b;
  size_t len, cap;
} bytes;

/* Append n bytes of p to o, growing it. */
static inline void put(bytes *o, const void *p, size_t n) {
  if (o->len + n > o->cap) o->b = realloc(o->b, o->cap = (o->len + n) * 2 + 1024);
  memcpy(o->b + o->len, p, n);
  o->len += n;
}

/* msgpack-c write callback appending to the bytes at data. */
static inline int sb_write(void *data, const char *buf, size_t len) {
  put(data, buf, len);
  return 0;
}

/* A msgpack packer appending to o. */
static inline msgpack_packer packer(bytes *o) { return (msgpack_packer){o, sb_write}; }

/* v as msgpack with the tag given (0: positive fixint), big-endian payload. */
static inline void put_int(bytes *o, unsigned tag, uint64_t v) {
  unsigned char t[9];
  size_t w = tag == 0 ? 0 : (size_t)1 << ((tag - 0xcc) & 3);
  t[0] = tag ? (unsigned char)tag : (unsigned char)v;
  for (size_t i = 0; i < w; i++) t[1 + i] = (unsigned char)(v >> (8 * (w - 1 - i)));
  put(o, t, 1 + w);
}

/* A header map as the writer makes it: version, clusters ids[0..ncl),
 * window [ws, ws + 86400), a run_id of run_len (<= 256) bytes, records. */
static inline void put_header(bytes *o, unsigned version, const uint32_t *ids, uint32_t ncl, uint64_t records,
                              int64_t ws, size_t run_len) {
  msgpack_packer pk = packer(o);
  char run[256];
  memset(run, 'r', sizeof run);
  msgpack_pack_map(&pk, 7);
  msgpack_pack_str_with_body(&pk, "version", 7);
  msgpack_pack_uint32(&pk, version);
  msgpack_pack_str_with_body(&pk, "clusters", 8);
  msgpack_pack_array(&pk, ncl);
  for (uint32_t i = 0; i < ncl; i++) msgpack_pack_uint32(&pk, ids[i]);
  msgpack_pack_str_with_body(&pk, "catalog_hash", 12);
  msgpack_pack_uint64(&pk, 7);
  msgpack_pack_str_with_body(&pk, "window_start", 12);
  msgpack_pack_int64(&pk, ws);
  msgpack_pack_str_with_body(&pk, "window_end", 10);
  msgpack_pack_int64(&pk, ws + 86400);
  msgpack_pack_str_with_body(&pk, "run_id", 6);
  msgpack_pack_str_with_body(&pk, run, run_len);
  msgpack_pack_str_with_body(&pk, "records", 7);
  msgpack_pack_uint64(&pk, records);
}

/* "RTCOUNT1" + body in one zstd frame with its checksum. */
static inline void write_file(const char *path, const bytes *body) {
  ZSTD_CCtx *cc = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
  size_t zcap = ZSTD_compressBound(body->len);
  unsigned char *z = malloc(zcap);
  size_t zn = ZSTD_compress2(cc, z, zcap, body->b, body->len);
  cr_assert(!ZSTD_isError(zn));
  ZSTD_freeCCtx(cc);
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite("RTCOUNT1", 1, 8, f), 8);
  cr_assert_eq(fwrite(z, 1, zn, f), zn);
  cr_assert_eq(fclose(f), 0);
  free(z);
}

/* rt_counts_write rec[0..n) to path with meta, then read the file's bytes into *data (malloc'd), *len. */
static inline void write_and_read_back(const char *path, const rt_counts_meta *meta, const rt_count *rec, size_t n,
                                       char **data, size_t *len) {
  rt_err err = {0};
  cr_assert_eq(rt_counts_write(path, meta, rec, n, &err), RT_OK, "%s", err.msg);
  cr_assert_eq(rt_read_file(path, data, len, &err), RT_OK);
}

/* Rewrite the counts file at path with its header's record count set to
 * `records` (a file whose header lies: the writer refuses to make one). The
 * count must keep its msgpack width (uint16 here: 256 .. 65535). */
static inline void relabel_records(const char *path, uint64_t records) {
  char *data;
  size_t len;
  rt_err err = {0};
  cr_assert_eq(rt_read_file(path, &data, &len, &err), RT_OK, "%s", err.msg);
  ZSTD_DCtx *dc = ZSTD_createDCtx();
  bytes body = {0};
  ZSTD_inBuffer in = {data + 8, len - 8, 0};
  unsigned char out[1 << 16];
  while (in.pos < in.size) {
    ZSTD_outBuffer o = {out, sizeof out, 0};
    cr_assert(!ZSTD_isError(ZSTD_decompressStream(dc, &o, &in)));
    put(&body, out, o.pos);
  }
  ZSTD_freeDCtx(dc);
  free(data);
  unsigned char *k = memmem(body.b, body.len, "\xa7records\xcd", 9);
  cr_assert_not_null(k, "the header's records count is a uint16");
  cr_assert(records >= 256 && records <= 65535);
  k[9] = (unsigned char)(records >> 8);
  k[10] = (unsigned char)records;
  write_file(path, &body);
  free(body.b);
}

/* Write the first len bytes of data to path (a cut copy of a file). */
static inline void write_prefix(const char *path, const char *data, size_t len) {
  FILE *f = fopen(path, "wb");
  cr_assert_eq(fwrite(data, 1, len, f), len);
  fclose(f);
}

#endif
