/* table_read.c — the serving reader: verify a table file and decode its
 * columns into flat arrays so a lookup is two id->index probes and one load.
 * Nothing here is lazily initialised, so concurrent readers need no locks. */
#include "table_format.h"
#include "msgpack_bound.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>


unsigned ragtide_version_number(void) { return RAGTIDE_VERSION_NUMBER; }
const char *ragtide_version_string(void) { return RAGTIDE_VERSION_STRING; }

const char *ragtide_strerror(int status) {
  switch (status) {
  case RAGTIDE_OK: return "ok";
  case RAGTIDE_E_IO: return "I/O error";
  case RAGTIDE_E_NOMEM: return "out of memory";
  case RAGTIDE_E_MAGIC: return "not a ragtide table (bad magic)";
  case RAGTIDE_E_VERSION: return "unsupported table format version";
  case RAGTIDE_E_CHECKSUM: return "checksum mismatch (file altered or truncated)";
  case RAGTIDE_E_CORRUPT: return "table structure invalid";
  case RAGTIDE_E_NOTFOUND: return "cluster id not in the table's catalog";
  case RAGTIDE_E_ARG: return "invalid argument";
  case RAGTIDE_E_MISMATCH: return "tables have different catalogs or runs";
  default: return "unknown status";
  }
}

const char *ragtide_provenance_name(ragtide_provenance p) {
  static const char *const names[RAGTIDE_PROV_COUNT] = {"none", "base", "rag", "fallback", "retrieval"};
  return (unsigned)p < RAGTIDE_PROV_COUNT ? names[p] : "?";
}

const char *ragtide_status_name(int status) {
  switch (status) {
  case RAGTIDE_OK: return "ok";
  case RAGTIDE_E_IO: return "io";
  case RAGTIDE_E_NOMEM: return "nomem";
  case RAGTIDE_E_MAGIC: return "magic";
  case RAGTIDE_E_VERSION: return "version";
  case RAGTIDE_E_CHECKSUM: return "checksum";
  case RAGTIDE_E_CORRUPT: return "corrupt";
  case RAGTIDE_E_NOTFOUND: return "notfound";
  case RAGTIDE_E_ARG: return "arg";
  case RAGTIDE_E_MISMATCH: return "mismatch";
  default: return "unknown";
  }
}

void ragtide_table_close(ragtide_table *t) {
  if (!t) return;
  free(t->model);
  free(t->run_id);
  free(t->base_run_id);
  free(t->ids);
  free(t->ent);
  free(t->day);
  free(t->direct);
  free(t->hkey);
  free(t->hval);
  free(t);
}

/* ---- msgpack helpers: every accessor checks the type it expects. ---- */

static int key_is(const msgpack_object *k, const char *name) {
  size_t l = strlen(name);
  return k->type == MSGPACK_OBJECT_STR && k->via.str.size == l && memcmp(k->via.str.ptr, name, l) == 0;
}

static int get_u64(const msgpack_object *o, uint64_t *v) {
  if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) return -1;
  *v = o->via.u64;
  return 0;
}

static int get_i64(const msgpack_object *o, int64_t *v) {
  if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
    *v = o->via.i64;
    return 0;
  }
  if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
    *v = (int64_t)o->via.u64;
    return 0;
  }
  return -1;
}

static int get_u32(const msgpack_object *o, uint32_t *v) {
  uint64_t x;
  if (get_u64(o, &x) || x > UINT32_MAX) return -1;
  *v = (uint32_t)x;
  return 0;
}

static int get_str(const msgpack_object *o, char **out) {
  if (o->type != MSGPACK_OBJECT_STR) return -1;
  char *s = malloc(o->via.str.size + 1);
  if (!s) return -2;
  memcpy(s, o->via.str.ptr, o->via.str.size);
  s[o->via.str.size] = '\0';
  free(*out);
  *out = s;
  return 0;
}

/* ---- header ---- */

static int parse_header(ragtide_table *t, const char *path, const uint8_t *p, size_t len, char *eb,
                        size_t ec) {
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  int rc = RAGTIDE_OK;
  size_t whole = 0; /* declared lengths checked before msgpack-c allocates for them */
  if (rt_mp_bounded(p, len, &whole) != RT_MP_OK || whole != len ||
      msgpack_unpack_next(&u, (const char *)p, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len ||
      u.data.type != MSGPACK_OBJECT_MAP) {
    rc = fail(eb, ec, RAGTIDE_E_CORRUPT, "%s: header at byte %d is not one msgpack map of %zu bytes",
              path, TBL_PREAMBLE, len);
    goto out;
  }
  int have_ids = 0, have_cand = 0;
  uint32_t n_decl = UINT32_MAX;
  const msgpack_object_map *m = &u.data.via.map;
  for (uint32_t i = 0; i < m->size; i++) {
    const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
    int bad = 0;
    ragtide_table_info *in = &t->info;
    if (key_is(k, "cluster_ids")) {
      if (v->type != MSGPACK_OBJECT_BIN || v->via.bin.size % 4 != 0 ||
          v->via.bin.size / 4 > TBL_MAX_CLUSTERS || v->via.bin.size == 0) {
        bad = 1;
      } else {
        t->n = v->via.bin.size / 4;
        free(t->ids);
        t->ids = malloc((size_t)t->n * 4);
        if (!t->ids) {
          rc = fail(eb, ec, RAGTIDE_E_NOMEM, "%s: out of memory for %u cluster ids", path, t->n);
          goto out;
        }
        for (uint32_t j = 0; j < t->n; j++) t->ids[j] = tbl_get32((const uint8_t *)v->via.bin.ptr + 4 * j);
        have_ids = 1;
      }
    } else if (key_is(k, "n_clusters")) bad = get_u32(v, &n_decl);
    else if (key_is(k, "candidates")) {
      bad = get_u32(v, &t->cand) || t->cand == 0 || t->cand > TBL_MAX_CANDIDATES;
      have_cand = !bad;
    } else if (key_is(k, "k")) bad = get_u32(v, &in->k);
    else if (key_is(k, "created_at")) bad = get_i64(v, &in->created_at);
    else if (key_is(k, "window_start")) bad = get_i64(v, &in->window_start);
    else if (key_is(k, "window_end")) bad = get_i64(v, &in->window_end);
    else if (key_is(k, "catalog_hash")) bad = get_u64(v, &in->catalog_hash);
    else if (key_is(k, "template_hash")) bad = get_u64(v, &in->template_hash);
    else if (key_is(k, "config_hash")) bad = get_u64(v, &in->config_hash);
    else if (key_is(k, "model")) bad = get_str(v, &t->model);
    else if (key_is(k, "run_id")) bad = get_str(v, &t->run_id);
    else if (key_is(k, "base_run_id")) bad = get_str(v, &t->base_run_id);
    else if (key_is(k, "count_by_prov")) {
      if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size != 4) bad = 1; /* 1.0 layout; recounted below */
      for (uint32_t j = 0; !bad && j < 4; j++) bad = get_u64(&v->via.array.ptr[j], &in->count_by_prov[j]);
    }
    /* Any other key is a field of a later minor version: ignored on purpose. */
    if (bad == -2) {
      rc = fail(eb, ec, RAGTIDE_E_NOMEM, "%s: out of memory reading the header", path);
      goto out;
    }
    if (bad) {
      rc = fail(eb, ec, RAGTIDE_E_CORRUPT, "%s: header field \"%.*s\" has a wrong type or value", path,
                k->type == MSGPACK_OBJECT_STR ? (int)k->via.str.size : 1,
                k->type == MSGPACK_OBJECT_STR ? k->via.str.ptr : "?");
      goto out;
    }
  }
  if (!have_ids || !have_cand) {
    rc = fail(eb, ec, RAGTIDE_E_CORRUPT, "%s: header lacks required field \"%s\"", path,
              have_ids ? "candidates" : "cluster_ids");
    goto out;
  }
  if (n_decl != UINT32_MAX && n_decl != t->n) {
    rc = fail(eb, ec, RAGTIDE_E_CORRUPT, "%s: header says n_clusters=%u but lists %u cluster ids", path,
              n_decl, t->n);
    goto out;
  }
  for (uint32_t j = 1; j < t->n; j++)
    if (t->ids[j] <= t->ids[j - 1]) {
      rc = fail(eb, ec, RAGTIDE_E_CORRUPT, "%s: header cluster_ids not strictly ascending at index %u",
                path, j);
      goto out;
    }
  t->npairs = (uint64_t)t->n * t->n;
  if (t->npairs * t->cand > TBL_MAX_ENTRIES)
    rc = fail(eb, ec, RAGTIDE_E_CORRUPT, "%s: %u clusters x %u candidates exceeds the one-file limit", path,
              t->n, t->cand);
out:
  msgpack_unpacked_destroy(&u);
  return rc;
}

/* ---- body columns ---- */

static const msgpack_object *map_get(const msgpack_object *m, const char *name) {
  if (m->type != MSGPACK_OBJECT_MAP) return NULL;
  for (uint32_t i = 0; i < m->via.map.size; i++)
    if (key_is(&m->via.map.ptr[i].key, name)) return &m->via.map.ptr[i].val;
  return NULL;
}

/* Fetch a bin column of exactly `want` bytes. */
static const uint8_t *col(const msgpack_object *m, const char *name, uint64_t want) {
  const msgpack_object *o = map_get(m, name);
  if (!o || o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != want) return NULL;
  return (const uint8_t *)o->via.bin.ptr;
}

static int decode_rank(ragtide_table *t, const msgpack_object *r, uint32_t j, const char *path, char *eb,
                       size_t ec) {
  uint64_t np = t->npairs;
  uint32_t nw, dw, dbase;
  const msgpack_object *o;
  if (!(o = map_get(r, "next_w")) || get_u32(o, &nw) || nw > 4 || !(o = map_get(r, "day_w")) ||
      get_u32(o, &dw) || dw > 4 || !(o = map_get(r, "day_base")) || get_u32(o, &dbase))
    return fail(eb, ec, RAGTIDE_E_CORRUPT, "%s: body rank %u: missing or bad next_w/day_w/day_base", path,
                j);
  const uint8_t *next = col(r, "next", nw * np), *prov = col(r, "prov", (np + 3) / 4),
                *day = col(r, "day", dw * np);
  /* Format 1.1: a bit per pair marking "rag" entries that are retrieval. */
  const uint8_t *retr = map_get(r, "retrieval") ? col(r, "retrieval", (np + 7) / 8) : NULL;
  if (map_get(r, "retrieval") && !retr)
    return fail(eb, ec, RAGTIDE_E_CORRUPT, "%s: body rank %u: column retrieval is not %" PRIu64 " bits long", path,
                j, np);
  if ((nw && !next) || !prov || (dw && !day))
    return fail(eb, ec, RAGTIDE_E_CORRUPT,
                "%s: body rank %u: a column (next/prov/day) is missing or not %" PRIu64 " entries long",
                path, j, np);
  uint32_t *ent = t->ent + j * np, *dd = t->day + j * np;
  for (uint64_t i = 0; i < np; i++) {
    uint32_t pv = (prov[i >> 2] >> ((i & 3) * 2)) & 3u;
    if (pv == RAGTIDE_PROV_NONE) {
      ent[i] = 0;
      dd[i] = 0;
      continue;
    }
    uint32_t v = 0, d = 0;
    for (uint32_t b = 0; b < nw; b++) v |= (uint32_t)next[b * np + i] << (8 * b);
    for (uint32_t b = 0; b < dw; b++) d |= (uint32_t)day[b * np + i] << (8 * b);
    if (v >= t->n)
      return fail(eb, ec, RAGTIDE_E_CORRUPT, "%s: body rank %u pair %" PRIu64 ": next index %u >= %u clusters",
                  path, j, i, v, t->n);
    if (retr && pv == RAGTIDE_PROV_RAG && (retr[i >> 3] >> (i & 7)) & 1u) pv = RAGTIDE_PROV_RETRIEVAL;
    ent[i] = (pv << TBL_PROV_SHIFT) | v;
    dd[i] = dbase + d;
  }
  return RAGTIDE_OK;
}

static int parse_body(ragtide_table *t, const char *path, const uint8_t *z, size_t zlen, uint64_t raw_len,
                      char *eb, size_t ec) {
  /* Bound the decompressed size by what the columns can take, so a forged
   * length cannot make us allocate without limit. */
  uint64_t bound = t->npairs * t->cand * 9 + 4096 * (uint64_t)t->cand + 4096;
  if (raw_len > bound)
    return fail(eb, ec, RAGTIDE_E_CORRUPT, "%s: body claims %" PRIu64 " bytes, more than %" PRIu64
                " for %u clusters", path, raw_len, bound, t->n);
  unsigned long long fcs = ZSTD_getFrameContentSize(z, zlen);
  if (fcs != raw_len)
    return fail(eb, ec, RAGTIDE_E_CORRUPT, "%s: body at byte %" PRIu64 " is not a zstd frame of %" PRIu64
                " bytes", path, (uint64_t)TBL_PREAMBLE, raw_len);
  uint8_t *raw = malloc(raw_len ? raw_len : 1);
  size_t np = (size_t)(t->npairs * t->cand);
  t->ent = malloc(np * 4);
  t->day = malloc(np * 4);
  if (!raw || !t->ent || !t->day) {
    free(raw);
    return fail(eb, ec, RAGTIDE_E_NOMEM, "%s: out of memory decoding %" PRIu64 " pairs", path, t->npairs);
  }
  size_t got = ZSTD_decompress(raw, raw_len, z, zlen);
  if (ZSTD_isError(got) || got != raw_len) {
    free(raw);
    return fail(eb, ec, RAGTIDE_E_CORRUPT, "%s: body does not decompress: %s", path,
                ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short output");
  }
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  int rc = RAGTIDE_OK;
  const msgpack_object *ranks, *pairs;
  uint64_t npairs_decl = 0;
  size_t whole = 0;
  if (rt_mp_bounded(raw, raw_len, &whole) != RT_MP_OK || whole != raw_len ||
      msgpack_unpack_next(&u, (const char *)raw, raw_len, &off) != MSGPACK_UNPACK_SUCCESS || off != raw_len ||
      u.data.type != MSGPACK_OBJECT_MAP) {
    rc = fail(eb, ec, RAGTIDE_E_CORRUPT, "%s: decompressed body is not one msgpack map", path);
  } else if (!(pairs = map_get(&u.data, "pairs")) || get_u64(pairs, &npairs_decl) ||
             npairs_decl != t->npairs) {
    rc = fail(eb, ec, RAGTIDE_E_CORRUPT, "%s: body \"pairs\" is missing or not %u*%u", path, t->n, t->n);
  } else if (!(ranks = map_get(&u.data, "ranks")) || ranks->type != MSGPACK_OBJECT_ARRAY ||
             ranks->via.array.size != t->cand) {
    rc = fail(eb, ec, RAGTIDE_E_CORRUPT, "%s: body \"ranks\" is missing or does not hold %u columns sets",
              path, t->cand);
  } else {
    for (uint32_t j = 0; j < t->cand && rc == RAGTIDE_OK; j++)
      rc = decode_rank(t, &ranks->via.array.ptr[j], j, path, eb, ec);
  }
  msgpack_unpacked_destroy(&u);
  free(raw);
  return rc;
}

/* ---- id -> dense index ---- */

static inline uint32_t id_hash(uint32_t id) {
  uint64_t x = id * 0x9e3779b97f4a7c15ULL;
  return (uint32_t)(x >> 32);
}

static int build_index(ragtide_table *t) {
  uint32_t lo = t->ids[0], hi = t->ids[t->n - 1];
  uint64_t span = (uint64_t)hi - lo + 1;
  if (span <= 8ull * t->n + 1024) {
    t->direct = malloc(span * sizeof *t->direct);
    if (!t->direct) return RAGTIDE_E_NOMEM;
    memset(t->direct, 0xff, span * sizeof *t->direct);
    for (uint32_t i = 0; i < t->n; i++) t->direct[t->ids[i] - lo] = (int32_t)i;
    t->id_min = lo;
    t->direct_len = (uint32_t)span;
    return RAGTIDE_OK;
  }
  uint32_t cap = 16;
  while (cap < 2 * t->n) cap *= 2;
  t->hkey = calloc(cap, sizeof *t->hkey);
  t->hval = malloc(cap * sizeof *t->hval);
  if (!t->hkey || !t->hval) return RAGTIDE_E_NOMEM;
  memset(t->hval, 0xff, cap * sizeof *t->hval);
  t->hmask = cap - 1;
  for (uint32_t i = 0; i < t->n; i++) {
    uint32_t h = id_hash(t->ids[i]) & t->hmask;
    while (t->hval[h] >= 0) h = (h + 1) & t->hmask;
    t->hkey[h] = t->ids[i];
    t->hval[h] = (int32_t)i;
  }
  return RAGTIDE_OK;
}

static inline int32_t index_of(const ragtide_table *t, uint32_t id) {
  if (t->direct) {
    uint32_t o = id - t->id_min; /* wraps for id < id_min, then fails the bound */
    return o < t->direct_len ? t->direct[o] : -1;
  }
  uint32_t h = id_hash(id) & t->hmask;
  for (;;) {
    int32_t v = t->hval[h];
    if (v < 0 || t->hkey[h] == id) return v;
    h = (h + 1) & t->hmask;
  }
}

int32_t ragtide_table_index_of(const ragtide_table *t, uint32_t id) { return t ? index_of(t, id) : -1; }

/* ---- open ---- */

static int read_all(const char *path, uint8_t **out, size_t *len, char *eb, size_t ec) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(eb, ec, RAGTIDE_E_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    int e = errno;
    close(fd);
    return fail(eb, ec, RAGTIDE_E_IO, "%s: not a regular file%s%s", path, e ? ": " : "", e ? strerror(e) : "");
  }
  size_t n = (size_t)st.st_size, got = 0;
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) {
    close(fd);
    return fail(eb, ec, RAGTIDE_E_NOMEM, "%s: out of memory for %zu bytes", path, n);
  }
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int e = r < 0 ? errno : 0;
      free(buf);
      close(fd);
      return fail(eb, ec, RAGTIDE_E_IO, "%s: read failed at byte %zu: %s", path, got,
                  e ? strerror(e) : "file shrank while reading");
    }
    got += (size_t)r;
  }
  close(fd);
  *out = buf;
  *len = n;
  return RAGTIDE_OK;
}

/* Verify the framing and checksum of an in-memory file image; on success
 * set the section offsets. Shared by open and by callers that only check. */
static int verify_frame(const char *path, const uint8_t *b, size_t n, uint32_t *hl, uint64_t *bl,
                        uint64_t *raw, uint16_t *minor, char *eb, size_t ec) {
  size_t m = n < TBL_MAGIC_LEN ? n : TBL_MAGIC_LEN;
  if (memcmp(b, TBL_MAGIC, m) != 0)
    return fail(eb, ec, RAGTIDE_E_MAGIC, "%s: not a ragtide table (first bytes are not \"RAGTIDE\\x1a\"); "
                "check the path", path);
  if (n < TBL_MAGIC_LEN + 4)
    return fail(eb, ec, RAGTIDE_E_CORRUPT, "%s: truncated: %zu bytes, shorter than the %d-byte preamble",
                path, n, TBL_PREAMBLE);
  uint16_t major = tbl_get16(b + 8);
  *minor = tbl_get16(b + 10);
  if (major != RAGTIDE_FORMAT_MAJOR)
    return fail(eb, ec, RAGTIDE_E_VERSION, "%s: table format version %u.%u; this reader supports "
                "major version %d only: use a libragtide/ragtide built for format %u", path, major, *minor,
                RAGTIDE_FORMAT_MAJOR, major);
  if (n < TBL_PREAMBLE + TBL_TRAILER)
    return fail(eb, ec, RAGTIDE_E_CORRUPT, "%s: truncated: %zu bytes, shorter than preamble + trailer (%d)",
                path, n, TBL_PREAMBLE + TBL_TRAILER);
  *hl = tbl_get32(b + 12);
  *bl = tbl_get64(b + 16);
  *raw = tbl_get64(b + 24);
  uint64_t need = (uint64_t)TBL_PREAMBLE + *hl + TBL_TRAILER;
  if (*bl > UINT64_MAX / 2 || need + *bl != n) {
    if (*bl <= UINT64_MAX / 2 && need + *bl > n)
      return fail(eb, ec, RAGTIDE_E_CORRUPT, "%s: truncated: %zu bytes but its sections (header %u, body %"
                  PRIu64 ") need %" PRIu64 "; re-copy or re-publish the table", path, n, *hl, *bl, need + *bl);
    return fail(eb, ec, RAGTIDE_E_CORRUPT, "%s: section lengths in the preamble (header %u, body %" PRIu64
                ") do not add up to the file size %zu", path, *hl, *bl, n);
  }
  const uint8_t *tr = b + n - TBL_TRAILER;
  if (memcmp(tr, TBL_TRAILER_MAGIC, 8) != 0)
    return fail(eb, ec, RAGTIDE_E_CORRUPT, "%s: trailer at byte %zu lacks its \"RTTBLEND\" marker", path,
                n - TBL_TRAILER);
  uint64_t want = tbl_get64(tr + 8), got = XXH3_64bits(b, n - 8);
  if (want != got)
    return fail(eb, ec, RAGTIDE_E_CHECKSUM, "%s: checksum mismatch (stored %016" PRIx64 ", computed %016"
                PRIx64 "): the file was altered or damaged; restore it (ragtide rollback) or re-publish",
                path, want, got);
  return RAGTIDE_OK;
}

int ragtide_table_open(const char *path, ragtide_table **out, char *errbuf, size_t errcap) {
  if (errbuf && errcap) errbuf[0] = '\0';
  if (!path || !out) return fail(errbuf, errcap, RAGTIDE_E_ARG, "ragtide_table_open: NULL argument");
  *out = NULL;
  uint8_t *b = NULL;
  size_t n = 0;
  int rc = read_all(path, &b, &n, errbuf, errcap);
  if (rc) return rc;
  uint32_t hl = 0;
  uint64_t bl = 0, raw = 0;
  uint16_t minor = 0;
  ragtide_table *t = NULL;
  if (n == 0) {
    rc = fail(errbuf, errcap, RAGTIDE_E_CORRUPT, "%s: empty file (truncated table?)", path);
    goto done;
  }
  if ((rc = verify_frame(path, b, n, &hl, &bl, &raw, &minor, errbuf, errcap))) goto done;
  t = calloc(1, sizeof *t);
  if (!t) {
    rc = fail(errbuf, errcap, RAGTIDE_E_NOMEM, "%s: out of memory", path);
    goto done;
  }
  if ((rc = parse_header(t, path, b + TBL_PREAMBLE, hl, errbuf, errcap))) goto done;
  if ((rc = parse_body(t, path, b + TBL_PREAMBLE + hl, bl, raw, errbuf, errcap))) goto done;
  if (build_index(t)) {
    rc = fail(errbuf, errcap, RAGTIDE_E_NOMEM, "%s: out of memory for the id index", path);
    goto done;
  }
  const char *empty = "";
  if (!t->model && !(t->model = strdup(empty))) rc = RAGTIDE_E_NOMEM;
  if (!t->run_id && !(t->run_id = strdup(empty))) rc = RAGTIDE_E_NOMEM;
  if (!t->base_run_id && !(t->base_run_id = strdup(empty))) rc = RAGTIDE_E_NOMEM;
  if (rc) {
    fail(errbuf, errcap, rc, "%s: out of memory", path);
    goto done;
  }
  t->info.version_major = RAGTIDE_FORMAT_MAJOR;
  t->info.version_minor = minor;
  t->info.n_clusters = t->n;
  t->info.candidates = t->cand;
  t->info.model = t->model;
  t->info.run_id = t->run_id;
  t->info.base_run_id = t->base_run_id;
  /* Counts are recomputed rather than trusted: they describe this body. */
  memset(t->info.count_by_prov, 0, sizeof t->info.count_by_prov);
  for (uint64_t i = 0; i < t->npairs; i++) t->info.count_by_prov[t->ent[i] >> TBL_PROV_SHIFT]++;
done:
  free(b);
  if (rc) {
    ragtide_table_close(t);
    return rc;
  }
  *out = t;
  return RAGTIDE_OK;
}

/* ---- accessors ---- */

const ragtide_table_info *ragtide_table_get_info(const ragtide_table *t) { return t ? &t->info : NULL; }

const uint32_t *ragtide_table_cluster_ids(const ragtide_table *t, uint32_t *n) {
  if (!t) return NULL;
  if (n) *n = t->n;
  return t->ids;
}

int ragtide_table_lookup(const ragtide_table *t, uint32_t c1, uint32_t c2, uint32_t *next,
                         ragtide_provenance *prov) {
  if (!t || !prov) return RAGTIDE_E_ARG;
  int32_t i1 = index_of(t, c1), i2 = index_of(t, c2);
  if (i1 < 0 || i2 < 0) return RAGTIDE_E_NOTFOUND;
  uint32_t e = t->ent[(uint64_t)i1 * t->n + (uint32_t)i2];
  *prov = (ragtide_provenance)(e >> TBL_PROV_SHIFT);
  if (e && next) *next = t->ids[e & TBL_IDX_MASK];
  return RAGTIDE_OK;
}

int ragtide_table_candidates(const ragtide_table *t, uint32_t c1, uint32_t c2, ragtide_candidate *out,
                             size_t cap) {
  if (!t || (!out && cap)) return RAGTIDE_E_ARG;
  int32_t i1 = index_of(t, c1), i2 = index_of(t, c2);
  if (i1 < 0 || i2 < 0) return RAGTIDE_E_NOTFOUND;
  uint64_t p = (uint64_t)i1 * t->n + (uint32_t)i2;
  int k = 0;
  for (uint32_t j = 0; j < t->cand && (size_t)k < cap; j++) {
    uint32_t e = t->ent[j * t->npairs + p];
    if (!e) continue;
    out[k].next = t->ids[e & TBL_IDX_MASK];
    out[k].prov = (ragtide_provenance)(e >> TBL_PROV_SHIFT);
    out[k].day = t->day[j * t->npairs + p];
    k++;
  }
  return k;
}

int ragtide_table_get_idx(const ragtide_table *t, uint32_t i1, uint32_t i2, uint32_t j, uint32_t *next_idx,
                          ragtide_provenance *prov, uint32_t *day) {
  if (!t || i1 >= t->n || i2 >= t->n || j >= t->cand) return RAGTIDE_E_ARG;
  uint64_t at = j * t->npairs + (uint64_t)i1 * t->n + i2;
  uint32_t e = t->ent[at];
  if (next_idx) *next_idx = e ? (e & TBL_IDX_MASK) : UINT32_MAX;
  if (prov) *prov = (ragtide_provenance)(e >> TBL_PROV_SHIFT);
  if (day) *day = t->day[at];
  return RAGTIDE_OK;
}

int ragtide_table_verify_file(const char *path, char *errbuf, size_t errcap) {
  ragtide_table *t = NULL;
  int rc = ragtide_table_open(path, &t, errbuf, errcap);
  ragtide_table_close(t);
  return rc;
}
