/* err.h — status codes and the error record every function fills.
 *
 * Owns: the rt_status codes (which are also the process exit codes, see
 * README "Exit codes") and rt_err, a fixed-size message buffer that a failing
 * function fills with what failed, where (file:line, byte offset, URL, pair)
 * and what to do. Secrets registered with rt_secret_add() are redacted from
 * every message set here, so an error can be printed as is. */
#ifndef RT_BASE_ERR_H
#define RT_BASE_ERR_H

#include <stddef.h>

typedef enum rt_status {
  RT_OK = 0,
  RT_ERR_INTERNAL = 1,  /* a bug or an unexpected system failure */
  RT_ERR_USAGE = 2,     /* bad command line, config file or config value */
  RT_ERR_INPUT = 3,     /* bad input data: catalog, log shard, counts, template */
  RT_ERR_ENDPOINT = 4,  /* LLM endpoint unreachable or error budget exceeded */
  RT_ERR_GATE = 5,      /* a quality gate halted the run before publishing */
  RT_ERR_OUTPUT = 6,    /* the table, summary or run directory could not be written */
  RT_ERR_TABLE = 7,     /* a table file is missing, corrupt or of an unknown version */
  RT_ERR_NOMEM = 8,     /* out of memory (or over memory.per_rank_mb) */
  RT_ERR_INTERRUPTED = 9, /* stopped by a signal (or a deadline): journal flushed, nothing
                           * published; rerunning the same command resumes */
  RT_ERR_LOCKED = 10,   /* another live run holds the table's lock */
  RT_ERR_STALE = 11,    /* not published: the served table's window ends later (--force) */
  RT_ERR_RECALL = 12,   /* recall gate: hit rate on the held-out days below gates.min_recall */
  RT_ERR_COVERAGE = 13, /* coverage gate: rag+base pairs below gates.min_coverage_ratio of the served table's */
} rt_status;

#define RT_ERR_MSG_MAX 1024

typedef struct rt_err {
  int code;                 /* rt_status; RT_OK when nothing failed */
  char msg[RT_ERR_MSG_MAX]; /* one line, no trailing newline, secrets redacted */
} rt_err;

/* Set err (may be NULL) to code and a printf-style message; returns code so
 * callers can write `return rt_err_set(err, RT_ERR_INPUT, "...")`. */
int rt_err_set(rt_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix an existing message with context ("reading shard X: " + old msg). */
int rt_err_wrap(rt_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Register a secret (an API key): it is replaced by "[REDACTED]" in every
 * rt_err message and log line from now on. Copies the string, and calls
 * rt_secret_guard(). */
void rt_secret_add(const char *secret);
/* Keep secrets out of core dumps: make the process non-dumpable
 * (prctl(PR_SET_DUMPABLE, 0)) for the rest of its life. A key has copies we
 * cannot mark MADV_DONTDUMP (the environment, argv, libcurl's request
 * buffers), so the whole process goes: a crash of a process that holds a key
 * leaves no core. Idempotent; logs once at debug level. */
void rt_secret_guard(void);
/* Replace every registered secret in buf (NUL-terminated, cap bytes of
 * storage) in place, truncating the tail if the result would not fit. */
void rt_redact(char *buf, size_t cap);

#endif
