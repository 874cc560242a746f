/* test_promfile.c — output.metrics_file: the text exposition of one run. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/promfile.h"

static char *slurp(const char *p) {
  FILE *f = fopen(p, "r");
  cr_assert_not_null(f);
  static char buf[16384];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

Test(promfile, published_run) {
  char path[] = "/tmp/rt_test_prom_XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  close(fd);
  rt_prom_run r = {.table = "/srv/t\"x.rtt", .status = "published", .exit_code = 0, .attempt = 2,
                   .duration_s = 12.5, .finished_at = 1767830400, .last_publish = 1767830399,
                   .have_pairs = 1, .pairs = {75, 0, 3500, 25}, .calls = 3525, .cached = 1000,
                   .requests = 2530, .failed = 1, .retries = 6, .http_429 = 4, .exact_match = 0.99,
                   .gate_exact = 1, .gate_errors = 1};
  rt_err err = {0};
  cr_assert_eq(rt_prom_write(path, &r, &err), RT_OK, "%s", err.msg);
  const char *s = slurp(path);
  const char *want[] = {
      "# TYPE ragtide_last_run_status gauge\n",
      "ragtide_last_run_status{table=\"/srv/t\\\"x.rtt\",status=\"published\"} 1\n",
      "ragtide_last_run_status{table=\"/srv/t\\\"x.rtt\",status=\"interrupted\"} 0\n",
      "ragtide_last_run_exit_code{table=\"/srv/t\\\"x.rtt\"} 0\n",
      "ragtide_last_run_attempt{table=\"/srv/t\\\"x.rtt\"} 2\n",
      "ragtide_last_run_duration_seconds{table=\"/srv/t\\\"x.rtt\"} 12.500\n",
      "ragtide_last_publish_timestamp_seconds{table=\"/srv/t\\\"x.rtt\"} 1767830399\n",
      "ragtide_table_pairs{table=\"/srv/t\\\"x.rtt\",provenance=\"rag\"} 3500\n",
      "ragtide_last_run_llm_requests{table=\"/srv/t\\\"x.rtt\"} 2530\n",
      "ragtide_last_run_llm_http_429{table=\"/srv/t\\\"x.rtt\"} 4\n",
      "ragtide_last_run_exact_match_ratio{table=\"/srv/t\\\"x.rtt\"} 0.990000\n",
      "ragtide_last_run_gate_passed{table=\"/srv/t\\\"x.rtt\",gate=\"min_exact_match\"} 1\n",
  };
  for (size_t i = 0; i < sizeof want / sizeof *want; i++) cr_assert(strstr(s, want[i]) != NULL, "missing %s in\n%s", want[i], s);
  /* an interrupted run: no pairs, gates not evaluated */
  rt_prom_run i2 = {.table = "t", .status = "interrupted", .exit_code = 9, .attempt = 1, .exact_match = -1,
                    .gate_exact = -1, .gate_errors = -1};
  cr_assert_eq(rt_prom_write(path, &i2, &err), RT_OK);
  s = slurp(path);
  cr_assert(strstr(s, "ragtide_last_run_status{table=\"t\",status=\"interrupted\"} 1\n") != NULL);
  cr_assert(strstr(s, "ragtide_last_run_exit_code{table=\"t\"} 9\n") != NULL);
  cr_assert(strstr(s, "ragtide_table_pairs") == NULL);
  cr_assert(strstr(s, "gate=\"") == NULL);
  cr_assert(strstr(s, "ragtide_last_publish_timestamp_seconds{table=\"t\"} 0\n") != NULL);
  unlink(path);
}
