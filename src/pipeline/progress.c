/* progress.c — rank 0 asks (Ibcast), everyone answers (Ireduce), nobody waits.
 *
 * Sequence on the private communicator, identical on every rank:
 *   { Ibcast(flag = 1), Ireduce(counters) }*  Ibcast(flag = 0 | 2) [Reduce]
 * flag 2 ends with one last reduction, for the closing line of a stage that
 * took longer than the interval (a single long batch reports at least that).
 * Rank 0 starts a round when `interval` has passed; the others keep one
 * Ibcast posted and answer it when they next call rt_progress_update. */
#include "pipeline/progress.h"
#include "base/log.h"
#include "base/util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* 1234567 -> "1.23 M" (counts are easier to read at a glance). */
static void human(uint64_t v, char *buf, size_t cap) {
  if (v >= 10000000000ULL) snprintf(buf, cap, "%.2f G", (double)v / 1e9);
  else if (v >= 10000000ULL) snprintf(buf, cap, "%.2f M", (double)v / 1e6);
  else snprintf(buf, cap, "%llu", (unsigned long long)v);
}

/* Rate of counter 0 over the last minute (since the start, before a minute). */
static double recent_rate(rt_progress *p, double now) {
  int k = p->hist_head;
  p->hist_t[k] = now;
  p->hist_v[k] = p->sum[0];
  p->hist_head = (k + 1) % RT_PROGRESS_HIST;
  if (p->hist_n < RT_PROGRESS_HIST) p->hist_n++;
  double t0 = p->t_start;
  uint64_t v0 = 0;
  for (int i = 1; i < p->hist_n; i++) { /* oldest sample within the minute */
    int j = (k - i + RT_PROGRESS_HIST) % RT_PROGRESS_HIST;
    if (now - p->hist_t[j] > 60.0) break;
    t0 = p->hist_t[j];
    v0 = p->hist_v[j];
  }
  if (now - p->t_start <= 60.0) t0 = p->t_start, v0 = 0;
  return now > t0 && p->sum[0] >= v0 ? (double)(p->sum[0] - v0) / (now - t0) : 0;
}

static void report(rt_progress *p, int last) {
  double now = rt_now();
  double rate = recent_rate(p, now);
  char line[768], n0[32], tot[32], rt[32];
  int len = 0;
  human(p->sum[0], n0, sizeof n0);
  human((uint64_t)rate, rt, sizeof rt);
  const char *l0 = p->labels[0] ? p->labels[0] : "done";
  if (p->total) {
    uint64_t s = p->sum[0] < p->total ? p->sum[0] : p->total;
    human(p->total, tot, sizeof tot);
    len = snprintf(line, sizeof line, "%s: %.1f%% (%s of %s %s), %s/s", p->what,
                   100.0 * (double)s / (double)p->total, n0, tot, l0, rt);
  } else {
    len = snprintf(line, sizeof line, "%s: %s %s, %s/s", p->what, n0, l0, rt);
  }
  for (int i = 1; i < RT_PROGRESS_MAX && len < (int)sizeof line; i++) {
    if (!p->labels[i]) continue;
    char v[32];
    human(p->sum[i], v, sizeof v);
    len += snprintf(line + len, sizeof line - (size_t)len, ", %s %s", v, p->labels[i]);
  }
  if (p->total && !last && len < (int)sizeof line) {
    uint64_t left = p->total > p->sum[0] ? p->total - p->sum[0] : 0;
    if (rate > 0) len += snprintf(line + len, sizeof line - (size_t)len, ", about %.0f s left", (double)left / rate);
    else len += snprintf(line + len, sizeof line - (size_t)len, ", time left unknown");
  }
  if (p->tty) {
    /* one line, rewritten: \r, the line, clear to its end */
    fprintf(stderr, "\r[%s] %s\033[K%s", "ragtide", line, last ? "\n" : "");
    fflush(stderr);
  } else {
    rt_info("%s", line);
  }
}

void rt_progress_start(rt_progress *p, MPI_Comm comm, const char *what, uint64_t total, double interval) {
  memset(p, 0, sizeof *p);
  MPI_Comm_dup(comm, &p->comm);
  MPI_Comm_rank(p->comm, &p->rank);
  p->what = what;
  p->total = total;
  p->interval = interval;
  p->t_start = p->t_last = rt_now();
  p->req = p->reqs[0] = p->reqs[1] = MPI_REQUEST_NULL;
  p->tty = p->rank == 0 && isatty(2);
  if (p->rank != 0) MPI_Ibcast(&p->flag, 1, MPI_INT, 0, p->comm, &p->req); /* wait for rank 0's go */
}

void rt_progress_labels(rt_progress *p, const char *l0, const char *l1, const char *l2, const char *l3,
                        const char *l4, const char *l5) {
  const char *l[RT_PROGRESS_MAX] = {l0, l1, l2, l3, l4, l5};
  memcpy(p->labels, l, sizeof l);
}

/* Non-root: answer a completed go (flag 1) with a reduction, then re-arm. */
static void answer(rt_progress *p) {
  memcpy(p->mine, p->cur, sizeof p->mine);
  MPI_Ireduce(p->mine, p->sum, RT_PROGRESS_MAX, MPI_UINT64_T, MPI_SUM, 0, p->comm, &p->req);
  p->state = 1;
}

void rt_progress_update_v(rt_progress *p, const uint64_t *v) {
  memcpy(p->cur, v, sizeof p->cur);
  int ready = 0;
  if (p->rank == 0) {
    if (p->state == 0) {
      if (p->interval <= 0 || rt_now() - p->t_last < p->interval) return;
      p->flag = 1;
      MPI_Ibcast(&p->flag, 1, MPI_INT, 0, p->comm, &p->reqs[0]);
      memcpy(p->mine, p->cur, sizeof p->mine);
      MPI_Ireduce(p->mine, p->sum, RT_PROGRESS_MAX, MPI_UINT64_T, MPI_SUM, 0, p->comm, &p->reqs[1]);
      p->state = 1;
    }
    MPI_Testall(2, p->reqs, &ready, MPI_STATUSES_IGNORE);
    if (ready) {
      report(p, 0);
      p->reports++;
      p->t_last = rt_now();
      p->state = 0;
    }
    return;
  }
  if (p->state >= 2) return; /* rank 0 has already said it is finishing */
  MPI_Test(&p->req, &ready, MPI_STATUS_IGNORE);
  if (!ready) return;
  if (p->state == 0) {
    if (p->flag != 1) p->state = p->flag == 2 ? 3 : 2; /* rank 0 is finishing (3: a last reduction is due) */
    else answer(p);                                    /* rank 0's go */
  } else {            /* our answer went out: wait for the next go */
    p->state = 0;
    MPI_Ibcast(&p->flag, 1, MPI_INT, 0, p->comm, &p->req);
  }
}

void rt_progress_update(rt_progress *p, uint64_t done) {
  uint64_t v[RT_PROGRESS_MAX];
  memcpy(v, p->cur, sizeof v);
  v[0] = done;
  rt_progress_update_v(p, v);
}

void rt_progress_finish(rt_progress *p, uint64_t done) {
  p->cur[0] = done;
  if (p->rank == 0) {
    if (p->state == 1) MPI_Waitall(2, p->reqs, MPI_STATUSES_IGNORE); /* a round in flight */
    /* A stage longer than the interval closes with a line of its totals. */
    int last = p->interval > 0 && rt_now() - p->t_start >= p->interval;
    p->flag = last ? 2 : 0; /* nonblocking too: a blocking Bcast would not match the others' Ibcast */
    MPI_Ibcast(&p->flag, 1, MPI_INT, 0, p->comm, &p->reqs[0]);
    MPI_Wait(&p->reqs[0], MPI_STATUS_IGNORE);
    if (last) {
      memcpy(p->mine, p->cur, sizeof p->mine);
      MPI_Reduce(p->mine, p->sum, RT_PROGRESS_MAX, MPI_UINT64_T, MPI_SUM, 0, p->comm);
      report(p, 1);
      p->reports++;
    } else if (p->tty && p->reports) { /* end the rewritten line */
      fputc('\n', stderr);
      fflush(stderr);
    }
  } else {
    while (p->state < 2) {
      MPI_Wait(&p->req, MPI_STATUS_IGNORE);
      if (p->state == 1) { /* our answer completed: take the next broadcast */
        p->state = 0;
        MPI_Ibcast(&p->flag, 1, MPI_INT, 0, p->comm, &p->req);
        continue;
      }
      if (p->flag != 1) p->state = p->flag == 2 ? 3 : 2;
      else answer(p);
    }
    if (p->state == 3) {
      memcpy(p->mine, p->cur, sizeof p->mine);
      MPI_Reduce(p->mine, p->sum, RT_PROGRESS_MAX, MPI_UINT64_T, MPI_SUM, 0, p->comm);
    }
  }
  MPI_Comm_free(&p->comm);
}
