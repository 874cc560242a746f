#!/usr/bin/env bash
# The recall gate (gates.min_recall on gates.holdout_days, exit 12) and the coverage gate
# (gates.min_coverage_ratio against the served table, exit 13): each halts before publishing,
# says why with the figures, leaves the served table byte for byte as it was, and the summary
# says halted. A passing recall gate publishes and reports the same hit rate `ragtide eval` gives.
source "$RAGTIDE_SRC/tests/lib/common.sh"
export OMPI_MCA_pml=ob1
make_data 20 300 6 41
write_config 2026-01-02 2026-01-06
printf '[llm]\napi = retrieval\n[output]\nprogress_s = 0\n' >>"$T/job.ini"
mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" 2>"$T/log" || { cat "$T/log"; fail "good run"; }
cp "$T/out/table.rtt" "$T/served.rtt"
cp "$T/out/table.rtt.summary.json" "$T/served.summary.json"
cp "$T/out/table.rtt.contexts" "$T/served.contexts"
python3 -c "
import json; s=json.load(open('$T/out/table.rtt.summary.json'))
assert s['status']=='published' and s['table']['pairs']['retrieval'] > 0 and s['table']['pairs']['rag'] == 0, s['table']
assert s['llm']['model'] is None and s['llm']['template'] is None, s['llm']" || fail "retrieval summary"
"$RT" inspect "$T/out/table.rtt" | grep -qE "retrieval +[1-9]" || fail "inspect: no retrieval provenance"
pass "llm.api = retrieval: pairs labelled retrieval (not rag); the summary names no model or template"
# The files beside the table describe the served table: a halted run leaves
# them byte for byte, and writes its own summary under its run id.
untouched() {
  cmp -s "$T/out/table.rtt" "$T/served.rtt" || fail "$1: the served table was changed"
  cmp -s "$T/out/table.rtt.summary.json" "$T/served.summary.json" || fail "$1: the served table's summary was changed"
  cmp -s "$T/out/table.rtt.contexts" "$T/served.contexts" || fail "$1: the served table's contexts were changed"
  grep -q "run summary: $T/out/table.rtt.run/.*\.summary\.json (nothing published" "$T/err" ||
    fail "$1: the error does not say where the run's summary is"
}
halted() {
  python3 -c "
import json; s=json.load(open('$(last_summary "$T/out/table.rtt")'))
assert s['status']=='halted' and s['exit_code']==$1 and not s['table']['published'], (s['status'], s['exit_code'])"
}

# coverage: a window with no logs (a typo in the dates) would publish an all-none table
expect_exit 13 mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" --set input.window_start=2026-03-01 \
  --set input.window_end=2026-03-05 --force
expect_err "coverage gate: the new table predicts (rag or base) 0 pairs, 0.0% of the"
expect_err "below gates.min_coverage_ratio 50.0%"
untouched "coverage gate"; halted 13; pass "empty window -> coverage gate, exit 13, served table unchanged"
expect_exit 0 mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" --set input.window_start=2026-03-01 \
  --set input.window_end=2026-03-05 --force --set gates.min_coverage_ratio=0 --set "output.table=$T/out/other.rtt"
pass "gates.min_coverage_ratio = 0 (and no served table) -> no coverage gate"

# recall: the last day held out; a floor no table reaches halts, the paper's 1.5% passes
expect_exit 12 mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" --set gates.holdout_days=1 --set gates.min_recall=0.99
expect_err "recall gate: the new table's hit rate at 5 on the held-out days [2026-01-05T00:00:00Z, 2026-01-06T00:00:00Z)"
expect_err "below gates.min_recall 99.00%"
untouched "recall gate"; halted 12; pass "recall below gates.min_recall -> exit 12, served table unchanged"
grep -oE "is [0-9.]+% \([0-9]+ of [0-9]+ positions\)" "$T/err" | head -1 >"$T/gate_fig"
rm -f "$T/out/table.rtt.1" "$T/out/table.rtt.2"
expect_exit 0 mpirun_q -n 3 "$RT" refresh --config "$T/job.ini" --set gates.holdout_days=1 \
  --set "output.table=$T/out/held.rtt"
expect_err "recall gate: hit rate at 5 on the held-out days"
"$RT" inspect --json "$T/out/held.rtt" | grep -q '"window_end":"2026-01-05T00:00:00Z"' || fail "held-out table: window must end 2026-01-05"
# the gate's figure is what `ragtide eval` reports on the same days for the same table
mpirun_q -n 2 "$RT" eval --config "$T/job.ini" --table "$T/out/held.rtt" --from 2026-01-05 --to 2026-01-06 --json \
  --set eval.bootstrap=0 >"$T/e.json" 2>"$T/log" || { cat "$T/log"; fail "eval"; }
hits=$(python3 -c "import json; r=json.load(open('$T/e.json')); print(r['predictors']['table']['horizon_hits'], r['positions'])")
grep -qE "hit rate at 5 on the held-out days .*\(${hits% *} of ${hits#* } positions" "$T/err" \
  || { grep "recall gate" "$T/err"; fail "gate figure != eval figure ($hits)"; }
pass "gates.holdout_days=1 -> published (3 ranks), window ends before the held-out day, recall = eval's ($hits)"
expect_exit 2 mpirun_q -n 1 "$RT" refresh --config "$T/job.ini" --set gates.holdout_days=4
expect_err "gates.holdout_days = 4 leaves nothing of the window for retrieval"
pass "holdout as long as the window -> exit 2"
echo "gates: all checks passed"
