/* events.c — streaming reader and writer for event shards (docs/formats.md §2).
 *
 * Reader: one fixed decompressed buffer (RD_BUF bytes) plus, for zstd, one
 * fixed input buffer. Records are decoded in place; a record cut by the
 * buffer end is moved to the front before the next refill, so memory stays
 * bounded whatever the shard size and a record can never exceed RD_BUF bytes
 * (a real event is at most 41 bytes of msgpack or a short TSV line).
 * msgpack records are decoded with msgpack-c's msgpack_unpack() into one
 * reused zone, cleared every ZONE_RECORDS records, so decoding allocates
 * nothing per event. */
#include "format/events.h"
#include "table/msgpack_bound.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#define RD_BUF (256u * 1024u)     /* decompressed window; also the longest record/line */
#define WR_BUF (256u * 1024u)     /* writer staging buffer */
#define ZONE_RECORDS 64           /* 64 records x 4 objects fit in one 8 KiB zone chunk */
#define MSGPACK_EVENT_MAX 64      /* >= the largest encoding of one event (41 bytes) */

static size_t ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && strcmp(s + a - b, suf) == 0;
}

int rt_events_format_of(const char *path) {
  if (!path) return -1;
  if (ends_with(path, ".msgpack.zst")) return RT_EVFMT_MSGPACK_ZST;
  if (ends_with(path, ".msgpack")) return RT_EVFMT_MSGPACK;
  if (ends_with(path, ".tsv.zst")) return RT_EVFMT_TSV_ZST;
  if (ends_with(path, ".tsv")) return RT_EVFMT_TSV;
  return -1;
}

/* ------------------------------------------------------------------------ */
/* Reader                                                                    */
/* ------------------------------------------------------------------------ */

struct rt_event_reader {
  char *path;
  int fd;
  int fmt;
  int tsv;
  ZSTD_DCtx *dctx;      /* NULL for uncompressed shards */
  char *in;             /* compressed input buffer */
  size_t in_cap, in_len, in_pos;
  int file_eof;         /* read() returned 0 */
  size_t zret;          /* last ZSTD_decompressStream hint that made progress; 0 = frame boundary */
  char *buf;            /* decompressed bytes [pos, end) not yet decoded */
  size_t pos, end;
  uint64_t base;        /* decompressed-stream offset of buf[0] */
  uint64_t bytes_in;    /* file bytes read */
  uint64_t line;        /* TSV: number of lines consumed */
  int seen_line;        /* TSV: a non-blank line was consumed (the next one is not the first) */
  int skip_malformed;   /* TSV: skip malformed lines, counted in skips */
  rt_events_skips skips;
  int eof;              /* no more decompressed bytes will come */
  int failed;           /* sticky: every later read repeats the error */
  rt_err fail;
  msgpack_zone zone;
  int zone_ok;
  unsigned zone_uses;
};

static long reader_fail(rt_event_reader *r, rt_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static long reader_fail(rt_event_reader *r, rt_err *err, int code, const char *fmt, ...) {
  char msg[RT_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  r->failed = 1;
  rt_err_set(&r->fail, code, "%s", msg);
  rt_err_set(err, code, "%s", msg);
  return -1;
}

int rt_events_open(const char *path, rt_event_reader **out, rt_err *err) {
  *out = NULL;
  int fmt = rt_events_format_of(path);
  if (fmt < 0)
    return rt_err_set(err, RT_ERR_INPUT,
                      "%s: unknown shard format: the name must end in .msgpack.zst, .msgpack, .tsv or "
                      ".tsv.zst", path ? path : "(null)");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return rt_err_set(err, RT_ERR_INPUT, "cannot open %s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
    int e = fstat(fd, &st) != 0 ? errno : EISDIR;
    close(fd);
    return rt_err_set(err, RT_ERR_INPUT, "cannot open %s: %s", path, strerror(e));
  }
  rt_event_reader *r = rt_xcalloc(1, sizeof *r);
  r->path = rt_xstrdup(path);
  r->fd = fd;
  r->fmt = fmt;
  r->tsv = fmt == RT_EVFMT_TSV || fmt == RT_EVFMT_TSV_ZST;
  r->buf = rt_xmalloc(RD_BUF);
  if (fmt == RT_EVFMT_MSGPACK_ZST || fmt == RT_EVFMT_TSV_ZST) {
    r->dctx = ZSTD_createDCtx();
    if (!r->dctx) {
      rt_events_close(r);
      return rt_err_set(err, RT_ERR_NOMEM, "%s: cannot allocate a zstd decompression context", path);
    }
    r->in_cap = ZSTD_DStreamInSize();
    r->in = rt_xmalloc(r->in_cap);
  }
  if (!r->tsv) {
    if (!msgpack_zone_init(&r->zone, MSGPACK_ZONE_CHUNK_SIZE)) {
      rt_events_close(r);
      return rt_err_set(err, RT_ERR_NOMEM, "%s: cannot allocate a msgpack zone", path);
    }
    r->zone_ok = 1;
  }
  *out = r;
  return RT_OK;
}

static int read_fd(rt_event_reader *r, char *dst, size_t cap, size_t *got, rt_err *err) {
  for (;;) {
    ssize_t n = read(r->fd, dst, cap);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return (int)reader_fail(r, err, RT_ERR_INPUT, "cannot read %s at byte %llu of the file: %s",
                              r->path, (unsigned long long)r->bytes_in, strerror(errno));
    *got = (size_t)n;
    r->bytes_in += (uint64_t)n;
    return 0;
  }
}

/* Move the undecoded tail to the front and append more decompressed bytes.
 * Returns 1 if bytes were added, 0 at the end of the stream, 2 if the buffer
 * is full of one undecoded record, -1 on error (err filled). */
static int fill(rt_event_reader *r, rt_err *err) {
  if (r->pos > 0) {
    memmove(r->buf, r->buf + r->pos, r->end - r->pos);
    r->base += r->pos;
    r->end -= r->pos;
    r->pos = 0;
  }
  if (r->end == RD_BUF) return 2;
  if (r->eof) return 0;
  if (!r->dctx) {
    size_t got;
    if (read_fd(r, r->buf + r->end, RD_BUF - r->end, &got, err)) return -1;
    if (got == 0) {
      r->eof = 1;
      return 0;
    }
    r->end += got;
    return 1;
  }
  for (;;) {
    if (r->in_pos == r->in_len && !r->file_eof) {
      size_t got;
      if (read_fd(r, r->in, r->in_cap, &got, err)) return -1;
      r->in_len = got;
      r->in_pos = 0;
      if (got == 0) r->file_eof = 1;
    }
    ZSTD_inBuffer in = {r->in, r->in_len, r->in_pos};
    ZSTD_outBuffer out = {r->buf, RD_BUF, r->end};
    size_t ret = ZSTD_decompressStream(r->dctx, &out, &in);
    if (ZSTD_isError(ret))
      return (int)reader_fail(r, err, RT_ERR_INPUT,
                              "%s: byte %llu: corrupt zstd data near compressed byte %llu (%s); the shard "
                              "is damaged: regenerate it or remove it from the input",
                              r->path, (unsigned long long)(r->base + r->end),
                              (unsigned long long)(r->bytes_in - (r->in_len - in.pos)),
                              ZSTD_getErrorName(ret));
    /* Only a call that made progress tells where we are in the frame: with no
     * input at all (empty file) the hint is non-zero but nothing is open. */
    if (in.pos > r->in_pos || out.pos > r->end) r->zret = ret;
    r->in_pos = in.pos;
    if (out.pos > r->end) {
      r->end = out.pos;
      return 1;
    }
    if (r->in_pos == r->in_len && r->file_eof) {
      if (r->zret != 0)
        return (int)reader_fail(r, err, RT_ERR_INPUT,
                                "%s: byte %llu: truncated zstd frame at end of file (%llu compressed "
                                "bytes); the shard was cut short: regenerate or re-copy it",
                                r->path, (unsigned long long)(r->base + r->end),
                                (unsigned long long)r->bytes_in);
      r->eof = 1;
      return 0;
    }
  }
}

static const char *mp_type_name(const msgpack_object *o) {
  switch (o->type) {
  case MSGPACK_OBJECT_NIL: return "nil";
  case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
  case MSGPACK_OBJECT_POSITIVE_INTEGER: return "a non-negative integer";
  case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "a negative integer";
  case MSGPACK_OBJECT_FLOAT32: return "a float32";
  case MSGPACK_OBJECT_FLOAT64: return "a float64";
  case MSGPACK_OBJECT_STR: return "a string";
  case MSGPACK_OBJECT_ARRAY: return "an array";
  case MSGPACK_OBJECT_MAP: return "a map";
  case MSGPACK_OBJECT_BIN: return "a binary";
  case MSGPACK_OBJECT_EXT: return "an extension";
  default: return "an unknown type";
  }
}

/* Convert one decoded record; on a type error fill `why`. */
static int convert(const msgpack_object *o, rt_event *ev, char *why, size_t cap) {
  if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 4) {
    if (o->type == MSGPACK_OBJECT_ARRAY)
      snprintf(why, cap, "record is an array of %u elements, expected 4 [user, ts, cluster, engagement]",
               o->via.array.size);
    else
      snprintf(why, cap, "record is %s, expected an array of 4 [user, ts, cluster, engagement]",
               mp_type_name(o));
    return -1;
  }
  const msgpack_object *f = o->via.array.ptr;
  if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
    if (f[0].type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
      snprintf(why, cap, "user is negative (%lld), expected a non-negative integer", (long long)f[0].via.i64);
    else
      snprintf(why, cap, "user is %s, expected a non-negative integer", mp_type_name(&f[0]));
    return -1;
  }
  ev->user = f[0].via.u64;
  if (f[1].type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
    ev->ts = f[1].via.i64;
  } else if (f[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER && f[1].via.u64 <= (uint64_t)INT64_MAX) {
    ev->ts = (int64_t)f[1].via.u64;
  } else {
    if (f[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
      snprintf(why, cap, "ts %llu does not fit a signed 64-bit integer", (unsigned long long)f[1].via.u64);
    else
      snprintf(why, cap, "ts is %s, expected an integer (unix seconds)", mp_type_name(&f[1]));
    return -1;
  }
  if (f[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[2].via.u64 > UINT32_MAX) {
    if (f[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
      snprintf(why, cap, "cluster %llu does not fit 32 bits", (unsigned long long)f[2].via.u64);
    else
      snprintf(why, cap, "cluster is %s, expected an unsigned 32-bit integer", mp_type_name(&f[2]));
    return -1;
  }
  ev->cluster = (uint32_t)f[2].via.u64;
  switch (f[3].type) {
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64: ev->engagement = (float)f[3].via.f64; break;
  case MSGPACK_OBJECT_POSITIVE_INTEGER: ev->engagement = (float)f[3].via.u64; break;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER: ev->engagement = (float)f[3].via.i64; break;
  default:
    snprintf(why, cap, "engagement is %s, expected a number", mp_type_name(&f[3]));
    return -1;
  }
  return 0;
}

/* Fast path for the record shape every writer produces: a fixarray of 4
 * holding integers in their msgpack int/uint encodings and a float32/float64
 * (or integer) engagement. It reads exactly what msgpack_unpack() + convert()
 * would, and declines (returns 0) on anything else, incomplete records
 * included, which then take the generic msgpack-c path with its precise
 * errors. Why: msgpack-c's generic unpack was half of the read time. */
static inline int fast_uint(const unsigned char *p, const unsigned char *e, uint64_t *v, const unsigned char **next) {
  if (p >= e) return 0;
  unsigned b = *p;
  if (b <= 0x7f) {
    *v = b;
    *next = p + 1;
    return 1;
  }
  int n = b == 0xcc ? 1 : b == 0xcd ? 2 : b == 0xce ? 4 : b == 0xcf ? 8 : 0;
  if (!n || e - p < 1 + n) return 0;
  uint64_t x = 0;
  for (int i = 1; i <= n; i++) x = (x << 8) | p[i];
  *v = x;
  *next = p + 1 + n;
  return 1;
}

static inline int fast_int(const unsigned char *p, const unsigned char *e, int64_t *v, const unsigned char **next) {
  uint64_t u;
  if (fast_uint(p, e, &u, next)) {
    if (u > (uint64_t)INT64_MAX) return 0;
    *v = (int64_t)u;
    return 1;
  }
  if (p >= e) return 0;
  unsigned b = *p;
  if (b >= 0xe0) {
    *v = (int8_t)b;
    *next = p + 1;
    return 1;
  }
  int n = b == 0xd0 ? 1 : b == 0xd1 ? 2 : b == 0xd2 ? 4 : b == 0xd3 ? 8 : 0;
  if (!n || e - p < 1 + n) return 0;
  uint64_t x = 0;
  for (int i = 1; i <= n; i++) x = (x << 8) | p[i];
  /* sign-extend an n-byte two's complement value */
  if (n < 8 && (x >> (8 * n - 1))) x |= ~0ULL << (8 * n);
  *v = (int64_t)x;
  *next = p + 1 + n;
  return 1;
}

static inline int fast_record(const unsigned char *p, const unsigned char *e, rt_event *ev, size_t *used) {
  const unsigned char *q = p + 1, *start = p;
  if (p >= e || *p != 0x94) return 0;
  uint64_t user, cluster;
  int64_t ts;
  if (!fast_uint(q, e, &user, &q) || !fast_int(q, e, &ts, &q) || !fast_uint(q, e, &cluster, &q) ||
      cluster > UINT32_MAX || q >= e)
    return 0;
  unsigned b = *q;
  if (b == 0xca && e - q >= 5) {
    uint32_t x = ((uint32_t)q[1] << 24) | ((uint32_t)q[2] << 16) | ((uint32_t)q[3] << 8) | q[4];
    float f;
    memcpy(&f, &x, 4);
    ev->engagement = f;
    q += 5;
  } else if (b == 0xcb && e - q >= 9) {
    uint64_t x = 0;
    for (int i = 1; i <= 8; i++) x = (x << 8) | q[i];
    double d;
    memcpy(&d, &x, 8);
    ev->engagement = (float)d;
    q += 9;
  } else {
    int64_t iv;
    if (!fast_int(q, e, &iv, &q)) return 0;
    ev->engagement = (float)iv;
  }
  ev->user = user;
  ev->ts = ts;
  ev->cluster = (uint32_t)cluster;
  *used = (size_t)(q - start);
  return 1;
}

/* Bulk fast path, for records at least MSGPACK_EVENT_MAX bytes before the
 * buffer end: no bounds checks, fields read with one unaligned 8-byte load
 * each. Finding a field needs the previous field's width, a serial chain of
 * loads that dominated decoding; but a shard's records nearly all share one
 * shape (the writer picks each field's width from its magnitude), so the
 * widths are learnt from one record and the next records are only checked
 * against them, with every field at a known offset. It takes the encodings
 * fast_record() takes, except a negative ts, an 8-byte cluster or an integer
 * engagement, and declines (returns 0) anything else for fast_record() and
 * msgpack-c. */
static inline uint64_t load_be64(const unsigned char *p) {
  uint64_t x;
  memcpy(&x, p, 8);
  return __builtin_bswap64(x);
}

/* Encoded length of a uint (positive fixint, 0xcc..0xcf) by tag; 0: not one. */
static const unsigned char uint_len[256] = {
#define L8(v) v, v, v, v, v, v, v, v
#define L64(v) L8(v), L8(v), L8(v), L8(v), L8(v), L8(v), L8(v), L8(v)
    L64(1), L64(1),                                 /* 0x00..0x7f */
    L64(0),                                         /* 0x80..0xbf */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 5, 9, /* 0xc0..0xcf */
    L8(0), L8(0), L8(0), L8(0), L8(0), L8(0)        /* 0xd0..0xff */
#undef L64
#undef L8
};

/* A uint at p of encoded length len (uint_len[*p] == len != 0). */
static inline uint64_t bulk_uint(const unsigned char *p, unsigned len) {
  uint64_t v = load_be64(p + 1) >> ((72 - 8 * len) & 63);
  return len == 1 ? *p : v;
}

/* Field widths (tag included) and offsets of one record shape; len 0: none. */
typedef struct mp_shape {
  unsigned lu, lt, lc, ftag; /* user, ts, cluster widths; 0xca or 0xcb */
  unsigned ots, ocl, oeng, len;
} mp_shape;

/* Learn the shape of the record at p; 0 if the bulk path does not take it. */
static inline int shape_learn(const unsigned char *p, mp_shape *sh) {
  if (p[0] != 0x94) return 0;
  unsigned lu = uint_len[p[1]], ots = 1 + lu;
  unsigned lt = uint_len[p[ots]], ocl = ots + lt;
  unsigned lc = uint_len[p[ocl]], oeng = ocl + lc;
  unsigned ft = p[oeng];
  if (!lu || !lt || !lc || lc == 9 || (ft != 0xca && ft != 0xcb)) return 0;
  *sh = (mp_shape){lu, lt, lc, ft, ots, ocl, oeng, oeng + (ft == 0xca ? 5 : 9)};
  return 1;
}

/* Decode the record at p if it has shape sh; returns its length or 0. */
static inline size_t bulk_record(const unsigned char *p, const mp_shape *sh, rt_event *ev) {
  /* one branch for the whole check */
  if ((p[0] != 0x94) | (uint_len[p[1]] != sh->lu) | (uint_len[p[sh->ots]] != sh->lt) |
      (uint_len[p[sh->ocl]] != sh->lc) | (p[sh->oeng] != sh->ftag))
    return 0;
  uint64_t ts = bulk_uint(p + sh->ots, sh->lt);
  if (ts > (uint64_t)INT64_MAX) return 0;
  ev->user = bulk_uint(p + 1, sh->lu);
  ev->ts = (int64_t)ts;
  ev->cluster = (uint32_t)bulk_uint(p + sh->ocl, sh->lc); /* lc <= 5: fits */
  uint64_t x = load_be64(p + sh->oeng + 1);
  if (sh->ftag == 0xca) {
    uint32_t f = (uint32_t)(x >> 32);
    memcpy(&ev->engagement, &f, 4);
  } else {
    double d;
    memcpy(&d, &x, 8);
    ev->engagement = (float)d;
  }
  return sh->len;
}

static long read_msgpack(rt_event_reader *r, rt_event *out, size_t max, rt_err *err) {
  size_t n = 0;
  mp_shape sh = {0}; /* matches no record: the first one is learnt */
  while (n < max) {
    {
      const unsigned char *b = (const unsigned char *)r->buf;
      size_t pos = r->pos, end = r->end, used;
      /* MSGPACK_EVENT_MAX: the 8-byte load at a record's last field stays
       * inside the buffer */
      while (n < max && end - pos >= MSGPACK_EVENT_MAX) {
        /* a new shape is learnt once; a record that its own shape still
         * declines (a value out of range) is left to the paths below */
        if (!(used = bulk_record(b + pos, &sh, &out[n])) &&
            (!shape_learn(b + pos, &sh) || !(used = bulk_record(b + pos, &sh, &out[n]))))
          break;
        pos += used;
        n++;
      }
      r->pos = pos;
      if (n == max) break;
    }
    if (r->pos == r->end) {
      int f = fill(r, err);
      if (f < 0) return -1;
      if (f == 0) break;
      continue;
    }
    size_t used;
    if (fast_record((const unsigned char *)r->buf + r->pos, (const unsigned char *)r->buf + r->end, &out[n],
                    &used)) {
      r->pos += used;
      n++;
      continue;
    }
    if (++r->zone_uses >= ZONE_RECORDS) {
      msgpack_zone_clear(&r->zone);
      r->zone_uses = 0;
    }
    size_t off = r->pos; /* msgpack_unpack moves off even when it returns CONTINUE */
    msgpack_object obj;
    /* Declared lengths first: msgpack-c would allocate for them at once. */
    size_t whole;
    int w = rt_mp_bounded((const unsigned char *)r->buf + r->pos, r->end - r->pos, &whole);
    msgpack_unpack_return rc = w == RT_MP_OK           ? msgpack_unpack(r->buf, r->end, &off, &r->zone, &obj)
                               : w == RT_MP_INCOMPLETE ? MSGPACK_UNPACK_CONTINUE
                                                       : MSGPACK_UNPACK_PARSE_ERROR;
    uint64_t at = r->base + r->pos;
    if (rc == MSGPACK_UNPACK_SUCCESS || rc == MSGPACK_UNPACK_EXTRA_BYTES) {
      char why[256];
      if (convert(&obj, &out[n], why, sizeof why) != 0)
        return reader_fail(r, err, RT_ERR_INPUT, "%s: byte %llu: %s; fix or regenerate the shard", r->path,
                           (unsigned long long)at, why);
      n++;
      r->pos = off;
    } else if (rc == MSGPACK_UNPACK_CONTINUE) {
      int f = fill(r, err);
      if (f < 0) return -1;
      at = r->base + r->pos;
      if (f == 0)
        return reader_fail(r, err, RT_ERR_INPUT,
                           "%s: byte %llu: truncated record at end of stream (%zu bytes of an incomplete "
                           "msgpack record); the shard was cut short: regenerate or re-copy it",
                           r->path, (unsigned long long)at, r->end - r->pos);
      if (f == 2) {
        unsigned char b = (unsigned char)r->buf[r->pos];
        int is_array = (b & 0xf0) == 0x90 || b == 0xdc || b == 0xdd;
        return reader_fail(r, err, RT_ERR_INPUT,
                           "%s: byte %llu: %s longer than %u bytes, not an event record "
                           "[user, ts, cluster, engagement]; fix or regenerate the shard",
                           r->path, (unsigned long long)at,
                           is_array ? "record" : "record is not an array and is", RD_BUF);
      }
    } else if (rc == MSGPACK_UNPACK_NOMEM_ERROR) {
      return reader_fail(r, err, RT_ERR_NOMEM, "%s: byte %llu: out of memory decoding a msgpack record",
                         r->path, (unsigned long long)at);
    } else {
      return reader_fail(r, err, RT_ERR_INPUT,
                         "%s: byte %llu: invalid msgpack (byte 0x%02x starts no valid record); the shard is "
                         "not msgpack or is damaged: regenerate it", r->path, (unsigned long long)at,
                         (unsigned char)r->buf[r->pos]);
    }
  }
  return (long)n;
}

/* TSV field parsers: whole field, no sign unless allowed, no blanks. */
static int parse_u64(const char *s, size_t n, uint64_t *out) {
  if (n == 0 || n > 20) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned d = (unsigned char)s[i] - '0';
    if (d > 9) return -1;
    if (v > (UINT64_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

static int parse_i64(const char *s, size_t n, int64_t *out) {
  int neg = n > 0 && s[0] == '-';
  uint64_t v;
  if (parse_u64(s + neg, n - (size_t)neg, &v)) return -1;
  if (neg) {
    if (v > (uint64_t)INT64_MAX + 1) return -1;
    *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
  } else {
    if (v > (uint64_t)INT64_MAX) return -1;
    *out = (int64_t)v;
  }
  return 0;
}

static int parse_float(const char *s, size_t n, float *out) {
  char tmp[64];
  if (n == 0 || n >= sizeof tmp || s[0] == ' ' || s[0] == '\t') return -1;
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  char *end;
  errno = 0;
  float v = strtof(tmp, &end);
  if (end != tmp + n) return -1;
  *out = v; /* ERANGE: strtof already gave +-HUGE_VALF or a denormal; pass it through */
  return 0;
}

/* Parse one TSV line (no newline). Returns 0, 1 for a blank line, -1 (not 4
 * fields) or -2 (a field that is not a number of its type) with why filled. */
static int parse_tsv_line(const char *s, size_t n, rt_event *ev, char *why, size_t cap) {
  if (n > 0 && s[n - 1] == '\r') n--;
  if (n == 0) return 1;
  const char *f[4];
  size_t fl[4];
  size_t nf = 0, start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i == n || s[i] == '\t') {
      if (nf < 4) {
        f[nf] = s + start;
        fl[nf] = i - start;
      }
      nf++;
      start = i + 1;
    }
  }
  if (nf != 4) {
    snprintf(why, cap, "expected 4 tab-separated fields (user, ts, cluster, engagement), found %zu", nf);
    return -1;
  }
  if (parse_u64(f[0], fl[0], &ev->user)) {
    snprintf(why, cap, "user \"%.*s\" is not a non-negative 64-bit integer", (int)(fl[0] > 40 ? 40 : fl[0]),
             f[0]);
    return -2;
  }
  if (parse_i64(f[1], fl[1], &ev->ts)) {
    snprintf(why, cap, "ts \"%.*s\" is not a 64-bit integer (unix seconds)", (int)(fl[1] > 40 ? 40 : fl[1]),
             f[1]);
    return -2;
  }
  uint64_t c;
  if (parse_u64(f[2], fl[2], &c) || c > UINT32_MAX) {
    snprintf(why, cap, "cluster \"%.*s\" is not an unsigned 32-bit integer", (int)(fl[2] > 40 ? 40 : fl[2]),
             f[2]);
    return -2;
  }
  ev->cluster = (uint32_t)c;
  if (parse_float(f[3], fl[3], &ev->engagement)) {
    snprintf(why, cap, "engagement \"%.*s\" is not a number", (int)(fl[3] > 40 ? 40 : fl[3]), f[3]);
    return -2;
  }
  return 0;
}

static long read_tsv(rt_event_reader *r, rt_event *out, size_t max, rt_err *err) {
  size_t n = 0;
  while (n < max) {
    char *s = r->buf + r->pos;
    char *nl = memchr(s, '\n', r->end - r->pos);
    size_t len;
    if (!nl) {
      int f = fill(r, err);
      if (f < 0) return -1;
      if (f == 1) continue;
      if (f == 2)
        return reader_fail(r, err, RT_ERR_INPUT, "%s:%llu: line longer than %u bytes; not an event line",
                           r->path, (unsigned long long)r->line + 1, RD_BUF);
      if (r->pos == r->end) break; /* clean end */
      s = r->buf + r->pos;         /* last line without a newline */
      len = r->end - r->pos;
    } else {
      len = (size_t)(nl - s);
    }
    r->line++;
    char why[256];
    int rc = parse_tsv_line(s, len, &out[n], why, sizeof why);
    /* A header: the shard's first non-blank line, malformed, starting with a
     * letter (an event line starts with the user id's digits). */
    int header = rc < 0 && !r->seen_line && len > 0 && ((s[0] | 0x20) >= 'a' && (s[0] | 0x20) <= 'z');
    if (header) {
      size_t hl = len;
      while (hl > 0 && s[hl - 1] == '\r') hl--;
      char shown[64];
      size_t k = 0;
      for (size_t i = 0; i < hl && k + 3 < sizeof shown; i++) /* tabs shown as \t, the rest printable */
        if (s[i] == '\t') shown[k++] = '\\', shown[k++] = 't';
        else shown[k++] = (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f ? s[i] : '?';
      shown[k] = '\0';
      snprintf(why, sizeof why, "a header line (\"%s%s\"), but shards have none", shown, k < hl ? "..." : "");
    }
    if (rc != 1) r->seen_line = 1;
    if (rc < 0 && r->skip_malformed) {
      if (header) r->skips.header++;
      else if (rc == -1) r->skips.fields++;
      else r->skips.number++;
      if (!r->skips.first[0])
        snprintf(r->skips.first, sizeof r->skips.first, "%s:%llu: %s", r->path, (unsigned long long)r->line, why);
      rc = 1;
    }
    if (rc < 0)
      return reader_fail(r, err, RT_ERR_INPUT,
                         "%s:%llu: %s; fix or regenerate the shard, or set input.on_bad_event = skip to count "
                         "and skip malformed lines", r->path, (unsigned long long)r->line, why);
    if (rc == 0) n++;
    r->pos += nl ? len + 1 : len;
  }
  return (long)n;
}

long rt_events_read(rt_event_reader *r, rt_event *buf, size_t max, rt_err *err) {
  if (!r) return rt_err_set(err, RT_ERR_INTERNAL, "rt_events_read: no reader"), -1;
  if (r->failed) {
    if (err) *err = r->fail;
    return -1;
  }
  if (max == 0) return 0;
  return r->tsv ? read_tsv(r, buf, max, err) : read_msgpack(r, buf, max, err);
}

uint64_t rt_events_bytes_in(const rt_event_reader *r) { return r ? r->bytes_in : 0; }

void rt_events_skip_malformed(rt_event_reader *r, int on) {
  if (r) r->skip_malformed = on;
}

const rt_events_skips *rt_events_skipped(const rt_event_reader *r) { return &r->skips; }

int rt_events_locate(const char *path, uint64_t idx, int skip_malformed, char *out, size_t cap) {
  rt_event_reader *r;
  rt_err err;
  if (rt_events_open(path, &r, &err) != RT_OK) return -1;
  rt_events_skip_malformed(r, skip_malformed);
  rt_event ev;
  int found = -1;
  for (uint64_t i = 0;; i++) {
    uint64_t at = r->base + r->pos; /* msgpack: where the next record starts */
    if (rt_events_read(r, &ev, 1, &err) != 1) break;
    if (i == idx) {
      if (r->tsv) snprintf(out, cap, "%s:%llu", path, (unsigned long long)r->line);
      else snprintf(out, cap, "%s: byte %llu", path, (unsigned long long)at);
      found = 0;
      break;
    }
  }
  rt_events_close(r);
  return found;
}

void rt_events_close(rt_event_reader *r) {
  if (!r) return;
  if (r->fd >= 0) close(r->fd);
  if (r->dctx) ZSTD_freeDCtx(r->dctx);
  if (r->zone_ok) msgpack_zone_destroy(&r->zone);
  free(r->in);
  free(r->buf);
  free(r->path);
  free(r);
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                    */
/* ------------------------------------------------------------------------ */

struct rt_event_writer {
  char *path;
  rt_atomic_file af; /* PATH.tmp.PID until finished */
  int fmt;
  int tsv;
  ZSTD_CCtx *cctx;
  char *buf; /* uncompressed staging bytes */
  size_t len;
  char *zout;
  size_t zcap;
};

/* msgpack-c's own packer template, instantiated with an inline append into
 * the staging buffer instead of msgpack_packer's callback per field (the
 * callbacks cost ~11% of gen-logs' time). Callers keep >= 128 bytes free. */
static inline int stage_append(rt_event_writer *w, const char *b, size_t n) {
  memcpy(w->buf + w->len, b, n);
  w->len += n;
  return 0;
}
#define msgpack_pack_inline_func(name) static inline int rt_mp_pack##name
#define msgpack_pack_inline_func_cint(name) static inline int rt_mp_pack##name
#define msgpack_pack_user rt_event_writer *
#define msgpack_pack_append_buffer(user, buf, len) return stage_append((user), (const char *)(buf), (len))
#include <msgpack/pack_template.h>

static int write_all(rt_event_writer *w, const char *p, size_t n, rt_err *err) {
  return rt_atomic_write(&w->af, p, n, err);
}

/* Push the staged bytes out; `end` closes the zstd frame. */
static int flush_buf(rt_event_writer *w, int end, rt_err *err) {
  if (!w->cctx) {
    int rc = write_all(w, w->buf, w->len, err);
    w->len = 0;
    return rc;
  }
  ZSTD_inBuffer in = {w->buf, w->len, 0};
  for (;;) {
    ZSTD_outBuffer out = {w->zout, w->zcap, 0};
    size_t rem = ZSTD_compressStream2(w->cctx, &out, &in, end ? ZSTD_e_end : ZSTD_e_continue);
    if (ZSTD_isError(rem))
      return rt_err_set(err, RT_ERR_INTERNAL, "%s: zstd compression failed: %s", w->path,
                        ZSTD_getErrorName(rem));
    if (out.pos) {
      int rc = write_all(w, w->zout, out.pos, err);
      if (rc) return rc;
    }
    if (end ? rem == 0 : in.pos == in.size) break;
  }
  w->len = 0;
  return RT_OK;
}

int rt_events_create(const char *path, int level, rt_event_writer **out, rt_err *err) {
  *out = NULL;
  int fmt = rt_events_format_of(path);
  if (fmt < 0)
    return rt_err_set(err, RT_ERR_USAGE,
                      "%s: unknown shard format: the name must end in .msgpack.zst, .msgpack, .tsv or "
                      ".tsv.zst", path ? path : "(null)");
  int zst = fmt == RT_EVFMT_MSGPACK_ZST || fmt == RT_EVFMT_TSV_ZST;
  if (zst && (level < 1 || level > 19))
    return rt_err_set(err, RT_ERR_USAGE, "%s: zstd level %d is outside 1..19", path, level);
  rt_event_writer *w = rt_xcalloc(1, sizeof *w);
  w->path = rt_xstrdup(path);
  w->fmt = fmt;
  w->tsv = fmt == RT_EVFMT_TSV || fmt == RT_EVFMT_TSV_ZST;
  w->buf = rt_xmalloc(WR_BUF);
  if (zst) {
    w->cctx = ZSTD_createCCtx();
    if (!w->cctx) {
      rt_events_abort(w);
      return rt_err_set(err, RT_ERR_NOMEM, "%s: cannot allocate a zstd compression context", path);
    }
    /* Single-threaded with fixed parameters so equal input gives equal bytes;
     * the checksum lets the reader detect damaged frames. */
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
    w->zcap = ZSTD_CStreamOutSize();
    w->zout = rt_xmalloc(w->zcap);
  }
  int rc = rt_atomic_open(&w->af, path, err);
  if (rc) {
    rt_events_abort(w);
    return rc;
  }
  *out = w;
  return RT_OK;
}

static char *put_u64(char *p, uint64_t v) {
  char tmp[20];
  int k = 0;
  do {
    tmp[k++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (k) *p++ = tmp[--k];
  return p;
}

/* Shortest decimal that reads back as the same float (at most 9 digits). */
static char *put_float(char *p, float f) {
  char tmp[48];
  if (isnan(f)) return memcpy(p, "nan", 3), p + 3;
  for (int prec = 6; prec <= 9; prec++) {
    int k = snprintf(tmp, sizeof tmp, "%.*g", prec, (double)f);
    if (prec == 9 || strtof(tmp, NULL) == f) {
      memcpy(p, tmp, (size_t)k);
      return p + k;
    }
  }
  return p;
}

int rt_events_write(rt_event_writer *w, const rt_event *ev, size_t n, rt_err *err) {
  for (size_t i = 0; i < n; i++) {
    if (WR_BUF - w->len < 128) { /* room for the longest record of either format */
      int rc = flush_buf(w, 0, err);
      if (rc) return rc;
    }
    const rt_event *e = &ev[i];
    if (w->tsv) {
      char *p = w->buf + w->len;
      p = put_u64(p, e->user);
      *p++ = '\t';
      if (e->ts < 0) {
        *p++ = '-';
        p = put_u64(p, (uint64_t)0 - (uint64_t)e->ts);
      } else {
        p = put_u64(p, (uint64_t)e->ts);
      }
      *p++ = '\t';
      p = put_u64(p, e->cluster);
      *p++ = '\t';
      p = put_float(p, e->engagement);
      *p++ = '\n';
      w->len = (size_t)(p - w->buf);
    } else {
      rt_mp_pack_array(w, 4);
      rt_mp_pack_uint64(w, e->user);
      rt_mp_pack_int64(w, e->ts);
      rt_mp_pack_uint32(w, e->cluster);
      rt_mp_pack_float(w, e->engagement);
    }
  }
  return RT_OK;
}

static void writer_free(rt_event_writer *w) {
  if (w->cctx) ZSTD_freeCCtx(w->cctx);
  free(w->zout);
  free(w->buf);
  free(w->path);
  free(w);
}

int rt_events_finish(rt_event_writer *w, rt_err *err) {
  if (!w) return rt_err_set(err, RT_ERR_INTERNAL, "rt_events_finish: no writer");
  int rc = flush_buf(w, 1, err);
  if (rc == RT_OK) rc = rt_atomic_commit(&w->af, err); /* fsync, rename, fsync the directory */
  else rt_atomic_abort(&w->af);
  writer_free(w);
  return rc;
}

void rt_events_abort(rt_event_writer *w) {
  if (!w) return;
  rt_atomic_abort(&w->af);
  writer_free(w);
}
