/* publish.c — atomic publishing with K backups, and rollback. */
#include "format/publish.h"
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
  if (rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot rename %s over %s: %s", tmp, path, strerror(e));
  }
  return rt_fsync_dir_of(path, err);
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
