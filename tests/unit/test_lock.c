/* test_lock.c — one run per table (format/lock.h), the resume state
 * (format/resume.h), relative windows (rt_config_resolve_window) and the
 * sweep of dead runs' temp files (rt_table_sweep). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "format/config.h"
#include "format/lock.h"
#include "format/publish.h"
#include "format/resume.h"

static char g_dir[256];
static void setup(void) {
  strcpy(g_dir, "/tmp/rt_test_lock_XXXXXX");
  cr_assert_not_null(mkdtemp(g_dir));
}
static void teardown(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", g_dir);
}
static const char *path(const char *name) {
  static char buf[4][512];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
  return buf[k];
}
static int exists(const char *p) { return access(p, F_OK) == 0; }

/* A pid that is certainly not alive: a child that has exited and been reaped. */
static long dead_pid(void) {
  pid_t p = fork();
  if (p == 0) _exit(0);
  waitpid(p, NULL, 0);
  return (long)p;
}

static void write_file(const char *p, const char *text) {
  FILE *f = fopen(p, "w");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
}

Test(lock, exclusive_names_the_holder_and_releases, .init = setup, .fini = teardown) {
  rt_lock *a = NULL, *b = NULL;
  rt_err err = {0};
  cr_assert_eq(rt_lock_acquire(path("t.rtt"), "RUN-A", 600, &a, &err), RT_OK, "%s", err.msg);
  cr_assert(exists(path("t.rtt.lock")));
  cr_assert_eq(rt_lock_acquire(path("t.rtt"), "RUN-B", 600, &b, &err), RT_ERR_LOCKED);
  cr_assert_null(b);
  char host[256];
  gethostname(host, sizeof host);
  char want[512];
  snprintf(want, sizeof want, "host %s, pid %ld, run RUN-A, started ", host, (long)getpid());
  cr_assert(strstr(err.msg, want) != NULL, "%s", err.msg);
  rt_lock_release(a);
  cr_assert(!exists(path("t.rtt.lock")), "released lock must be removed");
  cr_assert_eq(rt_lock_acquire(path("t.rtt"), "RUN-B", 600, &b, &err), RT_OK, "%s", err.msg);
  rt_lock_release(b);
}

Test(lock, dead_holder_on_this_host_is_taken_over, .init = setup, .fini = teardown) {
  char host[256], line[600];
  gethostname(host, sizeof host);
  snprintf(line, sizeof line, "host=%s pid=%ld run_id=OLD started=2026-01-01T00:00:00Z\n", host, dead_pid());
  write_file(path("t.rtt.lock"), line);
  rt_lock *l = NULL;
  rt_err err = {0};
  cr_assert_eq(rt_lock_acquire(path("t.rtt"), "NEW", 600, &l, &err), RT_OK, "%s", err.msg);
  FILE *f = fopen(path("t.rtt.lock"), "r");
  char got[600] = "";
  cr_assert(fgets(got, sizeof got, f) != NULL);
  fclose(f);
  cr_assert(strstr(got, "run_id=NEW") != NULL, "%s", got);
  rt_lock_release(l);
}

Test(lock, live_holder_on_another_host_until_its_heartbeat_is_stale, .init = setup, .fini = teardown) {
  write_file(path("t.rtt.lock"), "host=elsewhere.invalid pid=1 run_id=FAR started=2026-01-01T00:00:00Z\n");
  rt_lock *l = NULL;
  rt_err err = {0};
  cr_assert_eq(rt_lock_acquire(path("t.rtt"), "NEW", 600, &l, &err), RT_ERR_LOCKED, "fresh heartbeat: live");
  cr_assert(strstr(err.msg, "host elsewhere.invalid, pid 1, run FAR") != NULL, "%s", err.msg);
  /* heartbeat an hour old, stale after 600 s */
  struct timespec old[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
  cr_assert_eq(utimensat(AT_FDCWD, path("t.rtt.lock"), old, 0), 0);
  cr_assert_eq(rt_lock_acquire(path("t.rtt"), "NEW", 600, &l, &err), RT_OK, "%s", err.msg);
  rt_lock_release(l);
}

Test(lock, unwritable_directory_is_an_output_error, .init = setup, .fini = teardown) {
  rt_lock *l = NULL;
  rt_err err = {0};
  cr_assert_eq(rt_lock_acquire(path("no-such-dir/t.rtt"), "R", 600, &l, &err), RT_ERR_OUTPUT);
  cr_assert(strstr(err.msg, "no-such-dir/t.rtt.lock") != NULL, "%s", err.msg);
}

Test(resume, round_trip_and_incomplete_state, .init = setup, .fini = teardown) {
  rt_resume r = {.config_hash = 0xfeedbeef12345678ULL,
                 .window_start = 1767225600,
                 .window_end = 1767830400,
                 .created_at = 1767830500,
                 .first_started = 1767830499,
                 .attempt = 2};
  strcpy(r.run_id, "20260108T000000Z-abcdef01");
  rt_err err = {0};
  cr_assert_eq(rt_resume_save(path("t.rtt.resume"), &r, &err), RT_OK, "%s", err.msg);
  rt_resume got;
  cr_assert_eq(rt_resume_load(path("t.rtt.resume"), &got), 1);
  cr_assert_eq(got.config_hash, r.config_hash);
  cr_assert_eq(got.window_start, r.window_start);
  cr_assert_eq(got.window_end, r.window_end);
  cr_assert_eq(got.created_at, r.created_at);
  cr_assert_eq(got.first_started, r.first_started);
  cr_assert_eq(got.attempt, 2);
  cr_assert_str_eq(got.run_id, r.run_id);
  cr_assert_eq(rt_resume_load(path("missing"), &got), 0);
  write_file(path("partial"), "config_hash=12\nwindow_start=5\n");
  cr_assert_eq(rt_resume_load(path("partial"), &got), 0, "an incomplete state starts afresh");
}

Test(config, window_days_ends_at_the_last_midnight_minus_the_lag) {
  rt_config c;
  rt_config_defaults(&c);
  c.window_days = 7;
  int64_t now = 1767830400 + 2 * 3600 + 5; /* 2026-01-08T02:00:05Z */
  rt_config_resolve_window(&c, now);
  cr_assert_eq(c.window_end, 1767830400);            /* 2026-01-08 */
  cr_assert_eq(c.window_start, 1767830400 - 7 * 86400);
  c.window_lag_h = 3;                                  /* 23:00:05 the day before: its midnight */
  rt_config_resolve_window(&c, now);
  cr_assert_eq(c.window_end, 1767830400 - 86400);
  c.window_lag_h = 2;                                  /* exactly 00:00:05: that midnight */
  rt_config_resolve_window(&c, now);
  cr_assert_eq(c.window_end, 1767830400);
  c.window_days = 0;
  c.window_start = c.window_end = 42;
  rt_config_resolve_window(&c, now);
  cr_assert_eq(c.window_start, 42, "window_days = 0 leaves the window alone");
  rt_err err = {0};
  rt_config_free(&c);
  rt_config_defaults(&c);
  cr_assert_eq(rt_config_set(&c, "output.flush_s=0", &err), RT_ERR_USAGE, "out of range at once");
  c.flush_s = 0; /* as code may set it: validate checks every range too */
  c.catalog = (free(c.catalog), strdup("cat.tsv"));
  c.logs = (free(c.logs), strdup("x/*.tsv"));
  c.window_start = 1, c.window_end = 2;
  cr_assert_eq(rt_config_validate(&c, "aggregate", &err), RT_ERR_USAGE);
  cr_assert(strstr(err.msg, "output.flush_s") != NULL, "%s", err.msg);
  rt_config_free(&c);
}

Test(publish, sweep_removes_only_dead_writers_files, .init = setup, .fini = teardown) {
  char dead[32], live[32], name[256];
  snprintf(dead, sizeof dead, "%ld", dead_pid());
  snprintf(live, sizeof live, "%ld", (long)getpid());
  write_file(path("t.rtt"), "served");
  write_file(path("t.rtt.1"), "backup");
  write_file(path("t.rtt.answers"), "journal");
  write_file(path("other.rtt.new.1"), "another table's");
  snprintf(name, sizeof name, "t.rtt.new.%s", dead);
  write_file(path(name), "dead temp table");
  snprintf(name, sizeof name, "t.rtt.new.%s.tmp.%s", dead, dead);
  write_file(path(name), "dead temp of temp");
  snprintf(name, sizeof name, "t.rtt.summary.json.tmp.%s", dead);
  write_file(path(name), "dead summary");
  snprintf(name, sizeof name, "t.rtt.contexts.tmp.%s", live);
  write_file(path(name), "a live writer's");
  int removed = -1;
  cr_assert_eq(rt_table_sweep(path("t.rtt"), &removed), 0);
  cr_assert_eq(removed, 3);
  cr_assert(exists(path("t.rtt")) && exists(path("t.rtt.1")) && exists(path("t.rtt.answers")));
  cr_assert(exists(path("other.rtt.new.1")));
  snprintf(name, sizeof name, "t.rtt.contexts.tmp.%s", live);
  cr_assert(exists(path(name)), "a live process's temp file stays");
  snprintf(name, sizeof name, "t.rtt.new.%s", dead);
  cr_assert(!exists(path(name)));
}
