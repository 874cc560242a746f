/* test_events.c — event shard reader/writer (src/format/events.c) and the
 * ragtide-gen-logs tool: exact round trips in every format, multi-frame zstd,
 * every validation error with its byte offset or line, bounded reads, and the
 * generator's determinism and catalog. Data is generated here, in a temp dir. */
#include "base/util.h"
#include "format/catalog.h"
#include "format/events.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

static char g_dir[256];

static void setup(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/rt_test_events.XXXXXX");
  cr_assert_not_null(mkdtemp(g_dir), "mkdtemp failed");
}

static void teardown(void) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
}

TestSuite(events, .init = setup, .fini = teardown);

/* ---- helpers -------------------------------------------------------------- */

static const char *tpath(const char *name) {
  static char buf[4][512];
  static int i;
  i = (i + 1) % 4;
  snprintf(buf[i], sizeof buf[i], "%s/%s", g_dir, name);
  return buf[i];
}

static void put_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f, "cannot write %s", path);
  cr_assert_eq(fwrite(data, 1, len, f), len);
  fclose(f);
}

static char *get_file(const char *path, size_t *len) {
  char *data;
  rt_err err = {0};
  cr_assert_eq(rt_read_file(path, &data, len, &err), RT_OK, "%s", err.msg);
  return data;
}

static void write_events(const char *path, const rt_event *ev, size_t n) {
  rt_err err = {0};
  rt_event_writer *w;
  cr_assert_eq(rt_events_create(path, 3, &w, &err), RT_OK, "%s", err.msg);
  /* in uneven pieces, to exercise the staging buffer */
  size_t done = 0, step = 1;
  while (done < n) {
    size_t k = n - done < step ? n - done : step;
    cr_assert_eq(rt_events_write(w, ev + done, k, &err), RT_OK, "%s", err.msg);
    done += k;
    step = step * 3 + 1;
  }
  cr_assert_eq(rt_events_finish(w, &err), RT_OK, "%s", err.msg);
}

/* Read a whole shard `max` events at a time. Returns rt_events_read's last
 * result (0 at a clean end, -1 on error with err filled). */
static long read_all(const char *path, size_t max, rt_event **out, size_t *n, rt_err *err) {
  rt_event_reader *r;
  *out = NULL;
  *n = 0;
  if (rt_events_open(path, &r, err) != RT_OK) return -1;
  size_t cap = 1024;
  rt_event *v = rt_xmalloc(cap * sizeof *v);
  long k;
  for (;;) {
    if (*n + max > cap) {
      while (*n + max > cap) cap *= 2;
      v = rt_xrealloc(v, cap * sizeof *v);
    }
    k = rt_events_read(r, v + *n, max, err);
    if (k <= 0) break;
    cr_assert_leq((size_t)k, max);
    *n += (size_t)k;
  }
  rt_events_close(r);
  *out = v;
  return k;
}

static void assert_same(const rt_event *a, const rt_event *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    cr_assert_eq(a[i].user, b[i].user, "event %zu: user %llu != %llu", i, (unsigned long long)a[i].user,
                 (unsigned long long)b[i].user);
    cr_assert_eq(a[i].ts, b[i].ts, "event %zu: ts %lld != %lld", i, (long long)a[i].ts, (long long)b[i].ts);
    cr_assert_eq(a[i].cluster, b[i].cluster, "event %zu: cluster", i);
    if (isnan(a[i].engagement)) cr_assert(isnan(b[i].engagement), "event %zu: NaN lost", i);
    else cr_assert_eq(memcmp(&a[i].engagement, &b[i].engagement, sizeof(float)), 0,
                      "event %zu: engagement %.9g != %.9g", i, a[i].engagement, b[i].engagement);
  }
}

static const rt_event EDGE[] = {
    {0, 0, 0, 0.0f},
    {UINT64_MAX, INT64_MAX, UINT32_MAX, 1.0f},
    {(1ULL << 63) + 5, INT64_MIN, 4000000000u, 0.1f},
    {18446744073709551557ULL, -1, 1, 1e-7f},
    {42, -1767225600, 65536, -2.5f},
    {7, 1767225600, 1000, 0.333333343f},
    {127, 128, 255, 3.40282347e38f},
    {128, -32, 256, 1.17549435e-38f},
    {65535, -33, 65535, 0.5f},
    {4294967296ULL, 4294967296LL, 70000, 123456.789f},
};
#define NEDGE (sizeof EDGE / sizeof EDGE[0])

static rt_event *many_events(size_t n, uint64_t seed) {
  rt_event *v = rt_xmalloc(n * sizeof *v);
  for (size_t i = 0; i < n; i++) {
    uint64_t h = rt_mix64(seed + i);
    v[i].user = h >> (h & 63);
    v[i].ts = (int64_t)(rt_mix64(h) >> 20) - (1LL << 43);
    v[i].cluster = (uint32_t)(h >> 7) >> (h & 31);
    v[i].engagement = (float)(h & 0xffff) / 997.0f;
  }
  return v;
}

/* A raw msgpack stream built by the test, record by record. */
typedef struct {
  msgpack_sbuffer sb;
  msgpack_packer pk;
} mp;

static void mp_init(mp *m) {
  msgpack_sbuffer_init(&m->sb);
  msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void mp_good(mp *m, uint64_t user, int64_t ts, uint32_t cluster, float eng) {
  msgpack_pack_array(&m->pk, 4);
  msgpack_pack_uint64(&m->pk, user);
  msgpack_pack_int64(&m->pk, ts);
  msgpack_pack_uint32(&m->pk, cluster);
  msgpack_pack_float(&m->pk, eng);
}

/* Expect reading `path` to fail with RT_ERR_INPUT and a message holding every
 * given substring; returns how many events came before the failing call. */
static void expect_error(const char *path, size_t max, const char *sub1, const char *sub2) {
  rt_event *v;
  size_t n;
  rt_err err = {0};
  long k = read_all(path, max, &v, &n, &err);
  free(v);
  cr_assert_eq(k, -1, "%s: expected an error, read %zu events", path, n);
  cr_assert_eq(err.code, RT_ERR_INPUT, "code %d: %s", err.code, err.msg);
  cr_assert_not_null(strstr(err.msg, path), "message does not name the file: %s", err.msg);
  cr_assert_not_null(strstr(err.msg, sub1), "message lacks \"%s\": %s", sub1, err.msg);
  if (sub2) cr_assert_not_null(strstr(err.msg, sub2), "message lacks \"%s\": %s", sub2, err.msg);
}

/* ---- format detection ---------------------------------------------------- */

Test(events, format_of_path) {
  cr_assert_eq(rt_events_format_of("a/b/part-0001.msgpack.zst"), RT_EVFMT_MSGPACK_ZST);
  cr_assert_eq(rt_events_format_of("x.msgpack"), RT_EVFMT_MSGPACK);
  cr_assert_eq(rt_events_format_of("x.tsv"), RT_EVFMT_TSV);
  cr_assert_eq(rt_events_format_of("x.tsv.zst"), RT_EVFMT_TSV_ZST);
  cr_assert_eq(rt_events_format_of("x.zst"), -1);
  cr_assert_eq(rt_events_format_of("x.csv"), -1);
  cr_assert_eq(rt_events_format_of("msgpack"), -1);
}

/* ---- round trips ---------------------------------------------------------- */

static void roundtrip(const char *name) {
  const char *p = tpath(name);
  write_events(p, EDGE, NEDGE);
  size_t maxes[] = {1, 3, 1000};
  for (size_t m = 0; m < 3; m++) {
    rt_event *v;
    size_t n;
    rt_err err = {0};
    cr_assert_eq(read_all(p, maxes[m], &v, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, NEDGE, "%s: read %zu events, wrote %zu", name, n, NEDGE);
    assert_same(EDGE, v, n);
    free(v);
  }
  /* many events: records cross the reader's buffer boundary many times */
  size_t big = 60000;
  rt_event *ev = many_events(big, 99);
  write_events(p, ev, big);
  rt_event *v;
  size_t n;
  rt_err err = {0};
  cr_assert_eq(read_all(p, 777, &v, &n, &err), 0, "%s", err.msg);
  cr_assert_eq(n, big);
  assert_same(ev, v, n);
  free(v);
  free(ev);
  /* nothing but the shard is left behind */
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", p, (long)getpid());
  cr_assert_neq(access(tmp, F_OK), 0, "temporary file %s left behind", tmp);
}

Test(events, roundtrip_msgpack_zst) { roundtrip("a.msgpack.zst"); }
Test(events, roundtrip_msgpack) { roundtrip("a.msgpack"); }
Test(events, roundtrip_tsv) { roundtrip("a.tsv"); }
Test(events, roundtrip_tsv_zst) { roundtrip("a.tsv.zst"); }

Test(events, nan_engagement_passes_through) {
  rt_event e[2] = {{1, 2, 3, NAN}, {4, 5, 6, 0.25f}};
  const char *names[] = {"n.msgpack.zst", "n.msgpack", "n.tsv", "n.tsv.zst"};
  for (int i = 0; i < 4; i++) {
    write_events(tpath(names[i]), e, 2);
    rt_event *v;
    size_t n;
    rt_err err = {0};
    cr_assert_eq(read_all(tpath(names[i]), 10, &v, &n, &err), 0, "%s: %s", names[i], err.msg);
    cr_assert_eq(n, 2);
    cr_assert(isnan(v[0].engagement), "%s: NaN became %g", names[i], v[0].engagement);
    cr_assert_eq(v[1].engagement, 0.25f);
    free(v);
  }
}

Test(events, tsv_exact_text) {
  rt_event e[3] = {{18446744073709551615ULL, -5, 4294967295u, 0.5f}, {1, 0, 2, 0.1f}, {3, 4, 5, 1.0f}};
  write_events(tpath("t.tsv"), e, 3);
  size_t len;
  char *text = get_file(tpath("t.tsv"), &len);
  cr_assert_str_eq(text, "18446744073709551615\t-5\t4294967295\t0.5\n1\t0\t2\t0.1\n3\t4\t5\t1\n");
  free(text);
}

Test(events, empty_files_are_empty_shards) {
  const char *names[] = {"e.msgpack.zst", "e.msgpack", "e.tsv", "e.tsv.zst"};
  for (int i = 0; i < 4; i++) {
    put_file(tpath(names[i]), "", 0);
    rt_event *v;
    size_t n;
    rt_err err = {0};
    cr_assert_eq(read_all(tpath(names[i]), 10, &v, &n, &err), 0, "%s: %s", names[i], err.msg);
    cr_assert_eq(n, 0);
    free(v);
    /* a writer with no events also makes a valid empty shard */
    write_events(tpath(names[i]), NULL, 0);
    cr_assert_eq(read_all(tpath(names[i]), 10, &v, &n, &err), 0, "%s: %s", names[i], err.msg);
    cr_assert_eq(n, 0);
    free(v);
  }
}

Test(events, tsv_blank_lines_crlf_and_no_final_newline) {
  const char *text = "\n1\t2\t3\t0.5\r\n\n4\t-5\t6\t7\n8\t9\t10\t1e-3";
  put_file(tpath("b.tsv"), text, strlen(text));
  rt_event *v;
  size_t n;
  rt_err err = {0};
  cr_assert_eq(read_all(tpath("b.tsv"), 2, &v, &n, &err), 0, "%s", err.msg);
  cr_assert_eq(n, 3);
  rt_event want[3] = {{1, 2, 3, 0.5f}, {4, -5, 6, 7.0f}, {8, 9, 10, 1e-3f}};
  assert_same(want, v, 3);
  free(v);
}

Test(events, msgpack_accepts_int_and_float64_engagement) {
  mp m;
  mp_init(&m);
  msgpack_pack_array(&m.pk, 4);
  msgpack_pack_uint64(&m.pk, 1);
  msgpack_pack_int64(&m.pk, -3);
  msgpack_pack_uint32(&m.pk, 9);
  msgpack_pack_int(&m.pk, 1); /* integer engagement */
  msgpack_pack_array(&m.pk, 4);
  msgpack_pack_int8(&m.pk, 2); /* a non-negative value in a signed encoding */
  msgpack_pack_uint64(&m.pk, 5);
  msgpack_pack_uint8(&m.pk, 9);
  msgpack_pack_double(&m.pk, 0.75);
  msgpack_pack_array(&m.pk, 4);
  msgpack_pack_uint64(&m.pk, 3);
  msgpack_pack_int64(&m.pk, 0);
  msgpack_pack_uint32(&m.pk, 9);
  msgpack_pack_int(&m.pk, -2);
  put_file(tpath("i.msgpack"), m.sb.data, m.sb.size);
  msgpack_sbuffer_destroy(&m.sb);
  rt_event *v;
  size_t n;
  rt_err err = {0};
  cr_assert_eq(read_all(tpath("i.msgpack"), 10, &v, &n, &err), 0, "%s", err.msg);
  cr_assert_eq(n, 3);
  rt_event want[3] = {{1, -3, 9, 1.0f}, {2, 5, 9, 0.75f}, {3, 0, 9, -2.0f}};
  assert_same(want, v, 3);
  free(v);
}

/* ---- zstd frames ---------------------------------------------------------- */

static void *zcompress(const void *src, size_t n, size_t *out_len) {
  size_t cap = ZSTD_compressBound(n);
  void *dst = rt_xmalloc(cap);
  size_t k = ZSTD_compress(dst, cap, src, n, 3);
  cr_assert(!ZSTD_isError(k));
  *out_len = k;
  return dst;
}

static void multi_frame(const char *plain_name, const char *zst_name) {
  rt_event *ev = many_events(3000, 5);
  /* three frames of 1000 events, plus an empty frame in the middle */
  char *all = NULL;
  size_t all_len = 0;
  for (int f = 0; f < 4; f++) {
    const rt_event *part = f < 2 ? ev + 1000 * f : ev + 1000 * (f - 1);
    size_t cnt = f == 2 ? 0 : 1000;
    write_events(tpath(plain_name), part, cnt);
    size_t len, zl;
    char *raw = get_file(tpath(plain_name), &len);
    char *z = zcompress(raw, len, &zl);
    all = rt_xrealloc(all, all_len + zl);
    memcpy(all + all_len, z, zl);
    all_len += zl;
    free(raw);
    free(z);
  }
  put_file(tpath(zst_name), all, all_len);
  rt_event *v;
  size_t n;
  rt_err err = {0};
  cr_assert_eq(read_all(tpath(zst_name), 333, &v, &n, &err), 0, "%s", err.msg);
  cr_assert_eq(n, 3000, "read %zu of 3000 events over 4 frames", n);
  assert_same(ev, v, n);
  /* bytes_in reports the whole compressed file */
  rt_event_reader *r;
  cr_assert_eq(rt_events_open(tpath(zst_name), &r, &err), RT_OK);
  while (rt_events_read(r, v, 500, &err) > 0) {
  }
  cr_assert_eq(rt_events_bytes_in(r), all_len);
  rt_events_close(r);
  free(v);
  free(ev);
  free(all);
}

Test(events, multi_frame_msgpack_zst) { multi_frame("f.msgpack", "f.msgpack.zst"); }
Test(events, multi_frame_tsv_zst) { multi_frame("f.tsv", "f.tsv.zst"); }

Test(events, corrupt_zstd_frame) {
  rt_event *ev = many_events(20000, 11);
  write_events(tpath("c.msgpack.zst"), ev, 20000);
  free(ev);
  size_t len;
  char *z = get_file(tpath("c.msgpack.zst"), &len);
  for (size_t i = len / 2; i < len / 2 + 64; i++) z[i] ^= 0x5a;
  put_file(tpath("c.msgpack.zst"), z, len);
  expect_error(tpath("c.msgpack.zst"), 1000, "corrupt zstd data", ": byte ");
  /* not zstd at all */
  put_file(tpath("d.msgpack.zst"), "hello world, not zstd", 21);
  expect_error(tpath("d.msgpack.zst"), 10, ": byte 0: corrupt zstd data", NULL);
  free(z);
}

Test(events, truncated_zstd_frame) {
  rt_event *ev = many_events(5000, 12);
  write_events(tpath("t.msgpack.zst"), ev, 5000);
  free(ev);
  size_t len;
  char *z = get_file(tpath("t.msgpack.zst"), &len);
  put_file(tpath("t.msgpack.zst"), z, len - 2); /* inside the frame checksum */
  expect_error(tpath("t.msgpack.zst"), 100, "truncated zstd frame at end of file", NULL);
  free(z);
}

/* ---- msgpack validation, with exact offsets -------------------------------- */

/* Writes `good` valid records, then the bad bytes, then one more valid record;
 * expects the error at the offset where the bad record starts. */
static void bad_record(const char *name, size_t good, void (*bad)(msgpack_packer *), const char *why) {
  mp m;
  mp_init(&m);
  for (size_t i = 0; i < good; i++) mp_good(&m, i * 1000003, (int64_t)i, (uint32_t)i, 0.5f);
  size_t at = m.sb.size;
  bad(&m.pk);
  mp_good(&m, 1, 2, 3, 0.5f);
  char sub[700];
  snprintf(sub, sizeof sub, "%s: byte %zu: ", tpath(name), at);
  put_file(tpath(name), m.sb.data, m.sb.size);
  expect_error(tpath(name), 64, sub, why);
  /* the same inside a zstd stream: offsets are in the decompressed stream */
  size_t zl;
  void *z = zcompress(m.sb.data, m.sb.size, &zl);
  char zname[128];
  snprintf(zname, sizeof zname, "%s.zst", name);
  put_file(tpath(zname), z, zl);
  snprintf(sub, sizeof sub, "%s: byte %zu: ", tpath(zname), at);
  expect_error(tpath(zname), 64, sub, why);
  free(z);
  msgpack_sbuffer_destroy(&m.sb);
}

static void bad_array3(msgpack_packer *pk) {
  msgpack_pack_array(pk, 3);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_int64(pk, 2);
  msgpack_pack_uint32(pk, 3);
}
static void bad_array5(msgpack_packer *pk) {
  msgpack_pack_array(pk, 5);
  for (int i = 0; i < 5; i++) msgpack_pack_int(pk, i);
}
static void bad_map(msgpack_packer *pk) {
  msgpack_pack_map(pk, 1);
  msgpack_pack_int(pk, 1);
  msgpack_pack_int(pk, 2);
}
static void bad_str(msgpack_packer *pk) {
  msgpack_pack_str(pk, 5);
  msgpack_pack_str_body(pk, "hello", 5);
}
static void bad_user_neg(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_int64(pk, -5);
  msgpack_pack_int64(pk, 2);
  msgpack_pack_uint32(pk, 3);
  msgpack_pack_float(pk, 1);
}
static void bad_user_str(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_str(pk, 2);
  msgpack_pack_str_body(pk, "u1", 2);
  msgpack_pack_int64(pk, 2);
  msgpack_pack_uint32(pk, 3);
  msgpack_pack_float(pk, 1);
}
static void bad_ts_float(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_double(pk, 2.5);
  msgpack_pack_uint32(pk, 3);
  msgpack_pack_float(pk, 1);
}
static void bad_ts_huge(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_uint64(pk, (uint64_t)INT64_MAX + 1);
  msgpack_pack_uint32(pk, 3);
  msgpack_pack_float(pk, 1);
}
static void bad_cluster_big(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_int64(pk, 2);
  msgpack_pack_uint64(pk, 4294967296ULL);
  msgpack_pack_float(pk, 1);
}
static void bad_cluster_neg(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_int64(pk, 2);
  msgpack_pack_int(pk, -1);
  msgpack_pack_float(pk, 1);
}
static void bad_eng_str(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_int64(pk, 2);
  msgpack_pack_uint32(pk, 3);
  msgpack_pack_str(pk, 3);
  msgpack_pack_str_body(pk, "0.5", 3);
}
static void bad_eng_nil(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_int64(pk, 2);
  msgpack_pack_uint32(pk, 3);
  msgpack_pack_nil(pk);
}
static void bad_byte(msgpack_packer *pk) {
  static const char never_used = (char)0xc1;
  pk->callback(pk->data, &never_used, 1);
}

Test(events, record_not_array_of_4) {
  bad_record("a3.msgpack", 3, bad_array3, "record is an array of 3 elements, expected 4");
  bad_record("a5.msgpack", 0, bad_array5, "record is an array of 5 elements");
  bad_record("map.msgpack", 2, bad_map, "record is a map, expected an array of 4");
  bad_record("str.msgpack", 1, bad_str, "record is a string");
}

Test(events, user_not_non_negative_int) {
  bad_record("un.msgpack", 5, bad_user_neg, "user is negative (-5)");
  bad_record("us.msgpack", 5, bad_user_str, "user is a string, expected a non-negative integer");
}

Test(events, ts_not_int) {
  bad_record("tf.msgpack", 2, bad_ts_float, "ts is a float64, expected an integer");
  bad_record("th.msgpack", 2, bad_ts_huge, "ts 9223372036854775808 does not fit");
}

Test(events, cluster_not_uint32) {
  bad_record("cb.msgpack", 7, bad_cluster_big, "cluster 4294967296 does not fit 32 bits");
  bad_record("cn.msgpack", 7, bad_cluster_neg, "cluster is a negative integer");
}

Test(events, engagement_not_number) {
  bad_record("es.msgpack", 1, bad_eng_str, "engagement is a string, expected a number");
  bad_record("en.msgpack", 1, bad_eng_nil, "engagement is nil");
}

Test(events, invalid_msgpack_byte) { bad_record("ib.msgpack", 4, bad_byte, "invalid msgpack (byte 0xc1"); }

Test(events, bad_record_offset_past_first_buffer) {
  /* 40000 good records (~1 MB) so the offset is far beyond one read buffer */
  bad_record("far.msgpack", 40000, bad_ts_float, "ts is a float64");
}

Test(events, truncated_record_at_end) {
  mp m;
  mp_init(&m);
  for (int i = 0; i < 4; i++) mp_good(&m, (uint64_t)i << 40, 1767225600 + i, 77, 0.5f);
  size_t at = m.sb.size;
  mp_good(&m, 5, 6, 7, 0.5f);
  size_t cut = at + 4; /* keep the array header and part of the fields */
  char sub[64];
  snprintf(sub, sizeof sub, ": byte %zu: truncated record at end of stream", at);
  put_file(tpath("tr.msgpack"), m.sb.data, cut);
  expect_error(tpath("tr.msgpack"), 2, sub, "4 bytes");
  size_t zl;
  void *z = zcompress(m.sb.data, cut, &zl);
  put_file(tpath("tr.msgpack.zst"), z, zl);
  expect_error(tpath("tr.msgpack.zst"), 2, sub, NULL);
  free(z);
  msgpack_sbuffer_destroy(&m.sb);
}

Test(events, huge_record_is_rejected_with_bounded_memory) {
  mp m;
  mp_init(&m);
  mp_good(&m, 1, 2, 3, 0.5f);
  size_t at = m.sb.size;
  size_t big = 600 * 1024; /* larger than the reader's buffer */
  char *blob = rt_xcalloc(1, big);
  msgpack_pack_array(&m.pk, 4);
  msgpack_pack_bin(&m.pk, big);
  msgpack_pack_bin_body(&m.pk, blob, big);
  free(blob);
  put_file(tpath("h.msgpack"), m.sb.data, m.sb.size);
  char sub[64];
  snprintf(sub, sizeof sub, ": byte %zu: record longer than", at);
  expect_error(tpath("h.msgpack"), 10, sub, "not an event record");
  msgpack_sbuffer_destroy(&m.sb);
}

Test(events, error_is_sticky) {
  mp m;
  mp_init(&m);
  mp_good(&m, 1, 2, 3, 0.5f);
  bad_eng_nil(&m.pk);
  put_file(tpath("s.msgpack"), m.sb.data, m.sb.size);
  msgpack_sbuffer_destroy(&m.sb);
  rt_event_reader *r;
  rt_err err = {0};
  rt_event ev[4];
  cr_assert_eq(rt_events_open(tpath("s.msgpack"), &r, &err), RT_OK);
  cr_assert_eq(rt_events_read(r, ev, 1, &err), 1);
  cr_assert_eq(rt_events_read(r, ev, 4, &err), -1);
  char first[RT_ERR_MSG_MAX];
  strcpy(first, err.msg);
  memset(&err, 0, sizeof err);
  cr_assert_eq(rt_events_read(r, ev, 4, &err), -1);
  cr_assert_eq(err.code, RT_ERR_INPUT);
  cr_assert_str_eq(err.msg, first);
  rt_events_close(r);
}

/* ---- TSV validation ---------------------------------------------------------- */

/* `where` is ":LINE: what"; the message must hold PATH:LINE: what. */
static void bad_tsv(const char *name, const char *text, const char *where, const char *sub2) {
  char sub[700];
  put_file(tpath(name), text, strlen(text));
  snprintf(sub, sizeof sub, "%s%s", tpath(name), where);
  expect_error(tpath(name), 16, sub, sub2);
  size_t zl;
  void *z = zcompress(text, strlen(text), &zl);
  char zname[128];
  snprintf(zname, sizeof zname, "%s.zst", name);
  put_file(tpath(zname), z, zl);
  snprintf(sub, sizeof sub, "%s%s", tpath(zname), where);
  expect_error(tpath(zname), 16, sub, sub2);
  free(z);
}

Test(events, tsv_errors_name_the_line) {
  bad_tsv("c3.tsv", "1\t2\t3\t0.5\n\n1\t2\t3\n", ":3: expected 4 tab-separated fields", "found 3");
  bad_tsv("c5.tsv", "1\t2\t3\t0.5\t9\n", ":1: expected 4 tab-separated fields", "found 5");
  bad_tsv("u.tsv", "1\t2\t3\t0.5\nabc\t2\t3\t0.5\n", ":2: user \"abc\" is not a non-negative", NULL);
  bad_tsv("un.tsv", "-5\t2\t3\t0.5\n", ":1: user \"-5\"", NULL);
  bad_tsv("uo.tsv", "18446744073709551616\t2\t3\t0.5\n", ":1: user \"18446744073709551616\"", NULL);
  bad_tsv("t.tsv", "1\t2\t3\t0.5\n1\t2\t3\t0.5\n1\t12x\t3\t0.5\n", ":3: ts \"12x\" is not a 64-bit integer",
          NULL);
  bad_tsv("te.tsv", "1\t\t3\t0.5\n", ":1: ts \"\"", NULL);
  bad_tsv("c.tsv", "1\t2\t4294967296\t0.5\n", ":1: cluster \"4294967296\" is not an unsigned 32-bit", NULL);
  bad_tsv("cn.tsv", "1\t2\t-1\t0.5\n", ":1: cluster \"-1\"", NULL);
  bad_tsv("e.tsv", "1\t2\t3\thigh\n", ":1: engagement \"high\" is not a number", NULL);
  bad_tsv("e2.tsv", "1\t2\t3\t0.5x\n", ":1: engagement \"0.5x\"", NULL);
  bad_tsv("e3.tsv", "1\t2\t3\t\n", ":1: engagement \"\"", NULL);
}

Test(events, tsv_error_line_past_first_buffer) {
  size_t n = 30000; /* ~0.8 MB of lines before the bad one */
  rt_event *ev = many_events(n, 3);
  write_events(tpath("far.tsv"), ev, n);
  free(ev);
  FILE *f = fopen(tpath("far.tsv"), "a");
  fputs("1\t2\tthree\t0.5\n", f);
  fclose(f);
  expect_error(tpath("far.tsv"), 1000, ".tsv:30001: cluster \"three\"", NULL);
}

Test(events, tsv_header_line_is_named) {
  const char *text = "user_id\tts\tcluster_id\tengagement\r\n1\t2\t3\t0.5\n";
  put_file(tpath("h.tsv"), text, strlen(text));
  char want[700];
  snprintf(want, sizeof want,
           "%s:1: a header line (\"user_id\\tts\\tcluster_id\\tengagement\"), but shards have none; fix or "
           "regenerate the shard, or set input.on_bad_event = skip to count and skip malformed lines",
           tpath("h.tsv"));
  rt_event_reader *r;
  rt_err err = {0};
  rt_event ev[4];
  cr_assert_eq(rt_events_open(tpath("h.tsv"), &r, &err), RT_OK);
  cr_assert_eq(rt_events_read(r, ev, 4, &err), -1);
  cr_assert_str_eq(err.msg, want);
  rt_events_close(r);
  /* only the first non-blank line can be a header: later, the same line has the wrong type */
  bad_tsv("h2.tsv", "\n1\t2\t3\t0.5\nuser_id\tts\tcluster_id\tengagement\n", ":3: user \"user_id\"", NULL);
  bad_tsv("h3.tsv", "\n\nuser\tts\n", ":3: a header line (\"user\\tts\")", NULL);
}

/* input.on_bad_event = skip: malformed lines are skipped and counted by reason;
 * the events around them come through, and the first skipped line is named. */
static void skip_case(const char *name, int zst) {
  const char *text = "user\tts\tcluster\tengagement\n"   /* 1 header */
                     "1\t100\t3\t0.5\n"                 /* 2 */
                     "\n"                                 /* 3 blank */
                     "1\t101\t3\n"                       /* 4 fields */
                     "x\t102\t3\t0.5\n"                 /* 5 number (not the first line) */
                     "1\t103\t3\t0.5\t1\n"             /* 6 fields */
                     "1\t104\t3\tnan\n"                 /* 7 an event (NaN is the read stage's) */
                     "1\t1e3\t3\t0.5\n"                 /* 8 number */
                     "2\t105\t4\t1\r\n"                /* 9 */
                     "1\t106\t-3\t0.5";                 /* 10 number, no final newline */
  if (zst) {
    size_t zl;
    void *z = zcompress(text, strlen(text), &zl);
    put_file(tpath(name), z, zl);
    free(z);
  } else {
    put_file(tpath(name), text, strlen(text));
  }
  rt_event_reader *r;
  rt_err err = {0};
  cr_assert_eq(rt_events_open(tpath(name), &r, &err), RT_OK, "%s", err.msg);
  rt_events_skip_malformed(r, 1);
  rt_event ev[8];
  size_t n = 0;
  long got;
  while ((got = rt_events_read(r, ev + n, 1, &err)) > 0) n += (size_t)got; /* one at a time: every refill */
  cr_assert_eq(got, 0, "%s", err.msg);
  cr_assert_eq(n, 3);
  cr_assert_eq(ev[0].ts, 100);
  cr_assert(isnan(ev[1].engagement));
  cr_assert_eq(ev[2].user, 2);
  cr_assert_eq(ev[2].cluster, 4);
  const rt_events_skips *sk = rt_events_skipped(r);
  cr_assert_eq(sk->header, 1);
  cr_assert_eq(sk->fields, 2);
  cr_assert_eq(sk->number, 3);
  char want[700];
  snprintf(want, sizeof want, "%s:1: a header line (\"user\\tts\\tcluster\\tengagement\"), but shards have none",
           tpath(name));
  cr_assert_str_eq(sk->first, want);
  rt_events_close(r);
  /* where each event is, counting as the skipping reader counts */
  char where[600];
  cr_assert_eq(rt_events_locate(tpath(name), 0, 1, where, sizeof where), 0);
  snprintf(want, sizeof want, "%s:2", tpath(name));
  cr_assert_str_eq(where, want);
  cr_assert_eq(rt_events_locate(tpath(name), 2, 1, where, sizeof where), 0);
  snprintf(want, sizeof want, "%s:9", tpath(name));
  cr_assert_str_eq(where, want);
  cr_assert_eq(rt_events_locate(tpath(name), 3, 1, where, sizeof where), -1);
  /* without skipping, the header is an error: no event #0 */
  cr_assert_eq(rt_events_locate(tpath(name), 0, 0, where, sizeof where), -1);
}

Test(events, tsv_skip_malformed_counts_by_reason) { skip_case("s.tsv", 0); }
Test(events, tsv_zst_skip_malformed_counts_by_reason) { skip_case("s.tsv.zst", 1); }

Test(events, locate_msgpack_byte_offset) {
  rt_event ev[3] = {{1, 100, 3, 0.5f}, {123456789012ULL, 1767225600, 4000000001u, 1.0f}, {2, 5, 6, 0.25f}};
  const char *names[] = {"l.msgpack", "l.msgpack.zst"};
  for (int k = 0; k < 2; k++) {
    write_events(tpath(names[k]), ev, 3);
    char where[600], want[600];
    cr_assert_eq(rt_events_locate(tpath(names[k]), 0, 0, where, sizeof where), 0);
    snprintf(want, sizeof want, "%s: byte 0", tpath(names[k]));
    cr_assert_str_eq(where, want);
    /* [1, 100, 3, 0.5f]: 1 + 1 + 1 + 1 + 5 bytes */
    cr_assert_eq(rt_events_locate(tpath(names[k]), 1, 0, where, sizeof where), 0);
    snprintf(want, sizeof want, "%s: byte 9", tpath(names[k]));
    cr_assert_str_eq(where, want);
    cr_assert_eq(rt_events_locate(tpath(names[k]), 3, 0, where, sizeof where), -1);
  }
}

Test(events, tsv_overlong_line) {
  size_t big = 300 * 1024;
  char *text = rt_xmalloc(big + 16);
  memset(text, '7', big);
  strcpy(text + big, "\t1\t2\t0.5\n");
  put_file(tpath("long.tsv"), text, strlen(text));
  free(text);
  expect_error(tpath("long.tsv"), 10, ".tsv:1: line longer than", NULL);
}

/* ---- opening and writing ------------------------------------------------------ */

Test(events, missing_unreadable_and_unknown_files) {
  rt_event_reader *r = (rt_event_reader *)1;
  rt_err err = {0};
  cr_assert_eq(rt_events_open(tpath("nope.msgpack.zst"), &r, &err), RT_ERR_INPUT);
  cr_assert_null(r);
  char want[600];
  snprintf(want, sizeof want, "cannot open %s: No such file or directory", tpath("nope.msgpack.zst"));
  cr_assert_str_eq(err.msg, want);
  mkdir(tpath("dir.tsv"), 0755);
  cr_assert_eq(rt_events_open(tpath("dir.tsv"), &r, &err), RT_ERR_INPUT);
  cr_assert_not_null(strstr(err.msg, "Is a directory"), "%s", err.msg);
  put_file(tpath("x.csv"), "1,2,3,4\n", 8);
  cr_assert_eq(rt_events_open(tpath("x.csv"), &r, &err), RT_ERR_INPUT);
  cr_assert_not_null(strstr(err.msg, "unknown shard format"), "%s", err.msg);
  if (geteuid() != 0) { /* root reads anything */
    put_file(tpath("locked.tsv"), "1\t2\t3\t4\n", 8);
    chmod(tpath("locked.tsv"), 0);
    cr_assert_eq(rt_events_open(tpath("locked.tsv"), &r, &err), RT_ERR_INPUT);
    cr_assert_not_null(strstr(err.msg, "Permission denied"), "%s", err.msg);
  }
}

Test(events, writer_errors_and_abort) {
  rt_event_writer *w;
  rt_err err = {0};
  cr_assert_eq(rt_events_create(tpath("x.json"), 3, &w, &err), RT_ERR_USAGE);
  cr_assert_not_null(strstr(err.msg, "unknown shard format"), "%s", err.msg);
  cr_assert_eq(rt_events_create(tpath("x.msgpack.zst"), 0, &w, &err), RT_ERR_USAGE);
  cr_assert_eq(rt_events_create(tpath("no/such/dir/x.tsv"), 3, &w, &err), RT_ERR_OUTPUT);
  cr_assert_not_null(strstr(err.msg, "cannot create"), "%s", err.msg);
  cr_assert_not_null(strstr(err.msg, "no/such/dir/x.tsv.tmp."), "%s", err.msg);
  /* abort leaves nothing behind, not even the temporary file */
  cr_assert_eq(rt_events_create(tpath("ab.msgpack.zst"), 3, &w, &err), RT_OK, "%s", err.msg);
  cr_assert_eq(rt_events_write(w, EDGE, NEDGE, &err), RT_OK);
  rt_events_abort(w);
  DIR *d = opendir(g_dir);
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    cr_assert_null(strstr(e->d_name, "ab.msgpack"), "left behind: %s", e->d_name);
  closedir(d);
  /* finish replaces an existing shard */
  write_events(tpath("rep.tsv"), EDGE, 2);
  write_events(tpath("rep.tsv"), EDGE + 5, 1);
  rt_event *v;
  size_t n;
  cr_assert_eq(read_all(tpath("rep.tsv"), 10, &v, &n, &err), 0);
  cr_assert_eq(n, 1);
  assert_same(EDGE + 5, v, 1);
  free(v);
}

Test(events, zstd_output_is_deterministic) {
  rt_event *ev = many_events(20000, 77);
  write_events(tpath("d1.msgpack.zst"), ev, 20000);
  write_events(tpath("d2.msgpack.zst"), ev, 20000);
  free(ev);
  size_t l1, l2;
  char *a = get_file(tpath("d1.msgpack.zst"), &l1), *b = get_file(tpath("d2.msgpack.zst"), &l2);
  cr_assert_eq(l1, l2);
  cr_assert_eq(memcmp(a, b, l1), 0);
  free(a);
  free(b);
}

/* ---- ragtide-gen-logs ----------------------------------------------------------- */

static int gen(const char *out, const char *extra) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s/ragtide-gen-logs --out '%s' %s >/dev/null 2>&1", RAGTIDE_BUILD, out, extra);
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* All files under dir (relative names, sorted) concatenated with their bytes. */
static char *tree_bytes(const char *dir, size_t *len) {
  char cmd[1024], *out = NULL;
  snprintf(cmd, sizeof cmd,
           "cd '%s' && find . -type f | LC_ALL=C sort | while read f; do echo \"$f\"; cat \"$f\"; done", dir);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  size_t cap = 0;
  *len = 0;
  char buf[65536];
  size_t k;
  while ((k = fread(buf, 1, sizeof buf, p)) > 0) {
    if (*len + k > cap) {
      cap = (*len + k) * 2;
      out = rt_xrealloc(out, cap);
    }
    memcpy(out + *len, buf, k);
    *len += k;
  }
  pclose(p);
  return out;
}

Test(events, gen_logs_is_deterministic) {
  cr_assert_eq(access(RAGTIDE_BUILD "/ragtide-gen-logs", X_OK), 0, "build ragtide-gen-logs first");
  const char *flags = "--clusters 300 --users 400 --days 9 --seed 5 --shards-per-day 3";
  char f1[256], f3[256];
  snprintf(f1, sizeof f1, "%s --threads 1", flags);
  snprintf(f3, sizeof f3, "%s --threads 3", flags);
  cr_assert_eq(gen(tpath("g1"), f1), 0);
  cr_assert_eq(gen(tpath("g2"), f3), 0); /* thread count must not matter */
  cr_assert_eq(gen(tpath("g3"), "--clusters 300 --users 400 --days 9 --seed 6 --shards-per-day 3"), 0);
  size_t l1, l2, l3;
  char *a = tree_bytes(tpath("g1"), &l1), *b = tree_bytes(tpath("g2"), &l2), *c = tree_bytes(tpath("g3"), &l3);
  cr_assert_gt(l1, 10000);
  cr_assert(l1 == l2 && memcmp(a, b, l1) == 0, "same flags gave different files");
  cr_assert(l1 != l3 || memcmp(a, c, l1) != 0, "different seeds gave identical files");
  /* the bytes hold NULs: search with memmem */
  cr_assert_not_null(memmem(a, l1, "./logs/2026-01-09/part-0002.msgpack.zst\n", 40), "missing the last shard");
  cr_assert_null(memmem(a, l1, "./logs/2026-01-10", 17), "one day too many");
  cr_assert_null(memmem(a, l1, ".tmp.", 5), "temporary file left behind");
  free(a);
  free(b);
  free(c);
  /* the catalogs of different seeds differ too */
  size_t k1, k3;
  char p1[600], p3[600];
  snprintf(p1, sizeof p1, "%s/catalog.tsv", tpath("g1"));
  snprintf(p3, sizeof p3, "%s/catalog.tsv", tpath("g3"));
  a = get_file(p1, &k1);
  c = get_file(p3, &k3);
  cr_assert(k1 != k3 || memcmp(a, c, k1) != 0);
  free(a);
  free(c);
}

Test(events, gen_logs_catalog_is_unique_and_sparse) {
  cr_assert_eq(gen(tpath("cat"), "--clusters 20000 --seed 3 --only-catalog"), 0);
  char p[600];
  snprintf(p, sizeof p, "%s/catalog.tsv", tpath("cat"));
  cr_assert_neq(access(tpath("cat/logs"), F_OK), 0, "--only-catalog wrote logs");
  rt_catalog cat;
  rt_err err = {0};
  /* rt_catalog_load itself rejects duplicate normalised descriptions */
  cr_assert_eq(rt_catalog_load(p, &cat, &err), RT_OK, "%s", err.msg);
  cr_assert_eq(cat.n, 20000);
  uint32_t dense = 0;
  for (uint32_t i = 0; i < cat.n; i++) {
    if (i && cat.ids[i] == cat.ids[i - 1] + 1) dense++;
    /* 2-4 keywords */
    uint32_t commas = 0;
    for (const char *s = cat.norm[i]; *s; s++) commas += *s == ',';
    cr_assert(commas >= 1 && commas <= 3, "cluster %u has %u keywords: %s", cat.ids[i], commas + 1,
              cat.norm[i]);
    for (uint32_t j = i + 1; j < cat.n && j < i + 50; j++) cr_assert_str_neq(cat.norm[i], cat.norm[j]);
  }
  cr_assert_lt(dense, 10, "ids look dense (%u consecutive pairs)", dense);
  cr_assert_gt(cat.ids[cat.n - 1] - cat.ids[0], 1000000000u, "ids do not spread over 32 bits");
  rt_catalog_free(&cat);
}

Test(events, gen_logs_event_model) {
  cr_assert_eq(gen(tpath("m"), "--clusters 50 --users 300 --days 2 --seed 9 --format tsv --shards-per-day 2 "
                               "--start 2026-03-01 --events-per-user-day 10"), 0);
  char p[600];
  snprintf(p, sizeof p, "%s/catalog.tsv", tpath("m"));
  rt_catalog cat;
  rt_err err = {0};
  cr_assert_eq(rt_catalog_load(p, &cat, &err), RT_OK, "%s", err.msg);
  int64_t day0;
  rt_parse_utc("2026-03-01", &day0);
  size_t total = 0, low = 0, repeats = 0, pairs = 0;
  RT_VEC(uint64_t) users[2] = {{0}, {0}};
  for (int d = 0; d < 2; d++) {
    for (int k = 0; k < 2; k++) {
      snprintf(p, sizeof p, "%s/logs/2026-03-0%d/part-%04d.tsv", tpath("m"), d + 1, k);
      rt_event *v;
      size_t n;
      cr_assert_eq(read_all(p, 4096, &v, &n, &err), 0, "%s", err.msg);
      cr_assert_gt(n, 0, "%s is empty", p);
      for (size_t i = 0; i < n; i++) {
        cr_assert_geq(rt_catalog_index(&cat, v[i].cluster), 0, "unknown cluster %u", v[i].cluster);
        cr_assert(v[i].ts >= day0 + d * 86400 && v[i].ts < day0 + (d + 1) * 86400, "ts outside its day");
        cr_assert(v[i].engagement >= 0 && v[i].engagement <= 1);
        low += v[i].engagement < 0.5f;
        if (i > 0) cr_assert_geq(v[i].ts, v[i - 1].ts, "%s: events not in time order", p);
        /* the same user's previous event in this shard */
        for (size_t j = i; j-- > 0 && i - j < 400;) {
          if (v[j].user != v[i].user) continue;
          pairs++;
          repeats += v[j].cluster == v[i].cluster;
          break;
        }
        rt_vec_push(&users[d], v[i].user * 2 + (uint64_t)k);
      }
      total += n;
      free(v);
    }
  }
  /* mean 10 events per user-day: 300 users x 2 days x [5, 15] */
  cr_assert(total >= 300 * 2 * 5 && total <= 300 * 2 * 15, "total %zu", total);
  cr_assert(total > 5000 && total < 7000, "mean far from 10 events/user-day: %zu", total);
  double lf = (double)low / (double)total, rf = (double)repeats / (double)pairs;
  cr_assert(lf > 0.15 && lf < 0.25, "low-engagement share %.3f, want ~0.2", lf);
  cr_assert(rf > 0.07 && rf < 0.2, "consecutive repeat share %.3f, want ~0.1", rf);
  /* some user moves to the other shard on the next day */
  int moved = 0;
  for (size_t i = 0; i < users[0].len && !moved; i++)
    for (size_t j = 0; j < users[1].len && !moved; j++)
      moved = users[0].data[i] / 2 == users[1].data[j] / 2 && users[0].data[i] % 2 != users[1].data[j] % 2;
  cr_assert(moved, "no user's stream is split across shards on different days");
  free(users[0].data);
  free(users[1].data);
  rt_catalog_free(&cat);
}

Test(events, gen_logs_formats_hold_the_same_events) {
  const char *base = "--clusters 40 --users 100 --days 1 --seed 4 --shards-per-day 1";
  const char *fmts[] = {"msgpack.zst", "msgpack", "tsv", "tsv.zst"};
  rt_event *first = NULL;
  size_t first_n = 0;
  for (int f = 0; f < 4; f++) {
    char flags[256], dir[64], p[700];
    snprintf(flags, sizeof flags, "%s --format %s", base, fmts[f]);
    snprintf(dir, sizeof dir, "fmt%d", f);
    cr_assert_eq(gen(tpath(dir), flags), 0);
    snprintf(p, sizeof p, "%s/logs/2026-01-01/part-0000.%s", tpath(dir), fmts[f]);
    rt_event *v;
    size_t n;
    rt_err err = {0};
    cr_assert_eq(read_all(p, 100, &v, &n, &err), 0, "%s", err.msg);
    if (f == 0) {
      first = v;
      first_n = n;
      cr_assert_gt(n, 100);
    } else {
      cr_assert_eq(n, first_n, "%s: %zu events, msgpack.zst had %zu", fmts[f], n, first_n);
      assert_same(first, v, n);
      free(v);
    }
  }
  free(first);
}

Test(events, gen_logs_usage_errors) {
  cr_assert_eq(gen(tpath("u"), "--help"), 0);
  cr_assert_eq(gen(tpath("u"), "--clusters 10"), 2); /* no --users/--days */
  cr_assert_eq(gen(tpath("u"), "--clusters 3 --users 1 --days 1"), 2);
  cr_assert_eq(gen(tpath("u"), "--clusters 10 --users 1 --days 1 --format csv"), 2);
  cr_assert_eq(gen(tpath("u"), "--clusters 10 --users 1 --days 1 --start 2026-02-30"), 2);
  cr_assert_eq(gen(tpath("u"), "--clusters 10 --users x --days 1"), 2);
  cr_assert_eq(gen(tpath("u"), "--clusters 10 --users 1 --days 1 --bogus 1"), 2);
  cr_assert_neq(access(tpath("u"), F_OK), 0, "a usage error still wrote output");
  put_file(tpath("file"), "x", 1); /* --out under a regular file cannot be created */
  cr_assert_eq(gen(tpath("file/sub"), "--clusters 10 --users 1 --days 1"), 6);
}

/* ---- every msgpack integer/float width, fast path and generic path --------- */

/* Records written with forced widths (msgpack_pack_fix_*): the reader's fast
 * path takes the usual encodings, msgpack-c the others; both must give the
 * same values as the generic decoder would. */
Test(events, every_encoding_width_decodes_to_the_same_values) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  enum { N = 9 };
  for (int i = 0; i < N; i++) {
    msgpack_pack_array(&pk, 4);
    switch (i % 5) { /* user */
    case 0: msgpack_pack_fix_uint8(&pk, 200); break;
    case 1: msgpack_pack_fix_uint16(&pk, 200); break;
    case 2: msgpack_pack_fix_uint32(&pk, 200); break;
    case 3: msgpack_pack_fix_uint64(&pk, 200); break;
    default: msgpack_pack_fix_int64(&pk, 200); break; /* int encoding of a non-negative user: generic path */
    }
    switch (i % 6) { /* ts, 1767225600 or -5 */
    case 0: msgpack_pack_fix_uint32(&pk, 1767225600u); break;
    case 1: msgpack_pack_fix_int64(&pk, 1767225600); break;
    case 2: msgpack_pack_fix_uint64(&pk, 1767225600u); break;
    case 3: msgpack_pack_fix_int8(&pk, -5); break;
    case 4: msgpack_pack_fix_int32(&pk, -5); break;
    default: msgpack_pack_int(&pk, -5); break; /* negative fixint */
    }
    switch (i % 4) { /* cluster 7 */
    case 0: msgpack_pack_uint32(&pk, 7); break; /* positive fixint */
    case 1: msgpack_pack_fix_uint8(&pk, 7); break;
    case 2: msgpack_pack_fix_uint16(&pk, 7); break;
    default: msgpack_pack_fix_uint32(&pk, 7); break;
    }
    switch (i % 4) { /* engagement 0.75 or 2 */
    case 0: msgpack_pack_float(&pk, 0.75f); break;
    case 1: msgpack_pack_double(&pk, 0.75); break;
    case 2: msgpack_pack_uint32(&pk, 2); break;
    default: msgpack_pack_fix_int16(&pk, 2); break;
    }
  }
  put_file(tpath("widths.msgpack"), sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
  rt_event_reader *r;
  rt_err err = {0};
  cr_assert_eq(rt_events_open(tpath("widths.msgpack"), &r, &err), RT_OK, "%s", err.msg);
  rt_event ev[N + 1];
  long got = rt_events_read(r, ev, N + 1, &err);
  cr_assert_eq(got, N, "read %ld: %s", got, err.msg);
  for (int i = 0; i < N; i++) {
    cr_assert_eq(ev[i].user, 200, "record %d", i);
    cr_assert_eq(ev[i].ts, i % 6 < 3 ? 1767225600 : -5, "record %d", i);
    cr_assert_eq(ev[i].cluster, 7, "record %d", i);
    cr_assert_float_eq(ev[i].engagement, i % 4 < 2 ? 0.75f : 2.0f, 1e-9, "record %d", i);
  }
  cr_assert_eq(rt_events_read(r, ev, N, &err), 0);
  rt_events_close(r);
}
