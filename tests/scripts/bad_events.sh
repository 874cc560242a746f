#!/usr/bin/env bash
# Malformed and bad events (issue 13): every TSV error names FILE:LINE
# (1-based, blank lines counted), a msgpack error FILE: byte D; with
# input.on_bad_event = fail (the default) the run stops there saying what to
# do, with skip the lines and events are skipped and counted per reason in the
# summary's stages.read and in the log, summed over the ranks.
source "$RAGTIDE_SRC/tests/lib/common.sh"

make_data 20 50 2 7
write_config
cid=$(sed -n 1p "$T/data/catalog.tsv" | cut -f1)
cid2=$(sed -n 2p "$T/data/catalog.tsv" | cut -f1)
cid3=$(sed -n 3p "$T/data/catalog.tsv" | cut -f1)
ts=$(date -u -d 2026-01-03 +%s)
run() { # run EXIT DIR [--set ...]: a retrieval-only refresh of DIR's shards
  local want=$1 dir=$2; shift 2
  expect_exit "$want" mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" --set "input.logs=$dir/*" \
    --set llm.api=retrieval --set "output.table=$dir.out/t.rtt" "$@"
}
hint_line="fix or regenerate the shard, or set input.on_bad_event = skip to count and skip malformed lines"
hint_event="fix the shard or set input.on_bad_event = skip to count and skip such events"

# --- fail (the default): the first bad line or event stops the run, named by file and line
mkdir -p "$T/hdr" "$T/cols" "$T/num" "$T/unk" "$T/mp"
printf 'user_id\tts\tcluster_id\tengagement\n7\t%s\t%s\t1.0\n' "$ts" "$cid" >"$T/hdr/h.tsv"
run 3 "$T/hdr"
expect_err "$T/hdr/h.tsv:1: a header line (\"user_id\\tts\\tcluster_id\\tengagement\"), but shards have none; $hint_line"
pass "header line -> exit 3 naming h.tsv:1 and input.on_bad_event"

printf '7\t%s\t%s\t1.0\n\n7\t%s\t%s\n' "$ts" "$cid" "$((ts + 60))" "$cid2" >"$T/cols/c.tsv"
run 3 "$T/cols"
expect_err "$T/cols/c.tsv:3: expected 4 tab-separated fields (user, ts, cluster, engagement), found 3; $hint_line"
pass "wrong field count after a blank line -> c.tsv:3"

printf '7\t%s\t%s\t1.0\n7\t12x\t%s\t1.0\n' "$ts" "$cid" "$cid2" >"$T/num/n.tsv"
run 3 "$T/num"
expect_err "$T/num/n.tsv:2: ts \"12x\" is not a 64-bit integer (unix seconds); $hint_line"
pass "non-numeric ts -> n.tsv:2"

printf '7\t%s\t%s\t1.0\n\n\n7\t%s\t4000000001\t1.0\n' "$ts" "$cid" "$((ts + 60))" >"$T/unk/u.tsv"
run 3 "$T/unk"
expect_err "$T/unk/u.tsv:4: cluster id not in the catalog (input.catalog): user 7, ts $((ts + 60)), cluster 4000000001; $hint_event"
pass "unknown cluster -> u.tsv:4 (not event #1)"

# msgpack: two records [7, ts, cluster, 1.0f] of 17 bytes; the second's cluster is unknown
python3 -c "
import struct, sys
rec = lambda ts, c: b'\x94\x07' + struct.pack('>BI', 0xce, ts) + struct.pack('>BI', 0xce, c) + struct.pack('>Bf', 0xca, 1.0)
open('$T/mp/m.msgpack', 'wb').write(rec($ts, $cid) + rec($ts + 60, 4000000001))"
run 3 "$T/mp"
expect_err "$T/mp/m.msgpack: byte 17: cluster id not in the catalog (input.catalog): user 7, ts $((ts + 60)), cluster 4000000001; $hint_event"
pass "unknown cluster in msgpack -> m.msgpack: byte 17"

# --- skip: two shards (one per rank), every reason
mkdir -p "$T/skip"
{ printf 'user_id\tts\tcluster_id\tengagement\n'         # 1 header
  printf '7\t%s\t%s\t1.0\n' "$ts" "$cid"                  # 2 kept
  printf '\n'                                             # 3 blank
  printf '7\t%s\t%s\n' "$((ts + 60))" "$cid2"             # 4 3 fields
  printf '7\t%s\t%s\t1.0\tx\n' "$((ts + 90))" "$cid2"     # 5 5 fields
  printf 'x7\t%s\t%s\t1.0\n' "$((ts + 100))" "$cid"       # 6 user not a number (not the first line: no header)
  printf '7\t12x\t%s\t1.0\n' "$cid"                       # 7 ts not a number
  printf '7\t%s\t%s\t1.0\n' "$((ts + 120))" "$cid2"       # 8 kept
  printf '7\t%s000\t%s\t1.0\n' "$((ts + 150))" "$cid3"    # 9 milliseconds: bad timestamp
} >"$T/skip/a.tsv"
{ printf '8\t%s\t4000000001\t1.0\n' "$ts"                 # 1 unknown cluster
  printf '8\t-5\t%s\t1.0\n' "$cid"                        # 2 negative: bad timestamp
  printf '8\t%s\t%s\tnan\n' "$((ts + 10))" "$cid2"        # 3 NaN engagement
  printf '8\t%s\t%s\thigh\n' "$((ts + 20))" "$cid"        # 4 engagement not a number
  printf '8\t%s\t%s\t1.0\n' "$((ts + 30))" "$cid3"        # 5 kept
  printf '8\t%s\t%s\t1.0\n' "$((ts + 400 * 86400))" "$cid" # 6 valid, outside the window
  printf 'user\tts\n'                                     # 7 2 fields (not the first line: no header)
} >"$T/skip/b.tsv"
run 0 "$T/skip" --set input.on_bad_event=skip
python3 - "$T/skip.out/t.rtt.summary.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))['stages']['read']
want = dict(events=8, kept=3, outside_window=1, bad_header=1, bad_fields=3, bad_number=3, bad_timestamp=2,
            bad_unknown_cluster=1, bad_engagement=1, shards=2)
got = {k: r[k] for k in want}
assert got == want, (got, want)
PY
pass "skip: stages.read counts every reason, summed over 2 ranks"
expect_err "read: skipped 11 bad events and lines (input.on_bad_event = skip): unknown cluster 1, bad timestamp 2, NaN engagement 1, wrong field count 3, not a number 3, header line 1"
expect_err "$T/skip/a.tsv: skipped 5 malformed line(s) (input.on_bad_event = skip): 2 with a wrong field count, 2 with a field that is not a number, 1 header line(s); the first: $T/skip/a.tsv:1: a header line"
expect_err "$T/skip/b.tsv: skipped 2 malformed line(s) (input.on_bad_event = skip): 1 with a wrong field count, 1 with a field that is not a number, 0 header line(s); the first: $T/skip/b.tsv:4: engagement \"high\" is not a number"
pass "skip: the log gives the totals on rank 0 and each shard's skipped lines with the first one's file:line"

# the same shards through a TSV.zst stream (one zstd frame each): the same counts
mkdir -p "$T/skipz"
for f in a b; do zstd -q "$T/skip/$f.tsv" -o "$T/skipz/$f.tsv.zst"; done
run 0 "$T/skipz" --set input.on_bad_event=skip
python3 -c "
import json; r=json.load(open('$T/skipz.out/t.rtt.summary.json'))['stages']['read']
assert (r['bad_header'], r['bad_fields'], r['bad_number'], r['kept']) == (1, 3, 3, 3), r"
pass "skip: the same counts from .tsv.zst shards"
