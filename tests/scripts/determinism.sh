#!/usr/bin/env bash
# The table must not depend on how the work was split: byte-identical for
# -n 1, 2, 3 and 4 ranks, for the same events cut into different shards, and
# for the shards listed in another order (with a pinned created-at time).
source "$RAGTIDE_SRC/tests/lib/common.sh"

make_data 40 500 6 21
start_sim sim "$T/data/catalog.tsv" --seed 9
write_config

for n in 1 2 3 4; do
  mpirun_q -n "$n" "$RT" refresh --config "$T/job.ini" --set "output.table=$T/out/n$n.rtt" 2>"$T/log" ||
    { cat "$T/log"; fail "refresh -n $n"; }
done
for n in 2 3 4; do cmp "$T/out/n1.rtt" "$T/out/n$n.rtt" || fail "-n 1 and -n $n tables differ"; done
pass "-n 1/2/3/4 tables are byte-identical"
mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" --set job.threads=3 --set "output.table=$T/out/t3.rtt" 2>"$T/log" ||
  { cat "$T/log"; fail "refresh -n 2, 3 threads"; }
cmp "$T/out/n1.rtt" "$T/out/t3.rtt" || fail "3 threads per rank changed the table"
pass "3 threads per rank: the same table"

# The same events in 1 shard per day and in 7 shards per day.
"$GEN" --clusters 40 --users 500 --days 6 --seed 21 --start 2026-01-01 --shards-per-day 1 --out "$T/one" >/dev/null
"$GEN" --clusters 40 --users 500 --days 6 --seed 21 --start 2026-01-01 --shards-per-day 7 --out "$T/seven" >/dev/null
for d in one seven; do
  mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" --set "input.logs=$T/$d/logs/*/*.msgpack.zst" \
    --set "output.table=$T/out/$d.rtt" 2>"$T/log" || { cat "$T/log"; fail "refresh on $d"; }
  cmp "$T/out/n1.rtt" "$T/out/$d.rtt" || fail "splitting events into other shards ($d) changed the table"
done
pass "re-sharded events give the same table"

# Shards listed in reverse order through a manifest (paths relative to it).
(cd "$T/seven" && ls logs/*/*.msgpack.zst | sort -r) >"$T/seven/shards.manifest"
mpirun_q -n 3 "$RT" refresh --config "$T/job.ini" --set "input.logs=@$T/seven/shards.manifest" \
  --set "output.table=$T/out/manifest.rtt" 2>"$T/log" || { cat "$T/log"; fail "refresh from manifest"; }
cmp "$T/out/n1.rtt" "$T/out/manifest.rtt" || fail "manifest order changed the table"
pass "shard order does not matter"

# Pre-split by user (each user's events in one shard): with
# input.partitioned_by_user the shuffle is skipped and the counts are the same.
"$GEN" --clusters 40 --users 500 --days 6 --seed 21 --start 2026-01-01 --format tsv --out "$T/tsv" >/dev/null
mkdir -p "$T/byuser"
cat "$T"/tsv/logs/*/*.tsv | awk -F'\t' -v d="$T/byuser" '{ print > (d "/u" ($1 % 3) ".tsv") }'
mpirun_q -n 2 "$RT" aggregate --config "$T/job.ini" --format tsv --out "$T/shuffled.tsv" 2>"$T/log" ||
  { cat "$T/log"; fail "aggregate"; }
mpirun_q -n 3 "$RT" aggregate --config "$T/job.ini" --set "input.logs=$T/byuser/*.tsv" \
  --set input.partitioned_by_user=true --format tsv --out "$T/byuser.tsv" 2>"$T/log" ||
  { cat "$T/log"; fail "aggregate without shuffle"; }
cmp "$T/shuffled.tsv" "$T/byuser.tsv" || fail "user-partitioned shards without shuffle give other counts"
mpirun_q -n 1 "$RT" aggregate --config "$T/job.ini" --set "input.logs=$T/byuser/*.tsv" --set job.threads=3 \
  --set input.partitioned_by_user=true --format tsv --out "$T/byuser-t3.tsv" 2>"$T/log" ||
  { cat "$T/log"; fail "aggregate without shuffle, 3 threads"; }
cmp "$T/shuffled.tsv" "$T/byuser-t3.tsv" || fail "3 threads without shuffle give other counts"
# ...and the flag really skips the shuffle: on shards NOT split by user it loses triples.
mpirun_q -n 3 "$RT" aggregate --config "$T/job.ini" --set input.partitioned_by_user=true --format tsv \
  --out "$T/wrong.tsv" 2>"$T/log" || { cat "$T/log"; fail "aggregate"; }
cmp -s "$T/shuffled.tsv" "$T/wrong.tsv" && fail "partitioned_by_user=true did not skip the shuffle"
pass "input.partitioned_by_user skips the shuffle with the same counts"
# Under a tight memory cap (memory.per_rank_mb) events spill to the run
# directory in user buckets and count records in sorted runs: same table,
# same counts file on 1 and 3 ranks, and the spill files are gone after.
"$GEN" --clusters 40 --users 3000 --days 6 --seed 23 --start 2026-01-01 --out "$T/big" >/dev/null
for cap in 0 1; do
  mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" --set "input.logs=$T/big/logs/*/*.msgpack.zst" \
    --set "input.catalog=$T/big/catalog.tsv" --set llm.api=retrieval --set memory.per_rank_mb=$cap \
    --set "output.table=$T/out/cap$cap.rtt" 2>"$T/log" || { cat "$T/log"; fail "refresh with memory cap $cap"; }
done
cmp "$T/out/cap0.rtt" "$T/out/cap1.rtt" || fail "memory.per_rank_mb changed the table"
python3 -c "
import json; s=json.load(open('$T/out/cap1.rtt.summary.json'))['stages']
assert s['shuffle']['spilled_events'] > 0, s['shuffle']; assert s['count']['spilled_records'] > 0, s['count']
print('spilled', s['shuffle']['spilled_events'], 'events and', s['count']['spilled_records'], 'count records')"
[ -z "$(ls -A "$T/out/cap1.rtt.run" 2>/dev/null)" ] || fail "spill files left behind"
for n in 1 3; do
  for cap in 0 1; do
    mpirun_q -n $n "$RT" aggregate --config "$T/job.ini" --set "input.logs=$T/big/logs/*/*.msgpack.zst" \
      --set "input.catalog=$T/big/catalog.tsv" --set memory.per_rank_mb=$cap \
      --set "output.run_dir=$T/out/agg.run" --out "$T/out/agg-n$n-cap$cap.rtc" 2>"$T/log" ||
      { cat "$T/log"; fail "aggregate -n $n with memory cap $cap"; }
  done
done
for f in agg-n1-cap1 agg-n3-cap0 agg-n3-cap1; do
  cmp "$T/out/agg-n1-cap0.rtc" "$T/out/$f.rtc" || fail "counts file $f differs from -n 1 without a cap"
done
[ -z "$(ls -A "$T/out/agg.run" 2>/dev/null)" ] || fail "count runs left behind"
# Threads inside a rank (job.threads) split the reading, the user buckets and
# the counting: the same counts file for 1-3 threads on 1 and 2 ranks, capped
# (several counters spilling into one set of runs) or not, the same totals in
# the summary, and the thread count reported.
for n in 1 2; do
  for th in 2 3; do
    for cap in 0 1; do
      f="agg-n$n-t$th-cap$cap"
      mpirun_q -n $n "$RT" aggregate --config "$T/job.ini" --set "input.logs=$T/big/logs/*/*.msgpack.zst" \
        --set "input.catalog=$T/big/catalog.tsv" --set memory.per_rank_mb=$cap --set job.threads=$th \
        --set "output.run_dir=$T/out/agg.run" --out "$T/out/$f.rtc" 2>"$T/log" ||
        { cat "$T/log"; fail "aggregate -n $n, $th threads, memory cap $cap"; }
      cmp "$T/out/agg-n1-cap0.rtc" "$T/out/$f.rtc" || fail "counts file $f differs from -n 1, one thread"
      python3 - "$T/out/agg-n1-cap0.rtc.summary.json" "$T/out/$f.rtc.summary.json" "$th" <<'PY' || fail "summary of $f"
import json, sys
a, b = (json.load(open(p))["stages"] for p in sys.argv[1:3])
assert b["process"]["threads"] == int(sys.argv[3]), b["process"]
for st, k in [("read", "events"), ("read", "kept"), ("sequence", "users"), ("sequence", "sequences"),
              ("sequence", "triples"), ("count", "triples_distinct"), ("count", "pairs_with_data")]:
    assert a[st][k] == b[st][k], (st, k, a[st][k], b[st][k])
PY
    done
  done
done
[ -z "$(ls -A "$T/out/agg.run" 2>/dev/null)" ] || fail "count runs left behind by threaded runs"
pass "job.threads 2 and 3 give the same counts file and totals on 1 and 2 ranks, capped or not"
# refresh from that counts file, capped (owned records spill to runs) or not: the same table
for cap in 0 1; do
  mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" --set "input.counts=$T/out/agg-n1-cap0.rtc" --set input.logs= \
    --set "input.catalog=$T/big/catalog.tsv" --set llm.api=retrieval --set memory.per_rank_mb=$cap \
    --set "output.table=$T/out/fc$cap.rtt" 2>"$T/log" || { cat "$T/log"; fail "refresh from counts, cap $cap"; }
done
cmp "$T/out/cap0.rtt" "$T/out/fc0.rtt" || fail "refresh from the counts file differs from refresh from logs"
cmp "$T/out/fc0.rtt" "$T/out/fc1.rtt" || fail "memory.per_rank_mb changed the table from counts"
python3 -c "
import json; c=json.load(open('$T/out/fc1.rtt.summary.json'))['stages']['count']
assert c['spilled_records'] > 0, c; print('from counts: spilled', c['spilled_records'], 'of', c['triples_distinct'], 'records')"
pass "memory-capped runs (from logs and from a counts file) spill and give the same table and counts"
echo "determinism: all checks passed"
