/* test_events_fast.c — the read path's fast paths. (1) The msgpack reader
 * (src/format/events.c:
 * the bulk path that learns a record shape, and the bounds-checked fast
 * path) against msgpack-c's generic decoder. Random streams mixing every
 * encoding width, shape changes, values at the limits, invalid records and
 * truncated ends, read in several batch sizes, plain and zstd-compressed:
 * the reader must give exactly the events msgpack_unpack() + the documented
 * conversion give, and fail at exactly the same record with its byte offset.
 * (2) rt_catalog_index (src/format/catalog.h): the direct table for small ids
 * and the hash table for sparse ones, against a binary search over the
 * sorted ids, members and non-members. Deterministic (fixed seeds). */
#include "base/util.h"
#include "format/catalog.h"
#include "format/events.h"

#include <criterion/criterion.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

static char g_dir[256];

static void setup(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/rt_test_events_fast.XXXXXX");
  cr_assert_not_null(mkdtemp(g_dir), "mkdtemp failed");
}

static void teardown(void) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
}

TestSuite(events_fast, .init = setup, .fini = teardown);

static uint64_t g_rng;
static uint64_t rnd(void) { /* xorshift64* */
  g_rng ^= g_rng >> 12;
  g_rng ^= g_rng << 25;
  g_rng ^= g_rng >> 27;
  return g_rng * 0x2545f4914f6cdd1dULL;
}
static unsigned pick(unsigned n) { return (unsigned)(rnd() % n); }

/* A non-negative value in a random encoding that msgpack-c reads as a
 * positive integer; v fits the chosen width. */
static void pack_uint_any(msgpack_packer *pk, uint64_t v) {
  for (;;) {
    switch (pick(9)) {
    case 0: msgpack_pack_uint64(pk, v); return; /* smallest, as the writer does */
    case 1: if (v <= 0xff) { msgpack_pack_fix_uint8(pk, (uint8_t)v); return; } break;
    case 2: if (v <= 0xffff) { msgpack_pack_fix_uint16(pk, (uint16_t)v); return; } break;
    case 3: if (v <= 0xffffffff) { msgpack_pack_fix_uint32(pk, (uint32_t)v); return; } break;
    case 4: msgpack_pack_fix_uint64(pk, v); return;
    case 5: if (v <= 0x7f) { msgpack_pack_fix_int8(pk, (int8_t)v); return; } break;
    case 6: if (v <= 0x7fff) { msgpack_pack_fix_int16(pk, (int16_t)v); return; } break;
    case 7: if (v <= 0x7fffffff) { msgpack_pack_fix_int32(pk, (int32_t)v); return; } break;
    default: if (v <= (uint64_t)INT64_MAX) { msgpack_pack_fix_int64(pk, (int64_t)v); return; } break;
    }
  }
}

static void pack_int_any(msgpack_packer *pk, int64_t v) {
  if (v >= 0) return pack_uint_any(pk, (uint64_t)v);
  for (;;) {
    switch (pick(5)) {
    case 0: msgpack_pack_int64(pk, v); return; /* smallest: negative fixint or int8..64 */
    case 1: if (v >= INT8_MIN) { msgpack_pack_fix_int8(pk, (int8_t)v); return; } break;
    case 2: if (v >= INT16_MIN) { msgpack_pack_fix_int16(pk, (int16_t)v); return; } break;
    case 3: if (v >= INT32_MIN) { msgpack_pack_fix_int32(pk, (int32_t)v); return; } break;
    default: msgpack_pack_fix_int64(pk, v); return;
    }
  }
}

/* A value of a random magnitude class, so every width shows up; some made of
 * bytes that are also msgpack tags (0xca, 0xce, 0x94, ...), so a record read
 * with the wrong field offsets would look plausible. */
static uint64_t some_u64(void) {
  static const uint64_t lim[] = {0x7f, 0xff, 0xffff, 0xffffffffULL, UINT64_MAX};
  static const unsigned char tagbytes[] = {0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf, 0x94, 0x00, 0x7f, 0xd3};
  uint64_t l = lim[pick(5)];
  if (pick(4) == 0) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | tagbytes[pick(sizeof tagbytes)];
    return v & l;
  }
  switch (pick(4)) {
  case 0: return l;         /* the limit itself */
  case 1: return pick(3);   /* 0, 1, 2 */
  default: return l == UINT64_MAX ? rnd() : rnd() % (l + 1);
  }
}

/* One record; the shape of most records repeats (`shape` fixes the widths of
 * a run), some are random, one in `bad_odds` possibly invalid (0: none). */
static void pack_shape_body(msgpack_packer *pk, unsigned shape) {
  uint64_t u = rnd() >> (shape & 1 ? 0 : 40);
  if (shape & 2) msgpack_pack_fix_uint64(pk, u);
  else msgpack_pack_uint64(pk, u);
  msgpack_pack_int64(pk, shape & 4 ? 1767225600 + (int64_t)pick(86400 * 5) : (int64_t)pick(200));
  msgpack_pack_uint32(pk, shape & 8 ? (uint32_t)some_u64() : pick(128));
  if (shape & 16) msgpack_pack_double(pk, (double)pick(1000) / 7);
  else msgpack_pack_float(pk, (float)pick(1000) / 7);
}

static void pack_record(msgpack_packer *pk, unsigned shape, unsigned bad_odds) {
  if (bad_odds && pick(bad_odds) == 0) {
    if (shape && pick(3) == 0) { /* the run's shape under a wrong header */
      msgpack_pack_array(pk, pick(2) ? 3 : 5);
      pack_shape_body(pk, shape);
      return;
    }
    switch (pick(9)) {
    case 0: msgpack_pack_array(pk, 3); break;
    case 1: msgpack_pack_array(pk, 5); break;
    case 2: msgpack_pack_nil(pk); return;
    case 3: msgpack_pack_map(pk, 0); return;
    default: msgpack_pack_array(pk, 4); break;
    }
    /* fields, one of them possibly out of range or mistyped */
    unsigned bad = pick(4);
    for (unsigned f = 0; f < 4; f++) {
      if (f != bad) { /* valid, and a float engagement so the bulk path sees the record */
        if (f == 3) msgpack_pack_float(pk, 0.5f);
        else pack_uint_any(pk, f == 2 ? some_u64() & 0xffff : some_u64() & 0xfffffff);
        continue;
      }
      switch (pick(6)) {
      case 0: msgpack_pack_nil(pk); break;
      case 1: msgpack_pack_true(pk); break;
      case 2: msgpack_pack_int64(pk, -(int64_t)pick(1000) - 1); break;
      case 3: msgpack_pack_uint64(pk, UINT64_MAX - pick(3)); break;
      case 4: msgpack_pack_fix_uint64(pk, 0x100000000ULL + pick(5)); break;
      default: msgpack_pack_str(pk, 1), msgpack_pack_str_body(pk, "x", 1); break;
      }
    }
    return;
  }
  msgpack_pack_array(pk, 4);
  if (shape && pick(8)) { /* a run of one shape: the writer's common case */
    pack_shape_body(pk, shape);
    return;
  }
  pack_uint_any(pk, some_u64());
  uint64_t t = some_u64();
  if (pick(2)) pack_int_any(pk, -(int64_t)(t >> 1) - 1);
  else pack_uint_any(pk, t >> 1);
  pack_uint_any(pk, some_u64() & 0xffffffffULL);
  switch (pick(6)) {
  case 0: msgpack_pack_float(pk, (float)(rnd() % 100000) / 13); break;
  case 1: msgpack_pack_double(pk, (double)(rnd() % 100000) / 13); break;
  case 2: msgpack_pack_float(pk, NAN); break;
  case 3: msgpack_pack_double(pk, 1e300); break; /* inf as a float */
  case 4: pack_int_any(pk, -(int64_t)pick(100)); break;
  default: pack_uint_any(pk, some_u64()); break;
  }
}

/* The reference: msgpack_unpack() and the conversion docs/formats.md §2
 * describes. Returns 1 with *ev filled, 0 if the record is invalid, -1 if it
 * is incomplete. */
static int ref_record(const char *buf, size_t len, size_t *off, msgpack_zone *z, rt_event *ev) {
  msgpack_object o;
  msgpack_unpack_return rc = msgpack_unpack(buf, len, off, z, &o);
  if (rc == MSGPACK_UNPACK_CONTINUE) return -1;
  if (rc != MSGPACK_UNPACK_SUCCESS && rc != MSGPACK_UNPACK_EXTRA_BYTES) return 0;
  if (o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size != 4) return 0;
  const msgpack_object *f = o.via.array.ptr;
  if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) return 0;
  ev->user = f[0].via.u64;
  if (f[1].type == MSGPACK_OBJECT_NEGATIVE_INTEGER) ev->ts = f[1].via.i64;
  else if (f[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER && f[1].via.u64 <= (uint64_t)INT64_MAX)
    ev->ts = (int64_t)f[1].via.u64;
  else return 0;
  if (f[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[2].via.u64 > UINT32_MAX) return 0;
  ev->cluster = (uint32_t)f[2].via.u64;
  switch (f[3].type) {
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64: ev->engagement = (float)f[3].via.f64; break;
  case MSGPACK_OBJECT_POSITIVE_INTEGER: ev->engagement = (float)f[3].via.u64; break;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER: ev->engagement = (float)f[3].via.i64; break;
  default: return 0;
  }
  return 1;
}

static int same_event(const rt_event *a, const rt_event *b) {
  if (a->user != b->user || a->ts != b->ts || a->cluster != b->cluster) return 0;
  if (isnan(a->engagement) || isnan(b->engagement)) return isnan(a->engagement) && isnan(b->engagement);
  return memcmp(&a->engagement, &b->engagement, sizeof(float)) == 0;
}

static void put_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f, "cannot write %s", path);
  cr_assert_eq(fwrite(data, 1, len, f), len);
  fclose(f);
}

/* Read `path` in batches of `batch` and compare with the reference events;
 * `bad_at` (or SIZE_MAX) is the byte offset the reader must fail at. */
static void check_read(const char *path, size_t batch, const rt_event *want, size_t nwant, size_t bad_at) {
  rt_event_reader *r;
  rt_err err = {0};
  cr_assert_eq(rt_events_open(path, &r, &err), RT_OK, "%s", err.msg);
  rt_event *buf = rt_xmalloc(batch * sizeof *buf);
  size_t n = 0;
  long k;
  while ((k = rt_events_read(r, buf, batch, &err)) > 0) {
    cr_assert_leq(n + (size_t)k, nwant, "%s batch %zu: %zu events, expected %zu", path, batch, n + (size_t)k,
                  nwant);
    for (long i = 0; i < k; i++, n++)
      cr_assert(same_event(&buf[i], &want[n]),
                "%s batch %zu: event %zu is (%llu, %lld, %u, %a), expected (%llu, %lld, %u, %a)", path, batch, n,
                (unsigned long long)buf[i].user, (long long)buf[i].ts, buf[i].cluster, (double)buf[i].engagement,
                (unsigned long long)want[n].user, (long long)want[n].ts, want[n].cluster,
                (double)want[n].engagement);
  }
  /* a read that meets an error returns -1, not the events before it */
  size_t expect = bad_at == SIZE_MAX ? nwant : nwant / batch * batch;
  cr_assert_eq(n, expect, "%s batch %zu: %zu events, expected %zu (%s)", path, batch, n, expect, err.msg);
  if (bad_at == SIZE_MAX) {
    cr_assert_eq(k, 0, "%s batch %zu: %s", path, batch, err.msg);
  } else {
    cr_assert_eq(k, -1, "%s batch %zu: no error, expected one at byte %zu", path, batch, bad_at);
    char sub[600];
    snprintf(sub, sizeof sub, "%s: byte %zu: ", path, bad_at);
    cr_assert_not_null(strstr(err.msg, sub), "%s batch %zu: \"%s\" does not name byte %zu", path, batch, err.msg,
                       bad_at);
  }
  free(buf);
  rt_events_close(r);
}

static void run_stream(unsigned seed, size_t records, unsigned bad_odds, int truncate) {
  g_rng = 0x9e3779b97f4a7c15ULL * (seed + 1);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  unsigned shape = pick(32);
  for (size_t i = 0; i < records; i++) {
    if (pick(500) == 0) shape = pick(32); /* shape changes mid-stream */
    pack_record(&pk, shape, bad_odds);
  }
  size_t len = sb.size;
  if (truncate) len -= 1 + pick(20) % len;
  /* reference decode up to the first invalid or incomplete record */
  rt_event *want = rt_xmalloc((records + 1) * sizeof *want);
  size_t nwant = 0, off = 0, bad_at = SIZE_MAX;
  msgpack_zone z;
  msgpack_zone_init(&z, MSGPACK_ZONE_CHUNK_SIZE);
  while (off < len) {
    size_t at = off;
    int rc = ref_record(sb.data, len, &off, &z, &want[nwant]);
    msgpack_zone_clear(&z);
    if (rc <= 0) {
      bad_at = at;
      break;
    }
    nwant++;
  }
  msgpack_zone_destroy(&z);
  char path[512], zpath[512];
  snprintf(path, sizeof path, "%s/s%u.msgpack", g_dir, seed);
  snprintf(zpath, sizeof zpath, "%s/s%u.msgpack.zst", g_dir, seed);
  put_file(path, sb.data, len);
  size_t zcap = ZSTD_compressBound(len);
  void *zb = rt_xmalloc(zcap);
  size_t zl = ZSTD_compress(zb, zcap, sb.data, len, 1);
  cr_assert(!ZSTD_isError(zl));
  put_file(zpath, zb, zl);
  free(zb);
  static const size_t batches[] = {1, 3, 64, 4096};
  for (size_t b = 0; b < sizeof batches / sizeof *batches; b++) {
    if (batches[b] == 1 && records > 20000) continue; /* slow and adds nothing past the first buffers */
    check_read(path, batches[b], want, nwant, bad_at);
    check_read(zpath, batches[b], want, nwant, bad_at);
  }
  free(want);
  msgpack_sbuffer_destroy(&sb);
}

/* Long valid streams: several 256 KiB reader buffers, so records straddle
 * every buffer boundary alignment; shapes change mid-stream. */
Test(events_fast, valid_streams_match_msgpack_c) {
  for (unsigned seed = 0; seed < 6; seed++) run_stream(seed, 40000, 0, 0);
}

/* Short streams with invalid records: the error must come at the same record
 * and byte offset as with the generic decoder alone. */
Test(events_fast, invalid_records_fail_where_msgpack_c_does) {
  for (unsigned seed = 100; seed < 400; seed++) run_stream(seed, 1 + seed % 200, 40, 0);
}

Test(events_fast, truncated_streams_fail_at_the_last_record) {
  for (unsigned seed = 1000; seed < 1100; seed++) run_stream(seed, 1 + seed % 300, 0, 1);
}

/* The bulk path needs MSGPACK_EVENT_MAX bytes ahead; a long invalid stream
 * puts the bad record far inside a buffer, where only the bulk path runs. */
Test(events_fast, invalid_record_deep_in_a_long_stream) {
  for (unsigned seed = 2000; seed < 2010; seed++) run_stream(seed, 30000, 20000, 0);
}

/* ---- rt_catalog_index ------------------------------------------------------ */

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Build a catalog of these ids and check rt_catalog_index against a binary
 * search, for every id, its neighbours, the extremes and random probes. */
static void check_index(const uint32_t *ids_in, uint32_t n) {
  uint32_t *ids = rt_xmalloc(n * sizeof *ids);
  memcpy(ids, ids_in, n * sizeof *ids);
  char **desc = rt_xmalloc(n * sizeof *desc);
  for (uint32_t i = 0; i < n; i++) {
    desc[i] = rt_xmalloc(32);
    snprintf(desc[i], 32, "k%u", i);
  }
  rt_catalog cat;
  rt_err err = {0};
  cr_assert_eq(rt_catalog_build(ids, (const char *const *)desc, n, "test", &cat, &err), RT_OK, "%s", err.msg);
  qsort(ids, n, sizeof *ids, cmp_u32);
  uint32_t probes[8 + 3 * 2048];
  size_t np = 0;
  probes[np++] = 0, probes[np++] = 1, probes[np++] = UINT32_MAX, probes[np++] = UINT32_MAX - 1;
  probes[np++] = ids[n - 1] + 1u, probes[np++] = 4 * n, probes[np++] = 65535, probes[np++] = 65536;
  for (uint32_t k = 0; k < 2048; k++) {
    uint32_t i = (uint32_t)(rnd() % n);
    probes[np++] = ids[i] - 1u, probes[np++] = ids[i] + 1u, probes[np++] = (uint32_t)rnd();
  }
  for (uint32_t i = 0; i < n; i++) cr_assert_eq(rt_catalog_index(&cat, ids[i]), (int32_t)i, "id %u", ids[i]);
  for (size_t k = 0; k < np; k++) {
    uint32_t *hit = bsearch(&probes[k], ids, n, sizeof *ids, cmp_u32);
    cr_assert_eq(rt_catalog_index(&cat, probes[k]), hit ? (int32_t)(hit - ids) : -1, "probe %u", probes[k]);
  }
  rt_catalog_free(&cat);
  for (uint32_t i = 0; i < n; i++) free(desc[i]);
  free(desc);
  free(ids);
}

Test(events_fast, catalog_index_direct_and_hashed) {
  g_rng = 12345;
  enum { N = 20000 };
  static uint32_t ids[N];
  /* dense, shuffled, starting at 0: the direct table */
  for (uint32_t i = 0; i < N; i++) ids[i] = i;
  for (uint32_t i = N - 1; i > 0; i--) {
    uint32_t j = (uint32_t)(rnd() % (i + 1)), t = ids[i];
    ids[i] = ids[j], ids[j] = t;
  }
  check_index(ids, N);
  /* max id 4n - 1 (direct) and 4n (hashed): the bound between the two */
  for (uint32_t i = 0; i < N; i++) ids[i] = 4 * i + 3;
  check_index(ids, N);
  ids[N - 1] = 4 * N;
  check_index(ids, N);
  /* small ids below 64Ki with few clusters: direct */
  uint32_t small[] = {7, 900, 3, 65535};
  check_index(small, 4);
  uint32_t one[] = {0};
  check_index(one, 1);
  /* sparse random 32-bit ids with the extremes: hashed */
  for (uint32_t i = 0; i < 1000; i++) ids[i] = (uint32_t)rnd() | 1u << 31;
  ids[0] = 0, ids[1] = UINT32_MAX, ids[2] = 65536;
  qsort(ids, 1000, sizeof *ids, cmp_u32);
  uint32_t m = 0;
  for (uint32_t i = 0; i < 1000; i++)
    if (i == 0 || ids[i] != ids[m - 1]) ids[m++] = ids[i];
  check_index(ids, m);
  /* structured ids (multiples of 2^20): a poor hash would pile them up */
  for (uint32_t i = 0; i < 4000; i++) ids[i] = (i + 1) << 20;
  check_index(ids, 4000);
}
