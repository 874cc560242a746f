/* fuzz_answers — the answer journal (src/format/answers.c): rt_answers_open
 * (which repairs a torn tail in place), every record, then
 * rt_answers_absorb of the same bytes into a memory index. Input: one
 * selector byte, then the journal file;
 *   selector & 1 set: the harness recomputes each complete record's XXH3
 *   checksum first, so the fuzzer gets past the checksums to the records. */
#include "fuzz_common.h"
#include "format/answers.h"

#include <xxhash.h>

static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

static int visit(void *ud, uint64_t key, uint32_t day, const char *text) {
  const rt_answers *j = ud;
  const char *t = NULL;
  uint32_t d = 0;
  if (!rt_answers_get(j, key, &t, &d)) abort(); /* foreach and get disagree */
  if (d != day || strcmp(t, text) != 0) abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  unsigned sel = data[0];
  data++, size--;
  uint8_t *b = malloc(size ? size : 1);
  memcpy(b, data, size);
  if ((sel & 1) && size >= 16) {
    size_t off = 16;
    while (off + 16 <= size) {
      uint64_t tl = get32(b + off);
      if (tl > size - off - 16 || size - off - 16 - tl < 8) break;
      uint64_t h = XXH3_64bits(b + off, 16 + tl);
      for (int i = 0; i < 8; i++) b[off + 16 + tl + i] = (uint8_t)(h >> (8 * i));
      off += 16 + tl + 8;
    }
  }
  const char *path = fz_path(0, "journal.answers");
  fz_write(path, b, size);
  free(b);
  rt_answers *j = NULL;
  rt_err err = {0};
  if (rt_answers_open(path, &j, &err) == RT_OK) {
    rt_answers_foreach(j, visit, j);
    rt_answers_stats st = rt_answers_get_stats(j);
    if (st.keys > st.records_loaded) abort();
    if (rt_answers_close(j, &err) != RT_OK) fz_check_msg(err.msg, sizeof err.msg);
  } else {
    if (err.code == RT_OK) abort();
    fz_check_msg(err.msg, sizeof err.msg);
  }
  /* absorb reads without repairing: the original bytes again */
  const char *src = fz_path(1, "src.answers");
  fz_write(src, data, size);
  rt_answers *m = rt_answers_new_memory();
  uint64_t added = 0;
  rt_err e2 = {0};
  if (rt_answers_absorb(m, src, &added, &e2) != RT_OK) fz_check_msg(e2.msg, sizeof e2.msg);
  rt_answers_close(m, NULL);
  return 0;
}
