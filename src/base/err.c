/* err.c — error records and secret redaction. */
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#define RT_MAX_SECRETS 8
static char *g_secrets[RT_MAX_SECRETS];
static int g_nsecrets;

void rt_secret_add(const char *secret) {
  /* Very short strings would redact ordinary words: refuse to register them
   * (a real key is never this short). */
  if (!secret || strlen(secret) < 4 || g_nsecrets == RT_MAX_SECRETS) return;
  for (int i = 0; i < g_nsecrets; i++)
    if (strcmp(g_secrets[i], secret) == 0) return;
  g_secrets[g_nsecrets] = strdup(secret);
  if (g_secrets[g_nsecrets]) g_nsecrets++;
  rt_secret_guard();
}

void rt_secret_guard(void) {
  /* Non-dumpable also blocks ptrace by other users and makes /proc/PID
   * root-owned: both wanted for a process holding a key. */
  if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

void rt_redact(char *buf, size_t cap) {
  static const char mark[] = "[REDACTED]";
  if (!buf || cap == 0) return;
  for (int i = 0; i < g_nsecrets; i++) {
    size_t sl = strlen(g_secrets[i]);
    char *p = buf;
    while ((p = strstr(p, g_secrets[i])) != NULL) {
      size_t head = (size_t)(p - buf), tail = strlen(p + sl);
      size_t ml = sizeof mark - 1;
      /* Truncate rather than overflow: a redacted message may lose its tail. */
      if (head + ml + tail + 1 > cap) tail = cap > head + ml + 1 ? cap - head - ml - 1 : 0;
      if (head + ml + 1 > cap) { buf[head] = '\0'; break; }
      memmove(p + ml, p + sl, tail);
      memcpy(p, mark, ml);
      p[ml + tail] = '\0';
      p += ml;
    }
  }
}

int rt_err_set(rt_err *err, int code, const char *fmt, ...) {
  if (!err) return code;
  err->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  rt_redact(err->msg, sizeof err->msg);
  return code;
}

int rt_err_wrap(rt_err *err, const char *fmt, ...) {
  if (!err) return RT_ERR_INTERNAL;
  char prefix[RT_ERR_MSG_MAX], old[RT_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, err->msg, sizeof old);
  size_t pl = strlen(prefix);
  if (pl >= sizeof err->msg) pl = sizeof err->msg - 1;
  memcpy(err->msg, prefix, pl);
  snprintf(err->msg + pl, sizeof err->msg - pl, "%.*s", (int)(sizeof err->msg - pl - 1), old);
  rt_redact(err->msg, sizeof err->msg);
  return err->code;
}
