/* promfile.c — text exposition of one run's outcome. */
#include "pipeline/promfile.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

typedef RT_VEC(char) sbuf;

static void add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  rt_vec_reserve(b, b->len + (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* A label value: backslash, quote and newline escaped. */
static void escape(const char *in, char *out, size_t cap) {
  size_t k = 0;
  for (; *in && k + 3 < cap; in++) {
    if (*in == '\\' || *in == '"') out[k++] = '\\', out[k++] = *in;
    else if (*in == '\n') out[k++] = '\\', out[k++] = 'n';
    else out[k++] = *in;
  }
  out[k] = '\0';
}

static void metric(sbuf *b, const char *name, const char *type, const char *help) {
  add(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int rt_prom_write(const char *path, const rt_prom_run *r, rt_err *err) {
  char t[2048];
  escape(r->table, t, sizeof t);
  sbuf b = {0};
  static const char *const statuses[] = {"published", "halted", "stale", "failed", "interrupted"};
  metric(&b, "ragtide_last_run_status", "gauge", "1 for the status of the last refresh of this table");
  for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++)
    add(&b, "ragtide_last_run_status{table=\"%s\",status=\"%s\"} %d\n", t, statuses[i],
        strcmp(r->status, statuses[i]) == 0);
  metric(&b, "ragtide_last_run_exit_code", "gauge", "exit code of the last refresh (README: Exit codes)");
  add(&b, "ragtide_last_run_exit_code{table=\"%s\"} %d\n", t, r->exit_code);
  metric(&b, "ragtide_last_run_attempt", "gauge", "attempt number of the last refresh (> 1: a resumed run)");
  add(&b, "ragtide_last_run_attempt{table=\"%s\"} %lld\n", t, (long long)r->attempt);
  metric(&b, "ragtide_last_run_duration_seconds", "gauge", "wall time of the last refresh attempt");
  add(&b, "ragtide_last_run_duration_seconds{table=\"%s\"} %.3f\n", t, r->duration_s);
  metric(&b, "ragtide_last_run_finished_timestamp_seconds", "gauge", "when the last refresh ended");
  add(&b, "ragtide_last_run_finished_timestamp_seconds{table=\"%s\"} %lld\n", t, (long long)r->finished_at);
  metric(&b, "ragtide_last_publish_timestamp_seconds", "gauge",
         "when the served table was published (0: never); alert on time() minus this");
  add(&b, "ragtide_last_publish_timestamp_seconds{table=\"%s\"} %lld\n", t, (long long)r->last_publish);
  if (r->have_pairs) {
    metric(&b, "ragtide_table_pairs", "gauge", "pairs of the table the last run published, by provenance");
    for (int i = 0; i < RAGTIDE_PROV_COUNT; i++)
      add(&b, "ragtide_table_pairs{table=\"%s\",provenance=\"%s\"} %llu\n", t,
          ragtide_provenance_name((ragtide_provenance)i),
          (unsigned long long)r->pairs[i]);
  }
  struct {
    const char *name, *help;
    uint64_t v;
  } c[] = {
      {"ragtide_last_run_llm_calls", "pairs the last run asked the LLM about (cached included)", r->calls},
      {"ragtide_last_run_llm_cached", "calls answered from the answer journal (not paid again)", r->cached},
      {"ragtide_last_run_llm_requests", "HTTP requests sent, retries included", r->requests},
      {"ragtide_last_run_llm_retries", "requests that were retries", r->retries},
      {"ragtide_last_run_llm_http_429", "requests answered 429", r->http_429},
      {"ragtide_last_run_llm_failed", "calls with no answer after every attempt", r->failed},
  };
  for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
    metric(&b, c[i].name, "gauge", c[i].help);
    add(&b, "%s{table=\"%s\"} %llu\n", c[i].name, t, (unsigned long long)c[i].v);
  }
  if (r->exact_match >= 0) {
    metric(&b, "ragtide_last_run_exact_match_ratio", "gauge", "share of answers naming a catalog cluster exactly");
    add(&b, "ragtide_last_run_exact_match_ratio{table=\"%s\"} %.6f\n", t, r->exact_match);
  }
  metric(&b, "ragtide_last_run_gate_passed", "gauge", "1 passed, 0 failed; absent when not evaluated");
  if (r->gate_exact >= 0)
    add(&b, "ragtide_last_run_gate_passed{table=\"%s\",gate=\"min_exact_match\"} %d\n", t, r->gate_exact);
  if (r->gate_errors >= 0)
    add(&b, "ragtide_last_run_gate_passed{table=\"%s\",gate=\"max_failed_fraction\"} %d\n", t, r->gate_errors);
  int rc = rt_write_file_atomic(path, b.data, b.len, err);
  free(b.data);
  return rc;
}
