/* batch.c — the provider-neutral batch runner (batch.h): frame and split a
 * rank's calls into batches, record them durably before polling, poll with
 * backoff, collect by id, retry failed lines, resume from the records, and
 * `ragtide batches`. */
#include "llm/batch.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/metrics.h"
#include "base/util.h"
#include "llm/keys.h"

#define MAX_RESP (1u << 30) /* an output file of 50,000 answers is far below */
#define POLL_ERRORS 20      /* transient poll failures in a row before the run fails (exit 4; resumable) */

struct rt_batch {
  const rt_batch_provider *p;
  rt_bhttp h;
  char *model;
  char *dir;        /* the run directory */
  char *record;     /* dir/batches-r<rank>.jsonl */
  int rank;
  int retry_batch;  /* llm.batch_retry = batch */
  int64_t max_attempts;
  double deadline, poll_s, poll_max_s;
  size_t max_requests, max_bytes;
  rt_batch_input input;  /* llm.batch_input */
  json_t *report;   /* the last run's batches */
};

/* Wall-clock seconds (records, the summary); rt_now() is monotonic. */
static double wall(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int rt_batch_api(const char *api) { return api && (!strcmp(api, "openai-batch") || !strcmp(api, "gemini-batch")); }

/* --- HTTP ------------------------------------------------------------------ */

typedef struct buf {
  char *p;
  size_t len, cap;
  int over;
} buf;

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud) {
  buf *b = ud;
  size_t n = size * nmemb;
  if (rt_buf_append(&b->p, &b->len, &b->cap, p, n, MAX_RESP, 65536)) {
    b->over = 1;
    return 0; /* aborts the transfer */
  }
  return n;
}

/* A response header named want (case-insensitive) into got. */
typedef struct hdr {
  const char *want;
  char *got;
  size_t cap;
} hdr;

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud) {
  hdr *w = ud;
  size_t n = size * nmemb, wl = strlen(w->want);
  if (n > wl + 1 && !strncasecmp(p, w->want, wl) && p[wl] == ':') {
    const char *v = p + wl + 1, *end = p + n;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
    snprintf(w->got, w->cap, "%.*s", (int)(end - v), v);
  }
  return n;
}

/* rt_bhttp_do with, for a POST, extra headers in place of the JSON
 * Content-Type (NULL: none) and a response header to read (w NULL: none). */
static int http_do(rt_bhttp *h, const char *method, const char *url, const char *body, size_t len, curl_mime *mime,
                   const struct curl_slist *extra, hdr *w, long *status, char **resp, size_t *rlen, rt_err *err) {
  CURL *e = h->e;
  curl_easy_reset(e);
  buf b = {0};
  char eb[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, eb);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, h->timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "ragtide-llm-batch/0.1");
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  struct curl_slist *hs = NULL; /* the key headers + extra */
  if (extra) {
    for (const struct curl_slist *x = h->auth_h; x; x = x->next) hs = curl_slist_append(hs, x->data);
    for (const struct curl_slist *x = extra; x; x = x->next) hs = curl_slist_append(hs, x->data);
  }
  if (w) {
    *w->got = '\0';
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, w);
  }
  if (h->insecure) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (mime) {
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->auth_h);
    curl_easy_setopt(e, CURLOPT_MIMEPOST, mime);
  } else if (!strcmp(method, "POST")) {
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, extra ? hs : h->json_h);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
  } else {
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->auth_h);
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  }
  CURLcode cr = curl_easy_perform(e);
  curl_slist_free_all(hs);
  *status = 0;
  h->last_status = 0;
  if (cr != CURLE_OK) {
    free(b.p);
    char msg[CURL_ERROR_SIZE + 64];
    snprintf(msg, sizeof msg, "%s", *eb ? eb : curl_easy_strerror(cr));
    rt_redact(msg, sizeof msg);
    return rt_err_set(err, RT_ERR_ENDPOINT, "%s %s: %s%s", method, url, b.over ? "answer too large: " : "", msg);
  }
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
  h->last_status = *status;
  if (!b.p) b.p = rt_xstrdup("");
  *resp = b.p;
  *rlen = b.len;
  return RT_OK;
}

int rt_bhttp_do(rt_bhttp *h, const char *method, const char *url, const char *body, size_t len, curl_mime *mime,
                long *status, char **resp, size_t *rlen, rt_err *err) {
  return http_do(h, method, url, body, len, mime, NULL, NULL, status, resp, rlen, err);
}

/* http_do, then a non-2xx answer as the error (rt_bhttp_fail); *resp is
 * the caller's only on success. */
static int http_ok(rt_bhttp *h, const char *method, const char *url, const char *body, size_t len, curl_mime *mime,
                   const struct curl_slist *extra, hdr *w, char **resp, size_t *rlen, rt_err *err) {
  long status = 0;
  *resp = NULL;
  *rlen = 0;
  int rc = http_do(h, method, url, body, len, mime, extra, w, &status, resp, rlen, err);
  if (rc == RT_OK && status / 100 != 2) rc = rt_bhttp_fail(method, url, status, *resp, *rlen, err);
  if (rc) {
    free(*resp);
    *resp = NULL;
    *rlen = 0;
  }
  return rc;
}

int rt_bhttp_post_h(rt_bhttp *h, const char *url, const char *body, size_t len, const struct curl_slist *extra,
                    const char *want, char *got, size_t cap, char **resp, size_t *rlen, rt_err *err) {
  hdr w = {want, got, cap};
  return http_ok(h, "POST", url, body, len, NULL, extra, want ? &w : NULL, resp, rlen, err);
}

int rt_bhttp_fail(const char *method, const char *url, long status, const char *resp, size_t rlen, rt_err *err) {
  char m[400];
  rt_llm_error_message(resp ? resp : "", resp ? rlen : 0, m, sizeof m);
  rt_redact(m, sizeof m);
  const char *hint = status == 401 || status == 403 ? " — check the key in llm.api_key_env / llm.api_key_file"
                     : status == 404                ? " — check llm.base_url and llm.model (does the endpoint offer "
                                                      "the Batch API?)"
                                                    : "";
  return rt_err_set(err, RT_ERR_ENDPOINT, "%ld from %s %s: %s%s", status, method, url, *m ? m : "(no message)", hint);
}

int rt_bhttp_ok(rt_bhttp *h, const char *method, const char *url, const char *body, size_t len, curl_mime *mime,
                char **resp, size_t *rlen, rt_err *err) {
  return http_ok(h, method, url, body, len, mime, NULL, NULL, resp, rlen, err);
}

int rt_bhttp_jsonl(rt_bhttp *h, const char *url, rt_jsonl_fn fn, void *ud, rt_err *err) {
  char *resp;
  size_t rl;
  int rc = rt_bhttp_ok(h, "GET", url, NULL, 0, NULL, &resp, &rl, err);
  if (rc) return rc;
  const char *p = resp, *end = resp + rl;
  long lineno = 0;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
    lineno++;
    if (l) {
      json_error_t je;
      json_t *ln = json_loadb(p, l, 0, &je);
      fn(ud, ln, lineno);
      json_decref(ln);
    }
    p += l + 1;
  }
  free(resp);
  return RT_OK;
}

json_t *rt_bhttp_json(rt_bhttp *h, const char *method, const char *url, const char *body, size_t len,
                      curl_mime *mime, rt_err *err) {
  char *resp;
  size_t rl;
  if (rt_bhttp_ok(h, method, url, body, len, mime, &resp, &rl, err)) return NULL;
  json_error_t je;
  json_t *v = json_loadb(resp, rl, 0, &je);
  free(resp);
  if (!v) rt_err_set(err, RT_ERR_ENDPOINT, "%s %s: the answer is not JSON (%s at byte %d)", method, url, je.text,
                     je.position);
  return v;
}

/* The last exchange failed in a way worth retrying: no response, 429, 5xx. */
static int transient(const rt_bhttp *h) { return h->last_status == 0 || h->last_status == 429 || h->last_status >= 500; }

static void sleep_s(double s) {
  if (s <= 0) return;
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  nanosleep(&ts, NULL);
}

/* --- set-up ------------------------------------------------------------------ */

static char *run_dir_of(const rt_config *cfg) {
  if (cfg->run_dir && *cfg->run_dir) return rt_xstrdup(cfg->run_dir);
  size_t n = strlen(cfg->table) + 8;
  char *d = rt_xmalloc(n);
  snprintf(d, n, "%s.run", cfg->table);
  return d;
}

static int http_init(const rt_config *cfg, int gemini, rt_bhttp *h, rt_err *err) {
  memset(h, 0, sizeof *h);
  const char *base = cfg->base_url ? cfg->base_url : "";
  if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)
    return rt_err_set(err, RT_ERR_USAGE, "llm.base_url = \"%s\" must start with http:// or https://", base);
  char *key = NULL;
  int rc = rt_llm_read_key(cfg, &key, err);
  if (rc == RT_OK) rc = rt_llm_build_headers(gemini, key, cfg->headers, &h->json_h, err);
  if (key) {
    memset(key, 0, strlen(key));
    free(key);
  }
  if (rc) return rc;
  for (struct curl_slist *s = h->json_h; s; s = s->next)
    if (strncasecmp(s->data, "Content-Type:", 13) != 0) h->auth_h = curl_slist_append(h->auth_h, s->data);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(h->e = curl_easy_init()))
    return rt_err_set(err, RT_ERR_INTERNAL, "libcurl unusable (curl_easy_init failed)");
  h->base = rt_xstrdup(base);
  size_t bl = strlen(h->base);
  if (bl && h->base[bl - 1] == '/') h->base[bl - 1] = '\0';
  h->timeout_ms = (long)(cfg->timeout_ms > 120000 ? cfg->timeout_ms : 120000); /* uploads and downloads are big */
  h->connect_timeout_ms = (long)cfg->connect_timeout_ms;
  h->insecure = cfg->insecure;
  return RT_OK;
}

static void http_free(rt_bhttp *h) {
  if (h->e) curl_easy_cleanup(h->e);
  curl_slist_free_all(h->json_h);
  curl_slist_free_all(h->auth_h);
  free(h->base);
  memset(h, 0, sizeof *h);
}

int rt_batch_new(const rt_config *cfg, int rank, rt_batch **out, rt_err *err) {
  *out = NULL;
  rt_batch *b = rt_xcalloc(1, sizeof *b);
  b->p = !strcmp(cfg->api, "gemini-batch") ? &rt_batch_gemini : &rt_batch_openai;
  int rc = http_init(cfg, b->p == &rt_batch_gemini, &b->h, err);
  if (rc) {
    http_free(&b->h);
    free(b);
    return rc;
  }
  b->model = rt_xstrdup(cfg->model);
  b->dir = run_dir_of(cfg);
  size_t n = strlen(b->dir) + 32;
  b->record = rt_xmalloc(n);
  snprintf(b->record, n, "%s/batches-r%d.jsonl", b->dir, rank);
  b->rank = rank;
  b->retry_batch = cfg->batch_retry && !strcmp(cfg->batch_retry, "batch");
  b->max_attempts = cfg->max_attempts;
  b->deadline = (double)cfg->batch_deadline;
  b->poll_s = cfg->batch_poll_s;
  b->poll_max_s = cfg->batch_poll_max_s;
  b->max_requests = cfg->batch_max_requests > 0 ? (size_t)cfg->batch_max_requests : b->p->max_requests;
  const char *in = cfg->batch_input ? cfg->batch_input : "auto";
  b->input = !strcmp(in, "inline") ? RT_BATCH_INPUT_INLINE : !strcmp(in, "file") ? RT_BATCH_INPUT_FILE
                                                                                 : RT_BATCH_INPUT_AUTO;
  /* Inline requests only: a batch must fit the inline limit; otherwise the
   * input file's, and by default less (a batch is framed in memory). */
  size_t cap = b->input == RT_BATCH_INPUT_INLINE && b->p->inline_bytes ? b->p->inline_bytes : b->p->max_bytes;
  b->max_bytes = cfg->batch_max_bytes > 0 ? (size_t)cfg->batch_max_bytes : b->p->default_bytes;
  if (b->max_requests > b->p->max_requests) b->max_requests = b->p->max_requests;
  if (b->max_bytes > cap) b->max_bytes = cap;
  *out = b;
  return RT_OK;
}

void rt_batch_free(rt_batch *b) {
  if (!b) return;
  http_free(&b->h);
  free(b->model);
  free(b->dir);
  free(b->record);
  json_decref(b->report);
  free(b);
}

json_t *rt_batch_report(const rt_batch *b) { return b && b->report ? json_incref(b->report) : json_array(); }

/* --- records (docs/formats.md §6.1) ------------------------------------------- */

/* Append one JSON line to the rank's record and fsync it (and the directory
 * when the file is new): on disk before the caller goes on. */
static int record_put_at(rt_batch *b, const char *path, json_t *line, rt_err *err) {
  if (rt_mkdir_parent(b->record) != 0 && errno != EEXIST)
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot create the run directory %s: %s (set output.run_dir)", b->dir,
                      strerror(errno));
  mkdir(b->dir, 0755);
  char *s = json_dumps(line, JSON_COMPACT);
  size_t l = strlen(s);
  s = rt_xrealloc(s, l + 2);
  s[l++] = '\n';
  struct stat st;
  int fresh = stat(path, &st) != 0;
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  int rc = RT_OK;
  if (fd < 0 || write(fd, s, l) != (ssize_t)l || fsync(fd) != 0)
    rc = rt_err_set(err, RT_ERR_OUTPUT, "cannot record batch ids in %s: %s", path, strerror(errno));
  if (fd >= 0) close(fd);
  free(s);
  if (rc == RT_OK && fresh) rc = rt_fsync_dir_of(path, err);
  return rc;
}

static int record_put(rt_batch *b, json_t *line, rt_err *err) { return record_put_at(b, b->record, line, err); }

typedef struct rec {
  char id[160];
  char provider[16];
  char ids[256];     /* the ids file, relative to the run directory */
  int64_t requests, round, rank;
  int64_t submitted_at, ended_at;
  char state[48];    /* the last recorded state ("" while not ended) */
  int64_t ok, failed;
  char label[128];   /* the name the provider knows it by (OpenAI metadata.ragtide, Gemini displayName) */
  int pending;       /* a "submitting" line with no "submitted" after it: id unknown */
} rec;
typedef RT_VEC(rec) rec_vec;

static rec *rec_find(rec_vec *v, const char *id) {
  for (size_t i = 0; i < v->len; i++)
    if (!strcmp(v->data[i].id, id)) return &v->data[i];
  return NULL;
}

/* Every rank's records under dir (a record file from another rank count
 * is read too: its lines are matched by id). */
static void records_load(const char *dir, rec_vec *out) {
  size_t n = strlen(dir) + 32;
  char *pat = rt_xmalloc(n);
  snprintf(pat, n, "%s/batches-r*.jsonl", dir);
  glob_t g;
  memset(&g, 0, sizeof g);
  if (glob(pat, 0, NULL, &g) == 0) {
    for (size_t f = 0; f < g.gl_pathc; f++) {
      FILE *fp = fopen(g.gl_pathv[f], "r");
      if (!fp) continue;
      char *line = NULL;
      size_t cap = 0;
      ssize_t l;
      while ((l = getline(&line, &cap, fp)) > 0) {
        json_error_t je;
        json_t *j = json_loadb(line, (size_t)l, 0, &je);
        const char *ev = json_string_value(json_object_get(j, "event"));
        const char *id = json_string_value(json_object_get(j, "id"));
        if (ev && !id && !strcmp(ev, "submitting")) id = "";
        if (!ev || !id) { /* a torn last line (killed while writing): nothing was submitted after it */
          json_decref(j);
          continue;
        }
        rec *r = *id ? rec_find(out, id) : NULL;
        const char *idsn = json_string_value(json_object_get(j, "ids"));
        rec *intent = NULL;
        for (size_t k = 0; idsn && k < out->len && !intent; k++)
          if (out->data[k].pending && !strcmp(out->data[k].ids, idsn)) intent = &out->data[k];
        if (!strcmp(ev, "submitted") && intent && !r) { /* the intent resolved */
          snprintf(intent->id, sizeof intent->id, "%s", id);
          intent->pending = 0;
          intent->submitted_at = json_integer_value(json_object_get(j, "at"));
        } else if ((!strcmp(ev, "submitted") || !strcmp(ev, "submitting")) && !r && !intent) {
          rec x = {0};
          snprintf(x.id, sizeof x.id, "%s", id);
          const char *p = json_string_value(json_object_get(j, "provider"));
          const char *ids = json_string_value(json_object_get(j, "ids"));
          snprintf(x.provider, sizeof x.provider, "%s", p ? p : "");
          snprintf(x.ids, sizeof x.ids, "%s", ids ? ids : "");
          x.requests = json_integer_value(json_object_get(j, "requests"));
          x.round = json_integer_value(json_object_get(j, "round"));
          x.rank = json_integer_value(json_object_get(j, "rank"));
          x.submitted_at = json_integer_value(json_object_get(j, "at"));
          const char *lab = json_string_value(json_object_get(j, "label"));
          snprintf(x.label, sizeof x.label, "%s", lab ? lab : "");
          x.pending = !strcmp(ev, "submitting");
          rt_vec_push(out, x);
        } else if (r && (!strcmp(ev, "ended") || !strcmp(ev, "cancel"))) {
          const char *s = json_string_value(json_object_get(j, "state"));
          snprintf(r->state, sizeof r->state, "%s", s ? s : ev);
          r->ended_at = json_integer_value(json_object_get(j, "at"));
          r->ok = json_integer_value(json_object_get(j, "ok"));
          r->failed = json_integer_value(json_object_get(j, "failed"));
        }
        json_decref(j);
      }
      free(line);
      fclose(fp);
    }
  }
  globfree(&g);
  free(pat);
}

/* --- one run ------------------------------------------------------------------ */

enum { C_NEW = 0, C_PENDING, C_OK, C_RETRY, C_FAILED };

typedef struct keyidx {
  uint64_t key, tag;
  uint32_t idx;
} keyidx;

typedef struct bent {
  char id[160];
  char ids_file[256];
  uint32_t *calls;   /* call index of each line in order; UINT32_MAX: not one of this run's calls */
  size_t n;
  int round, adopted, terminal, collected;
  char state[48];
  int64_t ok, failed, done, total;
  double submitted_at, ended_at, next_poll, interval;
  int errors;        /* polls (or downloads) that failed in a row */
} bent;

typedef struct brun {
  rt_batch *b;
  rt_llm_client *c;
  const rt_llm_call *calls;
  rt_llm_answer *answers;
  size_t n;
  char **bodies;
  size_t *lens;
  char (*ids)[40];
  uint64_t *keys;
  keyidx *index;
  uint8_t *st;
  uint8_t *tries;     /* batch attempts per call */
  char **why;         /* last failure reason per call */
  RT_VEC(bent) batches;
  size_t done;        /* calls complete (answered or failed for good) */
  uint64_t lines_failed;
  bent *cur;          /* the batch being collected */
  rt_err *err;
} brun;

static int cmp_keyidx(const void *a, const void *b) {
  const keyidx *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  if (x->tag != y->tag) return x->tag < y->tag ? -1 : 1;
  return 0;
}

/* The call a custom_id names, or -1. */
static long call_of(const brun *r, const char *id) {
  if (!id) return -1;
  unsigned long long tag, key;
  char tail;
  if (sscanf(id, "%16llx-%16llx%c", &tag, &key, &tail) != 2) return -1;
  keyidx k = {key, tag, 0};
  keyidx *f = bsearch(&k, r->index, r->n, sizeof *r->index, cmp_keyidx);
  return f ? (long)f->idx : -1;
}

static void deliver(brun *r, size_t i) {
  rt_llm_hooks *h = rt_llm_client_hooks(r->c);
  r->done++;
  if (h->on_answer) h->on_answer(h->ud, i, &r->answers[i]);
}

static void set_why(brun *r, size_t i, const char *why) {
  free(r->why[i]);
  r->why[i] = rt_xstrdup(why ? why : "failed");
}

/* A collected line. */
static void on_line(void *ud, const char *id, long index, const char *body, size_t len, const char *why) {
  brun *r = ud;
  bent *be = r->cur;
  long i = call_of(r, id);
  if (i < 0 && !id && index >= 0 && (size_t)index < be->n && be->calls[index] != UINT32_MAX) i = be->calls[index];
  /* not ours, or settled; an answer also settles a call another batch failed */
  if (i < 0 || !(r->st[i] == C_PENDING || (body && r->st[i] == C_RETRY))) return;
  rt_llm_stats *s = rt_llm_client_stats_mut(r->c);
  if (body) {
    char *text = NULL, w[256] = "";
    rt_llm_usage u = {-1, -1};
    if (rt_llm_parse_response(rt_llm_client_fmt(r->c), body, len, &text, &u, w, sizeof w) == RT_OK) {
      rt_llm_answer *a = &r->answers[i];
      a->ok = 1;
      a->text = text;
      a->attempts = r->tries[i];
      a->http_status = 200;
      r->st[i] = C_OK;
      s->answered++;
      be->ok++;
      if (u.prompt_tokens > 0) {
        s->prompt_tokens += (uint64_t)u.prompt_tokens;
        rt_metric_add(RT_M_infer_batch_prompt_tokens, (uint64_t)u.prompt_tokens);
      }
      if (u.completion_tokens > 0) {
        s->completion_tokens += (uint64_t)u.completion_tokens;
        rt_metric_add(RT_M_infer_batch_completion_tokens, (uint64_t)u.completion_tokens);
      }
      deliver(r, (size_t)i);
      return;
    }
    s->bad_responses++;
    char m[400];
    snprintf(m, sizeof m, "batch %s: unusable answer: %s", be->id, w);
    set_why(r, (size_t)i, m);
  } else {
    char m[600];
    snprintf(m, sizeof m, "batch %s: %s", be->id, why ? why : "failed");
    set_why(r, (size_t)i, m);
  }
  be->failed++;
  r->lines_failed++;
  rt_metric_add(RT_M_infer_batch_lines_failed, 1);
  r->st[i] = C_RETRY;
}

static void ids_path(const rt_batch *b, const char *name, char *out, size_t cap) {
  snprintf(out, cap, "%s/%s", b->dir, name);
}

/* Write the ids file of a batch about to be submitted (fsynced). */
static int write_ids(brun *r, const char *name, const uint32_t *sel, size_t k, rt_err *err) {
  char path[4096];
  ids_path(r->b, name, path, sizeof path);
  size_t len = k * 34;
  char *data = rt_xmalloc(len + 1), *p = data;
  for (size_t j = 0; j < k; j++) p += sprintf(p, "%s\n", r->ids[sel[j]]);
  int rc = rt_write_file_atomic(path, data, (size_t)(p - data), err);
  free(data);
  return rc;
}

/* Submit calls sel[0..k) as one batch of round `round`. */
static int submit_one(brun *r, const uint32_t *sel, size_t k, int round, rt_err *err) {
  rt_batch *b = r->b;
  struct stat st;
  int seq = 1;
  char name[256];
  for (;; seq++) { /* a name no earlier attempt used */
    snprintf(name, sizeof name, "batch-r%d-%d.ids", b->rank, seq);
    char path[4096];
    ids_path(b, name, path, sizeof path);
    if (stat(path, &st) != 0) break;
  }
  if (rt_mkdir_parent(b->record) != 0 && errno != EEXIST)
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot create the run directory %s: %s (set output.run_dir)", b->dir,
                      strerror(errno));
  mkdir(b->dir, 0755);
  int rc = write_ids(r, name, sel, k, err);
  if (rc) return rc;
  char **ids = rt_xmalloc(k * sizeof *ids), **bodies = rt_xmalloc(k * sizeof *bodies);
  size_t *lens = rt_xmalloc(k * sizeof *lens);
  for (size_t j = 0; j < k; j++) {
    ids[j] = r->ids[sel[j]];
    bodies[j] = r->bodies[sel[j]];
    lens[j] = r->lens[sel[j]];
  }
  /* A label unique to this submission: a rerun that finds the intent below
   * but no id asks the provider for the batch by it. */
  char label[128], id[160] = "";
  struct timespec now_ts;
  clock_gettime(CLOCK_REALTIME, &now_ts);
  uint64_t nonce = rt_mix64(((uint64_t)now_ts.tv_sec << 30) ^ (uint64_t)now_ts.tv_nsec ^ ((uint64_t)getpid() << 16));
  snprintf(label, sizeof label, "ragtide-%012" PRIx64 "-%.*s", (uint64_t)(nonce & 0xffffffffffffULL), (int)(strlen(name) - 4),
           name);
  json_t *intent = json_pack("{s:s,s:s,s:s,s:s,s:I,s:i,s:i,s:I}", "event", "submitting", "provider", b->p->name,
                             "ids", name, "label", label, "requests", (json_int_t)k, "round", round, "rank", b->rank,
                             "at", (json_int_t)wall());
  rc = record_put(b, intent, err);
  json_decref(intent);
  if (rc) return rc;
  /* A transient failure (no response, 429, 5xx) is retried with backoff, up
   * to llm.max_attempts; a refusal (401, 400: over a limit) is not. */
  for (int64_t attempt = 1;; attempt++) {
    /* An earlier attempt may have reached the provider with its answer lost. */
    rt_err fe = {0};
    if (attempt > 1 && b->p->find(&b->h, label, id, sizeof id, &fe) == RT_OK && *id) {
      rc = RT_OK;
      break;
    }
    rc = b->p->submit(&b->h, b->model, label, b->input, ids, bodies, lens, k, id, sizeof id, err);
    if (rc == RT_OK || !transient(&b->h) || attempt >= b->max_attempts) break;
    double d = 2.0 * (double)(1 << (attempt < 6 ? attempt - 1 : 5));
    rt_warn("batch submission failed (attempt %lld of %lld), again in %.0f s: %s", (long long)attempt,
            (long long)b->max_attempts, d, err->msg);
    sleep_s(d);
  }
  free(ids);
  free(bodies);
  free(lens);
  if (rc) return rc;
  rt_test_pause("batch-submitted"); /* crash tests: accepted, its id not yet recorded */
  /* Recorded before anything else: a rerun finds it and never submits it again. */
  double now = wall();
  json_t *line = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:i,s:i,s:I}", "event", "submitted", "provider", b->p->name,
                           "id", id, "ids", name, "label", label, "requests", (json_int_t)k, "round", round, "rank",
                           b->rank, "at", (json_int_t)now);
  rc = record_put(b, line, err);
  json_decref(line);
  if (rc) return rc;
  bent be = {0};
  snprintf(be.id, sizeof be.id, "%s", id);
  snprintf(be.ids_file, sizeof be.ids_file, "%s", name);
  be.calls = rt_xmalloc(k * sizeof *be.calls);
  memcpy(be.calls, sel, k * sizeof *sel);
  be.n = k;
  be.round = round;
  be.submitted_at = now;
  be.interval = b->poll_s;
  be.next_poll = rt_now() + b->poll_s;
  be.total = (int64_t)k;
  snprintf(be.state, sizeof be.state, "submitted");
  rt_vec_push(&r->batches, be);
  for (size_t j = 0; j < k; j++) {
    r->st[sel[j]] = C_PENDING;
    r->tries[sel[j]]++;
  }
  rt_llm_stats *s = rt_llm_client_stats_mut(r->c);
  s->requests += k;
  if (round > 1) s->retries += k;
  rt_metric_add(RT_M_infer_batches, 1);
  rt_metric_add(RT_M_infer_batch_lines, k);
  rt_info("batch %s submitted (%s, %zu requests, round %d); recorded in %s", id, b->p->name, k, round, b->record);
  return RT_OK;
}

/* Submit the calls in state `want`, split by the limits. */
static int submit_all(brun *r, uint8_t want, int round, rt_err *err) {
  rt_batch *b = r->b;
  uint32_t *sel = rt_xmalloc((r->n ? r->n : 1) * sizeof *sel);
  size_t k = 0, bytes = 0;
  int rc = RT_OK;
  for (size_t i = 0; i <= r->n && rc == RT_OK; i++) {
    size_t lb = i < r->n ? b->p->line_bytes(strlen(r->ids[i]), r->lens[i]) : 0;
    int take = i < r->n && r->st[i] == want;
    if (k && (i == r->n || (take && (k >= b->max_requests || bytes + lb > b->max_bytes)))) {
      rc = submit_one(r, sel, k, round, err);
      k = bytes = 0;
    }
    if (take && rc == RT_OK) {
      if (lb > b->max_bytes) {
        set_why(r, i, "the request alone is over llm.batch_max_bytes");
        r->st[i] = C_RETRY; /* the synchronous endpoint takes it, or it fails */
        continue;
      }
      sel[k++] = (uint32_t)i;
      bytes += lb;
    }
  }
  free(sel);
  return rc;
}

/* Adopt recorded batches whose lines this run still needs. */
static int adopt(brun *r, rt_err *err) {
  (void)err;
  rec_vec recs = {0};
  records_load(r->b->dir, &recs);
  for (size_t q = 0; q < recs.len; q++) {
    rec *x = &recs.data[q];
    if (strcmp(x->provider, r->b->p->name) != 0) continue;
    char path[4096];
    ids_path(r->b, x->ids, path, sizeof path);
    char *data = NULL;
    size_t len = 0;
    rt_err e = {0};
    if (rt_read_file(path, &data, &len, &e) != RT_OK) {
      rt_warn("batch %s: its ids file %s is unreadable (%s); its lines are not collected", x->id, path, e.msg);
      continue;
    }
    RT_VEC(uint32_t) calls = {0};
    size_t mine = 0;
    for (char *p = data, *nl; p < data + len; p = nl + 1) {
      nl = memchr(p, '\n', (size_t)(data + len - p));
      if (!nl) break;
      *nl = '\0';
      long i = call_of(r, p);
      uint32_t v = UINT32_MAX;
      /* (a call may be in several recorded batches: a failed line and its
       * follow-up; whichever answers it settles it) */
      if (i >= 0 && (r->st[i] == C_NEW || r->st[i] == C_PENDING)) {
        v = (uint32_t)i;
        mine++;
      }
      rt_vec_push(&calls, v);
    }
    free(data);
    if (!mine) {
      free(calls.data);
      continue;
    }
    if (x->pending) {
      /* Killed between the provider accepting a batch and recording its id:
       * ask the provider for it by its label. */
      rt_err fe = {0};
      if (!*x->label || r->b->p->find(&r->b->h, x->label, x->id, sizeof x->id, &fe) != RT_OK) {
        rt_warn("a batch submission of an earlier attempt (%s) could not be looked up (%s); its requests are sent "
                "again", x->ids, *fe.msg ? fe.msg : "no label");
        free(calls.data);
        continue;
      }
      if (!*x->id) {
        rt_info("a batch submission of an earlier attempt (%s) never reached the provider; its requests are sent "
                "again", x->ids);
        free(calls.data);
        continue;
      }
      char rp[4096];
      snprintf(rp, sizeof rp, "%s/batches-r%lld.jsonl", r->b->dir, (long long)x->rank);
      json_t *line = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I}", "event", "submitted", "provider",
                               x->provider, "id", x->id, "ids", x->ids, "label", x->label, "requests",
                               (json_int_t)x->requests, "round", (json_int_t)x->round, "rank", (json_int_t)x->rank,
                               "at", (json_int_t)x->submitted_at);
      if (record_put_at(r->b, rp, line, &fe)) rt_warn("%s", fe.msg);
      json_decref(line);
      rt_info("batch %s of an earlier attempt found by its label %s (killed before its id was recorded)", x->id,
              x->label);
      x->pending = 0;
    }
    bent be = {0};
    snprintf(be.id, sizeof be.id, "%s", x->id);
    snprintf(be.ids_file, sizeof be.ids_file, "%s", x->ids);
    be.calls = calls.data;
    be.n = calls.len;
    be.round = (int)x->round;
    be.adopted = 1;
    be.submitted_at = (double)x->submitted_at;
    be.interval = r->b->poll_s;
    be.next_poll = 0; /* ask at once */
    be.total = (int64_t)calls.len;
    snprintf(be.state, sizeof be.state, "%s", *x->state ? x->state : "submitted");
    uint8_t round = (uint8_t)(x->round > 0 && x->round < 200 ? x->round : 1);
    for (size_t j = 0; j < be.n; j++)
      if (be.calls[j] != UINT32_MAX) {
        r->st[be.calls[j]] = C_PENDING;
        if (r->tries[be.calls[j]] < round) r->tries[be.calls[j]] = round;
      }
    rt_vec_push(&r->batches, be);
    rt_info("batch %s (%s, recorded by an earlier attempt) holds %zu of this rank's requests: collecting it, not "
            "submitting them again", x->id, x->provider, mine);
  }
  free(recs.data);
  return RT_OK;
}

/* Settle the lines of batch be after its end: collected, failed, or missing. */
static int collect(brun *r, bent *be, rt_batch_state *st, rt_err *err) {
  r->cur = be;
  int rc = r->b->p->collect(&r->b->h, be->id, st, on_line, r, err);
  r->cur = NULL;
  if (rc) return rc;
  for (size_t j = 0; j < be->n; j++) {
    uint32_t i = be->calls[j];
    if (i == UINT32_MAX || r->st[i] != C_PENDING) continue;
    char m[300];
    snprintf(m, sizeof m, "batch %s ended %s without an answer for this request", be->id, be->state);
    set_why(r, i, m);
    r->st[i] = C_RETRY;
    be->failed++;
    r->lines_failed++;
    rt_metric_add(RT_M_infer_batch_lines_failed, 1);
  }
  be->collected = 1;
  be->ended_at = wall();
  rt_metric_add(RT_M_infer_batches_collected, 1);
  json_t *line = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I}", "event", "ended", "id", be->id, "state", be->state, "ok",
                           (json_int_t)be->ok, "failed", (json_int_t)be->failed, "at", (json_int_t)be->ended_at);
  rt_err e = {0};
  if (record_put(r->b, line, &e)) rt_warn("%s", e.msg);
  json_decref(line);
  rt_info("batch %s %s: %lld answered, %lld failed, %.1f s after submission", be->id, be->state, (long long)be->ok,
          (long long)be->failed, be->ended_at - be->submitted_at);
  return RT_OK;
}

/* Failed lines: to a follow-up batch, to the synchronous endpoint, or failed for good. */
typedef struct sync_map {
  rt_llm_hooks orig;
  brun *r;
  const uint32_t *sel;
} sync_map;

/* A synchronous retry is complete: settle it and hand it to the caller's
 * hook under the caller's index, as it arrives (journaled at once). */
static void sync_on_answer(void *ud, size_t k, const rt_llm_answer *a) {
  sync_map *m = ud;
  uint32_t i = m->sel[k];
  m->r->done++;
  m->r->st[i] = a->ok ? C_OK : C_FAILED;
  if (m->orig.on_answer) m->orig.on_answer(m->orig.ud, i, a);
}

static int sync_poll(void *ud) {
  sync_map *m = ud;
  return m->orig.poll ? m->orig.poll(m->orig.ud) : 0;
}

static int retry_failed(brun *r, int round, rt_err *err) {
  size_t nretry = 0, nbatch = 0;
  for (size_t i = 0; i < r->n; i++) {
    if (r->st[i] != C_RETRY) continue;
    nretry++;
    if (r->b->retry_batch && r->tries[i] < r->b->max_attempts && r->lens[i] + 256 <= r->b->max_bytes) nbatch++;
  }
  if (!nretry) return RT_OK;
  if (r->b->retry_batch) {
    /* those out of attempts fail for good */
    for (size_t i = 0; i < r->n; i++)
      if (r->st[i] == C_RETRY && !(r->tries[i] < r->b->max_attempts && r->lens[i] + 256 <= r->b->max_bytes)) {
        rt_llm_answer *a = &r->answers[i];
        a->ok = 0;
        a->attempts = r->tries[i];
        a->error = rt_xstrdup(r->why[i] ? r->why[i] : "failed");
        r->st[i] = C_FAILED;
        rt_llm_client_stats_mut(r->c)->failed++;
        deliver(r, i);
      }
    if (nbatch) {
      rt_info("%zu failed lines go to a follow-up batch (llm.batch_retry = batch, round %d)", nbatch, round);
      return submit_all(r, C_RETRY, round, err);
    }
    return RT_OK;
  }
  /* llm.batch_retry = sync: one rt_llm_run of the synchronous client */
  uint32_t *sel = rt_xmalloc(nretry * sizeof *sel);
  rt_llm_call *sc = rt_xmalloc(nretry * sizeof *sc);
  rt_llm_answer *sa = rt_xcalloc(nretry, sizeof *sa);
  size_t k = 0;
  for (size_t i = 0; i < r->n; i++)
    if (r->st[i] == C_RETRY) sel[k] = (uint32_t)i, sc[k++] = r->calls[i];
  rt_info("%zu failed batch lines are retried through the synchronous endpoint (llm.batch_retry = sync)", nretry);
  rt_llm_hooks *h = rt_llm_client_hooks(r->c);
  sync_map m = {*h, r, sel};
  rt_llm_hooks mapped = {sync_on_answer, sync_poll, &m, h->grace_s};
  *h = mapped;
  int rc = rt_llm_run_sync(r->c, sc, nretry, sa, err);
  *h = m.orig;
  for (size_t j = 0; j < nretry; j++) {
    uint32_t i = sel[j];
    if (r->st[i] != C_OK && r->st[i] != C_FAILED) { /* abandoned by a stop */
      rt_llm_answer_free(&sa[j]);
      continue;
    }
    rt_llm_answer_free(&r->answers[i]);
    r->answers[i] = sa[j];
    r->answers[i].attempts += r->tries[i];
  }
  free(sa);
  free(sc);
  free(sel);
  return rc;
}

static void progress_line(brun *r) {
  /* batches by state, requests done, errors */
  char states[512] = "";
  size_t used = 0;
  for (size_t q = 0; q < r->batches.len; q++) {
    const char *s = r->batches.data[q].state;
    int seen = 0;
    for (size_t p = 0; p < q; p++) seen |= !strcmp(r->batches.data[p].state, s);
    if (seen) continue;
    size_t cnt = 0;
    for (size_t p = q; p < r->batches.len; p++) cnt += !strcmp(r->batches.data[p].state, s);
    used += (size_t)snprintf(states + used, used < sizeof states ? sizeof states - used : 0, "%s%zu %s",
                             used ? ", " : "", cnt, s);
    if (used >= sizeof states) break;
  }
  size_t ok = 0;
  for (size_t i = 0; i < r->n; i++) ok += r->st[i] == C_OK;
  rt_info("batches: %s; requests %zu of %zu answered, %llu failed lines", states, ok, r->n,
          (unsigned long long)r->lines_failed);
}

static json_t *report_of(const brun *r) {
  json_t *a = json_array();
  for (size_t q = 0; q < r->batches.len; q++) {
    const bent *be = &r->batches.data[q];
    json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:i,s:b}", "id", be->id, "provider", r->b->p->name, "state",
                          be->state, "requests", (json_int_t)be->n, "ok", (json_int_t)be->ok, "failed",
                          (json_int_t)be->failed, "round", be->round, "adopted", be->adopted);
    char ts[32];
    rt_format_utc((int64_t)be->submitted_at, ts, sizeof ts);
    json_object_set_new(o, "submitted_at", json_string(ts));
    if (be->collected) {
      rt_format_utc((int64_t)be->ended_at, ts, sizeof ts);
      json_object_set_new(o, "ended_at", json_string(ts));
      json_object_set_new(o, "seconds", json_real(be->ended_at - be->submitted_at));
    } else {
      json_object_set_new(o, "ended_at", json_null());
      json_object_set_new(o, "seconds", json_null());
    }
    json_array_append_new(a, o);
  }
  return a;
}

/* Remove this rank's record and its ids files once every line is settled. */
static void records_clear(brun *r) {
  rec_vec recs = {0};
  FILE *fp = fopen(r->b->record, "r");
  if (!fp) return;
  fclose(fp);
  records_load(r->b->dir, &recs); /* all ranks': remove the ids files of this rank's records only */
  for (size_t q = 0; q < recs.len; q++) {
    if (recs.data[q].rank != r->b->rank) continue;
    char path[4096];
    ids_path(r->b, recs.data[q].ids, path, sizeof path);
    unlink(path);
  }
  free(recs.data);
  unlink(r->b->record);
  rmdir(r->b->dir); /* only when empty */
}

int rt_batch_run(rt_batch *b, rt_llm_client *c, const rt_llm_call *calls, size_t n, rt_llm_answer *answers,
                 rt_err *err) {
  double t0 = rt_now(), t0w = wall();
  rt_llm_stats *s = rt_llm_client_stats_mut(c);
  if (n) memset(answers, 0, n * sizeof *answers);
  s->calls += n;
  json_decref(b->report);
  b->report = NULL;
  if (n == 0) return RT_OK;
  if (n > UINT32_MAX - 1) return rt_err_set(err, RT_ERR_USAGE, "%zu calls are too many for one batch run", n);
  brun r = {0};
  r.b = b;
  r.c = c;
  r.calls = calls;
  r.answers = answers;
  r.n = n;
  r.err = err;
  r.bodies = rt_xmalloc(n * sizeof *r.bodies);
  r.lens = rt_xmalloc(n * sizeof *r.lens);
  r.ids = rt_xmalloc(n * sizeof *r.ids);
  r.keys = rt_xmalloc(n * sizeof *r.keys);
  r.index = rt_xmalloc(n * sizeof *r.index);
  r.st = rt_xcalloc(n, 1);
  r.tries = rt_xcalloc(n, 1);
  r.why = rt_xcalloc(n, sizeof *r.why);
  for (size_t i = 0; i < n; i++) {
    r.bodies[i] = rt_llm_call_body(c, &calls[i], &r.lens[i], &r.keys[i]);
    snprintf(r.ids[i], sizeof r.ids[i], "%016" PRIx64 "-%016" PRIx64, calls[i].tag, r.keys[i]);
    r.index[i] = (keyidx){r.keys[i], calls[i].tag, (uint32_t)i};
  }
  qsort(r.index, n, sizeof *r.index, cmp_keyidx);

  rt_llm_hooks *h = rt_llm_client_hooks(c);
  int rc = adopt(&r, err);
  if (rc == RT_OK) rc = submit_all(&r, C_NEW, 1, err);
  int changed = 1;
  double last_line = 0;
  while (rc == RT_OK) {
    size_t open = 0;
    for (size_t q = 0; q < r.batches.len; q++) open += !r.batches.data[q].collected;
    if (!open) {
      int round = 1;
      for (size_t q = 0; q < r.batches.len; q++)
        if (r.batches.data[q].round >= round) round = r.batches.data[q].round + 1;
      size_t before = r.batches.len;
      rc = retry_failed(&r, round, err);
      if (rc || r.batches.len == before) break; /* nothing went to a follow-up batch: done */
      continue;
    }
    double now = rt_now();
    if (h->poll && h->poll(h->ud)) {
      rc = rt_err_set(err, RT_ERR_INTERRUPTED,
                      "the LLM stage was interrupted while %zu batches were processing; they go on at the provider "
                      "and are recorded in %s: a rerun collects them without submitting them again",
                      open, b->record);
      break;
    }
    if (b->deadline > 0 && now - t0 > b->deadline) {
      rc = rt_err_set(err, RT_ERR_INTERRUPTED,
                      "llm.batch_deadline = %.0f s passed with %zu batches still processing (recorded in %s); "
                      "nothing published — rerun the same command to collect them (none is submitted again)",
                      b->deadline, open, b->record);
      break;
    }
    double next = now + 1.0;
    for (size_t q = 0; q < r.batches.len && rc == RT_OK; q++) {
      bent *be = &r.batches.data[q];
      if (be->collected) continue;
      if (be->next_poll > now) {
        if (be->next_poll < next) next = be->next_poll;
        continue;
      }
      rt_batch_state st = {0};
      rt_err pe = {0};
      int prc = b->p->get(&b->h, be->id, &st, &pe);
      if (prc == RT_OK) {
        if (strcmp(st.state, be->state) != 0) changed = 1;
        snprintf(be->state, sizeof be->state, "%s", st.state);
        if (st.done >= 0) be->done = st.done;
        if (st.terminal) prc = collect(&r, be, &st, &pe);
      }
      json_decref(st.op);
      if (prc == RT_OK) {
        be->errors = 0;
      } else if (!transient(&b->h) || ++be->errors >= POLL_ERRORS) {
        /* a refusal (401, 404: the key or the batch is gone), or the endpoint down for that many polls */
        *err = pe;
        rc = prc;
        break;
      } else {
        rt_warn("batch %s: poll failed (%d in a row; the run fails after %d): %s", be->id, be->errors, POLL_ERRORS,
                pe.msg);
      }
      be->interval = be->interval * 2 < b->poll_max_s ? be->interval * 2 : b->poll_max_s;
      be->next_poll = rt_now() + be->interval;
      if (be->next_poll < next) next = be->next_poll;
    }
    if (rc) break;
    now = rt_now();
    if (changed || now - last_line >= 60) {
      progress_line(&r);
      changed = 0;
      last_line = now;
    }
    double wait = next - rt_now();
    if (wait > 1.0) wait = 1.0; /* the poll hook runs at least once a second */
    if (wait > 0) {
      struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
      nanosleep(&ts, NULL);
    }
  }
  if (rc == RT_OK) {
    for (size_t i = 0; i < n; i++) /* every call settled; nothing should be left */
      if (r.st[i] != C_OK && r.st[i] != C_FAILED) {
        r.answers[i].ok = 0;
        r.answers[i].error = rt_xstrdup(r.why[i] ? r.why[i] : "not answered");
        r.st[i] = C_FAILED;
        s->failed++;
        deliver(&r, i);
      }
    records_clear(&r);
  } else {
    /* unfinished calls: not answered, not counted failed (like an interrupted rt_llm_run) */
    for (size_t i = 0; i < n; i++)
      if (r.st[i] != C_OK && r.st[i] != C_FAILED) {
        free(r.answers[i].text);
        r.answers[i].text = NULL;
        r.answers[i].ok = 0;
      }
    if (rc == RT_ERR_INTERRUPTED) progress_line(&r);
  }
  double wait_s = 0;
  for (size_t q = 0; q < r.batches.len; q++)
    if (r.batches.data[q].collected && r.batches.data[q].ended_at - t0w > wait_s)
      wait_s = r.batches.data[q].ended_at - t0w;
  rt_metric_max(RT_M_infer_batch_wait_us, (uint64_t)(wait_s * 1e6));
  b->report = report_of(&r);
  for (size_t q = 0; q < r.batches.len; q++) free(r.batches.data[q].calls);
  free(r.batches.data);
  for (size_t i = 0; i < n; i++) free(r.bodies[i]), free(r.why[i]);
  free(r.bodies);
  free(r.lens);
  free(r.ids);
  free(r.keys);
  free(r.index);
  free(r.st);
  free(r.tries);
  free(r.why);
  s->seconds += rt_now() - t0;
  return rc;
}

/* --- ragtide batches ----------------------------------------------------------- */

int rt_batch_list(const rt_config *cfg, int cancel, int json, rt_err *err) {
  if (!rt_batch_api(cfg->api))
    return rt_err_set(err, RT_ERR_USAGE, "llm.api = %s: batches exist only for llm.api = openai-batch or gemini-batch",
                      cfg->api);
  rt_batch *b = NULL;
  int rc = rt_batch_new(cfg, 0, &b, err);
  if (rc) return rc;
  rec_vec recs = {0};
  records_load(b->dir, &recs);
  if (!json) {
    if (!recs.len) printf("no batches recorded in %s (none submitted, or the run that submitted them collected them)\n",
                          b->dir);
    else printf("%-28s %-8s %-5s %-22s %9s %9s %9s  %s\n", "batch", "provider", "rank", "state", "requests", "done",
                "failed", "submitted");
  }
  for (size_t q = 0; q < recs.len && rc == RT_OK; q++) {
    rec *x = &recs.data[q];
    const rt_batch_provider *p = !strcmp(x->provider, "gemini") ? &rt_batch_gemini : &rt_batch_openai;
    if (x->pending) {
      char found[160] = "";
      rt_err e = {0};
      if (p == b->p && *x->label) p->find(&b->h, x->label, found, sizeof found, &e);
      if (!*found) {
        if (!json) printf("%-28s %-8s %-5lld %-22s %9lld  (submission interrupted; the provider has no batch %s)\n",
                          "-", x->provider, (long long)x->rank, "never-submitted", (long long)x->requests, x->label);
        continue;
      }
      snprintf(x->id, sizeof x->id, "%s", found);
    }
    if (p != b->p) {
      rt_warn("batch %s was submitted with provider %s, not %s (llm.api): skipped", x->id, x->provider, b->p->name);
      continue;
    }
    rt_batch_state st = {0};
    rc = p->get(&b->h, x->id, &st, err);
    if (rc == RT_OK && cancel && !st.terminal) {
      rc = p->cancel(&b->h, x->id, err);
      if (rc == RT_OK) {
        json_t *line = json_pack("{s:s,s:s,s:I}", "event", "cancel_asked", "id", x->id, "at", (json_int_t)wall());
        rt_err e = {0};
        char path[4096]; /* noted in the record of the rank that submitted it */
        snprintf(path, sizeof path, "%s/batches-r%lld.jsonl", b->dir, (long long)x->rank);
        if (record_put_at(b, path, line, &e)) rt_warn("%s", e.msg);
        json_decref(line);
        json_decref(st.op);
        memset(&st, 0, sizeof st);
        rc = p->get(&b->h, x->id, &st, err);
      }
    }
    if (rc == RT_OK) {
      char ts[32];
      rt_format_utc(x->submitted_at, ts, sizeof ts);
      if (json) {
        json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:I,s:I,s:I,s:s,s:I}", "id", x->id, "provider", x->provider, "rank",
                              (json_int_t)x->rank, "state", st.state, "requests", (json_int_t)x->requests, "done",
                              (json_int_t)st.done, "failed", (json_int_t)st.failed, "submitted_at", ts, "round",
                              (json_int_t)x->round);
        char *s = json_dumps(o, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(o);
      } else {
        printf("%-28s %-8s %-5lld %-22s %9lld %9lld %9lld  %s\n", x->id, x->provider, (long long)x->rank, st.state,
               (long long)x->requests, (long long)st.done, (long long)st.failed, ts);
      }
    }
    json_decref(st.op);
  }
  fflush(stdout);
  free(recs.data);
  rt_batch_free(b);
  return rc;
}
