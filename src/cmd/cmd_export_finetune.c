/* cmd_export_finetune.c — `ragtide export-finetune`: the fine-tuning set of
 * paper §2.2, samples [(c1, c2) -> c_next] from a counts file.
 *
 * Each pair's label is its most frequent successor in the period (ties by the
 * smaller id); train = days before the split date, test = days from it on.
 * Pairs are taken by frequency, and a label already held by `cap` samples is
 * passed over, so frequent successors do not drown the long tail. Prompts are
 * rendered by the refresh's own code for prompt.mode = base (no retrieved
 * clusters, no popular block, no examples), so the fine-tuned model sees at
 * serving time exactly the prompt it was tuned on. Writes OpenAI chat and
 * Vertex AI Gemini JSONL plus manifest.json into DIR, each file atomically.
 * A plain process, no MPI. Exit codes: 0 ok, 2 bad flags or config, 3 bad
 * counts, catalog or template, 6 DIR not writable. */
#include "cmd/commands.h"

#include "base/err.h"
#include "base/log.h"
#include "base/util.h"
#include "format/catalog.h"
#include "format/config.h"
#include "format/counts.h"
#include "pipeline/count.h"
#include "rag/prompt.h"
#include "rag/successors.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct ft_opts {
  const char *config, *counts, *out, *split_date;
  uint64_t pairs;
  double cap_frac;
} ft_opts;


/* First pass over argv: everything but --set, which is applied after the file. */
static int parse_opts(int argc, char **argv, ft_opts *o, rt_err *err) {
  memset(o, 0, sizeof *o);
  o->pairs = 5000;
  o->cap_frac = 0.02;
  for (int i = 1; i < argc; i++) {
    const char *v = NULL, *set = NULL;
    int r;
    if ((r = rt_flag_value(argc, argv, &i, "--set", &set, "export-finetune", err))) {
      if (r < 0) return RT_ERR_USAGE;
    } else if ((r = rt_flag_value(argc, argv, &i, "--config", &v, "export-finetune", err))) {
      if (r < 0) return RT_ERR_USAGE;
      o->config = v;
    } else if ((r = rt_flag_value(argc, argv, &i, "--counts", &v, "export-finetune", err))) {
      if (r < 0) return RT_ERR_USAGE;
      o->counts = v;
    } else if ((r = rt_flag_value(argc, argv, &i, "--out", &v, "export-finetune", err))) {
      if (r < 0) return RT_ERR_USAGE;
      o->out = v;
    } else if ((r = rt_flag_value(argc, argv, &i, "--split-date", &v, "export-finetune", err))) {
      int32_t d;
      if (r < 0) return RT_ERR_USAGE;
      if (rt_day_parse(v, &d))
        return rt_err_set(err, RT_ERR_USAGE, "--split-date \"%s\": expected a UTC date YYYY-MM-DD", v);
      o->split_date = v;
    } else if ((r = rt_flag_value(argc, argv, &i, "--pairs", &v, "export-finetune", err))) {
      char *end;
      errno = 0;
      unsigned long long n = r < 0 ? 0 : strtoull(v, &end, 10);
      if (r < 0) return RT_ERR_USAGE;
      if (!(v[0] >= '0' && v[0] <= '9') || errno || *end || n < 1 || n > 100000000ULL)
        return rt_err_set(err, RT_ERR_USAGE, "--pairs \"%s\": expected an integer in 1..100000000", v);
      o->pairs = n;
    } else if ((r = rt_flag_value(argc, argv, &i, "--cap-per-next", &v, "export-finetune", err))) {
      char *end;
      if (r < 0) return RT_ERR_USAGE;
      errno = 0;
      double f = strtod(v, &end);
      if (end == v || *end || errno || !(f > 0 && f <= 1))
        return rt_err_set(err, RT_ERR_USAGE,
                          "--cap-per-next \"%s\": expected a fraction in (0, 1] of --pairs per label", v);
      o->cap_frac = f;
    } else {
      return rt_bad_arg("export-finetune", argv[i], err);
    }
  }
  if (!o->config || !o->counts || !o->out)
    return rt_err_set(err, RT_ERR_USAGE, "export-finetune: --config FILE, --counts COUNTS and --out DIR are "
                                         "required (see `ragtide help export-finetune`)");
  return RT_OK;
}

/* The config as rt_job_start reads it (file, then --set in order), without
 * MPI: this tool requires only input.catalog and prompt.template, not the
 * logs, window or table a refresh requires. */
static int load_config(int argc, char **argv, const ft_opts *o, rt_config *cfg, rt_err *err) {
  int rc = rt_config_from_args(cfg, o->config, argc, argv, err);
  if (rc == RT_OK) rc = rt_config_validate(cfg, "export-finetune", err); /* input.catalog: the labels */
  if (rc == RT_OK && !*cfg->template_path)
    rc = rt_err_set(err, RT_ERR_USAGE, "%s: prompt.template is required", o->config);
  char found[4096];
  if (rc == RT_OK && rt_find_shipped(cfg->template_path, found, sizeof found)) {
    free(cfg->template_path);
    cfg->template_path = rt_xstrdup(found);
  }
  return rc;
}

/* Re-index a chunk of count records (numbered from `base` in the file) to
 * the catalog's dense indices (the file carries its own ids), keeping the
 * refresh window only. Both index orders follow the ids, so the mapping
 * keeps the file's pair order, which the streamed set builder needs. */
static int remap_chunk(const char *path, const char *cat_path, const int32_t *map, const uint32_t *ids,
                       uint32_t ncl, rt_count *rec, size_t *n, uint64_t base, rt_err *err) {
  size_t m = 0;
  for (size_t i = 0; i < *n; i++) {
    if (rec[i].win != 0) continue;
    uint64_t p = rt_key_pair(rec[i].key);
    uint32_t c[3] = {rt_pair_c1(p), rt_pair_c2(p), rt_key_next(rec[i].key)};
    for (int j = 0; j < 3; j++)
      if (c[j] >= ncl || map[c[j]] < 0)
        return rt_err_set(err, RT_ERR_INPUT,
                          "%s: record %llu names cluster id %u, which is not in the catalog %s (was the counts "
                          "file aggregated with another catalog?)",
                          path, (unsigned long long)(base + i), c[j] < ncl ? ids[c[j]] : c[j], cat_path);
    rec[m] = rec[i];
    rec[m++].key = rt_triple_key((uint32_t)map[c[0]], (uint32_t)map[c[1]], (uint32_t)map[c[2]]);
  }
  *n = m;
  return RT_OK;
}

/* Two streamed passes over the counts file, as `ragtide drift` does: the
 * first finds the days with data (they place the train/test split), the
 * second builds each pair's best successor per split. Memory: the sets,
 * not the records (a 12 M-record file no longer has to fit). */
typedef struct {
  const char *path, *cat_path;
  const rt_catalog *cat;
  int32_t first, last; /* days of refresh-window records (pass 0) */
  size_t used;
} scan;

static int read_pass(scan *sc, rt_succ_builder *b, rt_err *err) {
  rt_counts_reader *r = NULL;
  int rc = rt_counts_reader_open(sc->path, &r, err);
  if (rc) {
    rt_err_wrap(err, "reading --counts: ");
    return rc;
  }
  uint32_t ncl = 0;
  const uint32_t *ids = rt_counts_reader_ids(r, &ncl);
  int32_t *map = rt_xmalloc((ncl ? ncl : 1) * sizeof *map);
  for (uint32_t i = 0; i < ncl; i++) map[i] = rt_catalog_index(sc->cat, ids[i]);
  enum { CHUNK = 65536 };
  rt_count *buf = rt_xmalloc(CHUNK * sizeof *buf);
  uint64_t base = 0;
  long got;
  while (rc == RT_OK && (got = rt_counts_reader_next(r, buf, CHUNK, err)) != 0) {
    if (got < 0) {
      rc = err->code ? err->code : RT_ERR_INPUT;
      rt_err_wrap(err, "reading --counts: ");
      break;
    }
    size_t n = (size_t)got;
    rc = remap_chunk(sc->path, sc->cat_path, map, ids, ncl, buf, &n, base, err);
    base += (uint64_t)got;
    if (rc) break;
    if (!b) {
      int32_t f, l;
      size_t u = rt_counts_day_range(buf, n, &f, &l);
      if (u && (!sc->used || f < sc->first)) sc->first = f;
      if (u && (!sc->used || l > sc->last)) sc->last = l;
      sc->used += u;
    } else if ((rc = rt_succ_builder_add(b, buf, n, err))) {
      rt_err_wrap(err, "reading --counts: ");
    }
  }
  free(buf);
  free(map);
  rt_counts_reader_close(r);
  return rc;
}

typedef RT_VEC(char) strbuf;

static void sb_line(strbuf *b, const char *s) {
  size_t n = strlen(s);
  rt_vec_reserve(b, b->len + n + 1);
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len++] = '\n';
}

/* Render the picks of one split into both JSONL buffers. */
static int render_split(const rt_catalog *cat, const rt_template *t, const rt_ft_pick *pk, size_t n,
                        strbuf *openai, strbuf *gemini, rt_err *err) {
  for (size_t i = 0; i < n; i++) {
    uint32_t c1 = rt_pair_c1(pk[i].pair), c2 = rt_pair_c2(pk[i].pair);
    rt_prompt_vars v = {cat, c1, c2, NULL, 0, NULL, 0, ""};
    char *sys, *usr;
    rt_prompt_render(t, &v, &sys, &usr);
    const char *label = cat->desc[pk[i].label];
    char *a = rt_ft_openai_line(sys, usr, label), *g = a ? rt_ft_gemini_line(sys, usr, label) : NULL;
    free(sys);
    free(usr);
    if (!a || !g) {
      free(a);
      return rt_err_set(err, RT_ERR_INPUT,
                        "pair (%u, %u) -> %u: the prompt or label is not valid UTF-8; fix the catalog "
                        "descriptions or the template %s",
                        cat->ids[c1], cat->ids[c2], cat->ids[pk[i].label], t->path);
    }
    sb_line(openai, a);
    sb_line(gemini, g);
    free(a);
    free(g);
  }
  return RT_OK;
}

static json_t *split_json(const rt_ft_stats *st, int32_t first, int32_t end, const char *openai,
                          const char *gemini) {
  char d[32];
  json_t *o = json_object();
  json_object_set_new(o, "samples", json_integer((json_int_t)st->picked));
  json_object_set_new(o, "pairs_considered", json_integer((json_int_t)st->considered));
  json_object_set_new(o, "pairs_skipped_by_cap", json_integer((json_int_t)st->skipped_cap));
  json_object_set_new(o, "labels_capped", json_integer((json_int_t)st->labels_capped));
  json_object_set_new(o, "distinct_labels", json_integer((json_int_t)st->distinct_labels));
  if (first <= end) {
    rt_day_format(first, d, sizeof d);
    json_object_set_new(o, "first_day", json_string(d));
    rt_day_format(end, d, sizeof d);
    json_object_set_new(o, "last_day", json_string(d));
  } else {
    json_object_set_new(o, "first_day", json_null());
    json_object_set_new(o, "last_day", json_null());
  }
  json_object_set_new(o, "openai", json_string(openai));
  json_object_set_new(o, "gemini", json_string(gemini));
  return o;
}

static char *join(const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = rt_xmalloc(n);
  snprintf(p, n, "%s/%s", dir, name);
  return p;
}

/* rt_write_file_atomic's message names the file and says what to check. */
static int write_out(const char *dir, const char *name, const strbuf *b, rt_err *err) {
  char *p = join(dir, name);
  int rc = rt_write_file_atomic(p, b->data ? b->data : "", b->len, err);
  free(p);
  return rc;
}

int rt_cmd_export_finetune(int argc, char **argv) {
  rt_err err = {0};
  ft_opts o;
  rt_config cfg;
  int cfg_loaded = 0;
  rt_catalog cat = {0};
  rt_template tmpl = {0};
  rt_succ s = {0};
  rt_ft_pick *pk[2] = {NULL, NULL};
  size_t npk[2] = {0, 0};
  strbuf oa[2] = {{0}}, ge[2] = {{0}};
  char *manifest = NULL;
  int rc = parse_opts(argc, argv, &o, &err);
  if (rc == RT_OK) {
    rc = load_config(argc, argv, &o, &cfg, &err);
    cfg_loaded = 1;
  }
  if (rc == RT_OK) rc = rt_catalog_load(cfg.catalog, &cat, &err);
  if (rc == RT_OK) rc = rt_template_load(cfg.template_path, &tmpl, &err);
  scan sc = {o.counts, cfg_loaded ? cfg.catalog : "", &cat, 0, 0, 0};
  if (rc == RT_OK) rc = read_pass(&sc, NULL, &err);
  int32_t first = sc.first, last = sc.last, split = 0;
  if (rc == RT_OK && !sc.used)
    rc = rt_err_set(&err, RT_ERR_INPUT, "%s holds no count records of the refresh window",
                    o.counts);
  if (rc) goto out;
  /* Default split: the last 20% of the counts' days (at least one) are test. */
  if (o.split_date) {
    rt_day_parse(o.split_date, &split);
  } else {
    int32_t span = last - first + 1, test = span / 5 > 0 ? span / 5 : 1;
    split = last + 1 - test;
  }
  char split_s[32], a[32], b[32];
  rt_day_format(split, split_s, sizeof split_s);
  rt_day_format(first, a, sizeof a);
  rt_day_format(last, b, sizeof b);
  if (split <= first || split > last)
    rt_warn("export-finetune: split date %s leaves the %s set empty (the counts cover %s .. %s)", split_s,
            split <= first ? "train" : "test", a, b);
  rt_periods per = {RT_PERIOD_SPLIT, 0, split};
  rt_succ_builder *bld = rt_succ_builder_new(&per, 1, 1);
  rc = read_pass(&sc, bld, &err);
  if (rc) {
    rt_succ_builder_free(bld);
    goto out;
  }
  rt_succ_builder_finish(bld, &s);
  uint64_t cap = rt_ft_cap((size_t)o.pairs, o.cap_frac);
  rt_ft_stats st[2];
  static const char *const FILES[2][2] = {{"train.openai.jsonl", "train.gemini.jsonl"},
                                          {"test.openai.jsonl", "test.gemini.jsonl"}};
  for (int p = 0; p < 2 && rc == RT_OK; p++) {
    rt_ft_select(&s, p, (size_t)o.pairs, cap, &pk[p], &npk[p], &st[p]);
    rc = render_split(&cat, &tmpl, pk[p], npk[p], &oa[p], &ge[p], &err);
  }
  if (rc) goto out;
  if (mkdir(o.out, 0755) != 0 && errno != EEXIST) {
    rc = rt_err_set(&err, RT_ERR_OUTPUT, "cannot create --out directory %s: %s", o.out, strerror(errno));
    goto out;
  }
  for (int p = 0; p < 2 && rc == RT_OK; p++) {
    rc = write_out(o.out, FILES[p][0], &oa[p], &err);
    if (rc == RT_OK) rc = write_out(o.out, FILES[p][1], &ge[p], &err);
  }
  if (rc) goto out;
  json_t *m = json_object();
  char h[32];
  json_object_set_new(m, "version", json_integer(1));
  json_object_set_new(m, "counts", json_string(o.counts));
  json_object_set_new(m, "catalog", json_string(cfg.catalog));
  snprintf(h, sizeof h, "%016llx", (unsigned long long)cat.hash);
  json_object_set_new(m, "catalog_hash", json_string(h));
  json_object_set_new(m, "template", json_string(cfg.template_path));
  snprintf(h, sizeof h, "%016llx", (unsigned long long)tmpl.hash);
  json_object_set_new(m, "template_hash", json_string(h));
  json_object_set_new(m, "prompt_mode", json_string("base"));
  json_object_set_new(m, "first_day", json_string(a));
  json_object_set_new(m, "last_day", json_string(b));
  json_object_set_new(m, "split_date", json_string(split_s));
  json_object_set_new(m, "pairs", json_integer((json_int_t)o.pairs));
  json_object_set_new(m, "cap_per_next", json_real(o.cap_frac));
  json_object_set_new(m, "cap", json_integer((json_int_t)cap));
  json_object_set_new(m, "train", split_json(&st[0], first, split - 1 < last ? split - 1 : last, FILES[0][0],
                                             FILES[0][1]));
  json_object_set_new(m, "test", split_json(&st[1], split > first ? split : first, last, FILES[1][0],
                                            FILES[1][1]));
  manifest = json_dumps(m, JSON_INDENT(2));
  json_decref(m);
  if (!manifest) {
    rc = rt_err_set(&err, RT_ERR_INPUT, "manifest: a path in the config is not valid UTF-8");
    goto out;
  }
  strbuf mb = {0};
  sb_line(&mb, manifest);
  rc = write_out(o.out, "manifest.json", &mb, &err);
  free(mb.data);
  if (rc == RT_OK)
    rt_info("export-finetune: %zu train and %zu test samples (split %s, cap %llu per label) in %s", npk[0], npk[1],
            split_s, (unsigned long long)cap, o.out);
out:
  if (rc) fprintf(stderr, "ragtide export-finetune: %s\n", err.msg);
  free(manifest);
  for (int p = 0; p < 2; p++) {
    free(pk[p]);
    free(oa[p].data);
    free(ge[p].data);
  }
  rt_succ_free(&s);
  rt_template_free(&tmpl);
  rt_catalog_free(&cat);
  if (cfg_loaded) rt_config_free(&cfg);
  return rc;
}
