# Shared by tests/scripts/*.sh: paths, temp dir, sim start/stop, checks.
# Each script: source "$RAGTIDE_SRC/tests/lib/common.sh"; every failed check
# prints what was expected and exits 1.
set -euo pipefail
: "${RAGTIDE_SRC:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${RAGTIDE_BUILD:=$RAGTIDE_SRC/build}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
RT="$RAGTIDE_BUILD/ragtide"
GEN="$RAGTIDE_BUILD/ragtide-gen-logs"
SIM="$RAGTIDE_BUILD/ragtide-llm-sim"
ORACLE="$RAGTIDE_SRC/tests/oracle/aggregate_oracle.py"
T=$(mktemp -d /tmp/ragtide-test.XXXXXX)
SIM_PIDS=()
cleanup() {
  for p in "${SIM_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  [ -n "${RAGTIDE_KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }
mpirun_q() { mpirun --oversubscribe "$@"; }

# start_sim NAME CATALOG [flags...]: starts ragtide-llm-sim, sets SIM_URL.
start_sim() {
  local name=$1 catalog=$2; shift 2
  "$SIM" --catalog "$catalog" --port 0 --port-file "$T/$name.port" "$@" >"$T/$name.log" 2>&1 &
  SIM_PIDS+=($!)
  for _ in $(seq 200); do [ -s "$T/$name.port" ] && break; sleep 0.05; done
  [ -s "$T/$name.port" ] || { cat "$T/$name.log"; fail "sim $name did not start"; }
  SIM_URL="http://127.0.0.1:$(cat "$T/$name.port")"
}

# expect_exit CODE CMD...: runs CMD, checks its exit status, keeps stderr in $T/err.
expect_exit() {
  local want=$1; shift
  set +e
  "$@" >"$T/stdout" 2>"$T/err"
  local got=$?
  set -e
  [ "$got" -eq "$want" ] || { cat "$T/err"; fail "expected exit $want, got $got: $*"; }
}
expect_err() { grep -qF -- "$1" "$T/err" || { cat "$T/err"; fail "stderr lacks: $1"; }; }

# A small data set: catalog + daily shards (msgpack.zst) in $T/data.
make_data() {
  "$GEN" --clusters "${1:-30}" --users "${2:-400}" --days "${3:-6}" --seed "${4:-11}" --start 2026-01-01 \
    --out "$T/data" >/dev/null
}

# A config for the data in $T/data: write_config [WINDOW_START WINDOW_END]
# (default 2026-01-02 .. 2026-01-06; created_at = WINDOW_END).
write_config() {
  local ws=${1:-2026-01-02} we=${2:-2026-01-06}
  cat >"$T/job.ini" <<INI
[input]
catalog = $T/data/catalog.tsv
logs = $T/data/logs/*/*.msgpack.zst
window_start = $ws
window_end = $we
[prompt]
template = $RAGTIDE_SRC/jobs/prompts/rag.tmpl
[llm]
base_url = ${SIM_URL:-http://127.0.0.1:9}
concurrency = 16
timeout_ms = 5000
[output]
table = $T/out/table.rtt
created_at = $we
INI
  mkdir -p "$T/out"
}

# last_summary TABLE: the summary of the last run on TABLE. A run that
# published writes TABLE.summary.json (beside the table it describes); one
# that published nothing writes TABLE.run/RUN_ID.summary.json. The newest.
last_summary() {
  ls -t "$1.summary.json" "$1.run"/*.summary.json 2>/dev/null | head -1
}
