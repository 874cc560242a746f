/* fuzz_events — the event shard reader (src/format/events.c) in its four
 * formats. Input: one selector byte, then the shard.
 *   selector & 3: 0 .msgpack, 1 .msgpack.zst, 2 .tsv, 3 .tsv.zst
 *   selector & 4 (zst formats only): the harness compresses the rest into
 *     zstd frames (split in two frames at a point given by selector bits
 *     3..6), so the fuzzer mutates the records under valid zstd;
 *     clear: the rest is the file as is (damaged zstd data).
 *   selector & 0x80: skip malformed TSV lines (input.on_bad_event = skip).
 * After a read, rt_events_locate must find the last event read (the read
 * stage's error messages use it). */
#include "fuzz_common.h"
#include "format/events.h"

#include <zstd.h>

static const char *const names[4] = {"shard.msgpack", "shard.msgpack.zst", "shard.tsv", "shard.tsv.zst"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  unsigned sel = data[0];
  int fmt = sel & 3;
  data++, size--;
  const char *path = fz_path(0, names[fmt]);
  if ((fmt & 1) && (sel & 4)) {
    size_t split = size * ((sel >> 3) & 15) / 16; /* 0: one frame */
    size_t cap = ZSTD_compressBound(split) + ZSTD_compressBound(size - split);
    uint8_t *z = malloc(cap ? cap : 1);
    size_t zn = 0;
    if (split) zn = ZSTD_compress(z, cap, data, split, 1);
    if (ZSTD_isError(zn)) abort();
    size_t z2 = ZSTD_compress(z + zn, cap - zn, data + split, size - split, 1);
    if (ZSTD_isError(z2)) abort();
    fz_write(path, z, zn + z2);
    free(z);
  } else {
    fz_write(path, data, size);
  }
  rt_event_reader *r = NULL;
  rt_err err = {0};
  if (rt_events_open(path, &r, &err) != RT_OK) {
    fz_check_msg(err.msg, sizeof err.msg);
    return 0;
  }
  int skip = (sel & 0x80) != 0;
  rt_events_skip_malformed(r, skip);
  rt_event buf[37];
  uint64_t total = 0;
  int clean = 0;
  for (;;) {
    long n = rt_events_read(r, buf, sizeof buf / sizeof buf[0], &err);
    if (n < 0) {
      if (err.code == RT_OK) abort();
      fz_check_msg(err.msg, sizeof err.msg);
      /* a spent reader repeats its error */
      rt_err again = {0};
      if (rt_events_read(r, buf, 1, &again) != -1 || again.code == RT_OK) abort();
      break;
    }
    if (n == 0) {
      clean = 1;
      break;
    }
    if ((size_t)n > sizeof buf / sizeof buf[0]) abort();
    total += (uint64_t)n;
    volatile uint64_t sink = 0;
    for (long i = 0; i < n; i++) sink += buf[i].user ^ (uint64_t)buf[i].ts ^ buf[i].cluster;
    (void)sink;
  }
  (void)rt_events_bytes_in(r);
  const rt_events_skips *sk = rt_events_skipped(r);
  if (!skip && (sk->fields || sk->number || sk->header)) abort();
  if ((sk->fields || sk->number || sk->header) && !sk->first[0]) abort();
  rt_events_close(r);
  if (total) {
    char where[512];
    if (rt_events_locate(path, total - 1, skip, where, sizeof where) != 0) abort(); /* the last event is there */
    /* after a clean end there is no event past the last */
    if (clean && rt_events_locate(path, total, skip, where, sizeof where) == 0) abort();
  }
  return 0;
}
