#!/usr/bin/env bash
# table_cmds.sh — end-to-end check of the table commands: lookup, inspect,
# validate, diff, export, merge, rollback (exit codes and outputs).
# Env: RAGTIDE_BUILD (build dir with ragtide and ragtide-bench-table).
set -euo pipefail
B=${RAGTIDE_BUILD:?set RAGTIDE_BUILD to the build directory}
R="$B/ragtide"
MK="$B/ragtide-bench-table"
T=$(mktemp -d /tmp/rt_table_cmds.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect STATUS CMD... : run CMD, check its exit status, keep stdout/stderr in $T/out $T/err
expect() {
  local want=$1; shift
  set +e; "$@" >"$T/out" 2>"$T/err"; local got=$?; set -e
  [ "$got" = "$want" ] || fail "'$*' exited $got, want $want; stderr: $(cat "$T/err")"
}
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval("d"+sys.argv[2]))' "$@"; }

# Tables: 20 clusters with ids 100,103,...; base is all BASE, the overlay mixes provenances.
common=(--clusters 20 --id-base 100 --id-step 3 --catalog-hash 0xabc)
"$MK" make "$T/base" "${common[@]}" --prov base --run-id base-1 --day 20000 --candidates 2
"$MK" make "$T/ov" "${common[@]}" --prov mix --fill 50 --seed 7 --run-id rag-1 --base-run-id base-1 --day 20100
"$MK" make "$T/ov_badrun" "${common[@]}" --prov rag --run-id rag-2 --base-run-id base-0
"$MK" make "$T/other" --clusters 20 --id-base 100 --id-step 3 --catalog-hash 0xdef --prov rag
"$MK" make "$T/empty" "${common[@]}" --fill 0

# --- help
for c in lookup inspect validate diff export merge rollback; do
  expect 0 "$R" "$c" --help
  grep -q "usage: ragtide $c" "$T/out" || fail "$c --help prints no usage"
done

# --- lookup
expect 0 "$R" lookup "$T/base" 100 103
grep -Eq '^100 103 -> [0-9]+ \(base\)$' "$T/out" || fail "lookup plain: $(cat "$T/out")"
expect 0 "$R" lookup --json "$T/base" 100 103
[ "$(jget "$T/out" '["provenance"]')" = base ] || fail "lookup json provenance"
[ "$(jget "$T/out" '["c1"]')" = 100 ] || fail "lookup json c1"
[ "$(wc -l <"$T/out")" = 1 ] || fail "lookup --json prints exactly one object"
expect 0 "$R" lookup --json "$T/empty" 100 157
[ "$(jget "$T/out" '["next"]')" = None ] || fail "next must be null for no prediction: $(cat "$T/out")"
[ "$(jget "$T/out" '["provenance"]')" = none ] || fail "provenance none"
expect 2 "$R" lookup "$T/base" 100 101
grep -q "101 is not in the catalog" "$T/err" || fail "unknown id message: $(cat "$T/err")"
expect 2 "$R" lookup "$T/base" 100 abc
expect 2 "$R" lookup "$T/base" 100
expect 7 "$R" lookup "$T/missing" 100 103
grep -q "$T/missing" "$T/err" || fail "missing-table message names the file"

# --- inspect
expect 0 "$R" inspect --json "$T/ov"
[ "$(jget "$T/out" '["run_id"]')" = rag-1 ] || fail "inspect run_id"
[ "$(jget "$T/out" '["base_run_id"]')" = base-1 ] || fail "inspect base_run_id"
[ "$(jget "$T/out" '["n_clusters"]')" = 20 ] || fail "inspect n_clusters"
[ "$(jget "$T/out" '["catalog_hash"]')" = 0000000000000abc ] || fail "inspect catalog_hash"
sum=$(jget "$T/out" '["pairs_by_provenance"]["none"]+d["pairs_by_provenance"]["base"]+d["pairs_by_provenance"]["rag"]+d["pairs_by_provenance"]["fallback"]')
[ "$sum" = 400 ] || fail "pairs by provenance sum to $sum, want 400"
expect 0 "$R" inspect "$T/base"
grep -Eq '^  base +400$' "$T/out" || fail "inspect plain counts: $(cat "$T/out")"

# --- validate: valid, flipped byte, truncated, not a table
expect 0 "$R" validate "$T/base"
python3 - "$T/base" "$T/flip" "$T/trunc" <<'PY'
import sys
d = bytearray(open(sys.argv[1], 'rb').read())
f = bytearray(d); f[len(f) // 2] ^= 0x20
open(sys.argv[2], 'wb').write(f)
open(sys.argv[3], 'wb').write(d[:len(d) - 20])
PY
expect 7 "$R" validate --json "$T/flip"
[ "$(jget "$T/out" '["valid"]')" = False ] || fail "flipped byte is invalid"
[ "$(jget "$T/out" '["error"]')" = checksum ] || fail "flipped byte -> checksum: $(cat "$T/out")"
expect 7 "$R" validate "$T/trunc"
grep -q "truncated" "$T/err" || fail "truncation reported: $(cat "$T/err")"
expect 7 "$R" validate --json /etc/hostname
[ "$(jget "$T/out" '["error"]')" = magic ] || fail "not a table -> magic"

# --- export
expect 0 "$R" export "$T/base" "$T/base.tsv"
[ "$(wc -l <"$T/base.tsv")" = 801 ] || fail "tsv: 400 pairs x 2 candidates + header"
head -1 "$T/base.tsv" | grep -q $'^c1\tc2\trank\tnext\tprovenance\tday$' || fail "tsv header"
expect 0 "$R" export --format jsonl "$T/ov"
pred=$(( $("$R" inspect --json "$T/ov" | python3 -c 'import json,sys; d=json.load(sys.stdin)["pairs_by_provenance"]; print(400-d["none"])') ))
[ "$(wc -l <"$T/out")" = "$pred" ] || fail "jsonl lines $(wc -l <"$T/out") != predicted pairs $pred"
python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$T/out" || fail "jsonl parses"
expect 2 "$R" export --format xml "$T/ov"

# --- diff
expect 0 "$R" diff --json "$T/base" "$T/base"
[ "$(jget "$T/out" '["identical_share"]')" = 1.0 ] || fail "a table is identical to itself"
expect 0 "$R" diff --json "$T/base" "$T/ov"
[ "$(jget "$T/out" '["pairs_in_either"]')" = 400 ] || fail "diff pairs_in_either"
expect 3 "$R" diff "$T/base" "$T/other"
grep -q "different catalogs" "$T/err" || fail "diff catalog mismatch message"

# --- merge: overlay wins for rag/fallback, base elsewhere
expect 0 "$R" merge "$T/base" "$T/ov" "$T/merged"
expect 0 "$R" validate "$T/merged"
"$R" export "$T/merged" "$T/merged.tsv"
"$R" export "$T/ov" "$T/ov.tsv"
python3 - "$T/base.tsv" "$T/ov.tsv" "$T/merged.tsv" <<'PY'
import sys
def load(p):
    rows = {}
    for l in list(open(p))[1:]:
        c1, c2, rank, nxt, prov, day = l.split('\t')
        rows.setdefault((c1, c2), []).append((nxt, prov, day.strip()))
    return rows
base, ov, merged = (load(p) for p in sys.argv[1:])
from_ov = 0
for pair in base:
    o = ov.get(pair)
    if o and o[0][1] in ('rag', 'fallback'):
        from_ov += 1
        assert merged[pair] == o, (pair, merged[pair], o)
    else:
        assert merged[pair] == base[pair], (pair, merged[pair], base[pair])
assert from_ov > 0
print("merge ok:", from_ov, "pairs from the overlay")
PY
expect 0 "$R" inspect --json "$T/merged"
[ "$(jget "$T/out" '["base_run_id"]')" = base-1 ] || fail "merged base_run_id"
expect 3 "$R" merge "$T/base" "$T/ov_badrun" "$T/m2"
grep -q 'base-0' "$T/err" || fail "run mismatch message: $(cat "$T/err")"
[ ! -e "$T/m2" ] || fail "a refused merge writes nothing"
expect 3 "$R" merge "$T/base" "$T/other" "$T/m3"
grep -q 'catalogs differ' "$T/err" || fail "catalog mismatch message"
expect 7 "$R" merge "$T/base" "$T/flip" "$T/m4"

# --- rollback: the table moves with its summary and contexts; a rollback
# undoes itself; --to N serves any kept generation; --list shows them.
cp "$T/base" "$T/served.1"; cp "$T/ov" "$T/served"
echo old-summary >"$T/served.summary.json.1"; echo new-summary >"$T/served.summary.json"
echo new-contexts >"$T/served.contexts"   # the previous generation had none
expect 0 "$R" rollback "$T/served"
cmp -s "$T/served" "$T/base" || fail "rollback restores the previous table"
cmp -s "$T/served.1" "$T/ov" || fail "rollback keeps the replaced table as served.1"
[ "$(cat "$T/served.summary.json")" = old-summary ] || fail "rollback restores the previous summary"
[ "$(cat "$T/served.summary.json.1")" = new-summary ] || fail "the replaced summary moves with its table"
[ ! -e "$T/served.contexts" ] || fail "the restored generation had no contexts: none may be served"
[ "$(cat "$T/served.contexts.1")" = new-contexts ] || fail "the replaced contexts move with their table"
grep -q "undoes this" "$T/out" || fail "rollback does not say how to undo it: $(cat "$T/out")"
expect 0 "$R" rollback "$T/served"
cmp -s "$T/served" "$T/ov" || fail "a second rollback rolls forward"
[ "$(cat "$T/served.summary.json")" = new-summary ] && [ "$(cat "$T/served.contexts")" = new-contexts ] ||
  fail "roll-forward restores summary and contexts"
cp "$T/merged" "$T/served.2"
expect 0 "$R" rollback --list "$T/served"
[ "$(grep -c '^[0-9]' "$T/out")" -eq 3 ] || { cat "$T/out"; fail "--list shows 3 generations"; }
expect 0 "$R" rollback "$T/served" --to 2
cmp -s "$T/served" "$T/merged" && cmp -s "$T/served.1" "$T/ov" && cmp -s "$T/served.2" "$T/base" ||
  fail "--to 2 serves generation 2 and moves the others down in order"
expect 2 "$R" rollback "$T/served" --to 0
expect 7 "$R" rollback "$T/served" --to 3
grep -q "served.3" "$T/err" || fail "missing generation not named: $(cat "$T/err")"
cp "$T/flip" "$T/served.1"
expect 7 "$R" rollback "$T/served"
grep -q "invalid" "$T/err" || fail "invalid previous refused"
cmp -s "$T/served" "$T/merged" || fail "a refused rollback changes nothing"
echo "table_cmds: all checks passed"
