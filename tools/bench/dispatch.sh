#!/usr/bin/env bash
# dispatch.sh — benchmark of the LLM client's dispatch loop against ragtide-llm-sim (not a test).
#
#   tools/bench/dispatch.sh [BUILD_DIR]      (default: $RAGTIDE_BUILD or ./build)
#
# 1. Throughput: sim with --latency-ms 50; llm.concurrency = 64, 512, 2048 -> achieved requests/s
#    vs the ideal (in-flight / 0.05 s) and the client's CPU per request (getrusage of the client
#    process / requests sent). Median of 3 runs each.
#    With wrk installed, the same sim driven by wrk (-t1 -cK, 5 s) shows what the sim and this
#    machine give a near-free client: the ceiling of the ratio.
# 2. Endpoint rate limit: sim with --rps R (default 2000), llm.rpm far above it -> achieved rate
#    / R, the share of 429s after the first second, the rate cuts and the client's final adaptive
#    rate (AIMD). Median of 3 runs.
# Knobs (env): BENCH_INFLIGHT="64 512 2048", BENCH_ROUNDS=20 (calls = in-flight x rounds),
#   BENCH_RPS="2000" (a list runs each), BENCH_RPS_SECONDS=5, BENCH_RPS_CONCURRENCY=256, BENCH_RUNS=3,
#   BENCH_WRK=1 (0: skip the wrk ceiling).
# The client and the sim share this machine's cores: the figures include that contention.
set -euo pipefail

SRC="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="$(cd "${1:-${RAGTIDE_BUILD:-$SRC/build}}" && pwd)"
SIM="$BUILD/ragtide-llm-sim"
INFLIGHT="${BENCH_INFLIGHT:-64 512 2048}"
ROUNDS="${BENCH_ROUNDS:-20}"
RPS="${BENCH_RPS:-2000}"
RPS_SECONDS="${BENCH_RPS_SECONDS:-5}"
RPS_CONC="${BENCH_RPS_CONCURRENCY:-256}"
RUNS="${BENCH_RUNS:-3}"
WRK="${BENCH_WRK:-1}"
command -v wrk >/dev/null || WRK=0

for f in "$SIM" "$BUILD/libragtide_llm.a" "$BUILD/libragtide_base.a" "$BUILD/libragtide.a"; do
  [[ -e "$f" ]] || { echo "dispatch.sh: $f missing: cmake --build $BUILD first" >&2; exit 2; }
done

WORK="$(mktemp -d /tmp/rt_dispatch_XXXXXX)"
SIM_PID=""
cleanup() {
  if [[ -n "$SIM_PID" ]]; then kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# The driver is compiled here, against the build's static libraries (it is not a CMake target).
DRIVE="$WORK/llm_drive"
mpicc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -I"$SRC/src" -I"$SRC/include" "$SRC/tools/bench/llm_drive.c" \
  "$BUILD/libragtide_llm.a" "$BUILD/libragtide_base.a" "$BUILD/libragtide.a" \
  $(pkg-config --libs libcurl jansson inih libxxhash libzstd msgpack) -lm -o "$DRIVE"

CAT="$WORK/catalog.tsv"
python3 - "$CAT" <<'EOF'
import sys
words = ["jazz","hiking","cooking","chess","surfing","poetry","anime","baking","cycling","opera"]
with open(sys.argv[1], "w") as f:
    for i in range(100):
        f.write(f"{1000+i}\t{words[i%10]}, {words[(i//10)%10]} lovers, group {i}\n")
EOF

start_sim() {
  rm -f "$WORK/port"
  "$SIM" --catalog "$CAT" --port 0 --port-file "$WORK/port" --seed 1 "$@" >/dev/null 2>"$WORK/sim.err" &
  SIM_PID=$!
  for _ in $(seq 1 100); do [[ -s "$WORK/port" ]] && break; sleep 0.05; done
  [[ -s "$WORK/port" ]] || { cat "$WORK/sim.err" >&2; echo "dispatch.sh: the sim did not start" >&2; exit 1; }
  PORT=$(cat "$WORK/port")
}
stop_sim() { kill "$SIM_PID"; wait "$SIM_PID" 2>/dev/null || true; SIM_PID=""; }

echo "# dispatch benchmark: $(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ), build $BUILD"
echo "## 1. throughput against --latency-ms 50 (median of $RUNS runs)"
printf "%-9s %-8s %-12s %-12s %-9s %-12s\n" inflight calls ideal_rps achieved ratio cpu_us/req
start_sim --latency-ms 50
for k in $INFLIGHT; do
  n=$((k * ROUNDS))
  : >"$WORK/runs.jsonl"
  for _ in $(seq 1 "$RUNS"); do
    "$DRIVE" --catalog "$CAT" --n "$n" --set "llm.base_url=http://127.0.0.1:$PORT" \
      --set "llm.concurrency=$k" --set llm.max_failed_fraction=1 >>"$WORK/runs.jsonl"
  done
  python3 - "$WORK/runs.jsonl" "$k" "$n" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
k, n = int(sys.argv[2]), int(sys.argv[3])
ideal = k / 0.05
ach = statistics.median(r["requests_per_s"] for r in runs)
cpu = statistics.median(r["cpu_us_per_request"] for r in runs)
bad = sum(r["failed"] for r in runs)
print(f"{k:<9} {n:<8} {ideal:<12.0f} {ach:<12.0f} {ach/ideal:<9.2f} {cpu:<12.1f}" + (f" ({bad} failed)" if bad else ""))
EOF
done
stop_sim
if [[ "$WRK" == 1 && -n "$INFLIGHT" ]]; then
  echo "## 1b. ceiling: the same sim driven by wrk -t1 (5 s), not by the client"
  printf "%-9s %-12s %-12s %-9s\n" conns ideal_rps wrk_rps ratio
  for k in $INFLIGHT; do
    start_sim --latency-ms 50
    rps=$(wrk -t1 -c"$k" -d5s --timeout 10s -s "$SRC/tools/llm-sim/bench-chat.lua" \
      "http://127.0.0.1:$PORT/v1/chat/completions" | awk '/Requests\/sec/ {print $2}')
    stop_sim
    python3 -c "k=$k; r=float('${rps:-0}'); print(f'{k:<9} {k/0.05:<12.0f} {r:<12.0f} {r/(k/0.05):<9.2f}')"
  done
fi

for R in $RPS; do
echo "## 2. endpoint limit --rps $R, llm.rpm = 100 x that, llm.concurrency = $RPS_CONC (median of $RUNS runs)"
printf "%-8s %-10s %-12s %-16s %-10s %-14s %-12s %-6s %-10s\n" calls achieved achieved/R after_1s/R 429s 429_after_1s \
  throttled_ms cuts final_rate
n=$((R * RPS_SECONDS))
: >"$WORK/rps.jsonl"
for _ in $(seq 1 "$RUNS"); do
  start_sim --rps "$R"
  "$DRIVE" --catalog "$CAT" --n "$n" --set "llm.base_url=http://127.0.0.1:$PORT" --set "llm.concurrency=$RPS_CONC" \
    --set "llm.rpm=$((R * 6000))" --set llm.max_attempts=50 --set llm.max_failed_fraction=1 \
    >"$WORK/one.json" &
  DPID=$!
  sleep 1
  curl -s "http://127.0.0.1:$PORT/stats" >"$WORK/s1.json"
  wait "$DPID"
  curl -s "http://127.0.0.1:$PORT/stats" >"$WORK/s2.json"
  stop_sim
  python3 - "$WORK/one.json" "$WORK/s1.json" "$WORK/s2.json" >>"$WORK/rps.jsonl" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); s1 = json.load(open(sys.argv[2])); s2 = json.load(open(sys.argv[3]))
dr = s2["requests"] - s1["requests"]
d["after1_429_share"] = (s2["http_429"] - s1["http_429"]) / dr if dr else 0.0
d["sim_answered"] = s2["answered"]
# Steady state: what was answered after the first second (the sim's initial burst of R tokens excluded).
d["after1_rate"] = (s2["answered"] - s1["answered"]) / (d["wall_s"] - 1.0) if d["wall_s"] > 1.0 else 0.0
print(json.dumps(d))
EOF
done
python3 - "$WORK/rps.jsonl" "$R" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
R = float(sys.argv[2])
ach = statistics.median(r["ok"] / r["wall_s"] for r in runs)
a1 = statistics.median(r["after1_rate"] for r in runs)
share = statistics.median(r["after1_429_share"] for r in runs)
n429 = statistics.median(r["http_429"] for r in runs)
thr = statistics.median(r["throttled_ms"] for r in runs)
cuts = statistics.median(r.get("rate_cuts", 0) for r in runs)
rate = statistics.median(r.get("rate_limit", 0) for r in runs)
print(f"{runs[0]['calls']:<8} {ach:<10.0f} {ach/R:<12.2f} {a1/R:<16.2f} {n429:<10.0f} {share:<14.3f} {thr:<12.0f} "
      f"{cuts:<6.0f} {rate:<10.0f}")
EOF
done
