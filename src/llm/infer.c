/* infer.c — the request loop of the LLM client: a pool of reusable curl easy
 * handles on one multi handle driven by curl's socket interface over epoll
 * (curl_multi_poll polls every socket on each wake-up: O(in flight) per
 * answer; epoll touches only the ready ones), a retry heap with full-jitter
 * backoff, an adaptive request rate after 429s (AIMD, ratelimit.h), token
 * buckets for the rank's share of llm.rpm / llm.tpm, fail-fast, and the
 * majority vote of llm.samples.
 *
 * CPU per request is what limits a rank at thousands of requests in flight,
 * so the hot path avoids what curl and jansson would otherwise do per
 * request: bodies are spliced from pre-serialised pieces (request.c), the
 * easy handles and the header list are set up once, curl's verbose/debug
 * machinery stays off (the send count comes from CURLOPT_PREREQFUNCTION), and
 * a kept-alive connection stays registered in epoll between its requests
 * (curl removes and re-adds it around every transfer: two epoll_ctl calls
 * per request otherwise). */
#include "llm/infer.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <xxhash.h>

#include "base/log.h"
#include "base/util.h"
#include "llm/batch.h"
#include "llm/keys.h"
#include "llm/ratelimit.h"
#include "llm/request.h"

#define BACKOFF_BASE_S 0.1
#define BACKOFF_CAP_S 10.0
#define RETRY_AFTER_MAX_S 120.0 /* a Retry-After beyond this is taken as this */
#define MAX_RESPONSE (8u << 20) /* an answer is short; a bigger body is broken */
#define FAIL_SLACK 3            /* failed calls allowed above max_failed_fraction * n */
#define FAST_FAIL_CALLS 16      /* the first calls that, all refused, stop the run */
/* Slots per curl multi handle. curl 7.88 walks every connection of a multi
 * handle's cache on each request (ConnectionExists scans the host's bundle,
 * curl_multi_remove_handle runs close_connect_only over the whole cache):
 * O(concurrency) per request, ~25% of the CPU samples at 2048 in flight. Shards of
 * this many slots, each with its own multi handle and cache, bound it. */
#define SHARD_SLOTS 64

typedef struct job {
  char *body;        /* built at first dispatch, kept for retries */
  size_t len;
  uint32_t call, sample;
  uint32_t attempts;
  uint32_t n429;     /* attempts answered 429 (the backoff of other failures skips them) */
  uint32_t tokens;   /* estimate charged to the tpm bucket */
  int status;        /* last HTTP status */
  int conn_only;     /* every attempt so far failed to connect */
  int done;
} job;

struct rt_llm_client;

typedef struct shard {
  CURLM *multi;
  struct rt_llm_client *c;
  double timer_at;    /* curl's timeout deadline (rt_now seconds), < 0: none */
  uint32_t idx;
  int dirty;          /* socket_action ran on it since its messages were read */
} shard;

typedef struct slot {
  CURL *easy;
  shard *sh;          /* the multi handle this slot's easy handle always joins */
  job *j;
  char *buf;
  size_t len, cap;
  double retry_after; /* seconds, -1 if the response had none */
  int overflow;
  int sends;          /* requests sent in this transfer (> 1: curl resent it) */
  double started;     /* when the transfer was started (the AIMD window) */
  uint64_t seq;       /* start number of the transfer (c->nstarted before it) */
  double tok_seq;     /* tokens of the transfers started before it (c->tok_started) */
  char errbuf[CURL_ERROR_SIZE];
} slot;

typedef struct heap_item {
  double t;
  uint32_t job;
} heap_item;

struct rt_llm_client {
  rt_llm_reqfmt fmt;
  char *url;
  struct curl_slist *headers;
  shard *shards;
  size_t nshards;
  int epfd;           /* epoll set of curl's sockets */
  uint32_t *fds;      /* [nfds] per descriptor: FD_* state | shard index << 8, see on_socket */
  size_t nfds;
  double now;         /* the loop's clock, read once per turn (curl's timer uses it) */
  slot *slots;
  slot **free_slots;
  size_t nslots, nfree;
  int64_t max_attempts, samples, seed, rpm, tpm, timeout_ms;
  double max_failed_fraction;
  double not_before;  /* no new request before this time (Retry-After with nothing accepted) */
  rt_bucket req_bucket, tok_bucket;
  rt_aimd aimd;       /* adaptive request rate after 429s */
  rt_win429 win;      /* 429 share of the last 2 s: evidence of a real limit */
  uint32_t min_resp;  /* responses the window needs before its share counts (2 x concurrency, <= 1000) */
  /* OpenAI x-ratelimit-* headers: -1 absent (a 2xx had none), 0 not known
   * yet, 1 present (read on every response from then on). */
  int hdr_state;
  rt_hdr_quota hq_req, hq_tok;
  rt_bucket hdr_req, hdr_tok; /* this rank's share of the quota they show */
  int dns_checked;    /* the host name was looked up once (rt_llm_run) */
  uint64_t nstarted;  /* transfers started */
  double tok_started; /* their estimated tokens */
  double tok_inflight; /* estimated tokens of the transfers in flight */
  double hdr_margin_s; /* refill time kept in reserve (10 ms; x1.25 per quota 429 despite it, <= 250 ms) */
  rt_share share;
  rt_rng rng;
  rt_llm_stats stats;
  rt_llm_hooks hooks;
  rt_batch *batch;    /* llm.api = openai-batch | gemini-batch: rt_llm_run goes through batch.c */
};

/* --- curl callbacks -------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud) {
  slot *s = ud;
  size_t n = size * nmemb;
  if (rt_buf_append(&s->buf, &s->len, &s->cap, p, n, MAX_RESPONSE, 4096)) {
    s->overflow = 1;
    return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
  }
  return n;
}

/* A Retry-After value: delay-seconds only (an HTTP-date is ignored: backoff
 * applies), capped at RETRY_AFTER_MAX_S; -1 when unusable. */
static double parse_retry_after(const char *p, size_t n) {
  char tmp[64];
  size_t k = n < sizeof tmp - 1 ? n : sizeof tmp - 1;
  memcpy(tmp, p, k);
  tmp[k] = '\0';
  char *end;
  double v = strtod(tmp, &end);
  if (end == tmp || !(v >= 0) || !isfinite(v)) return -1;
  return v > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : v;
}

/* Retry-After is read only from the responses that use it (429, 503): with
 * curl's header API (7.84+) after the transfer, instead of a callback on
 * every header line of every response. */
#if LIBCURL_VERSION_NUM >= 0x075400
#define RT_HEADER_API 1
static double retry_after_of(CURL *e) {
  struct curl_header *h = NULL;
  if (curl_easy_header(e, "Retry-After", 0, CURLH_HEADER, -1, &h) != CURLHE_OK || !h || !h->value) return -1;
  return parse_retry_after(h->value, strlen(h->value));
}
static int header_num(CURL *e, const char *name, double *v) {
  struct curl_header *h = NULL;
  if (curl_easy_header(e, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK || !h || !h->value) return 0;
  char *end;
  double x = strtod(h->value, &end);
  if (end == h->value || !(x >= 0) || !isfinite(x)) return 0;
  *v = x;
  return 1;
}
static int header_dur(CURL *e, const char *name, double *v) {
  struct curl_header *h = NULL;
  if (curl_easy_header(e, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK || !h || !h->value) return 0;
  double x = rt_parse_duration(h->value);
  if (x < 0) return 0;
  *v = x;
  return 1;
}
#else
#define RT_HEADER_API 0
static size_t on_header(char *p, size_t size, size_t nmemb, void *ud) {
  slot *s = ud;
  size_t n = size * nmemb;
  if (n > 5 && memcmp(p, "HTTP/", 5) == 0)
    s->retry_after = -1; /* a new response (after 100 Continue or a redirect) */
  else if (n > 12 && strncasecmp(p, "retry-after:", 12) == 0)
    s->retry_after = parse_retry_after(p + 12, n - 12);
  return n;
}
#endif

/* curl silently resends a request whose reused connection died before any
 * byte came back (a server closing a keep-alive connection, a reset). The
 * endpoint saw each send, so count them: the pre-request callback runs once
 * per request curl makes on a connection, resends included. (Before curl
 * 7.80 the debug callback counts the request heads instead, at the cost of
 * curl's verbose formatting on every transfer.) */
#if LIBCURL_VERSION_NUM >= 0x075000
#define RT_HAVE_PREREQ 1
static int on_prereq(void *ud, char *ip, char *local_ip, int port, int local_port) {
  (void)ip;
  (void)local_ip;
  (void)port;
  (void)local_port;
  ((slot *)ud)->sends++;
  return CURL_PREREQFUNC_OK;
}
#else
#define RT_HAVE_PREREQ 0
/* Nothing here is printed (it holds the key). */
static int on_debug(CURL *e, curl_infotype type, char *data, size_t size, void *ud) {
  (void)e;
  (void)data;
  (void)size;
  if (type == CURLINFO_HEADER_OUT) ((slot *)ud)->sends++;
  return 0;
}
#endif

/* Descriptor states (c->fds). Sockets the client opened itself (FD_OWNED,
 * through on_opensocket) stay registered in epoll while their connection idles
 * between requests; curl's other descriptors (a resolver's pipe) are
 * registered only while curl watches them, because they are closed without
 * telling us. on_closesocket forgets an owned socket before closing it, so a
 * reused descriptor number never inherits a stale state. */
enum { FD_IN = 1, FD_OUT = 2, FD_REG = 4, FD_WATCHED = 8, FD_OWNED = 16 };

static uint32_t *fd_state(rt_llm_client *c, curl_socket_t fd) {
  if (fd < 0) return NULL;
  if ((size_t)fd >= c->nfds) {
    size_t n = c->nfds ? c->nfds : 256;
    while (n <= (size_t)fd) n *= 2;
    c->fds = rt_xrealloc(c->fds, n * sizeof *c->fds);
    memset(c->fds + c->nfds, 0, (n - c->nfds) * sizeof *c->fds);
    c->nfds = n;
  }
  return &c->fds[fd];
}

static void ep_set(rt_llm_client *c, curl_socket_t fd, uint32_t *st, unsigned want) {
  struct epoll_event ev = {0};
  ev.events = (want & FD_IN ? EPOLLIN : 0u) | (want & FD_OUT ? EPOLLOUT : 0u);
  ev.data.fd = fd;
  if (*st & FD_REG) {
    if ((*st & (FD_IN | FD_OUT)) == want) return; /* armed as wanted: the idle-connection case */
    if (epoll_ctl(c->epfd, EPOLL_CTL_MOD, fd, &ev) != 0 && errno == ENOENT)
      epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev);
  } else if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST) {
    epoll_ctl(c->epfd, EPOLL_CTL_MOD, fd, &ev);
  }
  *st = (*st & ~(uint32_t)(FD_IN | FD_OUT)) | FD_REG | want;
}

static void ep_del(rt_llm_client *c, curl_socket_t fd, uint32_t *st) {
  if (*st & FD_REG) epoll_ctl(c->epfd, EPOLL_CTL_DEL, fd, NULL); /* may already be closed: ignore errors */
  *st &= ~(uint32_t)(FD_REG | FD_IN | FD_OUT | FD_WATCHED);
}

/* curl tells which sockets to watch for what; mirror that in epoll. */
static int on_socket(CURL *e, curl_socket_t fd, int what, void *ud, void *sockp) {
  (void)e;
  (void)sockp;
  shard *sh = ud;
  rt_llm_client *c = sh->c;
  uint32_t *st = fd_state(c, fd);
  if (!st) return 0;
  if (what == CURL_POLL_REMOVE) {
    if (*st & FD_OWNED)
      *st &= ~(uint32_t)FD_WATCHED; /* leave it armed: the connection is likely reused next */
    else
      ep_del(c, fd, st);
    return 0;
  }
  ep_set(c, fd, st, (what & CURL_POLL_IN ? FD_IN : 0u) | (what & CURL_POLL_OUT ? FD_OUT : 0u));
  *st = (*st & 0xffu) | FD_WATCHED | (sh->idx << 8);
  return 0;
}

static curl_socket_t on_opensocket(void *ud, curlsocktype purpose, struct curl_sockaddr *a) {
  (void)purpose;
  rt_llm_client *c = ud;
  curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
  uint32_t *st = fd_state(c, fd);
  if (st) *st = FD_OWNED;
  return fd < 0 ? CURL_SOCKET_BAD : fd;
}

static int on_closesocket(void *ud, curl_socket_t fd) {
  rt_llm_client *c = ud;
  uint32_t *st = fd_state(c, fd);
  if (st) {
    ep_del(c, fd, st);
    *st = 0;
  }
  return close(fd);
}

static int on_timer(CURLM *m, long timeout_ms, void *ud) {
  (void)m;
  shard *sh = ud;
  /* The loop's clock, not a fresh clock_gettime: curl calls this several times
   * per request, and firing a little early only makes curl re-arm it. */
  sh->timer_at = timeout_ms < 0 ? -1 : sh->c->now + (double)timeout_ms / 1000.0;
  return 0;
}

/* --- heap of retries by ready time ---------------------------------------- */

typedef RT_VEC(heap_item) heap_t;

static void heap_push(heap_t *h, double t, uint32_t job) {
  heap_item it = {t, job};
  rt_vec_push(h, it);
  size_t i = h->len - 1;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (h->data[p].t <= h->data[i].t) break;
    heap_item tmp = h->data[p];
    h->data[p] = h->data[i];
    h->data[i] = tmp;
    i = p;
  }
}

static void heap_pop(heap_t *h) {
  h->data[0] = h->data[--h->len];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < h->len && h->data[l].t < h->data[m].t) m = l;
    if (r < h->len && h->data[r].t < h->data[m].t) m = r;
    if (m == i) break;
    heap_item tmp = h->data[m];
    h->data[m] = h->data[i];
    h->data[i] = tmp;
    i = m;
  }
}

/* --- client ---------------------------------------------------------------- */

static int64_t seed_of(const rt_llm_client *c, uint32_t sample) { return c->seed + (int64_t)sample; }

static void update_rates(rt_llm_client *c, double now) {
  double share = c->share.nactive > 0 ? (double)c->share.nactive : 1.0;
  c->aimd.ceiling = c->rpm > 0 ? (double)c->rpm / 60.0 / share : 0;
  double r = rt_aimd_effective(&c->aimd);
  if (r > 0) rt_bucket_set_rate(&c->req_bucket, r, fmax(1.0, r * 0.5), now);
  c->stats.rate_limit = c->aimd.rate;
  if (c->tpm > 0) {
    double t = (double)c->tpm / 60.0 / share;
    rt_bucket_set_rate(&c->tok_bucket, t, fmax(1.0, t * 0.5), now);
  }
}

int rt_llm_client_new(const rt_config *cfg, const rt_catalog *cat, rt_llm_client **out, rt_err *err) {
  *out = NULL;
  if (cfg->api && strcmp(cfg->api, "retrieval") == 0)
    return rt_err_set(err, RT_ERR_USAGE,
                      "llm.api = retrieval makes no LLM calls: no endpoint client is created for it");
  const char *base = cfg->base_url ? cfg->base_url : "";
  if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)
    return rt_err_set(err, RT_ERR_USAGE, "llm.base_url = \"%s\" must start with http:// or https://", base);
  if (cfg->concurrency < 1 || cfg->concurrency > 65536)
    return rt_err_set(err, RT_ERR_USAGE, "llm.concurrency = %lld: must be 1..65536",
                      (long long)cfg->concurrency);
  if (cfg->max_attempts < 1 || cfg->max_attempts > 100)
    return rt_err_set(err, RT_ERR_USAGE, "llm.max_attempts = %lld: must be 1..100", (long long)cfg->max_attempts);
  if (cfg->samples < 1 || cfg->samples > 1000)
    return rt_err_set(err, RT_ERR_USAGE, "llm.samples = %lld: must be 1..1000", (long long)cfg->samples);
  if (cfg->timeout_ms < 1 || cfg->connect_timeout_ms < 0)
    return rt_err_set(err, RT_ERR_USAGE, "llm.timeout_ms = %lld / llm.connect_timeout_ms = %lld: must be > 0",
                      (long long)cfg->timeout_ms, (long long)cfg->connect_timeout_ms);
  if (cfg->rpm < 0 || cfg->tpm < 0)
    return rt_err_set(err, RT_ERR_USAGE, "llm.rpm = %lld / llm.tpm = %lld: must be >= 0 (0 = unlimited)",
                      (long long)cfg->rpm, (long long)cfg->tpm);
  if (!(cfg->max_failed_fraction >= 0 && cfg->max_failed_fraction <= 1))
    return rt_err_set(err, RT_ERR_USAGE, "llm.max_failed_fraction = %g: must be in [0, 1]",
                      cfg->max_failed_fraction);

  rt_llm_client *c = rt_xcalloc(1, sizeof *c);
  c->epfd = -1;
  int rc = rt_llm_reqfmt_init(&c->fmt, cfg, cat, err);
  if (rc) {
    free(c);
    return rc;
  }
  char *key = NULL;
  rc = rt_llm_read_key(cfg, &key, err);
  if (!rc) rc = rt_llm_build_headers(c->fmt.api == RT_LLM_API_GEMINI, key, cfg->headers, &c->headers, err);
  if (key) {
    memset(key, 0, strlen(key));
    free(key);
  }
  if (rc) {
    rt_llm_reqfmt_free(&c->fmt);
    free(c);
    return rc;
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    curl_slist_free_all(c->headers);
    rt_llm_reqfmt_free(&c->fmt);
    free(c);
    return rt_err_set(err, RT_ERR_INTERNAL, "curl_global_init failed (libcurl unusable)");
  }
  c->url = rt_llm_endpoint_url(&c->fmt, base);
  c->max_attempts = cfg->max_attempts;
  c->samples = cfg->samples;
  c->seed = cfg->seed;
  c->rpm = cfg->rpm;
  c->tpm = cfg->tpm;
  c->timeout_ms = cfg->timeout_ms;
  c->max_failed_fraction = cfg->max_failed_fraction;
  rt_share_init(&c->share);
  if (rt_batch_api(cfg->api)) {
    rc = rt_batch_new(cfg, c->share.rank, &c->batch, err);
    if (rc) {
      rt_llm_client_free(c);
      return rc;
    }
  }
  c->rng.s = rt_mix64((uint64_t)cfg->seed ^ ((uint64_t)c->share.rank << 32) ^ 0x6c6c6d5f6a69ULL);
  double now = rt_now();
  c->now = now;
  rt_aimd_init(&c->aimd, 0, now);
  rt_win429_init(&c->win, now);
  c->min_resp = cfg->concurrency * 2 > 1000 ? 1000 : (uint32_t)cfg->concurrency * 2;
  c->hq_req.limit = c->hq_tok.limit = -1;
  c->hdr_margin_s = 0.01;
  rt_bucket_init(&c->hdr_req, 0, 1, now);
  rt_bucket_init(&c->hdr_tok, 0, 1, now);
#if !RT_HEADER_API
  c->hdr_state = -1; /* no header API: no pacing on x-ratelimit-* */
#endif
  rt_bucket_init(&c->req_bucket, 0, 1, now);
  rt_bucket_init(&c->tok_bucket, 0, 1, now);
  update_rates(c, now);
  c->req_bucket.level = c->req_bucket.cap;
  c->tok_bucket.level = c->tok_bucket.cap;

  c->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (c->epfd < 0) {
    rt_llm_client_free(c);
    return rt_err_set(err, RT_ERR_INTERNAL, "epoll_create1 failed: %s", strerror(errno));
  }
  int tls = strncmp(c->url, "https://", 8) == 0;
  c->nslots = (size_t)cfg->concurrency;
  c->nshards = (c->nslots + SHARD_SLOTS - 1) / SHARD_SLOTS;
  c->shards = rt_xcalloc(c->nshards, sizeof *c->shards);
  for (size_t i = 0; i < c->nshards; i++) {
    shard *sh = &c->shards[i];
    sh->c = c;
    sh->idx = (uint32_t)i;
    sh->timer_at = -1;
    sh->multi = curl_multi_init();
    if (!sh->multi) {
      rt_llm_client_free(c);
      return rt_err_set(err, RT_ERR_INTERNAL, "curl_multi_init failed for shard %zu (out of memory or descriptors?)",
                        i);
    }
    curl_multi_setopt(sh->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(sh->multi, CURLMOPT_SOCKETDATA, sh);
    curl_multi_setopt(sh->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(sh->multi, CURLMOPT_TIMERDATA, sh);
    /* Keep one idle connection per slot so every request finds a warm one. */
    curl_multi_setopt(sh->multi, CURLMOPT_MAXCONNECTS, (long)SHARD_SLOTS);
    curl_multi_setopt(sh->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  }
  c->slots = rt_xcalloc(c->nslots, sizeof *c->slots);
  c->free_slots = rt_xmalloc(c->nslots * sizeof *c->free_slots);
  for (size_t i = 0; i < c->nslots; i++) {
    slot *s = &c->slots[i];
    CURL *e = curl_easy_init();
    if (!e) {
      rt_llm_client_free(c);
      return rt_err_set(err, RT_ERR_INTERNAL, "curl_easy_init failed for slot %zu", i);
    }
    s->easy = e;
    s->sh = &c->shards[i / SHARD_SLOTS];
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
#if !RT_HEADER_API
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
#endif
    curl_easy_setopt(e, CURLOPT_PRIVATE, s);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf);
#if RT_HAVE_PREREQ
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, s);
#else
    curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, on_debug);
    curl_easy_setopt(e, CURLOPT_DEBUGDATA, s);
    curl_easy_setopt(e, CURLOPT_VERBOSE, 1L); /* only feeds on_debug; nothing is printed */
#endif
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, c);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_closesocket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, c);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)cfg->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    /* PIPEWAIT makes new transfers wait for an existing connection that may
     * multiplex. Over TLS, ALPN says so at the handshake; over plain http
     * (HTTP/1.1 here) curl only knows after the first response, so all but
     * one request of the first round would wait a whole answer latency. */
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, tls ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "ragtide-llm/0.1");
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (cfg->insecure) {
      curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    c->free_slots[c->nfree++] = s;
  }
  if (cfg->insecure && strncmp(c->url, "https://", 8) == 0)
    rt_warn("llm.insecure = true: the TLS certificate of %s is NOT verified; never use this in production",
            c->url);
  *out = c;
  return RT_OK;
}

void rt_llm_client_free(rt_llm_client *c) {
  if (!c) return;
  rt_batch_free(c->batch);
  for (size_t i = 0; i < c->nslots; i++) {
    if (c->slots[i].easy) curl_easy_cleanup(c->slots[i].easy);
    free(c->slots[i].buf);
  }
  for (size_t i = 0; i < c->nshards; i++)
    if (c->shards[i].multi) curl_multi_cleanup(c->shards[i].multi);
  free(c->shards);
  if (c->epfd >= 0) close(c->epfd);
  free(c->fds);
  free(c->slots);
  free(c->free_slots);
  curl_slist_free_all(c->headers);
  free(c->url);
  rt_llm_reqfmt_free(&c->fmt);
  rt_share_free(&c->share);
  free(c);
}

const rt_llm_stats *rt_llm_get_stats(const rt_llm_client *c) { return &c->stats; }

int rt_llm_latency_bucket(double ms) {
  if (!(ms >= 1.0)) return 0;
  int k = 1 + (int)floor(4.0 * log2(ms));
  return k > RT_LLM_LAT_BUCKETS - 1 ? RT_LLM_LAT_BUCKETS - 1 : k;
}

double rt_llm_latency_bucket_upper_ms(int k) {
  if (k <= 0) return 1.0;
  if (k >= RT_LLM_LAT_BUCKETS - 1) return INFINITY;
  return exp2((double)k / 4.0);
}

double rt_llm_latency_quantile(const uint64_t *b, double q) {
  uint64_t total = 0;
  for (int k = 0; k < RT_LLM_LAT_BUCKETS; k++) total += b[k];
  if (!total) return 0;
  double need = q * (double)total;
  uint64_t cum = 0;
  for (int k = 0; k < RT_LLM_LAT_BUCKETS; k++) {
    cum += b[k];
    if ((double)cum >= need && b[k])
      return k == RT_LLM_LAT_BUCKETS - 1 ? exp2((double)(k - 1) / 4.0) : rt_llm_latency_bucket_upper_ms(k);
  }
  return exp2((double)(RT_LLM_LAT_BUCKETS - 2) / 4.0);
}
void rt_llm_set_hooks(rt_llm_client *c, const rt_llm_hooks *h) {
  if (h) c->hooks = *h;
  else memset(&c->hooks, 0, sizeof c->hooks);
}
const char *rt_llm_client_url(const rt_llm_client *c) { return c->url; }

void rt_llm_answer_free(rt_llm_answer *a) {
  if (!a) return;
  free(a->text);
  free(a->error);
  a->text = a->error = NULL;
}

const rt_llm_reqfmt *rt_llm_client_fmt(const rt_llm_client *c) { return &c->fmt; }
rt_llm_stats *rt_llm_client_stats_mut(rt_llm_client *c) { return &c->stats; }
rt_llm_hooks *rt_llm_client_hooks(rt_llm_client *c) { return &c->hooks; }
int rt_llm_client_batch(const rt_llm_client *c) { return c && c->batch; }
json_t *rt_llm_batch_report(const rt_llm_client *c) { return c && c->batch ? rt_batch_report(c->batch) : NULL; }

static uint64_t key_of(const rt_llm_client *c, const char *body, size_t len) {
  XXH3_state_t *st = XXH3_createState();
  if (!st) {
    fprintf(stderr, "ragtide: out of memory hashing a request\n");
    exit(RT_ERR_NOMEM);
  }
  XXH3_64bits_reset(st);
  XXH3_64bits_update(st, c->fmt.model, strlen(c->fmt.model) + 1); /* the NUL separates model and body */
  XXH3_64bits_update(st, body, len);
  uint64_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return h;
}

char *rt_llm_call_body(const rt_llm_client *c, const rt_llm_call *call, size_t *len, uint64_t *key) {
  char *body = rt_llm_build_body_ex(&c->fmt, call->system, call->user, seed_of(c, 0), call->exclude,
                                    call->n_exclude, len);
  *key = key_of(c, body, *len);
  return body;
}

uint64_t rt_llm_request_key(const rt_llm_client *c, const rt_llm_call *call) {
  size_t len;
  uint64_t key;
  free(rt_llm_call_body(c, call, &len, &key));
  return key;
}

/* --- one run ---------------------------------------------------------------- */

typedef enum { OUT_OK, OUT_RETRY, OUT_FATAL } outcome;

typedef struct run {
  rt_llm_client *c;
  const rt_llm_call *calls;
  rt_llm_answer *answers;
  size_t n, njobs;
  job *jobs;
  char **stext;           /* [njobs] sample answers when samples > 1 */
  uint32_t *left;         /* [n] samples not finished per call */
  heap_t retry;
  size_t next_fresh, inflight, done_calls;
  size_t failed_calls;
  size_t early_done, early_conn; /* the first FAST_FAIL_CALLS finished calls */
  int conn_seen, responded;      /* a connection error / any HTTP response so far */
  int unresolved;                /* the host did not resolve before any response: stop */
  int abort;
  size_t n429;              /* 429s in this batch of answers */
  double b429_started;      /* the latest start among them */
  double b429_pause;        /* the longest Retry-After / retry delay among them */
  int b429_quota;           /* one of them said the quota is exhausted (Gemini RetryInfo) */
  char last_err[512];
} run;

static void set_answer_error(rt_llm_answer *a, const char *msg) {
  free(a->error);
  char buf[600];
  snprintf(buf, sizeof buf, "%s", msg);
  rt_redact(buf, sizeof buf);
  a->error = rt_xstrdup(buf);
}

/* Majority vote over normalised sample answers; ties go to the first. */
static void vote(run *r, uint32_t call) {
  size_t S = (size_t)r->c->samples;
  char **t = &r->stext[(size_t)call * S];
  char **norm = rt_xcalloc(S, sizeof *norm);
  size_t best = S, best_n = 0;
  for (size_t i = 0; i < S; i++) {
    if (!t[i]) continue;
    size_t need = rt_normalize_desc(t[i], NULL, 0);
    norm[i] = rt_xmalloc(need + 1);
    rt_normalize_desc(t[i], norm[i], need + 1);
  }
  for (size_t i = 0; i < S; i++) {
    if (!norm[i]) continue;
    size_t cnt = 0;
    for (size_t k = 0; k < S; k++)
      if (norm[k] && strcmp(norm[k], norm[i]) == 0) cnt++;
    if (cnt > best_n) {
      best_n = cnt;
      best = i;
    }
  }
  rt_llm_answer *a = &r->answers[call];
  if (best < S) {
    a->text = t[best];
    t[best] = NULL;
    a->ok = 1;
    free(a->error);
    a->error = NULL;
  }
  for (size_t i = 0; i < S; i++) {
    free(norm[i]);
    free(t[i]);
    t[i] = NULL;
  }
  free(norm);
}

/* A job reached its end (answered, or out of attempts / not retryable). */
static void job_final(run *r, job *j, char *text, const char *why) {
  rt_llm_client *c = r->c;
  rt_llm_answer *a = &r->answers[j->call];
  j->done = 1;
  free(j->body);
  j->body = NULL;
  a->attempts += (int)j->attempts;
  a->http_status = j->status;
  if (c->samples > 1) {
    r->stext[(size_t)j->call * (size_t)c->samples + j->sample] = text;
    if (text) c->stats.samples++;
  } else if (text) {
    a->text = text;
    a->ok = 1;
  }
  if (!text && why) set_answer_error(a, why);
  if (--r->left[j->call] > 0) return;
  /* The call is complete. */
  if (c->samples > 1) vote(r, j->call);
  r->done_calls++;
  int conn_only = !a->ok;
  if (!a->ok) {
    r->failed_calls++;
    c->stats.failed++;
    /* With samples, the call was refused only if every sample was. */
    for (uint32_t s = 0; s < c->samples && conn_only; s++)
      conn_only = r->jobs[(size_t)j->call * (size_t)c->samples + s].conn_only;
  }
  if (r->early_done < FAST_FAIL_CALLS) {
    r->early_done++;
    if (conn_only) r->early_conn++;
  }
  if (c->hooks.on_answer) c->hooks.on_answer(c->hooks.ud, j->call, a);
}

static void start(run *r, uint32_t ji, double now) {
  rt_llm_client *c = r->c;
  job *j = &r->jobs[ji];
  if (!j->body) {
    const rt_llm_call *call = &r->calls[j->call];
    j->body = rt_llm_build_body_ex(&c->fmt, call->system, call->user, seed_of(c, j->sample), call->exclude,
                                   call->n_exclude, &j->len);
  }
  slot *s = c->free_slots[--c->nfree];
  s->j = j;
  s->started = now;
  s->seq = c->nstarted++;
  s->tok_seq = c->tok_started;
  c->tok_started += j->tokens;
  c->tok_inflight += j->tokens;
  s->len = 0;
  s->overflow = 0;
  s->sends = 0;
  s->retry_after = -1;
  s->errbuf[0] = '\0';
  if (s->buf) s->buf[0] = '\0';
  curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->len);
  curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, j->body);
  j->attempts++;
  c->stats.requests++;
  c->stats.est_tokens += j->tokens;
  if (j->attempts > 1) c->stats.retries++;
  CURLMcode mc = curl_multi_add_handle(s->sh->multi, s->easy);
  s->sh->dirty = 1;
  if (mc != CURLM_OK) {
    /* Cannot happen with a valid handle; treat as a failed attempt. */
    c->tok_inflight -= j->tokens;
    c->free_slots[c->nfree++] = s;
    s->j = NULL;
    char why[256];
    snprintf(why, sizeof why, "curl_multi_add_handle failed for %s: %s", c->url, curl_multi_strerror(mc));
    snprintf(r->last_err, sizeof r->last_err, "%s", why);
    job_final(r, j, NULL, why);
    return;
  }
  r->inflight++;
}

static const char *hint_for(int status) {
  switch (status) {
  case 400: return "the endpoint rejected the request body — check llm.model, llm.constrain and llm.max_tokens";
  case 401:
  case 403: return "check the key in llm.api_key_env / llm.api_key_file";
  case 404: return "check llm.base_url, llm.api and llm.model";
  case 413: return "the prompt is too large for the endpoint";
  default: return "check the endpoint's logs";
  }
}

/* The host part of a URL, for messages. */
static void url_host(const char *url, char *out, size_t cap) {
  const char *p = strstr(url, "://");
  p = p ? p + 3 : url;
  const char *at = strpbrk(p, "@/");
  if (at && *at == '@') p = at + 1; /* never print credentials */
  size_t n = 0;
  if (*p == '[') { /* IPv6 literal */
    const char *e = strchr(p, ']');
    n = e ? (size_t)(e - p + 1) : strlen(p);
  } else {
    n = strcspn(p, ":/?#");
  }
  snprintf(out, cap, "%.*s", (int)n, p);
}

/* OpenAI's x-ratelimit-* headers of a response: mirror the quota they show
 * into this rank's share (rt_hdr_quota, ratelimit.h). Read only while they
 * are known to be sent, on the first 2xx (to find out) and on 429s. Returns
 * 1 when a 429 came with fewer remaining requests or tokens than the
 * request costs (the quota is exhausted). */
static int read_quota_headers(rt_llm_client *c, slot *s, long status, double now) {
#if RT_HEADER_API
  if (c->fmt.api != RT_LLM_API_OPENAI || c->hdr_state < 0) {
    if (status != 429 || c->fmt.api != RT_LLM_API_OPENAI) return 0;
  }
  if (c->hdr_state == 0 && !(status == 429 || (status >= 200 && status < 300))) return 0;
  double share = c->share.nactive > 0 ? (double)c->share.nactive : 1.0;
  int exhausted = 0, any = 0;
  for (int k = 0; k < 2; k++) {
    static const char *const names[2][3] = {
      {"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"},
      {"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"}};
    double lim, rem, reset = 0;
    if (!header_num(s->easy, names[k][0], &lim) || !header_num(s->easy, names[k][1], &rem) || lim <= 0) continue;
    header_dur(s->easy, names[k][2], &reset);
    any = 1;
    /* Exhausted for this request: fewer left than it costs (1 request, or its
     * estimated tokens; a token quota can refuse with some left). */
    if (rem < (k ? (double)s->j->tokens : 1.0)) exhausted = 1;
    rt_hdr_quota *q = k ? &c->hq_tok : &c->hq_req;
    rt_bucket *b = k ? &c->hdr_tok : &c->hdr_req;
    if (q->limit >= 0 && s->seq < q->seq) continue; /* an older request's view */
    q->limit = lim;
    q->remaining = rem;
    q->reset_s = reset;
    q->seq = s->seq;
    /* The refill rate from the deficit and the time to refill it; only from a
     * reset long enough that its rounding (1 ms) does not matter. */
    /* (remaining is whole units, rounded down: the deficit is lim - rem - 0.5 on average) */
    if (rem < lim && reset > 0 && (reset >= 0.1 || q->rate <= 0)) q->rate = fmax(0.5, lim - rem - 0.5) / reset;
    if (q->rate <= 0) continue;
    /* This rank's share: the level the endpoint saw when it took the request,
     * less what this rank sent after it, refilled since it was sent. */
    double sent_after = k ? c->tok_started - s->tok_seq - s->j->tokens : (double)(c->nstarted - s->seq - 1);
    /* The view: less a margin of hdr_margin_s of refill (at least one unit):
     * the endpoint took the request a little after it was started here, so
     * the refill since then is a little less than what the clock says. */
    int first = b->rate <= 0;
    double view = rem / share - sent_after - fmax(1.0, c->hdr_margin_s * q->rate / share);
    view += (now - s->started) * q->rate / share; /* refilled since */
    double cur = 0;
    if (!first) {
      rt_bucket_take(b, 0, now); /* refill the mirror to now */
      cur = b->level;
    }
    b->rate = q->rate / share;
    b->cap = fmax(1.0, lim / share);
    b->last = now;
    /* The endpoint may take requests in another order than they were sent:
     * a view can miss requests sent before this one and not yet taken (up to
     * those in flight). So a view lowers the mirror, and raises it only when
     * it is far above (a quota reset, ranks that stopped); the first one
     * counts everything in flight as not yet taken. */
    double inflight = k ? c->tok_inflight : (double)(c->nslots - c->nfree); /* in the quota's unit */
    if (first) b->level = view - inflight;
    else if (view < cur) b->level = view;
    else if (view > cur + inflight + 0.1 * b->cap) b->level = view - inflight;
    if (b->level > b->cap) b->level = b->cap;
    if (k == 0) c->stats.hdr_rate = q->rate;
  }
  if (c->hdr_state == 0 && status >= 200 && status < 300) c->hdr_state = any ? 1 : -1;
  else if (any) c->hdr_state = 1;
  return status == 429 && exhausted;
#else
  (void)c;
  (void)s;
  (void)status;
  (void)now;
  return 0;
#endif
}

/* Classify a finished transfer; on OUT_OK *text is the answer. *quota: a 429
 * that the provider marked as an exhausted quota (1: Gemini RetryInfo, whose
 * delay is then in s->retry_after; 2: OpenAI headers, paced by the mirror). */
static outcome classify(run *r, slot *s, CURLcode res, char **text, char *why, size_t wcap, int *retry_after_ok,
                        int *quota, double now) {
  rt_llm_client *c = r->c;
  job *j = s->j;
  long status = 0;
  curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
  j->status = (int)status;
  *retry_after_ok = 0;
  *quota = 0;
  if (res != CURLE_OK) {
    if (s->overflow) {
      c->stats.bad_responses++;
      j->conn_only = 0;
      snprintf(why, wcap, "response from %s exceeds %u bytes: not an answer", c->url, MAX_RESPONSE);
      return OUT_RETRY;
    }
    if (res == CURLE_OPERATION_TIMEDOUT) {
      c->stats.timeouts++;
      j->conn_only = 0;
      snprintf(why, wcap, "timeout after %lld ms (llm.timeout_ms) on %s: %s", (long long)c->timeout_ms, c->url,
               s->errbuf[0] ? s->errbuf : curl_easy_strerror(res));
      return OUT_RETRY;
    }
    c->stats.conn_errors++;
    if (res == CURLE_PEER_FAILED_VERIFICATION || res == CURLE_SSL_CACERT_BADFILE) {
      j->conn_only = 0;
      snprintf(why, wcap,
               "TLS verification of %s failed: %s — fix the certificate (llm.insecure = true only for tests)",
               c->url, s->errbuf[0] ? s->errbuf : curl_easy_strerror(res));
      return OUT_FATAL;
    }
    if (res == CURLE_COULDNT_RESOLVE_HOST) {
      c->stats.resolve_errors++;
      char host[256];
      url_host(c->url, host, sizeof host);
      snprintf(why, wcap, "cannot resolve host \"%.100s\" of %.200s: %.100s — check llm.base_url", host, c->url,
               s->errbuf[0] ? s->errbuf : curl_easy_strerror(res));
      /* Before any response a name that does not resolve is a typo in the
       * config, not a hiccup: retrying with backoff only delays the verdict. */
      if (!r->responded) {
        r->unresolved = 1;
        return OUT_FATAL;
      }
      return OUT_RETRY;
    }
    if (res == CURLE_GOT_NOTHING || res == CURLE_RECV_ERROR || res == CURLE_SEND_ERROR) c->stats.conn_resets++;
    if (j->attempts == 1) j->conn_only = 1;
    long oserr = 0;
    curl_easy_getinfo(s->easy, CURLINFO_OS_ERRNO, &oserr);
    /* "Connection refused" says more than curl's "Couldn't connect to server". */
    const char *detail = (res == CURLE_COULDNT_CONNECT && oserr > 0) ? strerror((int)oserr)
                         : s->errbuf[0]                              ? s->errbuf
                                                                     : curl_easy_strerror(res);
    if (res == CURLE_COULDNT_CONNECT)
      snprintf(why, wcap, "cannot connect to %s: %s — is the endpoint running? check llm.base_url", c->url, detail);
    else
      snprintf(why, wcap, "connection to %s failed: %s (curl error %d)", c->url, detail, (int)res);
    return OUT_RETRY;
  }
  j->conn_only = 0;
  if (status >= 200 && status < 300) {
    char reason[256];
    rt_llm_usage u;
    if (c->hdr_state >= 0) read_quota_headers(c, s, status, now);
    if (rt_llm_parse_response(&c->fmt, s->buf ? s->buf : "", s->len, text, &u, reason, sizeof reason) == RT_OK) {
      c->stats.answered++;
      if (u.prompt_tokens > 0) c->stats.prompt_tokens += (uint64_t)u.prompt_tokens;
      if (u.completion_tokens > 0) c->stats.completion_tokens += (uint64_t)u.completion_tokens;
      return OUT_OK;
    }
    c->stats.bad_responses++;
    snprintf(why, wcap, "bad response from %s (HTTP %ld): %s", c->url, status, reason);
    return OUT_RETRY;
  }
  if (c->hdr_state > 0 && status != 429) read_quota_headers(c, s, status, now);
  /* The endpoint's own message (a JSON parse) only when it will be shown: a
   * retried 429 or 5xx is a hot path when an endpoint answers them often. */
  int shown = (int64_t)j->attempts >= c->max_attempts;
  char msg[256];
  msg[0] = '\0';
#if RT_HEADER_API
  if (status == 429 || status == 503) s->retry_after = retry_after_of(s->easy);
#endif
  if (status == 429) {
    c->stats.http_429++;
    *retry_after_ok = 1;
    if (read_quota_headers(c, s, status, now)) {
      *quota = 2;
      /* The mirror let one through too many: keep more in reserve. */
      if (c->hdr_req.rate > 0 || c->hdr_tok.rate > 0) c->hdr_margin_s = fmin(0.25, c->hdr_margin_s * 1.25);
    } else if (c->fmt.api == RT_LLM_API_GEMINI) {
      double d = rt_retryinfo_delay(s->buf, s->len);
      if (d >= 0) {
        *quota = 1;
        if (s->retry_after < 0) s->retry_after = d > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : d;
      }
    }
    if (*quota) c->stats.http_429_quota++;
    if (shown) rt_llm_error_message(s->buf, s->len, msg, sizeof msg);
    snprintf(why, wcap, "429 from %s: %s — %s", c->url, msg[0] ? msg : "too many requests",
             *quota ? "quota exhausted; lower llm.rpm / llm.tpm or llm.concurrency"
                    : "the endpoint is busy (it answers 429 now and then)");
    return OUT_RETRY;
  }
  if (status >= 500 && status < 600) {
    c->stats.http_5xx++;
    switch (status) {
    case 500: c->stats.http_500++; break;
    case 502: c->stats.http_502++; break;
    case 503: c->stats.http_503++; break;
    case 504: c->stats.http_504++; break;
    default: c->stats.http_5xx_other++; break;
    }
    int retry = status == 500 || status == 502 || status == 503 || status == 504;
    if (shown || !retry) rt_llm_error_message(s->buf, s->len, msg, sizeof msg);
    snprintf(why, wcap, "%ld from %s: %s", status, c->url, msg[0] ? msg : "server error");
    if (status == 503) *retry_after_ok = 1;
    return retry ? OUT_RETRY : OUT_FATAL;
  }
  rt_llm_error_message(s->buf, s->len, msg, sizeof msg);
  if (status >= 400 && status < 500)
    c->stats.http_4xx++;
  else
    c->stats.http_other++;
  snprintf(why, wcap, "%ld from %s: %s — %s", status, c->url, msg[0] ? msg : "(no message)", hint_for((int)status));
  return OUT_FATAL;
}

static void finish(run *r, slot *s, CURLcode res, double now) {
  rt_llm_client *c = r->c;
  job *j = s->j;
  curl_multi_remove_handle(s->sh->multi, s->easy);
  r->inflight--;
  if (s->sends > 1) {
    /* Each silent resend followed a dead connection: count it as a request
     * (the endpoint saw it), a retry and a connection error. */
    uint32_t extra = (uint32_t)(s->sends - 1);
    j->attempts += extra;
    c->stats.requests += extra;
    c->stats.retries += extra;
    c->stats.conn_errors += extra;
    c->stats.conn_resets += extra;
    c->stats.est_tokens += (uint64_t)extra * j->tokens;
  }
  char *text = NULL;
  char why[512];
  why[0] = '\0';
  int ra_ok, quota;
  outcome o = classify(r, s, res, &text, why, sizeof why, &ra_ok, &quota, now);
  if (res == CURLE_OK)
    r->responded = 1;
  else if (j->conn_only)
    r->conn_seen = 1;
  if (o == OUT_OK) c->stats.latency_buckets[rt_llm_latency_bucket((now - s->started) * 1000.0)]++;
  /* The rate the endpoint accepts: every response but a 429 got past its limiter. */
  if (res == CURLE_OK && j->status != 429) rt_aimd_accepted(&c->aimd, now);
  /* The 429 share; a quota 429 the header mirror paces is not the window's business. */
  if (res == CURLE_OK && quota != 2) rt_win429_add(&c->win, now, j->status == 429);
  double ra = s->retry_after;
  if (j->status == 429 && quota != 2) {
    /* Acted on once the whole batch of answers is in (rate_after_429s), so
     * the accepted count the cut is based on includes this batch's. */
    r->n429++;
    if (quota) r->b429_quota = 1;
    if (s->started > r->b429_started) r->b429_started = s->started;
    if (ra > r->b429_pause) r->b429_pause = ra;
  }
  s->j = NULL;
  c->tok_inflight -= j->tokens;
  c->free_slots[c->nfree++] = s;
  if (o == OUT_OK) {
    job_final(r, j, text, NULL);
    return;
  }
  if (o == OUT_RETRY && (int64_t)j->attempts < c->max_attempts) {
    /* A 429 or 5xx costs this request's retry only: it waits its Retry-After
     * (or RetryInfo, or the backoff) while the other requests keep flowing.
     * The rank's rate changes only on evidence of a rate limit
     * (rate_after_429s). */
    double d;
    if (j->status == 429) j->n429++;
    if (j->status == 429 && ra_ok && ra >= 0) {
      d = ra; /* the endpoint said when: no backoff on top (a chain of sporadic 429s costs Retry-After each) */
    } else {
      /* Exponential in the failures other than 429s that named a delay. */
      int k = (int)(j->attempts - (j->status == 429 ? 0 : j->n429));
      d = rt_backoff_s(k < 1 ? 1 : k, BACKOFF_BASE_S, BACKOFF_CAP_S, &c->rng);
      if (ra_ok && ra >= 0 && ra > d) d = ra;
    }
    if (j->status == 429 && quota != 2 && d > r->b429_pause) r->b429_pause = d;
    rt_debug("llm: pair %llu attempt %u failed (%s); retry in %.0f ms", (unsigned long long)r->calls[j->call].tag,
             j->attempts, why, d * 1000);
    heap_push(&r->retry, now + d, (uint32_t)(j - r->jobs));
    return;
  }
  snprintf(r->last_err, sizeof r->last_err, "%s", why);
  char full[600];
  snprintf(full, sizeof full, "%s (after %u request%s; llm.max_attempts = %lld)", why, j->attempts,
           j->attempts == 1 ? "" : "s", (long long)c->max_attempts);
  job_final(r, j, NULL, full);
}

/* The 429s of one batch of answers: one decision for all of them. Nothing
 * happens unless they are evidence of a rate limit (a quota signal, or the
 * 429 share of the last 2 s, rt_win429_evidence): a sporadic 429 only
 * retries its own request. */
static void rate_after_429s(run *r, double now) {
  rt_llm_client *c = r->c;
  double settle = 2.0;
  if (!r->b429_quota && now - c->win.first < 60) {
    double p50 = rt_llm_latency_quantile(c->stats.latency_buckets, 0.5) / 1000.0;
    if (4 * p50 > settle) settle = 4 * p50;
  }
  int evidence = r->b429_quota || rt_win429_evidence(&c->win, now, c->aimd.rate > 0, c->min_resp, settle);
  int a = evidence ? rt_aimd_on_429(&c->aimd, r->b429_started, now) : RT_AIMD_KEEP;
  if (evidence && a != RT_AIMD_KEEP) c->stats.limit_batches++;
  if (a == RT_AIMD_CUT) {
    c->stats.rate_cuts++;
    update_rates(c, now);
    /* Pace from here: no burst out of tokens saved under the old rate. */
    if (c->req_bucket.level > 0) c->req_bucket.level = 0;
    rt_debug("llm: %zu x 429 from %s: request rate of the rank cut to %.1f/s", r->n429, c->url, c->aimd.rate);
  } else if (a == RT_AIMD_NOTHING_ACCEPTED) {
    /* The endpoint took nothing in the last second: stop the rank for as long
     * as it asked (Retry-After, else the backoff), then pace at the old rate. */
    double d = r->b429_pause > 0 ? r->b429_pause : BACKOFF_BASE_S;
    if (now + d > c->not_before) c->not_before = now + d;
    rt_debug("llm: 429 from %s and nothing accepted in the last second: rank paused %.0f ms", c->url, d * 1000);
  }
  r->n429 = 0;
  r->b429_quota = 0;
  r->b429_started = -1;
  r->b429_pause = 0;
}

/* Does the endpoint's host name not exist? One lookup before the first
 * requests: with dozens started at once, curl runs as many resolver threads,
 * and a lookup stuck in the resolver's timeout holds curl_multi_remove_handle
 * (it joins the thread) long after the first answer said the name does not
 * exist. Only a definite "no such name" counts; a temporary failure is left
 * to the requests. Skipped behind a proxy (the proxy resolves the name). */
static int host_unresolvable(const rt_llm_client *c, char *why, size_t cap) {
  static const char *const proxies[] = {"http_proxy", "https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"};
  for (size_t i = 0; i < sizeof proxies / sizeof *proxies; i++)
    if (getenv(proxies[i]) && *getenv(proxies[i])) return 0;
  char host[256];
  url_host(c->url, host, sizeof host);
  if (host[0] == '[') { /* an IPv6 literal */
    return 0;
  }
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int rc = getaddrinfo(host, NULL, &hints, &res);
  if (res) freeaddrinfo(res);
  if (rc != EAI_NONAME
#ifdef EAI_NODATA
      && rc != EAI_NODATA
#endif
  )
    return 0;
  snprintf(why, cap, "cannot resolve host \"%.100s\" of %.200s: %.100s — check llm.base_url", host, c->url,
           gai_strerror(rc));
  return 1;
}

/* Stop the run: cancel transfers, fail what is left (counted as failed
 * unless the run was interrupted: those calls were never given a chance). */
static void abandon(run *r, const char *reason, int interrupted) {
  rt_llm_client *c = r->c;
  for (size_t i = 0; i < c->nslots; i++) {
    slot *s = &c->slots[i];
    if (!s->j) continue;
    curl_multi_remove_handle(s->sh->multi, s->easy);
    s->j = NULL;
    c->free_slots[c->nfree++] = s;
  }
  r->inflight = 0;
  c->tok_inflight = 0;
  char msg[600];
  snprintf(msg, sizeof msg, "not answered: the run stopped (%s)", reason);
  for (size_t k = 0; k < r->n; k++) {
    if (r->left[k] == 0) continue;
    rt_llm_answer *a = &r->answers[k];
    for (size_t s = 0; s < (size_t)c->samples; s++) {
      job *j = &r->jobs[k * (size_t)c->samples + s];
      free(j->body);
      j->body = NULL;
      if (!j->done) a->attempts += (int)j->attempts;
      if (c->samples > 1) {
        free(r->stext[k * (size_t)c->samples + s]);
        r->stext[k * (size_t)c->samples + s] = NULL;
      }
    }
    free(a->text);
    a->text = NULL;
    a->ok = 0;
    if (!a->error) set_answer_error(a, msg);
    r->left[k] = 0;
    if (interrupted) continue;
    c->stats.failed++;
    r->failed_calls++;
  }
}

int rt_llm_run(rt_llm_client *c, const rt_llm_call *calls, size_t n, rt_llm_answer *answers, rt_err *err) {
  if (c->batch) return rt_batch_run(c->batch, c, calls, n, answers, err);
  return rt_llm_run_sync(c, calls, n, answers, err);
}

int rt_llm_run_sync(rt_llm_client *c, const rt_llm_call *calls, size_t n, rt_llm_answer *answers, rt_err *err) {
  double t0 = rt_now();
  if (n) memset(answers, 0, n * sizeof *answers);
  c->stats.calls += n;
  if (n == 0) return RT_OK;
  size_t S = (size_t)c->samples;
  if (n > UINT32_MAX / S)
    return rt_err_set(err, RT_ERR_USAGE, "%zu calls x %zu samples is too many for one rt_llm_run; split them", n, S);
  run r = {0};
  r.c = c;
  r.b429_started = -1;
  r.calls = calls;
  r.answers = answers;
  r.n = n;
  r.njobs = n * S;
  r.jobs = rt_xcalloc(r.njobs, sizeof *r.jobs);
  r.left = rt_xmalloc(n * sizeof *r.left);
  if (S > 1) r.stext = rt_xcalloc(r.njobs, sizeof *r.stext);
  for (size_t k = 0; k < n; k++) {
    r.left[k] = (uint32_t)S;
    size_t bytes = (calls[k].system ? strlen(calls[k].system) : 0) + (calls[k].user ? strlen(calls[k].user) : 0);
    uint64_t tok = (bytes + 3) / 4 + (uint64_t)c->fmt.max_tokens;
    for (size_t s = 0; s < S; s++) {
      job *j = &r.jobs[k * S + s];
      j->call = (uint32_t)k;
      j->sample = (uint32_t)s;
      j->tokens = tok > UINT32_MAX ? UINT32_MAX : (uint32_t)tok;
    }
  }
  rt_share_set_active(&c->share, 1);
  update_rates(c, t0);
  double fail_budget = c->max_failed_fraction * (double)n + FAIL_SLACK;
  size_t early_need = n < FAST_FAIL_CALLS ? n : FAST_FAIL_CALLS;
  int rc = RT_OK;
  char stop[700] = "";
  int stopping = 0;      /* the poll hook asked to stop: drain what is in flight */
  double stop_at = 0;    /* ... until then at the latest */

  if (!c->dns_checked) {
    c->dns_checked = 1;
    if (host_unresolvable(c, r.last_err, sizeof r.last_err)) {
      snprintf(stop, sizeof stop, "%s", r.last_err);
      rc = rt_err_set(err, RT_ERR_ENDPOINT, "%s", r.last_err);
    }
  }
  while (rc == RT_OK && r.done_calls < n) {
    double now = c->now = rt_now();
    if (!stopping && c->hooks.poll && c->hooks.poll(c->hooks.ud)) {
      stopping = 1;
      stop_at = now + (c->hooks.grace_s > 0 ? c->hooks.grace_s : 0);
      rt_debug("llm: stop requested: %zu requests in flight get %.0f s to finish", r.inflight, c->hooks.grace_s);
    }
    if (stopping && (r.inflight == 0 || now >= stop_at)) {
      snprintf(stop, sizeof stop, "interrupted with %zu requests in flight", r.inflight);
      rc = rt_err_set(err, RT_ERR_INTERRUPTED, "the LLM stage was interrupted: %zu of %zu calls done, %zu in flight "
                      "abandoned", r.done_calls, n, r.inflight);
      break;
    }
    if (rt_share_poll(&c->share, now)) update_rates(c, now);
    if (rt_aimd_tick(&c->aimd, now)) update_rates(c, now);
    double wait = stopping ? fmin(1.0, fmax(0.0, stop_at - now)) : 1.0; /* seconds until something may be dispatched */
    while (c->nfree > 0 && !stopping) {
      if (now < c->not_before) {
        wait = fmin(wait, c->not_before - now);
        break;
      }
      uint32_t ji;
      int from_heap = 0;
      if (r.retry.len && r.retry.data[0].t <= now) {
        ji = r.retry.data[0].job;
        from_heap = 1;
      } else if (r.next_fresh < r.njobs && (r.responded || !r.conn_seen || r.next_fresh < early_need * S)) {
        /* While every answer so far is a refused connection, start no more
         * calls than the fail-fast rule needs to decide. */
        ji = (uint32_t)r.next_fresh;
      } else {
        if (r.retry.len) wait = fmin(wait, r.retry.data[0].t - now);
        break;
      }
      /* The quota the endpoint's headers show (none: rate 0, always passes). */
      double w = rt_bucket_take(&c->hdr_req, 1, now);
      if (w == 0) {
        w = rt_bucket_take(&c->hdr_tok, r.jobs[ji].tokens, now);
        if (w > 0) c->hdr_req.level += 1;
      }
      if (w > 0) {
        wait = fmin(wait, w);
        break;
      }
      w = rt_bucket_take(&c->req_bucket, 1, now);
      if (w > 0) {
        c->aimd.limited = 1; /* the rate is what holds the rank back: it may grow */
        c->hdr_req.level += 1;
        c->hdr_tok.level += r.jobs[ji].tokens;
        wait = fmin(wait, w);
        break;
      }
      w = rt_bucket_take(&c->tok_bucket, r.jobs[ji].tokens, now);
      if (w > 0) {
        c->req_bucket.level += 1; /* give back the request token */
        c->hdr_req.level += 1;
        c->hdr_tok.level += r.jobs[ji].tokens;
        wait = fmin(wait, w);
        break;
      }
      if (from_heap)
        heap_pop(&r.retry);
      else
        r.next_fresh++;
      start(&r, ji, now);
    }
    if (r.done_calls >= n) break;
    if (c->share.mpi && c->share.nranks > 1) wait = fmin(wait, 0.05);
    int timeout_ms = (int)ceil(fmax(0.0, wait) * 1000.0);
    if (now < c->not_before && r.inflight == 0) c->stats.throttled_ms += (uint64_t)timeout_ms;
    int running = 0;
    for (size_t i = 0; i < c->nshards; i++) {
      double at = c->shards[i].timer_at;
      if (at < 0) continue;
      int t = (int)ceil(fmax(0.0, at - now) * 1000.0);
      if (t < timeout_ms) timeout_ms = t;
    }
    struct epoll_event evs[256];
    int ne = epoll_wait(c->epfd, evs, 256, timeout_ms);
    c->now = rt_now();
    for (int k = 0; k < ne; k++) {
      uint32_t *st = fd_state(c, evs[k].data.fd);
      if (!st || !(*st & FD_WATCHED)) {
        /* An idle kept-alive connection became readable: the server closed it
         * (or sent junk). Stop watching; curl finds it dead before reuse. */
        if (st) ep_del(c, evs[k].data.fd, st);
        continue;
      }
      shard *sh = &c->shards[*st >> 8];
      int flags = (evs[k].events & EPOLLIN ? CURL_CSELECT_IN : 0) | (evs[k].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                  (evs[k].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
      curl_multi_socket_action(sh->multi, evs[k].data.fd, flags, &running);
      sh->dirty = 1;
    }
    now = c->now;
    for (size_t i = 0; i < c->nshards; i++) {
      shard *sh = &c->shards[i];
      if (sh->timer_at >= 0 && now >= sh->timer_at) {
        sh->timer_at = -1;
        curl_multi_socket_action(sh->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        sh->dirty = 1;
      }
      if (!sh->dirty) continue;
      sh->dirty = 0;
      CURLMsg *m;
      int left;
      while ((m = curl_multi_info_read(sh->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        slot *s = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        if (s && s->j) finish(&r, s, m->data.result, now);
      }
    }
    if (r.n429) rate_after_429s(&r, now);
    if (r.unresolved) {
      snprintf(stop, sizeof stop, "the endpoint's host name does not resolve; last error: %s", r.last_err);
      rc = rt_err_set(err, RT_ERR_ENDPOINT, "%s", r.last_err);
      break;
    }
    /* Fail fast: a dead endpoint must not cost n x max_attempts timeouts. */
    int over_budget = (double)r.failed_calls > fail_budget;
    int all_refused = r.early_done > 0 && r.early_conn == r.early_done && r.done_calls == r.early_done;
    if (all_refused && (r.early_done >= early_need || over_budget)) {
      snprintf(stop, sizeof stop, "the first %zu calls all failed to connect; last error: %s", r.early_done,
               r.last_err);
      rc = rt_err_set(err, RT_ERR_ENDPOINT, "%s", r.last_err[0] ? r.last_err : "cannot connect");
      break;
    }
    if (over_budget) {
      snprintf(stop, sizeof stop, "%zu of %zu calls failed", r.failed_calls, n);
      rc = rt_err_set(err, RT_ERR_ENDPOINT,
                      "%zu of %zu calls to %s failed, over llm.max_failed_fraction = %g (+%d); last error: %s — "
                      "check the endpoint, or raise llm.max_failed_fraction",
                      r.failed_calls, n, c->url, c->max_failed_fraction, FAIL_SLACK, r.last_err);
      break;
    }
  }
  if (rc) abandon(&r, stop, rc == RT_ERR_INTERRUPTED);
  rt_share_set_active(&c->share, 0);
  free(r.retry.data);
  free(r.jobs);
  free(r.left);
  free(r.stext);
  double dt = rt_now() - t0;
  c->stats.seconds += dt;
  rt_debug("llm: %zu calls in %.2f s to %s: %llu requests, %llu retries, %zu failed", n, dt, c->url,
           (unsigned long long)c->stats.requests, (unsigned long long)c->stats.retries, r.failed_calls);
  return rc;
}
