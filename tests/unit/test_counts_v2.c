/* test_counts_v2.c — counts file version 2 (docs/formats.md §4): what
 * rt_counts_write / the streamed writer write reads back equal in chunks of
 * any size, whatever the add() chunking (same bytes); a version 1 file of the
 * same records reads the same; any msgpack integer encoding decodes alike
 * (fast path or msgpack-c); a cut body, a bad record or group, and a
 * version this build does not know fail naming the file (and the record's
 * number and byte offset in the decompressed body). */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "base/util.h"
#include "counts_testlib.h"
#include "format/counts.h"

static void setup(void) { tl_setup("/tmp/rt-test-cv2-XXXXXX", 0x2545F4914F6CDD1DULL); }

/* A catalog big enough that dense indices take 1, 3 and 5 bytes. */
#define NCL 70001
static uint32_t ids[NCL];
static void make_ids(void) {
  for (uint32_t i = 0; i < NCL; i++) ids[i] = 7 + 61000u * i;
}

static uint64_t pick_cluster(void) {
  switch (next_rand() % 4) {
  case 0: return next_rand() % 128;
  case 1: return NCL - 1 - next_rand() % 3; /* the top of the catalog */
  default: return next_rand() % NCL;
  }
}

/* About n sorted, unique records: many pairs of 1..40 records, one pair of
 * 9000 (more than one group), days from -100000 to 100000 around and far
 * from the window, counts up to 2^64-1. */
static size_t make_records(rt_count *r, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint64_t c1 = pick_cluster(), c2 = pick_cluster();
    size_t len = i == n / 2 ? 9000 : 1 + next_rand() % 40;
    uint64_t c3 = pick_cluster();
    for (size_t j = 0; j < len && i < n; j++, i++) {
      if (next_rand() % 3 == 0) c3 = pick_cluster();
      int64_t span = (int64_t[]){12, 200, 40000, 200000}[next_rand() % 4];
      r[i].key = c1 << 40 | c2 << 20 | c3;
      r[i].day = (int32_t)(20513 + (int64_t)(next_rand() % (uint64_t)span) - span / 2);
      if (next_rand() % 50 == 0) r[i].day = (int32_t)((int64_t)(next_rand() % 200001) - 100000);
      r[i].win = (uint32_t)(next_rand() % 2);
      r[i].n = 1 + (next_rand() >> (next_rand() % 64));
      if (r[i].n == 0) r[i].n = UINT64_MAX;
    }
  }
  r[0].n = UINT64_MAX;
  return sort_unique(r, n);
}

static void check_reads(const char *p, const rt_count *rec, size_t n, uint32_t ncl, const char *what) {
  uint32_t *rids, rn;
  rt_count *all;
  size_t m;
  rt_err err = {0};
  cr_assert_eq(rt_counts_read(p, &rids, &rn, &all, &m, NULL, NULL, &err), RT_OK, "%s: %s", what, err.msg);
  cr_assert_eq(m, n, "%s", what);
  cr_assert_eq(rn, ncl);
  cr_assert_arr_eq(rids, ids, ncl * sizeof *ids);
  assert_same(all, rec, n, what);
  free(rids);
  free(all);
  size_t maxes[] = {1, 7, 4096};
  for (size_t k = 0; k < 3; k++) {
    char w[96];
    snprintf(w, sizeof w, "%s, max %zu", what, maxes[k]);
    assert_streams_as(p, maxes[k], rec, n, w);
  }
}

static int same_bytes(const char *a, const char *b) {
  char *x, *y;
  size_t xn, yn;
  rt_err err = {0};
  cr_assert_eq(rt_read_file(a, &x, &xn, &err), RT_OK);
  cr_assert_eq(rt_read_file(b, &y, &yn, &err), RT_OK);
  int same = xn == yn && memcmp(x, y, xn) == 0;
  free(x);
  free(y);
  return same;
}

/* ---- hand-made files ------------------------------------------------------ */

/* The small version 1 writer: [c1_id, c2_id, next_id, day, win, count]. */
static void write_v1(const char *path, const rt_count *rec, size_t n, uint32_t ncl, int64_t ws) {
  bytes body = {0};
  put_header(&body, 1, ids, ncl, n, ws, 5);
  msgpack_packer pk = packer(&body);
  for (size_t i = 0; i < n; i++) {
    msgpack_pack_array(&pk, 6);
    msgpack_pack_uint32(&pk, ids[rec[i].key >> 40]);
    msgpack_pack_uint32(&pk, ids[(rec[i].key >> 20) & 0xFFFFF]);
    msgpack_pack_uint32(&pk, ids[rec[i].key & 0xFFFFF]);
    msgpack_pack_int32(&pk, rec[i].day);
    msgpack_pack_uint32(&pk, rec[i].win);
    msgpack_pack_uint64(&pk, rec[i].n);
  }
  write_file(path, &body);
  free(body.b);
}

static void put_v(bytes *o, int wide, int64_t v, int is_signed) {
  msgpack_packer pk = packer(o);
  if (wide) put_int(o, is_signed && v < 0 ? 0xd3 : 0xcf, (uint64_t)v);
  else if (is_signed) msgpack_pack_int64(&pk, v);
  else msgpack_pack_uint64(&pk, (uint64_t)v);
}

/* A v2 body of rec, groups of at most gmax records. Style 0: smallest
 * encodings (the writer's bytes); 1: every integer 9 bytes (fast path);
 * 2: as 1, group headers as array16 (only msgpack-c). */
static void put_v2_records(bytes *o, const rt_count *rec, size_t n, int64_t ws, size_t gmax, int style) {
  int64_t base = ws >= 0 ? ws / 86400 : -((-(ws + 1)) / 86400) - 1;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && j - i < gmax && rec[j].key >> 20 == rec[i].key >> 20) j++;
    if (style == 2) put(o, "\xdc\x00\x03", 3);
    else put(o, "\x93", 1);
    put_v(o, style, (int64_t)(rec[i].key >> 40), 0);
    put_v(o, style, (int64_t)((rec[i].key >> 20) & 0xFFFFF), 0);
    put_v(o, style, (int64_t)(j - i), 0);
    int64_t prev = 0;
    for (; i < j; i++) {
      int64_t next = (int64_t)(rec[i].key & 0xFFFFF);
      put_v(o, style, next - prev, 1);
      prev = next;
      put_v(o, style, rec[i].day - base, 1);
      put_v(o, style, rec[i].win, 0);
      if (style) put_int(o, 0xcf, rec[i].n);
      else msgpack_pack_uint64(&(msgpack_packer){o, sb_write}, rec[i].n);
    }
  }
}

TestSuite(counts_v2, .init = setup, .fini = tl_teardown);

Test(counts_v2, round_trip_streamed_in_any_chunks_and_same_bytes_whatever_the_adds) {
  make_ids();
  size_t cap = 300000;
  rt_count *rec = malloc(cap * sizeof *rec);
  size_t n = make_records(rec, cap);
  cr_assert_gt(n, 290000);
  int64_t windows[] = {1772323200, -86400 * 3 - 5};
  for (int wk = 0; wk < 2; wk++) {
    rt_counts_meta meta = {ids, NCL, 0xABCDEF0123456789ull, windows[wk], windows[wk] + 5 * 86400, "v2"};
    rt_err err = {0};
    const char *p = tpath("big.rtc");
    cr_assert_eq(rt_counts_write(p, &meta, rec, n, &err), RT_OK, "%s", err.msg);
    rt_counts_reader *r;
    cr_assert_eq(rt_counts_reader_open(p, &r, &err), RT_OK, "%s", err.msg);
    int64_t ws, we;
    rt_counts_reader_window(r, &ws, &we);
    cr_assert_eq(ws, windows[wk]);
    cr_assert_eq(rt_counts_reader_records(r), n);
    rt_counts_reader_close(r);
    check_reads(p, rec, n, NCL, "written");

    /* The streamed writer, records added 1, 3, 4097, ... at a time: same bytes. */
    const char *q = tpath("streamed.rtc");
    rt_counts_writer *w;
    cr_assert_eq(rt_counts_writer_open(q, &meta, n, &w, &err), RT_OK, "%s", err.msg);
    size_t steps[] = {1, 3, 4097, 1, 10000, 77};
    for (size_t i = 0, s = 0; i < n; s++) {
      size_t take = steps[s % 6] < n - i ? steps[s % 6] : n - i;
      cr_assert_eq(rt_counts_writer_add(w, rec + i, take, &err), RT_OK, "%s", err.msg);
      i += take;
    }
    cr_assert_eq(rt_counts_writer_finish(w, &err), RT_OK, "%s", err.msg);
    cr_assert(same_bytes(p, q), "the bytes do not depend on the add() chunking");

    /* What the writer writes is the layout docs/formats.md §4 gives. */
    bytes body = {0};
    put_header(&body, 2, ids, NCL, n, windows[wk], 2);
    size_t hdr = body.len;
    put_v2_records(&body, rec, n, windows[wk], 4096, 0);
    char *data;
    size_t len;
    cr_assert_eq(rt_read_file(p, &data, &len, &err), RT_OK);
    unsigned char *plain = malloc(body.len + 1024);
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    ZSTD_inBuffer in = {data + 8, len - 8, 0};
    ZSTD_outBuffer out = {plain, body.len + 1024, 0};
    size_t zr;
    do zr = ZSTD_decompressStream(dc, &out, &in);
    while (!ZSTD_isError(zr) && zr != 0 && in.pos < in.size);
    cr_assert(!ZSTD_isError(zr) && zr == 0);
    ZSTD_freeDCtx(dc);
    /* (the header maps differ in catalog_hash, window_end, run_id) */
    size_t body_len = body.len - hdr, file_hdr = out.pos - body_len;
    cr_assert_geq(out.pos, body_len);
    cr_assert(memcmp(plain + file_hdr, body.b + hdr, body_len) == 0, "v2 records as documented");
    int v2 = 0;
    for (size_t k = 0; k + 9 <= file_hdr && !v2; k++) v2 = memcmp(plain + k, "\xa7version\x02", 9) == 0;
    cr_assert(v2, "header says version 2");
    free(plain);
    free(data);
    free(body.b);
  }
  free(rec);
}

Test(counts_v2, version_1_file_of_the_same_records_reads_the_same) {
  make_ids();
  size_t cap = 60000;
  rt_count *rec = malloc(cap * sizeof *rec);
  size_t n = make_records(rec, cap);
  const char *v1 = tpath("v1.rtc"), *v2 = tpath("v2.rtc");
  write_v1(v1, rec, n, NCL, 1772323200);
  rt_counts_meta meta = {ids, NCL, 7, 1772323200, 1772323200 + 86400, "rr"};
  rt_err err = {0};
  cr_assert_eq(rt_counts_write(v2, &meta, rec, n, &err), RT_OK, "%s", err.msg);
  check_reads(v1, rec, n, NCL, "v1");
  check_reads(v2, rec, n, NCL, "v2");
  free(rec);
}

/* Every integer encoding msgpack allows, group headers as array16, groups
 * of 1 .. many, headers of varying length so the reader's window cuts
 * records at many offsets: all decode as the writer's bytes do. */
Test(counts_v2, any_integer_encoding_and_window_cuts_decode_alike) {
  make_ids();
  size_t cap = 40000;
  rt_count *rec = malloc(cap * sizeof *rec);
  size_t n = make_records(rec, cap);
  for (int style = 0; style < 3; style++)
    for (size_t s = 0; s < 24; s += 5) {
      bytes body = {0};
      int64_t ws = style == 1 ? -7 : 1772323200;
      put_header(&body, 2, ids, NCL, n, ws, 10 + s + 7 * (size_t)style);
      put_v2_records(&body, rec, n, ws, (size_t[]){4096, 1, 3}[style], style);
      const char *p = tpath("styled.rtc");
      write_file(p, &body);
      free(body.b);
      char what[64];
      snprintf(what, sizeof what, "style %d, shift %zu", style, s);
      assert_streams_as(p, s % 2 ? 4096 : 7, rec, n, what);
    }
  free(rec);
}

/* ---- failures ------------------------------------------------------------- */

Test(counts_v2, truncated_file_or_body_fails_naming_file_record_and_offset) {
  make_ids();
  size_t cap = 50000;
  rt_count *rec = malloc(cap * sizeof *rec);
  size_t n = make_records(rec, cap);
  rt_counts_meta meta = {ids, NCL, 1, 0, 86400, "trunc"};
  char *data;
  size_t len;
  write_and_read_back(tpath("full.rtc"), &meta, rec, n, &data, &len);
  size_t cuts[] = {len - 1, len - 5, len / 2, 1000, 9};
  char msg[RT_ERR_MSG_MAX];
  for (size_t k = 0; k < sizeof cuts / sizeof *cuts; k++) {
    const char *p = tpath("cut.rtc");
    write_prefix(p, data, cuts[k]);
    size_t got = stream_until_failure(p, msg);
    cr_assert_lt(got, k < 2 ? n + 1 : n, "cut at %zu", cuts[k]);
    cr_assert(strstr(msg, "corrupt or truncated zstd frame"), "cut at %zu: %s", cuts[k], msg);
  }
  free(data);

  /* A whole zstd frame of a body cut short: at a record's start, inside a
   * record, and right after a group header. */
  bytes body = {0};
  put_header(&body, 2, ids, NCL, n, 0, 4);
  size_t hdr = body.len;
  put_v2_records(&body, rec, n, 0, 4096, 0);
  bytes ref = {0}; /* byte offsets of each record: pack them one at a time */
  size_t *off = malloc((n + 1) * sizeof *off), *ghdr = malloc((n + 1) * sizeof *ghdr);
  /* the same bytes again, noting where each record (and its group header) starts */
  {
    size_t i = 0;
    int64_t prev = 0;
    size_t gleft = 0;
    while (i < n) {
      if (!gleft) {
        size_t j = i;
        while (j < n && j - i < 4096 && rec[j].key >> 20 == rec[i].key >> 20) j++;
        off[i] = hdr + ref.len;
        put(&ref, "\x93", 1);
        put_v(&ref, 0, (int64_t)(rec[i].key >> 40), 0);
        put_v(&ref, 0, (int64_t)((rec[i].key >> 20) & 0xFFFFF), 0);
        put_v(&ref, 0, (int64_t)(j - i), 0);
        ghdr[i] = hdr + ref.len;
        gleft = j - i;
        prev = 0;
      } else {
        off[i] = ghdr[i] = hdr + ref.len;
      }
      int64_t next = (int64_t)(rec[i].key & 0xFFFFF);
      put_v(&ref, 0, next - prev, 1);
      prev = next;
      put_v(&ref, 0, rec[i].day, 1);
      put_v(&ref, 0, rec[i].win, 0);
      put_v(&ref, 0, (int64_t)rec[i].n, 0);
      gleft--, i++;
    }
  }
  cr_assert_eq(ref.len, body.len - hdr);
  cr_assert(memcmp(ref.b, body.b + hdr, ref.len) == 0);
  size_t at = n * 3 / 4;
  while (off[at] == ghdr[at]) at++; /* a record that opens a group */
  struct {
    size_t len;
    const char *want;
  } cases[] = {
      {off[at], "more than the file holds (the body ends after record"},
      {ghdr[at], "is malformed (the body ends inside it)"},
      {ghdr[at] + 1, "is malformed (the body ends inside it)"},
  };
  for (int c = 0; c < 3; c++) {
    bytes cut = {body.b, cases[c].len, body.cap};
    const char *p = tpath("body-cut.rtc");
    write_file(p, &cut);
    size_t got = stream_until_failure(p, msg);
    cr_assert_leq(got, at);
    cr_assert(strstr(msg, cases[c].want), "case %d: %s", c, msg);
    char where[96];
    if (c == 0) snprintf(where, sizeof where, "record %zu, at byte %zu)", at, off[at]);
    else snprintf(where, sizeof where, "record %zu at byte %zu of the decompressed body", at, off[at]);
    cr_assert(strstr(msg, where), "case %d: wanted \"%s\" in: %s", c, where, msg);
  }
  free(off);
  free(ghdr);
  free(ref.b);
  free(body.b);
  free(rec);
}

Test(counts_v2, bad_records_and_groups_name_their_number_and_byte_offset) {
  make_ids();
  size_t n = 30000, bad = 20000;
  rt_count *rec = malloc(n * sizeof *rec);
  for (size_t i = 0; i < n; i++) { /* pairs of 10 records: record 20000 opens a group */
    rec[i].key = (uint64_t)(i / 10) << 40 | 5ull << 20 | (i % 10);
    rec[i].day = 20000;
    rec[i].win = 0;
    rec[i].n = 1 + i;
  }
  struct {
    const char *bytes;
    size_t len;
    const char *want;
  } kinds[] = {
      {"\x93\x01\x02\x01\x00\xa1x\x00\x01", 9, "has a non-integer field"},                 /* a string for day */
      {"\x92\x01\x02\x00\x00\x00\x01", 7, "is malformed"},                                  /* [c1, c2] */
      {"\x93\x01\x02\x00\x00\x00\x00\x01", 8, "is malformed (a group of 0 records)"},       /* n = 0 */
      {"\x93\xce\x00\x01\x11\x71\x02\x01\x00\x00\x00\x01", 12, "names a cluster not in"},  /* c1 = 70001 */
      {"\x93\x01\x02\x01\xce\x00\x01\x11\x71\x00\x00\x01", 12, "names a cluster not in"},  /* next = 70001 */
      {"\x93\x01\x02\x01\xff\x00\x00\x01", 8, "names a cluster not in"},                  /* next = -1 */
      {"\x93\x01\x02\x01\x00\xce\x80\x00\x00\x00\x00\x01", 12, "has a day or window out of range"},
      {"\x93\x01\x02\x01\x00\x00\xcf\x00\x00\x00\x01\x00\x00\x00\x00\x01", 16, "has a day or window out of range"},
      {"\x93\x01\x02\x01\x00\x00\x00\xd0\xff", 9, "has a non-integer field"}, /* count = -1 */
  };
  for (size_t kind = 0; kind < sizeof kinds / sizeof *kinds; kind++) {
    bytes body = {0};
    put_header(&body, 2, ids, NCL, n, 0, 3);
    put_v2_records(&body, rec, bad, 0, 4096, (int)(kind % 2));
    size_t at = body.len;
    put(&body, kinds[kind].bytes, kinds[kind].len);
    put_v2_records(&body, rec + bad + 1, n - bad - 1, 0, 4096, 0);
    const char *p = tpath("bad.rtc");
    write_file(p, &body);
    free(body.b);
    char msg[RT_ERR_MSG_MAX], where[96];
    size_t got = stream_until_failure(p, msg);
    cr_assert_leq(got, bad);
    cr_assert(strstr(msg, kinds[kind].want), "kind %zu: %s", kind, msg);
    snprintf(where, sizeof where, "record %zu at byte %zu of the decompressed body", bad, at);
    cr_assert(strstr(msg, where), "kind %zu: wanted \"%s\" in: %s", kind, where, msg);
  }
  free(rec);
}

Test(counts_v2, unknown_or_missing_version_is_refused_at_open) {
  make_ids();
  unsigned versions[] = {3, 0, 1000};
  for (int k = 0; k < 3; k++) {
    bytes body = {0};
    put_header(&body, versions[k], ids, 5, 0, 0, 3);
    const char *p = tpath("future.rtc");
    write_file(p, &body);
    free(body.b);
    char msg[RT_ERR_MSG_MAX], want[64];
    cr_assert_eq(stream_until_failure(p, msg), 0);
    snprintf(want, sizeof want, "version %u is not supported", versions[k]);
    cr_assert(strstr(msg, want), "%s", msg);
    cr_assert(strstr(msg, "upgrade ragtide"), "%s", msg);
  }
  /* no version at all */
  bytes body = {0};
  msgpack_packer pk = packer(&body);
  msgpack_pack_map(&pk, 2);
  msgpack_pack_str_with_body(&pk, "clusters", 8);
  msgpack_pack_array(&pk, 0);
  msgpack_pack_str_with_body(&pk, "records", 7);
  msgpack_pack_uint64(&pk, 0);
  const char *p = tpath("noversion.rtc");
  write_file(p, &body);
  free(body.b);
  char msg[RT_ERR_MSG_MAX];
  stream_until_failure(p, msg);
  cr_assert(strstr(msg, "no counts file version"), "%s", msg);
}
