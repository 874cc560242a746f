#!/usr/bin/env bash
# batch.sh — the same refresh synchronously and through both Batch APIs against ragtide-llm-sim
# (not a test; issue 14): wall time of each, the tables compared byte for byte, and the batch
# summary of the openai-batch run.
#
#   tools/bench/batch.sh [BUILD_DIR]      (default: $RAGTIDE_BUILD or ./build)
#
# Data: ragtide-gen-logs --clusters 120 --users 3000 --days 6 (BENCH_CLUSTERS, BENCH_USERS);
# 2 ranks; sim --latency-ms 50 for the synchronous answers (llm.concurrency 64) and
# --batch-delay-ms BENCH_BATCH_DELAY_MS (default 5000) from a batch's creation to its end;
# llm.batch_poll_s 1 doubling to 10. A real provider's turnaround is minutes to hours: the batch
# wall times here are the sim's delay plus ragtide's own overhead (framing, upload, polling,
# download, parsing), which is what this measures.
set -euo pipefail

SRC="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="$(cd "${1:-${RAGTIDE_BUILD:-$SRC/build}}" && pwd)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_pml=ob1
T=$(mktemp -d /tmp/ragtide-bench-batch.XXXXXX)
SIM_PID=
trap '[ -n "$SIM_PID" ] && kill $SIM_PID 2>/dev/null; rm -rf "$T"' EXIT
"$BUILD/ragtide-gen-logs" --clusters "${BENCH_CLUSTERS:-120}" --users "${BENCH_USERS:-3000}" --days 6 --seed 5 \
  --start 2026-01-01 --out "$T/data" >/dev/null 2>&1
"$BUILD/ragtide-llm-sim" --catalog "$T/data/catalog.tsv" --port 0 --port-file "$T/port" --latency-ms 50 \
  --batch-delay-ms "${BENCH_BATCH_DELAY_MS:-5000}" >"$T/sim.log" 2>&1 &
SIM_PID=$!
for _ in $(seq 200); do [ -s "$T/port" ] && break; sleep 0.05; done
URL="http://127.0.0.1:$(cat "$T/port")"
cat >"$T/job.ini" <<INI
[input]
catalog = $T/data/catalog.tsv
logs = $T/data/logs/*/*.msgpack.zst
window_start = 2026-01-02
window_end = 2026-01-06
[prompt]
template = $SRC/jobs/prompts/rag.tmpl
[llm]
base_url = $URL
concurrency = 64
batch_poll_s = 1
batch_poll_max_s = 10
price_in_per_mtok = 0.15
price_out_per_mtok = 0.60
[output]
created_at = 2026-01-06
progress_s = 0
INI
run() { # run NAME API
  local t0 t1
  t0=$(date +%s.%N)
  mpirun --oversubscribe -n 2 "$BUILD/ragtide" refresh --config "$T/job.ini" --set output.table="$T/$1.rtt" \
    --set llm.api="$2" 2>"$T/$1.log" || { cat "$T/$1.log"; exit 1; }
  t1=$(date +%s.%N)
  python3 - "$T/$1.rtt.summary.json" "$1" "$t0" "$t1" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); i = s["stages"]["infer"]; c = s.get("cost") or {}
print(f"{sys.argv[2]:14s} wall {float(sys.argv[4]) - float(sys.argv[3]):6.2f} s  infer stage {i['seconds']:6.2f} s  pairs {i['calls']}"
      f"  requests {i['requests']}  batches {i.get('batches', 0)}  cost ${c.get('usd', 0):.4f}")
PY
}
run sync-openai openai
run openai-batch openai-batch
run sync-gemini gemini
run gemini-batch gemini-batch
cmp "$T/sync-openai.rtt" "$T/openai-batch.rtt" && echo "openai-batch table == openai table (cmp)"
cmp "$T/sync-gemini.rtt" "$T/gemini-batch.rtt" && echo "gemini-batch table == gemini table (cmp)"
python3 -c "
import json; s = json.load(open('$T/openai-batch.rtt.summary.json'))
b = s['endpoint']['batches']; b['list'] = b['list'][:2]
print(json.dumps({'status': s['status'], 'endpoint.batches': b, 'cost': s['cost']}, indent=1))"
