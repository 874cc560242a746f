#!/usr/bin/env bash
# Aggregation throughput (stages 1-5: plan, read, shuffle, sequence, count).
#   tools/bench/aggregate.sh [EVENTS (default 20000000)] [BUILD (default build)]
# Generates EVENTS events (1,000 clusters, 500k users, msgpack.zst shards and
# the same events as TSV), then times `ragtide aggregate` on 1 rank (bound to
# one core: 1 thread), 1 rank on every core (--bind-to none: job.threads
# threads) and 2 ranks (median of RUNS=3), and prints events/s per rank, peak RSS per rank, and
# `zstd -d` over the same shards as the decode floor. Then peak RSS under
# memory.per_rank_mb=$CAP (default 128) for EVENTS and EVENTS/4 (it should not grow with N).
# BASE=path/to/other/ragtide also times that binary on the same msgpack.zst
# runs, alternating with this one, and prints the ratio of the medians (the
# way to compare two versions on a noisy machine), e.g. a build of an older
# commit: git worktree add /tmp/old REV && cmake -S /tmp/old -B /tmp/old/b
# && cmake --build /tmp/old/b --target ragtide_cli; BASE=/tmp/old/b/ragtide.
# Not a test: timings on a shared machine are noisy; compare ratios.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-20000000}
B=${2:-build}
RUNS=${RUNS:-3}
D=${BENCH_DIR:-/tmp/ragtide-bench-aggregate}/$N
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# One node: Open MPI's ob1 transport. Its default here (UCX) spends 0.2 s in
# MPI_Init probing network devices, 10% of a 20 M-event run.
export OMPI_MCA_pml=${OMPI_MCA_pml:-ob1}
MPIFLAGS=""
[ -x "$B/ragtide" ] || { cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && cmake --build "$B" -j2 >/dev/null; }

USERS=500000
DAYS=5
EPD=$(( (N + USERS * DAYS - 1) / (USERS * DAYS) ))
gen() { # dir users format
  [ -f "$1/.done" ] && return
  rm -rf "$1"
  "$B/ragtide-gen-logs" --clusters 1000 --users "$2" --days $DAYS --events-per-user-day "$EPD" --seed 42 \
    --start 2026-03-01 --format "$3" --out "$1" >/dev/null 2>&1
  touch "$1/.done"
}
echo "generating ~$N events (1,000 clusters, $USERS users, $DAYS days) in $D ..."
gen "$D/zst" $USERS msgpack.zst
gen "$D/tsv" $USERS tsv
gen "$D/quarter" $((USERS / 4)) msgpack.zst

config() { # logs glob
  cat >"$D/job.ini" <<INI
[input]
catalog = $D/zst/catalog.tsv
logs = $1
window_start = 2026-03-01
window_end = 2026-03-06
min_engagement = 0
INI
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# run RANKS GLOB [--set ...]: median wall of RUNS runs, and from their run
# summaries the median CPU time and stage times
run() {
  local n=$1 glob=$2; shift 2
  config "$glob"
  local walls=() bwalls=()
  rm -f "$D"/run-*.summary.json
  for i in $(seq "$RUNS"); do
    if [ -n "${BASE:-}" ] && [ -z "$*" ]; then
      local t0=$(date +%s.%N)
      mpirun -n "$n" $MPIFLAGS "$BASE" aggregate --config "$D/job.ini" --out "$D/base.rtc" 2>/dev/null
      bwalls+=("$(echo "$(date +%s.%N) - $t0" | bc)")
    fi
    local t0=$(date +%s.%N)
    mpirun -n "$n" $MPIFLAGS "$B/ragtide" aggregate --config "$D/job.ini" --out "$D/counts.rtc" "$@" 2>/dev/null
    walls+=("$(echo "$(date +%s.%N) - $t0" | bc)")
    cp "$D/counts.rtc.summary.json" "$D/run-$i.summary.json"
  done
  local wall=$(printf '%s\n' "${walls[@]}" | median)
  if [ ${#bwalls[@]} -gt 0 ]; then
    local bwall=$(printf '%s\n' "${bwalls[@]}" | median)
    echo "  ranks=$n $MPIFLAGS  BASE median ${bwall}s, this build ${wall}s: $(python3 -c "print(f'{$bwall / $wall:.2f}')")x faster (same runs, alternating)"
  fi
  python3 - "$wall" "$n" "$D"/run-*.summary.json <<'PY'
import json, statistics, sys
wall = float(sys.argv[1]); n = int(sys.argv[2])
runs = [json.load(open(p)) for p in sys.argv[3:]]
s = runs[-1]  # counts, spills and RSS are the same in every run; times are medians over the runs
med = lambda f: statistics.median(f(r) for r in runs)
ev = s["stages"]["read"]["events"]
st = {k: med(lambda r: r["stages"][k]["seconds"]) for k, v in s["stages"].items() if "seconds" in v and v["seconds"]}
pipe = med(lambda r: sum(r["stages"][k]["seconds"] for k in ("read", "shuffle", "sequence", "count")))
cpu = med(lambda r: r["stages"]["process"]["cpu_ms"]) / 1000
th = s["stages"]["process"].get("threads", 1)
print(f"  ranks={n} x {th} threads  events={ev:,}  wall={wall:.2f}s  events/s/rank: end to end {ev / wall / n / 1e6:.2f}M, "
      f"stages 2-5 {ev / pipe / n / 1e6:.2f}M, per CPU second {ev / cpu / 1e6:.2f}M ({cpu:.2f} CPU s)  "
      f"peak RSS/rank={max(s['peak_rss_kb_per_rank']) / 1024:.0f} MiB  "
      f"spilled={s['stages']['shuffle']['spilled_events']:,} events, {s['stages']['count']['spilled_records']:,} count records")
print("    stage seconds (max over ranks, medians over runs): " + ", ".join(f"{k} {v:.2f}" for k, v in st.items()))
PY
}
command -v bc >/dev/null || apt-get install -y -qq bc >/dev/null
echo "== ragtide aggregate, msgpack.zst shards =="
run 1 "$D/zst/logs/*/*.msgpack.zst"
# one rank on both cores: mpirun binds a rank to one core unless told not to,
# and job.threads defaults to the cores the rank may use
MPIFLAGS="--bind-to none" run 1 "$D/zst/logs/*/*.msgpack.zst"
run 2 "$D/zst/logs/*/*.msgpack.zst"
echo "== ragtide aggregate, TSV shards (same events) =="
run 2 "$D/tsv/logs/*/*.tsv"
echo "== decode floor: zstd -d of the msgpack.zst shards, one core =="
walls=()
for _ in $(seq "$RUNS"); do
  t0=$(date +%s.%N); zstd -qdc "$D"/zst/logs/*/*.msgpack.zst >/dev/null; walls+=("$(echo "$(date +%s.%N) - $t0" | bc)")
done
w=$(printf '%s\n' "${walls[@]}" | median)
ev=$(python3 -c "import json; print(json.load(open('$D/counts.rtc.summary.json'))['stages']['read']['events'])")
echo "  zstd -d: ${w}s = $(python3 -c "print(f'{$ev / $w / 1e6:.1f}')")M events/s"
# A cap both sizes exceed, so both spill: peak RSS should then be the same.
CAP=${CAP:-128}
echo "== peak RSS under memory.per_rank_mb=$CAP: N vs N/4 (2 ranks) =="
run 2 "$D/zst/logs/*/*.msgpack.zst" --set memory.per_rank_mb=$CAP
config x; sed -i "s|^catalog = .*|catalog = $D/quarter/catalog.tsv|" "$D/job.ini"
run 2 "$D/quarter/logs/*/*.msgpack.zst" --set memory.per_rank_mb=$CAP --set "input.catalog=$D/quarter/catalog.tsv"
