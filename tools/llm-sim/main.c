/* main.c — ragtide-llm-sim command line, start-up and clean shutdown.
 *
 * Serves until SIGTERM or SIGINT, then closes every open request and exits 0.
 * The signals are blocked in every thread and taken with sigwait() here, so
 * no server thread is ever interrupted. */
#include "sim.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

static const char usage[] =
    "usage: ragtide-llm-sim --catalog FILE [options]\n"
    "\n"
    "A deterministic, fault-injecting simulated LLM endpoint on 127.0.0.1 for tests and\n"
    "benchmarks of ragtide. Serves POST /v1/chat/completions (OpenAI), POST\n"
    "/v1beta/models/{model}:generateContent (Gemini), GET /v1/models, GET /stats, GET /health\n"
    "until SIGTERM/SIGINT (exit 0). See docs/llm-sim.md.\n"
    "\n"
    "  --catalog FILE        cluster catalog TSV (id<TAB>keywords); required\n"
    "  --port P              port on 127.0.0.1 (default 0: any free port)\n"
    "  --port-file F         also write the chosen port to F (atomically)\n"
    "  --seed S              seed of every decision (default 0)\n"
    "  --follow P            probability of answering the first retrieved cluster (default 0.8)\n"
    "  --latency-ms L        latency per answer in ms (default 0); the mean when log-normal\n"
    "  --latency-dist D      fixed (default) or lognormal\n"
    "  --latency-p99-ms P    p99 of the log-normal latency (needs L < P <= ~15 L)\n"
    "  --capacity N          max requests in service, the rest wait FIFO (default 0: unlimited)\n"
    "  --rps R               token-bucket limit in requests/s, burst max(1,R); over it 429 with\n"
    "                        Retry-After (default 0: unlimited)\n"
    "                        (Gemini: no Retry-After; RetryInfo in the error's details)\n"
    "  --tpm T               token-bucket limit in tokens/min (prompt bytes/4 + max_tokens, charged\n"
    "                        as OpenAI does), burst T/60; over it 429 as for --rps (default 0)\n"
    "  --upload-origin URL   Gemini resumable uploads: the x-goog-upload-url names this origin\n"
    "                        (scheme://host:port) instead of the sim's own (a misbehaving proxy)\n"
    "  --ratelimit-headers   OpenAI's x-ratelimit-limit/remaining/reset-requests (with --rps)\n"
    "                        and -tokens (with --tpm) headers on every inference response\n"
    "  --fail-429 X          fraction answered 429 at once, independent of the rate (a busy\n"
    "                        shared capacity), with Retry-After (default 0)\n"
    "  --retry-after S       the Retry-After seconds of --fail-429 (default 1)\n"
    "  --fault-attempts K    resets, hangs, 429s and 5xx only on a prompt's first K attempts, so\n"
    "                        a retry goes through (default 0: every attempt draws afresh)\n"
    "  --fail-500 X          fraction of requests answered 500 (default 0)\n"
    "  --fail-502 X          fraction answered 502\n"
    "  --fail-503 X          fraction answered 503\n"
    "  --fail-504 X          fraction answered 504\n"
    "  --hang X              fraction never answered (connection held open until shutdown)\n"
    "  --reset X             fraction whose connection is closed without a response\n"
    "  --malformed X         fraction answered 200 with a truncated (invalid) JSON body\n"
    "  --off-catalog X       fraction answering a description that is not in the catalog\n"
    "  --noise X             fraction answering a catalog description with noise (case, keyword\n"
    "                        order, spaces, punctuation) that rt_normalize_desc() undoes\n"
"  --batch-delay-ms D    batch endpoints: creation to completion (default 1000)\n"
    "  --batch-fail X        fraction of batch lines failed with a 500 (default 0)\n"
    "  --batch-expire-ms E   a batch still running after E ms expires (default 0: never)\n"
    "  --batch-max-requests N  reject (400) a batch of more requests (default 0: no limit)\n"
    "  --batch-max-bytes N   reject (400) a larger input file / inline request (default 0: no limit)\n"
    "  --batch-get-fail N    every Nth GET of a batch answers 503 (default 0: never)\n"
    "  --require-key K       require Authorization: Bearer K (OpenAI) / x-goog-api-key: K (Gemini)\n"
    "  --threads N           server threads (default 2)\n"
    "  --help                this text\n"
    "\n"
    "Fault rates X are in [0,1]. Every decision is a function of (seed, prompt, n) where n counts\n"
    "earlier requests with the same prompt; only the 429 limiter depends on time.\n"
    "Environment: RAGTIDE_LOG=debug logs every decision on stderr.\n";

static int bad_value(const char *flag, const char *val, const char *want) {
  fprintf(stderr, "ragtide-llm-sim: %s \"%s\": expected %s; see --help\n", flag, val, want);
  return RT_ERR_USAGE;
}

static int parse_double(const char *flag, const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
    char want[96];
    if (hi >= 1e300) snprintf(want, sizeof want, "a number >= %g", lo);
    else snprintf(want, sizeof want, "a number in [%g, %g]", lo, hi);
    return bad_value(flag, s, want);
  }
  *out = v;
  return 0;
}

static int parse_uint(const char *flag, const char *s, unsigned long long lo, unsigned long long hi,
                      unsigned long long *out) {
  char *end;
  errno = 0;
  if (*s == '-') return bad_value(flag, s, "a non-negative integer");
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) {
    char want[96];
    snprintf(want, sizeof want, "an integer in [%llu, %llu]", lo, hi);
    return bad_value(flag, s, want);
  }
  *out = v;
  return 0;
}

enum {
  O_CATALOG = 256, O_PORT, O_PORT_FILE, O_SEED, O_LATENCY, O_LATENCY_DIST, O_LATENCY_P99, O_CAPACITY,
  O_RPS, O_TPM, O_UPLOAD_ORIGIN, O_F500, O_F503, O_F429, O_F502, O_F504, O_RETRY_AFTER, O_FAULT_ATTEMPTS, O_RL_HEADERS, O_HANG, O_RESET, O_MALFORMED, O_OFF, O_NOISE, O_FOLLOW, O_THREADS, O_KEY,
  O_HELP, O_BDELAY, O_BFAIL, O_BEXPIRE, O_BMAXREQ, O_BMAXBYTES, O_BGETFAIL,
};

static int parse_args(int argc, char **argv, sim_opts *o) {
  static const struct option longs[] = {
    {"catalog", required_argument, 0, O_CATALOG}, {"port", required_argument, 0, O_PORT},
    {"port-file", required_argument, 0, O_PORT_FILE}, {"seed", required_argument, 0, O_SEED},
    {"latency-ms", required_argument, 0, O_LATENCY},
    {"latency-dist", required_argument, 0, O_LATENCY_DIST},
    {"latency-p99-ms", required_argument, 0, O_LATENCY_P99},
    {"capacity", required_argument, 0, O_CAPACITY}, {"rps", required_argument, 0, O_RPS},
    {"tpm", required_argument, 0, O_TPM}, {"upload-origin", required_argument, 0, O_UPLOAD_ORIGIN},
    {"fail-500", required_argument, 0, O_F500}, {"fail-503", required_argument, 0, O_F503},
    {"fail-429", required_argument, 0, O_F429}, {"fail-502", required_argument, 0, O_F502},
    {"fail-504", required_argument, 0, O_F504}, {"retry-after", required_argument, 0, O_RETRY_AFTER},
    {"fault-attempts", required_argument, 0, O_FAULT_ATTEMPTS},
    {"ratelimit-headers", no_argument, 0, O_RL_HEADERS},
    {"hang", required_argument, 0, O_HANG}, {"reset", required_argument, 0, O_RESET},
    {"malformed", required_argument, 0, O_MALFORMED}, {"off-catalog", required_argument, 0, O_OFF},
    {"noise", required_argument, 0, O_NOISE}, {"follow", required_argument, 0, O_FOLLOW},
    {"threads", required_argument, 0, O_THREADS}, {"require-key", required_argument, 0, O_KEY},
    {"batch-delay-ms", required_argument, 0, O_BDELAY}, {"batch-fail", required_argument, 0, O_BFAIL},
    {"batch-expire-ms", required_argument, 0, O_BEXPIRE},
    {"batch-max-requests", required_argument, 0, O_BMAXREQ},
    {"batch-max-bytes", required_argument, 0, O_BMAXBYTES},
    {"batch-get-fail", required_argument, 0, O_BGETFAIL},
    {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0},
  };
  memset(o, 0, sizeof *o);
  o->follow = 0.8;
  o->threads = 2;
  o->retry_after = 1;
  o->batch_delay_ms = 1000;
  int c, rc = 0;
  unsigned long long u;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
    const char *flag = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
    switch (c) {
    case O_CATALOG: o->catalog_path = optarg; break;
    case O_PORT: if (!(rc = parse_uint("--port", optarg, 0, 65535, &u))) o->port = (int)u; break;
    case O_PORT_FILE: o->port_file = optarg; break;
    case O_SEED: if (!(rc = parse_uint("--seed", optarg, 0, UINT64_MAX, &u))) o->seed = u; break;
    case O_LATENCY: rc = parse_double("--latency-ms", optarg, 0, 3.6e6, &o->latency_ms); break;
    case O_LATENCY_DIST:
      if (strcmp(optarg, "fixed") == 0) o->latency_lognormal = 0;
      else if (strcmp(optarg, "lognormal") == 0) o->latency_lognormal = 1;
      else rc = bad_value("--latency-dist", optarg, "fixed or lognormal");
      break;
    case O_LATENCY_P99: rc = parse_double("--latency-p99-ms", optarg, 0, 3.6e6, &o->latency_p99_ms); break;
    case O_CAPACITY:
      if (!(rc = parse_uint("--capacity", optarg, 0, 1000000, &u))) o->capacity = (unsigned)u;
      break;
    case O_RPS: rc = parse_double("--rps", optarg, 0, 1e300, &o->rps); break;
    case O_TPM: rc = parse_double("--tpm", optarg, 0, 1e300, &o->tpm); break;
    case O_UPLOAD_ORIGIN: o->upload_origin = optarg; break;
    case O_F500: rc = parse_double("--fail-500", optarg, 0, 1, &o->fail500); break;
    case O_F503: rc = parse_double("--fail-503", optarg, 0, 1, &o->fail503); break;
    case O_F429: rc = parse_double("--fail-429", optarg, 0, 1, &o->fail429); break;
    case O_F502: rc = parse_double("--fail-502", optarg, 0, 1, &o->fail502); break;
    case O_F504: rc = parse_double("--fail-504", optarg, 0, 1, &o->fail504); break;
    case O_FAULT_ATTEMPTS: {
      double k;
      rc = parse_double("--fault-attempts", optarg, 0, 1000, &k);
      o->fault_attempts = (int)k;
      break;
    }
    case O_RETRY_AFTER:
      if (!(rc = parse_uint("--retry-after", optarg, 1, 86400, &u))) o->retry_after = (int)u;
      break;
    case O_RL_HEADERS: o->ratelimit_headers = 1; break;
    case O_HANG: rc = parse_double("--hang", optarg, 0, 1, &o->hang); break;
    case O_RESET: rc = parse_double("--reset", optarg, 0, 1, &o->reset); break;
    case O_MALFORMED: rc = parse_double("--malformed", optarg, 0, 1, &o->malformed); break;
    case O_OFF: rc = parse_double("--off-catalog", optarg, 0, 1, &o->off_catalog); break;
    case O_NOISE: rc = parse_double("--noise", optarg, 0, 1, &o->noise); break;
    case O_FOLLOW: rc = parse_double("--follow", optarg, 0, 1, &o->follow); break;
    case O_THREADS:
      if (!(rc = parse_uint("--threads", optarg, 1, 64, &u))) o->threads = (unsigned)u;
      break;
    case O_KEY:
      if (!*optarg) rc = bad_value("--require-key", "", "a non-empty key");
      o->require_key = optarg;
      break;
    case O_BDELAY: rc = parse_double("--batch-delay-ms", optarg, 0, 8.64e7, &o->batch_delay_ms); break;
    case O_BFAIL: rc = parse_double("--batch-fail", optarg, 0, 1, &o->batch_fail); break;
    case O_BEXPIRE: rc = parse_double("--batch-expire-ms", optarg, 0, 8.64e7, &o->batch_expire_ms); break;
    case O_BMAXREQ: rc = parse_uint("--batch-max-requests", optarg, 0, 100000000, &o->batch_max_requests); break;
    case O_BMAXBYTES: rc = parse_uint("--batch-max-bytes", optarg, 0, 1ULL << 40, &o->batch_max_bytes); break;
    case O_BGETFAIL: rc = parse_uint("--batch-get-fail", optarg, 0, 1000000, &o->batch_get_fail); break;
    case O_HELP: fputs(usage, stdout); exit(0);
    case ':':
      fprintf(stderr, "ragtide-llm-sim: %s needs a value; see --help\n", flag);
      return RT_ERR_USAGE;
    default:
      fprintf(stderr, "ragtide-llm-sim: unknown option \"%s\"; see --help\n", flag);
      return RT_ERR_USAGE;
    }
    if (rc) return rc;
  }
  if (optind < argc) {
    fprintf(stderr, "ragtide-llm-sim: unexpected argument \"%s\"; see --help\n", argv[optind]);
    return RT_ERR_USAGE;
  }
  if (!o->catalog_path) {
    fprintf(stderr, "ragtide-llm-sim: --catalog FILE is required; see --help\n");
    return RT_ERR_USAGE;
  }
  if (o->latency_lognormal) {
    char why[256];
    if (sim_lognormal_params(o->latency_ms, o->latency_p99_ms, &o->ln_mu, &o->ln_sigma, why, sizeof why)) {
      fprintf(stderr, "ragtide-llm-sim: %s\n", why);
      return RT_ERR_USAGE;
    }
  } else if (o->latency_p99_ms > 0) {
    fprintf(stderr, "ragtide-llm-sim: --latency-p99-ms needs --latency-dist lognormal\n");
    return RT_ERR_USAGE;
  }
  return 0;
}

int main(int argc, char **argv) {
  rt_log_set_rank(-1);
  sim_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  int rc = parse_args(argc, argv, &ctx.opt);
  if (rc) return rc;
  /* Redact before anything can print it (the key is in argv, never logged). */
  if (ctx.opt.require_key) rt_secret_add(ctx.opt.require_key);

  rt_err err = {0};
  if ((rc = rt_catalog_load(ctx.opt.catalog_path, &ctx.cat, &err))) {
    fprintf(stderr, "ragtide-llm-sim: %s\n", err.msg);
    return rc;
  }
  sim_index_build(&ctx.idx, &ctx.cat);

  /* Block the stop signals before any thread exists so all threads inherit the mask. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  signal(SIGPIPE, SIG_IGN);

  sim_server *srv = NULL;
  int port = 0;
  if ((rc = sim_server_start(&ctx, &srv, &port, &err))) {
    fprintf(stderr, "ragtide-llm-sim: %s\n", err.msg);
    sim_index_free(&ctx.idx);
    rt_catalog_free(&ctx.cat);
    return rc;
  }
  if (ctx.opt.port_file) {
    char buf[16];
    int n = snprintf(buf, sizeof buf, "%d\n", port);
    if ((rc = rt_write_file_atomic(ctx.opt.port_file, buf, (size_t)n, &err))) {
      fprintf(stderr, "ragtide-llm-sim: writing --port-file: %s\n", err.msg);
      sim_server_stop(srv);
      sim_index_free(&ctx.idx);
      rt_catalog_free(&ctx.cat);
      return rc;
    }
  }
  printf("listening on 127.0.0.1:%d\n", port);
  fflush(stdout);
  const sim_opts *o = &ctx.opt;
  rt_info("ragtide-llm-sim: %u clusters from %s, seed %llu, follow %g, latency %g ms%s, capacity %u, "
          "rps %g tpm %g%s, faults reset %g hang %g 429 %g (Retry-After %d) 500 %g 502 %g 503 %g 504 %g malformed %g "
          "off-catalog %g noise %g, %u threads%s", ctx.cat.n, o->catalog_path, (unsigned long long)o->seed,
          o->follow, o->latency_ms, o->latency_lognormal ? " (log-normal)" : "", o->capacity, o->rps,
          o->tpm, o->ratelimit_headers ? " with rate-limit headers" : "", o->reset, o->hang, o->fail429, o->retry_after,
          o->fail500, o->fail502, o->fail503, o->fail504, o->malformed, o->off_catalog, o->noise, o->threads,
          o->require_key ? ", API key required" : "");

  int sig = 0;
  while (sigwait(&stop, &sig) != 0) {
  }
  rt_info("ragtide-llm-sim: signal %d, shutting down", sig);
  sim_server_stop(srv);
  sim_index_free(&ctx.idx);
  rt_catalog_free(&ctx.cat);
  return 0;
}
