#!/usr/bin/env bash
# End to end: generated logs -> `mpirun -n 2 ragtide refresh` against the
# local simulated endpoint -> lookups checked against the Python oracle.
# The sim runs with --follow 1: it answers the first retrieved cluster of a
# RAG prompt, so every pair's prediction must be the oracle's top-1 successor.
source "$RAGTIDE_SRC/tests/lib/common.sh"

make_data 30 400 6 11
"$GEN" --clusters 30 --users 400 --days 6 --seed 11 --start 2026-01-01 --format tsv --out "$T/tsv" >/dev/null
cmp -s "$T/data/catalog.tsv" "$T/tsv/catalog.tsv" || fail "gen-logs catalogs differ between formats"
start_sim sim "$T/data/catalog.tsv" --seed 5 --follow 1
write_config

mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" 2>"$T/log" || { cat "$T/log"; fail "refresh failed"; }
pass "refresh published"

python3 "$ORACLE" --catalog "$T/data/catalog.tsv" --window-start 2026-01-02 --window-end 2026-01-06 \
  --out top --top-n 1 "$T"/tsv/logs/*/*.tsv >"$T/top.tsv"
npairs=$(wc -l <"$T/top.tsv")
[ "$npairs" -gt 100 ] || fail "oracle found only $npairs pairs"

# Every pair with data: prediction = oracle top-1, provenance rag.
"$RT" export --format tsv "$T/out/table.rtt" >"$T/export.tsv"
python3 - "$T/top.tsv" "$T/export.tsv" <<'PY'
import sys
top = {}
for line in open(sys.argv[1]):
    c1, c2, rank, nxt, cnt = line.split("\t")
    top[(c1, c2)] = nxt.strip()
got = {}
for line in open(sys.argv[2]):
    f = line.rstrip("\n").split("\t")
    if f[0] == "c1": continue                        # header: c1 c2 rank next provenance day
    if f[2] == "0": got[(f[0], f[1])] = (f[3], f[4])
bad = [(k, v, got.get(k)) for k, v in top.items() if got.get(k, (None, None))[:2] != (v, "rag")]
extra = [k for k in got if k not in top]
if bad or extra:
    print("mismatches:", bad[:5], "extra pairs:", extra[:5]); sys.exit(1)
print(f"ok: {len(top)} pairs predict the oracle's top-1 successor with provenance rag")
PY

# Four lookups through the CLI, in both output forms.
head -4 "$T/top.tsv" | while IFS=$'\t' read -r c1 c2 rank nxt cnt; do
  out=$("$RT" lookup --json "$T/out/table.rtt" "$c1" "$c2")
  python3 -c "
import json, sys; o = json.loads(sys.argv[1])
assert (o['c1'], o['c2'], o['next'], o['provenance']) == ($c1, $c2, $nxt, 'rag'), o
assert o['candidates'][0]['next'] == $nxt and o['candidates'][0]['provenance'] == 'rag', o" "$out" ||
    fail "lookup --json $c1 $c2: $out"
  "$RT" lookup "$T/out/table.rtt" "$c1" "$c2" | grep -q -- "-> $nxt (rag)" || fail "lookup $c1 $c2"
done
pass "lookup agrees with the oracle"

python3 - "$T/out/table.rtt.summary.json" "$npairs" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); n = int(sys.argv[2])
st = s["stages"]
assert s["status"] == "published" and s["exit_code"] == 0, s["status"]
assert st["count"]["pairs_with_data"] == n, (st["count"]["pairs_with_data"], n)
assert st["infer"]["calls"] == n and st["infer"]["requests"] == n, st["infer"]
assert st["infer"]["cache_hits"] == 0
assert s["quality"]["exact_match_rate"] == 1.0
assert s["table"]["pairs"]["rag"] == n and s["table"]["pairs"]["none"] == 30 * 30 - n, s["table"]["pairs"]
print("ok: summary counts exact")
PY

# Incremental refresh: same prompts -> every answer from the journal, no call.
cp "$T/out/table.rtt" "$T/first.rtt"
mpirun_q -n 3 "$RT" refresh --config "$T/job.ini" 2>"$T/log" || { cat "$T/log"; fail "second refresh failed"; }
cmp "$T/out/table.rtt" "$T/first.rtt" || fail "rerun with cached answers changed the table"
python3 -c "
import json,sys; s=json.load(open('$T/out/table.rtt.summary.json'))['stages']['infer']
assert s['cache_hits'] == $npairs and s['requests'] == 0, s; print('ok: rerun reused', s['cache_hits'], 'answers')"
[ -e "$T/out/table.rtt.1" ] || fail "the previous table was not kept as table.rtt.1"
mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" --no-cache 2>"$T/log" || { cat "$T/log"; fail "--no-cache failed"; }
python3 -c "
import json; s=json.load(open('$T/out/table.rtt.summary.json'))['stages']['infer']
assert s['cache_hits'] == 0 and s['requests'] == $npairs, s; print('ok: --no-cache called for every pair')"
echo "refresh_e2e: all checks passed"
