/* shuffle.h — stage 3: move every event to the rank that owns its user.
 *
 * Why: a user's events may sit in many shards read by many ranks; after the
 * shuffle each user's whole history is on one rank, so sequencing gives the
 * same triples whatever the shard split or rank count. Uses MPI_Alltoallv in
 * bounded rounds (collective.h), so no count overflows int and the memory of
 * one round is capped. Skipped when input.partitioned_by_user says the shards
 * are already split by user. */
#ifndef RT_PIPELINE_SHUFFLE_H
#define RT_PIPELINE_SHUFFLE_H

#include <mpi.h>

#include "pipeline/plan.h"
#include "pipeline/read.h"

/* Collective. The events of part[0..nparts) (the rank's reading threads'
 * batches, read in place) go to their users' owners; *out (emptied first)
 * receives the events this rank owns. */
int rt_shuffle_by_user(const rt_plan *plan, MPI_Comm comm, const rt_ev_vec *part, int nparts, rt_ev_vec *out,
                       size_t round_bytes, rt_err *err);

#endif
