#!/usr/bin/env bash
# Resume after any interruption, paying each LLM call once (issue 10):
#   - kill -9 of mpirun during aggregation, mid-LLM and during publish; kill
#     -9 of one rank mid-LLM; SIGTERM to one rank; SIGUSR1 to mpirun.
#   - after each, rerunning the same command publishes a table byte-identical
#     to an uninterrupted run's, and the endpoint requests of both runs
#     together stay within pairs + ranks x llm.concurrency + retries;
#   - a graceful stop exits 9 with summary status "interrupted" and
#     publishes nothing; the litter of a killed publish is swept;
#   - one run per table (exit 10 naming the holder), never a step back
#     (exit 11 unless --force), input.window_days kept across attempts,
#     output.metrics_file.
# Kill moments are made exact with RAGTIDE_TEST_PAUSE (base/util.h) or by
# watching the simulator's request counter.
source "$RAGTIDE_SRC/tests/lib/common.sh"
export OMPI_MCA_pml=${OMPI_MCA_pml:-ob1}
trap '[[ $- == *e* ]] && echo "FAIL: resume.sh line $LINENO: \"$BASH_COMMAND\" exited $?" >&2' ERR

RANKS=2 CONC=8
make_data 60 2000 6 11
# 3,525 pairs, 2 ranks x 8 in flight, 40 ms an answer: an LLM stage of ~9 s
# to interrupt at a known share.
start_sim sim "$T/data/catalog.tsv" --seed 5 --latency-ms 40
write_config
cat >>"$T/job.ini" <<INI
progress_s = 1
metrics_file = $T/out/ragtide.prom
[llm]
concurrency = $CONC
INI
# (a repeated key is applied in order: this concurrency replaces write_config's)

# (grep, not python: polled every 50 ms while a run goes, it must be cheap)
requests() { curl -sf "$SIM_URL/stats" | grep -o '"requests":[0-9]*' | head -1 | cut -d: -f2; }
summary() { python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
refresh() { mpirun_q -n $RANKS "$RT" refresh --config "$T/job.ini" "$@"; }
# In the background, with $! = mpirun itself (not a subshell): refresh_bg LOG [args]
refresh_bg() { local log=$1; shift; mpirun --oversubscribe -n $RANKS "$RT" refresh --config "$T/job.ini" "$@" 2>"$log" & }

# Reference: an uninterrupted run in its own directory.
r0=$(requests)
mkdir -p "$T/ref"
mpirun_q -n $RANKS "$RT" refresh --config "$T/job.ini" --set output.table="$T/ref/table.rtt" \
  --set output.metrics_file= 2>"$T/ref.log" || { cat "$T/ref.log"; fail "reference run"; }
PAIRS=$(( $(requests) - r0 ))
[ "$PAIRS" -gt 1000 ] || fail "reference run made only $PAIRS requests"
[ "$(summary "$(last_summary "$T/ref/table.rtt")" 's["stages"]["infer"]["calls"]')" -eq "$PAIRS" ] ||
  fail "reference: calls != requests (retries in a fault-free run?)"
pass "reference run: $PAIRS pairs, $PAIRS requests"
# progress_s = 1 on a ~9 s LLM stage: lines during the stage, with the rate,
# the counters and the time left.
n=$(grep -c "llm: [0-9.]*% ([0-9]* of $PAIRS pairs), [0-9.]*/s, [0-9]* requests, [0-9]* retries, [0-9]* 429s, [0-9]* failed, about [0-9]* s left" "$T/ref.log" || true)
[ "$n" -ge 3 ] || { cat "$T/ref.log"; fail "expected >= 3 progress lines of the LLM stage, got $n"; }
pass "$n progress lines during the LLM stage"
BOUND_SLACK=$((RANKS * CONC))

# --dry-run: counts what the LLM stage would send and what the journal
# answers, prices it, sends nothing and writes nothing.
b0=$(requests)
ls -la "$T/ref" >"$T/ref.before"
mpirun_q -n $RANKS "$RT" refresh --config "$T/job.ini" --set output.table="$T/ref/table.rtt" --dry-run \
  --set llm.price_in_per_mtok=0.15 --set llm.price_out_per_mtok=0.6 >"$T/dry.out" 2>"$T/dry.log" ||
  { cat "$T/dry.log"; fail "dry run"; }
grep -q "answered by the journal    $PAIRS " "$T/dry.out" || { cat "$T/dry.out"; fail "dry run: journal count"; }
grep -q "would be asked             0 pairs" "$T/dry.out" || { cat "$T/dry.out"; fail "dry run: would ask"; }
mpirun_q -n $RANKS "$RT" refresh --config "$T/job.ini" --set output.table="$T/dry/none/table.rtt" --dry-run \
  --set llm.price_in_per_mtok=0.15 --set llm.price_out_per_mtok=0.6 >"$T/dry.out" 2>"$T/dry.log" ||
  { cat "$T/dry.log"; fail "dry run of a new table"; }
grep -q "would be asked             $PAIRS pairs, $PAIRS requests" "$T/dry.out" || { cat "$T/dry.out"; fail "dry run: new table"; }
grep -q 'estimated cost             \$0\.[0-9][0-9] (at most' "$T/dry.out" || { cat "$T/dry.out"; fail "dry run: no cost"; }
[ "$(requests)" -eq "$b0" ] || fail "a dry run sent requests"
[ -e "$T/dry" ] && fail "a dry run created files"
ls -la "$T/ref" | diff - "$T/ref.before" >/dev/null || fail "a dry run touched the table's directory"
pass "--dry-run: journal hits, calls, tokens and cost; nothing sent or written"

wait_file() { for _ in $(seq 300); do [ -e "$1" ] && return 0; sleep 0.05; done; fail "timed out waiting for $1"; }
wait_requests() { # wait until the sim has answered $1 more requests than $2
  for _ in $(seq 600); do [ $(( $(requests) - $2 )) -ge "$1" ] && return 0; sleep 0.05; done
  fail "timed out waiting for $1 requests"
}
fresh_out() { rm -rf "$T/out"; mkdir -p "$T/out"; }
# kill9 PID [VICTIM]: kill -9 VICTIM (default: mpirun PID itself), then wait
# for mpirun and every rank it started to be gone (Open MPI takes a moment to
# bring down ranks whose mpirun died).
kill9() {
  local mp=$1 victim=${2:-$1} ranks
  ranks=$(pgrep -P "$mp" || true)
  kill -9 "$victim" || fail "kill -9 $victim: the run ended before it could be killed"
  wait "$mp" 2>/dev/null || true
  for _ in $(seq 200); do
    local alive=0
    for p in $ranks; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && return 0
    sleep 0.05
  done
  fail "ranks $ranks still alive 10 s after kill -9 $victim"
}

# check_resumed NAME R_BEFORE: rerun to completion, then check the table and
# the request bound over both runs (retries from both summaries).
check_resumed() {
  local name=$1 before=$2 retries_first=${3:-0}
  refresh 2>"$T/rerun.log" || { cat "$T/rerun.log"; fail "$name: rerun failed"; }
  cmp -s "$T/out/table.rtt" "$T/ref/table.rtt" || fail "$name: resumed table differs from the uninterrupted run's"
  local used=$(( $(requests) - before ))
  local retries=$(( retries_first + $(summary "$(last_summary "$T/out/table.rtt")" 's["stages"]["infer"]["retries"]') ))
  local bound=$(( PAIRS + BOUND_SLACK + retries ))
  [ "$used" -le "$bound" ] || fail "$name: $used requests over both runs > bound $bound"
  [ "$(summary "$(last_summary "$T/out/table.rtt")" 's["status"]')" = published ] || fail "$name: rerun not published"
  for f in "$T"/out/table.rtt.lock "$T"/out/table.rtt.resume "$T"/out/table.rtt.answers.part-*; do
    [ -e "$f" ] && fail "$name: $f left behind"
  done
  ls "$T/out" | grep -E '\.(new|tmp)\.[0-9]+' && fail "$name: temp files left behind"
  local second; second=$(summary "$(last_summary "$T/out/table.rtt")" 's["stages"]["infer"]["requests"]')
  echo "REPEATED $name: $((used - second)) requests before the interruption + $second after = $used for $PAIRS pairs (bound $bound: pairs + $BOUND_SLACK in flight + $retries retries)"
  pass "$name: resumed to the identical table"
}

# 1. kill -9 mpirun during aggregation (rank 0 paused after reading).
fresh_out; b=$(requests)
RAGTIDE_TEST_PAUSE=aggregate RAGTIDE_TEST_PAUSE_FILE="$T/paused" refresh_bg "$T/run.log"
mp=$!; wait_file "$T/paused"; rm -f "$T/paused"
kill9 $mp
[ -e "$T/out/table.rtt" ] && fail "aggregation kill: a table was published"
[ -e "$T/out/table.rtt.lock" ] || fail "aggregation kill: expected the dead run's lock to be left (to test take-over)"
check_resumed "kill -9 mpirun during aggregation" "$b"
grep -q "took over the lock" "$T/rerun.log" || { cat "$T/rerun.log"; fail "the dead run's lock was not reported taken over"; }
pass "a dead run's lock is taken over, and the log says so"

# 2. kill -9 mpirun mid-LLM.
fresh_out; b=$(requests)
refresh_bg "$T/run.log"
mp=$!; wait_requests $((PAIRS / 4)) "$b"
kill9 $mp
check_resumed "kill -9 mpirun mid-LLM" "$b"

# 3. kill -9 of one rank mid-LLM.
fresh_out; b=$(requests)
refresh_bg "$T/run.log"
mp=$!; wait_requests $((PAIRS / 3)) "$b"
victim=$(pgrep -P "$mp" -f "ragtide refresh" | tail -1)
[ -n "$victim" ] || fail "no rank process found under mpirun $mp"
kill9 $mp "$victim"
check_resumed "kill -9 of one rank mid-LLM" "$b"

# 4. kill -9 during publish (new table written and backups rotated, not
#    renamed): the served table must be the previous one, and the litter goes.
fresh_out; b=$(requests)
refresh --set output.created_at=2026-01-05 --set input.window_end=2026-01-05 2>"$T/old.log" ||
  { cat "$T/old.log"; fail "older-window run"; }
cp "$T/out/table.rtt" "$T/old.rtt"
b=$(requests)
RAGTIDE_TEST_PAUSE=publish RAGTIDE_TEST_PAUSE_FILE="$T/paused" refresh_bg "$T/run.log"
mp=$!; wait_file "$T/paused"; rm -f "$T/paused"
kill9 $mp
cmp -s "$T/out/table.rtt" "$T/old.rtt" || fail "publish kill: the served table changed"
ls "$T/out" | grep -qE '\.new\.[0-9]+' || fail "publish kill: expected a temp table to test the sweep"
check_resumed "kill -9 during publish" "$b"
grep -q "left by a run that died" "$T/rerun.log" || fail "publish kill: litter not reported removed"
[ "$(ls "$T/out" | grep -cE '^table\.rtt\.[0-9]+$')" -eq 1 ] || { ls "$T/out"; fail "publish kill: backups duplicated"; }
cmp -s "$T/out/table.rtt.1" "$T/old.rtt" || fail "publish kill: table.rtt.1 is not the previous table"
pass "publish kill: served table untouched, litter swept, one backup"

# 4b. kill -9 after the table's rename, before its side files' (summary,
#     contexts): the next run completes that publish, so the summary beside
#     each generation describes that generation.
fresh_out
refresh --set output.created_at=2026-01-05 --set input.window_end=2026-01-05 2>"$T/old.log" ||
  { cat "$T/old.log"; fail "older-window run"; }
b=$(requests)
RAGTIDE_TEST_PAUSE=publish-sides RAGTIDE_TEST_PAUSE_FILE="$T/paused" refresh_bg "$T/run.log"
mp=$!; wait_file "$T/paused"; rm -f "$T/paused"
kill9 $mp
cmp -s "$T/out/table.rtt" "$T/ref/table.rtt" || fail "sides kill: the new table should be served already"
staged=$(ls "$T"/out/table.rtt.summary.json.new.* 2>/dev/null | head -1)
[ -n "$staged" ] && [ -n "$(ls "$T"/out/table.rtt.contexts.new.* 2>/dev/null)" ] ||
  { ls "$T/out"; fail "sides kill: no staged summary and contexts"; }
cp "$staged" "$T/staged.summary.json"
cmp -s "$T/out/table.rtt.summary.json" "$staged" && fail "sides kill: premise: the summary was already renamed"
check_resumed "kill -9 between the table's rename and its side files'" "$b"
grep -q "completed the publish of a run that died" "$T/rerun.log" || { cat "$T/rerun.log"; fail "sides kill: not completed"; }
cmp -s "$T/out/table.rtt.summary.json.1" "$T/staged.summary.json" ||
  fail "sides kill: table.rtt.summary.json.1 is not the killed run's summary"
cmp -s "$T/out/table.rtt.1" "$T/ref/table.rtt" || fail "sides kill: table.rtt.1 is not the killed run's table"
[ "$(summary "$T/out/table.rtt.summary.json.2" 's["window"]["end"][:10]')" = 2026-01-05 ] ||
  fail "sides kill: generation 2's summary is not the older run's"
pass "kill after the table's rename: the next run put the staged summary and contexts in place"

# 5. SIGTERM to one rank mid-LLM: graceful stop, exit 9, nothing published.
fresh_out; b=$(requests)
refresh_bg "$T/run.log"
mp=$!; wait_requests $((PAIRS / 4)) "$b"
kill -TERM "$(pgrep -P "$mp" -f "ragtide refresh" | tail -1)"
set +e; wait $mp; code=$?; set -e
[ "$code" -eq 9 ] || { cat "$T/run.log"; fail "SIGTERM to a rank: exit $code, expected 9"; }
[ -e "$T/out/table.rtt" ] && fail "SIGTERM: a table was published"
[ "$(summary "$(last_summary "$T/out/table.rtt")" 's["status"], s["exit_code"]')" = "('interrupted', 9)" ] ||
  fail "SIGTERM: summary $(summary "$(last_summary "$T/out/table.rtt")" 's["status"], s["exit_code"]')"
[ -e "$T/out/table.rtt.resume" ] || fail "SIGTERM: no resume state kept"
grep -q 'ragtide_last_run_status{table="[^"]*",status="interrupted"} 1' "$T/out/ragtide.prom" ||
  { cat "$T/out/ragtide.prom"; fail "metrics file lacks the interrupted status"; }
r1=$(summary "$(last_summary "$T/out/table.rtt")" 's["stages"]["infer"]["retries"]')
check_resumed "SIGTERM to one rank" "$b" "$r1"
grep -q 'ragtide_last_run_attempt{table="[^"]*"} 2' "$T/out/ragtide.prom" || fail "metrics: attempt 2 expected"
grep -q 'ragtide_last_run_status{table="[^"]*",status="published"} 1' "$T/out/ragtide.prom" ||
  fail "metrics: published expected"
grep -q 'ragtide_last_publish_timestamp_seconds{table="[^"]*"} [1-9]' "$T/out/ragtide.prom" ||
  fail "metrics: no last publish time"

# 6. SIGUSR1 to mpirun (what the Slurm scripts forward): exit 9 from mpirun.
fresh_out; b=$(requests)
refresh_bg "$T/run.log"
mp=$!; wait_requests $((PAIRS / 4)) "$b"
kill -USR1 $mp
set +e; wait $mp; code=$?; set -e
[ "$code" -eq 9 ] || { cat "$T/run.log"; fail "SIGUSR1 to mpirun: exit $code, expected 9"; }
[ "$(summary "$(last_summary "$T/out/table.rtt")" 's["stopped_by"]')" = SIGUSR1 ] || fail "stopped_by should be SIGUSR1"
check_resumed "SIGUSR1 to mpirun" "$b" "$(summary "$(last_summary "$T/out/table.rtt")" 's["stages"]["infer"]["retries"]')"

# 7. One run per table: a second run exits 10 naming the holder and leaves
#    the first run's files alone.
fresh_out
RAGTIDE_TEST_PAUSE=aggregate RAGTIDE_TEST_PAUSE_FILE="$T/paused" refresh_bg "$T/run.log"
mp=$!; wait_file "$T/paused"; rm -f "$T/paused"
cp "$T/out/table.rtt.resume" "$T/resume.before"
expect_exit 10 mpirun_q -n 1 "$RT" refresh --config "$T/job.ini"
expect_err "another run holds $T/out/table.rtt.lock: host $(hostname)"
expect_err "run 20260106T000000Z-"
cmp -s "$T/out/table.rtt.resume" "$T/resume.before" || fail "the locked-out run touched the holder's state"
expect_exit 10 "$RT" rollback "$T/out/table.rtt"
expect_err "another run holds $T/out/table.rtt.lock"
[ -e "$T/out/table.rtt.summary.json" ] && fail "the locked-out run wrote a summary beside the table"
kill9 $mp
pass "second run on a locked table: exit 10, holder named, nothing touched"

# 8. Never a step back: an older window does not replace a newer table.
fresh_out
refresh 2>"$T/run.log" || { cat "$T/run.log"; fail "newer run"; }
cp "$T/out/table.rtt" "$T/new.rtt"
expect_exit 11 mpirun_q -n $RANKS "$RT" refresh --config "$T/job.ini" --set input.window_end=2026-01-05 \
  --set output.created_at=2026-01-05
expect_err "ending 2026-01-06T00:00:00Z, later than this run's 2026-01-05T00:00:00Z"
cmp -s "$T/out/table.rtt" "$T/new.rtt" || fail "stale run replaced the table"
[ "$(summary "$(last_summary "$T/out/table.rtt")" 's["status"]')" = stale ] || fail "stale status"
mpirun_q -n $RANKS "$RT" refresh --config "$T/job.ini" --set input.window_end=2026-01-05 \
  --set output.created_at=2026-01-05 --force 2>"$T/run.log" || { cat "$T/run.log"; fail "--force"; }
[ "$(python3 -c 'import sys; print(open(sys.argv[1],"rb").read()==open(sys.argv[2],"rb").read())' \
  "$T/out/table.rtt" "$T/new.rtt")" = False ] || fail "--force did not publish"
pass "older window: exit 11 and table kept; --force publishes"

# 9. input.window_days: the window ends at the last UTC midnight (minus the
#    lag) and a resumed attempt keeps its first attempt's window.
today=$(date -u +%F)
"$GEN" --clusters 30 --users 300 --days 6 --seed 3 --start "$(date -u -d "$today -6 days" +%F)" \
  --out "$T/recent" >/dev/null
start_sim recent "$T/recent/catalog.tsv" --seed 5
cat >"$T/days.ini" <<INI
[input]
catalog = $T/recent/catalog.tsv
logs = $T/recent/logs/*/*.msgpack.zst
window_days = 3
window_lag_h = 24
[prompt]
template = $RAGTIDE_SRC/jobs/prompts/rag.tmpl
[llm]
base_url = $SIM_URL
[output]
table = $T/days/table.rtt
INI
mkdir -p "$T/days"
mpirun_q -n 1 "$RT" refresh --config "$T/days.ini" 2>"$T/run.log" || { cat "$T/run.log"; fail "window_days run"; }
want_end="$(date -u -d "$today -1 day" +%F)T00:00:00Z"
want_start="$(date -u -d "$today -4 days" +%F)T00:00:00Z"
got=$(summary "$(last_summary "$T/days/table.rtt")" 's["window"]["start"] + " " + s["window"]["end"]')
[ "$got" = "$want_start $want_end" ] || fail "window_days=3, lag 24 h: window $got, expected $want_start $want_end"
# An interrupted first attempt two days ago: the rerun keeps its window.
old_end=$(date -u -d "$today -3 days" +%s); old_start=$((old_end - 3 * 86400))
RAGTIDE_TEST_PAUSE=aggregate RAGTIDE_TEST_PAUSE_FILE="$T/paused" mpirun --oversubscribe -n 1 "$RT" refresh \
  --config "$T/days.ini" 2>"$T/run.log" &
mp=$!; wait_file "$T/paused"; rm -f "$T/paused"; kill9 $mp
sed -i -e "s/^window_start=.*/window_start=$old_start/" -e "s/^window_end=.*/window_end=$old_end/" \
  "$T/days/table.rtt.resume"
mpirun_q -n 1 "$RT" refresh --config "$T/days.ini" --force 2>"$T/run.log" || { cat "$T/run.log"; fail "resumed window_days run"; }
grep -q "resuming run .*attempt 2" "$T/run.log" || { cat "$T/run.log"; fail "no resume line"; }
got=$(summary "$(last_summary "$T/days/table.rtt")" 's["window"]["end"] + " " + str(s["attempt"])')
[ "$got" = "$(date -u -d "@$old_end" +%FT%TZ) 2" ] || fail "resumed attempt: window end/attempt $got"
[ -e "$T/days/table.rtt.resume" ] && fail "resume state left after a finished run"
pass "window_days: last midnight minus the lag; a resumed attempt keeps the first attempt's window"

# 10. Answers that named no cluster are not reused: after a gate halt, a
#     rerun against a fixed endpoint asks exactly those pairs again.
start_sim bad "$T/data/catalog.tsv" --seed 5 --off-catalog 0.5
bad_url=$SIM_URL
start_sim good "$T/data/catalog.tsv" --seed 5
good_url=$SIM_URL
rm -rf "$T/gate"; mkdir -p "$T/gate"
expect_exit 5 mpirun_q -n $RANKS "$RT" refresh --config "$T/job.ini" --set "llm.base_url=$bad_url" \
  --set "output.table=$T/gate/t.rtt" --set output.metrics_file=
unmatched=$(summary "$(last_summary "$T/gate/t.rtt")" 's["stages"]["match"]["unmatched"]')
[ "$unmatched" -gt 100 ] || fail "expected many unmatched answers, got $unmatched"
[ -e "$T/gate/t.rtt" ] && fail "a halted run published"
forgotten=$("$RT" journal dump "$T/gate/t.rtt.answers" | grep -c '"answer":null' || true)
[ "$forgotten" -eq "$unmatched" ] || fail "journal dump: $forgotten forgotten answers, expected $unmatched"
[ -e "$T/gate/t.rtt.contexts" ] && fail "a halted run wrote the contexts beside the (absent) served table"
before=$(SIM_URL=$good_url requests)
mpirun_q -n $RANKS "$RT" refresh --config "$T/job.ini" --set "llm.base_url=$good_url" \
  --set "output.table=$T/gate/t.rtt" --set output.metrics_file= 2>"$T/run.log" || { cat "$T/run.log"; fail "rerun after the halt"; }
asked=$(( $(SIM_URL=$good_url requests) - before ))
[ "$asked" -eq "$unmatched" ] || fail "rerun asked $asked pairs again, expected the $unmatched unmatched ones"
[ "$(summary "$(last_summary "$T/gate/t.rtt")" 's["quality"]["exact_match_rate"]')" = 1.0 ] || fail "rerun not all exact"
pass "after a gate halt, only the $unmatched unmatched answers are asked again"
