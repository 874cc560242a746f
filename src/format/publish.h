/* publish.h — publishing a transition table with rollback.
 *
 * Owns: the on-disk rotation of published tables. The served path always
 * names a complete, verified table; the K previous ones are kept beside it as
 * PATH.1 (newest) .. PATH.K (oldest). Nothing is ever rewritten in place, so a
 * process that has a table open keeps reading its (old) inode undisturbed.
 * Layer 0: no MPI, no curl. */
#ifndef RT_FORMAT_PUBLISH_H
#define RT_FORMAT_PUBLISH_H

#include <ragtide/table.h>

#include "base/err.h"

/* Serialize b and publish it at path:
 *   1. write PATH.tmp.PID, fsync (a failure here leaves PATH and its
 *      backups byte-identical and removes the temp file);
 *   2. rotate backups: delete PATH.K, PATH.i -> PATH.i+1, then hard-link PATH
 *      as PATH.1 (link, not rename, so PATH is never missing);
 *   3. rename the temp file over PATH; fsync the directory.
 * keep = number of previous tables kept (0 keeps none, max 99). Returns
 * RT_OK, RT_ERR_OUTPUT (with the file and errno) or RT_ERR_NOMEM. */
int rt_table_publish(ragtide_table_builder *b, const char *path, int keep, rt_err *err);

/* Same, for an already serialized file image (used by tests and tools). */
int rt_table_publish_bytes(const void *data, size_t len, const char *path, int keep, rt_err *err);

/* Remove what runs that died left beside PATH: files named PATH.<...> with
 * a ".new.PID" or ".tmp.PID" part whose every PID is no live process (a
 * temp table, summary, contexts or journal being replaced). Call only while
 * holding PATH's lock (format/lock.h): no live writer then. *removed counts
 * them. Returns -1 when the directory cannot be read. */
int rt_table_sweep(const char *path, int *removed);

/* Restore PATH.1 as PATH and shift PATH.2.. down by one. PATH.1 is verified
 * first (ragtide_table_open); an invalid or missing PATH.1 is refused with
 * RT_ERR_TABLE and nothing changes. The table being replaced is kept as
 * PATH.rolledback (one level, overwritten by the next rollback) so a mistaken
 * rollback can be undone by hand. */
int rt_table_rollback(const char *path, rt_err *err);

#endif
