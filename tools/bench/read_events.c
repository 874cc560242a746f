/* read_events.c — by-hand throughput check of the event shard reader (not
 * built by CMake; timings do not belong in tests). Build and run:
 *
 *   cmake --build build --target ragtide_base ragtide-gen-logs
 *   gcc -O2 -Isrc -Iinclude tools/bench/read_events.c build/libragtide_base.a \
 *       $(pkg-config --libs msgpack libzstd) -lm -o /tmp/read_events
 *   build/ragtide-gen-logs --clusters 10000 --users 625000 --days 1 --shards-per-day 1 \
 *       --seed 1 --out /tmp/bench5m            # one shard of ~5M events
 *   /tmp/read_events /tmp/bench5m/logs/2026-01-01/part-0000.msgpack.zst [batch]
 *
 * Reads every event (batch events per rt_events_read call, default 4096),
 * three times, and prints the best events/s with CPU time and peak RSS. */
#include "base/util.h"
#include "format/events.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: read_events SHARD [batch]\n");
    return 2;
  }
  size_t batch = argc > 2 ? strtoull(argv[2], NULL, 10) : 4096;
  if (batch == 0) batch = 4096;
  rt_event *buf = rt_xmalloc(batch * sizeof *buf);
  double best = 1e30, best_cpu = 0;
  uint64_t n = 0, check = 0, bytes = 0;
  for (int rep = 0; rep < 3; rep++) {
    rt_err err = {0};
    rt_event_reader *r;
    if (rt_events_open(argv[1], &r, &err)) {
      fprintf(stderr, "%s\n", err.msg);
      return err.code;
    }
    double t0 = rt_now(), c0 = cpu_now();
    n = 0;
    check = 0;
    long k;
    while ((k = rt_events_read(r, buf, batch, &err)) > 0) {
      for (long i = 0; i < k; i++) check += buf[i].user ^ (uint64_t)buf[i].ts ^ buf[i].cluster;
      n += (uint64_t)k;
    }
    if (k < 0) {
      fprintf(stderr, "%s\n", err.msg);
      return err.code;
    }
    double dt = rt_now() - t0, dc = cpu_now() - c0;
    bytes = rt_events_bytes_in(r);
    rt_events_close(r);
    if (dt < best) best = dt, best_cpu = dc;
  }
  printf("%llu events, %llu compressed bytes, best of 3: %.3f s wall (%.2f M events/s), %.3f s cpu "
         "(%.2f M events/s per core), peak RSS %ld KB, checksum %llx\n",
         (unsigned long long)n, (unsigned long long)bytes, best, (double)n / best / 1e6, best_cpu,
         (double)n / best_cpu / 1e6, rt_peak_rss_kb(), (unsigned long long)check);
  free(buf);
  return 0;
}
