#!/usr/bin/env bash
# `ragtide aggregate` must equal the independent Python oracle
# (tests/oracle/aggregate_oracle.py) exactly, for every aggregation option,
# on msgpack.zst and TSV shards, on 1 and 3 ranks.
source "$RAGTIDE_SRC/tests/lib/common.sh"

"$GEN" --clusters 25 --users 300 --days 5 --seed 31 --start 2026-01-01 --format tsv --out "$T/tsv" >/dev/null
"$GEN" --clusters 25 --users 300 --days 5 --seed 31 --start 2026-01-01 --out "$T/data" >/dev/null
write_config

check() { # name, ranks, shards-glob, then pairs of (ragtide --set, oracle flag)
  local name=$1 n=$2 glob=$3; shift 3
  local sets=() oflags=()
  while [ $# -gt 0 ]; do sets+=(--set "$1"); oflags+=($2); shift 2; done
  mpirun_q -n "$n" "$RT" aggregate --config "$T/job.ini" --set "input.logs=$glob" "${sets[@]}" \
    --format tsv --out "$T/$name.c.tsv" 2>"$T/log" || { cat "$T/log"; fail "$name: aggregate"; }
  python3 "$ORACLE" --catalog "$T/data/catalog.tsv" --out counts "${oflags[@]}" "$T"/tsv/logs/*/*.tsv \
    >"$T/$name.py.tsv" || fail "$name: oracle"
  [ -s "$T/$name.py.tsv" ] || fail "$name: oracle found no triple"
  diff -q "$T/$name.py.tsv" "$T/$name.c.tsv" >/dev/null ||
    { diff "$T/$name.py.tsv" "$T/$name.c.tsv" | head; fail "$name: ragtide and the oracle disagree"; }
  pass "$name: $(wc -l <"$T/$name.c.tsv") (triple, day) counts equal the oracle's"
}
W="input.window_start=2026-01-02 --window-start=2026-01-02 input.window_end=2026-01-05 --window-end=2026-01-05"
ZST="$T/data/logs/*/*.msgpack.zst"
TSV="$T/tsv/logs/*/*.tsv"
check default 1 "$ZST" $W
check default-3ranks 3 "$ZST" $W
check tsv-input 2 "$TSV" $W
check unique 3 "$ZST" $W input.dedup=unique --dedup=unique
check gap 2 "$ZST" $W input.max_gap_s=1800 --max-gap-s=1800
check minlen 2 "$ZST" $W input.min_seq_len=5 --min-seq-len=5
check gap-minlen 2 "$ZST" $W input.max_gap_s=900 --max-gap-s=900 input.min_seq_len=4 --min-seq-len=4
check engagement 2 "$ZST" $W input.min_engagement=0.8 --min-engagement=0.8
check whole 3 "$ZST" input.window_start=2026-01-01 --window-start=2026-01-01 \
  input.window_end=2026-01-06 --window-end=2026-01-06
# Retrieval (stage 6) against the oracle: top-3 by frequency and by trend,
# through llm.api = retrieval (the prediction list is the retrieved list).
check_retrieval() { # mode, oracle --out
  mpirun_q -n 3 "$RT" refresh --config "$T/job.ini" --set "input.logs=$ZST" --set input.window_start=2026-01-03 \
    --set input.window_end=2026-01-05 --set llm.api=retrieval --set "retrieval.mode=$1" --set retrieval.top_n=3 \
    --set output.candidates=3 --set "output.table=$T/out/$1.rtt" 2>"$T/log" || { cat "$T/log"; fail "$1 run"; }
  "$RT" export --format tsv "$T/out/$1.rtt" | awk -F'\t' 'NR > 1 { print $1 "\t" $2 "\t" $3 + 1 "\t" $4 }' >"$T/$1.c.tsv"
  python3 "$ORACLE" --catalog "$T/data/catalog.tsv" --window-start 2026-01-03 --window-end 2026-01-05 \
    --out "$2" --top-n 3 "$T"/tsv/logs/*/*.tsv | cut -f1-4 >"$T/$1.py.tsv"
  [ -s "$T/$1.py.tsv" ] || fail "$1: oracle retrieved nothing"
  diff -q "$T/$1.py.tsv" "$T/$1.c.tsv" >/dev/null || { diff "$T/$1.py.tsv" "$T/$1.c.tsv" | head; fail "$1 retrieval differs"; }
  pass "$1 retrieval: $(wc -l <"$T/$1.c.tsv") (pair, rank) entries equal the oracle's"
}
check_retrieval frequency top
check_retrieval trend trend
# refresh from a counts file (input.counts) = refresh from the logs, when the
# counts were aggregated over the same window.
mpirun_q -n 2 "$RT" aggregate --config "$T/job.ini" --set "input.logs=$ZST" --set input.window_start=2026-01-03 \
  --set input.window_end=2026-01-05 --out "$T/w.rtc" 2>"$T/log" || { cat "$T/log"; fail "aggregate to counts file"; }
mpirun_q -n 3 "$RT" refresh --config "$T/job.ini" --set "input.counts=$T/w.rtc" --set input.logs= \
  --set input.window_start=2026-01-03 --set input.window_end=2026-01-05 --set llm.api=retrieval \
  --set retrieval.top_n=3 --set output.candidates=3 --set "output.table=$T/out/from-counts.rtt" 2>"$T/log" ||
  { cat "$T/log"; fail "refresh from counts"; }
cmp "$T/out/frequency.rtt" "$T/out/from-counts.rtt" || fail "refresh from counts differs from refresh from logs"
# ...and under a memory cap (tests/scripts/determinism.sh makes it spill)
mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" --set "input.counts=$T/w.rtc" --set input.logs= \
  --set input.window_start=2026-01-03 --set input.window_end=2026-01-05 --set llm.api=retrieval \
  --set retrieval.top_n=3 --set output.candidates=3 --set memory.per_rank_mb=1 \
  --set "output.table=$T/out/from-counts-capped.rtt" 2>"$T/log" || { cat "$T/log"; fail "capped refresh from counts"; }
cmp "$T/out/frequency.rtt" "$T/out/from-counts-capped.rtt" || fail "capped refresh from counts differs"

pass "refresh from a counts file gives the same table as from the logs (also memory-capped)"
echo "oracle_aggregate: all checks passed"
