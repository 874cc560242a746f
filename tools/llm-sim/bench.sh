#!/usr/bin/env bash
# bench.sh — throughput and concurrency of ragtide-llm-sim with wrk (apt-get install wrk).
# usage: tools/llm-sim/bench.sh BUILD_DIR [SECONDS]
#   1. zero latency, 64 connections: requests/s (the sim must sustain >= 20,000/s)
#   2. --latency-ms 200, 2048 connections: all 2048 in flight at once (max_in_flight)
set -eu
BUILD=${1:?usage: bench.sh BUILD_DIR [SECONDS]}
SECS=${2:-10}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/llm_sim_bench.XXXXXX)
SP=
trap '[ -n "$SP" ] && kill "$SP" 2>/dev/null; rm -rf "$T"' EXIT
printf '10\tjazz, blues\n20\trock, guitar, live\n30\tcooking, baking\n40\tsoccer, highlights\n60\tcats, funny\n' \
  > "$T/catalog.tsv"
run() { # run WRK_ARGS -- SIM_ARGS...
  local wargs=$1
  shift
  "$BUILD/ragtide-llm-sim" --catalog "$T/catalog.tsv" --port-file "$T/port" "$@" >/dev/null 2>"$T/err" &
  SP=$!
  for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
  local url="http://127.0.0.1:$(cat "$T/port")"
  echo "== sim $* ; wrk $wargs -d${SECS}s"
  wrk $wargs -d"${SECS}s" --timeout 10s -s "$HERE/bench-chat.lua" "$url/v1/chat/completions" \
    | grep -E 'Latency|Requests/sec|errors|Non-2xx'
  curl -s "$url/stats" | python3 -c 'import json,sys; s=json.load(sys.stdin); print("   stats: answered", s["answered"], "max_in_flight", s["max_in_flight"])'
  kill "$SP"
  wait "$SP"
  SP=
  rm -f "$T/port"
}
run "-t1 -c64"
run "-t2 -c2048" --latency-ms 200
