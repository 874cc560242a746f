/* table_bench.c — `ragtide-bench-table`: measure the transition-table format
 * (bytes per pair, open time, lookups/s from 1..T threads) and, with `make`,
 * write small synthetic tables for the e2e scripts. Links libragtide only.
 *
 *   ragtide-bench-table [bench] [--clusters N] [--seed S] [--threads T] [--dir DIR]
 *   ragtide-bench-table make OUT [--clusters N] [--seed S] [--candidates C]
 *       [--prov base|rag|fallback|mix] [--fill PERCENT] [--id-base B] [--id-step K]
 *       [--run-id R] [--base-run-id R] [--catalog-hash H] [--model M] [--day D]
 *       [--created-at T]
 * Not a test: timings depend on the machine. */
#define RAGTIDE_STATIC_LINKING_ONLY /* it builds tables: the experimental builder API */
#include <ragtide/table.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng_next(uint64_t *s) {
  uint64_t x = (*s += 0x9e3779b97f4a7c15ULL);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

typedef struct opts {
  uint32_t clusters, candidates, threads, id_base, id_step, day;
  uint64_t seed, catalog_hash;
  int64_t created_at;
  int fill; /* percent of pairs predicted */
  const char *prov, *run_id, *base_run_id, *model, *dir;
} opts;

static ragtide_table_builder *make_builder(const opts *o) {
  uint32_t n = o->clusters;
  uint32_t *ids = calloc(n ? n : 1, 4);
  if (!ids) return NULL;
  for (uint32_t i = 0; i < n; i++) ids[i] = o->id_base + i * o->id_step;
  ragtide_table_builder *b = ragtide_builder_new(ids, n, o->candidates);
  free(ids);
  if (!b) return NULL;
  uint64_t s = o->seed;
  for (uint32_t i1 = 0; i1 < n; i1++)
    for (uint32_t i2 = 0; i2 < n; i2++) {
      if ((int)(rng_next(&s) % 100) >= o->fill) continue;
      for (uint32_t j = 0; j < o->candidates; j++) {
        ragtide_provenance p = RAGTIDE_PROV_BASE;
        if (!strcmp(o->prov, "rag")) p = RAGTIDE_PROV_RAG;
        else if (!strcmp(o->prov, "fallback")) p = RAGTIDE_PROV_FALLBACK;
        else if (!strcmp(o->prov, "mix")) p = (ragtide_provenance)(1 + rng_next(&s) % 3);
        ragtide_builder_set(b, i1, i2, j, (uint32_t)(rng_next(&s) % n), p, o->day);
      }
    }
  ragtide_table_info info = {0};
  info.k = 2;
  info.created_at = o->created_at;
  info.window_start = o->created_at - 7 * 86400;
  info.window_end = o->created_at;
  info.catalog_hash = o->catalog_hash;
  info.template_hash = 0x1234;
  info.config_hash = 0x5678;
  info.model = o->model;
  info.run_id = o->run_id;
  info.base_run_id = o->base_run_id;
  ragtide_builder_set_info(b, &info);
  return b;
}

typedef struct worker {
  const ragtide_table *t;
  const uint32_t *pairs; /* 2 * npairs ids */
  size_t npairs, rounds;
  uint64_t sum;
  double secs;
} worker;

static void *run_lookups(void *arg) {
  worker *w = arg;
  uint64_t sum = 0;
  double t0 = now();
  for (size_t r = 0; r < w->rounds; r++)
    for (size_t i = 0; i < w->npairs; i++) {
      uint32_t next = 0;
      ragtide_provenance p;
      ragtide_table_lookup(w->t, w->pairs[2 * i], w->pairs[2 * i + 1], &next, &p);
      sum += next + p;
    }
  w->secs = now() - t0;
  w->sum = sum;
  return NULL;
}

static int bench(const opts *o) {
  char path[4096];
  snprintf(path, sizeof path, "%s/ragtide-bench-%ld.table", o->dir, (long)getpid());
  double t0 = now();
  ragtide_table_builder *b = make_builder(o);
  if (!b) {
    fprintf(stderr, "ragtide-bench-table: cannot create a builder for %u clusters\n", o->clusters);
    return 1;
  }
  double t_fill = now() - t0;
  char err[1024];
  t0 = now();
  int rc = ragtide_builder_write(b, path, err, sizeof err);
  double t_write = now() - t0;
  ragtide_builder_free(b);
  if (rc) {
    fprintf(stderr, "ragtide-bench-table: %s\n", err);
    return 1;
  }
  FILE *f = fopen(path, "rb");
  long size = 0;
  if (f) {
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fclose(f);
  }
  uint64_t np = (uint64_t)o->clusters * o->clusters;
  printf("clusters            %u (%" PRIu64 " pairs, %d%% predicted, %u candidate(s))\n", o->clusters, np,
         o->fill, o->candidates);
  printf("fill builder        %.1f ms\n", t_fill * 1e3);
  printf("serialize+write     %.1f ms\n", t_write * 1e3);
  printf("file size           %ld bytes = %.3f bytes/pair\n", size, (double)size / (double)np);
  double opens[5];
  ragtide_table *t = NULL;
  for (int i = 0; i < 5; i++) {
    t0 = now();
    rc = ragtide_table_open(path, &t, err, sizeof err);
    opens[i] = now() - t0;
    if (rc) {
      fprintf(stderr, "ragtide-bench-table: %s\n", err);
      return 1;
    }
    if (i < 4) ragtide_table_close(t);
  }
  printf("open (median of 5)  %.2f ms\n", median(opens, 5) * 1e3);
  size_t nq = 1u << 20;
  uint32_t *pairs = malloc(nq * 2 * sizeof *pairs);
  uint32_t nid;
  const uint32_t *ids = ragtide_table_cluster_ids(t, &nid);
  uint64_t s = o->seed ^ 0xabcdef;
  for (size_t i = 0; i < 2 * nq; i++) pairs[i] = ids[rng_next(&s) % nid];
  for (uint32_t th = 1; th <= o->threads; th++) {
    double rates[5];
    for (int rep = 0; rep < 5; rep++) {
      worker w[64];
      pthread_t tid[64];
      for (uint32_t k = 0; k < th; k++) {
        w[k] = (worker){.t = t, .pairs = pairs, .npairs = nq, .rounds = 8};
        pthread_create(&tid[k], NULL, run_lookups, &w[k]);
      }
      double per = 0;
      for (uint32_t k = 0; k < th; k++) {
        pthread_join(tid[k], NULL);
        per += (double)(w[k].npairs * w[k].rounds) / w[k].secs;
        if (w[k].sum == 42) printf(" "); /* keep the loop observable */
      }
      rates[rep] = per / th;
    }
    double m = median(rates, 5);
    printf("lookups, %u thread%s  %.1f M/s per thread (%.1f M/s total, median of 5 runs of %zu)\n", th,
           th > 1 ? "s" : " ", m / 1e6, m * th / 1e6, nq * 8);
  }
  free(pairs);
  ragtide_table_close(t);
  unlink(path);
  return 0;
}

int main(int argc, char **argv) {
  opts o = {.clusters = 1000, .candidates = 1, .threads = 2, .id_base = 1, .id_step = 1, .day = 20000,
            .seed = 42, .catalog_hash = 0xc0ffee, .created_at = 1764115200, .fill = 100, .prov = "base",
            .run_id = "bench-run", .base_run_id = "", .model = "bench-model", .dir = "/tmp"};
  int i = 1;
  const char *mode = "bench", *out = NULL;
  if (i < argc && argv[i][0] != '-') mode = argv[i++];
  if (!strcmp(mode, "make")) {
    if (i >= argc) {
      fprintf(stderr, "usage: ragtide-bench-table make OUT [options] (see the source header)\n");
      return 2;
    }
    out = argv[i++];
  } else if (strcmp(mode, "bench")) {
    fprintf(stderr, "ragtide-bench-table: unknown mode \"%s\" (bench or make)\n", mode);
    return 2;
  }
  for (; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) {
      fprintf(stderr, "ragtide-bench-table: %s needs a value\n", a);
      return 2;
    }
    i++;
    if (!strcmp(a, "--clusters")) o.clusters = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--seed")) o.seed = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--threads")) o.threads = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--candidates")) o.candidates = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--prov")) o.prov = v;
    else if (!strcmp(a, "--fill")) o.fill = atoi(v);
    else if (!strcmp(a, "--id-base")) o.id_base = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--id-step")) o.id_step = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--run-id")) o.run_id = v;
    else if (!strcmp(a, "--base-run-id")) o.base_run_id = v;
    else if (!strcmp(a, "--catalog-hash")) o.catalog_hash = strtoull(v, NULL, 0);
    else if (!strcmp(a, "--model")) o.model = v;
    else if (!strcmp(a, "--day")) o.day = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--created-at")) o.created_at = strtoll(v, NULL, 10);
    else if (!strcmp(a, "--dir")) o.dir = v;
    else {
      fprintf(stderr, "ragtide-bench-table: unknown option %s\n", a);
      return 2;
    }
  }
  if (o.threads < 1 || o.threads > 64 || o.clusters < 1 || o.id_step < 1) {
    fprintf(stderr, "ragtide-bench-table: --threads must be 1..64, --clusters and --id-step >= 1\n");
    return 2;
  }
  if (!out) return bench(&o);
  ragtide_table_builder *b = make_builder(&o);
  if (!b) {
    fprintf(stderr, "ragtide-bench-table: bad arguments for a table of %u clusters x %u candidates\n",
            o.clusters, o.candidates);
    return 2;
  }
  char err[1024];
  int rc = ragtide_builder_write(b, out, err, sizeof err);
  ragtide_builder_free(b);
  if (rc) {
    fprintf(stderr, "ragtide-bench-table: %s\n", err);
    return 1;
  }
  return 0;
}
