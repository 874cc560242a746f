/* test_counts_stream.c — the streaming counts reader: it hands out exactly
 * what rt_counts_read returns (and what rt_counts_write was given) in chunks
 * of any size; records cut by its decompression window at every offset,
 * through the fast path and through msgpack-c, decode whole; a truncated
 * file, a record count that disagrees with the header and a bad record fail
 * with the file's name (and the record's number and byte offset). */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "base/util.h"
#include "counts_testlib.h"
#include "format/counts.h"

static void setup(void) { tl_setup("/tmp/rt-test-cstream-XXXXXX", 0x9E3779B97F4A7C15ULL); }

/* Ascending ids whose msgpack encodings take 1, 3, 5 bytes (fixint, uint16, uint32). */
#define NCL 3000
static uint32_t ids[NCL];
static void make_ids(void) {
  for (uint32_t i = 0; i < NCL; i++)
    ids[i] = i < 50 ? i : i < 150 ? 100 + 2 * i : i < 1000 ? 300 + 60 * i : 70000 + 1000003u * i;
}

/* n sorted, unique records with values of every msgpack width: days from
 * -100000 to 100000 (negative fixint, int8/16/32, uint), counts up to 2^64-1. */
static size_t make_records(rt_count *r, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint64_t c1 = next_rand() % NCL, c2 = next_rand() % NCL, c3 = next_rand() % NCL;
    int64_t span = (int64_t[]){40, 200, 40000, 200000}[next_rand() % 4];
    r[i].key = c1 << 40 | c2 << 20 | c3;
    r[i].day = (int32_t)((int64_t)(next_rand() % (uint64_t)span) - span / 2);
    r[i].win = (uint32_t)(next_rand() % 2);
    r[i].n = 1 + (next_rand() >> (next_rand() % 64));
    if (r[i].n == 0) r[i].n = UINT64_MAX;
  }
  return sort_unique(r, n);
}

TestSuite(counts_stream, .init = setup, .fini = tl_teardown);

Test(counts_stream, chunks_of_any_size_equal_read_and_what_was_written) {
  make_ids();
  size_t cap = 300000;
  rt_count *rec = malloc(cap * sizeof *rec);
  size_t n = make_records(rec, cap);
  cr_assert_gt(n, 299000);
  rt_counts_meta meta = {ids, NCL, 0xABCDEF0123456789ull, -86400, 1772755200, "stream-test"};
  rt_err err = {0};
  const char *p = tpath("big.rtc");
  cr_assert_eq(rt_counts_write(p, &meta, rec, n, &err), RT_OK, "%s", err.msg);

  /* the header, before any record */
  rt_counts_reader *r;
  cr_assert_eq(rt_counts_reader_open(p, &r, &err), RT_OK, "%s", err.msg);
  uint32_t ncl = 0;
  const uint32_t *rid = rt_counts_reader_ids(r, &ncl);
  cr_assert_eq(ncl, NCL);
  cr_assert_arr_eq(rid, ids, sizeof ids);
  int64_t ws = 1, we = 1;
  rt_counts_reader_window(r, &ws, &we);
  cr_assert_eq(ws, -86400);
  cr_assert_eq(we, 1772755200);
  cr_assert_eq(rt_counts_reader_records(r), n);
  rt_counts_reader_close(r);

  uint32_t *rids, rn;
  rt_count *all;
  size_t m;
  ws = we = 0;
  cr_assert_eq(rt_counts_read(p, &rids, &rn, &all, &m, &ws, &we, &err), RT_OK, "%s", err.msg);
  cr_assert_eq(m, n);
  cr_assert_eq(rn, NCL);
  cr_assert_arr_eq(rids, ids, sizeof ids);
  cr_assert_eq(ws, -86400);
  cr_assert_eq(we, 1772755200);
  assert_same(all, rec, n, "rt_counts_read");

  size_t maxes[] = {1, 7, 4096, 1000000};
  for (size_t k = 0; k < sizeof maxes / sizeof *maxes; k++) {
    char what[32];
    snprintf(what, sizeof what, "max %zu", maxes[k]);
    assert_streams_as(p, maxes[k], all, n, what);
  }
  free(rids);
  free(all);
  free(rec);
}

Test(counts_stream, empty_file_ends_at_once) {
  make_ids();
  rt_counts_meta meta = {ids, 5, 1, 0, 86400, "empty"};
  rt_err err = {0};
  const char *p = tpath("empty.rtc");
  cr_assert_eq(rt_counts_write(p, &meta, NULL, 0, &err), RT_OK, "%s", err.msg);
  size_t n;
  rt_count *s = stream_all(p, 3, &n);
  cr_assert_eq(n, 0);
  free(s);
}

/* ---- hand-made files: any msgpack encoding, any record length ------------ */

/* Record style: 0 as the writer packs it (smallest encoding); 1 every field
 * at 9 bytes (still the fast path); 2 in an array16 (only msgpack-c). */
static void put_record(bytes *o, const rt_count *c, int style) {
  uint64_t f[6] = {ids[c->key >> 40], ids[(c->key >> 20) & 0xFFFFF], ids[c->key & 0xFFFFF], (uint64_t)(int64_t)c->day,
                   c->win, c->n};
  if (style == 2) put(o, "\xdc\x00\x06", 3);
  else put(o, "\x96", 1);
  for (int i = 0; i < 6; i++) {
    int neg = i == 3 && c->day < 0;
    if (style == 0) {
      if (neg) msgpack_pack_int32(&(msgpack_packer){o, sb_write}, c->day);
      else msgpack_pack_uint64(&(msgpack_packer){o, sb_write}, f[i]);
    } else {
      put_int(o, neg ? 0xd3 : 0xcf, f[i]);
    }
  }
}

static size_t random_sorted(rt_count *r, size_t n, uint32_t ncl) {
  for (size_t i = 0; i < n; i++) {
    r[i].key = (next_rand() % ncl) << 40 | (next_rand() % ncl) << 20 | (next_rand() % ncl);
    r[i].day = (int32_t)(next_rand() % 400000) - 200000;
    r[i].win = (uint32_t)(next_rand() % 2);
    r[i].n = 1 + next_rand() % 1000;
  }
  qsort(r, n, sizeof *r, cmp_count); /* (uniqueness does not matter to a reader) */
  return n;
}

/* Records of one fixed length L, after headers one byte longer each time
 * (run_id of 40 + s bytes, s < L): whatever the reader's window, its edges
 * cut a record at each of the L offsets in one of the files. */
static void straddle_every_offset(int style, size_t L) {
  make_ids();
  size_t n = (3u << 20) / L; /* 3 MiB of records: several windows */
  rt_count *rec = malloc(n * sizeof *rec);
  random_sorted(rec, n, 200);
  for (size_t s = 0; s < L; s++) {
    bytes body = {0};
    put_header(&body, 1, ids, 200, n, 0, 40 + s);
    size_t at = body.len;
    for (size_t i = 0; i < n; i++) put_record(&body, &rec[i], style);
    cr_assert_eq(body.len - at, n * L, "every record is %zu bytes", L);
    const char *p = tpath("straddle.rtc");
    write_file(p, &body);
    free(body.b);
    char what[64];
    snprintf(what, sizeof what, "style %d, header shifted by %zu", style, s);
    assert_streams_as(p, s % 2 ? 4096 : 7, rec, n, what);
  }
  free(rec);
}

Test(counts_stream, fast_path_records_cut_at_every_offset) { straddle_every_offset(1, 55); }

Test(counts_stream, msgpack_c_records_cut_at_every_offset) { straddle_every_offset(2, 57); }

Test(counts_stream, mixed_encodings_and_lengths_decode_alike) {
  make_ids();
  size_t n = 200000;
  rt_count *rec = malloc(n * sizeof *rec);
  random_sorted(rec, n, NCL);
  bytes body = {0};
  put_header(&body, 1, ids, NCL, n, 0, 12);
  for (size_t i = 0; i < n; i++) put_record(&body, &rec[i], (int)(next_rand() % 3));
  const char *p = tpath("mixed.rtc");
  write_file(p, &body);
  free(body.b);
  size_t maxes[] = {1, 7, 4096};
  for (size_t k = 0; k < 3; k++) assert_streams_as(p, maxes[k], rec, n, "mixed");
  uint32_t *rids, rn;
  rt_count *all;
  size_t m;
  rt_err err = {0};
  cr_assert_eq(rt_counts_read(p, &rids, &rn, &all, &m, NULL, NULL, &err), RT_OK, "%s", err.msg);
  cr_assert_eq(m, n);
  assert_same(all, rec, n, "rt_counts_read");
  free(rids);
  free(all);
  free(rec);
}

/* ---- failures ------------------------------------------------------------- */

Test(counts_stream, truncated_file_fails_naming_the_file) {
  make_ids();
  size_t cap = 100000;
  rt_count *rec = malloc(cap * sizeof *rec);
  size_t n = make_records(rec, cap);
  rt_counts_meta meta = {ids, NCL, 1, 0, 86400, "trunc"};
  char *data;
  size_t len;
  write_and_read_back(tpath("full.rtc"), &meta, rec, n, &data, &len);
  size_t cuts[] = {len - 1, len - 4, len - 5, len / 2, 1000, 9, 8, 5};
  for (size_t k = 0; k < sizeof cuts / sizeof *cuts; k++) {
    const char *p = tpath("cut.rtc");
    write_prefix(p, data, cuts[k]);
    char msg[RT_ERR_MSG_MAX];
    size_t got = stream_until_failure(p, msg);
    cr_assert_lt(got, k < 3 ? n + 1 : n, "cut at %zu", cuts[k]);
    if (cuts[k] < 8) cr_assert(strstr(msg, "bad magic"), "%s", msg);
    else cr_assert(strstr(msg, "corrupt or truncated zstd frame"), "cut at %zu: %s", cuts[k], msg);
  }
  free(data);
  free(rec);
}

/* The writer refuses what readers would refuse or misread: records out of
 * order or repeated, and a body that disagrees with the header's count;
 * either way nothing is left at the path. */
Test(counts_stream, writer_refuses_unsorted_records_and_a_wrong_count) {
  make_ids();
  const uint64_t k = (uint64_t)1 << 40 | (uint64_t)2 << 20 | 3;
  rt_count rec[3] = {{k, 20000, 0, 1}, {k, 20000, 1, 1}, {k, 20000, 1, 5}};
  rt_counts_meta meta = {ids, NCL, 1, 0, 86400, "order"};
  rt_err err = {0};
  const char *p = tpath("order.rtc");
  cr_assert_eq(rt_counts_write(p, &meta, rec, 3, &err), RT_ERR_INTERNAL, "a repeated record is refused");
  cr_assert(strstr(err.msg, "record 2") && strstr(err.msg, "does not sort after"), "%s", err.msg);
  cr_assert_neq(access(p, F_OK), 0, "no file left");
  rt_count swapped[2] = {rec[1], rec[0]};
  cr_assert_eq(rt_counts_write(p, &meta, swapped, 2, &err), RT_ERR_INTERNAL, "records out of order are refused");
  cr_assert(strstr(err.msg, "record 1"), "%s", err.msg);
  rt_counts_writer *w;
  cr_assert_eq(rt_counts_writer_open(p, &meta, 3, &w, &err), RT_OK, "%s", err.msg);
  cr_assert_eq(rt_counts_writer_add(w, rec, 2, &err), RT_OK, "%s", err.msg);
  cr_assert_eq(rt_counts_writer_finish(w, &err), RT_ERR_INTERNAL, "2 records for a header of 3");
  cr_assert(strstr(err.msg, "2 records written, but the header announces 3"), "%s", err.msg);
  cr_assert_neq(access(p, F_OK), 0, "no file left");
  cr_assert_eq(rt_counts_write(p, &meta, rec, 2, &err), RT_OK, "%s", err.msg);
}

Test(counts_stream, record_count_disagreeing_with_the_header_fails) {
  make_ids();
  size_t cap = 50000;
  rt_count *rec = malloc(cap * sizeof *rec);
  size_t n = make_records(rec, cap);
  rt_counts_meta meta = {ids, NCL, 1, 0, 86400, "count"};
  rt_err err = {0};
  char msg[RT_ERR_MSG_MAX];
  for (int d = -1; d <= 1; d += 2) { /* header says one more / one fewer than the body holds */
    const char *p = tpath(d > 0 ? "more.rtc" : "fewer.rtc");
    cr_assert_eq(rt_counts_write(p, &meta, rec, n, &err), RT_OK, "%s", err.msg);
    relabel_records(p, n + d);
    size_t got = stream_until_failure(p, msg);
    cr_assert(strstr(msg, "header claims"), "%s", msg);
    if (d > 0) {
      cr_assert_eq(got, n, "every record the body holds comes out before the error");
      cr_assert(strstr(msg, "more than the file holds"), "%s", msg);
    } else {
      cr_assert_eq(got, n - 1, "the header's records come out before the error");
      cr_assert(strstr(msg, "the body holds more"), "%s", msg);
    }
  }
  free(rec);
}

Test(counts_stream, bad_records_name_their_number_and_byte_offset) {
  make_ids();
  size_t n = 60000, bad = 50000; /* 50000 records of 55 bytes: well past the first window */
  rt_count *rec = malloc(n * sizeof *rec);
  random_sorted(rec, n, 100);
  const char *what[] = {"has a non-integer field", "is malformed", "names a cluster not in the file's catalog"};
  for (int kind = 0; kind < 3; kind++) {
    bytes body = {0};
    put_header(&body, 1, ids, 100, n, 0, 3);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
      if (i == bad) {
        at = body.len;
        if (kind == 0) put(&body, "\x96\x01\x02\x03\xa1x\x00\x01", 8); /* a string for `day` */
        else if (kind == 1) put(&body, "\x95\x01\x02\x03\x04\x05", 6); /* five fields */
        else put(&body, "\x96\xce\xff\xff\xff\xf0\x00\x00\x00\x01\x01", 11); /* c1 not in the file */
      } else {
        put_record(&body, &rec[i], 1);
      }
    }
    const char *p = tpath("bad.rtc");
    write_file(p, &body);
    free(body.b);
    char msg[RT_ERR_MSG_MAX];
    size_t got = stream_until_failure(p, msg);
    cr_assert_leq(got, bad);
    cr_assert(strstr(msg, what[kind]), "%s", msg);
    char where[96];
    if (kind < 2) snprintf(where, sizeof where, "record %zu at byte %zu of the decompressed body", bad, at);
    else snprintf(where, sizeof where, "record %zu names", bad);
    cr_assert(strstr(msg, where), "wanted \"%s\" in: %s", where, msg);
  }
  free(rec);
}

/* A record too long for the fast path's margin (a 40 KB string for `day`)
 * across the edge of the reader's first window (1 MiB of body, see
 * counts.h): msgpack-c gets the whole record after a refill, so the error is
 * the precise one, not "malformed". */
Test(counts_stream, long_bad_record_across_the_window_is_decoded_whole) {
  make_ids();
  size_t n = 40000;
  rt_count *rec = malloc(n * sizeof *rec);
  random_sorted(rec, n, 100);
  bytes body = {0};
  put_header(&body, 1, ids, 100, n, 0, 3);
  size_t i = 0, at;
  while (body.len < (1u << 20) - 20000) put_record(&body, &rec[i++], 1);
  at = body.len;
  static char str[40000];
  memset(str, 's', sizeof str);
  put(&body, "\x96\x01\x02\x03\xdb\x00\x00\x9c\x40", 9); /* str32 of 40000 bytes */
  put(&body, str, sizeof str);
  put(&body, "\x00\x01", 2);
  size_t bad = i++;
  while (i < n) put_record(&body, &rec[i++], 1);
  const char *p = tpath("long.rtc");
  write_file(p, &body);
  free(body.b);
  char msg[RT_ERR_MSG_MAX], where[128];
  cr_assert_eq(stream_until_failure(p, msg), bad / 1000 * 1000);
  snprintf(where, sizeof where, "record %zu at byte %zu of the decompressed body has a non-integer field", bad, at);
  cr_assert(strstr(msg, where), "wanted \"%s\" in: %s", where, msg);
  free(rec);
}
