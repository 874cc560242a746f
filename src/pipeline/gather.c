/* gather.c — compact result records, streamed to rank 0 rank by rank. */
#include "pipeline/gather.h"
#include "base/metrics.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

void rt_result_put(rt_result_buf *b, const rt_result *r) {
  size_t need = 10 + 4 * (size_t)r->n;
  rt_vec_reserve(b, b->len + need);
  char *p = b->data + b->len;
  memcpy(p, &r->pair, 8);
  p[8] = (char)r->prov;
  p[9] = (char)r->n;
  memcpy(p + 10, r->next, 4 * (size_t)r->n);
  b->len += need;
}

int rt_result_next(const char *buf, size_t len, size_t *off, rt_result *r) {
  if (*off == len) return 0;
  if (len - *off < 10) return -1;
  const char *p = buf + *off;
  memcpy(&r->pair, p, 8);
  r->prov = (unsigned char)p[8];
  r->n = (unsigned char)p[9];
  if (r->n > RT_MAX_CAND || len - *off - 10 < 4 * (size_t)r->n) return -1;
  memcpy(r->next, p + 10, 4 * (size_t)r->n);
  *off += 10 + 4 * (size_t)r->n;
  return 1;
}

void rt_gather_results(MPI_Comm comm, const rt_result_buf *mine, rt_result_cb cb, void *ctx) {
  double t0 = rt_stage_begin();
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  uint64_t len = mine->len;
  uint64_t *lens = rank == 0 ? rt_xmalloc((size_t)size * sizeof *lens) : NULL;
  MPI_Gather(&len, 1, MPI_UINT64_T, lens, 1, MPI_UINT64_T, 0, comm);
  const int chunk = INT_MAX / 2;
  if (rank == 0) {
    cb(ctx, mine->data ? mine->data : "", mine->len);
    for (int r = 1; r < size; r++) {
      char *buf = rt_xmalloc(lens[r] + 1);
      for (uint64_t got = 0; got < lens[r];) {
        int n = lens[r] - got > (uint64_t)chunk ? chunk : (int)(lens[r] - got);
        MPI_Recv(buf + got, n, MPI_BYTE, r, 78, comm, MPI_STATUS_IGNORE);
        got += (uint64_t)n;
      }
      cb(ctx, buf, lens[r]);
      free(buf);
    }
    free(lens);
  } else {
    for (uint64_t sent = 0; sent < len;) {
      int n = len - sent > (uint64_t)chunk ? chunk : (int)(len - sent);
      MPI_Send(mine->data + sent, n, MPI_BYTE, 0, 78, comm);
      sent += (uint64_t)n;
    }
  }
  rt_stage_end(RT_M_gather_us, t0);
}
