#!/usr/bin/env bash
# Bad input never crashes the job and never replaces the served table: each
# case below must end with one clear message naming the file and line or
# byte offset (or the URL), the documented exit status, and the table that
# was already published left byte-for-byte as it was.
source "$RAGTIDE_SRC/tests/lib/common.sh"

make_data 20 200 4 41
start_sim sim "$T/data/catalog.tsv" --seed 3
write_config
mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" 2>"$T/log" || { cat "$T/log"; fail "good run"; }
cp "$T/out/table.rtt" "$T/served.rtt"
untouched() { cmp -s "$T/out/table.rtt" "$T/served.rtt" || fail "$1: the served table was changed"; }
refresh() { expect_exit "$1" mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" --no-cache "${@:2}"; }
cid=$(head -1 "$T/data/catalog.tsv" | cut -f1)
cid2=$(sed -n 2p "$T/data/catalog.tsv" | cut -f1)
cid3=$(sed -n 3p "$T/data/catalog.tsv" | cut -f1)
ts=$(date -u -d 2026-01-03 +%s)

# 1. a shard listed in a manifest is missing
printf '%s\nlogs/2026-01-02/nope.msgpack.zst\n' "$(cd "$T/data" && ls logs/2026-01-02/*.zst | head -1)" \
  >"$T/data/missing.manifest"
refresh 3 --set "input.logs=@$T/data/missing.manifest"
expect_err "logs/2026-01-02/nope.msgpack.zst: No such file or directory"
untouched "missing shard"; pass "missing shard -> exit 3"

# 1b. an unreadable shard (as root no permission bit stops a read, so a directory stands in)
mkdir -p "$T/dirshard/x.msgpack.zst"
refresh 3 --set "input.logs=$T/dirshard/*.msgpack.zst"
expect_err "$T/dirshard/x.msgpack.zst is not a regular file"
untouched "unreadable shard"; pass "unreadable shard -> exit 3"

# 2. a glob that matches nothing
refresh 3 --set "input.logs=$T/nowhere/*.msgpack.zst"
expect_err "no shard matches"
untouched "empty glob"; pass "empty glob -> exit 3"

# 3. a corrupt zstd frame (bytes overwritten in the middle of a real shard)
mkdir -p "$T/corrupt"
cp "$T"/data/logs/2026-01-03/part-0000.msgpack.zst "$T/corrupt/x.msgpack.zst"
size=$(stat -c %s "$T/corrupt/x.msgpack.zst")
printf 'garbage-garbage-garbage-garbage' | dd of="$T/corrupt/x.msgpack.zst" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
refresh 3 --set "input.logs=$T/corrupt/*.msgpack.zst"
expect_err "$T/corrupt/x.msgpack.zst"
grep -qiE "byte [0-9]+" "$T/err" || { cat "$T/err"; fail "corrupt frame: no byte offset"; }
untouched "corrupt zstd"; pass "corrupt zstd frame -> exit 3 with the byte offset"

# 4. a truncated msgpack record (two good records, then half of one)
mkdir -p "$T/trunc"
python3 - "$T/trunc/t.msgpack" "$cid" "$cid2" "$ts" <<'PY'
import struct, sys
path, c1, c2, ts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def rec(user, t, c, e):  # [uint64 user, int64 ts, uint32 cluster, float64 engagement]
    return b"\x94" + b"\xcf" + struct.pack(">Q", user) + b"\xd3" + struct.pack(">q", t) + \
           b"\xce" + struct.pack(">I", c) + b"\xcb" + struct.pack(">d", e)
data = rec(1, ts, c1, 1.0) + rec(1, ts + 60, c2, 1.0)
data += rec(1, ts + 120, c1, 1.0)[:9]
open(path, "wb").write(data)
PY
zstd -q -f "$T/trunc/t.msgpack" -o "$T/trunc/t.msgpack.zst"
rm "$T/trunc/t.msgpack"
refresh 3 --set "input.logs=$T/trunc/*.msgpack.zst"
expect_err "$T/trunc/t.msgpack.zst: byte 66: truncated record"
untouched "truncated record"; pass "truncated msgpack record -> exit 3 at byte 66: truncated record"
# the same among good shards read by 3 threads per rank: the failing thread's
# error is the one reported, and the others stop
{ ls "$T"/data/logs/*/*.msgpack.zst; echo "$T/trunc/t.msgpack.zst"; } >"$T/mixed.manifest"
refresh 3 --set "input.logs=@$T/mixed.manifest" --set job.threads=3
expect_err "$T/trunc/t.msgpack.zst: byte 66: truncated record"
untouched "truncated record, threads"; pass "truncated record among good shards on 3 threads -> exit 3, same message"

# 5. an unknown cluster id: fails by default, counted and skipped on request
mkdir -p "$T/unk"
printf '7\t%s\t%s\t1.0\n7\t%s\t4000000001\t1.0\n7\t%s\t%s\t1.0\n' "$ts" "$cid" "$((ts + 60))" "$((ts + 90))" "$cid2" \
  >"$T/unk/u.tsv"
refresh 3 --set "input.logs=$T/unk/*.tsv"
expect_err "$T/unk/u.tsv:2: cluster id not in the catalog (input.catalog): user 7, ts $((ts + 60)), cluster 4000000001; fix the shard or set input.on_bad_event = skip"
untouched "unknown cluster"; pass "unknown cluster id -> exit 3"
mkdir -p "$T/skip"
expect_exit 0 mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" --set "input.logs=$T/unk/*.tsv" \
  --set input.on_bad_event=skip --set llm.api=retrieval --set "output.table=$T/skip/t.rtt"
python3 -c "
import json; r=json.load(open('$(last_summary "$T/skip/t.rtt")'))['stages']['read']
assert r['bad_unknown_cluster'] == 1 and r['kept'] == 2 and r['events'] == 3, r"
pass "input.on_bad_event=skip runs through the unknown cluster"

# 5b. timestamps: valid events far outside the window (3 years later, 10 years earlier) are
# counted in read.outside_window and skipped, never bad; milliseconds and negative ones are bad
mkdir -p "$T/far" "$T/ms" "$T/neg" "$T/farout"
far=$((ts + 3 * 366 * 86400)) early=$((ts - 10 * 365 * 86400))
printf '7\t%s\t%s\t1.0\n7\t%s\t%s\t1.0\n7\t%s\t%s\t1.0\n7\t%s\t%s\t1.0\n' "$ts" "$cid" "$((ts + 60))" "$cid2" \
  "$far" "$cid3" "$early" "$cid" >"$T/far/f.tsv"
expect_exit 0 mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" --set "input.logs=$T/far/*.tsv" \
  --set llm.api=retrieval --set "output.table=$T/farout/t.rtt"
python3 -c "
import json; r=json.load(open('$(last_summary "$T/farout/t.rtt")'))['stages']['read']
assert r['outside_window'] == 2 and r['kept'] == 2 and r['bad_timestamp'] == 0 and r['events'] == 4, r"
pass "events years outside the window -> counted in read.outside_window, exit 0"
printf '7\t%s\t%s\t1.0\n7\t%s000\t%s\t1.0\n' "$ts" "$cid" "$((ts + 60))" "$cid2" >"$T/ms/m.tsv"
refresh 3 --set "input.logs=$T/ms/*.tsv"
expect_err "$T/ms/m.tsv:2: timestamp looks like milliseconds"
expect_err "divide it by 1000: user 7, ts $((ts + 60))000"
untouched "ms timestamp"; pass "millisecond timestamp -> exit 3 saying milliseconds"
printf '7\t-5\t%s\t1.0\n' "$cid" >"$T/neg/n.tsv"
refresh 3 --set "input.logs=$T/neg/*.tsv"
expect_err "$T/neg/n.tsv:1: timestamp is negative (ts must be unix seconds, UTC): user 7, ts -5"
untouched "negative timestamp"; pass "negative timestamp -> exit 3"

# 6. a malformed catalog line
{ head -3 "$T/data/catalog.tsv"; echo "12345 no tab"; tail -n +4 "$T/data/catalog.tsv"; } >"$T/badcat.tsv"
refresh 3 --set "input.catalog=$T/badcat.tsv"
expect_err "$T/badcat.tsv:4: expected \"cluster_id<TAB>keywords\""
untouched "bad catalog"; pass "malformed catalog line -> exit 3 with file:line"

# 7. an unknown config key, in the file and in --set
cp "$T/job.ini" "$T/typo.ini"
printf '[retrieval]\ntopn = 3\n' >>"$T/typo.ini"
expect_exit 2 mpirun_q -n 2 "$RT" refresh --config "$T/typo.ini"
expect_err "$T/typo.ini:$(wc -l <"$T/typo.ini"): unknown key \"retrieval.topn\""
refresh 2 --set llm.concurency=4
expect_err "unknown key \"llm.concurency\""
untouched "config typo"; pass "unknown config key -> exit 2 with file:line"

# 8. an endpoint that refuses connections
refresh 4 --set llm.base_url=http://127.0.0.1:9 --set llm.max_attempts=2
expect_err "http://127.0.0.1:9"
untouched "refused endpoint"; pass "refused connections -> exit 4 naming the URL"

# 9. answers off the catalog: the exact-match gate halts before publishing
start_sim offcat "$T/data/catalog.tsv" --seed 3 --off-catalog 0.5
refresh 5 --set "llm.base_url=$SIM_URL"
expect_err "exact-match rate"
untouched "quality gate"
python3 -c "
import json; s=json.load(open('$(last_summary "$T/out/table.rtt")'))
assert s['status']=='halted' and s['exit_code']==5 and not s['table']['published'], s['status']
assert 0.3 < s['quality']['exact_match_rate'] < 0.9, s['quality']"
pass "exact-match gate -> exit 5, summary says halted"

# 10. a bad template placeholder
printf 'Pair: {{c1}} / {{c3}}\n' >"$T/bad.tmpl"
refresh 3 --set "prompt.template=$T/bad.tmpl"
expect_err "$T/bad.tmpl:1: unknown placeholder {{c3}}"
untouched "bad template"; pass "bad template -> exit 3 with file:line"

# 11. an output directory that cannot be created (a file stands where a
#     directory should): exit 6 naming it, nothing half-written. (A missing
#     directory is created: tests/scripts/usage.sh.)
echo "not a directory" >"$T/blocker"
refresh 6 --set "output.table=$T/blocker/dir/t.rtt" --set "output.summary=$T/s.json"
expect_err "cannot create the directory of output.table $T/blocker/dir/t.rtt"
untouched "bad output dir"; pass "unwritable output -> exit 6"
echo "bad_input: all checks passed"
