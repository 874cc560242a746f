/* plan.c — list shards, balance them by bytes, fix the ownership maps. */
#include "pipeline/plan.h"
#include "base/metrics.h"
#include "pipeline/collective.h"

#include <errno.h>
#include <glob.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_manifest(const char *logs) {
  size_t n = strlen(logs);
  return logs[0] == '@' || (n > 9 && strcmp(logs + n - 9, ".manifest") == 0);
}

typedef RT_VEC(char *) str_vec;

static int list_manifest(const char *path, str_vec *out, rt_err *err) {
  char *text;
  if (rt_read_file(path, &text, NULL, err)) return rt_err_wrap(err, "input.logs manifest: ");
  char dircopy[4096];
  snprintf(dircopy, sizeof dircopy, "%s", path);
  const char *dir = dirname(dircopy);
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    size_t l = strlen(line);
    while (l && (line[l - 1] == '\r' || line[l - 1] == ' ')) line[--l] = '\0';
    if (l == 0 || line[0] == '#') continue;
    char full[8192];
    if (line[0] == '/') snprintf(full, sizeof full, "%s", line);
    else snprintf(full, sizeof full, "%s/%s", dir, line);
    rt_vec_push(out, rt_xstrdup(full));
  }
  free(text);
  return RT_OK;
}

static int list_shards(const char *logs, rt_plan *p, rt_err *err) {
  str_vec v = {0};
  int rc = RT_OK;
  if (is_manifest(logs)) {
    rc = list_manifest(logs[0] == '@' ? logs + 1 : logs, &v, err);
  } else {
    glob_t g;
    int gr = glob(logs, GLOB_NOSORT, NULL, &g);
    if (gr == GLOB_NOMATCH) {
      rc = rt_err_set(err, RT_ERR_INPUT,
                      "input.logs: no shard matches \"%s\" (check the path, and quote the glob in --set)", logs);
    } else if (gr != 0) {
      rc = rt_err_set(err, RT_ERR_INPUT, "input.logs: cannot expand \"%s\": %s", logs, strerror(errno));
    } else {
      for (size_t i = 0; i < g.gl_pathc; i++) rt_vec_push(&v, rt_xstrdup(g.gl_pathv[i]));
      globfree(&g);
    }
  }
  if (rc == RT_OK && v.len == 0)
    rc = rt_err_set(err, RT_ERR_INPUT, "input.logs: \"%s\" lists no shards", logs);
  if (rc) {
    for (size_t i = 0; i < v.len; i++) free(v.data[i]);
    free(v.data);
    return rc;
  }
  qsort(v.data, v.len, sizeof *v.data, cmp_str);
  p->nshards = v.len;
  p->shards = v.data;
  p->bytes = rt_xcalloc(v.len, sizeof *p->bytes);
  for (size_t i = 0; i < v.len; i++) {
    struct stat st;
    if (stat(v.data[i], &st) != 0)
      return rt_err_set(err, RT_ERR_INPUT, "shard %s: %s (listed by input.logs = %s)", v.data[i],
                        strerror(errno), logs);
    if (!S_ISREG(st.st_mode))
      return rt_err_set(err, RT_ERR_INPUT, "shard %s is not a regular file", v.data[i]);
    p->bytes[i] = (uint64_t)st.st_size;
  }
  return RT_OK;
}

typedef struct {
  uint64_t bytes;
  size_t idx;
} bysize;

static int cmp_bysize(const void *a, const void *b) {
  const bysize *x = a, *y = b;
  if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Largest shard first to the least-loaded rank (ties: lowest rank): the
 * classic LPT heuristic, within 4/3 of the optimal makespan. */
static void assign(rt_plan *p) {
  p->owner = rt_xmalloc((p->nshards ? p->nshards : 1) * sizeof *p->owner);
  bysize *order = rt_xmalloc((p->nshards ? p->nshards : 1) * sizeof *order);
  for (size_t i = 0; i < p->nshards; i++) order[i] = (bysize){p->bytes[i], i};
  qsort(order, p->nshards, sizeof *order, cmp_bysize);
  uint64_t *load = rt_xcalloc((size_t)p->nranks, sizeof *load);
  for (size_t k = 0; k < p->nshards; k++) {
    int best = 0;
    for (int r = 1; r < p->nranks; r++)
      if (load[r] < load[best]) best = r;
    p->owner[order[k].idx] = best;
    load[best] += order[k].bytes + 1; /* +1: empty shards still spread out */
  }
  free(load);
  free(order);
}

void rt_plan_pairs_only(int nranks, rt_plan *p) {
  memset(p, 0, sizeof *p);
  p->nranks = nranks;
  p->user_seed = 0x7573657273ULL;
  p->pair_seed = 0x7061697273ULL;
}

/* Rank 0's part: list, stat and assign. */
static int plan_local(const char *logs, int nranks, rt_plan *p, rt_err *err) {
  rt_plan_pairs_only(nranks, p); /* fixed seeds: plans are reproducible */
  int rc = list_shards(logs, p, err);
  if (rc) return rc;
  assign(p);
  return RT_OK;
}

int rt_plan_build(const char *logs, MPI_Comm comm, rt_plan *p, rt_err *err) {
  double t0 = rt_stage_begin();
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  int rc = RT_OK;
  char *blob = NULL;
  size_t blen = 0;
  if (rank == 0) {
    rc = plan_local(logs, size, p, err);
    if (rc == RT_OK) {
      /* Serialise as: n, then per shard bytes, owner, path\0. */
      RT_VEC(char) b = {0};
      uint64_t n = p->nshards;
      rt_vec_reserve(&b, 8);
      memcpy(b.data, &n, 8);
      b.len = 8;
      for (size_t i = 0; i < p->nshards; i++) {
        size_t pl = strlen(p->shards[i]) + 1;
        rt_vec_reserve(&b, b.len + 12 + pl);
        memcpy(b.data + b.len, &p->bytes[i], 8);
        memcpy(b.data + b.len + 8, &p->owner[i], 4);
        memcpy(b.data + b.len + 12, p->shards[i], pl);
        b.len += 12 + pl;
      }
      blob = b.data;
      blen = b.len;
    }
  }
  rc = rt_agree(comm, rc, err);
  if (rc) {
    if (rank == 0) rt_plan_free(p);
    return rc;
  }
  rt_bcast_bytes(comm, 0, (void **)&blob, &blen);
  if (rank != 0) {
    rt_plan_pairs_only(size, p);
    uint64_t n;
    memcpy(&n, blob, 8);
    p->nshards = n;
    p->shards = rt_xmalloc((n ? n : 1) * sizeof *p->shards);
    p->bytes = rt_xmalloc((n ? n : 1) * sizeof *p->bytes);
    p->owner = rt_xmalloc((n ? n : 1) * sizeof *p->owner);
    size_t off = 8;
    for (size_t i = 0; i < n; i++) {
      memcpy(&p->bytes[i], blob + off, 8);
      memcpy(&p->owner[i], blob + off + 8, 4);
      p->shards[i] = rt_xstrdup(blob + off + 12);
      off += 12 + strlen(blob + off + 12) + 1;
    }
  }
  free(blob);
  for (size_t i = 0; i < p->nshards; i++)
    if (p->owner[i] == rank) {
      rt_metric_add(RT_M_plan_shards, 1);
      rt_metric_add(RT_M_plan_bytes, p->bytes[i]);
    }
  rt_stage_end(RT_M_plan_us, t0);
  return RT_OK;
}

void rt_plan_free(rt_plan *p) {
  for (size_t i = 0; i < p->nshards; i++) free(p->shards[i]);
  free(p->shards);
  free(p->bytes);
  free(p->owner);
  memset(p, 0, sizeof *p);
}
