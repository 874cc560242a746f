/* stop.h — a graceful stop, asked by a signal to any rank (or to mpirun,
 * which passes it on), seen by every rank.
 *
 * Owns: the handlers of SIGTERM, SIGINT and SIGUSR1, and the word that goes
 * from the rank that got the signal to all the others. The first signal only
 * sets a flag: the job stops dispatching work, lets what is in flight finish
 * (job.grace_s), flushes the answer journal, writes its summary and exits
 * with RT_ERR_INTERRUPTED (9) — resumable. A second signal (2 s or more
 * after the first: the same stop often arrives twice at once, directly and
 * through mpirun) exits at once with the same code: every answer is written
 * to the journal as it arrives and its tail is torn-safe, so that is safe.
 *
 * Why point-to-point and not a collective: the ranks are in their LLM loops
 * at different times and must not wait for each other to learn of a stop. A
 * rank that sees its own flag sends one tiny message (tag RT_STOP_TAG on
 * MPI_COMM_WORLD) to every other rank; the others probe for it, at most
 * every 20 ms, from rt_stop_poll. rt_agree() folds the stop into its result
 * while the stop is armed, so stages 1–5 end at their next agreement.
 *
 * Only the main thread calls these (MPI_THREAD_FUNNELED). */
#ifndef RT_PIPELINE_STOP_H
#define RT_PIPELINE_STOP_H

#include "base/tags.h"

/* The announcement's tag on MPI_COMM_WORLD (base/tags.h). */
#define RT_STOP_TAG RT_TAG_STOP

/* Install the handlers (idempotent). After MPI_Init: Open MPI installs some
 * handlers of its own at init, none of these three. */
void rt_stop_install(void);

/* The signal that asked for a stop on this rank, or RT_STOP_REMOTE when
 * another rank announced one, or 0. No MPI: safe anywhere. */
#define RT_STOP_REMOTE (-1)
int rt_stop_requested(void);

/* Announce a local stop to the other ranks (once) and receive theirs;
 * returns rt_stop_requested(). Cheap: probes at most every 20 ms. */
int rt_stop_poll(void);

/* While armed (the default after install), rt_agree turns an OK into
 * RT_ERR_INTERRUPTED once a stop was requested. Disarm once the run is past
 * the point of no return (publishing), so a late signal cannot make a
 * published run report an interruption. */
void rt_stop_arm(int armed);
int rt_stop_armed(void);

/* "SIGTERM", "SIGINT", "SIGUSR1", or for RT_STOP_REMOTE "SIGTERM on rank 3"
 * (the signal and the rank that got it) — for messages and the summary. */
const char *rt_stop_name(int sig);

/* Before MPI_Finalize: complete the announcements and receive the ones not
 * yet received, so no message is left pending. */
void rt_stop_finish(void);

#endif
