/* util.h — small helpers shared by every layer: checked allocation, a growable
 * array, hashing, time and file utilities. Nothing here knows about MPI. */
#ifndef RT_BASE_UTIL_H
#define RT_BASE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"

/* Allocation that never returns NULL: on failure prints what was asked for and
 * exits with RT_ERR_NOMEM (an OOM is not recoverable mid-stage). */
void *rt_xmalloc(size_t n);
void *rt_xcalloc(size_t n, size_t size);
void *rt_xrealloc(void *p, size_t n);
/* Append n bytes to the growable, NUL-terminated buffer (*buf, *len, *cap),
 * doubling its storage from first_cap bytes. 0, or -1 with nothing appended
 * when *len would pass max (a response or body over its bound). */
int rt_buf_append(char **buf, size_t *len, size_t *cap, const void *p, size_t n, size_t max, size_t first_cap);
char *rt_xstrdup(const char *s);

/* Growable array of elements of one type: RT_VEC(uint64_t) v = {0};
 * rt_vec_push(&v, x); v.data[i]; v.len; free(v.data). */
#define RT_VEC(T) struct { T *data; size_t len, cap; }
#define rt_vec_reserve(v, n)                                                    \
  do {                                                                         \
    if ((n) > (v)->cap) {                                                      \
      size_t nc_ = (v)->cap ? (v)->cap : 16;                                   \
      while (nc_ < (n)) nc_ *= 2;                                              \
      (v)->data = rt_xrealloc((v)->data, nc_ * sizeof *(v)->data);             \
      (v)->cap = nc_;                                                          \
    }                                                                          \
  } while (0)
#define rt_vec_push(v, x)                                                       \
  do {                                                                         \
    rt_vec_reserve((v), (v)->len + 1);                                         \
    (v)->data[(v)->len++] = (x);                                               \
  } while (0)

/* Trim ASCII white space at both ends, in place; returns s. */
char *rt_trim(char *s);

/* Edit distance (optimal string alignment: insertions, deletions,
 * substitutions and adjacent transpositions cost 1), case-insensitive. */
size_t rt_edit_distance(const char *a, const char *b);
/* The candidate nearest to `word` for a "did you mean" hint, or NULL when
 * none is close: within a third of the word's length (at least 2) edits.
 * Ties go to the first candidate. */
const char *rt_nearest(const char *word, const char *const *cands, size_t n);

/* Hashing: splitmix64 finalizer (fast, well mixed; used for ownership maps,
 * so it must never change without a format/plan version bump). */
static inline uint64_t rt_mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
/* 64-bit FNV-1a over bytes, for stable string hashes (template, config). */
uint64_t rt_hash_bytes(const void *p, size_t n);

/* Seconds on a monotonic clock, for stage timings. */
double rt_now(void);

/* Parse a UTC date "YYYY-MM-DD" or timestamp "YYYY-MM-DDTHH:MM:SSZ" into unix
 * seconds. Returns 0 on success, -1 if malformed. */
int rt_parse_utc(const char *s, int64_t *out);
/* Format unix seconds as "YYYY-MM-DDTHH:MM:SSZ" into buf (>= 21 bytes). */
void rt_format_utc(int64_t t, char *buf, size_t cap);

/* Read a whole file into a NUL-terminated malloc'ed buffer. */
int rt_read_file(const char *path, char **out, size_t *len, rt_err *err);

/* fsync the directory holding path, so a rename or create in it is durable. */
int rt_fsync_dir_of(const char *path, rt_err *err);

/* Write data to path atomically and durably: path.tmp.<pid>, fsync, rename
 * over path, fsync the directory. A reader that has the old file open keeps
 * it; a failure leaves an existing file at path untouched (RT_ERR_OUTPUT
 * naming the file and errno). The one implementation for the tools (src/base
 * depends on nothing above it; libragtide has its own for the builder). */
int rt_write_file_atomic(const char *path, const void *data, size_t len, rt_err *err);

/* The same, streamed: rt_atomic_open creates path.tmp.<pid>; write with
 * rt_atomic_write or stdio on af->f (fprintf, fwrite); rt_atomic_commit
 * checks the stream, fsyncs, renames over path and fsyncs the directory (and
 * removes the temp file if any of that fails); rt_atomic_abort closes and
 * removes the temp file. Messages name the temp file and errno. */
typedef struct rt_atomic_file {
  FILE *f;
  char path[4096], tmp[4200]; /* tmp is "" once committed */
} rt_atomic_file;
int rt_atomic_open(rt_atomic_file *af, const char *path, rt_err *err);
int rt_atomic_write(rt_atomic_file *af, const void *data, size_t len, rt_err *err);
int rt_atomic_commit(rt_atomic_file *af, rt_err *err);
void rt_atomic_abort(rt_atomic_file *af);

/* Peak resident set size of this process in kilobytes (VmHWM). */
long rt_peak_rss_kb(void);

/* Create the directory that will hold `path` (a file), and its parents,
 * like `mkdir -p "$(dirname path)"`. 0 on success (or if it exists), -1 with
 * errno set. */
int rt_mkdir_parent(const char *path);

/* A file shipped with ragtide given as a relative path such as
 * "jobs/prompts/rag.tmpl" (the defaults are written so): when it does not
 * exist relative to the working directory, look for its name where an
 * installed or built ragtide keeps it, relative to the running binary:
 * BIN/../share/ragtide/prompts/NAME (cmake --install) and
 * BIN/../jobs/prompts/NAME (the binary in the build tree of a checkout).
 * Writes the path found into out and returns 1; returns 0 (out = path)
 * when nothing else exists, so the caller's error names the path asked for. */
int rt_find_shipped(const char *path, char *out, size_t cap);

/* Crash tests only: when the environment variable RAGTIDE_TEST_PAUSE names
 * `point`, say "paused at POINT" on stderr (and create the file named by
 * RAGTIDE_TEST_PAUSE_FILE, if set, holding the pid), then sleep up to 120 s so the test can
 * kill the process at exactly that moment (tests/scripts/resume.sh). A
 * no-op otherwise. Points: "aggregate" (events read, before counting),
 * "publish" (new table on disk, backups rotated, not yet renamed). */
void rt_test_pause(const char *point);

#endif
