#!/usr/bin/env bash
# table.sh — benchmark the transition-table format (not a test).
# Builds a table for 1,000 clusters with every pair predicted (1M pairs, random next per pair,
# seeded) and prints bytes/pair, open time (median of 5) and lookups/s from 1 and 2 threads
# (median of 5 runs). Targets: <= 2 bytes/pair, open < 50 ms, >= 50M lookups/s/thread.
#
#   tools/bench/table.sh [BUILD_DIR] [extra ragtide-bench-table options, e.g. --clusters 2000]
# BUILD_DIR defaults to $RAGTIDE_BUILD or ./build. Builds the bench target if needed.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:-${RAGTIDE_BUILD:-$SRC/build}}
shift || true
if [ ! -f "$B/CMakeCache.txt" ]; then
  cmake -S "$SRC" -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$B" -j2 --target ragtide-bench-table >/dev/null 2>&1 || { echo "table.sh: cannot build ragtide-bench-table in $B" >&2; exit 1; }
echo "# $(date -u +%FT%TZ) $(uname -m), $(nproc) cores; build type $(grep -m1 CMAKE_BUILD_TYPE: "$B/CMakeCache.txt" | cut -d= -f2)"
exec "$B/ragtide-bench-table" bench --clusters 1000 --seed 42 --threads 2 --dir "${TMPDIR:-/tmp}" "$@"
