#!/usr/bin/env bash
# gen_logs.sh — ragtide-gen-logs output feeds the aggregation oracle: the same
# seed in tsv and tsv.zst gives the same counts, the favoured successors show
# up as top successors, preferences drift between weeks, and an unknown
# cluster makes the oracle exit 3.
set -euo pipefail
BUILD=${RAGTIDE_BUILD:?set RAGTIDE_BUILD to the build directory}
SRC=${RAGTIDE_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
GEN=$BUILD/ragtide-gen-logs
ORACLE="python3 $SRC/tests/oracle/aggregate_oracle.py"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "gen_logs.sh: FAIL: $*" >&2; exit 1; }

flags="--clusters 20 --users 1500 --days 14 --seed 11 --shards-per-day 3"
"$GEN" $flags --out "$tmp/a" --format tsv 2>/dev/null
"$GEN" $flags --out "$tmp/b" --format tsv.zst 2>/dev/null
cmp -s "$tmp/a/catalog.tsv" "$tmp/b/catalog.tsv" || fail "catalog depends on --format"
[[ $(ls "$tmp/a/logs" | wc -l) == 14 ]] || fail "expected 14 day directories"
[[ $(ls "$tmp/a/logs/2026-01-14" | tr '\n' ' ') == "part-0000.tsv part-0001.tsv part-0002.tsv " ]] ||
  fail "unexpected shard names: $(ls "$tmp/a/logs/2026-01-14")"

win="--window-start 2026-01-01 --window-end 2026-01-08"
$ORACLE --catalog "$tmp/a/catalog.tsv" "$tmp/a/logs/*/*.tsv" $win --out counts > "$tmp/ca"
$ORACLE --catalog "$tmp/b/catalog.tsv" "$tmp/b/logs/*/*.tsv.zst" $win --out counts > "$tmp/cb"
[[ -s $tmp/ca ]] || fail "no triples counted"
cmp -s "$tmp/ca" "$tmp/cb" || fail "tsv and tsv.zst shards give different counts"
# only days of the window appear
awk -F'\t' '$4 < "2026-01-01" || $4 > "2026-01-07" { bad = 1 } END { exit bad }' "$tmp/ca" ||
  fail "a triple dated outside the window"

# Favoured successors: the top-1 successor clearly beats the 4th on average.
$ORACLE --catalog "$tmp/a/catalog.tsv" "$tmp/a/logs/*/*.tsv" $win --out top --top-n 4 > "$tmp/top"
awk -F'\t' '{ s[$3] += $5; n[$3]++ }
  END { r = (s[1] / n[1]) / (s[4] / n[4]); printf "top1/top4 mean count ratio %.2f over %d pairs\n", r, n[1];
        exit !(n[1] >= 300 && r > 1.4) }' "$tmp/top" || fail "no favoured-successor structure"

# Drift: many pairs change their top successor from week 1 to week 2.
$ORACLE --catalog "$tmp/a/catalog.tsv" "$tmp/a/logs/*/*.tsv" --window-start 2026-01-08 \
  --window-end 2026-01-15 --out top > "$tmp/top2"
changed=$(join <(awk -F'\t' '$3 == 1 { print $1 "_" $2, $4 }' "$tmp/top" | sort) \
               <(awk -F'\t' '{ print $1 "_" $2, $4 }' "$tmp/top2" | sort) | awk '$2 != $3' | wc -l)
echo "pairs whose top successor changed between weeks: $changed"
(( changed > 100 )) || fail "preferences do not drift"
$ORACLE --catalog "$tmp/a/catalog.tsv" "$tmp/a/logs/*/*.tsv" --window-start 2026-01-08 \
  --window-end 2026-01-15 --out trend > "$tmp/trend"
[[ -s $tmp/trend ]] || fail "no trend output"

# An event with a cluster missing from the catalog: the oracle exits 3.
printf '1\t1767225600\t12345\t0.9\n' > "$tmp/bad.tsv"
set +e
$ORACLE --catalog "$tmp/a/catalog.tsv" "$tmp/bad.tsv" $win > /dev/null 2> "$tmp/err"
rc=$?
set -e
[[ $rc == 3 ]] || fail "unknown cluster: exit $rc, want 3"
grep -q "cluster 12345 is not in the catalog" "$tmp/err" || fail "unknown cluster: $(cat "$tmp/err")"
echo "gen_logs.sh: ok"
