/* msgpack_bound.h — check one msgpack object's declared lengths before
 * msgpack-c allocates for them.
 *
 * Why: msgpack-c allocates an array's or map's element slots as soon as it
 * reads the header, so 5 corrupt bytes declaring a 2^32-element array cost
 * 64–128 GiB before any element is read (a corrupt shard then failed as
 * "out of memory", exit 8, instead of "bad input", exit 3). Every container
 * element takes at least one byte and every string, binary or extension
 * its declared length, so an object is only handed to msgpack-c once its
 * declared sizes fit in the bytes at hand. Header-only (static inline):
 * the shard and counts readers and the table reader (libragtide, which
 * depends on nothing of the project) share it. No allocation. */
#ifndef RT_MSGPACK_BOUND_H
#define RT_MSGPACK_BOUND_H

#include <stddef.h>
#include <stdint.h>

enum { RT_MP_INCOMPLETE = 0, RT_MP_OK = 1, RT_MP_INVALID = -1 };

static inline uint64_t rt_mp_be(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = v << 8 | p[i];
  return v;
}

/* Walk the object at p[0..len): RT_MP_OK (its size in *used) when it is
 * complete and every declared length fits; RT_MP_INCOMPLETE when it needs
 * more bytes than len (truncated, or a declared length beyond the bytes at
 * hand: a reader with more input may call again with more); RT_MP_INVALID
 * for the never-used byte 0xc1. */
static inline int rt_mp_bounded(const unsigned char *p, size_t len, size_t *used) {
  size_t i = 0;
  uint64_t pending = 1; /* objects still to read */
  while (pending) {
    if (i >= len) return RT_MP_INCOMPLETE;
    unsigned b = p[i++];
    pending--;
    uint64_t items = 0, skip = 0;
    int lenbytes = 0;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
      /* fixint, nil, bool: the byte itself */
    } else if (b <= 0x8f) {
      items = 2 * (uint64_t)(b & 0x0f);
    } else if (b <= 0x9f) {
      items = b & 0x0f;
    } else if (b <= 0xbf) {
      skip = b & 0x1f;
    } else {
      switch (b) {
      case 0xc1: return RT_MP_INVALID;
      case 0xc4: case 0xc5: case 0xc6: lenbytes = 1 << (b - 0xc4); break;           /* bin 8/16/32 */
      case 0xc7: case 0xc8: case 0xc9: lenbytes = 1 << (b - 0xc7); skip = 1; break;  /* ext: + type */
      case 0xca: skip = 4; break;
      case 0xcb: skip = 8; break;
      case 0xcc: case 0xcd: case 0xce: case 0xcf: skip = 1u << (b - 0xcc); break;
      case 0xd0: case 0xd1: case 0xd2: case 0xd3: skip = 1u << (b - 0xd0); break;
      case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: skip = 1 + (1u << (b - 0xd4)); break;
      case 0xd9: case 0xda: case 0xdb: lenbytes = 1 << (b - 0xd9); break;           /* str 8/16/32 */
      case 0xdc: case 0xdd: lenbytes = b == 0xdc ? 2 : 4; items = 1; break;          /* array 16/32 */
      case 0xde: case 0xdf: lenbytes = b == 0xde ? 2 : 4; items = 2; break;          /* map 16/32 */
      default: return RT_MP_INVALID;
      }
      if (lenbytes) {
        if ((size_t)lenbytes > len - i) return RT_MP_INCOMPLETE;
        uint64_t n = rt_mp_be(p + i, lenbytes);
        i += (size_t)lenbytes;
        if (items) items *= n; /* array or map: n elements (pairs) */
        else skip += n;        /* str, bin, ext: n bytes (+ ext type) */
      }
    }
    if (skip > len - i) return RT_MP_INCOMPLETE;
    i += (size_t)skip;
    if (items > len - i || pending + items > len - i) return RT_MP_INCOMPLETE; /* >= 1 byte each */
    pending += items;
  }
  *used = i;
  return RT_MP_OK;
}

#endif
