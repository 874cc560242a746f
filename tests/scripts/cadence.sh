#!/usr/bin/env bash
# tools/experiments/cadence.sh on generated logs whose successor preferences drift weekly
# (docs/formats.md §2.1): the table refreshed every step must beat the one fixed before the
# start, pooled over the steps; a delta equal to the step is the refreshed table exactly; the
# CSV, drift files, report and (with gnuplot) plots are written.
source "$RAGTIDE_SRC/tests/lib/common.sh"
"$GEN" --clusters 20 --users 300 --days 29 --seed 7 --start 2026-01-01 --out "$T/data" >/dev/null 2>&1
RAGTIDE_BUILD="$RAGTIDE_BUILD" "$RAGTIDE_SRC/tools/experiments/cadence.sh" "$T/data" 2026-01-15 7 2 "$T/out" \
  --window 7 --delta 7 >"$T/report" 2>"$T/log" || { cat "$T/log"; fail "cadence"; }
python3 - "$T/out/cadence.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 2 * 6, len(rows)
def pooled(v):
    r = [x for x in rows if x["variant"] == v]
    return sum(float(x["hit"]) * int(x["positions"]) for x in r) / sum(int(x["positions"]) for x in r)
f, r = pooled("fixed"), pooled("refreshed")
print("pooled hit@5: fixed %.4f refreshed %.4f" % (f, r))
assert r > f, (r, f)
for x, y in zip([x for x in rows if x["variant"] == "delta"], [x for x in rows if x["variant"] == "refreshed"]):
    assert (x["positions"], x["hit"]) == (y["positions"], y["hit"]), (x, y)
for x in rows:
    assert int(x["positions"]) > 1000 and 0 < float(x["hit"]) < 1, x
PY
for f in report.md drift.json overlap.json; do [ -s "$T/out/$f" ] || fail "no $f"; done
grep -q "Refreshed beats fixed in" "$T/out/report.md" || fail "report"
if command -v gnuplot >/dev/null; then
  for f in hit.svg hit.png overlap.svg overlap.png; do [ -s "$T/out/$f" ] || fail "no $f"; done
else
  echo "note: gnuplot not installed, plots not checked (tools/setup-deps.sh installs gnuplot-nox)"
fi
pass "cadence: refreshed beats fixed on drifting data; delta = step equals refreshed; files written"
