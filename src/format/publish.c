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
 * hard-link PATH as PATH.1. PATH itself is never touched. Backups are
 * shifted even when PATH is missing (a table's summary or contexts may be),
 * so index i always names the files of the same generation. */
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
  if (keep <= 0) return RT_OK;
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
  if (!exists(path)) return RT_OK;
  backup_name(a, sizeof a, path, 1);
  if (link(path, a) != 0)
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot keep %s as %s (hard link): %s", path, a, strerror(errno));
  return RT_OK;
}

/* SIDE.new.PID.none: staged in place of a side file this generation lacks. */
#define NONE_SUFFIX ".none"

static void staged_name(char *buf, size_t cap, const char *path) {
  snprintf(buf, cap, "%s.new.%ld", path, (long)getpid());
}

int rt_table_commit(const char *staged, const char *path, int keep, const rt_pub_side *side, size_t nside,
                    rt_err *err) {
  if (!staged || !path || keep < 0 || keep > PUB_MAX_KEEP || (nside && !side))
    return rt_err_set(err, RT_ERR_INTERNAL, "rt_table_commit: bad arguments (keep=%d, must be 0..%d)", keep,
                      PUB_MAX_KEEP);
  char(*tmp)[4096] = rt_xcalloc(nside ? nside : 1, sizeof *tmp);
  int rc = RT_OK;
  size_t written = 0;
  /* Every file of the generation is durable under a side name before
   * anything served moves. */
  for (; written < nside && rc == RT_OK; written++) {
    staged_name(tmp[written], sizeof tmp[written], side[written].path);
    if (side[written].data) {
      rc = rt_write_file_atomic(tmp[written], side[written].data, side[written].len, err);
    } else { /* a marker: this generation has none (rt_table_sweep acts on it after a crash) */
      strncat(tmp[written], NONE_SUFFIX, sizeof tmp[written] - strlen(tmp[written]) - 1);
      rc = rt_write_file_atomic(tmp[written], "", 0, err);
    }
  }
  if (rc == RT_OK && (rc = rotate(path, keep, err)) != RT_OK) rt_err_wrap(err, "publishing %s: ", path);
  for (size_t i = 0; i < nside && rc == RT_OK; i++)
    if ((rc = rotate(side[i].path, keep, err)) != RT_OK) rt_err_wrap(err, "publishing %s: ", path);
  if (rc == RT_OK) rt_test_pause("publish");
  /* The table first: it is what serving reads. A crash before the side
   * files follow leaves them staged under SIDE.new.PID, and the next
   * rt_table_sweep renames them into place (the staged table being gone
   * says the table went first); never a summary that claims a table not
   * yet served. */
  if (rc == RT_OK && rename(staged, path) != 0)
    rc = rt_err_set(err, RT_ERR_OUTPUT, "cannot rename %s over %s: %s", staged, path, strerror(errno));
  if (rc) {
    /* Side files first: a staged side whose staged table is gone means the
     * table was renamed, and rt_table_sweep completes that publish. */
    for (size_t i = 0; i < written; i++) unlink(tmp[i]);
    unlink(staged);
    free(tmp);
    return rc;
  }
  rt_test_pause("publish-sides");
  for (size_t i = 0; i < nside; i++)
    if (!side[i].data) {
      unlink(side[i].path); /* this generation has none; the old one is kept as backup 1 */
      unlink(tmp[i]);
    } else if (rename(tmp[i], side[i].path) != 0) {
      int e = errno;
      rc = rt_err_set(err, RT_ERR_OUTPUT, "published %s, but cannot rename %s over %s: %s", path, tmp[i],
                      side[i].path, strerror(e));
      for (size_t j = i; j < nside; j++) unlink(tmp[j]);
      free(tmp);
      return rc;
    }
  free(tmp);
  return rt_fsync_dir_of(path, err);
}

int rt_table_stage_bytes(const void *data, size_t len, const char *path, char **staged, rt_err *err) {
  *staged = NULL;
  if (!data || !path) return rt_err_set(err, RT_ERR_INTERNAL, "rt_table_stage: bad arguments");
  char tmp[4096];
  staged_name(tmp, sizeof tmp, path);
  if (strlen(tmp) >= sizeof tmp - 32) return rt_err_set(err, RT_ERR_OUTPUT, "table path too long: %s", path);
  int rc = rt_write_file_atomic(tmp, data, len, err);
  if (rc) return rc;
  *staged = rt_xstrdup(tmp);
  return RT_OK;
}

int rt_table_stage(ragtide_table_builder *b, const char *path, char **staged, rt_err *err) {
  uint8_t *data = NULL;
  size_t len = 0;
  char eb[RT_ERR_MSG_MAX];
  *staged = NULL;
  int rc = ragtide_builder_serialize(b, &data, &len, eb, sizeof eb);
  if (rc)
    return rt_err_set(err, rc == RAGTIDE_E_NOMEM ? RT_ERR_NOMEM : RT_ERR_INTERNAL, "serializing table for %s: %s",
                      path, eb);
  rc = rt_table_stage_bytes(data, len, path, staged, err);
  free(data);
  return rc;
}

int rt_table_publish_bytes(const void *data, size_t len, const char *path, int keep, rt_err *err) {
  if (keep < 0 || keep > PUB_MAX_KEEP)
    return rt_err_set(err, RT_ERR_INTERNAL, "rt_table_publish: bad arguments (keep=%d, must be 0..%d)", keep,
                      PUB_MAX_KEEP);
  char *staged;
  int rc = rt_table_stage_bytes(data, len, path, &staged, err);
  if (rc == RT_OK) rc = rt_table_commit(staged, path, keep, NULL, 0, err);
  free(staged);
  return rc;
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

/* A side file staged by a publish that died after renaming its table
 * (BASE.SIDE.new.PID, and BASE.new.PID gone: rt_table_commit renames the
 * table first and, on failure, removes staged sides before the staged
 * table): rename it over BASE.SIDE, so the side files describe the served
 * table again. 1 when `name` was such a file and is now in place. */
static int finish_side(const char *dir, const char *base, const char *name, const char *full) {
  size_t bl = strlen(base);
  const char *nw = strstr(name + bl, ".new.");
  if (!nw || nw == name + bl) return 0; /* the staged table itself */
  const char *dot = strchr(nw + 5, '.');
  int none = dot && !strcmp(dot, NONE_SUFFIX);
  if (dot && !none) return 0; /* a .tmp. inside: half written */
  char table_staged[8192], served[8192];
  snprintf(table_staged, sizeof table_staged, "%s/%s%.*s", dir, base, (int)((dot ? dot : nw + strlen(nw)) - nw),
           nw);                              /* BASE.new.PID */
  if (exists(table_staged)) return 0;       /* died before the table: roll back */
  snprintf(served, sizeof served, "%s/%.*s", dir, (int)(nw - name), name);
  if (none) {
    unlink(served);
    unlink(full);
    rt_warn("%s: removed, completing the publish of a run that died after renaming its table (that "
            "generation has none; the previous one is kept as backup 1)", served);
    return 1;
  }
  if (rename(full, served) != 0) return 0;
  rt_warn("%s: completed the publish of a run that died after renaming its table (its side file was "
          "still staged as %s)", served, full);
  return 1;
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
  /* Two passes: staged tables (BASE.new.PID) go last, since whether one is
   * there decides what becomes of the side files staged with it. */
  for (int pass = 0; pass < 2; pass++) {
    rewinddir(d);
    while ((e = readdir(d)) != NULL) {
      if (strncmp(e->d_name, base, bl) != 0 || e->d_name[bl] != '.') continue;
      if (!all_writers_dead(e->d_name + bl)) continue;
      int staged_table = !strncmp(e->d_name + bl, ".new.", 5) && !strchr(e->d_name + bl + 5, '.');
      if (staged_table != pass) continue;
      char full[8192];
      snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
      if (!pass && finish_side(dir, base, e->d_name, full)) continue;
      if (unlink(full) == 0) {
        rt_warn("removed %s, left by a run that died", full);
        if (removed) (*removed)++;
      }
    }
  }
  closedir(d);
  return 0;
}

int rt_table_publish(ragtide_table_builder *b, const char *path, int keep, rt_err *err) {
  if (keep < 0 || keep > PUB_MAX_KEEP)
    return rt_err_set(err, RT_ERR_INTERNAL, "rt_table_publish: bad arguments (keep=%d, must be 0..%d)", keep,
                      PUB_MAX_KEEP);
  char *staged;
  int rc = rt_table_stage(b, path, &staged, err);
  if (rc == RT_OK) rc = rt_table_commit(staged, path, keep, NULL, 0, err);
  free(staged);
  return rc;
}

/* Move generation n of one file F to the front: F.n becomes F, F..F.n-1
 * become F.1..F.n. F is replaced by rename, never missing while both exist. */
static int to_front(const char *f, int n, rt_err *err) {
  char a[4096], b[4096], tmp[4096];
  backup_name(a, sizeof a, f, n);
  snprintf(tmp, sizeof tmp, "%s.rollback.tmp.%ld", f, (long)getpid());
  int have = exists(a);
  if (have && rename(a, tmp) != 0)
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot move %s aside: %s", a, strerror(errno));
  for (int i = n - 1; i >= 1; i--) {
    backup_name(a, sizeof a, f, i);
    backup_name(b, sizeof b, f, i + 1);
    if (exists(a) && rename(a, b) != 0)
      return rt_err_set(err, RT_ERR_OUTPUT, "cannot shift %s to %s: %s", a, b, strerror(errno));
  }
  backup_name(a, sizeof a, f, 1);
  /* With a file to bring back, F stays in place until the rename over it;
   * without one (that generation had none), F moves down alone. */
  if (exists(f) && (have ? link(f, a) : rename(f, a)) != 0)
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot keep %s as %s: %s", f, a, strerror(errno));
  if (have && rename(tmp, f) != 0)
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot rename %s over %s: %s", tmp, f, strerror(errno));
  return RT_OK;
}

int rt_table_rollback(const char *path, int n, const char *const *side, size_t nside, rt_err *err) {
  char prev[4096];
  if (n < 1 || n > PUB_MAX_KEEP)
    return rt_err_set(err, RT_ERR_USAGE, "rollback --to %d: must be in 1..%d", n, PUB_MAX_KEEP);
  backup_name(prev, sizeof prev, path, n);
  if (!exists(prev))
    return rt_err_set(err, RT_ERR_TABLE, "cannot roll back %s: no previous table %s (publish keeps them only "
                      "when output.keep > 0; `ragtide rollback --list %s` shows what is kept)", path, prev, path);
  char eb[RT_ERR_MSG_MAX];
  int rc = ragtide_table_verify_file(prev, eb, sizeof eb);
  if (rc)
    return rt_err_set(err, RT_ERR_TABLE, "refusing to roll back %s: the previous table is invalid: %s", path, eb);
  if ((rc = to_front(path, n, err))) return rc;
  for (size_t i = 0; i < nside; i++)
    if ((rc = to_front(side[i], n, err))) return rt_err_wrap(err, "rolled back %s, but its %s: ", path, side[i]);
  return rt_fsync_dir_of(path, err);
}
