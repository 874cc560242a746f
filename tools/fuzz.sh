#!/usr/bin/env bash
# Run a libFuzzer target of tests/fuzz/ (or all of them, one after another).
#   tools/fuzz.sh TARGET SECONDS [libFuzzer flags...]
#   tools/fuzz.sh all SECONDS            every target, SECONDS each
#   tools/fuzz.sh list                   the target names
# TARGET: table catalog events config counts answers openai gemini (the
# fuzz_ prefix may be given). Builds what is missing or stale: the clang
# fuzz build in $RAGTIDE_FUZZ_BUILD (default build-fuzz/, -DRAGTIDE_FUZZ=ON,
# ASan + UBSan + libFuzzer) and, for the seed corpora, the normal build in
# $RAGTIDE_BUILD (default build/). Seeds: tools/fuzz-seeds.sh into
# build-fuzz/seeds/ (made once; delete the directory to remake them).
# The corpus grows in build-fuzz/corpus/TARGET/ (kept between runs) unless
# FUZZ_FRESH=1 (a scratch corpus from the seeds only: what tools/test.sh
# does). Crashes, leaks, timeouts and out-of-memory inputs land in
# build-fuzz/artifacts/TARGET/; the exit status is 1 when any target found one.
# Prints per target: executions, exec/s, corpus (inputs, bytes), findings.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
cd "$SRC"
TARGETS=(table catalog events config counts answers openai gemini)
[ "${1:-}" = list ] && { printf '%s\n' "${TARGETS[@]}"; exit 0; }
[ $# -ge 2 ] || { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
what=${1#fuzz_}; secs=$2; shift 2
if [ "$what" = all ]; then sel=("${TARGETS[@]}"); else
  printf '%s\n' "${TARGETS[@]}" | grep -qx -- "$what" || { echo "fuzz.sh: no target '$what' (tools/fuzz.sh list)" >&2; exit 2; }
  sel=("$what")
fi
B=${RAGTIDE_BUILD:-$SRC/build}
FB=${RAGTIDE_FUZZ_BUILD:-$SRC/build-fuzz}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_pml=${OMPI_MCA_pml:-ob1}

if [ ! -x "$FB/fuzz_table" ] || [ ! -f "$FB/CMakeCache.txt" ]; then
  CC=clang cmake -S . -B "$FB" -DRAGTIDE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$FB" -j2 >"$FB/last-build.log" 2>&1 || { tail -40 "$FB/last-build.log"; exit 1; }
if [ ! -d "$FB/seeds/table" ]; then
  if [ ! -x "$B/ragtide" ] || [ ! -x "$B/ragtide-gen-logs" ] || [ ! -x "$B/ragtide-llm-sim" ]; then
    cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$B" -j2 --target ragtide_cli ragtide-gen-logs ragtide-llm-sim >"$FB/last-tools-build.log" 2>&1 ||
      { tail -40 "$FB/last-tools-build.log"; exit 1; }
  fi
  tools/fuzz-seeds.sh "$B" "$FB/seeds.new" >/dev/null 2>"$FB/seeds.log" || { cat "$FB/seeds.log"; exit 1; }
  rm -rf "$FB/seeds" && mv "$FB/seeds.new" "$FB/seeds"
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
printf '%-8s %10s %8s %7s %9s %s\n' target execs exec/s inputs bytes findings
for t in "${sel[@]}"; do
  art="$FB/artifacts/$t"; mkdir -p "$art"
  if [ "${FUZZ_FRESH:-0}" = 1 ]; then corpus=$(mktemp -d /tmp/ragtide-fuzz-corpus.XXXXXX); else
    corpus="$FB/corpus/$t"; mkdir -p "$corpus"; fi
  dict=(); [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  before=$(ls "$art" | wc -l)
  log="$FB/fuzz-$t.log"
  set +e
  "$FB/fuzz_$t" "$corpus" "$FB/seeds/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -malloc_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$art/" "${dict[@]}" "$@" >"$log" 2>&1
  rc=$?
  set -e
  after=$(ls "$art" | wc -l)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  # the last status line: "#N DONE cov: .. corp: INPUTS/BYTES .."
  corp=$(grep -o 'corp: [0-9]*/[0-9a-zA-Z]*' "$log" | tail -1 | sed 's/corp: //')
  find=$((after - before))
  if [ "$rc" -ne 0 ] || [ "$find" -ne 0 ]; then
    status=1
    [ "$find" -eq 0 ] && find=1
  fi
  printf '%-8s %10s %8s %7s %9s %s\n' "$t" "${execs:-?}" "${rate:-?}" "${corp%%/*}" "${corp##*/}" \
    "$([ "$find" -eq 0 ] && echo 0 || echo "$find: see $log and $art/")"
  [ "$rc" -ne 0 ] && grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | head -5 >&2
  [ "${FUZZ_FRESH:-0}" = 1 ] && rm -rf "$corpus"
done
exit $status
