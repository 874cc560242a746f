/* cmd_table.c — the table commands: lookup, inspect, validate, diff, export,
 * merge, rollback. They only read tables through libragtide (plus
 * publish.h for rollback); JSON output goes through jansson.
 * Exit codes: 0 ok, 2 usage (bad flags, unknown cluster id), 3 tables that
 * cannot be combined (catalog/run mismatch), 6 output not writable, 7 a table
 * missing, corrupt or of an unknown version. */
#include "cmd/commands.h"

#include "base/err.h"
#include "base/util.h"
#include "format/answers.h"
#include "format/catalog.h"
#include "format/lock.h"
#include "format/publish.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <ragtide/table.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROV(i) ragtide_provenance_name((ragtide_provenance)(i))
#define prov_name ragtide_provenance_name

/* Positional arguments after removing the flags we know; `--json` sets *json,
 * `--format X` / `--format=X` sets *format (if format != NULL). Returns the
 * number of positionals or -1 after printing a usage error. */
static int parse_args(const char *cmd, int argc, char **argv, int *json, const char **format, char **pos,
                      int maxpos) {
  int np = 0, only_pos = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!only_pos && !strcmp(a, "--")) {
      only_pos = 1;
    } else if (!only_pos && json && !strcmp(a, "--json")) {
      *json = 1;
    } else if (!only_pos && format && !strncmp(a, "--format", 8) && (a[8] == '\0' || a[8] == '=')) {
      if (a[8] == '=') *format = a + 9;
      else if (i + 1 < argc) *format = argv[++i];
      else {
        fprintf(stderr, "ragtide %s: --format needs a value (tsv or jsonl)\n", cmd);
        return -1;
      }
    } else if (!only_pos && a[0] == '-' && a[1] != '\0') {
      rt_err err = {0};
      rt_bad_arg(cmd, a, &err);
      fprintf(stderr, "ragtide %s\n", err.msg);
      return -1;
    } else {
      if (np == maxpos) {
        fprintf(stderr, "ragtide %s: too many arguments at \"%s\" (see ragtide help %s)\n", cmd, a, cmd);
        return -1;
      }
      pos[np++] = argv[i];
    }
  }
  return np;
}

static int open_table(const char *cmd, const char *path, ragtide_table **t) {
  char eb[1024];
  int rc = ragtide_table_open(path, t, eb, sizeof eb);
  if (rc == RAGTIDE_OK) return RT_OK;
  fprintf(stderr, "ragtide %s: %s\n", cmd, eb);
  return rc == RAGTIDE_E_NOMEM ? RT_ERR_NOMEM : RT_ERR_TABLE;
}

static int parse_id(const char *s, uint32_t *out) {
  char *end;
  errno = 0;
  if (!s[0] || s[0] == '-' || s[0] == '+') return -1;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v > UINT32_MAX) return -1;
  *out = (uint32_t)v;
  return 0;
}

static void print_json(json_t *o) {
  char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  if (s) {
    puts(s);
    free(s);
  }
  json_decref(o);
}

static void day_str(uint32_t day, char *buf, size_t cap) {
  char t[32];
  rt_format_utc((int64_t)day * 86400, t, sizeof t);
  snprintf(buf, cap, "%.10s", t);
}

static json_t *hex64(uint64_t v) {
  char b[24];
  snprintf(b, sizeof b, "%016" PRIx64, v);
  return json_string(b);
}

/* ---- lookup ---- */

/* Remove "--catalog FILE" / "--catalog=FILE" from argv; its value or NULL. */
static const char *take_catalog(int *argc, char **argv) {
  const char *v = NULL;
  int k = 1;
  for (int i = 1; i < *argc; i++) {
    if (!strcmp(argv[i], "--catalog") && i + 1 < *argc) v = argv[++i];
    else if (!strncmp(argv[i], "--catalog=", 10)) v = argv[i] + 10;
    else argv[k++] = argv[i];
  }
  *argc = k;
  return v;
}

/* --catalog: the catalog the table was built with (same ids and hash), for
 * the clusters' keywords. RT_OK with cat->n = 0 when none was given. */
static int open_catalog(const char *cmd, const char *path, const ragtide_table *t, rt_catalog *cat) {
  memset(cat, 0, sizeof *cat);
  if (!path) return RT_OK;
  rt_err err = {0};
  int rc = rt_catalog_load(path, cat, &err);
  if (rc) {
    fprintf(stderr, "ragtide %s: %s\n", cmd, err.msg);
    return rc;
  }
  if (cat->hash != ragtide_table_get_info(t)->catalog_hash) {
    fprintf(stderr, "ragtide %s: catalog %s (hash %016" PRIx64 ") is not the one %s was built with (hash %016" PRIx64
            "): pass the table's catalog\n", cmd, path, cat->hash, "the table", ragtide_table_get_info(t)->catalog_hash);
    rt_catalog_free(cat);
    return RT_ERR_INPUT;
  }
  return RT_OK;
}

static const char *keywords(const rt_catalog *cat, uint32_t id) {
  int32_t i = cat->n ? rt_catalog_index(cat, id) : -1;
  return i >= 0 ? cat->desc[i] : NULL;
}

int rt_cmd_lookup(int argc, char **argv) {
  int json = 0;
  char *pos[3];
  const char *catalog = take_catalog(&argc, argv);
  int np = parse_args("lookup", argc, argv, &json, NULL, pos, 3);
  if (np != 3) {
    if (np >= 0) fprintf(stderr, "usage: ragtide lookup [--json] [--catalog CATALOG] TABLE C1 C2\n");
    return RT_ERR_USAGE;
  }
  uint32_t c1, c2;
  if (parse_id(pos[1], &c1) || parse_id(pos[2], &c2)) {
    fprintf(stderr, "ragtide lookup: cluster ids must be unsigned 32-bit integers, got \"%s\" \"%s\"\n", pos[1],
            pos[2]);
    return RT_ERR_USAGE;
  }
  ragtide_table *t;
  int rc = open_table("lookup", pos[0], &t);
  if (rc) return rc;
  rt_catalog cat;
  if ((rc = open_catalog("lookup", catalog, t, &cat))) {
    ragtide_table_close(t);
    return rc;
  }
  ragtide_candidate cand[16];
  int nc = ragtide_table_candidates(t, c1, c2, cand, 16);
  if (nc == RAGTIDE_E_NOTFOUND) {
    uint32_t bad = ragtide_table_index_of(t, c1) < 0 ? c1 : c2;
    fprintf(stderr, "ragtide lookup: cluster id %u is not in the catalog of %s (%u clusters; `ragtide export` "
            "lists the pairs)\n", bad, pos[0], ragtide_table_get_info(t)->n_clusters);
    ragtide_table_close(t);
    rt_catalog_free(&cat);
    return RT_ERR_USAGE;
  }
  if (nc < 0) nc = 0;
  if (json) {
    json_t *o = json_object(), *a = json_array();
    json_object_set_new(o, "c1", json_integer(c1));
    json_object_set_new(o, "c2", json_integer(c2));
    if (cat.n) {
      json_object_set_new(o, "c1_keywords", json_string(keywords(&cat, c1)));
      json_object_set_new(o, "c2_keywords", json_string(keywords(&cat, c2)));
    }
    json_object_set_new(o, "next", nc ? json_integer(cand[0].next) : json_null());
    json_object_set_new(o, "provenance", json_string(prov_name(nc ? cand[0].prov : RAGTIDE_PROV_NONE)));
    for (int k = 0; k < nc; k++) {
      char ds[16];
      day_str(cand[k].day, ds, sizeof ds);
      json_t *c = json_pack("{s:I,s:s,s:s}", "next", (json_int_t)cand[k].next, "provenance", prov_name(cand[k].prov),
                            "day", ds);
      if (cat.n) json_object_set_new(c, "keywords", json_string(keywords(&cat, cand[k].next)));
      json_array_append_new(a, c);
    }
    json_object_set_new(o, "candidates", a);
    print_json(o);
  } else {
    if (cat.n) printf("%u (%s) then %u (%s)\n", c1, keywords(&cat, c1), c2, keywords(&cat, c2));
    if (!nc) printf("%u %u -> none\n", c1, c2);
    for (int k = 0; k < nc; k++) {
      char ds[16];
      day_str(cand[k].day, ds, sizeof ds);
      if (k == 0) printf("%u %u -> %u (%s)", c1, c2, cand[k].next, prov_name(cand[k].prov));
      else printf("  #%d -> %u (%s)", k + 1, cand[k].next, prov_name(cand[k].prov));
      if (cat.n) printf("  %s, %s", keywords(&cat, cand[k].next), ds);
      putchar('\n');
    }
  }
  ragtide_table_close(t);
  rt_catalog_free(&cat);
  return RT_OK;
}

/* ---- inspect ---- */

int rt_cmd_inspect(int argc, char **argv) {
  int json = 0;
  char *pos[1];
  int np = parse_args("inspect", argc, argv, &json, NULL, pos, 1);
  if (np != 1) {
    if (np >= 0) fprintf(stderr, "usage: ragtide inspect [--json] TABLE\n");
    return RT_ERR_USAGE;
  }
  ragtide_table *t;
  int rc = open_table("inspect", pos[0], &t);
  if (rc) return rc;
  const ragtide_table_info *in = ragtide_table_get_info(t);
  char created[32], ws[32], we[32];
  rt_format_utc(in->created_at, created, sizeof created);
  rt_format_utc(in->window_start, ws, sizeof ws);
  rt_format_utc(in->window_end, we, sizeof we);
  uint64_t pairs = (uint64_t)in->n_clusters * in->n_clusters;
  if (json) {
    json_t *o = json_object(), *c = json_object();
    json_object_set_new(o, "table", json_string(pos[0]));
    char ver[32];
    snprintf(ver, sizeof ver, "%u.%u", in->version_major, in->version_minor);
    json_object_set_new(o, "format", json_string(ver));
    json_object_set_new(o, "n_clusters", json_integer(in->n_clusters));
    json_object_set_new(o, "k", json_integer(in->k));
    json_object_set_new(o, "candidates", json_integer(in->candidates));
    json_object_set_new(o, "created_at", json_string(created));
    json_object_set_new(o, "window_start", json_string(ws));
    json_object_set_new(o, "window_end", json_string(we));
    json_object_set_new(o, "model", json_string(in->model));
    json_object_set_new(o, "run_id", json_string(in->run_id));
    json_object_set_new(o, "base_run_id", json_string(in->base_run_id));
    json_object_set_new(o, "catalog_hash", hex64(in->catalog_hash));
    json_object_set_new(o, "template_hash", hex64(in->template_hash));
    json_object_set_new(o, "config_hash", hex64(in->config_hash));
    json_object_set_new(o, "pairs", json_integer((json_int_t)pairs));
    for (int i = 0; i < RAGTIDE_PROV_COUNT; i++) json_object_set_new(c, PROV(i), json_integer((json_int_t)in->count_by_prov[i]));
    json_object_set_new(o, "pairs_by_provenance", c);
    print_json(o);
  } else {
    printf("table          %s\n", pos[0]);
    printf("format         %u.%u\n", in->version_major, in->version_minor);
    printf("clusters       %u\n", in->n_clusters);
    printf("k              %u\n", in->k);
    printf("candidates     %u\n", in->candidates);
    printf("created_at     %s\n", created);
    printf("window         %s .. %s\n", ws, we);
    printf("model          %s\n", in->model);
    printf("run_id         %s\n", in->run_id);
    printf("base_run_id    %s\n", in->base_run_id);
    printf("catalog_hash   %016" PRIx64 "\n", in->catalog_hash);
    printf("template_hash  %016" PRIx64 "\n", in->template_hash);
    printf("config_hash    %016" PRIx64 "\n", in->config_hash);
    printf("pairs          %" PRIu64 "\n", pairs);
    for (int i = 0; i < RAGTIDE_PROV_COUNT; i++) printf("  %-12s %" PRIu64 "\n", PROV(i), in->count_by_prov[i]);
  }
  ragtide_table_close(t);
  return RT_OK;
}

/* ---- validate ---- */

int rt_cmd_validate(int argc, char **argv) {
  int json = 0;
  char *pos[1];
  int np = parse_args("validate", argc, argv, &json, NULL, pos, 1);
  if (np != 1) {
    if (np >= 0) fprintf(stderr, "usage: ragtide validate [--json] TABLE\n");
    return RT_ERR_USAGE;
  }
  char eb[1024];
  ragtide_table *t = NULL;
  int rc = ragtide_table_open(pos[0], &t, eb, sizeof eb);
  if (json) {
    json_t *o = json_object();
    json_object_set_new(o, "table", json_string(pos[0]));
    json_object_set_new(o, "valid", json_boolean(rc == RAGTIDE_OK));
    if (rc) {
      json_object_set_new(o, "error", json_string(ragtide_status_name(rc)));
      json_object_set_new(o, "message", json_string(eb));
    } else {
      const ragtide_table_info *in = ragtide_table_get_info(t);
      char ver[32];
      snprintf(ver, sizeof ver, "%u.%u", in->version_major, in->version_minor);
      json_object_set_new(o, "format", json_string(ver));
      json_object_set_new(o, "n_clusters", json_integer(in->n_clusters));
      json_object_set_new(o, "pairs_predicted",
                          json_integer((json_int_t)(in->count_by_prov[1] + in->count_by_prov[2] +
                                                    in->count_by_prov[3] + in->count_by_prov[4])));
    }
    print_json(o);
  } else if (rc) {
    fprintf(stderr, "ragtide validate: invalid (%s): %s\n", ragtide_status_name(rc), eb);
  } else {
    const ragtide_table_info *in = ragtide_table_get_info(t);
    printf("%s: valid (format %u.%u, %u clusters, %" PRIu64 " pairs predicted)\n", pos[0], in->version_major,
           in->version_minor, in->n_clusters, in->count_by_prov[1] + in->count_by_prov[2] + in->count_by_prov[3] +
               in->count_by_prov[4]);
  }
  ragtide_table_close(t);
  if (rc == RAGTIDE_E_NOMEM) return RT_ERR_NOMEM;
  return rc ? RT_ERR_TABLE : RT_OK;
}

/* ---- diff ---- */

static int same_catalog(const ragtide_table *a, const ragtide_table *b) {
  uint32_t na, nb;
  const uint32_t *ia = ragtide_table_cluster_ids(a, &na), *ib = ragtide_table_cluster_ids(b, &nb);
  return na == nb && memcmp(ia, ib, (size_t)na * 4) == 0 &&
         ragtide_table_get_info(a)->catalog_hash == ragtide_table_get_info(b)->catalog_hash;
}

int rt_cmd_diff(int argc, char **argv) {
  int json = 0;
  char *pos[2];
  int np = parse_args("diff", argc, argv, &json, NULL, pos, 2);
  if (np != 2) {
    if (np >= 0) fprintf(stderr, "usage: ragtide diff [--json] A B\n");
    return RT_ERR_USAGE;
  }
  ragtide_table *a, *b;
  int rc = open_table("diff", pos[0], &a);
  if (rc) return rc;
  if ((rc = open_table("diff", pos[1], &b))) {
    ragtide_table_close(a);
    return rc;
  }
  if (!same_catalog(a, b)) {
    fprintf(stderr, "ragtide diff: %s and %s were built for different catalogs (%u vs %u clusters, hash "
            "%016" PRIx64 " vs %016" PRIx64 "); only tables of one catalog can be compared\n", pos[0], pos[1],
            ragtide_table_get_info(a)->n_clusters, ragtide_table_get_info(b)->n_clusters,
            ragtide_table_get_info(a)->catalog_hash, ragtide_table_get_info(b)->catalog_hash);
    ragtide_table_close(a);
    ragtide_table_close(b);
    return RT_ERR_INPUT;
  }
  uint32_t n = ragtide_table_get_info(a)->n_clusters;
  uint64_t in_a = 0, in_b = 0, either = 0, same = 0, changed[RAGTIDE_PROV_COUNT][RAGTIDE_PROV_COUNT] = {{0}};
  for (uint32_t i1 = 0; i1 < n; i1++)
    for (uint32_t i2 = 0; i2 < n; i2++) {
      uint32_t na, nb;
      ragtide_provenance pa, pb;
      ragtide_table_get_idx(a, i1, i2, 0, &na, &pa, NULL);
      ragtide_table_get_idx(b, i1, i2, 0, &nb, &pb, NULL);
      in_a += pa != RAGTIDE_PROV_NONE;
      in_b += pb != RAGTIDE_PROV_NONE;
      if (pa == RAGTIDE_PROV_NONE && pb == RAGTIDE_PROV_NONE) continue;
      either++;
      if (pa != RAGTIDE_PROV_NONE && pb != RAGTIDE_PROV_NONE && na == nb) same++;
      else changed[pa][pb]++;
    }
  double share = either ? (double)same / (double)either : 1.0;
  if (json) {
    json_t *o = json_object(), *c = json_object();
    json_object_set_new(o, "a", json_string(pos[0]));
    json_object_set_new(o, "b", json_string(pos[1]));
    json_object_set_new(o, "pairs_in_a", json_integer((json_int_t)in_a));
    json_object_set_new(o, "pairs_in_b", json_integer((json_int_t)in_b));
    json_object_set_new(o, "pairs_in_either", json_integer((json_int_t)either));
    json_object_set_new(o, "identical", json_integer((json_int_t)same));
    json_object_set_new(o, "identical_share", json_real(share));
    json_object_set_new(o, "changed", json_integer((json_int_t)(either - same)));
    for (int x = 0; x < RAGTIDE_PROV_COUNT; x++)
      for (int y = 0; y < RAGTIDE_PROV_COUNT; y++)
        if (changed[x][y]) {
          char k[32];
          snprintf(k, sizeof k, "%s->%s", PROV(x), PROV(y));
          json_object_set_new(c, k, json_integer((json_int_t)changed[x][y]));
        }
    json_object_set_new(o, "changed_by_provenance", c);
    print_json(o);
  } else {
    printf("pairs predicted: A %" PRIu64 ", B %" PRIu64 ", either %" PRIu64 "\n", in_a, in_b, either);
    printf("identical top prediction: %" PRIu64 " (%.4f of pairs in either)\n", same, share);
    printf("changed: %" PRIu64 "\n", either - same);
    for (int x = 0; x < RAGTIDE_PROV_COUNT; x++)
      for (int y = 0; y < RAGTIDE_PROV_COUNT; y++)
        if (changed[x][y]) printf("  %s -> %s: %" PRIu64 "\n", PROV(x), PROV(y), changed[x][y]);
  }
  ragtide_table_close(a);
  ragtide_table_close(b);
  return RT_OK;
}

/* ---- export ---- */

int rt_cmd_export(int argc, char **argv) {
  const char *format = "tsv";
  char *pos[2];
  const char *catalog = take_catalog(&argc, argv);
  int np = parse_args("export", argc, argv, NULL, &format, pos, 2);
  if (np < 1) {
    if (np >= 0) fprintf(stderr, "usage: ragtide export [--format tsv|jsonl] [--catalog CATALOG] TABLE [OUT]\n");
    return RT_ERR_USAGE;
  }
  int jsonl = !strcmp(format, "jsonl");
  if (!jsonl && strcmp(format, "tsv")) {
    fprintf(stderr, "ragtide export: unknown --format \"%s\" (tsv or jsonl)\n", format);
    return RT_ERR_USAGE;
  }
  ragtide_table *t;
  int rc = open_table("export", pos[0], &t);
  if (rc) return rc;
  rt_catalog cat;
  if ((rc = open_catalog("export", catalog, t, &cat))) {
    ragtide_table_close(t);
    return rc;
  }
  rt_atomic_file af; /* OUT is written to OUT.tmp.PID and renamed into place */
  rt_err err = {0};
  FILE *f = stdout;
  if (np == 2 && strcmp(pos[1], "-")) {
    if (rt_atomic_open(&af, pos[1], &err)) {
      fprintf(stderr, "ragtide export: %s\n", err.msg);
      ragtide_table_close(t);
      return RT_ERR_OUTPUT;
    }
    f = af.f;
  }
  const ragtide_table_info *in = ragtide_table_get_info(t);
  uint32_t n;
  const uint32_t *ids = ragtide_table_cluster_ids(t, &n);
  if (!jsonl) fputs(cat.n ? "c1\tc2\trank\tnext\tprovenance\tday\tc1_keywords\tc2_keywords\tnext_keywords\n"
                          : "c1\tc2\trank\tnext\tprovenance\tday\n", f);
  for (uint32_t i1 = 0; i1 < n; i1++)
    for (uint32_t i2 = 0; i2 < n; i2++)
      for (uint32_t j = 0, rank = 0; j < in->candidates; j++) {
        uint32_t nx, day;
        ragtide_provenance p;
        ragtide_table_get_idx(t, i1, i2, j, &nx, &p, &day);
        if (p == RAGTIDE_PROV_NONE) continue;
        char ds[16];
        day_str(day, ds, sizeof ds);
        if (jsonl) {
          json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:s,s:s}", "c1", (json_int_t)ids[i1], "c2",
                                (json_int_t)ids[i2], "rank", (json_int_t)rank, "next", (json_int_t)ids[nx],
                                "provenance", prov_name(p), "day", ds);
          if (o && cat.n) {
            json_object_set_new(o, "c1_keywords", json_string(cat.desc[rt_catalog_index(&cat, ids[i1])]));
            json_object_set_new(o, "c2_keywords", json_string(cat.desc[rt_catalog_index(&cat, ids[i2])]));
            json_object_set_new(o, "next_keywords", json_string(cat.desc[rt_catalog_index(&cat, ids[nx])]));
          }
          if (o) json_dumpf(o, f, JSON_COMPACT | JSON_PRESERVE_ORDER);
          fputc('\n', f);
          json_decref(o);
        } else if (cat.n) {
          fprintf(f, "%u\t%u\t%u\t%u\t%s\t%s\t%s\t%s\t%s\n", ids[i1], ids[i2], rank, ids[nx], prov_name(p), ds,
                  cat.desc[rt_catalog_index(&cat, ids[i1])], cat.desc[rt_catalog_index(&cat, ids[i2])],
                  cat.desc[rt_catalog_index(&cat, ids[nx])]);
        } else
          fprintf(f, "%u\t%u\t%u\t%u\t%s\t%s\n", ids[i1], ids[i2], rank, ids[nx], prov_name(p), ds);
        rank++;
      }
  ragtide_table_close(t);
  rt_catalog_free(&cat);
  if (f == stdout) return fflush(f) == 0 ? RT_OK : RT_ERR_OUTPUT;
  if (rt_atomic_commit(&af, &err)) {
    fprintf(stderr, "ragtide export: %s\n", err.msg);
    return RT_ERR_OUTPUT;
  }
  return RT_OK;
}

/* ---- merge ---- */

int rt_cmd_merge(int argc, char **argv) {
  char *pos[3];
  int np = parse_args("merge", argc, argv, NULL, NULL, pos, 3);
  if (np != 3) {
    if (np >= 0) fprintf(stderr, "usage: ragtide merge BASE OVERLAY OUT\n");
    return RT_ERR_USAGE;
  }
  ragtide_table *base, *ov;
  int rc = open_table("merge", pos[0], &base);
  if (rc) return rc;
  if ((rc = open_table("merge", pos[1], &ov))) {
    ragtide_table_close(base);
    return rc;
  }
  char eb[1024];
  ragtide_table_builder *b = NULL;
  rc = ragtide_table_merge(base, ov, &b, eb, sizeof eb);
  int out = RT_OK;
  if (rc) {
    fprintf(stderr, "ragtide merge: refusing to merge %s onto %s: %s\n", pos[1], pos[0], eb);
    out = rc == RAGTIDE_E_NOMEM ? RT_ERR_NOMEM : RT_ERR_INPUT;
  } else if ((rc = ragtide_builder_write(b, pos[2], eb, sizeof eb))) {
    fprintf(stderr, "ragtide merge: %s\n", eb);
    out = rc == RAGTIDE_E_NOMEM ? RT_ERR_NOMEM : RT_ERR_OUTPUT;
  } else {
    const ragtide_table_info *oi = ragtide_table_get_info(ov);
    printf("%s: %" PRIu64 " pairs from the overlay (rag %" PRIu64 ", fallback %" PRIu64 "), the rest from %s\n",
           pos[2], oi->count_by_prov[2] + oi->count_by_prov[3], oi->count_by_prov[2], oi->count_by_prov[3],
           pos[0]);
  }
  ragtide_builder_free(b);
  ragtide_table_close(base);
  ragtide_table_close(ov);
  return out;
}

/* ---- rollback ---- */

/* The side files that move with a table (refresh's defaults). */
static void side_names(const char *table, char *summary, char *contexts, size_t cap) {
  snprintf(summary, cap, "%s.summary.json", table);
  snprintf(contexts, cap, "%s.contexts", table);
}

/* `rollback --list`: every kept generation, newest first. */
static int list_generations(const char *path) {
  printf("%-4s %-28s %-22s %-22s %s\n", "gen", "run", "created", "window end", "pairs predicted");
  for (int i = 0; i <= 99; i++) {
    char f[4200];
    if (i) snprintf(f, sizeof f, "%s.%d", path, i);
    else snprintf(f, sizeof f, "%s", path);
    if (access(f, F_OK) != 0) {
      if (i) break;
      continue;
    }
    ragtide_table *t;
    char eb[512];
    if (ragtide_table_open(f, &t, eb, sizeof eb) != RAGTIDE_OK) {
      printf("%-4d (invalid: %s)\n", i, eb);
      continue;
    }
    const ragtide_table_info *in = ragtide_table_get_info(t);
    char c[32], w[32];
    rt_format_utc(in->created_at, c, sizeof c);
    if (in->window_end) rt_format_utc(in->window_end, w, sizeof w);
    else snprintf(w, sizeof w, "- (base)");
    uint64_t pred = 0;
    for (int p = 1; p < RAGTIDE_PROV_COUNT; p++) pred += in->count_by_prov[p];
    char gen[8];
    snprintf(gen, sizeof gen, i ? "%d" : "0*", i);
    printf("%-4s %-28s %-22s %-22s %" PRIu64 "\n", gen, in->run_id, c, w, pred);
    ragtide_table_close(t);
  }
  printf("(0* = served; `ragtide rollback %s --to N` serves generation N)\n", path);
  return RT_OK;
}

int rt_cmd_rollback(int argc, char **argv) {
  char *pos[1] = {NULL};
  int to = 1, list = 0, np = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--list")) list = 1;
    else if (!strncmp(a, "--to", 4) && (a[4] == '\0' || a[4] == '=')) {
      const char *v = a[4] == '=' ? a + 5 : (i + 1 < argc ? argv[++i] : "");
      char *end;
      long n = strtol(v, &end, 10);
      if (!*v || *end || n < 1 || n > 99) {
        fprintf(stderr, "ragtide rollback: --to \"%s\": expected a generation 1..99 (see `ragtide rollback "
                "--list TABLE`)\n", v);
        return RT_ERR_USAGE;
      }
      to = (int)n;
    } else if (a[0] == '-' && a[1]) {
      rt_err err = {0};
      rt_bad_arg("rollback", a, &err);
      fprintf(stderr, "ragtide %s\n", err.msg);
      return RT_ERR_USAGE;
    } else if (np++ == 0) pos[0] = argv[i];
  }
  if (np != 1) {
    fprintf(stderr, "usage: ragtide rollback TABLE [--to N] | ragtide rollback --list TABLE\n");
    return RT_ERR_USAGE;
  }
  if (list) return list_generations(pos[0]);
  rt_err err = {0};
  char summary[4200], contexts[4200];
  side_names(pos[0], summary, contexts, sizeof summary);
  const char *side[2] = {summary, contexts};
  /* Not while a refresh runs on the table: it would publish over the
   * rollback, or rotate the backups under it. */
  rt_lock *lock = NULL;
  int rc = rt_lock_acquire(pos[0], "rollback", 600, &lock, &err);
  if (rc == RT_OK) rt_table_sweep(pos[0], NULL); /* finish or clear what a dead run left first */
  if (rc == RT_OK) rc = rt_table_rollback(pos[0], to, side, 2, &err);
  rt_lock_release(lock);
  if (rc) {
    fprintf(stderr, "ragtide rollback: %s\n", err.msg);
    return rc;
  }
  ragtide_table *t;
  char eb[1024];
  if (ragtide_table_open(pos[0], &t, eb, sizeof eb) == RAGTIDE_OK) {
    printf("%s: now serving run \"%s\" (was generation %d, with its summary and contexts); the table it "
           "replaced is %s.1 — `ragtide rollback %s%s` undoes this\n", pos[0], ragtide_table_get_info(t)->run_id,
           to, pos[0], pos[0], to == 1 ? "" : " --to 1");
    ragtide_table_close(t);
  }
  return RT_OK;
}

/* `ragtide journal dump JOURNAL`: one JSON object a line per key's latest
 * answer, for an operator who wants to see what was paid for. */
static int dump_one(void *ud, uint64_t key, uint32_t day, const char *text) {
  (void)ud;
  char date[32];
  rt_format_utc((int64_t)day * 86400, date, sizeof date);
  date[10] = '\0';
  json_t *o = json_object();
  char k[24];
  snprintf(k, sizeof k, "%016" PRIx64, key);
  json_object_set_new(o, "key", json_string(k));
  json_object_set_new(o, "day", json_string(date));
  json_object_set_new(o, "answer", *text ? json_string(text) : json_null()); /* null: forgotten */
  char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  if (line) puts(line);
  free(line);
  json_decref(o);
  return 0;
}

int rt_cmd_journal(int argc, char **argv) {
  if (argc != 3 || strcmp(argv[1], "dump") != 0) {
    fprintf(stderr, "usage: ragtide journal dump JOURNAL   (e.g. TABLE.answers)\n");
    return RT_ERR_USAGE;
  }
  struct stat st;
  if (stat(argv[2], &st) != 0) {
    fprintf(stderr, "ragtide journal: %s: %s\n", argv[2], strerror(errno));
    return RT_ERR_INPUT;
  }
  /* Read a copy's index without touching the file: opening repairs a torn
   * tail, which only the journal's writer may do. */
  rt_answers *j = rt_answers_new_memory();
  rt_err err = {0};
  uint64_t n = 0;
  int rc = rt_answers_absorb(j, argv[2], &n, &err);
  if (rc == RT_OK) rt_answers_foreach(j, dump_one, NULL);
  rt_answers_close(j, NULL);
  if (rc) fprintf(stderr, "ragtide journal: %s\n", err.msg);
  return rc;
}
