/* lock.h — one run per table: a lock file beside it.
 *
 * Owns: TABLE.lock, created with O_CREAT|O_EXCL (atomic on local disks and
 * on NFSv3+ shared filesystems, unlike flock/fcntl locks, which some shared
 * filesystems do not propagate). It holds one line naming the holder:
 *   host=H pid=P run_id=R started=YYYY-MM-DDTHH:MM:SSZ
 * and its modification time is the holder's heartbeat (refreshed every
 * RT_LOCK_HEARTBEAT_S seconds by a thread of the holder).
 *
 * A lock is stale — and is taken over, with a warning naming the dead
 * holder — when its holder is on this host and its pid is gone, or when its
 * heartbeat is older than stale_s (a holder on another host that died).
 * Take-over renames the stale file away first, so two runs that both find
 * it stale cannot both win. Layer 0: no MPI. */
#ifndef RT_FORMAT_LOCK_H
#define RT_FORMAT_LOCK_H

#include <stdint.h>

#include "base/err.h"

#define RT_LOCK_HEARTBEAT_S 30

typedef struct rt_lock rt_lock;

/* Take the lock of table `table` (file table + ".lock") for run_id.
 * RT_ERR_LOCKED when a live run holds it (the message names its host, pid,
 * run id and start time, and the file); RT_ERR_OUTPUT when the file cannot
 * be created. stale_s: heartbeat age after which a holder on another host is
 * presumed dead. */
int rt_lock_acquire(const char *table, const char *run_id, int64_t stale_s, rt_lock **out, rt_err *err);

/* Release (remove the file if it is still ours) and free. NULL is a no-op. */
void rt_lock_release(rt_lock *l);

#endif
