#!/usr/bin/env bash
# llm_sim.sh — end-to-end checks of ragtide-llm-sim with exact expected values.
# Needs: $RAGTIDE_BUILD/ragtide-llm-sim (built beforehand), curl, python3.
# Starts several sims in parallel on --port 0 with --port-file, kills them by
# PID on any exit and exits non-zero naming the first failed check.
set -u

SIM="${RAGTIDE_BUILD:?RAGTIDE_BUILD must point at the build dir}/ragtide-llm-sim"
[ -x "$SIM" ] || { echo "FAIL: $SIM not built (cmake --build ... --target ragtide-llm-sim)"; exit 1; }
command -v curl >/dev/null || { echo "FAIL: curl CLI not installed (apt-get install curl)"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: python3 not installed"; exit 1; }

T=$(mktemp -d /tmp/llm_sim.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT

FAILS=0
CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); }
fail() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "FAIL: $*"; }
expect() { # expect NAME GOT WANT
  if [ "$2" == "$3" ]; then ok; else fail "$1: got [$2], want [$3]"; fi
}

cat > "$T/catalog.tsv" <<'EOF'
# id<TAB>keywords
10	jazz, blues
20	rock, guitar, live
30	cooking, baking
40	soccer, highlights
50	sci-fi, space opera
60	cats, funny
EOF

# start NAME ARGS... : start a sim in the background, remember its PID
start() {
  local name=$1
  shift
  "$SIM" --catalog "$T/catalog.tsv" --port 0 --port-file "$T/$name.port" "$@" \
    >"$T/$name.out" 2>"$T/$name.err" &
  PIDS+=($!)
  eval "PID_$name=$!"
}
# url NAME: base URL of a started sim (waits for its port file)
url() {
  local i p
  eval "p=\$PID_$1"
  for i in $(seq 100); do
    [ -s "$T/$1.port" ] && { echo "http://127.0.0.1:$(cat "$T/$1.port")"; return; }
    kill -0 "$p" 2>/dev/null || break # died: do not wait
    sleep 0.05
  done
  echo "FAIL: sim $1 did not write its port file; stderr:" >&2
  cat "$T/$1.err" >&2
  echo "http://127.0.0.1:1"
}
# jget FILE EXPR: python expression over the parsed JSON `j`
jget() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null || echo "<not json>"; }
# post URL BODYFILE OUTFILE [curl args...] -> prints the HTTP status
post() {
  local u=$1 b=$2 o=$3
  shift 3
  curl -s -o "$o" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$b" "$@" "$u"
}
# chat_body FILE PROMPT [extra JSON fields]
chat_body() {
  python3 - "$1" "$2" "${3:-}" <<'EOF'
import json, sys
body = {"model": "ragtide-sim", "temperature": 0,
        "messages": [{"role": "system", "content": "Predict the user's next novel interest cluster."},
                     {"role": "user", "content": sys.argv[2]}]}
if sys.argv[3]:
    body.update(json.loads(sys.argv[3]))
open(sys.argv[1], "w").write(json.dumps(body))
EOF
}

start main --follow 1 --seed 7
start seed1 --follow 0 --seed 1
start seed2 --follow 0 --seed 2
start f500 --fail-500 1
start rps --rps 5
start rpsh --rps 0.01 --ratelimit-headers
start tpmh --tpm 600000 --ratelimit-headers
start tpm0 --tpm 0.6 --ratelimit-headers
start f429 --fail-429 1 --retry-after 3
start f502 --fail-502 1
start fa1 --fail-500 1 --fault-attempts 1
start fa2 --fail-429 1 --fault-attempts 2
start f504 --fail-504 1
start key --require-key 'sk-test-123'
start faults --hang 0 --reset 0 --malformed 1
start hang --hang 1
start reset --reset 1
start noise --noise 1 --follow 1
start off --off-catalog 1 --follow 1
start cap --capacity 1 --latency-ms 300
M=$(url main)

# The prompt names c1, c2 (history) and the retrieved cluster, one per line.
PROMPT=$'The user recently watched:\nJazz, Blues\nrock, guitar, live\nRecently, viewers of both went on to:\ncats,  funny\nAnswer with one cluster description.'
chat_body "$T/chat.json" "$PROMPT"

# 1. follow=1: the answer is the retrieved cluster exactly as in the catalog.
expect "chat status" "$(post "$M/v1/chat/completions" "$T/chat.json" "$T/r1.json")" 200
expect "chat follows the retrieved cluster" "$(jget "$T/r1.json" "j['choices'][0]['message']['content']")" "cats, funny"
expect "chat object" "$(jget "$T/r1.json" "j['object']")" "chat.completion"
expect "chat model" "$(jget "$T/r1.json" "j['model']")" "ragtide-sim (simulated)"
expect "chat finish_reason" "$(jget "$T/r1.json" "j['choices'][0]['finish_reason']")" "stop"
# prompt_tokens = ceil(bytes of all message contents / 4)
WANT_PT=$(python3 -c "import json,sys; b=json.load(open(sys.argv[1])); n=sum(len(m['content'].encode()) for m in b['messages']); print((n+3)//4)" "$T/chat.json")
expect "chat prompt_tokens" "$(jget "$T/r1.json" "j['usage']['prompt_tokens']")" "$WANT_PT"
expect "chat completion_tokens" "$(jget "$T/r1.json" "j['usage']['completion_tokens']")" "3"
expect "chat total_tokens" "$(jget "$T/r1.json" "j['usage']['total_tokens']")" "$((WANT_PT + 3))"

# 2. Determinism: the same request twice gives the same answer.
expect "repeat status" "$(post "$M/v1/chat/completions" "$T/chat.json" "$T/r2.json")" 200
expect "repeat same answer" "$(jget "$T/r2.json" "j['choices'][0]['message']['content']")" "cats, funny"

# 3. Without retrieved context the answer is a hash choice that excludes c1 and
#    c2, the same on every call with one seed and different for another seed.
S1=$(url seed1)
S2=$(url seed2)
DIFF=0
for i in 1 2 3 4 5 6 7 8; do
  printf '{"model": "m", "messages": [{"role": "user", "content": "pair %d\\njazz, blues\\nrock, guitar, live"}]}' \
    "$i" > "$T/s$i.json"
  post "$S1/v1/chat/completions" "$T/s$i.json" "$T/a1_$i.json" >/dev/null
  post "$S1/v1/chat/completions" "$T/s$i.json" "$T/a1b_$i.json" >/dev/null
  post "$S2/v1/chat/completions" "$T/s$i.json" "$T/a2_$i.json" >/dev/null
done
# one python for all 24 answers: "A1|A1B|A2" per prompt
python3 - "$T" > "$T/seeds.txt" <<'EOF'
import json, sys
c = lambda f: json.load(open(f"{sys.argv[1]}/{f}"))["choices"][0]["message"]["content"]
for i in range(1, 9):
    print(f"{c(f'a1_{i}.json')}|{c(f'a1b_{i}.json')}|{c(f'a2_{i}.json')}")
EOF
i=0
while IFS='|' read -r A1 A1B A2; do
  i=$((i + 1))
  expect "seed 1 prompt $i deterministic" "$A1B" "$A1"
  for a in "$A1" "$A2"; do
    case "$a" in
      "cooking, baking"|"soccer, highlights"|"sci-fi, space opera"|"cats, funny") ok ;;
      *) fail "hash choice for prompt $i is [$a], not a catalog cluster other than c1/c2" ;;
    esac
  done
  [ "$A1" != "$A2" ] && DIFF=$((DIFF + 1))
done < "$T/seeds.txt"
expect "seed answers read" "$i" 8
if [ "$DIFF" -gt 0 ]; then ok; else fail "--seed 1 and --seed 2 gave the same answer for all 8 prompts"; fi

# 4. Constrained output: json_schema, guided_choice and Gemini enum answer an enum value.
ENUM='["jazz, blues", "cooking, baking", "cats, funny"]'
chat_body "$T/js.json" "$PROMPT" "{\"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"next\", \"strict\": true, \"schema\": {\"type\": \"object\", \"properties\": {\"cluster\": {\"type\": \"string\", \"enum\": $ENUM}}, \"required\": [\"cluster\"], \"additionalProperties\": false}}}}"
expect "json_schema status" "$(post "$M/v1/chat/completions" "$T/js.json" "$T/r.json")" 200
expect "json_schema content" "$(jget "$T/r.json" "j['choices'][0]['message']['content']")" '{"cluster":"cats, funny"}'
# retrieved cluster not in the enum -> some enum value
chat_body "$T/js2.json" "$PROMPT" '{"response_format": {"type": "json_schema", "json_schema": {"name": "next", "strict": true, "schema": {"type": "object", "properties": {"cluster": {"type": "string", "enum": ["soccer, highlights", "cooking, baking"]}}, "required": ["cluster"], "additionalProperties": false}}}}'
post "$M/v1/chat/completions" "$T/js2.json" "$T/r.json" >/dev/null
V=$(jget "$T/r.json" "json.loads(j['choices'][0]['message']['content'])['cluster'] in ['soccer, highlights', 'cooking, baking']")
expect "json_schema answer outside the pick is an enum value" "$V" "True"
chat_body "$T/gc.json" "$PROMPT" "{\"guided_choice\": $ENUM}"
expect "guided_choice status" "$(post "$M/v1/chat/completions" "$T/gc.json" "$T/r.json")" 200
expect "guided_choice content" "$(jget "$T/r.json" "j['choices'][0]['message']['content']")" "cats, funny"
python3 - "$T/gem.json" "$PROMPT" <<'EOF'
import json, sys
body = {"systemInstruction": {"parts": [{"text": "Predict the user's next novel interest cluster."}]},
        "contents": [{"role": "user", "parts": [{"text": sys.argv[2]}]}],
        "generationConfig": {"temperature": 0, "responseMimeType": "text/x.enum",
                             "responseSchema": {"type": "STRING", "enum": ["jazz, blues", "cooking, baking", "cats, funny"]}}}
open(sys.argv[1], "w").write(json.dumps(body))
EOF
expect "gemini status" "$(post "$M/v1beta/models/gemini-test:generateContent" "$T/gem.json" "$T/r.json")" 200
expect "gemini enum answer" "$(jget "$T/r.json" "j['candidates'][0]['content']['parts'][0]['text']")" "cats, funny"
expect "gemini finishReason" "$(jget "$T/r.json" "j['candidates'][0]['finishReason']")" "STOP"
expect "gemini modelVersion" "$(jget "$T/r.json" "j['modelVersion']")" "ragtide-sim (simulated)"
expect "gemini promptTokenCount" "$(jget "$T/r.json" "j['usageMetadata']['promptTokenCount']")" "$WANT_PT"

# 5. Bad requests: malformed JSON -> 400, unknown path -> 404, models list.
printf '{"model": "x", "messages": [' > "$T/bad.json"
expect "malformed request -> 400" "$(post "$M/v1/chat/completions" "$T/bad.json" "$T/r.json")" 400
expect "400 error JSON" "$(jget "$T/r.json" "j['error']['type']")" "invalid_request_error"
expect "unknown path -> 404" "$(curl -s -o /dev/null -w '%{http_code}' "$M/v2/nothing")" 404
expect "/v1/models status" "$(curl -s -o "$T/r.json" -w '%{http_code}' "$M/v1/models")" 200
expect "/v1/models id" "$(jget "$T/r.json" "j['data'][0]['id']")" "ragtide-sim"

# 6. /stats equals what this script sent to the main sim:
#    chat: 2 + 2 (json_schema) + 1 (guided) + 1 (bad) = 6; gemini 1; models 1; 404 1.
curl -s -o "$T/st.json" "$M/stats"
expect "stats requests" "$(jget "$T/st.json" "j['requests']")" 9
expect "stats answered" "$(jget "$T/st.json" "j['answered']")" 6
expect "stats http_400" "$(jget "$T/st.json" "j['http_400']")" 1
expect "stats http_404" "$(jget "$T/st.json" "j['http_404']")" 1
expect "stats by_endpoint" "$(jget "$T/st.json" "j['by_endpoint']")" \
  "{'chat_completions': 6, 'generate_content': 1, 'models': 1, 'other': 1}"
expect "stats no faults" "$(jget "$T/st.json" "[j[k] for k in ('http_429','http_500','http_503','hangs','resets','malformed','off_catalog','noisy')]")" \
  "[0, 0, 0, 0, 0, 0, 0, 0]"
expect "stats max_in_flight" "$(jget "$T/st.json" "j['max_in_flight']")" 1

# 7. --fail-500 1: every request gets 500 with an error JSON.
U=$(url f500)
expect "--fail-500 1 status" "$(post "$U/v1/chat/completions" "$T/chat.json" "$T/r.json")" 500
expect "--fail-500 error type" "$(jget "$T/r.json" "j['error']['type']")" "server_error"
expect "--fail-500 retry also 500" "$(post "$U/v1/chat/completions" "$T/chat.json" "$T/r.json")" 500
curl -s -o "$T/st.json" "$U/stats"
expect "--fail-500 stats" "$(jget "$T/st.json" "(j['requests'], j['http_500'], j['answered'])")" "(2, 2, 0)"

# 8. --rps 5: a burst of 12 on one connection gets 5 (or 6 on a slow machine) 200s
#    and then 429 with Retry-After >= 1.
U=$(url rps)
args=()
for i in $(seq 12); do args+=(-o /dev/null "$U/v1/chat/completions"); done
curl -s -H 'Content-Type: application/json' --data-binary @"$T/chat.json" \
  -w '%{http_code} %header{retry-after}\n' "${args[@]}" > "$T/burst.txt"
GEM429=$(post "$U/v1beta/models/g:generateContent" "$T/gem.json" "$T/r429.json" -D "$T/h.txt")
N200=$(grep -c '^200 ' "$T/burst.txt")
N429=$(grep -c '^429 [1-9]' "$T/burst.txt")
expect "--rps burst first 5 are 200" "$(head -5 "$T/burst.txt" | tr '\n' ',')" "200 ,200 ,200 ,200 ,200 ,"
if [ "$N200" -le 6 ] && [ $((N200 + N429)) -eq 12 ]; then ok; else
  fail "--rps 5 burst of 12: $N200 x 200 and $N429 x 429 with Retry-After (want 5-6 and the rest)"; fi
curl -s -o "$T/st.json" "$U/stats"
expect "--rps stats http_429" "$(jget "$T/st.json" "j['http_429']")" "$((N429 + 1))"
expect "gemini after the burst -> 429" "$GEM429" 429
# Gemini says when in the error's RetryInfo, as the Gemini API does for a quota: no Retry-After header.
grep -qi '^retry-after:' "$T/h.txt" && fail "gemini quota 429 has a Retry-After header" || ok
expect "gemini 429 status" "$(jget "$T/r429.json" "j['error']['status']")" "RESOURCE_EXHAUSTED"
expect "gemini 429 RetryInfo" "$(jget "$T/r429.json" "[(d['@type'].split('/')[-1], d.get('retryDelay')) for d in j['error']['details']]")" \
  "[('google.rpc.QuotaFailure', None), ('google.rpc.RetryInfo', '1s')]"

# 8b. --rps with --ratelimit-headers: OpenAI's x-ratelimit-*-requests on every answer and 429.
#     --rps 0.01: burst 1, the next token in 100 s, so no refill can happen during the check.
U=$(url rpsh)
for i in 1 2; do
  post "$U/v1/chat/completions" "$T/chat.json" /dev/null -D "$T/h$i.txt" >"$T/code$i.txt"
done
hdr() { grep -i "^$2:" "$T/h$1.txt" | tr -d '\r' | awk '{print $2}'; }
expect "headers: 1st answered, limit 1, remaining 0" "$(cat "$T/code1.txt"),$(hdr 1 x-ratelimit-limit-requests),$(hdr 1 x-ratelimit-remaining-requests)" "200,1,0"
expect "headers: 2nd is 429 with remaining 0, reset 1m40s" "$(cat "$T/code2.txt"),$(hdr 2 x-ratelimit-remaining-requests),$(hdr 2 x-ratelimit-reset-requests)" "429,0,1m40s"
grep -qi '^x-ratelimit' "$T/h.txt" && fail "--rps without --ratelimit-headers sent x-ratelimit headers" || ok
# 8b'. --tpm with --ratelimit-headers: the -tokens trio; a request costs its prompt tokens plus
#      max_tokens, as OpenAI charges. --tpm 600000: 10000 tokens/s, burst 10000, full at the start.
chat_body "$T/chatmt.json" "$PROMPT" '{"max_tokens": 64}'
expect "--tpm: answered" "$(post "$(url tpmh)/v1/chat/completions" "$T/chatmt.json" /dev/null -D "$T/h3.txt")" 200
expect "--tpm headers: limit, remaining = burst - (prompt + max_tokens)" \
  "$(hdr 3 x-ratelimit-limit-tokens),$(hdr 3 x-ratelimit-remaining-tokens)" "10000,$((10000 - WANT_PT - 64))"
grep -qi '^x-ratelimit-limit-requests' "$T/h3.txt" && fail "--tpm without --rps sent -requests headers" || ok
#      --tpm 0.6: burst 1 token, refilled at 0.01/s: the 2nd request is a 429 that says 100 s.
for i in 4 5; do post "$(url tpm0)/v1/chat/completions" "$T/chatmt.json" /dev/null -D "$T/h$i.txt" >"$T/code$i.txt"; done
expect "--tpm: 2nd is 429, remaining-tokens 0, reset-tokens 1m40s, Retry-After 100" \
  "$(cat "$T/code4.txt"),$(cat "$T/code5.txt"),$(hdr 5 x-ratelimit-remaining-tokens),$(hdr 5 x-ratelimit-reset-tokens),$(hdr 5 retry-after)" \
  "200,429,0,1m40s,100"

# 8c. --fail-429 (rate-independent, Retry-After --retry-after), --fail-502, --fail-504.
U=$(url f429)
expect "--fail-429 1 status" "$(post "$U/v1/chat/completions" "$T/chat.json" "$T/r.json" -D "$T/h429.txt")" 429
grep -qi '^retry-after: 3' "$T/h429.txt" && ok || fail "--fail-429 has no Retry-After: 3 ($(cat "$T/h429.txt"))"
expect "--fail-429 gemini status" "$(post "$U/v1beta/models/g:generateContent" "$T/gem.json" "$T/r.json")" 429
expect "--fail-429 gemini: no RetryInfo (not a quota)" "$(jget "$T/r.json" "'details' in j['error']")" "False"
# 8d. --fault-attempts K: faults only on a prompt's first K attempts (issue 11's endpoint).
codes() { local u=$1 k=$2 out=""; for _ in $(seq "$k"); do out="$out$(post "$u/v1/chat/completions" "$T/chat.json" /dev/null) "; done; echo "$out"; }
expect "--fault-attempts 1: the 1st attempt fails, the retries go through" "$(codes "$(url fa1)" 3)" "500 200 200 "
expect "--fault-attempts 2: the first two fail" "$(codes "$(url fa2)" 3)" "429 429 200 "
chat_body "$T/other.json" "another prompt, its own attempts"
expect "--fault-attempts: counted per prompt" "$(post "$(url fa1)/v1/chat/completions" "$T/other.json" /dev/null)" 500
U=$(url f502)
expect "--fail-502 1 status" "$(post "$U/v1/chat/completions" "$T/chat.json" "$T/r.json")" 502
U=$(url f504)
expect "--fail-504 1 status" "$(post "$U/v1/chat/completions" "$T/chat.json" "$T/r.json")" 504
expect "--fail-504 gemini status" "$(post "$U/v1beta/models/g:generateContent" "$T/gem.json" "$T/r.json")" 504
expect "--fail-504 gemini error status" "$(jget "$T/r.json" "j['error']['status']")" "DEADLINE_EXCEEDED"
for n in f429 f502 f504; do curl -s -o "$T/st_$n.json" "$(url $n)/stats"; done
expect "--fail-429 stats" "$(jget "$T/st_f429.json" "(j['requests'], j['http_429'], j['sporadic_429'], j['answered'])")" "(2, 2, 2, 0)"
expect "--fail-502 stats" "$(jget "$T/st_f502.json" "(j['requests'], j['http_502'], j['answered'])")" "(1, 1, 0)"
expect "--fail-504 stats" "$(jget "$T/st_f504.json" "(j['requests'], j['http_504'], j['answered'])")" "(2, 2, 0)"

# 9. --require-key: 401 without or with a wrong key, 200 with it; never printed.
U=$(url key)
expect "no key -> 401" "$(post "$U/v1/chat/completions" "$T/chat.json" "$T/r.json")" 401
expect "wrong key -> 401" "$(post "$U/v1/chat/completions" "$T/chat.json" "$T/r.json" -H 'Authorization: Bearer nope')" 401
expect "bearer key -> 200" "$(post "$U/v1/chat/completions" "$T/chat.json" "$T/r.json" -H 'Authorization: Bearer sk-test-123')" 200
expect "gemini no key -> 401" "$(post "$U/v1beta/models/g:generateContent" "$T/gem.json" "$T/r.json")" 401
expect "gemini bearer is not its header -> 401" "$(post "$U/v1beta/models/g:generateContent" "$T/gem.json" "$T/r.json" -H 'Authorization: Bearer sk-test-123')" 401
expect "gemini x-goog-api-key -> 200" "$(post "$U/v1beta/models/g:generateContent" "$T/gem.json" "$T/r.json" -H 'x-goog-api-key: sk-test-123')" 200
curl -s -o "$T/st.json" "$U/stats"
expect "--require-key stats" "$(jget "$T/st.json" "(j['requests'], j['http_401'], j['answered'])")" "(6, 4, 2)"

# 10. Faults: malformed (200, body not JSON), hang (no answer), reset (no response),
#     noise (normalises back to the catalog), off-catalog.
U=$(url faults)
expect "--malformed status" "$(post "$U/v1/chat/completions" "$T/chat.json" "$T/r.json")" 200
expect "--malformed body is not JSON" "$(jget "$T/r.json" "'parsed'")" "<not json>"
U=$(url hang)
post "$U/v1/chat/completions" "$T/chat.json" "$T/r.json" --max-time 0.5 >/dev/null
expect "--hang 1: curl timed out (28)" "$?" 28
U=$(url reset)
post "$U/v1/chat/completions" "$T/chat.json" "$T/r.json" >/dev/null
expect "--reset 1: empty reply (52)" "$?" 52
U=$(url noise)
post "$U/v1/chat/completions" "$T/chat.json" "$T/r.json" >/dev/null
NOISY=$(jget "$T/r.json" "j['choices'][0]['message']['content']")
NORM=$(python3 -c "import re,sys; s=sys.argv[1].lower(); print(', '.join(sorted({' '.join(re.sub(r'[^a-z0-9]+',' ',k).split()) for k in re.split(r'[,;|\n]', s)} - {''})))" "$NOISY")
expect "--noise answer normalises to the retrieved cluster" "$NORM" "cats, funny"
[ "$NOISY" != "cats, funny" ] && ok || fail "--noise 1 answered the exact description"
U=$(url off)
post "$U/v1/chat/completions" "$T/chat.json" "$T/r.json" >/dev/null
OFF=$(jget "$T/r.json" "j['choices'][0]['message']['content']")
case "$OFF" in "jazz, blues"|"rock, guitar, live"|"cooking, baking"|"soccer, highlights"|"sci-fi, space opera"|"cats, funny"|"<not json>")
  fail "--off-catalog 1 answered [$OFF]" ;; *) ok ;; esac
# Constrained output is immune to noise.
post "$(url noise)/v1/chat/completions" "$T/gc.json" "$T/r.json" >/dev/null
expect "--noise does not touch guided_choice" "$(jget "$T/r.json" "j['choices'][0]['message']['content']")" "cats, funny"
for s in faults hang reset noise off; do curl -s -o "$T/st_$s.json" "$(url $s)/stats"; done
expect "malformed stat" "$(jget "$T/st_faults.json" "j['malformed']")" 1
expect "hangs stat" "$(jget "$T/st_hang.json" "(j['hangs'], j['in_flight'])")" "(1, 1)"
expect "resets stat" "$(jget "$T/st_reset.json" "(j['resets'], j['in_flight'])")" "(1, 0)"
expect "noisy stat" "$(jget "$T/st_noise.json" "(j['noisy'], j['answered'])")" "(1, 2)"
expect "off_catalog stat" "$(jget "$T/st_off.json" "(j['off_catalog'], j['answered'])")" "(1, 1)"

# 11. --capacity 1 with 300 ms latency: 3 parallel requests, one in service at a time.
U=$(url cap)
CPIDS=()
for i in 1 2 3; do
  printf '{"model": "m", "messages": [{"role": "user", "content": "capacity %d"}]}' "$i" > "$T/c$i.json"
done
for i in 1 2 3; do
  post "$U/v1/chat/completions" "$T/c$i.json" "$T/cr$i.json" > "$T/cs$i.txt" &
  CPIDS+=($!)
done
wait "${CPIDS[@]}"
expect "capacity statuses" "$(cat "$T/cs1.txt" "$T/cs2.txt" "$T/cs3.txt")" "200200200"
curl -s -o "$T/st.json" "$U/stats"
expect "capacity stats" "$(jget "$T/st.json" "(j['max_in_service'], j['max_in_flight'], j['queued'], j['answered'])")" "(1, 3, 2, 3)"

# 12. Bad command lines exit 2 with a message; a bad catalog exits 3.
"$SIM" --catalog "$T/catalog.tsv" --fail-500 1.5 2>"$T/e.txt"; expect "--fail-500 1.5 exit" "$?" 2
grep -q -- '--fail-500' "$T/e.txt" && ok || fail "bad flag message does not name the flag"
"$SIM" --catalog "$T/catalog.tsv" --latency-dist lognormal --latency-ms 10 2>/dev/null
expect "lognormal without p99 exit" "$?" 2
printf '1\tjazz\n1\tblues\n' > "$T/dup.tsv"
"$SIM" --catalog "$T/dup.tsv" 2>/dev/null; expect "duplicate-id catalog exit" "$?" 3
"$SIM" --help | grep -q -- '--latency-p99-ms' && ok || fail "--help does not document --latency-p99-ms"

# 13. The key is never printed; SIGTERM (with a hung request open) exits 0.
if grep -q 'sk-test-123' "$T"/*.out "$T"/*.err; then fail "the API key appears in the sim's output"; else ok; fi
expect "listening line" "$(cat "$T/main.out")" "listening on 127.0.0.1:$(cat "$T/main.port")"
# Every sim, including the one holding a hung request, stops cleanly (under
# -DRAGTIDE_SANITIZE=ON a leak or sanitizer report also makes this fail).
for name in main seed1 seed2 f500 rps rpsh f429 f502 f504 key faults hang reset noise off cap; do
  eval "p=\$PID_$name"
  kill -TERM "$p" 2>/dev/null
  wait "$p"
  expect "SIGTERM exit status ($name)" "$?" 0
done
if grep -l -E 'Sanitizer|runtime error' "$T"/*.err; then fail "sanitizer reports in the files above"; else ok; fi

if [ "$FAILS" -ne 0 ]; then
  echo "llm_sim.sh: $FAILS of $CHECKS checks failed"
  exit 1
fi
echo "llm_sim.sh: all $CHECKS checks passed"
