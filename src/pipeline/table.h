/* table.h (pipeline) — stage 11: assemble the served table on rank 0.
 *
 * Owns the hybrid overlay of paper §3: start from the base table (monthly,
 * fine-tuned) when output.base_table is set, so every pair has its base
 * answer (provenance base); then overlay this run's results (rag, or
 * fallback when the endpoint failed for the pair). Pairs with neither are
 * none. The on-disk format belongs to libragtide (include/ragtide/table.h). */
#ifndef RT_PIPELINE_TABLE_H
#define RT_PIPELINE_TABLE_H

#include <ragtide/table.h>
#include <stddef.h>

#include "base/err.h"
#include "format/catalog.h"
#include "format/config.h"
#include "pipeline/gather.h"

/* Open the base table and check it was made for this catalog (same ids in
 * the same order and same catalog hash); RT_ERR_TABLE with the reason. */
int rt_base_open(const char *path, const rt_catalog *cat, ragtide_table **out, rt_err *err);

/* Top base answer of a pair as a dense index, or -1. */
int32_t rt_base_next(const ragtide_table *base, uint32_t c1, uint32_t c2);

/* Build the table: base (may be NULL) overlaid with results (sorted by pair).
 * info: header fields (n_clusters/candidates/counts are filled here). */
int rt_table_assemble(const rt_catalog *cat, int candidates, const ragtide_table *base, const rt_result *res,
                      size_t nres, uint32_t day, const ragtide_table_info *info, ragtide_table_builder **out,
                      rt_err *err);

#endif
