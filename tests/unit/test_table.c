/* test_table.c — libragtide: format round trip, determinism, corruption
 * detection (library and `ragtide validate`), lookups, threads, merge. */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <pthread.h>
#include <ragtide/table.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

static char g_dir[256];

static void setup(void) {
  strcpy(g_dir, "/tmp/rt_test_table_XXXXXX");
  cr_assert_not_null(mkdtemp(g_dir));
}

static void teardown(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", g_dir);
}

static const char *tpath(const char *name) {
  static char buf[4][512];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
  return buf[k];
}

/* Deterministic content: pair (i1, i2) rank j is set unless (i1+i2+j)%5==0. */
static uint32_t exp_next(uint32_t n, uint32_t i1, uint32_t i2, uint32_t j) { return (i1 * 7 + i2 * 3 + j) % n; }
static ragtide_provenance exp_prov(uint32_t i1, uint32_t i2, uint32_t j) {
  if ((i1 + i2 + j) % 5 == 0) return RAGTIDE_PROV_NONE;
  return (ragtide_provenance)(1 + (i1 * 3 + i2 + j) % 3);
}
static uint32_t exp_day(uint32_t i1, uint32_t i2, uint32_t j) { return 20400 + (i1 + 2 * i2 + j) % 300; }

static const ragtide_table_info INFO = {
    .k = 2, .created_at = 1764115200, .window_start = 1763510400, .window_end = 1764115200,
    .catalog_hash = 0x1122334455667788ULL, .template_hash = 0xdeadbeefcafef00dULL,
    .config_hash = 0x0123456789abcdefULL, .model = "ft:gpt-4o-mini:interest", .run_id = "run-2026-11-26",
    .base_run_id = "base-2026-11"};

static uint32_t *make_ids(uint32_t n, int sparse) {
  uint32_t *ids = malloc(n * sizeof *ids);
  for (uint32_t i = 0; i < n; i++) ids[i] = sparse ? 5u + i * 40000u : 10 + i;
  if (sparse) ids[n - 1] = UINT32_MAX; /* extreme ids work too */
  return ids;
}

static ragtide_table_builder *make_builder(uint32_t n, uint32_t cand, int sparse, int reverse) {
  uint32_t *ids = make_ids(n, sparse);
  ragtide_table_builder *b = ragtide_builder_new(ids, n, cand);
  free(ids);
  cr_assert_not_null(b);
  for (uint32_t s = 0; s < n * n * cand; s++) {
    uint32_t k = reverse ? n * n * cand - 1 - s : s;
    uint32_t j = k % cand, p = k / cand, i1 = p / n, i2 = p % n;
    cr_assert_eq(ragtide_builder_set(b, i1, i2, j, exp_next(n, i1, i2, j), exp_prov(i1, i2, j),
                                     exp_day(i1, i2, j)), RAGTIDE_OK);
  }
  cr_assert_eq(ragtide_builder_set_info(b, &INFO), RAGTIDE_OK);
  return b;
}

static void write_bytes(const char *path, const uint8_t *d, size_t n) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(d, 1, n, f), n);
  fclose(f);
}

static uint8_t *serialize(ragtide_table_builder *b, size_t *len) {
  uint8_t *d = NULL;
  char eb[512];
  cr_assert_eq(ragtide_builder_serialize(b, &d, len, eb, sizeof eb), RAGTIDE_OK, "%s", eb);
  return d;
}

static uint32_t le32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t le64(const uint8_t *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }
static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void reseal(uint8_t *d, size_t n) { put64(d + n - 8, XXH3_64bits(d, n - 8)); }

/* Exit status of `ragtide validate --json PATH`, and its stdout. */
static int run_validate(const char *path, char *out, size_t cap) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s/ragtide validate --json '%s' 2>/dev/null", RAGTIDE_BUILD, path);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  size_t n = fread(out, 1, cap - 1, p);
  out[n] = '\0';
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void expect_open_fails(const char *name, const uint8_t *d, size_t n, int code, const char *msg_part,
                              const char *json_err) {
  const char *p = tpath(name);
  write_bytes(p, d, n);
  ragtide_table *t = NULL;
  char eb[1024];
  int rc = ragtide_table_open(p, &t, eb, sizeof eb);
  cr_assert_eq(rc, code, "%s: got %d (%s), want %d", name, rc, eb, code);
  cr_assert_null(t);
  cr_assert_not_null(strstr(eb, p), "%s: message names the file: %s", name, eb);
  if (msg_part) cr_assert_not_null(strstr(eb, msg_part), "%s: message \"%s\" lacks \"%s\"", name, eb, msg_part);
  char out[2048], want[64];
  cr_assert_eq(run_validate(p, out, sizeof out), 7, "%s: validate exit status; output %s", name, out);
  snprintf(want, sizeof want, "\"error\":\"%s\"", json_err);
  cr_assert_not_null(strstr(out, "\"valid\":false"), "%s: %s", name, out);
  cr_assert_not_null(strstr(out, want), "%s: %s lacks %s", name, out, want);
}

TestSuite(table, .init = setup, .fini = teardown);

Test(table, round_trip_every_field_and_candidate) {
  const uint32_t n = 13, cand = 3;
  ragtide_table_builder *b = make_builder(n, cand, 1, 0);
  cr_assert_eq(ragtide_builder_write(b, tpath("t"), NULL, 0), RAGTIDE_OK);
  ragtide_builder_free(b);
  ragtide_table *t;
  char eb[512];
  cr_assert_eq(ragtide_table_open(tpath("t"), &t, eb, sizeof eb), RAGTIDE_OK, "%s", eb);
  const ragtide_table_info *in = ragtide_table_get_info(t);
  cr_assert_eq(in->version_major, 1);
  cr_assert_eq(in->version_minor, RAGTIDE_FORMAT_MINOR);
  cr_assert_eq(in->n_clusters, n);
  cr_assert_eq(in->k, 2);
  cr_assert_eq(in->candidates, cand);
  cr_assert_eq(in->created_at, INFO.created_at);
  cr_assert_eq(in->window_start, INFO.window_start);
  cr_assert_eq(in->window_end, INFO.window_end);
  cr_assert_eq(in->catalog_hash, INFO.catalog_hash);
  cr_assert_eq(in->template_hash, INFO.template_hash);
  cr_assert_eq(in->config_hash, INFO.config_hash);
  cr_assert_str_eq(in->model, INFO.model);
  cr_assert_str_eq(in->run_id, INFO.run_id);
  cr_assert_str_eq(in->base_run_id, INFO.base_run_id);
  uint64_t counts[4] = {0};
  uint32_t nids;
  const uint32_t *ids = ragtide_table_cluster_ids(t, &nids);
  uint32_t *want_ids = make_ids(n, 1);
  cr_assert_eq(nids, n);
  cr_assert_arr_eq(ids, want_ids, n * sizeof *ids);
  free(want_ids);
  for (uint32_t i1 = 0; i1 < n; i1++)
    for (uint32_t i2 = 0; i2 < n; i2++) {
      counts[exp_prov(i1, i2, 0)]++;
      ragtide_candidate cs[8];
      int got = ragtide_table_candidates(t, ids[i1], ids[i2], cs, 8), k = 0;
      for (uint32_t j = 0; j < cand; j++) {
        uint32_t nx, day;
        ragtide_provenance p;
        cr_assert_eq(ragtide_table_get_idx(t, i1, i2, j, &nx, &p, &day), RAGTIDE_OK);
        cr_assert_eq(p, exp_prov(i1, i2, j));
        if (p == RAGTIDE_PROV_NONE) {
          cr_assert_eq(nx, UINT32_MAX);
          cr_assert_eq(day, 0);
          continue;
        }
        cr_assert_eq(nx, exp_next(n, i1, i2, j));
        cr_assert_eq(day, exp_day(i1, i2, j));
        cr_assert_lt(k, got);
        cr_assert_eq(cs[k].next, ids[exp_next(n, i1, i2, j)]);
        cr_assert_eq(cs[k].prov, p);
        cr_assert_eq(cs[k].day, exp_day(i1, i2, j));
        k++;
      }
      cr_assert_eq(got, k);
      uint32_t next = 0xabcdef;
      ragtide_provenance p;
      cr_assert_eq(ragtide_table_lookup(t, ids[i1], ids[i2], &next, &p), RAGTIDE_OK);
      cr_assert_eq(p, exp_prov(i1, i2, 0));
      cr_assert_eq(next, p == RAGTIDE_PROV_NONE ? 0xabcdef : ids[exp_next(n, i1, i2, 0)]);
    }
  for (int i = 0; i < 4; i++) cr_assert_eq(in->count_by_prov[i], counts[i], "count_by_prov[%d]", i);
  ragtide_table_close(t);
}

Test(table, dense_ids_and_single_cluster) {
  ragtide_table_builder *b = make_builder(1, 1, 0, 0); /* pair (10,10): (0+0+0)%5 == 0 -> none */
  ragtide_builder_set(b, 0, 0, 0, 0, RAGTIDE_PROV_RAG, 7);
  cr_assert_eq(ragtide_builder_write(b, tpath("one"), NULL, 0), RAGTIDE_OK);
  ragtide_builder_free(b);
  ragtide_table *t;
  cr_assert_eq(ragtide_table_open(tpath("one"), &t, NULL, 0), RAGTIDE_OK);
  uint32_t next;
  ragtide_provenance p;
  cr_assert_eq(ragtide_table_lookup(t, 10, 10, &next, &p), RAGTIDE_OK);
  cr_assert_eq(next, 10);
  cr_assert_eq(p, RAGTIDE_PROV_RAG);
  cr_assert_eq(ragtide_table_lookup(t, 9, 10, &next, &p), RAGTIDE_E_NOTFOUND);
  cr_assert_eq(ragtide_table_lookup(t, 11, 10, &next, &p), RAGTIDE_E_NOTFOUND);
  ragtide_table_close(t);
}

Test(table, byte_identical_for_same_input_and_any_set_order) {
  size_t l1, l2, l3;
  ragtide_table_builder *a = make_builder(17, 2, 1, 0), *b = make_builder(17, 2, 1, 0),
                        *c = make_builder(17, 2, 1, 1);
  /* Overwrite then restore a pair: the final state is what counts. */
  ragtide_builder_set(c, 3, 4, 1, 0, RAGTIDE_PROV_NONE, 0);
  ragtide_builder_set(c, 3, 4, 1, exp_next(17, 3, 4, 1), exp_prov(3, 4, 1), exp_day(3, 4, 1));
  uint8_t *d1 = serialize(a, &l1), *d2 = serialize(b, &l2), *d3 = serialize(c, &l3);
  cr_assert_eq(l1, l2);
  cr_assert_eq(l1, l3);
  cr_assert_arr_eq(d1, d2, l1);
  cr_assert_arr_eq(d1, d3, l1);
  ragtide_builder_set(c, 0, 1, 0, 2, RAGTIDE_PROV_BASE, 1);
  uint8_t *d4 = serialize(c, &l3);
  cr_assert(l3 != l1 || memcmp(d1, d4, l1) != 0, "a changed pair must change the bytes");
  free(d1);
  free(d2);
  free(d3);
  free(d4);
  ragtide_builder_free(a);
  ragtide_builder_free(b);
  ragtide_builder_free(c);
}

Test(table, truncation_at_every_section_boundary_and_random_offsets) {
  ragtide_table_builder *b = make_builder(9, 2, 0, 0);
  size_t n;
  uint8_t *d = serialize(b, &n);
  ragtide_builder_free(b);
  uint32_t hl = le32(d + 12);
  uint64_t bl = le64(d + 16);
  cr_assert_eq(32 + hl + bl + 16, n);
  size_t cuts[] = {0, 4, 8, 10, 12, 16, 24, 31, 32, 32 + hl / 2, 32 + hl, 32 + hl + bl / 2, 32 + hl + bl,
                   32 + hl + bl + 8, n - 1};
  srand(7);
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0] + 6; i++) {
    size_t cut = i < sizeof cuts / sizeof cuts[0] ? cuts[i] : (size_t)rand() % n;
    char name[64];
    snprintf(name, sizeof name, "trunc%zu", cut);
    expect_open_fails(name, d, cut, RAGTIDE_E_CORRUPT, cut == 0 ? "empty" : "truncated", "corrupt");
  }
  free(d);
}

Test(table, flipped_byte_in_each_section) {
  ragtide_table_builder *b = make_builder(9, 2, 0, 0);
  size_t n;
  uint8_t *d = serialize(b, &n);
  ragtide_builder_free(b);
  uint32_t hl = le32(d + 12);
  uint64_t bl = le64(d + 16);
  struct {
    size_t off;
    int code;
    const char *msg, *json;
  } cases[] = {
      {3, RAGTIDE_E_MAGIC, "not a ragtide table", "magic"},
      {8, RAGTIDE_E_VERSION, "table format version", "version"},
      {10, RAGTIDE_E_CHECKSUM, "checksum mismatch", "checksum"},        /* minor version */
      {13, RAGTIDE_E_CORRUPT, "truncated", "corrupt"},                  /* header length grows */
      {17, RAGTIDE_E_CORRUPT, "truncated", "corrupt"},                  /* body length grows */
      {25, RAGTIDE_E_CHECKSUM, "checksum mismatch", "checksum"},        /* raw length */
      {32 + hl / 2, RAGTIDE_E_CHECKSUM, "checksum mismatch", "checksum"},
      {32 + hl + bl / 2, RAGTIDE_E_CHECKSUM, "checksum mismatch", "checksum"},
      {n - 12, RAGTIDE_E_CORRUPT, "RTTBLEND", "corrupt"},
      {n - 3, RAGTIDE_E_CHECKSUM, "checksum mismatch", "checksum"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t *c = malloc(n);
    memcpy(c, d, n);
    c[cases[i].off] ^= 0x40;
    char name[64];
    snprintf(name, sizeof name, "flip%zu", cases[i].off);
    expect_open_fails(name, c, n, cases[i].code, cases[i].msg, cases[i].json);
    free(c);
  }
  free(d);
}

Test(table, wrong_magic_and_future_major) {
  const char junk[] = "PK\x03\x04 this is a zip, not a table, and long enough to have a preamble....";
  expect_open_fails("zip", (const uint8_t *)junk, sizeof junk, RAGTIDE_E_MAGIC, "not a ragtide table", "magic");
  ragtide_table_builder *b = make_builder(5, 1, 0, 0);
  size_t n;
  uint8_t *d = serialize(b, &n);
  ragtide_builder_free(b);
  d[8] = 2; /* major 2, minor 3, correctly sealed */
  d[10] = 3;
  reseal(d, n);
  expect_open_fails("v2", d, n, RAGTIDE_E_VERSION, "version 2.3; this reader supports major version 1",
                    "version");
  free(d);
}

/* A minor-version-1 writer adds a header field this reader has never heard of. */
Test(table, future_minor_with_unknown_header_field_opens) {
  ragtide_table_builder *b = make_builder(6, 2, 1, 0);
  size_t n;
  uint8_t *d = serialize(b, &n);
  ragtide_builder_free(b);
  uint32_t hl = le32(d + 12);
  uint64_t bl = le64(d + 16);
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  cr_assert_eq(msgpack_unpack_next(&u, (const char *)d + 32, hl, &off), MSGPACK_UNPACK_SUCCESS);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_object_map *m = &u.data.via.map;
  msgpack_pack_map(&pk, m->size + 2);
  msgpack_pack_str_with_body(&pk, "zz_future_field", 15);
  msgpack_pack_array(&pk, 2);
  msgpack_pack_double(&pk, 1.5);
  msgpack_pack_str_with_body(&pk, "x", 1);
  for (uint32_t i = 0; i < m->size; i++) {
    msgpack_pack_object(&pk, m->ptr[i].key);
    msgpack_pack_object(&pk, m->ptr[i].val);
  }
  msgpack_pack_str_with_body(&pk, "another_new_one", 15);
  msgpack_pack_map(&pk, 0);
  size_t nn = 32 + sb.size + bl + 16;
  uint8_t *e = malloc(nn);
  memcpy(e, d, 32);
  e[10] = 1; /* minor 1 */
  e[12] = (uint8_t)sb.size;
  e[13] = (uint8_t)(sb.size >> 8);
  e[14] = (uint8_t)(sb.size >> 16);
  e[15] = 0;
  memcpy(e + 32, sb.data, sb.size);
  memcpy(e + 32 + sb.size, d + 32 + hl, bl + 16);
  reseal(e, nn);
  write_bytes(tpath("minor1"), e, nn);
  ragtide_table *t;
  char eb[512];
  cr_assert_eq(ragtide_table_open(tpath("minor1"), &t, eb, sizeof eb), RAGTIDE_OK, "%s", eb);
  const ragtide_table_info *in = ragtide_table_get_info(t);
  cr_assert_eq(in->version_minor, 1);
  cr_assert_str_eq(in->run_id, INFO.run_id);
  cr_assert_eq(in->config_hash, INFO.config_hash);
  uint32_t nx;
  ragtide_provenance p;
  cr_assert_eq(ragtide_table_get_idx(t, 1, 2, 0, &nx, &p, NULL), RAGTIDE_OK);
  cr_assert_eq(p, exp_prov(1, 2, 0));
  cr_assert_eq(nx, exp_next(6, 1, 2, 0));
  ragtide_table_close(t);
  char out[1024];
  cr_assert_eq(run_validate(tpath("minor1"), out, sizeof out), 0, "%s", out);
  cr_assert_not_null(strstr(out, "\"format\":\"1.1\""), "%s", out);
  msgpack_sbuffer_destroy(&sb);
  msgpack_unpacked_destroy(&u);
  free(d);
  free(e);
}

Test(table, unknown_ids_and_bad_arguments) {
  ragtide_table_builder *b = make_builder(8, 1, 1, 0);
  cr_assert_eq(ragtide_builder_set(b, 8, 0, 0, 0, RAGTIDE_PROV_RAG, 0), RAGTIDE_E_ARG);
  cr_assert_eq(ragtide_builder_set(b, 0, 0, 1, 0, RAGTIDE_PROV_RAG, 0), RAGTIDE_E_ARG);
  cr_assert_eq(ragtide_builder_set(b, 0, 0, 0, 8, RAGTIDE_PROV_RAG, 0), RAGTIDE_E_ARG);
  cr_assert_eq(ragtide_builder_set(b, 0, 0, 0, 0, (ragtide_provenance)RAGTIDE_PROV_COUNT, 0), RAGTIDE_E_ARG);
  cr_assert_eq(ragtide_builder_write(b, tpath("u"), NULL, 0), RAGTIDE_OK);
  ragtide_builder_free(b);
  uint32_t bad_ids[] = {3, 3};
  cr_assert_null(ragtide_builder_new(bad_ids, 2, 1));
  cr_assert_null(ragtide_builder_new(bad_ids, 0, 1));
  cr_assert_null(ragtide_builder_new(bad_ids, 1, 0));
  ragtide_table *t;
  cr_assert_eq(ragtide_table_open(tpath("u"), &t, NULL, 0), RAGTIDE_OK);
  uint32_t nids;
  const uint32_t *ids = ragtide_table_cluster_ids(t, &nids);
  uint32_t next = 77;
  ragtide_provenance p;
  ragtide_candidate c[4];
  uint32_t unknown[] = {0, 4, ids[0] + 1, ids[1] - 1, UINT32_MAX - 1};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    cr_assert_eq(ragtide_table_lookup(t, unknown[i], ids[0], &next, &p), RAGTIDE_E_NOTFOUND, "id %u", unknown[i]);
    cr_assert_eq(ragtide_table_lookup(t, ids[0], unknown[i], &next, &p), RAGTIDE_E_NOTFOUND);
    cr_assert_eq(ragtide_table_candidates(t, unknown[i], ids[1], c, 4), RAGTIDE_E_NOTFOUND);
    cr_assert_eq(ragtide_table_index_of(t, unknown[i]), -1);
  }
  cr_assert_eq(next, 77);
  cr_assert_eq(ragtide_table_index_of(t, UINT32_MAX), 7);
  cr_assert_eq(ragtide_table_get_idx(t, 8, 0, 0, NULL, NULL, NULL), RAGTIDE_E_ARG);
  cr_assert_eq(ragtide_table_get_idx(t, 0, 0, 1, NULL, NULL, NULL), RAGTIDE_E_ARG);
  ragtide_table_close(t);
  cr_assert_eq(ragtide_table_open(tpath("missing"), &t, NULL, 0), RAGTIDE_E_IO);
  cr_assert_str_eq(ragtide_status_name(RAGTIDE_E_CHECKSUM), "checksum");
}

typedef struct {
  const ragtide_table *t;
  const uint32_t *ids, *want;
  uint32_t n;
  int mismatches;
} thr_arg;

static void *thr_lookup(void *p) {
  thr_arg *a = p;
  for (int rep = 0; rep < 20; rep++)
    for (uint32_t i = 0; i < a->n * a->n; i++) {
      uint32_t next = UINT32_MAX;
      ragtide_provenance pv;
      if (ragtide_table_lookup(a->t, a->ids[i / a->n], a->ids[i % a->n], &next, &pv) != RAGTIDE_OK ||
          (pv == RAGTIDE_PROV_NONE ? UINT32_MAX : next) != a->want[i])
        a->mismatches++;
    }
  return NULL;
}

Test(table, concurrent_lookups_agree) {
  const uint32_t n = 40;
  ragtide_table_builder *b = make_builder(n, 1, 1, 0);
  cr_assert_eq(ragtide_builder_write(b, tpath("c"), NULL, 0), RAGTIDE_OK);
  ragtide_builder_free(b);
  ragtide_table *t;
  cr_assert_eq(ragtide_table_open(tpath("c"), &t, NULL, 0), RAGTIDE_OK);
  uint32_t nids;
  const uint32_t *ids = ragtide_table_cluster_ids(t, &nids);
  uint32_t *want = malloc(n * n * sizeof *want);
  for (uint32_t i = 0; i < n * n; i++)
    want[i] = exp_prov(i / n, i % n, 0) == RAGTIDE_PROV_NONE ? UINT32_MAX : ids[exp_next(n, i / n, i % n, 0)];
  pthread_t th[4];
  thr_arg args[4];
  for (int i = 0; i < 4; i++) {
    args[i] = (thr_arg){.t = t, .ids = ids, .want = want, .n = n};
    cr_assert_eq(pthread_create(&th[i], NULL, thr_lookup, &args[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    cr_assert_eq(args[i].mismatches, 0, "thread %d", i);
  }
  free(want);
  ragtide_table_close(t);
}

/* Base: every pair BASE -> (i1+i2)%n. Overlay: pattern of NONE/BASE/RAG/FALLBACK. */
static void write_merge_inputs(uint64_t ov_catalog, const char *ov_base_run) {
  const uint32_t n = 6;
  uint32_t *ids = make_ids(n, 0);
  ragtide_table_builder *base = ragtide_builder_new(ids, n, 2), *ov = ragtide_builder_new(ids, n, 1);
  free(ids);
  for (uint32_t i1 = 0; i1 < n; i1++)
    for (uint32_t i2 = 0; i2 < n; i2++) {
      ragtide_builder_set(base, i1, i2, 0, (i1 + i2) % n, RAGTIDE_PROV_BASE, 100);
      ragtide_builder_set(base, i1, i2, 1, (i1 + 1) % n, RAGTIDE_PROV_BASE, 100);
      ragtide_builder_set(ov, i1, i2, 0, (i1 * i2) % n, (ragtide_provenance)((i1 + i2) % 4), 200);
    }
  ragtide_table_info bi = INFO, oi = INFO;
  bi.run_id = "base-run";
  bi.base_run_id = "";
  bi.created_at = 100;
  oi.run_id = "rag-run";
  oi.base_run_id = ov_base_run;
  oi.catalog_hash = ov_catalog;
  oi.created_at = 200;
  ragtide_builder_set_info(base, &bi);
  ragtide_builder_set_info(ov, &oi);
  cr_assert_eq(ragtide_builder_write(base, tpath("base"), NULL, 0), RAGTIDE_OK);
  cr_assert_eq(ragtide_builder_write(ov, tpath("ov"), NULL, 0), RAGTIDE_OK);
  ragtide_builder_free(base);
  ragtide_builder_free(ov);
}

static int merge_files(ragtide_table_builder **out, char *eb, size_t ec) {
  ragtide_table *base, *ov;
  cr_assert_eq(ragtide_table_open(tpath("base"), &base, NULL, 0), RAGTIDE_OK);
  cr_assert_eq(ragtide_table_open(tpath("ov"), &ov, NULL, 0), RAGTIDE_OK);
  int rc = ragtide_table_merge(base, ov, out, eb, ec);
  ragtide_table_close(base);
  ragtide_table_close(ov);
  return rc;
}

Test(table, merge_overlay_wins_for_rag_and_fallback) {
  write_merge_inputs(INFO.catalog_hash, "base-run");
  ragtide_table_builder *m;
  char eb[512];
  cr_assert_eq(merge_files(&m, eb, sizeof eb), RAGTIDE_OK, "%s", eb);
  cr_assert_eq(ragtide_builder_write(m, tpath("merged"), NULL, 0), RAGTIDE_OK);
  ragtide_builder_free(m);
  ragtide_table *t;
  cr_assert_eq(ragtide_table_open(tpath("merged"), &t, NULL, 0), RAGTIDE_OK);
  const ragtide_table_info *in = ragtide_table_get_info(t);
  cr_assert_str_eq(in->run_id, "rag-run");
  cr_assert_str_eq(in->base_run_id, "base-run");
  cr_assert_eq(in->created_at, 200);
  cr_assert_eq(in->candidates, 2);
  uint64_t from_ov = 0;
  for (uint32_t i1 = 0; i1 < 6; i1++)
    for (uint32_t i2 = 0; i2 < 6; i2++) {
      ragtide_provenance ovp = (ragtide_provenance)((i1 + i2) % 4), p, p1;
      uint32_t nx, nx1, day;
      ragtide_table_get_idx(t, i1, i2, 0, &nx, &p, &day);
      ragtide_table_get_idx(t, i1, i2, 1, &nx1, &p1, NULL);
      if (ovp == RAGTIDE_PROV_RAG || ovp == RAGTIDE_PROV_FALLBACK) {
        from_ov++;
        cr_assert_eq(p, ovp);
        cr_assert_eq(nx, (i1 * i2) % 6);
        cr_assert_eq(day, 200);
        cr_assert_eq(p1, RAGTIDE_PROV_NONE, "overlay candidates replace all of base's");
      } else {
        cr_assert_eq(p, RAGTIDE_PROV_BASE);
        cr_assert_eq(nx, (i1 + i2) % 6);
        cr_assert_eq(day, 100);
        cr_assert_eq(nx1, (i1 + 1) % 6);
      }
    }
  cr_assert_eq(in->count_by_prov[2] + in->count_by_prov[3], from_ov);
  cr_assert_eq(in->count_by_prov[1], 36 - from_ov);
  ragtide_table_close(t);
}

Test(table, merge_refuses_catalog_and_run_mismatch) {
  ragtide_table_builder *m = (ragtide_table_builder *)1;
  char eb[512];
  write_merge_inputs(INFO.catalog_hash ^ 1, "base-run");
  cr_assert_eq(merge_files(&m, eb, sizeof eb), RAGTIDE_E_MISMATCH);
  cr_assert_null(m);
  cr_assert_not_null(strstr(eb, "catalogs differ"), "%s", eb);
  write_merge_inputs(INFO.catalog_hash, "some-other-run");
  cr_assert_eq(merge_files(&m, eb, sizeof eb), RAGTIDE_E_MISMATCH);
  cr_assert_not_null(strstr(eb, "some-other-run"), "%s", eb);
  cr_assert_not_null(strstr(eb, "base-run"), "%s", eb);
  write_merge_inputs(INFO.catalog_hash, ""); /* overlay names no base: allowed */
  cr_assert_eq(merge_files(&m, eb, sizeof eb), RAGTIDE_OK, "%s", eb);
  ragtide_builder_free(m);
}

Test(table, builder_from_table_copies) {
  ragtide_table_builder *b = make_builder(7, 2, 1, 0);
  size_t l1, l2;
  uint8_t *d1 = serialize(b, &l1);
  cr_assert_eq(ragtide_builder_write(b, tpath("f"), NULL, 0), RAGTIDE_OK);
  ragtide_builder_free(b);
  ragtide_table *t;
  cr_assert_eq(ragtide_table_open(tpath("f"), &t, NULL, 0), RAGTIDE_OK);
  ragtide_table_builder *c = ragtide_builder_from_table(t, 0);
  uint8_t *d2 = serialize(c, &l2);
  cr_assert_eq(l1, l2);
  cr_assert_arr_eq(d1, d2, l1, "re-serializing an opened table gives the same bytes");
  free(d1);
  free(d2);
  ragtide_builder_free(c);
  ragtide_table_close(t);
}

/* Mutate the header and the decompressed body (then recompress and reseal,
 * so the checksum passes and the parser itself is exercised): open must
 * fail cleanly or give a table whose every pair can be read. */
Test(table, resealed_garbage_never_crashes) {
  ragtide_table_builder *b = make_builder(7, 2, 1, 0);
  size_t n;
  uint8_t *d = serialize(b, &n);
  ragtide_builder_free(b);
  uint32_t hl = le32(d + 12);
  uint64_t bl = le64(d + 16), rl = le64(d + 24);
  uint8_t *raw = malloc(rl);
  cr_assert_eq(ZSTD_decompress(raw, rl, d + 32 + hl, bl), rl);
  size_t zcap = ZSTD_compressBound(rl);
  uint8_t *f = malloc(32 + hl + zcap + 16), *m = malloc(rl);
  srand(11);
  int opened = 0, failed = 0;
  for (int it = 0; it < 400; it++) {
    uint8_t hdr[8192];
    cr_assert_lt(hl, sizeof hdr);
    memcpy(hdr, d + 32, hl);
    memcpy(m, raw, rl);
    int flips = 1 + rand() % 3;
    for (int k = 0; k < flips; k++) {
      if (it % 2) hdr[rand() % hl] = (uint8_t)rand();
      else m[rand() % rl] = (uint8_t)rand();
    }
    memcpy(f, d, 32);
    memcpy(f + 32, hdr, hl);
    size_t zl = ZSTD_compress(f + 32 + hl, zcap, m, rl, 1);
    cr_assert(!ZSTD_isError(zl));
    f[16] = (uint8_t)zl;
    f[17] = (uint8_t)(zl >> 8);
    f[18] = (uint8_t)(zl >> 16);
    memcpy(f + 32 + hl + zl, "RTTBLEND", 8);
    size_t total = 32 + hl + zl + 16;
    reseal(f, total);
    write_bytes(tpath("fz"), f, total);
    ragtide_table *t = NULL;
    char eb[1024];
    int rc = ragtide_table_open(tpath("fz"), &t, eb, sizeof eb);
    if (rc) {
      failed++;
      cr_assert(rc == RAGTIDE_E_CORRUPT || rc == RAGTIDE_E_NOMEM, "iteration %d: %d %s", it, rc, eb);
      cr_assert_null(t);
      continue;
    }
    opened++;
    const ragtide_table_info *in = ragtide_table_get_info(t);
    for (uint32_t i1 = 0; i1 < in->n_clusters; i1++)
      for (uint32_t i2 = 0; i2 < in->n_clusters; i2++)
        for (uint32_t j = 0; j < in->candidates; j++) {
          uint32_t nx;
          cr_assert_eq(ragtide_table_get_idx(t, i1, i2, j, &nx, NULL, NULL), RAGTIDE_OK);
          cr_assert(nx == UINT32_MAX || nx < in->n_clusters);
        }
    ragtide_table_close(t);
  }
  cr_assert_gt(failed, 0);
  cr_assert_gt(opened, 0, "flips inside strings or values still give a readable table");
  free(raw);
  free(f);
  free(m);
  free(d);
}
