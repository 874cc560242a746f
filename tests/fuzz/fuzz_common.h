/* fuzz_common.h — helpers shared by the libFuzzer targets (tests/fuzz/).
 *
 * Most parsers take a path: the input is written to a per-process scratch
 * file under /dev/shm (tmpfs, so a write per execution costs microseconds)
 * whose name ends as the parser needs (".msgpack.zst", ".tsv", ...).
 * Nothing here may exit: a parser that exits on bad input is a finding. */
#ifndef RT_FUZZ_COMMON_H
#define RT_FUZZ_COMMON_H
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fz_dir_buf[128];

/* Remove the scratch directory at exit (a crash leaves it, beside its artifact). */
static void fz_cleanup(void) {
  DIR *d = opendir(fz_dir_buf);
  if (!d) return;
  struct dirent *e;
  char p[512];
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    snprintf(p, sizeof p, "%s/%s", fz_dir_buf, e->d_name);
    unlink(p);
  }
  closedir(d);
  rmdir(fz_dir_buf);
}

/* The scratch directory of this process (created once). */
static inline const char *fz_dir(void) {
  if (!fz_dir_buf[0]) {
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fz_dir_buf, sizeof fz_dir_buf, "%s/ragtide-fuzz-%ld", base, (long)getpid());
    mkdir(fz_dir_buf, 0700);
    atexit(fz_cleanup);
  }
  return fz_dir_buf;
}

/* dir/name, in a static buffer per slot (0..3). */
static inline const char *fz_path(int slot, const char *name) {
  static char buf[4][256];
  snprintf(buf[slot & 3], sizeof buf[0], "%s/%s", fz_dir(), name);
  return buf[slot & 3];
}

/* Write data to path (truncating); returns 0 or -1. Aborts the target only
 * when the scratch file cannot be written at all (a harness problem). */
static inline int fz_write(const char *path, const uint8_t *data, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    perror(path);
    abort();
  }
  size_t off = 0;
  while (off < n) {
    ssize_t w = write(fd, data + off, n - off);
    if (w <= 0) {
      perror(path);
      abort();
    }
    off += (size_t)w;
  }
  close(fd);
  return 0;
}

/* The message of a failed parse must be one NUL-terminated line: touching
 * every byte lets ASan see a missing terminator. */
static inline void fz_check_msg(const char *msg, size_t cap) {
  size_t l = strnlen(msg, cap);
  if (l == cap) abort(); /* not terminated */
  volatile size_t nl = 0;
  for (size_t i = 0; i < l; i++) nl += msg[i] == '\n';
  (void)nl;
}
#endif
