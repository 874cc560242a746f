#!/usr/bin/env bash
# Batch mode (llm.api = openai-batch | gemini-batch) against ragtide-llm-sim's
# batch endpoints: both providers publish tables byte-identical to the
# synchronous runs (Gemini with inline requests and with an input file
# uploaded through the Files API); batches split at the limits (the sim rejects larger
# ones); partial failures retried through the synchronous endpoint and in
# follow-up batches; expiry; kill -9 of mpirun while polling, then a rerun
# that submits 0 batches (the sim counts them); llm.batch_deadline -> exit 9
# and resume; `ragtide batches` and --cancel.
source "$RAGTIDE_SRC/tests/lib/common.sh"
export OMPI_MCA_pml=ob1
RANKS=2

make_data 20 300 6 11
CAT="$T/data/catalog.tsv"
start_sim fast "$CAT" --batch-delay-ms 300;                       FAST=$SIM_URL
start_sim files "$CAT" --batch-delay-ms 300;                      FILES=$SIM_URL
start_sim limit "$CAT" --batch-delay-ms 300 --batch-max-requests 50 --batch-max-bytes 50000; LIMIT=$SIM_URL
start_sim flaky "$CAT" --batch-delay-ms 250 --batch-fail 0.2 --batch-get-fail 2; FLAKY=$SIM_URL
start_sim expire "$CAT" --batch-delay-ms 1200 --batch-expire-ms 300; EXPIRE=$SIM_URL
start_sim slow "$CAT" --batch-delay-ms 3000;                      SLOW=$SIM_URL
start_sim slowfile "$CAT" --batch-delay-ms 3000;                  SLOWFILE=$SIM_URL
start_sim foreign "$CAT" --upload-origin http://127.0.0.2:9;      FOREIGN=$SIM_URL # a proxy pointing elsewhere
start_sim glacial "$CAT" --batch-delay-ms 86400000;               GLACIAL=$SIM_URL # ends only by --cancel
SIM_URL=$FAST write_config
cat >>"$T/job.ini" <<INI
[llm]
batch_poll_s = 0.1
batch_poll_max_s = 0.4
INI
sed -i 's/^\[output\]/[output]\nprogress_s = 0/' "$T/job.ini"

# refresh NAME API URL [--set ...]: a run into $T/out/NAME.rtt (its own journal)
refresh() {
  local name=$1 api=$2 url=$3; shift 3
  mpirun_q -n $RANKS "$RT" refresh --config "$T/job.ini" --set output.table="$T/out/$name.rtt" \
    --set llm.api="$api" --set llm.base_url="$url" "$@"
}
summ() { python3 -c "import json,sys; s=json.load(open('$T/out/$1.rtt.summary.json')); print($2)"; }
stat_of() { curl -s "$1/stats" | python3 -c "import json,sys; s=json.load(sys.stdin); print($2)"; }
same() { cmp -s "$T/out/$1.rtt" "$T/out/$2.rtt" || fail "$1: table differs from $2"; }

# References: the synchronous runs.
refresh sync-openai openai "$FAST" 2>"$T/log" || { cat "$T/log"; fail "sync openai run"; }
refresh sync-gemini gemini "$FAST" 2>"$T/log" || { cat "$T/log"; fail "sync gemini run"; }
PAIRS=$(summ sync-openai 's["stages"]["infer"]["calls"]')
[ "$PAIRS" -gt 200 ] || fail "only $PAIRS pairs"
SYNC_CHAT=$(stat_of "$FAST" 's["by_endpoint"]["chat_completions"]')

# 1-2. Both providers, byte-identical tables; one batch per rank; no synchronous call.
refresh oai openai-batch "$FAST" 2>"$T/log" || { cat "$T/log"; fail "openai-batch run"; }
same oai sync-openai
[ "$(summ oai 's["endpoint"]["batches"]["count"]')" -eq $RANKS ] || fail "openai-batch: not one batch per rank"
[ "$(summ oai 's["endpoint"]["batches"]["by_state"]["completed"]')" -eq $RANKS ] || fail "openai-batch: states"
[ "$(summ oai 's["endpoint"]["batches"]["answered"]')" -eq "$PAIRS" ] || fail "openai-batch: answered lines"
[ "$(stat_of "$FAST" 's["by_endpoint"]["chat_completions"]')" -eq "$SYNC_CHAT" ] || fail "openai-batch made sync calls"
[ "$(stat_of "$FAST" 's["batches"]["uploads"]')" -eq $RANKS ] || fail "openai-batch: one upload per batch"
[ -e "$T/out/oai.rtt.run" ] && fail "openai-batch: run directory left behind"
pass "openai-batch: table identical to the synchronous run's ($PAIRS pairs, $RANKS batches)"
refresh gem gemini-batch "$FAST" 2>"$T/log" || { cat "$T/log"; fail "gemini-batch run"; }
same gem sync-gemini
[ "$(summ gem 's["endpoint"]["batches"]["by_state"]["BATCH_STATE_SUCCEEDED"]')" -eq $RANKS ] || fail "gemini: states"
[ "$(stat_of "$FAST" 's["by_endpoint"]["generate_content"]')" -eq "$PAIRS" ] || fail "gemini-batch made sync calls"
pass "gemini-batch: table identical to the synchronous run's"

# 2b. Gemini input file (llm.batch_input = file): resumable upload, batch from
# inputConfig.fileName, responses file downloaded; the same table.
refresh gem-file gemini-batch "$FILES" --set llm.batch_input=file 2>"$T/log" || { cat "$T/log"; fail "gemini-batch file run"; }
same gem-file sync-gemini
for k in uploads downloads gemini_file; do
  [ "$(stat_of "$FILES" "s['batches']['$k']")" -eq $RANKS ] || { curl -s "$FILES/stats"; fail "gemini file: $k != $RANKS"; }
done
[ "$(stat_of "$FILES" 's["batches"]["gemini_inline"]')" -eq 0 ] || fail "gemini file: inline batches sent"
[ "$(stat_of "$FILES" 's["by_endpoint"]["generate_content"]')" -eq 0 ] || fail "gemini file: sync calls"
# auto: these batches fit inline, so no upload
refresh gem-auto gemini-batch "$FILES" --set llm.batch_input=auto 2>"$T/log" || { cat "$T/log"; fail "gemini-batch auto run"; }
same gem-auto sync-gemini
[ "$(stat_of "$FILES" 's["batches"]["gemini_inline"]')" -eq $RANKS ] || fail "gemini auto: not inline"
[ "$(stat_of "$FILES" 's["batches"]["uploads"]')" -eq $RANKS ] || fail "gemini auto: uploaded"
# malformed upload sequences get Google-style errors
code() { curl -s -o "$T/resp" -w '%{http_code}' "$@"; }
[ "$(code -X POST "$FILES/upload/v1beta/files" -d '{}')" = 400 ] && grep -q '"status": *"INVALID_ARGUMENT"' "$T/resp" ||
  { cat "$T/resp"; fail "upload without the resumable start accepted"; }
[ "$(code -X POST "$FILES/upload/v1beta/files?upload_id=nosuch" -H 'X-Goog-Upload-Command: upload, finalize' \
  -H 'X-Goog-Upload-Offset: 0' -d x)" = 404 ] || { cat "$T/resp"; fail "upload to an unknown session accepted"; }
curl -s -D "$T/hdr" -o /dev/null -X POST "$FILES/upload/v1beta/files" -H 'X-Goog-Upload-Protocol: resumable' \
  -H 'X-Goog-Upload-Command: start' -H 'X-Goog-Upload-Header-Content-Length: 5' -d '{"file":{"display_name":"t"}}'
up=$(grep -i '^x-goog-upload-url:' "$T/hdr" | cut -d' ' -f2 | tr -d '\r')
[ -n "$up" ] || { cat "$T/hdr"; fail "no x-goog-upload-url"; }
[ "$(code -X POST "$up" -H 'X-Goog-Upload-Command: upload, finalize' -H 'X-Goog-Upload-Offset: 0' -d abc)" = 400 ] ||
  { cat "$T/resp"; fail "an upload shorter than declared accepted"; }
[ "$(code "$FILES/download/v1beta/files/nosuch:download?alt=media")" = 404 ] || fail "download of no file"
pass "gemini-batch input file: identical table, $RANKS uploads + $RANKS downloads, 0 inline; auto stays inline; bad uploads refused"
# An upload URL on another origin than llm.base_url: the key is not sent there, exit 4, nothing published.
expect_exit 4 refresh foreign gemini-batch "$FOREIGN" --set llm.batch_input=file
expect_err "is on http://127.0.0.2:9, not on llm.base_url's origin $FOREIGN; the API key is not sent there"
[ -e "$T/out/foreign.rtt" ] && fail "foreign upload URL: a table was published"
[ "$(stat_of "$FOREIGN" 's["batches"]["uploads"]')" -eq 0 ] || fail "foreign upload URL: an upload finished"
pass "an upload URL on another origin is refused (exit 4), the key never sent to it"

# 3. Splitting at the limits: the sim rejects (400) over 50 requests or 50,000 bytes.
refresh split-oai openai-batch "$LIMIT" --set llm.batch_max_requests=50 --set llm.batch_max_bytes=50000 2>"$T/log" || { cat "$T/log"; fail "split"; }
same split-oai sync-openai
n=$(summ split-oai 's["endpoint"]["batches"]["count"]')
big=$(summ split-oai 'max(b["requests"] for b in s["endpoint"]["batches"]["list"])')
[ "$n" -ge $(( PAIRS / 50 )) ] && [ "$big" -le 50 ] || fail "split by requests: $n batches, largest $big"
refresh split-gem gemini-batch "$LIMIT" --set llm.batch_max_bytes=50000 2>"$T/log" || { cat "$T/log"; fail "split gem"; }
same split-gem sync-gemini
ng=$(summ split-gem 's["endpoint"]["batches"]["count"]')
gbig=$(summ split-gem 'max(b["requests"] for b in s["endpoint"]["batches"]["list"])')
[ "$ng" -gt $RANKS ] && [ "$gbig" -lt 50 ] || fail "split by bytes: $ng batches, largest $gbig requests"
[ "$(stat_of "$LIMIT" 's["batches"]["rejected"]')" -eq 0 ] || fail "a batch over the sim's limits was sent"
pass "split: $n batches of <= 50 requests (openai), $ng of <= 50000 bytes (gemini), none rejected"

# 4. Partial failures (20% of lines fail): retried synchronously, or in follow-up batches.
refresh flaky-sync openai-batch "$FLAKY" 2>"$T/log" || { cat "$T/log"; fail "flaky sync run"; }
same flaky-sync sync-openai
fl=$(summ flaky-sync 's["endpoint"]["batches"]["failed_lines"]')
chat=$(stat_of "$FLAKY" 's["by_endpoint"]["chat_completions"]')
[ "$fl" -gt 0 ] && [ "$chat" -eq "$fl" ] || fail "retry sync: $fl failed lines, $chat synchronous requests"
created=$(stat_of "$FLAKY" 's["batches"]["created"]')
refresh flaky-batch gemini-batch "$FLAKY" --set llm.batch_retry=batch --set llm.max_attempts=8 2>"$T/log" || { cat "$T/log"; fail "flaky batch"; }
[ "$(summ flaky-batch 's["stages"]["infer"]["failed"]')" -eq 0 ] || fail "retry batch: pairs failed for good"
same flaky-batch sync-gemini
rounds=$(summ flaky-batch 'max(b["round"] for b in s["endpoint"]["batches"]["list"])')
[ "$rounds" -ge 2 ] || fail "retry batch: no follow-up round"
[ "$(stat_of "$FLAKY" 's["by_endpoint"]["generate_content"]')" -eq 0 ] || fail "retry batch made sync calls"
gf=$(stat_of "$FLAKY" 's["batches"]["get_failures"]')
[ "$gf" -gt 0 ] || fail "no batch poll failed (--batch-get-fail 2)"
pass "partial failures: $fl lines retried synchronously; gemini follow-up batches up to round $rounds; $gf polls answered 503 ridden out"

# 5. Expiry: a quarter of each batch answered in time, the rest (batch_expired) retried synchronously.
refresh expire openai-batch "$EXPIRE" 2>"$T/log" || { cat "$T/log"; fail "expire run"; }
same expire sync-openai
[ "$(summ expire 's["endpoint"]["batches"]["by_state"]["expired"]')" -eq $RANKS ] || fail "expiry: states"
ok=$(summ expire 's["endpoint"]["batches"]["answered"]')
[ "$ok" -gt 0 ] && [ "$ok" -lt "$PAIRS" ] || fail "expiry: $ok lines answered before expiry"
[ "$(stat_of "$EXPIRE" 's["by_endpoint"]["chat_completions"]')" -eq $(( PAIRS - ok )) ] || fail "expiry: sync retries"
pass "expiry: $ok lines from the expired batches, $(( PAIRS - ok )) retried synchronously"

# 6. kill -9 of mpirun while polling; the rerun collects the recorded batches and submits none.
mpirun --oversubscribe -n $RANKS "$RT" refresh --config "$T/job.ini" --set output.table="$T/out/killed.rtt" \
  --set llm.api=openai-batch --set llm.base_url="$SLOW" >"$T/killed.log" 2>&1 &
MP=$! # mpirun itself (a shell function in the background would be a subshell)
for _ in $(seq 400); do
  [ "$(cat "$T"/out/killed.rtt.run/batches-r*.jsonl 2>/dev/null | grep -c submitted)" -eq $RANKS ] && break
  sleep 0.05
done
[ "$(cat "$T"/out/killed.rtt.run/batches-r*.jsonl | grep -c submitted)" -eq $RANKS ] || { cat "$T/killed.log"; fail "no batch recorded"; }
ranks=$(pgrep -P $MP || true)
kill -9 $MP
wait $MP 2>/dev/null || true
for _ in $(seq 200); do alive=0; for p in $ranks; do kill -0 "$p" 2>/dev/null && alive=1; done; [ $alive -eq 0 ] && break; sleep 0.05; done
[ $alive -eq 0 ] || fail "ranks $ranks still alive 10 s after kill -9 of mpirun"
grep -q published "$T/killed.log" && fail "the killed run published"
[ -e "$T/out/killed.rtt" ] && fail "the killed run published"
c0=$(stat_of "$SLOW" 's["batches"]["created"]')
[ "$c0" -eq $RANKS ] || fail "kill: $c0 batches created"
refresh killed openai-batch "$SLOW" 2>"$T/log" || { cat "$T/log"; fail "rerun after kill -9"; }
same killed sync-openai
[ "$(stat_of "$SLOW" 's["batches"]["created"]')" -eq "$c0" ] || fail "the rerun submitted batches again"
[ "$(summ killed 'sum(b["adopted"] for b in s["endpoint"]["batches"]["list"])')" -eq $RANKS ] || { summ killed "s[\"endpoint\"][\"batches\"]"; fail "not adopted"; }
pass "kill -9 while polling: rerun collected the $RANKS recorded batches, 0 resubmitted, identical table"

# 7. llm.batch_deadline: exit 9 (interrupted, resumable); `ragtide batches` lists them; the rerun collects.
expect_exit 9 refresh late gemini-batch "$SLOW" --set llm.batch_deadline=1
expect_err "llm.batch_deadline"
c1=$(stat_of "$SLOW" 's["batches"]["created"]')
[ "$c1" -eq $(( c0 + RANKS )) ] || fail "deadline: $c1 batches created"
"$RT" batches --config "$T/job.ini" --set output.table="$T/out/late.rtt" --set llm.api=gemini-batch \
  --set llm.base_url="$SLOW" >"$T/list" 2>"$T/err" || { cat "$T/err"; fail "ragtide batches"; }
[ "$(grep -cE '^batches/sim[0-9]+ +gemini +[0-9]+ +BATCH_STATE_[A-Z]+ ' "$T/list")" -eq $RANKS ] || { cat "$T/list"; fail "batches: list"; }
refresh late gemini-batch "$SLOW" 2>"$T/log" || { cat "$T/log"; fail "rerun after the deadline"; }
same late sync-gemini
[ "$(stat_of "$SLOW" 's["batches"]["created"]')" -eq "$c1" ] || fail "deadline: the rerun submitted batches again"
pass "llm.batch_deadline: exit 9, ragtide batches listed $RANKS, the rerun collected them (0 resubmitted)"
# the same with Gemini input files: the rerun neither uploads nor submits again
expect_exit 9 refresh late-file gemini-batch "$SLOWFILE" --set llm.batch_input=file --set llm.batch_deadline=1
refresh late-file gemini-batch "$SLOWFILE" --set llm.batch_input=file 2>"$T/log" || { cat "$T/log"; fail "file rerun after the deadline"; }
same late-file sync-gemini
for k in created gemini_file uploads downloads; do
  [ "$(stat_of "$SLOWFILE" "s['batches']['$k']")" -eq $RANKS ] || { curl -s "$SLOWFILE/stats"; fail "deadline, file input: $k != $RANKS"; }
done
pass "llm.batch_deadline with input files: the rerun collected the $RANKS file batches (0 uploaded or submitted again)"

# 8. ragtide batches --cancel (a sim whose batches never end on their own): the
# rerun collects the cancelled batches and sends their lines synchronously.
expect_exit 9 refresh cancel openai-batch "$GLACIAL" --set llm.batch_deadline=1
"$RT" batches --config "$T/job.ini" --set output.table="$T/out/cancel.rtt" --set llm.api=openai-batch \
  --set llm.base_url="$GLACIAL" --cancel --json >"$T/list" 2>"$T/err" || { cat "$T/err"; fail "ragtide batches --cancel"; }
[ "$(grep -c '"state":"cancelled"' "$T/list")" -eq $RANKS ] || { cat "$T/list"; fail "--cancel: states"; }
[ "$(stat_of "$GLACIAL" 's["batches"]["cancelled"]')" -eq $RANKS ] || fail "--cancel: the sim cancelled none"
c2=$(stat_of "$GLACIAL" 's["batches"]["created"]')
refresh cancel openai-batch "$GLACIAL" 2>"$T/log" || { cat "$T/log"; fail "rerun after --cancel"; }
same cancel sync-openai
[ "$(stat_of "$GLACIAL" 's["batches"]["created"]')" -eq "$c2" ] || fail "--cancel: rerun submitted batches"
# A cancelled batch returns what it answered before the cancel (none, unless
# the machine stalled for minutes): those are journalled, the rest go synchronous.
done_before=$(stat_of "$GLACIAL" 's["batches"]["lines_ok"]')
[ "$(stat_of "$GLACIAL" 's["by_endpoint"]["chat_completions"]')" -eq $((PAIRS - done_before)) ] ||
  fail "--cancel: not every line retried ($done_before answered before the cancel)"
pass "ragtide batches --cancel: $RANKS cancelled; the rerun retried their lines synchronously, identical table"

# 9. Killed after the provider accepted a batch but before its id was recorded
# (RAGTIDE_TEST_PAUSE=batch-submitted): the rerun finds it by its label.
RAGTIDE_TEST_PAUSE=batch-submitted mpirun --oversubscribe -n $RANKS "$RT" refresh --config "$T/job.ini" \
  --set output.table="$T/out/intent.rtt" --set llm.api=gemini-batch --set llm.base_url="$SLOW" >"$T/intent.log" 2>&1 &
MP=$!
for _ in $(seq 400); do [ "$(grep -c 'paused at batch-submitted' "$T/intent.log")" -eq $RANKS ] && break; sleep 0.05; done
[ "$(grep -c 'paused at batch-submitted' "$T/intent.log")" -eq $RANKS ] || { cat "$T/intent.log"; fail "not paused"; }
grep -q '"event":"submitted"' "$T"/out/intent.rtt.run/batches-r*.jsonl &&
  { cat "$T"/out/intent.rtt.run/batches-r*.jsonl "$T/intent.log"; fail "an id was recorded before the pause"; }
ranks=$(pgrep -P $MP || true)
kill -9 $MP
wait $MP 2>/dev/null || true
for _ in $(seq 200); do alive=0; for p in $ranks; do kill -0 "$p" 2>/dev/null && alive=1; done; [ $alive -eq 0 ] && break; sleep 0.05; done
[ $alive -eq 0 ] || fail "ranks $ranks still alive 10 s after kill -9 of mpirun"
c3=$(stat_of "$SLOW" 's["batches"]["created"]')
refresh intent gemini-batch "$SLOW" 2>"$T/log" || { cat "$T/log"; fail "rerun after a kill before the id was recorded"; }
same intent sync-gemini
[ "$(stat_of "$SLOW" 's["batches"]["created"]')" -eq "$c3" ] || fail "intent: the rerun submitted batches again"
grep -q "found by its label" "$T/log" || fail "intent: not found by label"
pass "killed between acceptance and the record: the rerun found the $RANKS batches by label, 0 resubmitted"
