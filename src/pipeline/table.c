/* table.c (pipeline) — base + overlay -> builder. */
#include "pipeline/table.h"
#include "base/metrics.h"
#include "pipeline/count.h"

#include <string.h>

int rt_base_open(const char *path, const rt_catalog *cat, ragtide_table **out, rt_err *err) {
  char msg[512];
  int rc = ragtide_table_open(path, out, msg, sizeof msg);
  if (rc != RAGTIDE_OK)
    return rt_err_set(err, RT_ERR_TABLE, "output.base_table: %s", msg);
  uint32_t n;
  const uint32_t *ids = ragtide_table_cluster_ids(*out, &n);
  const ragtide_table_info *info = ragtide_table_get_info(*out);
  if (n != cat->n || memcmp(ids, cat->ids, n * sizeof *ids) != 0 || info->catalog_hash != cat->hash) {
    rt_err_set(err, RT_ERR_TABLE,
               "output.base_table %s was built for another catalog (%u clusters, catalog hash %016llx; "
               "this run: %u clusters, %016llx); rebuild the base table with this catalog",
               path, n, (unsigned long long)info->catalog_hash, cat->n, (unsigned long long)cat->hash);
    ragtide_table_close(*out); /* only now: the message above reads its header */
    *out = NULL;
    return RT_ERR_TABLE;
  }
  return RT_OK;
}

int32_t rt_base_next(const ragtide_table *base, uint32_t c1, uint32_t c2) {
  if (!base) return -1;
  uint32_t next;
  ragtide_provenance prov;
  uint32_t day;
  if (ragtide_table_get_idx(base, c1, c2, 0, &next, &prov, &day) != RAGTIDE_OK || prov == RAGTIDE_PROV_NONE)
    return -1;
  return (int32_t)next;
}

int rt_table_begin(const rt_catalog *cat, int candidates, const ragtide_table *base, ragtide_table_builder **out,
                   rt_err *err) {
  double t0 = rt_stage_begin();
  ragtide_table_builder *b = ragtide_builder_new(cat->ids, cat->n, (uint32_t)candidates);
  if (!b) return rt_err_set(err, RT_ERR_NOMEM, "cannot allocate a table for %u clusters", cat->n);
  uint32_t n = cat->n;
  if (base) {
    uint32_t bc = ragtide_table_get_info(base)->candidates;
    for (uint32_t i1 = 0; i1 < n; i1++)
      for (uint32_t i2 = 0; i2 < n; i2++)
        for (uint32_t j = 0; j < bc && j < (uint32_t)candidates; j++) {
          uint32_t next, d;
          ragtide_provenance prov;
          if (ragtide_table_get_idx(base, i1, i2, j, &next, &prov, &d) != RAGTIDE_OK || prov == RAGTIDE_PROV_NONE)
            break;
          /* A base table's answers are base answers here, whatever produced them. */
          ragtide_builder_set(b, i1, i2, j, next, RAGTIDE_PROV_BASE, d);
        }
  }
  *out = b;
  rt_stage_end(RT_M_table_us, t0);
  return RT_OK;
}

long rt_table_overlay(ragtide_table_builder *b, int candidates, const char *buf, size_t len, uint32_t day) {
  double t0 = rt_stage_begin();
  size_t off = 0;
  long applied = 0;
  rt_result r;
  int got;
  while ((got = rt_result_next(buf, len, &off, &r)) == 1) {
    uint32_t c1 = rt_pair_c1(r.pair), c2 = rt_pair_c2(r.pair);
    if (r.n == 0) continue;
    /* The overlay replaces the pair's whole candidate list. */
    for (uint32_t j = 0; j < (uint32_t)candidates; j++) {
      if (j < r.n) ragtide_builder_set(b, c1, c2, j, r.next[j], (ragtide_provenance)r.prov, day);
      else ragtide_builder_set(b, c1, c2, j, UINT32_MAX, RAGTIDE_PROV_NONE, 0);
    }
    applied++;
  }
  rt_stage_end(RT_M_table_us, t0);
  return got < 0 ? -1 : applied;
}
