#!/usr/bin/env bash
# A corrupt length in a msgpack shard is bad input (exit 3, naming the file
# and byte), never an out-of-memory (exit 8): declared lengths are checked
# against the bytes at hand before msgpack-c allocates for them
# (src/table/msgpack_bound.h). Also a table whose header declares a huge
# array is "invalid" (exit 7), not out of memory.
source "$RAGTIDE_SRC/tests/lib/common.sh"
command -v zstd >/dev/null || fail "zstd (the CLI) is needed: tools/setup-deps.sh installs it"

make_data 20 200 4 3
write_config 2026-01-02 2026-01-04
first=$(ls "$T"/data/logs/*/*.msgpack.zst | head -1)
zstd -q -d -c "$first" >"$T/full.bin"   # (not piped into head: zstd's SIGPIPE would fail the script)
head -c 200 "$T/full.bin" >"$T/good.bin"
# 200 bytes of good records (the last one cut short is fine: it ends where
# the corrupt bytes start), then an array32 declaring 2^32-1 elements and
# garbage: 374 bytes in all, like the shard the issue was found with.
{ cat "$T/good.bin"; printf '\xdd\xff\xff\xff\xff'; head -c 169 /dev/zero | tr '\0' '\001'; } >"$T/bad.bin"
[ "$(wc -c <"$T/bad.bin")" -eq 374 ] || fail "fixture is not 374 bytes"
for f in "$T"/data/logs/*/*.msgpack.zst; do rm "$f"; done
mkdir -p "$T/data/logs/2026-01-02"
zstd -q -c "$T/bad.bin" >"$T/data/logs/2026-01-02/corrupt.msgpack.zst"
expect_exit 3 mpirun_q -n 1 "$RT" aggregate --config "$T/job.ini" --out "$T/out/c.rtc"
expect_err "corrupt.msgpack.zst: byte"
grep -q "out of memory" "$T/err" && fail "a corrupt length was reported as out of memory"
pass "corrupt msgpack length in a shard: exit 3, file and byte named"

# The same in plain msgpack (no zstd).
rm "$T/data/logs/2026-01-02/corrupt.msgpack.zst"
sed -i 's|\*\.msgpack\.zst|*.msgpack*|' "$T/job.ini"
cp "$T/bad.bin" "$T/data/logs/2026-01-02/corrupt.msgpack"
expect_exit 3 mpirun_q -n 1 "$RT" aggregate --config "$T/job.ini" --out "$T/out/c.rtc"
expect_err "corrupt.msgpack: byte"
pass "corrupt msgpack length in a plain shard: exit 3"
