/* answers.h — the append-only answer journal: the response cache that makes
 * refreshes incremental (a request already answered is not sent again).
 *
 * Owns: the journal file (docs/formats.md §5) and its in-memory index
 * key -> latest answer. A record is (key, day, answer text), framed with its
 * length and an XXH3-64 checksum, so a crash mid-append loses at most the
 * torn last record: open detects it, truncates it away and counts the bytes.
 * One writer per file at a time (each rank keeps its own journal or rank 0
 * owns it); readers of other processes must not append. Layer 0: no MPI. */
#ifndef RT_FORMAT_ANSWERS_H
#define RT_FORMAT_ANSWERS_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define RT_ANSWERS_MAX_TEXT (16u << 20) /* longer answers are refused by put */

typedef struct rt_answers rt_answers;

typedef struct rt_answers_stats {
  uint64_t records_loaded; /* valid records read at open (all, not only latest) */
  uint64_t keys;           /* distinct keys in the index */
  uint64_t torn_bytes;     /* bytes dropped from the tail at open (torn/corrupt) */
  uint64_t appended;       /* records put since open */
} rt_answers_stats;

/* The cache key of a request: XXH3-64 of model id, a NUL, and the exact
 * request body. Changing the model, prompt or parameters changes the key. */
uint64_t rt_answers_key(const char *model, const void *body, size_t len);

/* Open (creating if missing) the journal at path and load its index. A torn
 * or corrupt tail is truncated (logged, counted in torn_bytes). Errors:
 * RT_ERR_OUTPUT (cannot open/create/truncate), RT_ERR_INPUT (not a journal). */
int rt_answers_open(const char *path, rt_answers **out, rt_err *err);

/* An index in memory only, with no file (put indexes, nothing is written):
 * to read a journal someone else writes, through rt_answers_absorb. */
rt_answers *rt_answers_new_memory(void);

/* Latest answer of key: returns 1 and sets *text (NUL-terminated, owned by
 * the journal, valid until rt_answers_compact or rt_answers_close) and *day
 * (either may be NULL), or returns 0 when the key has no answer. */
int rt_answers_get(const rt_answers *j, uint64_t key, const char **text, uint32_t *day);

/* Append a record (buffered; visible to get at once). RT_ERR_OUTPUT on a
 * write error, RT_ERR_INPUT for text longer than RT_ANSWERS_MAX_TEXT. */
int rt_answers_put(rt_answers *j, uint64_t key, uint32_t day, const char *text, rt_err *err);

/* Write buffered records and fsync: after it returns RT_OK they survive a crash. */
int rt_answers_flush(rt_answers *j, rt_err *err);

/* Write buffered records to the file without fsync: after it returns RT_OK
 * they survive the process being killed (not a machine crash). Cheap enough
 * to call after every answer: one write(2). */
int rt_answers_write(rt_answers *j, rt_err *err);

/* Append to dst every key's latest record of the journal file at src_path
 * that dst does not already hold with the same text (repairing a torn tail
 * of src is not needed: only whole records are read). *added (may be NULL)
 * counts the records appended. A missing src is not an error (0 added).
 * RT_ERR_INPUT when src is not a journal, RT_ERR_OUTPUT on a write error. */
int rt_answers_absorb(rt_answers *dst, const char *src_path, uint64_t *added, rt_err *err);

/* Rewrite the file keeping only the latest record per key (temp file, fsync,
 * rename, fsync dir): a crash leaves either the old or the new journal.
 * Invalidates text pointers returned by rt_answers_get. */
int rt_answers_compact(rt_answers *j, rt_err *err);

rt_answers_stats rt_answers_get_stats(const rt_answers *j);

/* Call fn for every key's latest record, in first-seen key order (a
 * forgotten key's text is ""). Stops early when fn returns nonzero. */
void rt_answers_foreach(const rt_answers *j, int (*fn)(void *ud, uint64_t key, uint32_t day, const char *text),
                        void *ud);

/* Flush (as rt_answers_flush) and free. Returns the flush status; j is freed
 * in any case. NULL is a no-op. */
int rt_answers_close(rt_answers *j, rt_err *err);

#endif
