/* answers.c — append-only answer journal with a torn-tail-tolerant loader.
 *
 * File: 16-byte header ("RTANSWR\x1a", version u32 = 1, reserved u32 = 0),
 * then records: text_len u32 | day u32 | key u64 | text | xxh3 u64, where the
 * checksum covers the 16 bytes before the text and the text. Little-endian. */
#include "format/answers.h"

#include "base/log.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define J_MAGIC "RTANSWR\x1a"
#define J_VERSION 1u
#define J_HDR 16
#define J_REC_HDR 16
#define J_REC_OVERHEAD 24
#define J_FLUSH_AT (1u << 20)
#define J_BLOCK (1u << 20)

typedef struct entry {
  uint64_t key;
  uint32_t day, len;
  char *text;
} entry;

typedef struct block {
  struct block *next;
  size_t used, cap;
  char data[];
} block;

struct rt_answers {
  char *path;
  int fd;
  uint64_t committed; /* bytes of the file known to be complete records */
  entry *ents;
  size_t nents, capents;
  uint32_t *slot; /* open addressing: entry index + 1, 0 = empty */
  size_t mask;
  block *arena;
  unsigned char *wbuf;
  size_t wlen, wcap;
  rt_answers_stats st;
};

static void put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const unsigned char *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

uint64_t rt_answers_key(const char *model, const void *body, size_t len) {
  XXH3_state_t *s = XXH3_createState();
  if (!s) { /* cannot happen short of OOM; fall back to a one-shot hash */
    size_t ml = model ? strlen(model) : 0;
    return XXH3_64bits_withSeed(body, len, XXH3_64bits(model ? model : "", ml));
  }
  XXH3_64bits_reset(s);
  if (model) XXH3_64bits_update(s, model, strlen(model));
  XXH3_64bits_update(s, "", 1);
  XXH3_64bits_update(s, body, len);
  uint64_t h = XXH3_64bits_digest(s);
  XXH3_freeState(s);
  return h;
}

static char *arena_alloc(block **arena, size_t n) {
  block *b = *arena;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > J_BLOCK ? n : J_BLOCK;
    b = rt_xmalloc(sizeof *b + cap);
    b->next = *arena;
    b->used = 0;
    b->cap = cap;
    *arena = b;
  }
  char *p = b->data + b->used;
  b->used += n;
  return p;
}

static void arena_free(block *b) {
  while (b) {
    block *n = b->next;
    free(b);
    b = n;
  }
}

static size_t slot_of(const rt_answers *j, uint64_t key) {
  size_t h = (size_t)(XXH3_64bits(&key, sizeof key)) & j->mask;
  while (j->slot[h] && j->ents[j->slot[h] - 1].key != key) h = (h + 1) & j->mask;
  return h;
}

static void grow_index(rt_answers *j) {
  size_t cap = j->mask ? (j->mask + 1) * 2 : 1024;
  free(j->slot);
  j->slot = rt_xcalloc(cap, sizeof *j->slot);
  j->mask = cap - 1;
  for (size_t i = 0; i < j->nents; i++) j->slot[slot_of(j, j->ents[i].key)] = (uint32_t)(i + 1);
}

/* Index a record. While loading (`reuse`), a newer text that fits overwrites
 * the older one in place: no pointer has been handed out yet. */
static void index_put(rt_answers *j, uint64_t key, uint32_t day, const char *text, uint32_t len, int reuse) {
  if ((j->nents + 1) * 2 > j->mask + 1) grow_index(j);
  size_t h = slot_of(j, key);
  entry *e;
  if (j->slot[h]) {
    e = &j->ents[j->slot[h] - 1];
  } else {
    if (j->nents == j->capents) {
      j->capents = j->capents ? j->capents * 2 : 1024;
      j->ents = rt_xrealloc(j->ents, j->capents * sizeof *j->ents);
    }
    e = &j->ents[j->nents];
    e->key = key;
    e->text = NULL;
    e->len = 0;
    j->slot[h] = (uint32_t)(++j->nents);
  }
  if (!(reuse && e->text && e->len >= len)) e->text = arena_alloc(&j->arena, (size_t)len + 1);
  memcpy(e->text, text, len);
  e->text[len] = '\0';
  e->len = len;
  e->day = day;
}

static int write_all(int fd, const void *p, size_t n) {
  const unsigned char *c = p;
  while (n) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (w == 0) errno = ENOSPC;
      return -1;
    }
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

static void header_bytes(unsigned char *h) {
  memcpy(h, J_MAGIC, 8);
  put32(h + 8, J_VERSION);
  put32(h + 12, 0);
}

/* Scan records from f (positioned after the header); returns the offset of
 * the end of the last valid record. */
static uint64_t load_records(rt_answers *j, FILE *f) {
  uint64_t off = J_HDR;
  unsigned char ck[8];
  unsigned char *buf = rt_xmalloc(J_REC_HDR + 1);
  size_t bcap = J_REC_HDR + 1;
  for (;;) {
    if (fread(buf, 1, J_REC_HDR, f) != J_REC_HDR) break;
    uint32_t len = get32(buf);
    if (len > RT_ANSWERS_MAX_TEXT) break;
    if (J_REC_HDR + (size_t)len + 1 > bcap) {
      bcap = J_REC_HDR + (size_t)len + 1;
      buf = rt_xrealloc(buf, bcap);
    }
    if (fread(buf + J_REC_HDR, 1, len, f) != len || fread(ck, 1, 8, f) != 8) break;
    if (XXH3_64bits(buf, J_REC_HDR + len) != get64(ck)) break;
    index_put(j, get64(buf + 8), get32(buf + 4), (const char *)buf + J_REC_HDR, len, 1);
    j->st.records_loaded++;
    off += J_REC_OVERHEAD + len;
  }
  free(buf);
  return off;
}

int rt_answers_open(const char *path, rt_answers **out, rt_err *err) {
  *out = NULL;
  int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot open answer journal %s: %s (check the directory exists and "
                      "is writable)", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot stat answer journal %s: %s", path, strerror(e));
  }
  rt_answers *j = rt_xcalloc(1, sizeof *j);
  j->fd = fd;
  j->path = rt_xstrdup(path);
  grow_index(j);
  unsigned char want[J_HDR], have[J_HDR];
  header_bytes(want);
  uint64_t size = (uint64_t)st.st_size, good = 0;
  FILE *f = size ? fopen(path, "rb") : NULL;
  if (size && !f) {
    int e = errno;
    rt_answers_close(j, NULL);
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot read answer journal %s: %s", path, strerror(e));
  }
  size_t got = f ? fread(have, 1, J_HDR, f) : 0;
  if (got == J_HDR && memcmp(have, want, 8) == 0 && get32(have + 8) != J_VERSION) {
    fclose(f);
    rt_answers_close(j, NULL);
    return rt_err_set(err, RT_ERR_INPUT, "answer journal %s has version %u; this build reads version %u: "
                      "move it away to start a new cache", path, get32(have + 8), J_VERSION);
  }
  if (got && memcmp(have, want, got < 8 ? got : 8) != 0) {
    fclose(f);
    rt_answers_close(j, NULL);
    return rt_err_set(err, RT_ERR_INPUT, "%s is not an answer journal (bad magic at byte 0); point "
                      "the cache path elsewhere or delete the file", path);
  }
  if (got == J_HDR) good = load_records(j, f);
  if (f) fclose(f);
  if (good < size) {
    /* got < J_HDR means a torn header from a crash at creation: restart it. */
    j->st.torn_bytes = size - good;
    rt_warn("answer journal %s: dropping %llu torn/corrupt bytes at offset %llu (crash during an append?)",
            path, (unsigned long long)(size - good), (unsigned long long)good);
    if (ftruncate(fd, (off_t)good) != 0) {
      int e = errno;
      rt_answers_close(j, NULL);
      return rt_err_set(err, RT_ERR_OUTPUT, "cannot truncate torn tail of %s at byte %llu: %s", path,
                        (unsigned long long)good, strerror(e));
    }
  }
  if (good == 0) {
    if (write_all(fd, want, J_HDR) != 0 || fsync(fd) != 0) {
      int e = errno;
      rt_answers_close(j, NULL);
      return rt_err_set(err, RT_ERR_OUTPUT, "cannot write header of answer journal %s: %s", path, strerror(e));
    }
    good = J_HDR;
    if (size == 0) rt_fsync_dir_of(path, NULL);
  }
  j->committed = good;
  j->st.keys = j->nents;
  *out = j;
  return RT_OK;
}

int rt_answers_get(const rt_answers *j, uint64_t key, const char **text, uint32_t *day) {
  if (!j) return 0;
  uint32_t s = j->slot[slot_of(j, key)];
  if (!s) return 0;
  if (text) *text = j->ents[s - 1].text;
  if (day) *day = j->ents[s - 1].day;
  return 1;
}

/* Write the buffer; on failure cut the file back to its last whole record so
 * a later append never follows a torn one. */
static int drain(rt_answers *j, rt_err *err) {
  if (!j->wlen) return RT_OK;
  if (write_all(j->fd, j->wbuf, j->wlen) != 0) {
    int e = errno;
    if (ftruncate(j->fd, (off_t)j->committed) != 0) { /* best effort; open repairs it anyway */ }
    j->wlen = 0;
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot append to answer journal %s at byte %llu: %s", j->path,
                      (unsigned long long)j->committed, strerror(e));
  }
  j->committed += j->wlen;
  j->wlen = 0;
  return RT_OK;
}

int rt_answers_put(rt_answers *j, uint64_t key, uint32_t day, const char *text, rt_err *err) {
  size_t len = strlen(text);
  if (len > RT_ANSWERS_MAX_TEXT)
    return rt_err_set(err, RT_ERR_INPUT, "answer of %zu bytes for key %016llx exceeds the journal limit of %u",
                      len, (unsigned long long)key, RT_ANSWERS_MAX_TEXT);
  if (j->fd < 0) { /* an in-memory index (rt_answers_new_memory): nothing to write */
    index_put(j, key, day, text, (uint32_t)len, 0);
    j->st.appended++;
    j->st.keys = j->nents;
    return RT_OK;
  }
  size_t need = j->wlen + J_REC_OVERHEAD + len;
  if (need > j->wcap) {
    j->wcap = need > 2 * j->wcap ? need : 2 * j->wcap;
    j->wbuf = rt_xrealloc(j->wbuf, j->wcap);
  }
  unsigned char *r = j->wbuf + j->wlen;
  put32(r, (uint32_t)len);
  put32(r + 4, day);
  put64(r + 8, key);
  memcpy(r + J_REC_HDR, text, len);
  put64(r + J_REC_HDR + len, XXH3_64bits(r, J_REC_HDR + len));
  j->wlen = need;
  index_put(j, key, day, text, (uint32_t)len, 0);
  j->st.appended++;
  j->st.keys = j->nents;
  return j->wlen >= J_FLUSH_AT ? drain(j, err) : RT_OK;
}

int rt_answers_flush(rt_answers *j, rt_err *err) {
  int rc = drain(j, err);
  if (rc) return rc;
  if (fsync(j->fd) != 0)
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot fsync answer journal %s: %s", j->path, strerror(errno));
  return RT_OK;
}

int rt_answers_write(rt_answers *j, rt_err *err) { return j->fd < 0 ? RT_OK : drain(j, err); }

rt_answers *rt_answers_new_memory(void) {
  rt_answers *j = rt_xcalloc(1, sizeof *j);
  j->fd = -1;
  j->path = rt_xstrdup("(memory)");
  grow_index(j);
  return j;
}

int rt_answers_absorb(rt_answers *dst, const char *src_path, uint64_t *added, rt_err *err) {
  if (added) *added = 0;
  struct stat st;
  if (stat(src_path, &st) != 0) return RT_OK;
  FILE *f = fopen(src_path, "rb");
  if (!f)
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot read answer journal %s: %s", src_path, strerror(errno));
  unsigned char want[J_HDR], have[J_HDR];
  header_bytes(want);
  size_t got = fread(have, 1, J_HDR, f);
  if (got < J_HDR) { /* created and killed before its header was whole: empty */
    fclose(f);
    return RT_OK;
  }
  if (memcmp(have, want, J_HDR) != 0) {
    fclose(f);
    return rt_err_set(err, RT_ERR_INPUT, "%s is not an answer journal of version %u (bad header at byte 0)",
                      src_path, J_VERSION);
  }
  /* Index the source on its own, then copy its latest records. */
  rt_answers *src = rt_answers_new_memory();
  load_records(src, f);
  fclose(f);
  int rc = RT_OK;
  for (size_t i = 0; i < src->nents && rc == RT_OK; i++) {
    const entry *e = &src->ents[i];
    const char *have_text;
    if (rt_answers_get(dst, e->key, &have_text, NULL) == 1 && strcmp(have_text, e->text) == 0) continue;
    rc = rt_answers_put(dst, e->key, e->day, e->text, err);
    if (rc == RT_OK && added) (*added)++;
  }
  rt_answers_close(src, NULL);
  return rc;
}

int rt_answers_compact(rt_answers *j, rt_err *err) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", j->path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot create %s to compact the answer journal: %s", tmp,
                      strerror(errno));
  /* Records go out in first-seen key order: deterministic for equal inputs. */
  unsigned char h[J_HDR];
  header_bytes(h);
  size_t cap = 1 << 16, len = 0;
  unsigned char *buf = rt_xmalloc(cap);
  memcpy(buf, h, J_HDR);
  len = J_HDR;
  block *arena = NULL;
  int bad = 0;
  uint64_t total = J_HDR;
  for (size_t i = 0; i < j->nents && !bad; i++) {
    entry *e = &j->ents[i];
    size_t rl = J_REC_OVERHEAD + e->len;
    if (len + rl > cap) {
      bad = write_all(fd, buf, len);
      len = 0;
      if (rl > cap) buf = rt_xrealloc(buf, cap = rl);
    }
    unsigned char *r = buf + len;
    put32(r, e->len);
    put32(r + 4, e->day);
    put64(r + 8, e->key);
    memcpy(r + J_REC_HDR, e->text, e->len);
    put64(r + J_REC_HDR + e->len, XXH3_64bits(r, J_REC_HDR + e->len));
    len += rl;
    total += rl;
    char *nt = arena_alloc(&arena, (size_t)e->len + 1);
    memcpy(nt, e->text, (size_t)e->len + 1);
    e->text = nt;
  }
  if (!bad) bad = write_all(fd, buf, len);
  free(buf);
  int ok = !bad && fsync(fd) == 0, e = errno;
  if (close(fd) != 0 && ok) {
    ok = 0;
    e = errno;
  }
  if (ok && rename(tmp, j->path) != 0) {
    ok = 0;
    e = errno;
  }
  if (!ok) {
    unlink(tmp);
    /* The entries already point at the new arena; keep both alive until close. */
    block *last = arena;
    while (last && last->next) last = last->next;
    if (last) {
      last->next = j->arena;
      j->arena = arena;
    }
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot compact answer journal %s (via %s): %s; the old journal "
                      "is intact", j->path, tmp, strerror(e));
  }
  arena_free(j->arena);
  j->arena = arena;
  rt_fsync_dir_of(j->path, NULL);
  /* Pending buffered records are in the new file already (they were indexed). */
  j->wlen = 0;
  close(j->fd);
  j->fd = open(j->path, O_RDWR | O_APPEND | O_CLOEXEC);
  if (j->fd < 0)
    return rt_err_set(err, RT_ERR_OUTPUT, "cannot reopen compacted answer journal %s: %s", j->path,
                      strerror(errno));
  j->committed = total;
  return RT_OK;
}

void rt_answers_foreach(const rt_answers *j, int (*fn)(void *ud, uint64_t key, uint32_t day, const char *text),
                        void *ud) {
  for (size_t i = 0; j && i < j->nents; i++)
    if (fn(ud, j->ents[i].key, j->ents[i].day, j->ents[i].text)) return;
}

rt_answers_stats rt_answers_get_stats(const rt_answers *j) {
  rt_answers_stats s = {0};
  if (j) s = j->st;
  return s;
}

int rt_answers_close(rt_answers *j, rt_err *err) {
  if (!j) return RT_OK;
  int rc = j->fd >= 0 ? rt_answers_flush(j, err) : RT_OK;
  if (j->fd >= 0) close(j->fd);
  arena_free(j->arena);
  free(j->ents);
  free(j->slot);
  free(j->wbuf);
  free(j->path);
  free(j);
  return rc;
}
