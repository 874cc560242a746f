/* plan.h — stage 1: who reads what, and who owns what.
 *
 * Owns: the list of shards (from a glob or a manifest), their assignment to
 * ranks balanced by bytes, and the two ownership maps every later stage
 * uses: user -> rank (shuffle) and pair (c1, c2) -> rank (count, retrieve,
 * prompt, infer). Rank 0 lists and assigns; everyone receives the same plan.
 *
 * Ownership is a hash of the key modulo the rank count: balanced for any
 * skew of users or pairs, and stateless, so the "broadcast" of the maps is
 * just their seeds. Results never depend on these maps (gather sorts by
 * pair), only the work split does. */
#ifndef RT_PIPELINE_PLAN_H
#define RT_PIPELINE_PLAN_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/util.h"
#include "format/config.h"

typedef struct rt_plan {
  int nranks;
  size_t nshards;
  char **shards;      /* [nshards] paths, sorted */
  uint64_t *bytes;    /* [nshards] file sizes */
  int *owner;         /* [nshards] rank that reads the shard */
  uint64_t user_seed; /* user -> rank: mix64(user ^ seed) % nranks */
  uint64_t pair_seed; /* pair -> rank: mix64(pair ^ seed) % nranks */
} rt_plan;

/* Collective. Rank 0 expands `logs` (a glob, or "@MANIFEST" / a *.manifest
 * file listing one path per line, relative to the manifest's directory),
 * stats each shard and assigns shards to ranks (largest first, to the rank
 * with the fewest bytes so far). Every rank gets the same plan or the same
 * error (RT_ERR_INPUT: nothing matched, a listed shard missing). */
int rt_plan_build(const char *logs, MPI_Comm comm, rt_plan *plan, rt_err *err);

/* A plan with no shards, only the ownership maps (prompt.mode = base). */
void rt_plan_pairs_only(int nranks, rt_plan *plan);

static inline int rt_user_owner(const rt_plan *p, uint64_t user) {
  return (int)(rt_mix64(user ^ p->user_seed) % (uint64_t)p->nranks);
}
static inline int rt_pair_owner(const rt_plan *p, uint64_t pair) {
  return (int)(rt_mix64(pair ^ p->pair_seed) % (uint64_t)p->nranks);
}

void rt_plan_free(rt_plan *p);

#endif
