/* job.c — start-up, stages 1–5 and shutdown shared by the MPI commands. */
#include "cmd/job.h"
#include "cmd/commands.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/util.h"
#include "pipeline/collective.h"
#include "pipeline/gates.h"
#include "pipeline/progress.h"
#include "pipeline/read.h"
#include "pipeline/sequence.h"
#include "pipeline/shuffle.h"
#include "pipeline/spill.h"
#include "pipeline/stop.h"
#include "format/lock.h"
#include "format/publish.h"
#include "format/resume.h"
#include "llm/keys.h"

#include <errno.h>
#include <malloc.h>
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Bytes one rank sends per all-to-all round: bounds the round's buffers. */
#define ROUND_BYTES (64u << 20)

/* Threads per rank when job.threads = 0: the CPUs this process may run on,
 * shared with the ranks on this node that may run on the same ones. Under
 * mpirun's default binding (one core per rank for <= 2 ranks), --map-by
 * slot:PE=N or srun --cpus-per-task=N, that is the rank's own set; with no
 * binding (--bind-to none, or an oversubscribed node) every rank sees the
 * whole node and takes its share, so the node is neither oversubscribed
 * nor left idle. Collective. */
static int default_threads(MPI_Comm comm) {
  cpu_set_t set;
  int cpus = 0;
  uint64_t mask = 0;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    cpus = CPU_COUNT(&set);
    for (int c = 0; c < CPU_SETSIZE; c++)
      if (CPU_ISSET(c, &set)) mask = rt_mix64(mask ^ (uint64_t)c);
  }
  if (cpus <= 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cpus = n > 0 ? (int)n : 1;
  }
  MPI_Comm node;
  MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int n;
  MPI_Comm_size(node, &n);
  uint64_t *all = rt_xcalloc((size_t)n, sizeof *all);
  MPI_Allgather(&mask, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, node);
  int same = 0;
  for (int i = 0; i < n; i++) same += all[i] == mask;
  free(all);
  MPI_Comm_free(&node);
  return cpus / same > 1 ? cpus / same : 1;
}

static char *resume_path(const rt_job *job) {
  size_t n = strlen(job->cfg.table) + 8;
  char *p = rt_xmalloc(n);
  snprintf(p, n, "%s.resume", job->cfg.table);
  return p;
}

/* The configuration's hash without what a resumed attempt takes from the
 * first one (the window, created-at): the same job, another attempt. */
static uint64_t job_identity(const rt_config *cfg) {
  rt_config c = *cfg; /* shallow: rt_config_hash only reads */
  c.window_start = c.window_end = 0;
  return rt_config_hash(&c);
}

/* Rank 0 decides the window (input.window_days), created-at and the attempt
 * number — from TABLE.resume when it describes an interrupted attempt of the
 * same job — and broadcasts them. Collective. */
static void resolve_attempt(rt_job *job, const char *cmd) {
  int64_t v[4] = {0, 0, 0, 1}; /* window_start, window_end, created_at, attempt */
  int64_t first = 0;
  if (job->rank == 0) {
    int64_t now = (int64_t)time(NULL);
    rt_resume st;
    int resumed = 0;
    if (!strcmp(cmd, "refresh") && *job->cfg.table) {
      char *rp = resume_path(job);
      resumed = rt_resume_load(rp, &st) && st.config_hash == job_identity(&job->cfg);
      if (!resumed && access(rp, F_OK) == 0)
        rt_info("%s describes another job's attempt (the configuration changed): starting afresh", rp);
      free(rp);
    }
    rt_config_resolve_window(&job->cfg, resumed ? st.first_started : now);
    if (resumed && job->cfg.window_days > 0) {
      job->cfg.window_start = st.window_start;
      job->cfg.window_end = st.window_end;
    }
    v[0] = job->cfg.window_start;
    v[1] = job->cfg.window_end;
    v[2] = rt_config_given(&job->cfg, "output.created_at") || job->cfg.created_at ? job->cfg.created_at
           : resumed                                                                ? st.created_at
                                                                                    : now;
    v[3] = resumed ? st.attempt + 1 : 1;
    first = resumed ? st.first_started : now;
  }
  MPI_Bcast(v, 4, MPI_INT64_T, 0, job->comm);
  MPI_Bcast(&first, 1, MPI_INT64_T, 0, job->comm);
  job->cfg.window_start = v[0];
  job->cfg.window_end = v[1];
  job->created_at = v[2];
  job->attempt = v[3];
  job->first_started = first;
}

static int save_attempt(const rt_job *job, rt_err *err) {
  rt_resume st = {.config_hash = job_identity(&job->cfg),
                  .window_start = job->cfg.window_start,
                  .window_end = job->cfg.window_end,
                  .created_at = job->created_at,
                  .first_started = job->first_started,
                  .attempt = job->attempt};
  snprintf(st.run_id, sizeof st.run_id, "%s", job->run_id);
  char *rp = resume_path(job);
  int rc = rt_resume_save(rp, &st, err);
  free(rp);
  return rc;
}

int rt_job_start(int argc, char **argv, const char *cmd, rt_job *job, rt_err *err) {
  memset(job, 0, sizeof *job);
  job->t_start = rt_now();
  /* The stages allocate and free buffers of hundreds of MB in turn; by
   * default glibc maps each afresh and unmaps it on free, so every batch pays
   * page faults again (12% of an aggregate run). Keep freed memory for reuse. */
  /* (Not under memory.per_rank_mb, set after the config is read: there,
   * returning memory matters more.) */
  mallopt(M_MMAP_THRESHOLD, 512 << 20);
  mallopt(M_TRIM_THRESHOLD, 1024 << 20);
  /* One arena for all threads: the stages' threads allocate few, large
   * buffers, and with an arena per thread memory one thread frees is never
   * reused by another, so it is taken fresh (page faults) and adds up
   * (20 M events, 2 threads: peak RSS 1,152 -> 926 MiB). */
  mallopt(M_ARENA_MAX, 1);
  int provided;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  job->comm = MPI_COMM_WORLD;
  MPI_Comm_rank(job->comm, &job->rank);
  MPI_Comm_size(job->comm, &job->size);
  rt_log_set_rank(job->rank);
  rt_stop_install();
  rt_config_defaults(&job->cfg);
  const char *config = NULL, *from = NULL, *to = NULL;
  const int refresh = !strcmp(cmd, "refresh"), aggregate = !strcmp(cmd, "aggregate"), eval = !strcmp(cmd, "eval");
  int rc = RT_OK;
  for (int i = 1; i < argc && rc == RT_OK; i++) {
    const char *a = argv[i], *v = NULL;
    int r = 0;
    if ((r = rt_flag_value(argc, argv, &i, "--config", &v, cmd, err))) config = v;
    else if ((r = rt_flag_value(argc, argv, &i, "--set", &v, cmd, err))) (void)v; /* rt_config_from_args applies it */
    else if (refresh && !strcmp(a, "--no-cache")) job->no_cache = 1;
    else if (refresh && !strcmp(a, "--force")) job->force = 1;
    else if (refresh && !strcmp(a, "--dry-run")) job->dry_run = 1;
    else if (aggregate && (r = rt_flag_value(argc, argv, &i, "--out", &v, cmd, err))) job->out = v;
    else if (aggregate && (r = rt_flag_value(argc, argv, &i, "--format", &v, cmd, err))) job->out_format = v;
    else if (eval && (r = rt_flag_value(argc, argv, &i, "--table", &v, cmd, err))) job->eval_table = v;
    else if (eval && (r = rt_flag_value(argc, argv, &i, "--previous", &v, cmd, err))) job->eval_previous = v;
    else if (eval && (r = rt_flag_value(argc, argv, &i, "--from", &v, cmd, err))) from = v;
    else if (eval && (r = rt_flag_value(argc, argv, &i, "--to", &v, cmd, err))) to = v;
    else if (eval && !strcmp(a, "--json")) job->json = 1;
    else rc = rt_bad_arg(cmd, a, err); /* names the flag only: a value may be a secret */
    if (r < 0) rc = RT_ERR_USAGE;
  }
  if (rc == RT_OK && !config)
    rc = rt_err_set(err, RT_ERR_USAGE, "%s: --config FILE is required (see `ragtide help %s`)", cmd, cmd);
  if (rc == RT_OK) {
    rt_config_free(&job->cfg);
    rc = rt_config_from_args(&job->cfg, config, argc, argv, err);
    if (rc == RT_OK) rt_llm_guard_secrets(&job->cfg); /* before any work: no core may hold the key */
  }
  if (rc == RT_OK && eval) { /* the held-out window [--from, --to) replaces the config's */
    if (!job->eval_table || !from || !to)
      rc = rt_err_set(err, RT_ERR_USAGE, "eval: --table T, --from D1 and --to D2 are required (see `ragtide help eval`)");
    else if (rt_parse_utc(from, &job->cfg.window_start) || rt_parse_utc(to, &job->cfg.window_end))
      rc = rt_err_set(err, RT_ERR_USAGE, "eval: --from \"%s\" / --to \"%s\": expected UTC dates YYYY-MM-DD[THH:MM:SSZ]",
                      from, to);
    else if (job->cfg.window_end <= job->cfg.window_start)
      rc = rt_err_set(err, RT_ERR_USAGE, "eval: --to must be after --from");
    job->cfg.window_days = 0;
  }
  if (rc == RT_OK && job->cfg.window_days > 0 &&
      (rt_config_given(&job->cfg, "input.window_start") || rt_config_given(&job->cfg, "input.window_end"))) {
    char o1[300], o2[300];
    const char *w = rt_config_given(&job->cfg, "input.window_start") ? "input.window_start" : "input.window_end";
    rc = rt_err_set(err, RT_ERR_USAGE, "%s: input.window_days replaces input.window_start/window_end (%s: %s): "
                    "set one or the other", rt_config_origin(&job->cfg, "input.window_days", o1, sizeof o1),
                    w, rt_config_origin(&job->cfg, w, o2, sizeof o2));
  }
  rc = rt_agree(job->comm, rc, err); /* resolve_attempt is collective */
  if (rc) return rc;
  resolve_attempt(job, cmd);
  if (rc == RT_OK) rc = rt_config_validate(&job->cfg, cmd, err);
  if (rc == RT_OK) { /* the default template works from any directory */
    char found[4096];
    if (rt_find_shipped(job->cfg.template_path, found, sizeof found)) {
      free(job->cfg.template_path);
      job->cfg.template_path = rt_xstrdup(found);
    }
  }
  if (rc == RT_OK && job->cfg.per_rank_mb) { /* back to glibc's defaults: give memory back */
    mallopt(M_MMAP_THRESHOLD, 128 << 10);
    mallopt(M_TRIM_THRESHOLD, 128 << 10);
  }
  rc = rt_agree(job->comm, rc, err);
  if (rc) return rc;
  int auto_threads = default_threads(job->comm);
  job->threads = job->cfg.threads ? (int)job->cfg.threads : auto_threads;
  if (provided < MPI_THREAD_FUNNELED && job->threads > 1) {
    /* the stages' threads never call MPI, but such a library promises
     * nothing once a process has threads at all */
    if (job->rank == 0)
      rt_warn("this MPI library does not support threads (MPI_THREAD_FUNNELED): running 1 thread per rank");
    job->threads = 1;
  }
  omp_set_num_threads(job->threads);
  rt_metric_max(RT_M_process_threads, (uint64_t)job->threads);
  /* Every rank loads the catalog: it is small (10k clusters ~ 1 MB) and every
   * stage needs id -> index. */
  rc = rt_catalog_load(job->cfg.catalog, &job->cat, err);
  rc = rt_agree(job->comm, rc, err);
  if (rc) return rc;
  char ts[32];
  rt_format_utc(job->created_at, ts, sizeof ts);
  /* Deterministic for a pinned created_at: the same inputs give the same id,
   * which keeps reruns byte-identical. */
  uint64_t h = rt_config_hash(&job->cfg) ^ rt_mix64(job->cat.hash);
  snprintf(job->run_id, sizeof job->run_id, "%.4s%.2s%.2sT%.2s%.2s%.2sZ-%08x", ts, ts + 5, ts + 8, ts + 11,
           ts + 14, ts + 17, (unsigned)(h & 0xffffffffu));
  job->watch = rt_xcalloc(job->cat.n, sizeof *job->watch);
  /* One run per table: rank 0 holds TABLE.lock until rt_job_end. */
  if (!strcmp(cmd, "refresh") && !job->dry_run) { /* a dry run changes nothing: no lock */
    if (job->rank == 0) {
      if (rt_mkdir_parent(job->cfg.table) != 0)
        rc = rt_err_set(err, RT_ERR_OUTPUT, "cannot create the directory of output.table %s: %s", job->cfg.table,
                        strerror(errno));
      if (rc == RT_OK) rc = rt_lock_acquire(job->cfg.table, job->run_id, job->cfg.lock_stale_s, &job->lock, err);
      if (rc == RT_OK) rt_table_sweep(job->cfg.table, NULL); /* litter of runs that died */
      if (rc == RT_OK) rc = save_attempt(job, err);
    }
    rc = rt_agree(job->comm, rc, err);
    if (rc) return rc;
    if (job->rank == 0 && job->attempt > 1)
      rt_info("resuming run %s: attempt %lld, window and created-at of the first attempt", job->run_id,
              (long long)job->attempt);
  }
  return RT_OK;
}

/* ctx: the thread's counter */
static void on_triple(void *ctx, uint32_t c1, uint32_t c2, uint32_t c3, int32_t day, uint32_t win) {
  rt_counter_add(ctx, rt_triple_key(c1, c2, c3), day, win, 1);
}

/* Memory plan for stages 2–4 under memory.per_rank_mb (0 = no cap): a read
 * batch takes about an eighth of the budget (it exists up to three times:
 * read, shuffle send, receive), the event store a quarter before it spills,
 * and the buckets are sized so that sequencing one per thread (events +
 * scratch) fits in another quarter. Shard bytes / 4 bounds the events a rank
 * can own (msgpack.zst events take ~9 bytes, TSV ~35). */
typedef struct {
  size_t batch_events, store_events, nbuckets;
  size_t counter_records, owned_records; /* count records held before a run is written */
  size_t round_bytes;                     /* per all-to-all round (and count exchange chunk) */
  uint64_t reserve_events;                /* no cap: room the buckets reserve up front */
} mem_plan;

static mem_plan plan_memory(const rt_job *job) {
  mem_plan m = {4u << 20, 0, 1, 0, 0, ROUND_BYTES, 0};
  uint64_t budget = (uint64_t)job->cfg.per_rank_mb << 20;
  uint64_t total = 0;
  for (size_t i = 0; i < job->plan.nshards; i++) total += job->plan.bytes[i];
  if (!budget) {
    /* No cap: the store still splits users into buckets of ~128k events
     * (from ~8 shard bytes an event), so sequencing works on one bucket at a
     * time (and threads on distinct buckets) instead of regrouping one huge
     * array. Not smaller: scattering into thousands of buckets costs more in
     * the store than it saves in sequencing, which splits a bucket into
     * cache-sized parts itself (20 M events on 2 threads: read + store
     * took 1.06-1.15 s with 4,096 buckets, 0.88-0.98 s with 256, and
     * sequencing the same 0.3 s). */
    uint64_t est = total / 8 / (uint64_t)job->size + 1;
    while (m.nbuckets < 65536 && m.nbuckets * 131072 < est) m.nbuckets *= 2;
    /* Room reserved up front, so buckets grow in place: untouched room costs
     * no memory; still, never ask for more than half of this machine (TSV
     * shards take ~35 bytes an event, not 8). */
    uint64_t half = 0;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) half = (uint64_t)pages * (uint64_t)page / 2 / sizeof(rt_ev);
    m.reserve_events = m.nbuckets > 1 ? (half && est > half ? half : est) : 0;
    return m;
  }
  /* an event of a batch also has a 4-byte destination (shuffle) and a
   * 4-byte bucket (store); the counter's buffer (rt_counter_set_limit below)
   * holds as many 16-byte keys (key + sort scratch) */
  m.batch_events = budget / 8 / (sizeof(rt_ev) + 8);
  if (m.batch_events < 4096) m.batch_events = 4096;
  m.store_events = budget / 4 / sizeof(rt_ev);
  uint64_t est = total / 4 / (uint64_t)job->size + 1; /* events per rank, upper bound */
  /* each thread sequences a bucket of its own at a time */
  uint64_t per_bucket = budget / 4 / (2 * sizeof(rt_ev)) / (uint64_t)job->threads;
  m.nbuckets = (size_t)(est / (per_bucket ? per_bucket : 1) + 1);
  if (m.nbuckets > 4096) m.nbuckets = 4096;
  /* Count records come after the events are gone: the counter's sorted
   * records (16 bytes, plus a merge copy and a 24-byte decode when spilled)
   * get an eighth, the owner's incoming records (24 bytes, plus the sort's
   * scratch) another eighth. */
  m.counter_records = budget / 8 / 40;
  m.owned_records = budget / 8 / 48;
  if (m.counter_records < 4096) m.counter_records = 4096;
  if (m.owned_records < 4096) m.owned_records = 4096;
  /* A count exchange chunk exists about four times (read, send, receive,
   * the owner's copy): a sixteenth each. */
  if (budget / 16 < m.round_bytes) m.round_bytes = budget / 16 > 65536 ? budget / 16 : 65536;
  return m;
}

void rt_job_run_dir(const rt_job *job, char *buf, size_t cap) {
  if (*job->cfg.run_dir) snprintf(buf, cap, "%s", job->cfg.run_dir);
  else snprintf(buf, cap, "%s.run", job->out ? job->out : job->cfg.table);
}

/* Events a thread reads per batch; also what a thread's counter buffers
 * under a cap. */
static size_t per_thread(const mem_plan *mp, int threads) {
  size_t n = mp->batch_events / (size_t)threads;
  return n > 4096 ? n : 4096;
}

static const char *route_label(const rt_job *job) {
  return !job->cfg.partitioned_by_user && job->size > 1 ? "events shuffled" : "events stored";
}

/* Stages 2–3 in collective rounds: every rank reads a batch (an empty one
 * once its shards are done), the batch is shuffled, and owners store it.
 * Within a rank, each thread reads whole shards from a shared queue into
 * its own part of the batch, with its own watch counts. Collective. */
static uint64_t metric(rt_metric m) { return __atomic_load_n(&rt_metrics[m], __ATOMIC_RELAXED); }

/* After the read stage (collective): with input.on_bad_event = skip, rank 0
 * logs the events and lines skipped, per reason, summed over the ranks (the
 * same counters end in the summary's stages.read). */
static void log_skipped(const rt_job *job) {
  static const rt_metric m[6] = {RT_M_read_bad_unknown_cluster, RT_M_read_bad_timestamp, RT_M_read_bad_engagement,
                                 RT_M_read_bad_fields, RT_M_read_bad_number, RT_M_read_bad_header};
  uint64_t v[6], t[6];
  for (int i = 0; i < 6; i++) v[i] = metric(m[i]);
  MPI_Reduce(v, t, 6, MPI_UINT64_T, MPI_SUM, 0, job->comm);
  if (job->rank != 0) return;
  uint64_t all = 0;
  for (int i = 0; i < 6; i++) all += t[i];
  if (all)
    rt_warn("read: skipped %llu bad events and lines (input.on_bad_event = skip): unknown cluster %llu, "
            "bad timestamp %llu, NaN engagement %llu, wrong field count %llu, not a number %llu, header line %llu",
            (unsigned long long)all, (unsigned long long)t[0], (unsigned long long)t[1], (unsigned long long)t[2],
            (unsigned long long)t[3], (unsigned long long)t[4], (unsigned long long)t[5]);
}

static int read_and_store(rt_job *job, const mem_plan *mp, rt_spill *store, rt_err *err) {
  const int T = job->threads;
  /* Progress after each round: bytes of the shards read (of the plan's
   * total, so a share and a time left), shards, events, events shuffled. */
  uint64_t total_bytes = 0;
  for (size_t i = 0; i < job->plan.nshards; i++) total_bytes += job->plan.bytes[i];
  rt_progress prog;
  rt_progress_start(&prog, job->comm, "read+shuffle", total_bytes, (double)job->cfg.progress_s);
  rt_progress_labels(&prog, "bytes", "shards", "events", route_label(job), NULL, NULL);
  rt_read_cursor *cur = rt_xcalloc((size_t)T, sizeof *cur);
  rt_ev_vec *part = rt_xcalloc((size_t)T, sizeof *part);
  uint64_t **watch = rt_xcalloc((size_t)T, sizeof *watch);
  int *tdone = rt_xcalloc((size_t)T, sizeof *tdone), *trc = rt_xcalloc((size_t)T, sizeof *trc);
  rt_err *terr = rt_xcalloc((size_t)T, sizeof *terr);
  size_t queue = 0;
  for (int t = 0; t < T; t++) {
    rt_read_begin(&cur[t], &job->plan, job->rank, &job->cfg, &job->cat);
    rt_read_share(&cur[t], &queue);
    watch[t] = t == 0 ? job->watch : rt_xcalloc(job->cat.n, sizeof **watch);
  }
  const size_t per = per_thread(mp, T);
  const int route = !job->cfg.partitioned_by_user && job->size > 1;
  rt_ev_vec batch = {0};
  int rc = RT_OK;
  for (;;) {
    double tr = rt_stage_begin();
#pragma omp parallel for schedule(static, 1)
    for (int t = 0; t < T; t++) {
      part[t].len = 0;
      if (!tdone[t] && !trc[t]) trc[t] = rt_read_batch(&cur[t], per, &part[t], watch[t], &tdone[t], &terr[t]);
    }
    rt_stage_end(RT_M_read_us, tr);
    int done = 1;
    for (int t = 0; t < T; t++) {
      done &= tdone[t];
      if (trc[t] && !rc) rc = trc[t], *err = terr[t];
    }
    if ((rc = rt_agree(job->comm, rc, err))) break;
    double ts;
    if (route) {
      rt_shuffle_by_user(&job->plan, job->comm, part, T, &batch, mp->round_bytes, err);
      ts = rt_stage_begin(); /* storing by user bucket is the shuffle's second half */
      rc = rt_spill_add(store, batch.data, batch.len, err);
    } else { /* nothing to route: the threads' parts go to the buckets as they are */
      ts = rt_stage_begin();
      const rt_ev *pp[T];
      size_t pl[T];
      for (int t = 0; t < T; t++) pp[t] = part[t].data, pl[t] = part[t].len;
      if (!job->cfg.partitioned_by_user) /* one rank: all received, as rt_shuffle_by_user counts it */
        for (int t = 0; t < T; t++) rt_metric_add(RT_M_shuffle_events_received, pl[t]);
      rc = rt_spill_add_parts(store, pp, pl, T, err);
    }
    rt_stage_end(RT_M_shuffle_us, ts);
    if ((rc = rt_agree(job->comm, rc, err))) break;
    uint64_t pv[RT_PROGRESS_MAX] = {metric(RT_M_read_bytes_in), metric(RT_M_read_shards), metric(RT_M_read_events),
                                    metric(RT_M_shuffle_events_received)};
    rt_progress_update_v(&prog, pv);
    int all_done;
    MPI_Allreduce(&done, &all_done, 1, MPI_INT, MPI_MIN, job->comm);
    if (all_done) break;
  }
  rt_progress_finish(&prog, metric(RT_M_read_bytes_in));
  for (int t = 0; t < T; t++) rt_read_end(&cur[t]); /* closing a shard counts its skipped lines */
  if (rc == RT_OK) log_skipped(job);
  for (int t = 0; t < T; t++) {
    free(part[t].data);
    if (t > 0) {
      for (uint32_t c = 0; c < job->cat.n; c++) job->watch[c] += watch[t][c];
      free(watch[t]);
    }
  }
  free(cur);
  free(part);
  free(watch);
  free(batch.data);
  free(tdone);
  free(trc);
  free(terr);
  return rc;
}

/* Stage 4, one user bucket at a time, buckets spread over the threads, and
 * stage 5's local pre-aggregation: one counter per thread, finished into
 * ONE sorted run of `local` (runs they spilled under a cap stay runs of
 * their own). Frees the store. Collective (its progress rounds). */
static int sequence_and_count(rt_job *job, const mem_plan *mp, rt_spill *store, rt_runs *local, rt_err *err) {
  const int T = job->threads;
  double t0 = rt_stage_begin();
  rt_seq_opts o;
  rt_seq_opts_from_config(&job->cfg, &o);
  rt_window w;
  rt_window_from_config(&job->cfg, &w);
  rt_seq_stats *st = rt_xcalloc((size_t)T, sizeof *st);
  rt_counter **hs = rt_xcalloc((size_t)T, sizeof *hs);
  rt_ev_vec *ev = rt_xcalloc((size_t)T, sizeof *ev);
  int *trc = rt_xcalloc((size_t)T, sizeof *trc);
  rt_err *terr = rt_xcalloc((size_t)T, sizeof *terr);
  for (int t = 0; t < T; t++) {
    hs[t] = rt_counter_new(job->cat.n, (int32_t)(w.prev_start / 86400), (int32_t)(w.end / 86400));
    if (mp->store_events) { /* the triple buffer and the distinct records within budget too */
      rt_counter_set_limit(hs[t], per_thread(mp, T));
      rt_counter_spill_to(hs[t], local, mp->counter_records / (size_t)T);
    }
  }
  /* Progress: user buckets sequenced, reported by thread 0 (the thread
   * that may call MPI) between its buckets. The count of buckets is the
   * same on every rank, so the share is over all ranks' buckets. */
  rt_progress prog;
  uint64_t nb = store->nbuckets, total = 0, bdone = 0;
  MPI_Allreduce(&nb, &total, 1, MPI_UINT64_T, MPI_SUM, job->comm);
  rt_progress_start(&prog, job->comm, "sequence", total, (double)job->cfg.progress_s);
  rt_progress_labels(&prog, "user buckets", NULL, NULL, NULL, NULL, NULL);
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t b = 0; b < store->nbuckets; b++) {
    int t = omp_get_thread_num();
    if (!trc[t]) {
      trc[t] = rt_spill_take(store, b, &ev[t], &terr[t]);
      if (trc[t] == RT_OK) rt_sequence_all(ev[t].data, ev[t].len, &o, on_triple, hs[t], &st[t]);
    }
    uint64_t d = __atomic_add_fetch(&bdone, 1, __ATOMIC_RELAXED);
    if (t == 0) rt_progress_update(&prog, d);
  }
  rt_progress_finish(&prog, bdone);
  int rc = RT_OK;
  rt_seq_stats sum = {0};
  for (int t = 0; t < T; t++) {
    free(ev[t].data);
    if (trc[t] && !rc) rc = trc[t], *err = terr[t];
    sum.users += st[t].users;
    sum.sequences += st[t].sequences;
    sum.short_sequences += st[t].short_sequences;
    sum.triples += st[t].triples;
  }
  if (store->spilled) rt_info("spilled %llu events to %s", (unsigned long long)store->spilled, store->dir);
  rt_spill_free(store);
  rt_metric_add(RT_M_sequence_users, sum.users);
  rt_metric_add(RT_M_sequence_sequences, sum.sequences);
  rt_metric_add(RT_M_sequence_short_sequences, sum.short_sequences);
  rt_metric_add(RT_M_sequence_triples, sum.triples);
  rt_stage_end(RT_M_sequence_us, t0);

  t0 = rt_stage_begin(); /* the counters' last merge is stage 5's first step */
  rt_err ferr = {0};
  int frc = rt_counters_finish(hs, T, local, &ferr); /* frees them, also after a failure above */
  if (frc && rc == RT_OK) rc = frc, *err = ferr;
  rt_stage_end(RT_M_count_us, t0);
  free(ev);
  free(st);
  free(hs);
  free(trc);
  free(terr);
  return rc;
}

/* Stages 1–3, shared by aggregate, refresh and eval: the plan, then every
 * shard read, shuffled by user and held in user buckets (`store`, under the
 * memory plan `mp`, spilling to the run directory `dir`). Collective; on
 * failure the store is already freed. */
static int plan_and_store(rt_job *job, mem_plan *mp, rt_spill *store, char *dir, size_t cap, rt_err *err) {
  rt_plan_free(&job->plan);
  int rc = rt_plan_build(job->cfg.logs, job->comm, &job->plan, err);
  if (rc) return rc;
  *mp = plan_memory(job);
  if (job->rank == 0)
    rt_info("run %s: %zu shards over %d ranks x %d threads%s", job->run_id, job->plan.nshards, job->size,
            job->threads, mp->store_events ? " (memory-capped: batched reads, user buckets spill to the run directory)" : "");
  rt_job_run_dir(job, dir, cap);
  rt_spill_init(store, mp->nbuckets, mp->store_events, dir, job->rank);
  if (mp->reserve_events) rt_spill_reserve(store, mp->reserve_events);
  if ((rc = read_and_store(job, mp, store, err))) rt_spill_free(store);
  return rc;
}

int rt_job_aggregate(rt_job *job, rt_runs **counts, uint64_t *records, rt_err *err) {
  *counts = NULL;
  *records = 0;
  mem_plan mp;
  char dir[4096];
  rt_spill store;
  int rc = plan_and_store(job, &mp, &store, dir, sizeof dir, err);
  if (rc) return rc;
  rt_runs *local = rt_runs_new(dir, "local", job->rank, mp.store_events ? mp.counter_records : 0);
  if (job->rank == 0) rt_test_pause("aggregate");
  rc = sequence_and_count(job, &mp, &store, local, err);
  if ((rc = rt_agree(job->comm, rc, err))) {
    rt_runs_free(local);
    return rc;
  }

  /* Stage 5: counts to the pair owners, sealed there into one sorted run. */
  double t0 = rt_stage_begin();
  rt_runs *owned = rt_runs_new(dir, "owned", job->rank, mp.store_events ? mp.owned_records : 0);
  uint64_t spilled = rt_runs_spilled(local);
  rt_progress prog;
  rt_progress_start(&prog, job->comm, "count exchange", 0, (double)job->cfg.progress_s);
  rt_progress_labels(&prog, "records sent", "received", NULL, NULL, NULL, NULL);
  owned = rt_counts_exchange(&job->plan, job->comm, local, owned, mp.round_bytes, &prog, err);
  rt_progress_finish(&prog, prog.cur[0]);
  rc = owned ? RT_OK : err->code;
  uint64_t nrec = 0, pairs = 0;
  if (rc == RT_OK) rc = rt_runs_seal(owned, &nrec, &pairs, err);
  if (owned && owned != local) spilled += rt_runs_spilled(owned);
  rt_metric_add(RT_M_count_triples_distinct, nrec);
  rt_metric_add(RT_M_count_pairs_with_data, pairs);
  rt_metric_add(RT_M_count_spilled_records, spilled);
  if (spilled) rt_info("spilled %llu count records to sorted runs in %s", (unsigned long long)spilled, dir);
  rt_stage_end(RT_M_count_us, t0);
  if ((rc = rt_agree(job->comm, rc, err))) {
    rt_runs_free(owned);
    return rc;
  }
  *counts = owned;
  *records = nrec;
  return RT_OK;
}

int rt_job_sequences(rt_job *job, rt_seq_fn fn, void **ctx, rt_err *err) {
  mem_plan mp;
  char dir[4096];
  rt_spill store;
  int rc = plan_and_store(job, &mp, &store, dir, sizeof dir, err);
  if (rc) return rc;
  const int T = job->threads;
  rt_seq_opts o;
  rt_seq_opts_from_config(&job->cfg, &o);
  rt_ev_vec *ev = rt_xcalloc((size_t)T, sizeof *ev);
  rt_seq_stats *st = rt_xcalloc((size_t)T, sizeof *st);
  int *trc = rt_xcalloc((size_t)T, sizeof *trc);
  rt_err *terr = rt_xcalloc((size_t)T, sizeof *terr);
  double t0 = rt_stage_begin();
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t b = 0; b < store.nbuckets; b++) {
    int t = omp_get_thread_num();
    if (trc[t]) continue;
    trc[t] = rt_spill_take(&store, b, &ev[t], &terr[t]);
    if (trc[t] == RT_OK) rt_sequence_all_each(ev[t].data, ev[t].len, &o, fn, ctx[t], &st[t]);
  }
  for (int t = 0; t < T; t++) {
    free(ev[t].data);
    if (trc[t] && !rc) rc = trc[t], *err = terr[t];
    rt_metric_add(RT_M_sequence_users, st[t].users);
    rt_metric_add(RT_M_sequence_sequences, st[t].sequences);
    rt_metric_add(RT_M_sequence_short_sequences, st[t].short_sequences);
  }
  rt_stage_end(RT_M_sequence_us, t0);
  rt_spill_free(&store);
  free(ev);
  free(st);
  free(trc);
  free(terr);
  return rt_agree(job->comm, rc, err);
}

int rt_job_holdout(rt_job *job, rt_gates *g, rt_err *err) {
  uint64_t *saved = rt_xmalloc(sizeof rt_metrics), *watch = rt_xmalloc(job->cat.n * sizeof *watch);
  memcpy(saved, rt_metrics, sizeof rt_metrics);
  memcpy(watch, job->watch, job->cat.n * sizeof *watch); /* the popular block must not see the held-out days */
  int64_t ws = job->cfg.window_start, we = job->cfg.window_end;
  char *mode = job->cfg.retrieval_mode;
  job->cfg.retrieval_mode = (char *)"frequency"; /* one window: no previous window for trend */
  job->cfg.window_start = g->hold_start;
  job->cfg.window_end = g->hold_end;
  rt_gates_ctx *ctxs = rt_xcalloc((size_t)job->threads, sizeof *ctxs);
  void **pp = rt_xcalloc((size_t)job->threads, sizeof *pp);
  rt_gates_threads(g, job->cat.n, job->threads, ctxs);
  for (int t = 0; t < job->threads; t++) pp[t] = &ctxs[t];
  int rc = rt_job_sequences(job, rt_gates_on_sequence, pp, err);
  char dir[4096];
  rt_job_run_dir(job, dir, sizeof dir);
  if (rc == RT_OK) rc = rt_gates_route(g, &job->plan, job->comm, dir, job->rank, err);
  rc = rt_agree(job->comm, rc, err);
  job->cfg.retrieval_mode = mode;
  job->cfg.window_start = ws;
  job->cfg.window_end = we;
  memcpy(rt_metrics, saved, sizeof rt_metrics);
  memcpy(job->watch, watch, job->cat.n * sizeof *watch);
  free(saved);
  free(watch);
  free(ctxs);
  free(pp);
  return rc;
}

int rt_job_counts_from_file(rt_job *job, rt_runs **out, rt_err *err) {
  double t0 = rt_stage_begin();
  rt_plan_pairs_only(job->size, &job->plan);
  /* Every rank streams the file and keeps the records of the pairs it owns,
   * re-windowed by day; under memory.per_rank_mb they go to sorted runs. */
  char dir[4096];
  rt_job_run_dir(job, dir, sizeof dir);
  mem_plan mp = plan_memory(job);
  *out = rt_runs_new(dir, "file", job->rank, mp.store_events ? mp.owned_records : 0);
  rt_counts_reader *r = NULL;
  int rc = rt_counts_reader_open(job->cfg.counts, &r, err);
  uint32_t n = 0;
  const uint32_t *ids = rc == RT_OK ? rt_counts_reader_ids(r, &n) : NULL;
  if (rc == RT_OK && (n != job->cat.n || memcmp(ids, job->cat.ids, n * sizeof *ids) != 0))
    rc = rt_err_set(err, RT_ERR_INPUT,
                    "input.counts %s was aggregated with another catalog (%u clusters; input.catalog has %u); "
                    "rerun `ragtide aggregate` with this catalog", job->cfg.counts, n, job->cat.n);
  if (rc == RT_OK) {
    rt_window w;
    rt_window_from_config(&job->cfg, &w);
    int32_t d0 = (int32_t)(w.start / 86400), d1 = (int32_t)(w.end / 86400), dp = (int32_t)(w.prev_start / 86400);
    enum { CHUNK = 65536 };
    rt_count *buf = rt_xmalloc(CHUNK * sizeof *buf);
    long got;
    while (rc == RT_OK && (got = rt_counts_reader_next(r, buf, CHUNK, err)) != 0) {
      if (got < 0) {
        rc = err->code ? err->code : RT_ERR_INPUT;
        break;
      }
      size_t k = 0;
      for (long i = 0; i < got; i++) {
        rt_count c = buf[i];
        if (rt_pair_owner(&job->plan, rt_key_pair(c.key)) != job->rank) continue;
        if (c.day >= d0 && c.day < d1) c.win = 0;
        else if (c.day >= dp && c.day < d0) c.win = 1;
        else continue;
        buf[k++] = c;
      }
      rc = rt_runs_add(*out, buf, k, err); /* in file order, so already sorted: no sort at the flush */
    }
    free(buf);
  }
  rt_counts_reader_close(r);
  uint64_t nrec = 0, pairs = 0;
  if (rc == RT_OK) rc = rt_runs_seal(*out, &nrec, &pairs, err);
  rt_metric_add(RT_M_count_triples_distinct, nrec);
  rt_metric_add(RT_M_count_pairs_with_data, pairs);
  rt_metric_add(RT_M_count_spilled_records, rt_runs_spilled(*out));
  rt_stage_end(RT_M_count_us, t0);
  return rt_agree(job->comm, rc, err);
}

/* Only rank 0 prints: every rank holds the same agreed error. */
static void job_report(const rt_job *job, const rt_err *err) {
  if (job->rank == 0 && err && err->code) fprintf(stderr, "ragtide: error: %s\n", err->msg);
}

int rt_job_end(rt_job *job, int rc, rt_err *err) {
  if (rc) job_report(job, err);
  if (job->lock) { /* rank 0 of a refresh that took the lock */
    char *rp = resume_path(job);
    if (rc != RT_ERR_INTERRUPTED) unlink(rp); /* an interrupted attempt is resumed from it */
    free(rp);
    rt_lock_release(job->lock);
    job->lock = NULL;
  }
  rt_stop_finish();
  rt_plan_free(&job->plan);
  rt_catalog_free(&job->cat);
  rt_config_free(&job->cfg);
  free(job->watch);
  MPI_Finalize();
  return rc;
}
