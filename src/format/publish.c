/* publish.c — atomic publishing with K backups, and rollback. */
#include "format/publish.h"
#include "base/log.h"

#include <ctype.h>
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PUB_MAX_KEEP 99

static int exists(const char *p) {
  struct stat st;
  return lstat(p, &st) == 0;
}

static void backup_name(char *buf, size_t cap, const char *path, int i) { snprintf(buf, cap, "%s.%d", path, i); }

/* Shift PATH.1..PATH.keep-1 up by one (dropping PATH.keep and older), then
 * hard-link PATH as PATH.1. PATH itself is never touched. */
static int rotate(const char *path, int keep, rt_err *err) {
  /* A publish killed between its backup link and its rename left PATH.1 as
   * PATH itself: that backup exists already, rotating again would keep it
   * twice. */
  {
    char one[4200];
    struct stat sp, s1;
    backup_name(one, sizeof one, path, 1);
    if (stat(path, &sp) == 0 && stat(one, &s1) == 0 && sp.st_ino == s1.st_ino && sp.st_dev == s1.st_dev)
      return RT_OK;
  }
  char a[4096], b[4096];
  if (keep <= 0 || !exists(path)) return RT_OK;
  /* Drop the oldest kept one and anything beyond (left by a larger keep). */
  for (int i = keep;; i++) {
    backup_name(a, sizeof a, path, i);
    if (!exists(a)) {
      if (i > keep) break;
      continue;
    }
    if (unlink(a) != 0)
      return rt_err_set(err, RT_ERR_OUTPUT, "cannot delete old backup %s: %s", a, strerror(errno));
  }
  for (int i = keep - 1; i >= 1; i--) {
    backup_name(a, sizeof a, path, i);
    backup_name(b, sizeof b, path, i + 1);
    if (exists(a) && rename(a, b) != 0)
      return rt_err_set(err, RT_ERR_OUTPUT, "cannot rotate %s to %s: %s", a, b, strerror(errno));
  }
  backup_name(a, sizeof a, path, 1);
  if (link(path, a) != 0)
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot keep %s as %s (hard link): %s", path, a, strerror(errno));
  return RT_OK;
}

int rt_table_publish_bytes(const void *data, size_t len, const char *path, int keep, rt_err *err) {
  if (!data || !path || keep < 0 || keep > PUB_MAX_KEEP)
    return rt_err_set(err, RT_ERR_INTERNAL, "rt_table_publish: bad arguments (keep=%d, must be 0..%d)", keep,
                      PUB_MAX_KEEP);
  char tmp[4096];
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.new.%ld", path, (long)getpid()) >= sizeof tmp - 32)
    return rt_err_set(err, RT_ERR_OUTPUT, "table path too long: %s", path);
  /* The new table goes durably to a side name first; only then are the old
   * ones rotated and the new one renamed over the served path. */
  int rc = rt_write_file_atomic(tmp, data, len, err);
  if (rc) return rc;
  if ((rc = rotate(path, keep, err)) != RT_OK) {
    unlink(tmp);
    return rt_err_wrap(err, "publishing %s: ", path);
  }
  rt_test_pause("publish");
  if (rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot rename %s over %s: %s", tmp, path, strerror(e));
  }
  return rt_fsync_dir_of(path, err);
}

/* The pids in a name's ".new.PID" / ".tmp.PID" parts: 1 when there is at
 * least one and none is a live process. */
static int all_writers_dead(const char *suffix) {
  int found = 0;
  for (const char *p = suffix; (p = strpbrk(p, ".")) != NULL; p++) {
    const char *q = NULL;
    if (!strncmp(p, ".new.", 5)) q = p + 5;
    else if (!strncmp(p, ".tmp.", 5)) q = p + 5;
    if (!q || !isdigit((unsigned char)*q)) continue;
    char *end;
    long pid = strtol(q, &end, 10);
    if (*end != '\0' && *end != '.') continue;
    found = 1;
    if (pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH) return 0;
  }
  return found;
}

int rt_table_sweep(const char *path, int *removed) {
  if (removed) *removed = 0;
  char dir[4096], base[1024];
  const char *slash = strrchr(path, '/');
  if (slash) {
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (!*dir) snprintf(dir, sizeof dir, "/");
    snprintf(base, sizeof base, "%s", slash + 1);
  } else {
    snprintf(dir, sizeof dir, ".");
    snprintf(base, sizeof base, "%s", path);
  }
  DIR *d = opendir(dir);
  if (!d) return -1;
  size_t bl = strlen(base);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, base, bl) != 0 || e->d_name[bl] != '.') continue;
    if (!all_writers_dead(e->d_name + bl)) continue;
    char full[8192];
    snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
    if (unlink(full) == 0) {
      rt_warn("removed %s, left by a run that died", full);
      if (removed) (*removed)++;
    }
  }
  closedir(d);
  return 0;
}

int rt_table_publish(ragtide_table_builder *b, const char *path, int keep, rt_err *err) {
  uint8_t *data = NULL;
  size_t len = 0;
  char eb[RT_ERR_MSG_MAX];
  int rc = ragtide_builder_serialize(b, &data, &len, eb, sizeof eb);
  if (rc)
    return rt_err_set(err, rc == RAGTIDE_E_NOMEM ? RT_ERR_NOMEM : RT_ERR_INTERNAL, "serializing table for %s: %s",
                      path, eb);
  rc = rt_table_publish_bytes(data, len, path, keep, err);
  free(data);
  return rc;
}

int rt_table_rollback(const char *path, rt_err *err) {
  char prev[4096], a[4096], b[4096], keepname[4096];
  backup_name(prev, sizeof prev, path, 1);
  if (!exists(prev))
    return rt_err_set(err, RT_ERR_TABLE, "cannot roll back %s: no previous table %s (publish keeps them only "
                      "when output.keep > 0)", path, prev);
  char eb[RT_ERR_MSG_MAX];
  int rc = ragtide_table_verify_file(prev, eb, sizeof eb);
  if (rc)
    return rt_err_set(err, RT_ERR_TABLE, "refusing to roll back %s: the previous table is invalid: %s", path, eb);
  snprintf(keepname, sizeof keepname, "%s.rolledback", path);
  if (exists(path)) {
    unlink(keepname);
    if (link(path, keepname) != 0)
      return rt_err_set(err, RT_ERR_OUTPUT, "cannot keep %s as %s before rolling back: %s", path, keepname,
                        strerror(errno));
  }
  if (rename(prev, path) != 0)
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot rename %s over %s: %s", prev, path, strerror(errno));
  for (int i = 2; i <= PUB_MAX_KEEP + 1; i++) {
    backup_name(a, sizeof a, path, i);
    if (!exists(a)) break;
    backup_name(b, sizeof b, path, i - 1);
    if (rename(a, b) != 0)
      return rt_err_set(err, RT_ERR_OUTPUT, "rolled back %s, but cannot shift %s to %s: %s", path, a, b,
                        strerror(errno));
  }
  return rt_fsync_dir_of(path, err);
}
