/* gather.h — stage 10: every rank's per-pair results to rank 0.
 *
 * Owns the result record (what the table will say for one pair) and its
 * compact encoding: pair (8 bytes), provenance (1), count n (1), then n
 * dense cluster indices (4 bytes each) — 14 bytes for the usual single
 * candidate. Ranks append records to a byte buffer; rank 0 receives the
 * buffers one rank at a time and hands them to a callback (the table stage
 * writes them straight into the table builder), so rank 0 never holds more
 * than one rank's results at once. The table does not depend on the order
 * of records, hence not on how pairs were spread over ranks. */
#ifndef RT_PIPELINE_GATHER_H
#define RT_PIPELINE_GATHER_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

#define RT_MAX_CAND 16

typedef struct rt_result {
  uint64_t pair;                /* c1 << 20 | c2 (dense) */
  uint32_t prov;                /* ragtide_provenance of the candidates */
  uint32_t n;                   /* candidates set (<= RT_MAX_CAND) */
  uint32_t next[RT_MAX_CAND];   /* dense indices, rank order */
} rt_result;

typedef RT_VEC(char) rt_result_buf;

/* Append one record. */
void rt_result_put(rt_result_buf *b, const rt_result *r);

/* Decode the record at *off of buf[0..len) and advance *off; 0 at the end,
 * -1 if the buffer is malformed. */
int rt_result_next(const char *buf, size_t len, size_t *off, rt_result *r);

/* Collective. Rank 0 calls cb once per rank (its own included) with that
 * rank's whole buffer, in rank order; other ranks only send. */
typedef void (*rt_result_cb)(void *ctx, const char *buf, size_t len);
void rt_gather_results(MPI_Comm comm, const rt_result_buf *mine, rt_result_cb cb, void *ctx);

#endif
