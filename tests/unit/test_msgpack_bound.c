/* test_msgpack_bound.c — declared lengths are checked against the bytes at
 * hand before msgpack-c allocates (table/msgpack_bound.h), and a valid
 * object is measured exactly as msgpack-c measures it. */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <string.h>

#include "table/msgpack_bound.h"

static int walk(const char *bytes, size_t n, size_t *used) {
  return rt_mp_bounded((const unsigned char *)bytes, n, used);
}

Test(msgpack_bound, huge_declared_lengths_are_incomplete_not_allocated) {
  size_t used = 0;
  /* array32 of 2^32-1 elements, 5 bytes of input */
  cr_assert_eq(walk("\xdd\xff\xff\xff\xff", 5, &used), RT_MP_INCOMPLETE);
  /* map32, str32, bin32, ext32 likewise */
  cr_assert_eq(walk("\xdf\x7f\xff\xff\xff\x01\x02", 7, &used), RT_MP_INCOMPLETE);
  cr_assert_eq(walk("\xdb\x10\x00\x00\x00" "abc", 8, &used), RT_MP_INCOMPLETE);
  cr_assert_eq(walk("\xc6\x00\x01\x00\x00" "x", 6, &used), RT_MP_INCOMPLETE);
  cr_assert_eq(walk("\xc9\x00\x00\x10\x00\x05" "xy", 8, &used), RT_MP_INCOMPLETE);
  /* nested: an array of 3 whose last element declares more than remains */
  cr_assert_eq(walk("\x93\x01\x02\xdc\x00\x09\x01", 7, &used), RT_MP_INCOMPLETE);
  /* an array declaring 3 elements with 2 bytes left */
  cr_assert_eq(walk("\x93\x01\x02", 3, &used), RT_MP_INCOMPLETE);
  /* the never-used byte */
  cr_assert_eq(walk("\x92\xc1\x01", 3, &used), RT_MP_INVALID);
}

Test(msgpack_bound, measures_every_type_as_msgpack_c_does) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 3);
  msgpack_pack_str(&pk, 5);
  msgpack_pack_str_body(&pk, "ranks", 5);
  msgpack_pack_array(&pk, 20);
  for (int i = 0; i < 20; i++) {
    switch (i % 10) {
    case 0: msgpack_pack_uint64(&pk, UINT64_MAX - (uint64_t)i); break;
    case 1: msgpack_pack_int64(&pk, INT64_MIN + i); break;
    case 2: msgpack_pack_double(&pk, 0.5 * i); break;
    case 3: msgpack_pack_float(&pk, 1.5f); break;
    case 4: msgpack_pack_nil(&pk); break;
    case 5: msgpack_pack_true(&pk); break;
    case 6: msgpack_pack_bin(&pk, 300); msgpack_pack_bin_body(&pk, (char[300]){0}, 300); break;
    case 7: msgpack_pack_ext(&pk, 16, 7); msgpack_pack_ext_body(&pk, (char[16]){0}, 16); break;
    case 8: msgpack_pack_ext(&pk, 3, 1); msgpack_pack_ext_body(&pk, "abc", 3); break;
    case 9: msgpack_pack_int8(&pk, -100); break;
    }
  }
  msgpack_pack_str(&pk, 4);
  msgpack_pack_str_body(&pk, "long", 4);
  char big[70000];
  memset(big, 'x', sizeof big);
  msgpack_pack_str(&pk, sizeof big);
  msgpack_pack_str_body(&pk, big, sizeof big);
  msgpack_pack_uint8(&pk, 7);
  msgpack_pack_map(&pk, 0);
  size_t used = 0;
  cr_assert_eq(rt_mp_bounded((const unsigned char *)sb.data, sb.size, &used), RT_MP_OK);
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  cr_assert_eq(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
  cr_assert_eq(used, off, "walker %zu, msgpack-c %zu", used, off);
  /* one byte short: incomplete */
  cr_assert_eq(rt_mp_bounded((const unsigned char *)sb.data, sb.size - 1, &used), RT_MP_INCOMPLETE);
  /* every cut short is incomplete, never ok */
  for (size_t cut = 0; cut < sb.size; cut += 97)
    cr_assert_eq(rt_mp_bounded((const unsigned char *)sb.data, cut, &used), RT_MP_INCOMPLETE, "cut %zu", cut);
  msgpack_unpacked_destroy(&u);
  msgpack_sbuffer_destroy(&sb);
}
