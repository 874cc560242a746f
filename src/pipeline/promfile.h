/* promfile.h — the run's metrics for Prometheus, as a node_exporter
 * textfile (text exposition format 0.0.4).
 *
 * Owns: output.metrics_file, replaced atomically by rank 0 at the end of
 * every refresh — published, halted, failed or interrupted — so a scrape
 * never sees half a file, and the last run's outcome is always there. The
 * names and labels are documented in docs/operations.md with an alert rule.
 * Every series carries table="<output.table>", so one collector directory
 * can hold the files of several tables. */
#ifndef RT_PIPELINE_PROMFILE_H
#define RT_PIPELINE_PROMFILE_H

#include <ragtide/table.h>
#include <stdint.h>

#include "base/err.h"

typedef struct rt_prom_run {
  const char *table;        /* label value */
  const char *status;       /* published | halted | stale | failed | interrupted */
  int exit_code;
  int64_t attempt;
  double duration_s;
  int64_t finished_at;      /* unix seconds */
  int64_t last_publish;     /* unix seconds of the served table's publish; 0 = none yet */
  int have_pairs;           /* pairs[] is set (a table was published) */
  uint64_t pairs[RAGTIDE_PROV_COUNT]; /* by provenance: none, base, rag, fallback, retrieval */
  uint64_t calls, cached, requests, failed, retries, http_429;
  double exact_match;       /* < 0: no answers */
  int gate_exact;           /* 1 passed, 0 failed, -1 not evaluated */
  int gate_errors;          /* error budget: 1 passed, 0 failed, -1 not evaluated */
} rt_prom_run;

/* Render and write atomically. RT_ERR_OUTPUT on failure. */
int rt_prom_write(const char *path, const rt_prom_run *r, rt_err *err);

#endif
