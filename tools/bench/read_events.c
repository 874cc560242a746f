/* read_events.c — by-hand throughput check of the event shard reader and of
 * the read stage (not built by CMake; timings do not belong in tests). Build
 * and run:
 *
 *   cmake --build build --target ragtide_base ragtide_stages ragtide ragtide-gen-logs
 *   mpicc -O2 -Isrc -Iinclude tools/bench/read_events.c build/libragtide_stages.a \
 *       build/libragtide_base.a build/libragtide.a \
 *       $(pkg-config --libs msgpack libzstd libxxhash inih) -fopenmp -lm -o /tmp/read_events
 *   build/ragtide-gen-logs --clusters 10000 --users 625000 --days 1 --shards-per-day 1 \
 *       --seed 1 --out /tmp/bench5m            # one shard of ~5M events
 *   /tmp/read_events /tmp/bench5m/logs/2026-01-01/part-0000.msgpack.zst [batch]
 *   /tmp/read_events --stage JOB.INI SHARD...  # stage 2 (rt_read_batch) alone
 *
 * Reads every event (batch events per rt_events_read call, default 4096),
 * three times, and prints the best events/s with CPU time and peak RSS.
 * --stage runs stage 2 the way `ragtide aggregate` does on one rank
 * (rt_read_batch in rounds of 4M events, the job's catalog and window) over
 * the given shards, three times, and prints the best. No MPI calls. */
#include "base/metrics.h"
#include "base/util.h"
#include "format/catalog.h"
#include "format/config.h"
#include "format/events.h"
#include "pipeline/read.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int stage(const char *ini, int nshards, char **shards) {
  rt_err err = {0};
  rt_config cfg;
  rt_catalog cat;
  rt_config_defaults(&cfg);
  if (rt_config_load(&cfg, ini, &err) || rt_catalog_load(cfg.catalog, &cat, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return err.code;
  }
  rt_plan plan = {.nranks = 1, .nshards = (size_t)nshards, .shards = shards};
  plan.owner = rt_xcalloc((size_t)nshards, sizeof *plan.owner);
  uint64_t *watch = rt_xcalloc(cat.n, sizeof *watch);
  double best = 1e30, best_cpu = 0;
  uint64_t kept = 0, check = 0;
  for (int rep = 0; rep < 3; rep++) {
    rt_ev_vec batch = {0};
    rt_read_cursor cur;
    rt_read_begin(&cur, &plan, 0, &cfg, &cat);
    double t0 = rt_now(), c0 = cpu_now();
    int done = 0;
    kept = check = 0;
    while (!done) {
      batch.len = 0;
      if (rt_read_batch(&cur, 4u << 20, &batch, watch, &done, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return err.code;
      }
      for (size_t i = 0; i < batch.len; i++)
        check += batch.data[i].user ^ batch.data[i].tcw;
      kept += batch.len;
    }
    double dt = rt_now() - t0, dc = cpu_now() - c0;
    rt_read_end(&cur);
    free(batch.data);
    if (dt < best) best = dt, best_cpu = dc;
  }
  uint64_t n = rt_metrics[RT_M_read_events] / 3;
  printf("stage 2: %llu events, %llu kept, best of 3: %.3f s wall (%.2f M events/s, %.1f ns/event), "
         "%.3f s cpu, peak RSS %ld KB, checksum %llx\n",
         (unsigned long long)n, (unsigned long long)kept, best, (double)n / best / 1e6, best / (double)n * 1e9,
         best_cpu, rt_peak_rss_kb(), (unsigned long long)check);
  free(watch);
  free(plan.owner);
  rt_catalog_free(&cat);
  rt_config_free(&cfg);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: read_events SHARD [batch] | read_events --stage JOB.INI SHARD...\n");
    return 2;
  }
  if (strcmp(argv[1], "--stage") == 0) {
    if (argc < 4) return fprintf(stderr, "usage: read_events --stage JOB.INI SHARD...\n"), 2;
    return stage(argv[2], argc - 3, argv + 3);
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
