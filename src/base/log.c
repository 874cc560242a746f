/* log.c — rank-tagged, redacted log lines. */
#include "base/log.h"
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int g_rank = -1;
static int g_level = -1; /* -1: not yet read from the environment */

void rt_log_set_rank(int rank) { g_rank = rank; }
void rt_log_set_level(rt_log_level lvl) { g_level = (int)lvl; }

static int level_now(void) {
  if (g_level >= 0) return g_level;
  const char *e = getenv("RAGTIDE_LOG");
  g_level = RT_LOG_INFO;
  if (e) {
    if (!strcasecmp(e, "debug")) g_level = RT_LOG_DEBUG;
    else if (!strcasecmp(e, "warn")) g_level = RT_LOG_WARN;
    else if (!strcasecmp(e, "error")) g_level = RT_LOG_ERROR;
    else if (!strcasecmp(e, "quiet")) g_level = RT_LOG_QUIET;
  }
  return g_level;
}

void rt_log(rt_log_level lvl, const char *fmt, ...) {
  if ((int)lvl < level_now()) return;
  static const char *names[] = {"debug", "info", "warn", "error"};
  char line[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  rt_redact(line, sizeof line);
  char ts[32];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (g_rank >= 0)
    fprintf(stderr, "%s ragtide[r%d] %s: %s\n", ts, g_rank, names[lvl], line);
  else
    fprintf(stderr, "%s ragtide %s: %s\n", ts, names[lvl], line);
}
