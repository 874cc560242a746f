/* table_build.c — the table builder: accumulate pairs in flat arrays and
 * serialize them deterministically (same inputs -> same bytes: fixed key
 * order, no pointers or padding in the output, no clock reads here). Also the
 * copy/merge helpers used by `ragtide merge` and incremental refreshes. */
#include "table_format.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>


static char *dupstr(const char *s) {
  s = s ? s : "";
  size_t l = strlen(s);
  char *d = malloc(l + 1);
  if (d) memcpy(d, s, l + 1);
  return d;
}

ragtide_table_builder *ragtide_builder_new(const uint32_t *cluster_ids, uint32_t n, uint32_t candidates) {
  if (!cluster_ids || n == 0 || n > TBL_MAX_CLUSTERS || candidates == 0 || candidates > TBL_MAX_CANDIDATES)
    return NULL;
  for (uint32_t i = 1; i < n; i++)
    if (cluster_ids[i] <= cluster_ids[i - 1]) return NULL;
  uint64_t np = (uint64_t)n * n;
  if (np * candidates > TBL_MAX_ENTRIES) return NULL;
  ragtide_table_builder *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  b->n = n;
  b->cand = candidates;
  b->npairs = np;
  b->k = 2;
  b->ids = malloc((size_t)n * 4);
  b->ent = calloc((size_t)(np * candidates), 4);
  b->day = calloc((size_t)(np * candidates), 4);
  b->model = dupstr("");
  b->run_id = dupstr("");
  b->base_run_id = dupstr("");
  if (!b->ids || !b->ent || !b->day || !b->model || !b->run_id || !b->base_run_id) {
    ragtide_builder_free(b);
    return NULL;
  }
  memcpy(b->ids, cluster_ids, (size_t)n * 4);
  return b;
}

void ragtide_builder_free(ragtide_table_builder *b) {
  if (!b) return;
  free(b->ids);
  free(b->ent);
  free(b->day);
  free(b->model);
  free(b->run_id);
  free(b->base_run_id);
  free(b);
}

int ragtide_builder_set(ragtide_table_builder *b, uint32_t i1, uint32_t i2, uint32_t j, uint32_t next_idx,
                        ragtide_provenance prov, uint32_t day) {
  if (!b || i1 >= b->n || i2 >= b->n || j >= b->cand || (unsigned)prov >= RAGTIDE_PROV_COUNT)
    return RAGTIDE_E_ARG;
  uint64_t at = j * b->npairs + (uint64_t)i1 * b->n + i2;
  if (prov == RAGTIDE_PROV_NONE) { /* clearing: canonical zeros keep output deterministic */
    b->ent[at] = 0;
    b->day[at] = 0;
    return RAGTIDE_OK;
  }
  if (next_idx >= b->n) return RAGTIDE_E_ARG;
  b->ent[at] = ((uint32_t)prov << TBL_PROV_SHIFT) | next_idx;
  b->day[at] = day;
  return RAGTIDE_OK;
}

int ragtide_builder_set_info(ragtide_table_builder *b, const ragtide_table_info *info) {
  if (!b || !info) return RAGTIDE_E_ARG;
  char *m = dupstr(info->model), *r = dupstr(info->run_id), *br = dupstr(info->base_run_id);
  if (!m || !r || !br) {
    free(m);
    free(r);
    free(br);
    return RAGTIDE_E_NOMEM;
  }
  free(b->model);
  free(b->run_id);
  free(b->base_run_id);
  b->model = m;
  b->run_id = r;
  b->base_run_id = br;
  b->k = info->k ? info->k : 2;
  b->created_at = info->created_at;
  b->window_start = info->window_start;
  b->window_end = info->window_end;
  b->catalog_hash = info->catalog_hash;
  b->template_hash = info->template_hash;
  b->config_hash = info->config_hash;
  return RAGTIDE_OK;
}

/* ---- serialization ---- */

static void pack_key(msgpack_packer *pk, const char *k) {
  size_t l = strlen(k);
  msgpack_pack_str(pk, l);
  msgpack_pack_str_body(pk, k, l);
}

static void pack_strv(msgpack_packer *pk, const char *k, const char *v) {
  pack_key(pk, k);
  size_t l = strlen(v);
  msgpack_pack_str(pk, l);
  msgpack_pack_str_body(pk, v, l);
}

static void pack_header(msgpack_packer *pk, const ragtide_table_builder *b) {
  uint64_t counts[RAGTIDE_PROV_COUNT] = {0};
  for (uint64_t i = 0; i < b->npairs; i++) counts[b->ent[i] >> TBL_PROV_SHIFT]++;
  msgpack_pack_map(pk, 17);
  pack_key(pk, "n_clusters");
  msgpack_pack_uint32(pk, b->n);
  pack_key(pk, "cluster_ids");
  msgpack_pack_bin(pk, (size_t)b->n * 4);
  for (uint32_t i = 0; i < b->n; i++) {
    uint8_t le[4];
    tbl_put32(le, b->ids[i]);
    msgpack_pack_bin_body(pk, le, 4);
  }
  pack_key(pk, "catalog_hash");
  msgpack_pack_uint64(pk, b->catalog_hash);
  pack_key(pk, "k");
  msgpack_pack_uint32(pk, b->k);
  pack_key(pk, "candidates");
  msgpack_pack_uint32(pk, b->cand);
  pack_key(pk, "created_at");
  msgpack_pack_int64(pk, b->created_at);
  pack_key(pk, "window_start");
  msgpack_pack_int64(pk, b->window_start);
  pack_key(pk, "window_end");
  msgpack_pack_int64(pk, b->window_end);
  pack_strv(pk, "model", b->model);
  pack_key(pk, "template_hash");
  msgpack_pack_uint64(pk, b->template_hash);
  pack_key(pk, "config_hash");
  msgpack_pack_uint64(pk, b->config_hash);
  pack_strv(pk, "run_id", b->run_id);
  pack_strv(pk, "base_run_id", b->base_run_id);
  pack_key(pk, "count_by_prov");
  msgpack_pack_array(pk, 4); /* 1.0 layout: retrieval counted as rag */
  for (int i = 0; i < 4; i++)
    msgpack_pack_uint64(pk, counts[i] + (i == RAGTIDE_PROV_RAG ? counts[RAGTIDE_PROV_RETRIEVAL] : 0));
  pack_key(pk, "count_retrieval");
  msgpack_pack_uint64(pk, counts[RAGTIDE_PROV_RETRIEVAL]);
  pack_strv(pk, "columns", "byteplanes-v1"); /* informational; readers ignore it */
  pack_strv(pk, "writer", "libragtide");
}

/* Column as byte planes: all low bytes, then all second bytes, ... so each
 * plane is a homogeneous stream that zstd's entropy coder squeezes well. */
static int pack_planes(msgpack_packer *pk, const uint32_t *v, uint64_t np, uint32_t w, uint8_t *scratch) {
  msgpack_pack_bin(pk, w * np);
  for (uint32_t byte = 0; byte < w; byte++) {
    for (uint64_t i = 0; i < np; i++) scratch[i] = (uint8_t)(v[i] >> (8 * byte));
    msgpack_pack_bin_body(pk, scratch, np);
  }
  return 0;
}

static int pack_body(msgpack_packer *pk, const ragtide_table_builder *b) {
  uint64_t np = b->npairs;
  uint32_t *tmp = malloc(np * 4);
  uint8_t *scratch = malloc(np + 3);
  if (!tmp || !scratch) {
    free(tmp);
    free(scratch);
    return RAGTIDE_E_NOMEM;
  }
  msgpack_pack_map(pk, 2);
  pack_key(pk, "pairs");
  msgpack_pack_uint64(pk, np);
  pack_key(pk, "ranks");
  msgpack_pack_array(pk, b->cand);
  for (uint32_t j = 0; j < b->cand; j++) {
    const uint32_t *ent = b->ent + j * np, *day = b->day + j * np;
    uint32_t maxnext = 0, dmin = UINT32_MAX, dmax = 0;
    for (uint64_t i = 0; i < np; i++) {
      if (!ent[i]) continue;
      uint32_t v = ent[i] & TBL_IDX_MASK;
      if (v > maxnext) maxnext = v;
      if (day[i] < dmin) dmin = day[i];
      if (day[i] > dmax) dmax = day[i];
    }
    if (dmin == UINT32_MAX) dmin = dmax = 0;
    uint32_t nw = tbl_width(maxnext), dw = tbl_width(dmax - dmin);
    uint64_t nretr = 0;
    for (uint64_t i = 0; i < np; i++) nretr += (ent[i] >> TBL_PROV_SHIFT) == RAGTIDE_PROV_RETRIEVAL;
    msgpack_pack_map(pk, nretr ? 7 : 6);
    pack_key(pk, "next_w");
    msgpack_pack_uint32(pk, nw);
    pack_key(pk, "next");
    for (uint64_t i = 0; i < np; i++) tmp[i] = ent[i] & TBL_IDX_MASK;
    pack_planes(pk, tmp, np, nw, scratch);
    pack_key(pk, "prov");
    memset(scratch, 0, (np + 3) / 4);
    for (uint64_t i = 0; i < np; i++) {
      uint32_t pv = ent[i] >> TBL_PROV_SHIFT;
      if (pv == RAGTIDE_PROV_RETRIEVAL) pv = RAGTIDE_PROV_RAG; /* 2 bits on disk; the bit column below tells */
      scratch[i >> 2] |= (uint8_t)(pv << ((i & 3) * 2));
    }
    msgpack_pack_bin(pk, (np + 3) / 4);
    msgpack_pack_bin_body(pk, scratch, (np + 3) / 4);
    if (nretr) { /* format 1.1: which of the "rag" entries are retrieval (1.0 readers ignore the key) */
      pack_key(pk, "retrieval");
      memset(scratch, 0, (np + 7) / 8);
      for (uint64_t i = 0; i < np; i++)
        if ((ent[i] >> TBL_PROV_SHIFT) == RAGTIDE_PROV_RETRIEVAL) scratch[i >> 3] |= (uint8_t)(1u << (i & 7));
      msgpack_pack_bin(pk, (np + 7) / 8);
      msgpack_pack_bin_body(pk, scratch, (np + 7) / 8);
    }
    pack_key(pk, "day_base");
    msgpack_pack_uint32(pk, dmin);
    pack_key(pk, "day_w");
    msgpack_pack_uint32(pk, dw);
    pack_key(pk, "day");
    for (uint64_t i = 0; i < np; i++) tmp[i] = ent[i] ? day[i] - dmin : 0;
    pack_planes(pk, tmp, np, dw, scratch);
  }
  free(tmp);
  free(scratch);
  return RAGTIDE_OK;
}

int ragtide_builder_serialize(const ragtide_table_builder *b, uint8_t **out, size_t *len, char *errbuf,
                              size_t errcap) {
  if (!b || !out || !len) return fail(errbuf, errcap, RAGTIDE_E_ARG, "ragtide_builder_serialize: NULL argument");
  msgpack_sbuffer hs, bs;
  msgpack_sbuffer_init(&hs);
  msgpack_sbuffer_init(&bs);
  msgpack_packer hp, bp;
  msgpack_packer_init(&hp, &hs, msgpack_sbuffer_write);
  msgpack_packer_init(&bp, &bs, msgpack_sbuffer_write);
  pack_header(&hp, b);
  int rc = pack_body(&bp, b);
  uint8_t *f = NULL;
  if (rc || !hs.data || !bs.data) {
    rc = fail(errbuf, errcap, RAGTIDE_E_NOMEM, "out of memory serializing a table of %u clusters", b->n);
    goto out;
  }
  if (hs.size > UINT32_MAX) {
    rc = fail(errbuf, errcap, RAGTIDE_E_ARG, "table header of %zu bytes is too large", hs.size);
    goto out;
  }
  size_t zcap = ZSTD_compressBound(bs.size);
  f = malloc(TBL_PREAMBLE + hs.size + zcap + TBL_TRAILER);
  if (!f) {
    rc = fail(errbuf, errcap, RAGTIDE_E_NOMEM, "out of memory compressing %zu bytes", bs.size);
    goto out;
  }
  size_t zl = ZSTD_compress(f + TBL_PREAMBLE + hs.size, zcap, bs.data, bs.size, TBL_ZSTD_LEVEL);
  if (ZSTD_isError(zl)) {
    rc = fail(errbuf, errcap, RAGTIDE_E_NOMEM, "zstd compression failed: %s", ZSTD_getErrorName(zl));
    goto out;
  }
  memcpy(f, TBL_MAGIC, TBL_MAGIC_LEN);
  tbl_put16(f + 8, RAGTIDE_FORMAT_MAJOR);
  tbl_put16(f + 10, TBL_MINOR);
  tbl_put32(f + 12, (uint32_t)hs.size);
  tbl_put64(f + 16, zl);
  tbl_put64(f + 24, bs.size);
  memcpy(f + TBL_PREAMBLE, hs.data, hs.size);
  size_t tr = TBL_PREAMBLE + hs.size + zl;
  memcpy(f + tr, TBL_TRAILER_MAGIC, 8);
  tbl_put64(f + tr + 8, XXH3_64bits(f, tr + 8));
  *out = f;
  *len = tr + TBL_TRAILER;
  f = NULL;
out:
  free(f);
  msgpack_sbuffer_destroy(&hs);
  msgpack_sbuffer_destroy(&bs);
  return rc;
}

static int fsync_dir_of(const char *path) {
  char *d = dupstr(path);
  if (!d) return -1;
  int fd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free(d);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

/* Write data to path durably and atomically: path.tmp.PID, fsync, rename,
 * fsync the directory; a failure leaves an existing file at path untouched.
 * (libragtide's own: src/base/util.c rt_write_file_atomic is the tools'.) */
static int write_durable(const char *path, const uint8_t *data, size_t len, char *errbuf, size_t errcap) {
  char tmp[4096];
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
    return fail(errbuf, errcap, RAGTIDE_E_ARG, "path too long: %s", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return fail(errbuf, errcap, RAGTIDE_E_IO, "cannot create %s: %s (check that the directory exists and "
                "is writable)", tmp, strerror(errno));
  size_t left = len;
  const uint8_t *p = data;
  while (left) {
    ssize_t w = write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = w < 0 ? errno : ENOSPC;
      close(fd);
      unlink(tmp);
      return fail(errbuf, errcap, RAGTIDE_E_IO, "cannot write %s at byte %zu: %s", tmp, len - left, strerror(e));
    }
    p += w;
    left -= (size_t)w;
  }
  if (fsync(fd) != 0) {
    int e = errno;
    close(fd);
    unlink(tmp);
    return fail(errbuf, errcap, RAGTIDE_E_IO, "cannot fsync %s: %s", tmp, strerror(e));
  }
  if (close(fd) != 0) {
    int e = errno;
    unlink(tmp);
    return fail(errbuf, errcap, RAGTIDE_E_IO, "cannot close %s: %s", tmp, strerror(e));
  }
  if (rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    return fail(errbuf, errcap, RAGTIDE_E_IO, "cannot rename %s to %s: %s", tmp, path, strerror(e));
  }
  if (fsync_dir_of(path) != 0)
    return fail(errbuf, errcap, RAGTIDE_E_IO, "cannot fsync the directory of %s: %s", path, strerror(errno));
  return RAGTIDE_OK;
}

int ragtide_builder_write(ragtide_table_builder *b, const char *path, char *errbuf, size_t errcap) {
  if (!b || !path) return fail(errbuf, errcap, RAGTIDE_E_ARG, "ragtide_builder_write: NULL argument");
  uint8_t *data;
  size_t len;
  int rc = ragtide_builder_serialize(b, &data, &len, errbuf, errcap);
  if (rc) return rc;
  rc = write_durable(path, data, len, errbuf, errcap);
  free(data);
  return rc;
}

/* ---- copy and merge ---- */

static int copy_info(ragtide_table_builder *b, const ragtide_table *t) {
  return ragtide_builder_set_info(b, &t->info);
}

ragtide_table_builder *ragtide_builder_from_table(const ragtide_table *t, uint32_t candidates) {
  if (!t) return NULL;
  if (candidates == 0) candidates = t->cand;
  ragtide_table_builder *b = ragtide_builder_new(t->ids, t->n, candidates);
  if (!b) return NULL;
  uint32_t c = candidates < t->cand ? candidates : t->cand;
  memcpy(b->ent, t->ent, (size_t)(c * t->npairs) * 4);
  memcpy(b->day, t->day, (size_t)(c * t->npairs) * 4);
  if (copy_info(b, t)) {
    ragtide_builder_free(b);
    return NULL;
  }
  return b;
}

int ragtide_table_merge(const ragtide_table *base, const ragtide_table *overlay, ragtide_table_builder **out,
                        char *errbuf, size_t errcap) {
  if (!base || !overlay || !out) return fail(errbuf, errcap, RAGTIDE_E_ARG, "ragtide_table_merge: NULL argument");
  *out = NULL;
  if (base->n != overlay->n || memcmp(base->ids, overlay->ids, (size_t)base->n * 4) != 0 ||
      base->info.catalog_hash != overlay->info.catalog_hash)
    return fail(errbuf, errcap, RAGTIDE_E_MISMATCH,
                "catalogs differ (base: %u clusters, hash %016" PRIx64 "; overlay: %u clusters, hash %016" PRIx64
                "): both tables must come from the same catalog", base->n, base->info.catalog_hash,
                overlay->n, overlay->info.catalog_hash);
  if (base->run_id[0] && overlay->base_run_id[0] && strcmp(base->run_id, overlay->base_run_id) != 0)
    return fail(errbuf, errcap, RAGTIDE_E_MISMATCH,
                "the overlay was refreshed on top of run \"%s\" but the base table is run \"%s\": merge it "
                "onto the table of run \"%s\"", overlay->base_run_id, base->run_id, overlay->base_run_id);
  uint32_t cand = base->cand > overlay->cand ? base->cand : overlay->cand;
  ragtide_table_builder *b = ragtide_builder_new(base->ids, base->n, cand);
  if (!b) return fail(errbuf, errcap, RAGTIDE_E_NOMEM, "out of memory merging %u clusters", base->n);
  uint64_t np = base->npairs;
  for (uint64_t i = 0; i < np; i++) {
    uint32_t top = overlay->ent[i] >> TBL_PROV_SHIFT;
    const ragtide_table *src = ragtide_provenance_is_refresh((ragtide_provenance)top) ? overlay : base;
    for (uint32_t j = 0; j < src->cand; j++) {
      b->ent[j * np + i] = src->ent[j * np + i];
      b->day[j * np + i] = src->day[j * np + i];
    }
  }
  ragtide_table_info info = overlay->info;
  info.base_run_id = base->run_id[0] ? base->run_id : overlay->base_run_id;
  if (base->info.created_at > info.created_at) info.created_at = base->info.created_at;
  if (ragtide_builder_set_info(b, &info)) {
    ragtide_builder_free(b);
    return fail(errbuf, errcap, RAGTIDE_E_NOMEM, "out of memory merging");
  }
  *out = b;
  return RAGTIDE_OK;
}
