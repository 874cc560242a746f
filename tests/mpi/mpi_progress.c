/* mpi_progress.c — rt_progress under uneven work: ranks do different numbers
 * of steps of different lengths (one does none), updates are frequent, and
 * rt_progress_finish must return on every rank (no deadlock) with rank 0
 * having reported counts that never exceed the total. Exits non-zero on
 * failure; run by tests/scripts/mpi_progress.sh under mpirun -n 3. */
#include <mpi.h>
#include <stdio.h>
#include <time.h>

#include "pipeline/progress.h"

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  /* rank r does 40 * r steps of (r + 1) ms: rank 0 none, the last the most */
  uint64_t steps = 40u * (uint64_t)rank, total = 0;
  for (int r = 0; r < size; r++) total += 40u * (uint64_t)r;
  rt_progress p;
  rt_progress_start(&p, MPI_COMM_WORLD, "test steps", total, 0.02);
  uint64_t done = 0;
  for (uint64_t i = 0; i < steps; i++) {
    struct timespec ts = {0, (long)(rank + 1) * 1000000L};
    nanosleep(&ts, NULL);
    rt_progress_update(&p, ++done);
  }
  /* rank 0 has no work of its own: it keeps polling, as a rank 0 that
   * finished early would, until the others are done */
  if (rank == 0) {
    for (int i = 0; i < 200; i++) {
      struct timespec ts = {0, 1000000L};
      nanosleep(&ts, NULL);
      rt_progress_update(&p, done);
    }
  }
  rt_progress_finish(&p, done);
  int ok = 1;
  if (rank == 0) {
    if (p.reports < 1) ok = 0, fprintf(stderr, "FAIL: rank 0 printed no progress line\n");
    if (p.sum[0] > total) ok = 0, fprintf(stderr, "FAIL: reported %llu of %llu\n", (unsigned long long)p.sum[0],
                                       (unsigned long long)total);
  }
  /* the job's own collectives still work after the progress rounds */
  int all;
  MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (rank == 0) printf("%s: %d progress lines, last %llu of %llu\n", all ? "ok" : "FAIL", p.reports,
                        (unsigned long long)p.sum[0], (unsigned long long)total);
  MPI_Finalize();
  return all ? 0 : 1;
}
