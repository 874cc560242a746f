/* resume.h — what a resumed run keeps of its first attempt.
 *
 * Owns: TABLE.resume, a few `key=value` lines written by rank 0 when a
 * refresh starts and removed when it ends, unless it was interrupted (exit
 * 9) or killed. The next attempt of the same job (same configuration but for
 * the window) finds it and keeps the first attempt's window and created-at
 * time, so a requeued nightly run that starts after midnight still builds
 * the table of the night it was meant for, and its requests (whose prompts
 * depend on the window) are the ones already answered in the journal.
 * Layer 0: no MPI. */
#ifndef RT_FORMAT_RESUME_H
#define RT_FORMAT_RESUME_H

#include <stdint.h>

#include "base/err.h"

typedef struct rt_resume {
  uint64_t config_hash;   /* rt_config_hash with the window and created-at left out */
  int64_t window_start, window_end, created_at;
  int64_t first_started;  /* unix seconds the first attempt started */
  int64_t attempt;        /* 1 for the first attempt */
  char run_id[64];
} rt_resume;

/* 1 and *out filled when path holds a complete state; 0 when there is none
 * or it is unreadable (then the run starts afresh, which is always safe:
 * the journal still saves every answer paid for). */
int rt_resume_load(const char *path, rt_resume *out);

/* Write atomically (temp file, fsync, rename). RT_ERR_OUTPUT on failure. */
int rt_resume_save(const char *path, const rt_resume *r, rt_err *err);

#endif
