/* gates.h — the offline quality gates of refresh (paper §2.2), checked on
 * rank 0 before publishing, beside the exact-match gate:
 *
 *   recall    gates.min_recall (default 0.015): with gates.holdout_days H > 0
 *             the last H days of the window are left out of retrieval; the
 *             new table is scored on them as `ragtide eval` scores it
 *             (docs/eval.md: hit rate at eval.horizon over every position of
 *             the held-out sequences). Below the floor: exit 12.
 *   coverage  gates.min_coverage_ratio (default 0.5): the new table's pairs
 *             with a rag or base prediction must reach this share of the
 *             served table's (none when nothing is served yet). An empty
 *             window or wrongly scaled timestamps would otherwise replace a
 *             good table with an all-none one. Below: exit 13.
 *
 * How the recall is computed without the table: the held-out sequences
 * (stages 1–4 on the users' ranks) give, per position (c1, c2) and each
 * distinct cluster x among its next H clusters, one count of (c1, c2, x);
 * these go to the pair's owner like triple counts (stage 5), where the
 * pair's prediction is known: this rank's result for the pair, else the
 * base table's answer — what the table will hold. hits = sum over pairs of
 * count(c1, c2, prediction); recall = hits / positions. */
#ifndef RT_PIPELINE_GATES_H
#define RT_PIPELINE_GATES_H

#include <mpi.h>
#include <ragtide/table.h>
#include <stdint.h>

#include "base/err.h"
#include "format/catalog.h"
#include "format/config.h"
#include "pipeline/count.h"
#include "pipeline/gather.h"
#include "pipeline/read.h"
#include "pipeline/sequence.h"

typedef struct rt_gates {
  int holdout;                  /* gates.holdout_days > 0 */
  int64_t hold_start, hold_end; /* the held-out days [start, end) */
  int horizon;
  /* per thread while the held-out sequences are read */
  int threads;
  rt_counter **counter;
  uint64_t *positions_t;
  /* after rt_gates_route: this rank's (c1, c2, x) counts, owned pairs */
  rt_runs *owned;
  /* after rt_gates_eval (every rank) */
  uint64_t positions, hits;
  uint64_t covered_new;         /* pairs with a rag or base prediction in the new table */
} rt_gates;

/* Before stages 1–5: with gates.holdout_days > 0 take the last days out of
 * the window (cfg->window_end moves back; RT_ERR_USAGE if nothing would be
 * left, or when the run reads input.counts without input.logs). */
int rt_gates_begin(rt_config *cfg, rt_gates *g, rt_err *err);

/* The held-out pass: per-thread contexts for rt_job_sequences (ctx[t] =
 * &ctxs[t]) and the callback; then rt_gates_route sends the counts to the
 * pairs' owners (collective). */
typedef struct rt_gates_ctx {
  rt_gates *g;
  int t;
} rt_gates_ctx;
void rt_gates_threads(rt_gates *g, uint32_t ncl, int threads, rt_gates_ctx *ctxs);
void rt_gates_on_sequence(void *ctx, uint64_t user, const rt_ev *s, size_t m);
int rt_gates_route(rt_gates *g, const rt_plan *plan, MPI_Comm comm, const char *run_dir, int rank, rt_err *err);

/* Collective, after the LLM stage: hits over this rank's pairs from its
 * results (rt_result_put encoding) and the base table, the new coverage;
 * summed over ranks. */
int rt_gates_eval(rt_gates *g, MPI_Comm comm, const rt_result_buf *results, const ragtide_table *base, uint32_t ncl,
                  rt_err *err);

/* What the gates read of the run (rank 0, summed over ranks). */
typedef struct rt_gate_input {
  uint64_t calls;    /* endpoint calls made (journal answers excluded) */
  uint64_t failed;   /* of them, calls with no answer after every attempt */
  uint64_t answers;  /* answers matched against the catalog */
  uint64_t exact;    /* of them, naming a catalog cluster exactly (the exact-match gate) */
  int force;         /* --force: publish over a table whose window ends later */
  int base_mode;     /* prompt.mode = base: no window, no staleness */
} rt_gate_input;

/* Rank 0, after the LLM stage: every gate in order, the first failure
 * decides, else RT_OK (publish). In order: the error budget
 * (llm.max_failed_fraction, RT_ERR_ENDPOINT), the exact-match rate
 * (gates.min_exact_match, RT_ERR_GATE), recall (RT_ERR_RECALL) and coverage
 * against the table now served at cfg->table (RT_ERR_COVERAGE; none when
 * nothing is served),
 * and never a step back (a served table whose window ends later than this
 * run's: RT_ERR_STALE unless in->force). *status is set to "halted" or
 * "stale" on failure. *exact_rate and *failed_frac get the figures (-1: no
 * answers / no calls). */
int rt_gates_decide(const rt_gates *g, const rt_config *cfg, const rt_gate_input *in, const char **status,
                    double *exact_rate, double *failed_frac, rt_err *err);

void rt_gates_free(rt_gates *g);

#endif
