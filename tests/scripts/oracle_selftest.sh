#!/usr/bin/env bash
# oracle_selftest.sh — the aggregation oracle agrees with its hand-computed example.
set -euo pipefail
SRC=${RAGTIDE_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
out=$(python3 "$SRC/tests/oracle/aggregate_oracle.py" --selftest)
echo "$out"
[[ $out == "selftest ok"* ]]
