/* lock.c — TABLE.lock: exclusive create, holder line, heartbeat thread. */
#include "format/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

struct rt_lock {
  char *path;
  char line[512];      /* what we wrote: the release checks it is still ours */
  pthread_t beat;
  int beating;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
};

static void *heartbeat(void *arg) {
  rt_lock *l = arg;
  pthread_mutex_lock(&l->mu);
  while (!l->stop) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += RT_LOCK_HEARTBEAT_S;
    pthread_cond_timedwait(&l->cv, &l->mu, &ts);
    if (!l->stop) utimensat(AT_FDCWD, l->path, NULL, 0);
  }
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

static int read_line(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, cap - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *nl = strchr(buf, '\n');
  if (nl) *nl = '\0';
  return 0;
}

static void field(const char *line, const char *name, char *out, size_t cap) {
  out[0] = '\0';
  size_t nl = strlen(name);
  for (const char *p = line; (p = strstr(p, name)) != NULL; p += nl) {
    if ((p == line || p[-1] == ' ') && p[nl] == '=') {
      p += nl + 1;
      size_t k = strcspn(p, " ");
      if (k >= cap) k = cap - 1;
      memcpy(out, p, k);
      out[k] = '\0';
      return;
    }
  }
}

/* 1 when the holder described by `line` is certainly dead. */
static int holder_dead(const char *line, const struct stat *st, int64_t stale_s, const char *myhost, char *why,
                       size_t cap) {
  char host[256], pid[32];
  field(line, "host", host, sizeof host);
  field(line, "pid", pid, sizeof pid);
  long p = atol(pid);
  if (*host && strcmp(host, myhost) == 0 && p > 0) {
    if (kill((pid_t)p, 0) != 0 && errno == ESRCH) {
      snprintf(why, cap, "its process %ld on this host is gone", p);
      return 1;
    }
    return 0;
  }
  int64_t age = (int64_t)time(NULL) - (int64_t)st->st_mtime;
  if (stale_s > 0 && age > stale_s) {
    snprintf(why, cap, "its heartbeat is %lld s old (> job.lock_stale_s = %lld)", (long long)age,
             (long long)stale_s);
    return 1;
  }
  if (!*host || p <= 0) { /* unreadable (a crash while it was written): judge by age alone */
    if (age > 2 * RT_LOCK_HEARTBEAT_S) {
      snprintf(why, cap, "it names no holder and is %lld s old", (long long)age);
      return 1;
    }
  }
  return 0;
}

int rt_lock_acquire(const char *table, const char *run_id, int64_t stale_s, rt_lock **out, rt_err *err) {
  *out = NULL;
  rt_lock *l = rt_xcalloc(1, sizeof *l);
  size_t n = strlen(table) + 6;
  l->path = rt_xmalloc(n);
  snprintf(l->path, n, "%s.lock", table);
  char host[256] = "?";
  gethostname(host, sizeof host);
  host[sizeof host - 1] = '\0';
  char ts[32];
  rt_format_utc((int64_t)time(NULL), ts, sizeof ts);
  snprintf(l->line, sizeof l->line, "host=%s pid=%ld run_id=%s started=%s", host, (long)getpid(), run_id, ts);
  for (int attempt = 0; attempt < 5; attempt++) {
    int fd = open(l->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      char buf[600];
      int len = snprintf(buf, sizeof buf, "%s\n", l->line);
      int ok = write(fd, buf, (size_t)len) == len && fsync(fd) == 0;
      close(fd);
      if (!ok) {
        unlink(l->path);
        int e = errno;
        rt_err_set(err, RT_ERR_OUTPUT, "cannot write the lock %s: %s", l->path, strerror(e));
        free(l->path);
        free(l);
        return RT_ERR_OUTPUT;
      }
      rt_fsync_dir_of(l->path, NULL);
      pthread_mutex_init(&l->mu, NULL);
      pthread_cond_init(&l->cv, NULL);
      l->beating = pthread_create(&l->beat, NULL, heartbeat, l) == 0;
      *out = l;
      return RT_OK;
    }
    if (errno != EEXIST) {
      int e = errno;
      rt_err_set(err, RT_ERR_OUTPUT, "cannot create the lock %s: %s (does the table's directory exist and is it "
                 "writable?)", l->path, strerror(e));
      free(l->path);
      free(l);
      return RT_ERR_OUTPUT;
    }
    char line[600] = "", why[256];
    struct stat st;
    if (stat(l->path, &st) != 0) continue; /* released meanwhile: try again */
    read_line(l->path, line, sizeof line);
    if (!holder_dead(line, &st, stale_s, host, why, sizeof why)) {
      char h[256], p[32], r[128], s[32];
      field(line, "host", h, sizeof h);
      field(line, "pid", p, sizeof p);
      field(line, "run_id", r, sizeof r);
      field(line, "started", s, sizeof s);
      rt_err_set(err, RT_ERR_LOCKED,
                 "another run holds %s: host %s, pid %s, run %s, started %s; wait for it to end (or, if it is "
                 "dead on another host, remove the lock file)", l->path, *h ? h : "?", *p ? p : "?",
                 *r ? r : "?", *s ? s : "?");
      free(l->path);
      free(l);
      return RT_ERR_LOCKED;
    }
    /* Move the stale lock aside (atomic): of two runs that both judged it
     * stale, only one rename succeeds; the other retries and finds ours. */
    char aside[4200];
    snprintf(aside, sizeof aside, "%s.stale.%ld", l->path, (long)getpid());
    if (rename(l->path, aside) == 0) {
      rt_warn("took over the lock %s (%s): was \"%s\"", l->path, why, line);
      unlink(aside);
    }
  }
  rt_err_set(err, RT_ERR_LOCKED, "could not take the lock %s after 5 attempts (runs racing for it?)", l->path);
  free(l->path);
  free(l);
  return RT_ERR_LOCKED;
}

void rt_lock_release(rt_lock *l) {
  if (!l) return;
  if (l->beating) {
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->beat, NULL);
  }
  char line[600] = "";
  if (read_line(l->path, line, sizeof line) == 0 && strcmp(line, l->line) == 0) unlink(l->path);
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->cv);
  free(l->path);
  free(l);
}
