/* stop.c — signal flags, and the stop announcement between ranks. */
#include "pipeline/stop.h"

#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/util.h"

static volatile sig_atomic_t got_signal; /* first signal's number */
static struct timespec first_at;         /* when it came */
static int remote;                       /* another rank announced a stop: its signal */
static int remote_rank = -1;             /* ... and which rank */
static int announced;                    /* this rank told the others */
static int installed, armed;
static double last_probe;
static MPI_Request *sends;
static int nsends;

/* The same stop often arrives twice within a moment: Ctrl-C signals the
 * whole foreground process group (mpirun and the ranks), and mpirun then
 * passes its own signal on. Only a second signal a while after the first is
 * the operator insisting. */
#define RT_STOP_REPEAT_S 2

static void on_signal(int sig) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now); /* async-signal-safe */
  if (got_signal && now.tv_sec - first_at.tv_sec < RT_STOP_REPEAT_S) return;
  if (got_signal) {
    /* Second signal: stop at once. write(2) and _exit are async-signal-safe;
     * the journal's records are whole or torn at the tail, never corrupt. */
    static const char msg[] = "ragtide: second signal: stopping at once (exit 9, resumable)\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(RT_ERR_INTERRUPTED);
  }
  first_at = now;
  got_signal = sig;
}

void rt_stop_install(void) {
  if (installed) return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART; /* reads and writes go on; epoll_wait still wakes (EINTR) */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);
  installed = 1;
  armed = 1;
}

int rt_stop_requested(void) { return got_signal ? (int)got_signal : remote ? RT_STOP_REMOTE : 0; }

static int mpi_usable(void) {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  if (init) MPI_Finalized(&fin);
  return init && !fin;
}

/* Receive every announcement that has arrived; the first names the stop. */
static void receive_all(void) {
  for (;;) {
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, RT_STOP_TAG, MPI_COMM_WORLD, &flag, &st);
    if (!flag) return;
    char b;
    MPI_Recv(&b, 1, MPI_CHAR, st.MPI_SOURCE, RT_STOP_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (!remote) remote = b ? b : SIGTERM, remote_rank = st.MPI_SOURCE;
  }
}

int rt_stop_poll(void) {
  if (!mpi_usable()) return rt_stop_requested();
  int size, rank;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (size > 1 && got_signal && !announced) {
    static char sig;
    sig = (char)got_signal;
    announced = 1;
    sends = rt_xcalloc((size_t)size, sizeof *sends);
    for (int r = 0; r < size; r++) {
      sends[r] = MPI_REQUEST_NULL;
      if (r != rank) MPI_Isend(&sig, 1, MPI_CHAR, r, RT_STOP_TAG, MPI_COMM_WORLD, &sends[r]);
    }
    nsends = size;
  }
  double now = rt_now();
  if (size > 1 && now - last_probe >= 0.02) {
    last_probe = now;
    receive_all();
  }
  return rt_stop_requested();
}

void rt_stop_arm(int a) { armed = a; }
int rt_stop_armed(void) { return installed && armed; }

static const char *signame(int sig) {
  switch (sig) {
  case SIGTERM: return "SIGTERM";
  case SIGINT: return "SIGINT";
  case SIGUSR1: return "SIGUSR1";
  default: return "a stop request";
  }
}

const char *rt_stop_name(int sig) {
  if (sig != RT_STOP_REMOTE) return signame(sig);
  static char buf[64];
  snprintf(buf, sizeof buf, "%s on rank %d", signame(remote), remote_rank);
  return buf;
}

void rt_stop_finish(void) {
  if (!mpi_usable()) return;
  if (nsends) MPI_Waitall(nsends, sends, MPI_STATUSES_IGNORE);
  free(sends);
  sends = NULL;
  nsends = 0;
  /* Every rank that announced did so before the final agreement, which
   * every rank passed: its messages have arrived or are arriving; a probe
   * receives what is there (an unreceived eager message is harmless). */
  last_probe = 0;
  int size;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size > 1) receive_all();
}
