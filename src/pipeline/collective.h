/* collective.h — small MPI helpers the stages share: agreeing on failure,
 * broadcasting byte buffers, and Alltoallv in bounded rounds.
 *
 * Why: a stage may fail on one rank (a corrupt shard) while the others are
 * fine; every rank must then leave the stage together with the same error,
 * or the job deadlocks in the next collective. rt_agree() is called at the
 * end of every stage. */
#ifndef RT_PIPELINE_COLLECTIVE_H
#define RT_PIPELINE_COLLECTIVE_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Collective. Combine each rank's local status: returns RT_OK everywhere if
 * all ranks are OK; otherwise every rank returns the status of the lowest
 * failing rank, with that rank's message in err (prefixed "rank N: "). */
int rt_agree(MPI_Comm comm, int rc, rt_err *err);

/* Wait for a request without burning a core: test, and sleep a little
 * between tests (for waits of milliseconds or more, where another rank or
 * thread on the same node does the work being waited for). */
void rt_mpi_wait_idle(MPI_Request *req);

/* Broadcast a malloc'ed byte buffer from root; non-roots get a new buffer. */
void rt_bcast_bytes(MPI_Comm comm, int root, void **buf, size_t *len);

/* Alltoallv of fixed-size records in rounds of at most `round_bytes` per
 * rank per round, so counts never overflow int and the receive buffer grows
 * incrementally. sendbuf holds records grouped by destination rank;
 * sendcounts[r] records go to rank r. Received records are appended to
 * *recv (realloc'ed), *nrecv updated. Returns the number of rounds. */
int rt_alltoallv_rounds(MPI_Comm comm, const void *sendbuf, const size_t *sendcounts, size_t recsize,
                        void **recv, size_t *nrecv, size_t round_bytes);

/* Collective: send every record of *recs (n of recsize bytes) to the rank
 * dest[i] names, in bounded rounds; *recs is freed and replaced by the
 * records this rank received (*n updated). Returns the number of rounds. */
int rt_route(MPI_Comm comm, void **recs, size_t *n, size_t recsize, const int *dest, size_t round_bytes);
/* The same for records in several arrays (one per thread), read in place:
 * dest holds the destinations of part 0's records, then part 1's, ...; the
 * received records go to *out (malloc'ed, *nout of them). */
int rt_route_parts(MPI_Comm comm, const void *const *part, const size_t *len, int nparts, size_t recsize,
                   const int *dest, void **out, size_t *nout, size_t round_bytes);

/* Collective: every rank's byte buffer to rank 0, one rank at a time. Rank 0
 * calls cb(ctx, rank, buf, len) for each rank in rank order (its own first)
 * and holds one received buffer at a time; others only send. */
typedef void (*rt_bytes_cb)(void *ctx, int rank, const void *buf, size_t len);
void rt_gather_stream(MPI_Comm comm, const void *buf, size_t len, rt_bytes_cb cb, void *ctx);

/* The same, concatenated: rank 0 gets every buffer in rank order in one
 * malloc'ed block (*out, *outlen); others get NULL and 0. */
void rt_gather_bytes(MPI_Comm comm, const void *buf, size_t len, void **out, size_t *outlen);

#endif
