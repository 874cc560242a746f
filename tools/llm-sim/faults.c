/* faults.c — seeded draws, latency, noise/off-catalog text, prompt counts and
 * the 429 token bucket. Everything here is a pure function of its arguments
 * except the two small tables, which http.c guards with its lock. */
#include "sim.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* --- draws ----------------------------------------------------------------- */

uint64_t sim_draw64(uint64_t seed, uint64_t prompt_hash, uint64_t n, unsigned tag) {
  /* Three rounds of splitmix so nearby seeds, counts and tags give unrelated streams. */
  uint64_t x = rt_mix64(seed ^ 0x5ad5eed5ad5eed00ULL);
  x = rt_mix64(x ^ prompt_hash);
  return rt_mix64(x ^ (n * 0x100000001b3ULL + tag));
}

double sim_draw_unit(uint64_t seed, uint64_t prompt_hash, uint64_t n, unsigned tag) {
  return (double)(sim_draw64(seed, prompt_hash, n, tag) >> 11) * 0x1.0p-53;
}

/* --- latency --------------------------------------------------------------- */

#define Z99 2.3263478740408408 /* standard normal 99th percentile */

int sim_lognormal_params(double mean_ms, double p99_ms, double *mu, double *sigma, char *why,
                         size_t cap) {
  /* mean = exp(mu + s^2/2), p99 = exp(mu + z s)  =>  s^2/2 - z s + ln(p99/mean) = 0. */
  if (!(mean_ms > 0) || !(p99_ms > mean_ms)) {
    snprintf(why, cap, "log-normal latency needs --latency-ms > 0 and --latency-p99-ms > --latency-ms "
             "(got mean %g ms, p99 %g ms)", mean_ms, p99_ms);
    return -1;
  }
  double d = log(p99_ms / mean_ms);
  double disc = Z99 * Z99 - 2 * d;
  if (disc < 0) {
    snprintf(why, cap, "no log-normal has mean %g ms and p99 %g ms: p99 may be at most %.1fx the mean",
             mean_ms, p99_ms, exp(Z99 * Z99 / 2));
    return -1;
  }
  double s = Z99 - sqrt(disc); /* the smaller root: the less heavy-tailed solution */
  *sigma = s;
  *mu = log(mean_ms) - s * s / 2;
  return 0;
}

double sim_latency_ms(const sim_opts *o, uint64_t prompt_hash, uint64_t n) {
  if (!o->latency_lognormal) return o->latency_ms;
  double u1 = sim_draw_unit(o->seed, prompt_hash, n, SIM_D_LAT1);
  double u2 = sim_draw_unit(o->seed, prompt_hash, n, SIM_D_LAT2);
  double z = sqrt(-2 * log(1.0 - u1)) * cos(2 * M_PI * u2); /* Box-Muller; 1-u1 is in (0,1] */
  double ms = exp(o->ln_mu + o->ln_sigma * z);
  double cap = 20 * o->latency_p99_ms; /* keep a freak draw from stalling a test for minutes */
  return ms < cap ? ms : cap;
}

/* --- noisy and off-catalog text -------------------------------------------- */

static uint64_t next_r(uint64_t *r) { return *r = rt_mix64(*r); }

char *sim_noisy_text(const char *desc, const char *norm, uint64_t r) {
  /* Split on ',' and trim: the pieces are the keywords (';' '|' stay inside a
   * piece, which the normaliser splits again, so the result still matches). */
  size_t n = strlen(desc);
  char *work = rt_xstrdup(desc);
  char **kw = rt_xmalloc((n / 2 + 2) * sizeof *kw);
  size_t nkw = 0;
  for (char *p = work;;) {
    char *comma = strchr(p, ',');
    if (comma) *comma = '\0';
    while (*p == ' ' || *p == '\t') p++;
    size_t l = strlen(p);
    while (l && (p[l - 1] == ' ' || p[l - 1] == '\t')) p[--l] = '\0';
    if (l) kw[nkw++] = p;
    if (!comma) break;
    p = comma + 1;
  }
  for (size_t i = nkw; i > 1; i--) { /* Fisher-Yates: keyword order */
    size_t j = next_r(&r) % i;
    char *t = kw[i - 1];
    kw[i - 1] = kw[j];
    kw[j] = t;
  }
  static const char *seps[] = {", ", " , ", ",  ", " ,  ", "; ", " | "};
  static const char *tails[] = {"", ".", " .", "!", "  "};
  size_t cap = 2 * n + 8 * nkw + 16, len = 0;
  char *out = rt_xmalloc(cap);
  if (next_r(&r) % 2) out[len++] = ' ';
  for (size_t i = 0; i < nkw; i++) {
    if (i) {
      const char *s = seps[next_r(&r) % (sizeof seps / sizeof *seps)];
      memcpy(out + len, s, strlen(s));
      len += strlen(s);
    }
    unsigned style = (unsigned)(next_r(&r) % 4); /* 0 as is, 1 UPPER, 2 Title, 3 lower */
    int start = 1;
    for (const char *c = kw[i]; *c; c++) {
      unsigned char ch = (unsigned char)*c;
      if (ch < 0x80) {
        if (style == 1 || (style == 2 && start)) ch = (unsigned char)toupper(ch);
        else if (style == 3 || style == 2) ch = (unsigned char)tolower(ch);
      }
      start = !isalnum((unsigned char)*c) && (unsigned char)*c < 0x80;
      out[len++] = (char)ch;
    }
  }
  const char *t = tails[next_r(&r) % (sizeof tails / sizeof *tails)];
  memcpy(out + len, t, strlen(t));
  len += strlen(t);
  out[len] = '\0';
  if (strcmp(out, desc) == 0) { /* noise must be visible */
    out[len++] = '.';
    out[len] = '\0';
  }
  /* Guard: the matcher must be able to undo this exactly. */
  size_t need = rt_normalize_desc(out, NULL, 0);
  char *chk = rt_xmalloc(need + 1);
  rt_normalize_desc(out, chk, need + 1);
  if (strcmp(chk, norm) != 0) {
    free(out);
    out = rt_xmalloc(n + 8);
    snprintf(out, n + 8, "  %s .", desc);
  }
  free(chk);
  free(work);
  free(kw);
  return out;
}

static const char *g_vocab[] = {
  "underwater basket weaving", "competitive yodeling", "medieval tax law", "extreme ironing",
  "lunar gardening", "antique doorknobs", "cloud spotting", "competitive napping",
  "sock puppetry", "toaster restoration", "pigeon racing", "elevator music",
};
#define NVOCAB (sizeof g_vocab / sizeof *g_vocab)

static int in_catalog(const sim_index *ix, const char *text) {
  size_t need = rt_normalize_desc(text, NULL, 0);
  char *norm = rt_xmalloc(need + 1);
  rt_normalize_desc(text, norm, need + 1);
  int hit = sim_index_find(ix, norm) >= 0;
  free(norm);
  return hit;
}

char *sim_off_catalog_text(const sim_index *ix, int32_t pick, uint64_t r) {
  const char *base = pick >= 0 ? ix->cat->desc[pick] : "";
  size_t cap = strlen(base) + 160;
  char *out = rt_xmalloc(cap);
  if (pick >= 0 && next_r(&r) % 2) {
    /* A near miss: the picked description plus one invented keyword, which a
     * fuzzy matcher may or may not map back. */
    snprintf(out, cap, "%s, %s", base, g_vocab[next_r(&r) % NVOCAB]);
  } else {
    size_t a = next_r(&r) % NVOCAB, b = (a + 1 + next_r(&r) % (NVOCAB - 1)) % NVOCAB;
    snprintf(out, cap, "%s, %s", g_vocab[a], g_vocab[b]);
  }
  if (in_catalog(ix, out)) { /* a catalog that uses our words: add a tag nobody uses */
    size_t l = strlen(out);
    snprintf(out + l, cap - l, ", offcat %016llx", (unsigned long long)next_r(&r));
  }
  return out;
}

/* --- prompt counts --------------------------------------------------------- */

uint64_t sim_counts_next(sim_counts *c, uint64_t key) {
  if (key == 0) key = 1; /* 0 marks an empty slot */
  if (2 * (c->len + 1) > c->cap) {
    size_t ncap = c->cap ? 2 * c->cap : 1024;
    uint64_t *nk = rt_xcalloc(ncap, sizeof *nk);
    uint32_t *nv = rt_xcalloc(ncap, sizeof *nv);
    for (size_t i = 0; i < c->cap; i++) {
      if (!c->key[i]) continue;
      size_t s = rt_mix64(c->key[i]) & (ncap - 1);
      while (nk[s]) s = (s + 1) & (ncap - 1);
      nk[s] = c->key[i];
      nv[s] = c->val[i];
    }
    free(c->key);
    free(c->val);
    c->key = nk;
    c->val = nv;
    c->cap = ncap;
  }
  size_t s = rt_mix64(key) & (c->cap - 1);
  while (c->key[s] && c->key[s] != key) s = (s + 1) & (c->cap - 1);
  if (!c->key[s]) {
    c->key[s] = key;
    c->len++;
  }
  return c->val[s]++;
}

void sim_counts_free(sim_counts *c) {
  free(c->key);
  free(c->val);
  memset(c, 0, sizeof *c);
}

/* --- token bucket ---------------------------------------------------------- */

void sim_bucket_init(sim_bucket *b, double rate, double burst, double now) {
  b->rate = rate;
  b->burst = burst > 1 ? burst : 1;
  b->tokens = b->burst;
  b->last = now;
}

int sim_bucket_take(sim_bucket *b, double now) { return sim_bucket_take_n(b, 1, now); }

int sim_bucket_take_n(sim_bucket *b, double cost, double now) {
  if (b->rate <= 0) return 0;
  if (now > b->last) {
    b->tokens += (now - b->last) * b->rate;
    if (b->tokens > b->burst) b->tokens = b->burst;
    b->last = now;
  }
  if (cost > b->burst) cost = b->burst; /* else it could never pass */
  if (b->tokens >= cost) {
    b->tokens -= cost;
    return 0;
  }
  double wait = ceil((cost - b->tokens) / b->rate);
  return wait < 1 ? 1 : wait > 86400 ? 86400 : (int)wait;
}

void sim_bucket_state(const sim_bucket *b, long *limit, long *remaining, double *reset_s) {
  double t = b->tokens < 0 ? 0 : b->tokens;
  *limit = (long)b->burst;
  *remaining = (long)floor(t);
  *reset_s = b->rate > 0 ? (b->burst - t) / b->rate : 0;
}

void sim_format_duration(double s, char *out, size_t cap) {
  if (!(s > 0)) {
    snprintf(out, cap, "0s");
    return;
  }
  if (s < 1) {
    long ms = (long)ceil(s * 1000);
    if (ms >= 1000) snprintf(out, cap, "1s");
    else snprintf(out, cap, "%ldms", ms);
    return;
  }
  if (s < 60) {
    snprintf(out, cap, "%.3gs", s);
    return;
  }
  long t = (long)ceil(s);
  if (t < 3600) snprintf(out, cap, "%ldm%lds", t / 60, t % 60);
  else snprintf(out, cap, "%ldh%ldm%lds", t / 3600, (t / 60) % 60, t % 60);
}
