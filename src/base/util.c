/* util.c — allocation, hashing, time, files. */
#include "base/util.h"

#include <ctype.h>
#include <errno.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void oom(size_t n) {
  fprintf(stderr, "ragtide: out of memory allocating %zu bytes; lower memory use "
                  "(fewer clusters per rank, more ranks) or raise the limit\n", n);
  exit(RT_ERR_NOMEM);
}

void *rt_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom(n);
  return p;
}
void *rt_xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) oom(n * size);
  return p;
}
void *rt_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) oom(n);
  return q;
}

int rt_buf_append(char **buf, size_t *len, size_t *cap, const void *p, size_t n, size_t max, size_t first_cap) {
  if (*len + n > max) return -1;
  if (*len + n + 1 > *cap) {
    size_t nc = *cap ? *cap : first_cap;
    while (nc < *len + n + 1) nc *= 2;
    *buf = rt_xrealloc(*buf, nc);
    *cap = nc;
  }
  memcpy(*buf + *len, p, n);
  *len += n;
  (*buf)[*len] = '\0';
  return 0;
}
char *rt_xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = rt_xmalloc(n);
  memcpy(d, s, n);
  return d;
}

char *rt_trim(char *s) {
  size_t n = strlen(s);
  while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
  size_t i = 0;
  while (s[i] && isspace((unsigned char)s[i])) i++;
  if (i) memmove(s, s + i, n - i + 1);
  return s;
}

uint64_t rt_hash_bytes(const void *p, size_t n) {
  const unsigned char *b = p;
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

double rt_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int rt_parse_utc(const char *s, int64_t *out) {
  int y, mo, d, h = 0, mi = 0, se = 0, n = 0;
  if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3) return -1;
  const char *rest = s + n;
  if (*rest == 'T' || *rest == ' ') {
    int m = 0;
    if (sscanf(rest + 1, "%2d:%2d:%2d%n", &h, &mi, &se, &m) != 3) return -1;
    rest += 1 + m;
    if (*rest == 'Z') rest++;
  }
  if (*rest != '\0') return -1;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return -1;
  struct tm tm = {0};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  time_t t = timegm(&tm);
  struct tm back;
  gmtime_r(&t, &back);
  if (back.tm_mday != d) return -1; /* 2026-02-31 and the like */
  *out = (int64_t)t;
  return 0;
}

void rt_format_utc(int64_t t, char *buf, size_t cap) {
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

size_t rt_edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 255 || lb > 255) return la > lb ? la : lb; /* names, not texts */
  size_t r0[256], r1[256], r2[256], *pp = r0, *p = r1, *c = r2; /* rows i-2, i-1, i */
  for (size_t j = 0; j <= lb; j++) p[j] = j;
  for (size_t i = 1; i <= la; i++) {
    c[0] = i;
    int ca = tolower((unsigned char)a[i - 1]);
    for (size_t j = 1; j <= lb; j++) {
      int cb = tolower((unsigned char)b[j - 1]);
      size_t best = p[j - 1] + (ca != cb);
      if (p[j] + 1 < best) best = p[j] + 1;
      if (c[j - 1] + 1 < best) best = c[j - 1] + 1;
      if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) && tolower((unsigned char)a[i - 2]) == cb &&
          pp[j - 2] + 1 < best)
        best = pp[j - 2] + 1;
      c[j] = best;
    }
    size_t *t = pp;
    pp = p, p = c, c = t;
  }
  return p[lb];
}

const char *rt_nearest(const char *word, const char *const *cands, size_t n) {
  size_t limit = strlen(word) / 3 > 2 ? strlen(word) / 3 : 2, best = limit + 1;
  const char *pick = NULL;
  for (size_t i = 0; i < n; i++) {
    size_t d = rt_edit_distance(word, cands[i]);
    if (d < best) best = d, pick = cands[i];
  }
  return pick;
}

int rt_read_file(const char *path, char **out, size_t *len, rt_err *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return rt_err_set(err, RT_ERR_INPUT, "cannot open %s: %s", path, strerror(errno));
  size_t cap = 4096, n = 0;
  char *buf = rt_xmalloc(cap);
  size_t r;
  while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += r;
    if (cap - n - 1 == 0) buf = rt_xrealloc(buf, cap *= 2);
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return rt_err_set(err, RT_ERR_INPUT, "cannot read %s: I/O error", path);
  }
  buf[n] = '\0';
  *out = buf;
  if (len) *len = n;
  return RT_OK;
}

int rt_fsync_dir_of(const char *path, rt_err *err) {
  char dcopy[4096];
  snprintf(dcopy, sizeof dcopy, "%s", path);
  int fd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int rc = fd < 0 ? -1 : fsync(fd);
  int e = errno;
  if (fd >= 0) close(fd);
  if (rc != 0) return rt_err_set(err, RT_ERR_OUTPUT, "cannot fsync the directory of %s: %s", path, strerror(e));
  return RT_OK;
}

int rt_write_file_atomic(const char *path, const void *data, size_t len, rt_err *err) {
  rt_atomic_file af;
  int rc = rt_atomic_open(&af, path, err);
  if (rc) return rc;
  rc = rt_atomic_write(&af, data, len, err);
  if (rc) {
    rt_atomic_abort(&af);
    return rc;
  }
  return rt_atomic_commit(&af, err);
}

int rt_atomic_open(rt_atomic_file *af, const char *path, rt_err *err) {
  memset(af, 0, sizeof *af);
  if ((size_t)snprintf(af->path, sizeof af->path, "%s", path) >= sizeof af->path ||
      (size_t)snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof af->tmp) {
    af->tmp[0] = '\0';
    return rt_err_set(err, RT_ERR_OUTPUT, "path too long: %s", path);
  }
  af->f = fopen(af->tmp, "wbe");
  if (!af->f) {
    int e = errno;
    af->tmp[0] = '\0';
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot create %s.tmp.%ld: %s (check that the directory exists and is "
                      "writable)", path, (long)getpid(), strerror(e));
  }
  return RT_OK;
}

int rt_atomic_write(rt_atomic_file *af, const void *data, size_t len, rt_err *err) {
  if (len && fwrite(data, 1, len, af->f) != len)
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot write %s: %s (check free space)", af->tmp,
                      strerror(errno ? errno : EIO));
  return RT_OK;
}

int rt_atomic_commit(rt_atomic_file *af, rt_err *err) {
  int rc = RT_OK;
  if (ferror(af->f) || fflush(af->f) != 0)
    rc = rt_err_set(err, RT_ERR_OUTPUT, "cannot write %s: %s (check free space)", af->tmp,
                    strerror(errno ? errno : EIO));
  else if (fsync(fileno(af->f)) != 0)
    rc = rt_err_set(err, RT_ERR_OUTPUT, "cannot fsync %s: %s", af->tmp, strerror(errno));
  if (fclose(af->f) != 0 && rc == RT_OK)
    rc = rt_err_set(err, RT_ERR_OUTPUT, "cannot close %s: %s", af->tmp, strerror(errno));
  af->f = NULL;
  if (rc == RT_OK && rename(af->tmp, af->path) != 0)
    rc = rt_err_set(err, RT_ERR_OUTPUT, "cannot rename %s to %s: %s", af->tmp, af->path, strerror(errno));
  if (rc) {
    rt_atomic_abort(af);
    return rc;
  }
  af->tmp[0] = '\0';
  return rt_fsync_dir_of(af->path, err);
}

void rt_atomic_abort(rt_atomic_file *af) {
  if (af->f) fclose(af->f);
  af->f = NULL;
  if (af->tmp[0]) unlink(af->tmp);
  af->tmp[0] = '\0';
}

long rt_peak_rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
  fclose(f);
  return kb;
}

void rt_test_pause(const char *point) {
  const char *want = getenv("RAGTIDE_TEST_PAUSE");
  if (!want || strcmp(want, point) != 0) return;
  fprintf(stderr, "ragtide: paused at %s (RAGTIDE_TEST_PAUSE), pid %ld\n", point, (long)getpid());
  const char *f = getenv("RAGTIDE_TEST_PAUSE_FILE");
  if (f && *f) {
    FILE *fp = fopen(f, "w");
    if (fp) {
      fprintf(fp, "%ld\n", (long)getpid());
      fclose(fp);
    }
  }
  for (int i = 0; i < 1200; i++) { /* 120 s; the test kills us long before */
    struct timespec ts = {0, 100000000L};
    nanosleep(&ts, NULL);
  }
}

int rt_mkdir_parent(const char *path) {
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  char *slash = strrchr(buf, '/');
  if (!slash || slash == buf) return 0;
  *slash = '\0';
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
  return 0;
}

int rt_find_shipped(const char *path, char *out, size_t cap) {
  snprintf(out, cap, "%s", path);
  if (!*path || path[0] == '/' || access(path, F_OK) == 0) return 0;
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return 0;
  exe[n] = '\0';
  char *slash = strrchr(exe, '/');
  if (!slash) return 0;
  *slash = '\0'; /* the binary's directory */
  const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  static const char *const where[] = {"%s/../share/ragtide/prompts/%s", "%s/../jobs/prompts/%s"};
  for (size_t i = 0; i < sizeof where / sizeof *where; i++) {
    char cand[8192];
    snprintf(cand, sizeof cand, where[i], exe, name);
    if (access(cand, R_OK) == 0) {
      snprintf(out, cap, "%s", cand);
      return 1;
    }
  }
  return 0;
}
