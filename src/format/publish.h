/* publish.h — publishing a transition table with rollback.
 *
 * Owns: the on-disk rotation of published tables. The served path always
 * names a complete, verified table; the K previous ones are kept beside it as
 * PATH.1 (newest) .. PATH.K (oldest), each with its side files (summary,
 * contexts) under the same index. Nothing is ever rewritten in place, so a
 * process that has a table open keeps reading its (old) inode undisturbed.
 * Layer 0: no MPI, no curl. */
#ifndef RT_FORMAT_PUBLISH_H
#define RT_FORMAT_PUBLISH_H

#include <ragtide/table.h>

#include "base/err.h"

/* A file published with the table as one generation: its summary, its
 * contexts. It is rotated exactly like the table (FILE.1 .. FILE.K), so
 * backup i of the table and backup i of each side file describe the same
 * run, and rollback moves them together. */
typedef struct rt_pub_side {
  const char *path; /* served name, e.g. TABLE.summary.json */
  const void *data; /* NULL: this generation has no such file (the served one only moves to backup 1) */
  size_t len;
} rt_pub_side;

/* Publishing in two steps, so the caller can verify the staged table (and
 * describe it in the side files) before anything served changes:
 *   rt_table_stage: serialize b to PATH.new.PID, fsynced; *staged = that
 *     name (malloc'ed). Nothing served changes.
 *   rt_table_commit: write each side file to SIDE.new.PID (fsynced; one the
 *     generation lacks as an empty SIDE.new.PID.none marker); rotate
 *     the backups of the table and of every side file (delete FILE.K,
 *     FILE.i -> FILE.i+1, hard-link FILE as FILE.1: link, not rename, so
 *     FILE is never missing); rename the staged table over PATH, then each
 *     side file over its name; fsync the directory. A failure before the
 *     table's rename removes the staged files and leaves everything served
 *     as it was.
 * keep = number of previous generations kept (0..99). RT_OK, RT_ERR_OUTPUT
 * (with the file and errno) or RT_ERR_NOMEM. */
int rt_table_stage(ragtide_table_builder *b, const char *path, char **staged, rt_err *err);
int rt_table_stage_bytes(const void *data, size_t len, const char *path, char **staged, rt_err *err);
int rt_table_commit(const char *staged, const char *path, int keep, const rt_pub_side *side, size_t nside,
                    rt_err *err);

/* Stage and commit with no side files. */
int rt_table_publish(ragtide_table_builder *b, const char *path, int keep, rt_err *err);
int rt_table_publish_bytes(const void *data, size_t len, const char *path, int keep, rt_err *err);

/* Clean up after runs that died beside PATH: files named PATH.<...> with a
 * ".new.PID" or ".tmp.PID" part whose every PID is no live process (a temp
 * table, summary, contexts or journal being replaced). A side file staged
 * by a publish that died after renaming its table (PATH.SIDE.new.PID with
 * PATH.new.PID gone) is renamed into place, completing that publish (a
 * PATH.SIDE.new.PID.none marker, staged for a side file the generation
 * lacks, removes PATH.SIDE instead); every other one is removed. Call only
 * while holding PATH's lock (format/lock.h): no live writer then. *removed
 * counts the removed ones. Returns -1 when the directory cannot be read. */
int rt_table_sweep(const char *path, int *removed);

/* Serve generation n again: PATH.n becomes PATH and PATH..PATH.n-1 move
 * down to PATH.1..PATH.n, and the same for each side file (those a
 * generation lacks stay absent). Nothing is lost, so a rollback undoes
 * itself: n = 1 swaps the served generation with the previous one, and a
 * second rollback swaps them back (a roll-forward). PATH.n is verified
 * first (ragtide_table_verify_file); a missing or invalid one is refused
 * with RT_ERR_TABLE and nothing changes. n out of 1..99: RT_ERR_USAGE. */
int rt_table_rollback(const char *path, int n, const char *const *side, size_t nside, rt_err *err);

#endif
