/* test_infer.c — the LLM client against ragtide-llm-sim (started from each
 * test with fork/exec on a free port, stopped in teardown): every fault kind
 * ends with each call answered or marked failed and the client's stats equal
 * the sim's /stats counters exactly; concurrency, rate limits, constrained
 * output, samples, fail-fast on a closed port, and no secret on stderr. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/util.h"
#include "format/catalog.h"
#include "format/config.h"
#include "llm/infer.h"

#define NCLUSTERS 20

static char tmpdir[256];
static char catpath[400];
static rt_catalog cat;
static rt_config cfg;
static pid_t sim_pid = -1;
static int sim_port;

static const char *WORDS[] = {"jazz",   "hiking", "cooking", "k-pop",   "chess",   "surfing", "poetry",
                              "anime",  "baking", "cycling", "opera",   "origami", "tennis",  "gardening",
                              "comics", "yoga",   "rowing",  "pottery", "karaoke", "fishing"};

static void setup(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/rt_infer_XXXXXX");
  cr_assert_not_null(mkdtemp(tmpdir));
  snprintf(catpath, sizeof catpath, "%s/catalog.tsv", tmpdir);
  FILE *f = fopen(catpath, "w");
  cr_assert_not_null(f);
  for (int i = 0; i < NCLUSTERS; i++) fprintf(f, "%d\t%s, topic %d\n", 100 + i, WORDS[i], i);
  fclose(f);
  rt_err e = {0};
  cr_assert_eq(rt_catalog_load(catpath, &cat, &e), RT_OK, "%s", e.msg);
  rt_config_defaults(&cfg);
  rt_log_set_rank(-1);
}

static void stop_sim(void) {
  if (sim_pid > 0) {
    kill(sim_pid, SIGTERM);
    int st;
    waitpid(sim_pid, &st, 0);
    sim_pid = -1;
  }
}

static void teardown(void) {
  stop_sim();
  rt_catalog_free(&cat);
  rt_config_free(&cfg);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

TestSuite(infer, .init = setup, .fini = teardown, .timeout = 120);

static void set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set(const char *fmt, ...) {
  char kv[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(kv, sizeof kv, fmt, ap);
  va_end(ap);
  rt_err e = {0};
  cr_assert_eq(rt_config_set(&cfg, kv, &e), RT_OK, "%s: %s", kv, e.msg);
}

/* Start the sim with extra args (NULL-terminated); waits for its port file. */
static void start_sim(const char *first, ...) {
  const char *argv[64];
  int a = 0;
  static char bin[512], portfile[512];
  snprintf(bin, sizeof bin, "%s/ragtide-llm-sim", RAGTIDE_BUILD);
  snprintf(portfile, sizeof portfile, "%s/sim.port", tmpdir);
  unlink(portfile);
  argv[a++] = bin;
  argv[a++] = "--catalog";
  argv[a++] = catpath;
  argv[a++] = "--port";
  argv[a++] = "0";
  argv[a++] = "--port-file";
  argv[a++] = portfile;
  argv[a++] = "--seed";
  argv[a++] = "7";
  va_list ap;
  va_start(ap, first);
  for (const char *s = first; s && a < 62; s = va_arg(ap, const char *)) argv[a++] = s;
  va_end(ap);
  argv[a] = NULL;
  cr_assert_eq(access(bin, X_OK), 0, "%s is not built (cmake --build BUILD --target ragtide-llm-sim)", bin);
  pid_t pid = fork();
  cr_assert_neq(pid, -1);
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    if (!getenv("RT_TEST_SIM_LOG")) dup2(null, 2);
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  sim_pid = pid;
  for (int i = 0; i < 200; i++) {
    FILE *f = fopen(portfile, "r");
    if (f) {
      int ok = fscanf(f, "%d", &sim_port) == 1;
      fclose(f);
      if (ok && sim_port > 0) {
        set("llm.base_url=http://127.0.0.1:%d", sim_port);
        return;
      }
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, WNOHANG), 0, "the sim exited at start (status %d)", st);
    usleep(25000);
  }
  cr_assert_fail("the sim did not write %s within 5 s", portfile);
}

static size_t collect(char *p, size_t s, size_t n, void *ud) {
  RT_VEC(char) *b = ud;
  for (size_t i = 0; i < s * n; i++) rt_vec_push(b, p[i]);
  return s * n;
}

static json_t *sim_stats(void) {
  CURL *e = curl_easy_init();
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/stats", sim_port);
  RT_VEC(char) b = {0};
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
  cr_assert_eq(curl_easy_perform(e), CURLE_OK, "GET %s failed", url);
  curl_easy_cleanup(e);
  json_t *j = json_loadb(b.data, b.len, 0, NULL);
  free(b.data);
  cr_assert_not_null(j, "/stats is not JSON");
  return j;
}

static uint64_t st(json_t *s, const char *k) {
  json_t *v = json_object_get(s, k);
  cr_assert(json_is_integer(v), "/stats has no integer \"%s\"", k);
  return (uint64_t)json_integer_value(v);
}

/* Prompts that name three clusters, one per line (the sim "follows" the
 * third); distinct per call so the sim's per-prompt draws differ. */
static rt_llm_call *make_calls(size_t n, char ***texts) {
  rt_llm_call *c = rt_xcalloc(n, sizeof *c);
  *texts = rt_xcalloc(n, sizeof **texts);
  for (size_t i = 0; i < n; i++) {
    char buf[512];
    snprintf(buf, sizeof buf, "Watched, in order:\n%s\n%s\n%s\nrequest %zu: name the next interest cluster.",
             cat.desc[i % NCLUSTERS], cat.desc[(i * 7 + 3) % NCLUSTERS], cat.desc[(i * 3 + 11) % NCLUSTERS], i);
    (*texts)[i] = rt_xstrdup(buf);
    c[i].system = "Answer with one cluster description from the catalog.";
    c[i].user = (*texts)[i];
    c[i].tag = i;
  }
  return c;
}

static void free_calls(rt_llm_call *c, char **texts, rt_llm_answer *ans, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(texts[i]);
    if (ans) rt_llm_answer_free(&ans[i]);
  }
  free(texts);
  free(c);
  free(ans);
}

typedef struct outcome {
  int rc;
  size_t ok, failed;
  uint64_t attempts;
  rt_err err;
} outcome;

static outcome run_calls(rt_llm_client *c, rt_llm_call *calls, size_t n, rt_llm_answer *ans) {
  outcome o = {0};
  o.rc = rt_llm_run(c, calls, n, ans, &o.err);
  for (size_t i = 0; i < n; i++) {
    cr_assert(ans[i].ok == 0 || ans[i].ok == 1);
    if (ans[i].ok) {
      cr_assert_not_null(ans[i].text, "call %zu ok without text", i);
      cr_assert_null(ans[i].error);
      o.ok++;
    } else {
      cr_assert_null(ans[i].text);
      cr_assert_not_null(ans[i].error, "call %zu failed without a reason", i);
      o.failed++;
    }
    /* Only calls never started when a run stops have no attempt. */
    if (ans[i].attempts == 0) cr_assert(!ans[i].ok && strstr(ans[i].error, "run stopped"), "%s", ans[i].error);
    o.attempts += (uint64_t)ans[i].attempts;
  }
  return o;
}

/* The client's counters against the sim's, exactly. */
static void assert_stats_match(const rt_llm_stats *s, json_t *j, size_t n, const outcome *o) {
  cr_assert_eq(s->calls, n);
  cr_assert_eq(s->requests, st(j, "requests"), "requests: client %llu, sim %llu",
               (unsigned long long)s->requests, (unsigned long long)st(j, "requests"));
  cr_assert_eq(s->answered, st(j, "answered"), "answered: client %llu, sim %llu",
               (unsigned long long)s->answered, (unsigned long long)st(j, "answered"));
  cr_assert_eq(s->http_500, st(j, "http_500"));
  cr_assert_eq(s->http_503, st(j, "http_503"));
  cr_assert_eq(s->http_502, st(j, "http_502"));
  cr_assert_eq(s->http_504, st(j, "http_504"));
  cr_assert_eq(s->http_5xx, st(j, "http_500") + st(j, "http_502") + st(j, "http_503") + st(j, "http_504"));
  cr_assert_eq(s->http_429, st(j, "http_429"));
  cr_assert_eq(s->timeouts, st(j, "hangs"), "timeouts %llu vs hangs %llu", (unsigned long long)s->timeouts,
               (unsigned long long)st(j, "hangs"));
  cr_assert_eq(s->conn_errors, st(j, "resets"), "conn errors %llu vs resets %llu",
               (unsigned long long)s->conn_errors, (unsigned long long)st(j, "resets"));
  cr_assert_eq(s->conn_resets, st(j, "resets"));
  /* Every answered request is in the latency histogram. */
  uint64_t lat = 0;
  for (int k = 0; k < RT_LLM_LAT_BUCKETS; k++) lat += s->latency_buckets[k];
  cr_assert_eq(lat, s->answered);
  cr_assert_eq(s->bad_responses, st(j, "malformed"));
  cr_assert_eq(s->http_4xx, st(j, "http_400") + st(j, "http_401") + st(j, "http_404"));
  /* Internal consistency: every request is one attempt of one call. */
  cr_assert_eq(s->requests, o->attempts);
  cr_assert_eq(s->retries, s->requests - n * (uint64_t)cfg.samples);
  cr_assert_eq(s->failed, o->failed);
  cr_assert_eq(o->ok + o->failed, n);
  cr_assert_eq(s->requests, s->answered + s->http_5xx + s->http_429 + s->timeouts + s->conn_errors +
                                s->bad_responses + s->http_4xx + s->http_other);
}

static void fault_run(const char *flag, const char *rate, size_t n) {
  start_sim(flag, rate, NULL);
  set("llm.concurrency=16");
  set("llm.max_attempts=4");
  set("llm.max_failed_fraction=1");
  /* Short only where the sim hangs: a slow machine must not turn an answer into a timeout. */
  set("llm.timeout_ms=%d", strcmp(flag, "--hang") == 0 ? 1000 : 30000);
  rt_llm_client *c;
  rt_err e = {0};
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_OK, "%s", e.msg);
  char **texts;
  rt_llm_call *calls = make_calls(n, &texts);
  rt_llm_answer *ans = rt_xcalloc(n, sizeof *ans);
  outcome o = run_calls(c, calls, n, ans);
  cr_assert_eq(o.rc, RT_OK, "%s", o.err.msg);
  json_t *j = sim_stats();
  const rt_llm_stats *s = rt_llm_get_stats(c);
  assert_stats_match(s, j, n, &o);
  cr_assert_gt(s->retries, 0, "%s %s injected no fault", flag, rate);
  cr_assert_gt(o.ok, n / 2);
  /* Each answer of an unconstrained call is the sim's catalog text. */
  for (size_t i = 0; i < n; i++)
    if (ans[i].ok) {
      char norm[512];
      rt_normalize_desc(ans[i].text, norm, sizeof norm);
      cr_assert_geq(rt_catalog_find_norm(&cat, norm), 0, "answer \"%s\"", ans[i].text);
    }
  json_decref(j);
  free_calls(calls, texts, ans, n);
  rt_llm_client_free(c);
}

Test(infer, fault_500) { fault_run("--fail-500", "0.3", 150); }
Test(infer, fault_502) { fault_run("--fail-502", "0.3", 150); }
Test(infer, fault_504) { fault_run("--fail-504", "0.3", 150); }
Test(infer, fault_503) { fault_run("--fail-503", "0.3", 150); }
Test(infer, fault_hang_times_out) { fault_run("--hang", "0.1", 100); }
Test(infer, fault_reset) { fault_run("--reset", "0.2", 150); }
Test(infer, fault_malformed) { fault_run("--malformed", "0.25", 150); }

Test(infer, fault_mix_with_failures) {
  /* Two attempts against 40% faults: some calls fail for good, and say why. */
  start_sim("--fail-500", "0.2", "--fail-503", "0.1", "--reset", "0.1", "--malformed", "0.1", NULL);
  set("llm.concurrency=8");
  set("llm.max_attempts=2");
  set("llm.max_failed_fraction=1");
  rt_llm_client *c;
  rt_err e = {0};
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_OK, "%s", e.msg);
  size_t n = 200;
  char **texts;
  rt_llm_call *calls = make_calls(n, &texts);
  rt_llm_answer *ans = rt_xcalloc(n, sizeof *ans);
  outcome o = run_calls(c, calls, n, ans);
  cr_assert_eq(o.rc, RT_OK, "%s", o.err.msg);
  json_t *j = sim_stats();
  assert_stats_match(rt_llm_get_stats(c), j, n, &o);
  cr_assert_gt(o.failed, 0);
  for (size_t i = 0; i < n; i++) {
    if (ans[i].ok) continue;
    /* >= 2: curl's silent resends after a dead keep-alive connection count too. */
    cr_assert_geq(ans[i].attempts, 2);
    cr_assert(strstr(ans[i].error, "llm.max_attempts = 2"), "%s", ans[i].error);
    cr_assert(strstr(ans[i].error, "127.0.0.1"), "the error names the URL: %s", ans[i].error);
  }
  json_decref(j);
  free_calls(calls, texts, ans, n);
  rt_llm_client_free(c);
}

Test(infer, fault_429_adapts_the_rate) {
  /* The sim takes 40 requests/s (burst 40). The client starts unlimited,
   * the first 429 cuts its rate to 0.9 x what the sim accepted in the last
   * second, and it paces there: the 429s are about the requests in flight at
   * that cut, not a new in-flight window after every Retry-After pause. */
  start_sim("--rps", "40", NULL);
  set("llm.concurrency=32");
  set("llm.max_attempts=10");
  set("llm.max_failed_fraction=0");
  rt_llm_client *c;
  rt_err e = {0};
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_OK, "%s", e.msg);
  size_t n = 120;
  char **texts;
  rt_llm_call *calls = make_calls(n, &texts);
  rt_llm_answer *ans = rt_xcalloc(n, sizeof *ans);
  outcome o = run_calls(c, calls, n, ans);
  cr_assert_eq(o.rc, RT_OK, "%s", o.err.msg);
  cr_assert_eq(o.ok, n);
  json_t *j = sim_stats();
  const rt_llm_stats *s = rt_llm_get_stats(c);
  assert_stats_match(s, j, n, &o);
  cr_assert_gt(s->http_429, 0, "the sim never limited");
  cr_assert_geq(s->rate_cuts, 1);
  /* The adapted rate is near the sim's: cut from <= 80 accepted in a second
   * (burst + refill), grown by 5%/s for a few seconds at most. */
  cr_assert(s->rate_limit >= 1 && s->rate_limit <= 0.9 * 80 * 1.3, "rate %g", s->rate_limit);
  /* At most the 429s it takes to be evidence of a limit (the window needs
   * 2 x llm.concurrency responses, in the first seconds over 50% of them 429
   * less two standard errors), the in-flight window
   * at the cut and a few stragglers (a rank-wide pause per Retry-After gave
   * one window per second). */
  cr_assert_leq(s->http_429, 3 * 32 + n / 10, "%llu 429s", (unsigned long long)s->http_429);
  cr_assert_geq(s->limit_batches, 1);
  cr_assert_eq(s->http_429_quota, 0); /* OpenAI without headers: no quota signal */
  /* The sim accepted something every second: no rank-wide pause. */
  cr_assert_eq(s->throttled_ms, 0);
  json_decref(j);
  free_calls(calls, texts, ans, n);
  rt_llm_client_free(c);
}

Test(infer, rpm_below_endpoint_limit_gets_no_429) {
  start_sim("--rps", "20", NULL);
  set("llm.concurrency=16");
  set("llm.rpm=720"); /* 12/s, below the sim's 20/s */
  rt_llm_client *c;
  rt_err e = {0};
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_OK, "%s", e.msg);
  size_t n = 30;
  char **texts;
  rt_llm_call *calls = make_calls(n, &texts);
  rt_llm_answer *ans = rt_xcalloc(n, sizeof *ans);
  outcome o = run_calls(c, calls, n, ans);
  cr_assert_eq(o.rc, RT_OK, "%s", o.err.msg);
  cr_assert_eq(o.ok, n);
  json_t *j = sim_stats();
  cr_assert_eq(st(j, "http_429"), 0);
  cr_assert_eq(st(j, "requests"), n);
  json_decref(j);
  rt_llm_client_free(c);

  /* Same with a token limit: ~(prompt/4 + 16) tokens per request. */
  stop_sim();
  start_sim("--rps", "20", NULL);
  set("llm.rpm=0");
  set("llm.max_tokens=16");
  size_t bytes = strlen(calls[0].system) + strlen(calls[0].user);
  long per_req = (long)((bytes + 3) / 4 + 16);
  set("llm.tpm=%ld", per_req * 60 * 12); /* ~12 requests/s */
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_OK, "%s", e.msg);
  for (size_t i = 0; i < n; i++) rt_llm_answer_free(&ans[i]);
  o = run_calls(c, calls, n, ans);
  cr_assert_eq(o.rc, RT_OK, "%s", o.err.msg);
  cr_assert_eq(o.ok, n);
  j = sim_stats();
  cr_assert_eq(st(j, "http_429"), 0);
  cr_assert_gt(rt_llm_get_stats(c)->est_tokens, (uint64_t)per_req * n - n);
  json_decref(j);
  free_calls(calls, texts, ans, n);
  rt_llm_client_free(c);
}

Test(infer, refused_connection_fails_fast) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t al = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &al);
  int port = ntohs(a.sin_port);
  close(fd); /* nothing listens there now */
  set("llm.base_url=http://127.0.0.1:%d", port);
  set("llm.concurrency=8");
  set("llm.max_attempts=3");
  rt_llm_client *c;
  rt_err e = {0};
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_OK, "%s", e.msg);
  size_t n = 500;
  char **texts;
  rt_llm_call *calls = make_calls(n, &texts);
  rt_llm_answer *ans = rt_xcalloc(n, sizeof *ans);
  outcome o = run_calls(c, calls, n, ans);
  cr_assert_eq(o.rc, RT_ERR_ENDPOINT);
  char want[200];
  snprintf(want, sizeof want,
           "cannot connect to http://127.0.0.1:%d/v1/chat/completions: Connection refused — is the endpoint "
           "running? check llm.base_url",
           port);
  cr_assert_str_eq(o.err.msg, want);
  cr_assert_eq(o.failed, n);
  const rt_llm_stats *s = rt_llm_get_stats(c);
  cr_assert_eq(s->failed, n);
  /* Fail fast: it stopped after the first calls, not after n x 3 attempts. */
  cr_assert_lt(s->requests, 16 * 3 + 8 * 3 + 1, "%llu requests", (unsigned long long)s->requests);
  cr_assert_eq(s->conn_errors, s->requests);
  cr_assert_eq(s->answered, 0);
  free_calls(calls, texts, ans, n);
  rt_llm_client_free(c);
}

static void in_flight_run(int conc, size_t n) {
  start_sim("--latency-ms", "150", NULL);
  set("llm.concurrency=%d", conc);
  rt_llm_client *c;
  rt_err e = {0};
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_OK, "%s", e.msg);
  char **texts;
  rt_llm_call *calls = make_calls(n, &texts);
  rt_llm_answer *ans = rt_xcalloc(n, sizeof *ans);
  outcome o = run_calls(c, calls, n, ans);
  cr_assert_eq(o.rc, RT_OK, "%s", o.err.msg);
  cr_assert_eq(o.ok, n);
  json_t *j = sim_stats();
  cr_assert_eq(st(j, "max_in_flight"), (uint64_t)conc);
  assert_stats_match(rt_llm_get_stats(c), j, n, &o);
  json_decref(j);
  free_calls(calls, texts, ans, n);
  rt_llm_client_free(c);
}

Test(infer, max_in_flight_equals_concurrency) { in_flight_run(24, 240); }
/* 150 slots: three curl multi handles (64 + 64 + 22) on one epoll set. */
Test(infer, max_in_flight_equals_concurrency_over_shards) { in_flight_run(150, 600); }

static void constrained_run(const char *api, const char *constrain) {
  /* Off-catalog and noisy text would break an unconstrained answer; the
   * constrained ones must still be catalog descriptions, byte for byte. */
  start_sim("--off-catalog", "0.5", "--noise", "0.5", NULL);
  set("llm.api=%s", api);
  set("llm.constrain=%s", constrain);
  set("llm.concurrency=8");
  rt_llm_client *c;
  rt_err e = {0};
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_OK, "%s", e.msg);
  size_t n = 80;
  char **texts;
  rt_llm_call *calls = make_calls(n, &texts);
  rt_llm_answer *ans = rt_xcalloc(n, sizeof *ans);
  outcome o = run_calls(c, calls, n, ans);
  cr_assert_eq(o.rc, RT_OK, "%s", o.err.msg);
  cr_assert_eq(o.ok, n);
  for (size_t i = 0; i < n; i++) {
    int found = 0;
    for (uint32_t k = 0; k < cat.n; k++) found |= strcmp(ans[i].text, cat.desc[k]) == 0;
    cr_assert(found, "%s/%s answer %zu \"%s\" is not a catalog description", api, constrain, i, ans[i].text);
  }
  json_t *j = sim_stats();
  cr_assert_eq(st(j, "off_catalog"), 0);
  cr_assert_eq(st(j, "answered"), n);
  if (strcmp(api, "gemini") == 0) {
    json_t *be = json_object_get(j, "by_endpoint");
    cr_assert_eq(json_integer_value(json_object_get(be, "generate_content")), (json_int_t)n);
  }
  const rt_llm_stats *s = rt_llm_get_stats(c);
  cr_assert_gt(s->prompt_tokens, 0);
  cr_assert_gt(s->completion_tokens, 0);
  json_decref(j);
  free_calls(calls, texts, ans, n);
  rt_llm_client_free(c);
}

Test(infer, openai_json_schema_answers_are_descriptions) { constrained_run("openai", "json_schema"); }
Test(infer, openai_guided_choice_answers_are_descriptions) { constrained_run("openai", "guided_choice"); }
Test(infer, gemini_enum_answers_are_descriptions) { constrained_run("gemini", "json_schema"); }

Test(infer, gemini_faults_stats_match) {
  start_sim("--fail-503", "0.2", "--malformed", "0.1", NULL);
  set("llm.api=gemini");
  set("llm.concurrency=8");
  set("llm.max_failed_fraction=1");
  rt_llm_client *c;
  rt_err e = {0};
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_OK, "%s", e.msg);
  size_t n = 100;
  char **texts;
  rt_llm_call *calls = make_calls(n, &texts);
  rt_llm_answer *ans = rt_xcalloc(n, sizeof *ans);
  outcome o = run_calls(c, calls, n, ans);
  cr_assert_eq(o.rc, RT_OK, "%s", o.err.msg);
  json_t *j = sim_stats();
  assert_stats_match(rt_llm_get_stats(c), j, n, &o);
  json_decref(j);
  free_calls(calls, texts, ans, n);
  rt_llm_client_free(c);
}

/* Share of calls whose answer normalises to the constrained pick. */
static double agreement(rt_llm_answer *ans, char **picks, size_t n) {
  size_t hit = 0;
  for (size_t i = 0; i < n; i++) {
    if (!ans[i].ok) continue;
    char a[512], b[512];
    rt_normalize_desc(ans[i].text, a, sizeof a);
    rt_normalize_desc(picks[i], b, sizeof b);
    hit += strcmp(a, b) == 0;
  }
  return (double)hit / (double)n;
}

Test(infer, samples_majority_vote) {
  size_t n = 100;
  char **texts;
  rt_llm_call *calls = make_calls(n, &texts);
  rt_llm_answer *ans = rt_xcalloc(n, sizeof *ans);
  rt_err e = {0};
  rt_llm_client *c;
  /* The sim's pick for each prompt, through the enum (no text faults). */
  start_sim("--off-catalog", "0.3", "--noise", "0.4", NULL);
  set("llm.constrain=json_schema");
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_OK, "%s", e.msg);
  outcome o = run_calls(c, calls, n, ans);
  cr_assert_eq(o.ok, n);
  char **picks = rt_xcalloc(n, sizeof *picks);
  for (size_t i = 0; i < n; i++) {
    picks[i] = ans[i].text;
    ans[i].text = NULL;
    rt_llm_answer_free(&ans[i]);
  }
  rt_llm_client_free(c);
  stop_sim();

  /* One free-text sample: about 30% off-catalog answers miss the pick. */
  start_sim("--off-catalog", "0.3", "--noise", "0.4", NULL);
  set("llm.constrain=off");
  set("llm.seed=5");
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_OK, "%s", e.msg);
  o = run_calls(c, calls, n, ans);
  cr_assert_eq(o.ok, n);
  double one = agreement(ans, picks, n);
  for (size_t i = 0; i < n; i++) rt_llm_answer_free(&ans[i]);
  rt_llm_client_free(c);
  stop_sim();

  /* Five samples, majority vote after normalisation: noisy variants of the
   * pick count together, the off-catalog texts each alone. */
  start_sim("--off-catalog", "0.3", "--noise", "0.4", NULL);
  set("llm.samples=5");
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_OK, "%s", e.msg);
  o = run_calls(c, calls, n, ans);
  cr_assert_eq(o.rc, RT_OK, "%s", o.err.msg);
  cr_assert_eq(o.ok, n);
  double five = agreement(ans, picks, n);
  const rt_llm_stats *s = rt_llm_get_stats(c);
  cr_assert_eq(s->requests, 5 * n);
  cr_assert_eq(s->samples, 5 * n);
  json_t *j = sim_stats();
  cr_assert_eq(st(j, "requests"), 5 * n);
  json_decref(j);
  cr_assert_lt(one, 0.85, "one sample agreed %.2f", one);
  cr_assert_geq(five, 0.93, "five samples agreed only %.2f (one sample: %.2f)", five, one);
  for (size_t i = 0; i < n; i++) {
    cr_assert_eq(ans[i].attempts, 5);
    free(picks[i]);
  }
  free(picks);
  free_calls(calls, texts, ans, n);
  rt_llm_client_free(c);
}

static char *read_all(const char *path) {
  char *buf = NULL;
  size_t len = 0;
  rt_err e = {0};
  cr_assert_eq(rt_read_file(path, &buf, &len, &e), RT_OK, "%s", e.msg);
  return buf;
}

/* In a child with stderr in a file: a wrong key (401s) with debug logging
 * on, then the right one; the key must never reach stderr. */
Test(infer, secret_never_on_stderr) {
  const char *secret = "sk-test-SECRET-4f1c2a9e7b";
  start_sim("--require-key", secret, NULL);
  char errpath[512];
  snprintf(errpath, sizeof errpath, "%s/child.stderr", tmpdir);
  pid_t pid = fork();
  cr_assert_neq(pid, -1);
  if (pid == 0) {
    if (!freopen(errpath, "w", stderr)) _exit(90);
    rt_log_set_level(RT_LOG_DEBUG);
    size_t n = 20;
    char **texts;
    rt_llm_call *calls = make_calls(n, &texts);
    rt_llm_answer *ans = rt_xcalloc(n, sizeof *ans);
    rt_err e = {0};
    rt_llm_client *c;
    /* A wrong key: every call is refused with 401 (not retried). */
    setenv("RT_TEST_LLM_KEY", "sk-test-WRONG-0000000000", 1);
    rt_config_set(&cfg, "llm.api_key_env=RT_TEST_LLM_KEY", &e);
    rt_config_set(&cfg, "llm.max_failed_fraction=1", &e); /* every call reaches the sim */
    if (rt_llm_client_new(&cfg, &cat, &c, &e)) _exit(91);
    int rc = rt_llm_run(c, calls, n, ans, &e);
    for (size_t i = 0; i < n; i++) {
      rt_error("call %zu: %s", i, ans[i].error ? ans[i].error : "ok");
      rt_llm_answer_free(&ans[i]);
    }
    int fails = rc == RT_OK && rt_llm_get_stats(c)->http_4xx == n && rt_llm_get_stats(c)->requests == n ? 0 : 92;
    rt_llm_client_free(c);
    /* The right key. */
    setenv("RT_TEST_LLM_KEY", secret, 1);
    if (rt_llm_client_new(&cfg, &cat, &c, &e)) _exit(93);
    rc = rt_llm_run(c, calls, n, ans, &e);
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) ok += ans[i].ok;
    /* Anything that prints the key by mistake must come out redacted. */
    rt_error("the key is %s", secret);
    rt_err e2 = {0};
    rt_err_set(&e2, RT_ERR_ENDPOINT, "header Authorization: Bearer %s", secret);
    fprintf(stderr, "%s\n", e2.msg);
    rt_llm_client_free(c);
    fflush(stderr);
    _exit(fails ? fails : rc != RT_OK ? 94 : ok != n ? 95 : 0);
  }
  int status;
  waitpid(pid, &status, 0);
  char *log = read_all(errpath);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed (%d); stderr:\n%s", WEXITSTATUS(status),
            log);
  cr_assert_null(strstr(log, secret), "the key reached stderr:\n%s", log);
  cr_assert_null(strstr(log, "SECRET"), "part of the key reached stderr");
  cr_assert(strstr(log, "401 from http://127.0.0.1:"), "no 401 message:\n%s", log);
  cr_assert(strstr(log, "llm.api_key_env"), "the 401 message names the key setting:\n%s", log);
  cr_assert(strstr(log, "the key is [REDACTED]"), "%s", log);
  cr_assert(strstr(log, "Bearer [REDACTED]"), "%s", log);
  free(log);
  json_t *j = sim_stats();
  cr_assert_eq(st(j, "http_401"), 20);
  cr_assert_eq(st(j, "answered"), 20);
  json_decref(j);
}

Test(infer, two_runs_on_one_client_accumulate) {
  start_sim(NULL);
  set("llm.concurrency=4");
  rt_llm_client *c;
  rt_err e = {0};
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_OK, "%s", e.msg);
  size_t n = 20;
  char **texts;
  rt_llm_call *calls = make_calls(n, &texts);
  rt_llm_answer *ans = rt_xcalloc(n, sizeof *ans);
  outcome o = run_calls(c, calls, n, ans);
  cr_assert_eq(o.ok, n);
  for (size_t i = 0; i < n; i++) rt_llm_answer_free(&ans[i]);
  o = run_calls(c, calls, n / 2, ans);
  cr_assert_eq(o.rc, RT_OK, "%s", o.err.msg);
  cr_assert_eq(o.ok, n / 2);
  const rt_llm_stats *s = rt_llm_get_stats(c);
  cr_assert_eq(s->calls, n + n / 2);
  cr_assert_eq(s->requests, n + n / 2);
  json_t *j = sim_stats();
  cr_assert_eq(st(j, "requests"), n + n / 2);
  json_decref(j);
  free_calls(calls, texts, ans, n);
  rt_llm_client_free(c);
}

/* A run of n calls against the started sim; returns the stats (valid until the client is freed). */
static const rt_llm_stats *plain_run(rt_llm_client **cp, size_t n, json_t **sj) {
  rt_err e = {0};
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, cp, &e), RT_OK, "%s", e.msg);
  char **texts;
  rt_llm_call *calls = make_calls(n, &texts);
  rt_llm_answer *ans = rt_xcalloc(n, sizeof *ans);
  outcome o = run_calls(*cp, calls, n, ans);
  cr_assert_eq(o.rc, RT_OK, "%s", o.err.msg);
  cr_assert_eq(o.ok, n);
  *sj = sim_stats();
  assert_stats_match(rt_llm_get_stats(*cp), *sj, n, &o);
  free_calls(calls, texts, ans, n);
  return rt_llm_get_stats(*cp);
}

Test(infer, sporadic_429_costs_only_its_retry) {
  /* 20% of requests answered 429 (Retry-After 1) whatever the rate: each is
   * retried after its Retry-After, the rank's rate never changes. */
  start_sim("--fail-429", "0.2", "--retry-after", "1", NULL);
  set("llm.concurrency=16");
  set("llm.max_attempts=20");
  set("llm.max_failed_fraction=0");
  rt_llm_client *c;
  json_t *j;
  const rt_llm_stats *s = plain_run(&c, 200, &j);
  cr_assert_gt(s->http_429, 20, "%llu 429s", (unsigned long long)s->http_429);
  cr_assert_eq(st(j, "sporadic_429"), s->http_429);
  cr_assert_eq(s->http_429_quota, 0);
  cr_assert_eq(s->rate_cuts, 0, "a sporadic 429 cut the rate");
  cr_assert_eq(s->limit_batches, 0);
  cr_assert_eq(s->rate_limit, 0);
  cr_assert_eq(s->throttled_ms, 0, "a sporadic 429 paused the rank");
  json_decref(j);
  rt_llm_client_free(c);
}

Test(infer, gemini_retry_info_is_a_quota_signal) {
  /* The sim's --rps 429s for Gemini carry RetryInfo (no Retry-After): the
   * client takes each as an exhausted quota and adapts its rate. */
  start_sim("--rps", "40", NULL);
  set("llm.api=gemini");
  set("llm.concurrency=32");
  set("llm.max_attempts=10");
  set("llm.max_failed_fraction=0");
  rt_llm_client *c;
  json_t *j;
  const rt_llm_stats *s = plain_run(&c, 120, &j);
  cr_assert_gt(s->http_429, 0, "the sim never limited");
  cr_assert_eq(s->http_429_quota, s->http_429, "every --rps 429 carries RetryInfo");
  cr_assert_geq(s->rate_cuts, 1);
  cr_assert_geq(s->limit_batches, 1);
  json_decref(j);
  rt_llm_client_free(c);
}

Test(infer, paces_to_ratelimit_headers) {
  /* With x-ratelimit-* headers the client mirrors the quota (20/s, burst 20)
   * and paces to it: no AIMD, and at most the few 429s that taught it. */
  start_sim("--rps", "20", "--ratelimit-headers", NULL);
  set("llm.concurrency=16");
  set("llm.max_attempts=10");
  set("llm.max_failed_fraction=0");
  rt_llm_client *c;
  json_t *j;
  const rt_llm_stats *s = plain_run(&c, 80, &j);
  cr_assert(s->hdr_rate >= 19 && s->hdr_rate <= 21.5, "hdr_rate %g (the sim refills 20/s)", s->hdr_rate);
  cr_assert_leq(s->http_429, 2, "%llu 429s", (unsigned long long)s->http_429);
  cr_assert_eq(s->http_429_quota, s->http_429);
  cr_assert_eq(s->rate_cuts, 0);
  json_decref(j);
  rt_llm_client_free(c);
}

Test(infer, paces_to_ratelimit_token_headers) {
  /* OpenAI's -tokens trio alone (sim --tpm 120000: 2000 tokens/s, burst
   * 2000; a call costs its prompt/4 + max_tokens, ~100 here, so ~20 calls/s):
   * the client mirrors the token quota and paces to it, no AIMD, at most the
   * few 429s that taught it. The sim charged exactly the client's estimates. */
  start_sim("--tpm", "120000", "--ratelimit-headers", NULL);
  set("llm.concurrency=16");
  set("llm.max_attempts=10");
  set("llm.max_tokens=60");
  set("llm.max_failed_fraction=0");
  size_t n = 80;
  char **texts;
  rt_llm_call *calls = make_calls(n, &texts);
  json_int_t want = 0;
  for (size_t i = 0; i < n; i++) want += (json_int_t)((strlen(calls[i].system) + strlen(calls[i].user) + 3) / 4 + 60);
  free_calls(calls, texts, NULL, n);
  rt_llm_client *c;
  json_t *j;
  const rt_llm_stats *s = plain_run(&c, n, &j);
  cr_assert_eq(json_integer_value(json_object_get(j, "tpm_tokens")), want, "the sim charged %lld tokens, want %lld",
               (long long)json_integer_value(json_object_get(j, "tpm_tokens")), (long long)want);
  cr_assert_leq(s->http_429, 2, "%llu 429s", (unsigned long long)s->http_429);
  cr_assert_eq(s->http_429_quota, s->http_429, "a 429 with remaining-tokens 0 is a quota signal");
  cr_assert_eq(s->rate_cuts, 0);
  json_decref(j);
  rt_llm_client_free(c);
}

Test(infer, host_that_does_not_resolve_fails_at_once) {
  /* RFC 6761: .invalid never resolves. The first answer stops the run (no
   * backoff and retries), exit code 4 (RT_ERR_ENDPOINT), the host named. */
  set("llm.base_url=http://nonexistent.invalid:8088");
  set("llm.concurrency=8");
  set("llm.max_attempts=4");
  set("llm.connect_timeout_ms=3000"); /* a resolver that cannot answer at all ends as a timeout, bounded */
  rt_llm_client *c;
  rt_err e = {0};
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_OK, "%s", e.msg);
  size_t n = 40;
  char **texts;
  rt_llm_call *calls = make_calls(n, &texts);
  rt_llm_answer *ans = rt_xcalloc(n, sizeof *ans);
  outcome o = run_calls(c, calls, n, ans);
  const rt_llm_stats *s = rt_llm_get_stats(c);
  cr_assert_eq(o.rc, RT_ERR_ENDPOINT);
  cr_assert_eq(o.err.code, RT_ERR_ENDPOINT);
  cr_assert(strstr(o.err.msg, "nonexistent.invalid") && strstr(o.err.msg, "resolve"), "%s", o.err.msg);
  cr_assert_eq(o.ok, 0);
  cr_assert_eq(o.failed, n);
  /* One lookup before any request: none is sent. */
  cr_assert_eq(s->requests, 0, "%llu requests", (unsigned long long)s->requests);
  cr_assert_eq(s->retries, 0, "a name that does not resolve is not retried");
  for (size_t i = 0; i < n; i++) cr_assert(strstr(ans[i].error, "nonexistent.invalid"), "%s", ans[i].error);
  free_calls(calls, texts, ans, n);
  rt_llm_client_free(c);
}

Test(infer, constrained_answers_are_novel_by_construction) {
  /* The sim answers the enum value of its pick, or another enum value when
   * the pick is left out: with c1 and c2 excluded, never c1 or c2. */
  start_sim("--follow", "0.5", NULL);
  set("llm.constrain=json_schema");
  set("llm.concurrency=8");
  rt_llm_client *c;
  rt_err e = {0};
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_OK, "%s", e.msg);
  size_t n = 60;
  rt_llm_call *calls = rt_xcalloc(n, sizeof *calls);
  char **texts = rt_xcalloc(n, sizeof *texts);
  for (size_t i = 0; i < n; i++) {
    uint32_t a = (uint32_t)(i % NCLUSTERS), b = (uint32_t)((i * 7 + 3) % NCLUSTERS);
    char buf[512];
    /* The retrieved line names c1 itself: an unconstrained follow would answer c1. */
    snprintf(buf, sizeof buf, "Watched:\n%s\n%s\n%s\nrequest %zu", cat.desc[a], cat.desc[b], cat.desc[a], i);
    texts[i] = rt_xstrdup(buf);
    calls[i] = (rt_llm_call){NULL, texts[i], i, 2, {a, b}};
  }
  rt_llm_answer *ans = rt_xcalloc(n, sizeof *ans);
  outcome o = run_calls(c, calls, n, ans);
  cr_assert_eq(o.rc, RT_OK, "%s", o.err.msg);
  for (size_t i = 0; i < n; i++) {
    cr_assert(ans[i].ok);
    char norm[512];
    rt_normalize_desc(ans[i].text, norm, sizeof norm);
    int32_t k = rt_catalog_find_norm(&cat, norm);
    cr_assert_geq(k, 0, "answer \"%s\"", ans[i].text);
    cr_assert(k != (int32_t)calls[i].exclude[0] && k != (int32_t)calls[i].exclude[1], "call %zu answered c1/c2 \"%s\"",
              i, ans[i].text);
  }
  free_calls(calls, texts, ans, n);
  rt_llm_client_free(c);
}

#include <mpi.h>
#include "pipeline/summary.h"

Test(infer, summary_llm_reports_latency_attempts_tokens) {
  int up = 0;
  MPI_Initialized(&up);
  if (!up) MPI_Init(NULL, NULL);
  rt_llm_stats s;
  memset(&s, 0, sizeof s);
  s.answered = 100;
  s.http_429 = 30;
  s.http_429_quota = 4;
  s.http_502 = 2;
  s.timeouts = 1;
  s.conn_errors = 3;
  s.conn_resets = 2;
  s.prompt_tokens = 1234;
  s.completion_tokens = 321;
  s.rate_cuts = 1;
  for (int i = 0; i < 90; i++) s.latency_buckets[rt_llm_latency_bucket(50)]++;
  for (int i = 0; i < 10; i++) s.latency_buckets[rt_llm_latency_bucket(800)]++;
  json_t *o = rt_summary_llm(MPI_COMM_WORLD, &s);
  cr_assert_not_null(o);
  json_t *lat = json_object_get(o, "latency_ms"), *att = json_object_get(o, "attempts");
  cr_assert_eq(json_integer_value(json_object_get(lat, "answered")), 100);
  double p50 = json_real_value(json_object_get(lat, "p50")), p99 = json_real_value(json_object_get(lat, "p99"));
  cr_assert(p50 >= 50 && p50 < 60, "p50 %g", p50);
  cr_assert(p99 >= 800 && p99 < 960, "p99 %g", p99);
  cr_assert_eq(json_integer_value(json_object_get(att, "http_429")), 30);
  cr_assert_eq(json_integer_value(json_object_get(att, "http_429_quota")), 4);
  cr_assert_eq(json_integer_value(json_object_get(att, "http_502")), 2);
  cr_assert_eq(json_integer_value(json_object_get(att, "conn_resets")), 2);
  cr_assert_eq(json_integer_value(json_object_get(json_object_get(o, "tokens"), "prompt")), 1234);
  cr_assert_eq(json_integer_value(json_object_get(json_object_get(o, "rate"), "cuts")), 1);
  json_decref(o);
  /* A rank without a client: zeros, null quantiles. */
  o = rt_summary_llm(MPI_COMM_WORLD, NULL);
  cr_assert(json_is_null(json_object_get(json_object_get(o, "latency_ms"), "p50")));
  json_decref(o);
  MPI_Finalize();
}
