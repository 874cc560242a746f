/* resume.c — TABLE.resume: key=value lines, replaced atomically. */
#include "format/resume.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"

int rt_resume_load(const char *path, rt_resume *out) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[256];
  int have = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    char *eq = strchr(line, '=');
    if (!eq) continue;
    *eq = '\0';
    const char *k = line, *v = eq + 1;
    if (!strcmp(k, "config_hash")) out->config_hash = strtoull(v, NULL, 16), have |= 1;
    else if (!strcmp(k, "window_start")) out->window_start = strtoll(v, NULL, 10), have |= 2;
    else if (!strcmp(k, "window_end")) out->window_end = strtoll(v, NULL, 10), have |= 4;
    else if (!strcmp(k, "created_at")) out->created_at = strtoll(v, NULL, 10), have |= 8;
    else if (!strcmp(k, "first_started")) out->first_started = strtoll(v, NULL, 10), have |= 16;
    else if (!strcmp(k, "attempt")) out->attempt = strtoll(v, NULL, 10), have |= 32;
    else if (!strcmp(k, "run_id")) snprintf(out->run_id, sizeof out->run_id, "%s", v), have |= 64;
  }
  fclose(f);
  return have == 127 && out->attempt >= 1;
}

int rt_resume_save(const char *path, const rt_resume *r, rt_err *err) {
  char buf[1024];
  int n = snprintf(buf, sizeof buf,
                   "# ragtide resume state: the next attempt of this job keeps this window (docs/operations.md)\n"
                   "config_hash=%016llx\nwindow_start=%lld\nwindow_end=%lld\ncreated_at=%lld\nfirst_started=%lld\n"
                   "attempt=%lld\nrun_id=%s\n",
                   (unsigned long long)r->config_hash, (long long)r->window_start, (long long)r->window_end,
                   (long long)r->created_at, (long long)r->first_started, (long long)r->attempt, r->run_id);
  return rt_write_file_atomic(path, buf, (size_t)n, err);
}
