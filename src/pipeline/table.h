/* table.h (pipeline) — stage 11: assemble the served table on rank 0.
 *
 * Owns the hybrid overlay of paper §3: start from the base table (monthly,
 * fine-tuned) when output.base_table is set, so every pair has its base
 * answer (provenance base); then overlay this run's results (rag, or
 * fallback when the endpoint failed for the pair), as they arrive from the
 * gather. Pairs with neither are none. The on-disk format belongs to
 * libragtide (include/ragtide/table.h). */
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

/* A builder for the catalog with the base table's answers (base may be NULL). */
int rt_table_begin(const rt_catalog *cat, int candidates, const ragtide_table *base, ragtide_table_builder **out,
                   rt_err *err);

/* Overlay a buffer of result records (rt_result_put encoding), each replacing
 * its pair's candidate list, dated `day`. Returns the records applied, or -1
 * if the buffer is malformed. */
long rt_table_overlay(ragtide_table_builder *b, int candidates, const char *buf, size_t len, uint32_t day);

#endif
