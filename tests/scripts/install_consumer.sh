#!/usr/bin/env bash
# install_consumer.sh — install libragtide into a temp prefix, then build two
# tiny consumers against the installed copy only: one with pkg-config, one
# with find_package(ragtide); run both on a table and check the answer
# against `ragtide lookup`. Env: RAGTIDE_BUILD (configured + built tree).
set -euo pipefail
B=${RAGTIDE_BUILD:?set RAGTIDE_BUILD to the build directory}
T=$(mktemp -d /tmp/rt_install.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$B" --prefix "$T/prefix" --component libragtide >/dev/null
P="$T/prefix"
LIB=$(dirname "$(find "$P" -name 'libragtide.so' | head -1)")
[ -n "$LIB" ] || fail "libragtide.so not installed"
[ -f "$P/include/ragtide/table.h" ] || fail "header not installed"
[ -f "$LIB/libragtide.a" ] || fail "static library not installed"
[ -f "$LIB/pkgconfig/ragtide.pc" ] || fail "ragtide.pc not installed"
[ -f "$LIB/cmake/ragtide/ragtideConfig.cmake" ] || fail "CMake package config not installed"
if ldd "$LIB/libragtide.so" | grep -Eq 'libmpi|libcurl'; then fail "libragtide links MPI or curl"; fi

cat >"$T/consumer.c" <<'C'
#include <ragtide/table.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  if (argc != 4) return 2;
  ragtide_table *t;
  char err[512];
  int rc = ragtide_table_open(argv[1], &t, err, sizeof err);
  if (rc) { fprintf(stderr, "%s (%s)\n", err, ragtide_status_name(rc)); return 1; }
  uint32_t next = 0;
  ragtide_provenance prov;
  rc = ragtide_table_lookup(t, (uint32_t)atoi(argv[2]), (uint32_t)atoi(argv[3]), &next, &prov);
  if (rc) { fprintf(stderr, "%s\n", ragtide_strerror(rc)); return 1; }
  printf("%u %d\n", next, (int)prov);
  ragtide_table_close(t);
  return 0;
}
C
# 1. pkg-config, shared library
PKG_CONFIG_PATH="$LIB/pkgconfig" pkg-config --exists ragtide || fail "pkg-config cannot find ragtide"
# shellcheck disable=SC2046
cc -o "$T/consumer" "$T/consumer.c" $(PKG_CONFIG_PATH="$LIB/pkgconfig" pkg-config --cflags --libs ragtide)
"$B/ragtide-bench-table" make "$T/t.table" --clusters 12 --id-base 5 --id-step 11 --prov rag --seed 3
want=$("$B/ragtide" lookup --json "$T/t.table" 16 27 | python3 -c 'import json,sys; print(json.load(sys.stdin)["next"])')
got=$(LD_LIBRARY_PATH="$LIB" "$T/consumer" "$T/t.table" 16 27)
[ "$got" = "$want 2" ] || fail "pkg-config consumer says '$got', ragtide lookup says '$want 2'"

# 2. find_package(ragtide) -> ragtide::ragtide, and the static archive
mkdir -p "$T/cm"
cp "$T/consumer.c" "$T/cm/"
cat >"$T/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.25)
project(consumer C)
find_package(ragtide 0.1 REQUIRED)
add_executable(consumer consumer.c)
target_link_libraries(consumer PRIVATE ragtide::ragtide)
add_executable(consumer_static consumer.c)
target_link_libraries(consumer_static PRIVATE ragtide::ragtide_static)
CM
cmake -S "$T/cm" -B "$T/cm/build" -DCMAKE_PREFIX_PATH="$P" >/dev/null
cmake --build "$T/cm/build" >/dev/null
got=$("$T/cm/build/consumer" "$T/t.table" 16 27)
[ "$got" = "$want 2" ] || fail "find_package consumer says '$got', want '$want 2'"
got=$("$T/cm/build/consumer_static" "$T/t.table" 16 27)
[ "$got" = "$want 2" ] || fail "static consumer says '$got', want '$want 2'"
if ldd "$T/cm/build/consumer_static" | grep -q libragtide; then fail "static consumer loads libragtide.so"; fi
echo "install_consumer: pkg-config, find_package and static consumers agree with ragtide lookup ($want)"

# 3. The whole install: the tools, the templates and the job scripts; a
#    refresh with the installed binary, from an unrelated directory, with the
#    default template (found beside the binary), against the installed
#    simulator. No LD_LIBRARY_PATH: the rpath finds libragtide.
cmake --install "$B" --prefix "$T/full" >/dev/null
F="$T/full"
for f in bin/ragtide bin/ragtide-llm-sim bin/ragtide-gen-logs share/ragtide/prompts/rag.tmpl \
  share/ragtide/prompts/base.tmpl share/ragtide/jobs/refresh.sbatch share/ragtide/jobs/ragtide-job.sh; do
  [ -e "$F/$f" ] || fail "cmake --install lacks $f"
done
[ -x "$F/share/ragtide/jobs/refresh.sbatch" ] || fail "refresh.sbatch is not executable"
if env -u LD_LIBRARY_PATH ldd "$F/bin/ragtide" | grep -q "not found"; then
  ldd "$F/bin/ragtide"; fail "the installed ragtide misses a library"
fi
mkdir -p "$T/elsewhere" && cd "$T/elsewhere"
"$F/bin/ragtide-gen-logs" --clusters 12 --users 100 --days 3 --seed 2 --start 2026-01-01 --out data >/dev/null 2>&1
"$F/bin/ragtide-llm-sim" --catalog data/catalog.tsv --port 0 --port-file sim.port >sim.log 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null; wait $sim 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 100); do [ -s sim.port ] && break; sleep 0.05; done
cat >job.ini <<INI
[input]
catalog = data/catalog.tsv
logs = data/logs/*/*.msgpack.zst
window_start = 2026-01-01
window_end = 2026-01-04
[llm]
base_url = http://127.0.0.1:$(cat sim.port)
[output]
table = out/t.rtt
INI
env -u LD_LIBRARY_PATH OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
  mpirun --oversubscribe -n 1 "$F/bin/ragtide" refresh --config job.ini 2>refresh.log ||
  { cat refresh.log; fail "installed refresh from an unrelated directory failed"; }
grep -q "\"template\": \"$F/bin/../share/ragtide/prompts/rag.tmpl\"" out/t.rtt.summary.json ||
  { grep template out/t.rtt.summary.json; fail "the default template was not the installed one"; }
"$F/bin/ragtide" validate out/t.rtt >/dev/null || fail "installed refresh: table invalid"
echo "install_consumer: the installed ragtide ran a refresh from $T/elsewhere with its shipped template"
