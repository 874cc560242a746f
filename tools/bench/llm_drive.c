/* llm_drive.c — a small driver of the LLM client for the dispatch benchmark
 * (tools/bench/dispatch.sh) and the llama-server check
 * (tests/scripts/llama_server.sh). Not part of the CMake build: the scripts
 * compile it against the build's static libraries.
 *
 *   llm_drive --catalog FILE --n N [--set llm.key=value ...] [--answers FILE] [--mpi]
 *             [--rank-n N0,N1,...] [--stats-url URL]
 *
 * Makes N prompts that each name three catalog clusters (one per line), runs
 * them through rt_llm_run and prints one JSON line per rank: the client's
 * stats, the exact-match rate of the answers against the catalog, wall and
 * CPU time (getrusage). --mpi initialises MPI (run under mpirun); --rank-n
 * gives each rank its own number of calls. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "base/err.h"
#include "base/log.h"
#include "base/util.h"
#include "format/catalog.h"
#include "format/config.h"
#include "llm/infer.h"

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

static int usage(void) {
  fprintf(stderr, "usage: llm_drive --catalog FILE --n N [--set llm.key=value ...] [--answers FILE] [--mpi] "
                  "[--rank-n N0,N1,...]\n");
  return RT_ERR_USAGE;
}

int main(int argc, char **argv) {
  const char *catalog = NULL, *answers_path = NULL, *rank_n = NULL;
  long n = 0;
  int use_mpi = 0, rank = 0, nranks = 1;
  rt_config cfg;
  rt_config_defaults(&cfg);
  rt_err err = {0};
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--catalog") && i + 1 < argc)
      catalog = argv[++i];
    else if (!strcmp(argv[i], "--n") && i + 1 < argc)
      n = atol(argv[++i]);
    else if (!strcmp(argv[i], "--answers") && i + 1 < argc)
      answers_path = argv[++i];
    else if (!strcmp(argv[i], "--rank-n") && i + 1 < argc)
      rank_n = argv[++i];
    else if (!strcmp(argv[i], "--mpi"))
      use_mpi = 1;
    else if (!strcmp(argv[i], "--set") && i + 1 < argc) {
      if (rt_config_set(&cfg, argv[++i], &err)) {
        fprintf(stderr, "llm_drive: %s\n", err.msg);
        return err.code;
      }
    } else
      return usage();
  }
  if (!catalog || (n <= 0 && !rank_n)) return usage();
  if (use_mpi) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    rt_log_set_rank(rank);
  } else {
    rt_log_set_rank(-1);
  }
  if (rank_n) { /* "20,80": rank r makes the r-th number of calls */
    const char *p = rank_n;
    for (int r = 0; r < rank && p; r++) {
      p = strchr(p, ',');
      if (p) p++;
    }
    n = p ? atol(p) : 0;
  }
  rt_catalog cat;
  if (rt_catalog_load(catalog, &cat, &err)) {
    fprintf(stderr, "llm_drive: %s\n", err.msg);
    return err.code;
  }
  rt_llm_call *calls = rt_xcalloc((size_t)(n > 0 ? n : 1), sizeof *calls);
  char **texts = rt_xcalloc((size_t)(n > 0 ? n : 1), sizeof *texts);
  for (long i = 0; i < n; i++) {
    uint32_t k = cat.n;
    char buf[2048];
    snprintf(buf, sizeof buf,
             "A viewer watched these interest clusters, in order:\n%s\n%s\n%s\nRank %d request %ld: which "
             "cluster comes next? Answer with one cluster description.",
             cat.desc[(uint32_t)i % k], cat.desc[(uint32_t)(i * 7 + 3) % k], cat.desc[(uint32_t)(i * 3 + 11) % k],
             rank, i);
    texts[i] = rt_xstrdup(buf);
    calls[i].user = texts[i];
    calls[i].tag = (uint64_t)i;
  }
  rt_llm_answer *ans = rt_xcalloc((size_t)(n > 0 ? n : 1), sizeof *ans);
  rt_llm_client *c = NULL;
  int rc = rt_llm_client_new(&cfg, &cat, &c, &err);
  if (rc) {
    fprintf(stderr, "llm_drive: %s\n", err.msg);
    if (use_mpi) MPI_Abort(MPI_COMM_WORLD, rc);
    return rc;
  }
  double c0 = cpu_s(), t0 = rt_now();
  rc = rt_llm_run(c, calls, (size_t)n, ans, &err);
  double wall = rt_now() - t0, cpu = cpu_s() - c0;
  if (rc) fprintf(stderr, "llm_drive: rank %d: %s\n", rank, err.msg);
  long ok = 0, exact = 0;
  FILE *af = answers_path ? fopen(answers_path, "w") : NULL;
  for (long i = 0; i < n; i++) {
    if (ans[i].ok) {
      ok++;
      char norm[4096];
      rt_normalize_desc(ans[i].text, norm, sizeof norm);
      if (rt_catalog_find_norm(&cat, norm) >= 0) exact++;
    }
    if (af) {
      /* One answer per line, newlines flattened. */
      const char *t = ans[i].ok ? ans[i].text : "";
      fprintf(af, "%ld\t%d\t", i, ans[i].ok);
      for (; *t; t++) fputc(*t == '\n' || *t == '\t' ? ' ' : *t, af);
      fputc('\n', af);
    }
  }
  if (af) fclose(af);
  const rt_llm_stats *s = rt_llm_get_stats(c);
  printf("{\"rank\":%d,\"nranks\":%d,\"rc\":%d,\"calls\":%ld,\"ok\":%ld,\"failed\":%llu,\"exact\":%ld,"
         "\"exact_rate\":%.4f,\"requests\":%llu,\"retries\":%llu,\"answered\":%llu,\"http_429\":%llu,"
         "\"http_5xx\":%llu,\"timeouts\":%llu,\"conn_errors\":%llu,\"bad_responses\":%llu,\"throttled_ms\":%llu,"
         "\"prompt_tokens\":%llu,\"completion_tokens\":%llu,\"wall_s\":%.4f,\"cpu_s\":%.4f,"
         "\"cpu_us_per_request\":%.2f,\"requests_per_s\":%.1f,\"rate_cuts\":%llu,\"rate_limit\":%.1f,"
         "\"http_429_quota\":%llu,\"limit_batches\":%llu,\"hdr_rate\":%.1f,\"latency_p50_ms\":%.1f,"
         "\"latency_p99_ms\":%.1f}\n",
         rank, nranks, rc, n, ok, (unsigned long long)s->failed, exact, n ? (double)exact / (double)n : 0.0,
         (unsigned long long)s->requests, (unsigned long long)s->retries, (unsigned long long)s->answered,
         (unsigned long long)s->http_429, (unsigned long long)s->http_5xx, (unsigned long long)s->timeouts,
         (unsigned long long)s->conn_errors, (unsigned long long)s->bad_responses,
         (unsigned long long)s->throttled_ms, (unsigned long long)s->prompt_tokens,
         (unsigned long long)s->completion_tokens, wall, cpu,
         s->requests ? cpu * 1e6 / (double)s->requests : 0.0, wall > 0 ? (double)s->requests / wall : 0.0,
         (unsigned long long)s->rate_cuts, s->rate_limit, (unsigned long long)s->http_429_quota,
         (unsigned long long)s->limit_batches, s->hdr_rate, rt_llm_latency_quantile(s->latency_buckets, 0.5),
         rt_llm_latency_quantile(s->latency_buckets, 0.99));
  fflush(stdout);
  for (long i = 0; i < n; i++) {
    rt_llm_answer_free(&ans[i]);
    free(texts[i]);
  }
  free(ans);
  free(texts);
  free(calls);
  rt_llm_client_free(c);
  rt_catalog_free(&cat);
  rt_config_free(&cfg);
  if (use_mpi) MPI_Finalize();
  return rc;
}
