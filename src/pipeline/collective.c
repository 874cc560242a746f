/* collective.c — failure agreement, broadcasts, chunked all-to-all. */
#include "pipeline/collective.h"
#include "base/tags.h"
#include "base/util.h"
#include "pipeline/stop.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void rt_mpi_wait_idle(MPI_Request *req) {
  int done = 0;
  for (int spins = 0;; spins++) {
    MPI_Test(req, &done, MPI_STATUS_IGNORE);
    if (done) return;
    if (spins > 64) { /* not a short wait: give the core away */
      struct timespec ts = {0, 50000};
      nanosleep(&ts, NULL);
    }
  }
}

int rt_agree(MPI_Comm comm, int rc, rt_err *err) {
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  /* A stop asked by a signal ends the stage here, on every rank alike. */
  if (rc == RT_OK && rt_stop_armed() && rt_stop_poll())
    rc = rt_err_set(err, RT_ERR_INTERRUPTED, "interrupted by %s: nothing published; rerun the same command to "
                    "resume (answers already paid for are in the journal)", rt_stop_name(rt_stop_requested()));
  /* lowest failing rank: min over (rc ? rank : size) */
  int mine = rc ? rank : size, first;
  /* Ranks reach a stage's end at different times; the early ones wait
   * without spinning, so a busy rank (or its helper threads) on the same
   * node keeps the cores. */
  MPI_Request req;
  MPI_Iallreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm, &req);
  rt_mpi_wait_idle(&req);
  if (first == size) return RT_OK;
  int code = rc;
  MPI_Bcast(&code, 1, MPI_INT, first, comm);
  char msg[RT_ERR_MSG_MAX];
  if (rank == first) snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
  MPI_Bcast(msg, sizeof msg, MPI_CHAR, first, comm);
  if (err) {
    if (size > 1 && strncmp(msg, "rank ", 5) != 0)
      rt_err_set(err, code, "rank %d: %s", first, msg);
    else
      rt_err_set(err, code, "%s", msg);
  }
  return code;
}

void rt_bcast_bytes(MPI_Comm comm, int root, void **buf, size_t *len) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  uint64_t n = rank == root ? *len : 0;
  MPI_Bcast(&n, 1, MPI_UINT64_T, root, comm);
  if (rank != root) {
    *buf = rt_xmalloc(n ? n : 1);
    *len = n;
  }
  char *p = *buf;
  for (uint64_t off = 0; off < n;) {
    int chunk = n - off > (uint64_t)INT_MAX / 2 ? INT_MAX / 2 : (int)(n - off);
    MPI_Bcast(p + off, chunk, MPI_BYTE, root, comm);
    off += (uint64_t)chunk;
  }
}

int rt_alltoallv_rounds(MPI_Comm comm, const void *sendbuf, const size_t *sendcounts, size_t recsize,
                        void **recv, size_t *nrecv, size_t round_bytes) {
  int size;
  MPI_Comm_size(comm, &size);
  size_t per_round = round_bytes / recsize / (size_t)size;
  if (per_round == 0) per_round = 1;
  if (per_round * recsize > (size_t)INT_MAX / 2) per_round = (size_t)INT_MAX / 2 / recsize;
  size_t *sdispl = rt_xmalloc((size_t)size * sizeof *sdispl);
  size_t *sent = rt_xcalloc((size_t)size, sizeof *sent);
  int *sc = rt_xmalloc((size_t)size * sizeof *sc), *rc = rt_xmalloc((size_t)size * sizeof *rc);
  int *sd = rt_xmalloc((size_t)size * sizeof *sd), *rd = rt_xmalloc((size_t)size * sizeof *rd);
  size_t off = 0;
  for (int r = 0; r < size; r++) {
    sdispl[r] = off;
    off += sendcounts[r];
  }
  const char *sb = sendbuf;
  char *tmp = NULL;
  size_t tmpcap = 0;
  int rounds = 0;
  for (;;) {
    /* Pack this round's slice per destination contiguously. */
    size_t total = 0;
    for (int r = 0; r < size; r++) {
      size_t rem = sendcounts[r] - sent[r];
      size_t k = rem < per_round ? rem : per_round;
      sc[r] = (int)(k * recsize);
      sd[r] = (int)(total * recsize);
      total += k;
    }
    uint64_t any_local = total, any;
    MPI_Allreduce(&any_local, &any, 1, MPI_UINT64_T, MPI_SUM, comm);
    if (any == 0) break;
    rounds++;
    /* The first round of a rank whose data all fits: its slices are the
     * send buffer as it is, so send from there instead of packing a copy. */
    int whole = rounds == 1 && total == off;
    if (whole) {
      for (int r = 0; r < size; r++) sd[r] = (int)(sdispl[r] * recsize);
    } else if (total * recsize > tmpcap) {
      tmpcap = total * recsize;
      tmp = rt_xrealloc(tmp, tmpcap);
    }
    const char *from = whole ? sb : tmp;
    for (int r = 0; r < size; r++) {
      if (sc[r] && !whole) memcpy(tmp + sd[r], sb + (sdispl[r] + sent[r]) * recsize, (size_t)sc[r]);
      sent[r] += (size_t)sc[r] / recsize;
    }
    MPI_Alltoall(sc, 1, MPI_INT, rc, 1, MPI_INT, comm);
    size_t rtotal = 0;
    for (int r = 0; r < size; r++) {
      rd[r] = (int)rtotal;
      rtotal += (size_t)rc[r];
    }
    *recv = rt_xrealloc(*recv, (*nrecv) * recsize + rtotal + 1);
    char *dst = (char *)*recv + (*nrecv) * recsize;
    MPI_Alltoallv(from, sc, sd, MPI_BYTE, dst, rc, rd, MPI_BYTE, comm);
    *nrecv += rtotal / recsize;
  }
  free(tmp);
  free(sdispl);
  free(sent);
  free(sc);
  free(rc);
  free(sd);
  free(rd);
  return rounds;
}

int rt_route_parts(MPI_Comm comm, const void *const *part, const size_t *len, int nparts, size_t recsize,
                   const int *dest, void **out, size_t *nout, size_t round_bytes) {
  int size;
  MPI_Comm_size(comm, &size);
  size_t n = 0;
  for (int p = 0; p < nparts; p++) n += len[p];
  /* counting sort by destination straight from the parts, then the rounds */
  size_t *counts = rt_xcalloc((size_t)size, sizeof *counts), *pos = rt_xcalloc((size_t)size, sizeof *pos);
  for (size_t i = 0; i < n; i++) counts[dest[i]]++;
  for (int r = 1; r < size; r++) pos[r] = pos[r - 1] + counts[r - 1];
  char *send = rt_xmalloc((n ? n : 1) * recsize);
  size_t i = 0;
  for (int p = 0; p < nparts; p++) {
    const char *src = part[p];
    for (size_t j = 0; j < len[p]; j++, i++) memcpy(send + recsize * pos[dest[i]]++, src + recsize * j, recsize);
  }
  *out = NULL;
  *nout = 0;
  int rounds = rt_alltoallv_rounds(comm, send, counts, recsize, out, nout, round_bytes);
  free(send);
  free(counts);
  free(pos);
  return rounds;
}

int rt_route(MPI_Comm comm, void **recs, size_t *n, size_t recsize, const int *dest, size_t round_bytes) {
  const void *part = *recs;
  size_t len = *n;
  int rounds = rt_route_parts(comm, &part, &len, 1, recsize, dest, recs, n, round_bytes);
  free((void *)part);
  return rounds;
}

void rt_gather_stream(MPI_Comm comm, const void *buf, size_t len, rt_bytes_cb cb, void *ctx) {
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  uint64_t mine = len;
  uint64_t *lens = rank == 0 ? rt_xmalloc((size_t)size * sizeof *lens) : NULL;
  MPI_Gather(&mine, 1, MPI_UINT64_T, lens, 1, MPI_UINT64_T, 0, comm);
  const int chunk = INT_MAX / 2; /* MPI counts are int */
  if (rank == 0) {
    cb(ctx, 0, buf ? buf : "", len);
    for (int r = 1; r < size; r++) {
      char *in = rt_xmalloc(lens[r] + 1);
      for (uint64_t got = 0; got < lens[r];) {
        int n = lens[r] - got > (uint64_t)chunk ? chunk : (int)(lens[r] - got);
        MPI_Recv(in + got, n, MPI_BYTE, r, RT_TAG_GATHER_STREAM, comm, MPI_STATUS_IGNORE);
        got += (uint64_t)n;
      }
      cb(ctx, r, in, lens[r]);
      free(in);
    }
    free(lens);
  } else {
    const char *p = buf;
    for (uint64_t sent = 0; sent < len;) {
      int n = len - sent > (uint64_t)chunk ? chunk : (int)(len - sent);
      MPI_Send(p + sent, n, MPI_BYTE, 0, RT_TAG_GATHER_STREAM, comm);
      sent += (uint64_t)n;
    }
  }
}

typedef struct {
  char *data;
  size_t len;
} concat;

static void append(void *ctx, int rank, const void *buf, size_t len) {
  (void)rank;
  concat *c = ctx;
  c->data = rt_xrealloc(c->data, c->len + len + 1);
  memcpy(c->data + c->len, buf, len);
  c->len += len;
}

void rt_gather_bytes(MPI_Comm comm, const void *buf, size_t len, void **out, size_t *outlen) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  concat c = {NULL, 0};
  rt_gather_stream(comm, buf, len, append, &c);
  if (rank == 0 && !c.data) c.data = rt_xmalloc(1);
  *out = c.data;
  *outlen = c.len;
}
