#!/usr/bin/env bash
# `ragtide eval` on hand-computed sequences (docs/eval.md): every tally of the table and of the
# three baselines, the horizon edge (a hit exactly H clusters ahead; the horizon cut at the end of
# a sequence), a popularity tie, a prediction already seen (not novel), a user with one event
# (no position); the same report for 1 and 3 ranks (and 2 threads).
source "$RAGTIDE_SRC/tests/lib/common.sh"
export OMPI_MCA_pml=ob1
mkdir -p "$T/logs" "$T/out"
printf '1\talpha\n2\tbeta\n3\tgamma\n4\tdelta\n5\tepsilon\n' >"$T/catalog.tsv"
python3 - "$T/logs" <<'PY'
import calendar, sys
out = sys.argv[1]
def day(s): return calendar.timegm(tuple(map(int, s.split("-"))) + (0, 0, 0))
seqs = [  # (user, first day, clusters): one event a minute
    (1, "2024-01-10", [1, 2, 3]), (2, "2024-01-11", [1, 2, 4]), (3, "2024-01-12", [1, 2, 4]),  # history
    (4, "2024-02-10", [1, 2, 3]), (5, "2024-02-11", [2, 3, 5]),                             # table window
    (10, "2024-03-10", [1, 2, 3, 5, 4]), (11, "2024-03-10", [1]), (12, "2024-03-11", [1, 2, 4]),  # held out
    (13, "2024-03-12", [1, 2, 5, 3]), (14, "2024-03-13", [3, 1, 2, 5]),
    (10, "2025-06-01", [4, 3, 2, 1]),                           # outside every window: counted, skipped
]
lines = {}
for user, d, cl in seqs:
    for k, c in enumerate(cl):
        lines.setdefault(d[:7], []).append("%d\t%d\t%d\t1\n" % (user, day(d) + 60 * k, c))
for month, ls in lines.items():
    open("%s/%s.tsv" % (out, month), "w").writelines(ls)
PY
cat >"$T/job.ini" <<INI
[input]
catalog = $T/catalog.tsv
logs = $T/logs/*.tsv
window_start = 2024-02-01
window_end = 2024-03-01
[llm]
api = retrieval
[eval]
horizon = 2
[output]
table = $T/out/t.rtt
created_at = 2024-03-01
progress_s = 0
INI
mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" 2>"$T/log" || { cat "$T/log"; fail "refresh"; }
mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" --set input.window_start=2024-01-01 \
  --set input.window_end=2024-02-01 --set "output.table=$T/out/prev.rtt" 2>"$T/log" || { cat "$T/log"; fail "refresh prev"; }
"$RT" lookup --json "$T/out/t.rtt" 1 2 | grep -q '"next":3' || fail "table: (1,2) -> 3"
"$RT" lookup --json "$T/out/prev.rtt" 1 2 | grep -q '"next":4' || fail "previous: (1,2) -> 4"

ev() { mpirun_q -n "$1" "$RT" eval --config "$T/job.ini" --table "$T/out/t.rtt" --previous "$T/out/prev.rtt" \
  --from 2024-03-01 --to 2024-04-01 "${@:2}"; }
ev 1 --json >"$T/e1.json" 2>"$T/log" || { cat "$T/log"; fail "eval, 1 rank"; }
python3 - "$T/e1.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert (r["users"], r["positions"], r["horizon"], r["events_kept"]) == (4, 8, 2, 17), r
# (covered, next-1, hit@2, novel), worked out by hand in docs/eval.md's example
want = {"table": (5, 2, 3, 4), "popular": (8, 3, 5, 7), "history": (4, 1, 1, 4), "previous": (4, 1, 1, 4)}
for p, w in want.items():
    x = r["predictors"][p]
    got = (x["covered"], x["next1_hits"], x["horizon_hits"], x["novel"])
    assert got == w, (p, got, w)
    assert abs(x["next1"]["value"] - w[1] / 8) < 1e-9 and abs(x["hit_rate"]["value"] - w[2] / 8) < 1e-9, p
    assert abs(x["coverage"]["value"] - w[0] / 8) < 1e-9 and abs(x["novelty"]["value"] - w[3] / w[0]) < 1e-9, p
    assert x["next1"]["lo"] <= x["next1"]["value"] <= x["next1"]["hi"], p
d = r["predictors"]["popular"]["minus_table"]
assert abs(d["next1"]["value"] - 1 / 8) < 1e-9 and abs(d["hit_rate"]["value"] - 2 / 8) < 1e-9, d
pv = r["table_by_provenance"]
assert (pv["retrieval"]["positions"], pv["none"]["positions"], pv["base"]["positions"]) == (5, 3, 0), pv
assert abs(pv["retrieval"]["next1"]["value"] - 2 / 5) < 1e-9 and abs(pv["retrieval"]["hit_rate"]["value"] - 3 / 5) < 1e-9, pv
assert pv["none"]["next1"]["value"] == 0 and pv["base"]["next1"] is None, pv
PY
pass "tallies of the table and the baselines equal the hand-computed ones"
ev 3 --json --set job.threads=2 >"$T/e3.json" 2>"$T/log" || { cat "$T/log"; fail "eval, 3 ranks"; }
cmp "$T/e1.json" "$T/e3.json" || { diff "$T/e1.json" "$T/e3.json" | head; fail "1 vs 3 ranks differ"; }
pass "the same report (intervals included) for 1 rank and for 3 ranks x 2 threads"
ev 2 >"$T/text" 2>"$T/log" || { cat "$T/log"; fail "eval text"; }
grep -qE "^popular .*\+12\.50% " "$T/text" || { cat "$T/text"; fail "text: popular minus table next-1"; }
expect_exit 2 mpirun_q -n 1 "$RT" eval --config "$T/job.ini" --table "$T/out/t.rtt" --from 2024-03-01
expect_err "--table T, --from D1 and --to D2 are required"
expect_exit 7 mpirun_q -n 1 "$RT" eval --config "$T/job.ini" --table "$T/nope.rtt" --from 2024-03-01 --to 2024-04-01
expect_err "cannot open table $T/nope.rtt"
pass "text report; usage -> exit 2; missing table -> exit 7"
echo "eval: all checks passed"
