#!/usr/bin/env bash
# library_only.sh — the public API of libragtide, checked on a build
# configured with -DRAGTIDE_LIBRARY_ONLY=ON in a temp dir (libragtide,
# ragtide-serve-example, ragtide-bench-table: a few files):
#   - the configure looks for msgpack-c, zstd and xxhash only (no MPI, curl,
#     OpenMP, jansson, inih), and builds nothing else;
#   - libragtide.so needs msgpack-c, zstd, xxhash and libc only; soname .so.MAJOR;
#   - `nm -D --defined-only` = exactly the functions <ragtide/table.h> declares
#     with RAGTIDE_API (here and in the full build at RAGTIDE_BUILD);
#   - the builder API is fenced: declared only with RAGTIDE_STATIC_LINKING_ONLY;
#   - version macros = ragtide_version_*() = the CMake project version;
#   - serve-example answers a lookup on a table bench-table made.
set -euo pipefail
SRC=${RAGTIDE_SRC:?set RAGTIDE_SRC to the source tree}
T=$(mktemp -d /tmp/rt_libonly.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
H="$SRC/include/ragtide/table.h"

cmake -S "$SRC" -B "$T/b" -DRAGTIDE_LIBRARY_ONLY=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$T/configure.log" 2>&1 ||
  { cat "$T/configure.log"; fail "configure with RAGTIDE_LIBRARY_ONLY=ON"; }
if grep -E '^(MPI_C_[A-Z_]*|OpenMP_C_[A-Z_]*|CURL_[A-Z_]*|JANSSON_[A-Z_]*|INIH_[A-Z_]*|MHD_[A-Z_]*):' \
  "$T/b/CMakeCache.txt"; then fail "a library-only configure looked for MPI, OpenMP, curl, jansson, inih or microhttpd"; fi
cmake --build "$T/b" -j2 >"$T/build.log" 2>&1 || { cat "$T/build.log"; fail "library-only build"; }
for f in libragtide.so libragtide.a ragtide-serve-example ragtide-bench-table; do
  [ -e "$T/b/$f" ] || fail "library-only build lacks $f"
done
for f in ragtide ragtide-llm-sim ragtide-gen-logs; do
  [ ! -e "$T/b/$f" ] || fail "library-only build built $f"
done
echo "ok: -DRAGTIDE_LIBRARY_ONLY=ON configures with msgpack-c, zstd, xxhash and builds only the library and its programs"

SO=$(readlink -f "$T/b/libragtide.so")
bad=$(ldd "$SO" | awk '{print $1}' | xargs -n1 basename | grep -vE '^(linux-vdso|ld-linux[^/]*|libc|libmsgpackc?|libzstd|libxxhash)\.so' || true)
[ -z "$bad" ] || { ldd "$SO"; fail "libragtide.so needs more than msgpack-c, zstd, xxhash and libc: $bad"; }
ldd "$T/b/ragtide-serve-example" | grep -Eq 'libmpi|libcurl|libgomp' && fail "serve-example links MPI, curl or OpenMP"
major=$(sed -n 's/^#define RAGTIDE_VERSION_MAJOR \([0-9]*\)$/\1/p' "$H")
readelf -d "$SO" | grep -q "SONAME.*\[libragtide\.so\.$major\]" || { readelf -d "$SO" | grep SONAME; fail "soname is not libragtide.so.$major"; }
echo "ok: libragtide.so needs msgpack-c, zstd, xxhash and libc only; soname libragtide.so.$major"

# exports: exactly the declared API
tr '\n' ' ' <"$H" | grep -oE 'RAGTIDE_API [^;(]*\bragtide_[a-z0-9_]+\(' | grep -oE 'ragtide_[a-z0-9_]+\($' |
  tr -d '(' | sort -u >"$T/declared"
[ "$(wc -l <"$T/declared")" -ge 20 ] || { cat "$T/declared"; fail "too few RAGTIDE_API declarations found"; }
nm -D --defined-only "$SO" | awk '$2 ~ /^[TDBRVWi]$/ {print $3}' | sort -u >"$T/exported"
diff -u "$T/declared" "$T/exported" || fail "libragtide.so exports other symbols than <ragtide/table.h> declares"
if [ -n "${RAGTIDE_BUILD:-}" ] && [ -e "$RAGTIDE_BUILD/libragtide.so" ]; then
  nm -D --defined-only "$(readlink -f "$RAGTIDE_BUILD/libragtide.so")" | awk '$2 ~ /^[TDBRVWi]$/ {print $3}' |
    sort -u | diff -u "$T/declared" - || fail "the full build's libragtide.so exports other symbols"
fi
echo "ok: nm -D: libragtide.so exports exactly the $(wc -l <"$T/declared") functions the header declares"

# the builder is fenced off; the version is one
cat >"$T/builder.c" <<'C'
#include <ragtide/table.h>
int main(void) { uint32_t id = 1; return ragtide_builder_new(&id, 1, 1) == 0; }
C
if cc -std=c11 -fsyntax-only -Werror=implicit-function-declaration -I"$SRC/include" "$T/builder.c" 2>/dev/null; then
  fail "the builder API is declared without RAGTIDE_STATIC_LINKING_ONLY"
fi
cc -std=c11 -fsyntax-only -Werror -DRAGTIDE_STATIC_LINKING_ONLY -I"$SRC/include" "$T/builder.c" ||
  fail "the builder API is not declared with RAGTIDE_STATIC_LINKING_ONLY"
{ echo '#include <ragtide/table.h>'; echo '#define RAGTIDE_STATIC_LINKING_ONLY'; cat "$T/builder.c"; } >"$T/again.c"
cc -std=c11 -fsyntax-only -Werror -I"$SRC/include" "$T/again.c" ||
  fail "including the header again after defining RAGTIDE_STATIC_LINKING_ONLY does not declare the builder"
cat >"$T/version.c" <<'C'
#include <ragtide/table.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  if (ragtide_version_number() != RAGTIDE_VERSION_NUMBER) return 1;
  if (strcmp(ragtide_version_string(), RAGTIDE_VERSION_STRING) != 0) return 1;
  printf("%s %u\n", ragtide_version_string(), ragtide_version_number());
  return 0;
}
C
cc -std=c11 -Wall -Werror -pedantic -I"$SRC/include" "$T/version.c" -L"$T/b" -lragtide -o "$T/version"
got=$(LD_LIBRARY_PATH="$T/b" "$T/version") || fail "ragtide_version_*() disagree with the macros"
want=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$T/b/CMakeCache.txt")
num=$(awk -F. '{print $1 * 10000 + $2 * 100 + $3}' <<<"$want")
[ "$got" = "$want $num" ] || fail "version: library says '$got', the build '$want $num'"
echo "ok: the builder API needs RAGTIDE_STATIC_LINKING_ONLY; version $got (macros, functions and CMake agree)"

"$T/b/ragtide-bench-table" make "$T/t.table" --clusters 12 --id-base 5 --id-step 11 --prov rag --seed 3 >/dev/null
out=$("$T/b/ragtide-serve-example" "$T/t.table" 16 27)
grep -Eq '^16 27 -> [0-9]+ \(rag\)$' <<<"$out" || fail "serve-example: '$out'"
if [ -n "${RAGTIDE_BUILD:-}" ] && [ -x "$RAGTIDE_BUILD/ragtide" ]; then
  want=$("$RAGTIDE_BUILD/ragtide" lookup --json "$T/t.table" 16 27 | python3 -c 'import json,sys; print(json.load(sys.stdin)["next"])')
  [ "$out" = "16 27 -> $want (rag)" ] || fail "serve-example says '$out', ragtide lookup says $want"
fi
echo "ok: the library-only serve-example answers ($out)"
