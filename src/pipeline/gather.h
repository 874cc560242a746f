/* gather.h — stage 10: every rank's per-pair results to rank 0.
 *
 * Owns the result record: what the table will say for one pair. Rank 0
 * receives all results sorted by pair, so the table it builds does not
 * depend on how pairs were spread over ranks. */
#ifndef RT_PIPELINE_GATHER_H
#define RT_PIPELINE_GATHER_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#define RT_MAX_CAND 16

typedef struct rt_result {
  uint64_t pair;                /* c1 << 20 | c2 (dense) */
  uint32_t prov;                /* ragtide_provenance of the candidates */
  uint32_t n;                   /* candidates set */
  uint32_t next[RT_MAX_CAND];   /* dense indices, rank order */
} rt_result;

/* Collective. Rank 0 gets *all (malloc'ed, sorted by pair) and *nall;
 * other ranks get NULL and 0. */
void rt_gather_results(MPI_Comm comm, const rt_result *mine, size_t n, rt_result **all, size_t *nall);

#endif
