#!/usr/bin/env bash
# Refresh against a misbehaving endpoint: every fault kind of the simulator
# ends with every pair with data answered (rag) or marked fallback, and the
# run summary's counts equal the simulator's own counters exactly. Also: the
# Gemini API, constrained output, the error budget, secrets, and answer-cache
# invalidation when the model or the template changes.
source "$RAGTIDE_SRC/tests/lib/common.sh"

make_data 20 200 4 61
write_config
job() { # name, sim flags..., then -- refresh --set args...
  local name=$1; shift
  local simargs=()
  while [ "$1" != "--" ]; do simargs+=("$1"); shift; done
  shift
  start_sim "$name" "$T/data/catalog.tsv" --seed 8 "${simargs[@]}"
  set +e
  mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" --no-cache --set "llm.base_url=$SIM_URL" \
    --set "output.table=$T/out/$name.rtt" --set output.cache=off "$@" >"$T/$name.out" 2>"$T/$name.err"
  echo $? >"$T/$name.rc"
  set -e
  curl -s "$SIM_URL/stats" >"$T/$name.stats"
}
# check NAME EXIT python-assertions (s = summary, st = sim stats, i = s.stages.infer)
check() {
  local name=$1 want=$2 code=$3
  [ "$(cat "$T/$name.rc")" = "$want" ] || { tail -5 "$T/$name.err"; fail "$name: exit $(cat "$T/$name.rc"), wanted $want"; }
  python3 - "$(last_summary "$T/out/$name.rtt")" "$T/$name.stats" <<PY || fail "$name: summary check"
import json, sys
s = json.load(open(sys.argv[1])); st = json.load(open(sys.argv[2]))
i = s["stages"]["infer"]; p = s["table"].get("pairs", {}); n = s["stages"]["count"]["pairs_with_data"]
$code
PY
  pass "$name"
}
RETRY="--set llm.max_attempts=8 --set llm.timeout_ms=1500 --set llm.connect_timeout_ms=1500"

job clean -- $RETRY
check clean 0 "assert i['requests'] == st['requests'] == n and i['failed'] == 0 and p['rag'] == n, (i, st, n)"

job mixed --fail-500 0.1 --fail-503 0.1 --reset 0.05 --malformed 0.05 -- $RETRY
check mixed 0 "
assert i['requests'] == st['requests'], (i['requests'], st['requests'])
assert i['http_5xx'] == st['http_500'] + st['http_503'], (i, st)
assert i['bad_responses'] == st['malformed'], (i, st)
assert i['retries'] == i['requests'] - i['calls'], i
assert st['http_500'] > 0 and st['resets'] > 0 and st['malformed'] > 0
assert p['rag'] + p.get('fallback', 0) == n and i['failed'] == p.get('fallback', 0), (p, n, i)"

job hangs --hang 0.1 -- $RETRY
check hangs 0 "assert i['timeouts'] == st['hangs'] > 0 and p['rag'] + p['fallback'] == n, (i, st, p)"

# (a limit below the calls, 369: its burst alone cannot answer them all,
# however fast or slow the client runs, e.g. under ASan)
job limited --rps 100 -- $RETRY --set llm.concurrency=64
check limited 0 "assert i['http_429'] == st['http_429'] > 0 and i['requests'] == st['requests'] and p['rag'] == n, (i, st)"

# Sporadic 429s (Retry-After 1), 502s and 504s: each costs its own retry; every pair answered.
job sporadic --fail-429 0.2 --fail-502 0.1 --fail-504 0.05 -- $RETRY
check sporadic 0 "
assert i['http_429'] == st['http_429'] == st['sporadic_429'] > 0, (i, st)
assert i['http_5xx'] == st['http_500'] + st['http_502'] + st['http_503'] + st['http_504'] and st['http_502'] > 0 and st['http_504'] > 0, (i, st)
assert i['requests'] == st['requests'] and i['failed'] == 0 and p['rag'] == n, (i, st, p)
m = s['stages']['match']
assert m['matched'] + m['fallback_unmatched'] == m['answers'] == n and m['novel'] + m['fallback_not_novel'] == m['matched'], m
assert m['fallback_failed'] == 0, m"

# A host name that does not resolve (RFC 6761 .invalid): exit 4 at once, the host named.
set +e
mpirun_q -n 2 timeout 60 "$RT" refresh --config "$T/job.ini" --no-cache --set llm.base_url=http://nonexistent.invalid:8088 \
  --set "output.table=$T/out/nxdomain.rtt" --set output.cache=off >"$T/nxdomain.out" 2>"$T/nxdomain.err"
rc=$?
set -e
[ "$rc" = 4 ] || { tail -5 "$T/nxdomain.err"; fail "nxdomain: exit $rc, wanted 4"; }
grep -q 'cannot resolve host "nonexistent.invalid"' "$T/nxdomain.err" || { tail -5 "$T/nxdomain.err"; fail "nxdomain: the error does not name the host"; }
pass "nxdomain"

job noisy --noise 0.5 -- $RETRY
check noisy 0 "assert st['noisy'] > 0 and s['quality']['exact_match_rate'] == 1.0, (st, s['quality'])"

# Every call fails: nothing published (error budget) ...
job down --fail-500 1 -- --set llm.max_attempts=2
check down 4 "assert s['status'] == 'failed' and not s['table']['published'] and i['failed'] > 0, (s['table'], i)"
grep -q "llm.max_failed_fraction" "$T/down.err" || fail "down: the error does not name llm.max_failed_fraction"
# ... unless the budget allows it: every pair then falls back to its top retrieved successor.
job down-ok --fail-500 1 -- --set llm.max_attempts=2 --set llm.max_failed_fraction=1
check down-ok 0 "assert p.get('fallback') == n and p.get('rag', 0) == 0, p"
"$RT" export --format tsv "$T/out/down-ok.rtt" | awk -F'\t' 'NR > 1 && $3 == 0' | cut -f1,2,4 | sort >"$T/fb.tsv"
"$RT" export --format tsv "$T/out/clean.rtt" >/dev/null
mpirun_q -n 1 "$RT" refresh --config "$T/job.ini" --set llm.api=retrieval --set "output.table=$T/out/ret.rtt" 2>/dev/null
"$RT" export --format tsv "$T/out/ret.rtt" | awk -F'\t' 'NR > 1 && $3 == 0' | cut -f1,2,4 | sort >"$T/ret.tsv"
cmp -s "$T/fb.tsv" "$T/ret.tsv" || fail "fallback answers are not the top retrieved successors"
pass "fallback = top retrieved successor"

# Off-catalog answers: the gate halts; constrained output fixes it.
job offcat --off-catalog 0.5 -- $RETRY
check offcat 5 "assert not s['table']['published'] and s['quality']['exact_match_rate'] < 0.9"
job offcat-json --off-catalog 0.5 -- $RETRY --set llm.constrain=json_schema
check offcat-json 0 "
assert s['quality']['exact_match_rate'] == 1.0 and p['rag'] == n, s['quality']
m = s['stages']['match']
# c1 and c2 are not in the allowed answers: every constrained answer is novel by construction.
assert m['novel'] == m['matched'] == m['exact'] == n and m['fallback_not_novel'] == 0 and m['not_novel'] == 0, m"

# Fuzzy matching maps near-miss answers (a description plus an invented keyword) to clusters,
# counted apart from exact matches; the exact-match gate still counts exact ones only.
job offcat-fuzzy --off-catalog 0.5 -- $RETRY --set match.fuzzy=true --set gates.min_exact_match=0.3
check offcat-fuzzy 0 "
m = s['stages']['match']
assert m['fuzzy'] > 0 and m['exact'] + m['fuzzy'] + m['unmatched'] == m['answers'] == n, m
assert s['quality']['exact_match_rate'] < 0.9 and p['rag'] >= m['exact'] - m['not_novel'], (s['quality'], p)"

# Global granularity: one shared block of top triples instead of per-pair context.
job global -- $RETRY --set retrieval.granularity=global
check global 0 "assert p['rag'] + p.get('fallback', 0) == n and s['stages']['prompt']['rendered'] == n, p"

# Gemini API shape.
job gemini -- $RETRY --set llm.api=gemini --set llm.model=gemini-test
check gemini 0 "assert st['by_endpoint']['generate_content'] == n and p['rag'] == n, st"

# Secrets: never in any output, even at debug log level, even in errors.
KEY="sk-ragtide-test-$$-0123456789abcdef"
export RT_TEST_KEY="$KEY"
RAGTIDE_LOG=debug job keyed --require-key "$KEY" -- $RETRY --set llm.api_key_env=RT_TEST_KEY
check keyed 0 "assert p['rag'] == n"
export RT_TEST_KEY="sk-wrong-$$-abcdef0123456789"
RAGTIDE_LOG=debug job badkey --require-key "$KEY" -- $RETRY --set llm.api_key_env=RT_TEST_KEY
check badkey 4 "assert not s['table']['published']"
grep -q "401" "$T/badkey.err" || fail "badkey: the 401 is not reported"
if grep -rqF -e "$KEY" -e "$RT_TEST_KEY" "$T"/*.err "$T"/*.out "$T"/out/*.json; then fail "an API key leaked into output"; fi
pass "no API key in any log, error or summary"

# Answer cache: reused when nothing changed, invalidated by a new model id or template.
start_sim cache "$T/data/catalog.tsv" --seed 8
c() { mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" --set "llm.base_url=$SIM_URL" \
        --set "output.table=$T/out/cache.rtt" "$@" 2>"$T/cache.err" || { cat "$T/cache.err"; fail "cache run"; }
      python3 -c "import json; i=json.load(open('$(last_summary "$T/out/cache.rtt")'))['stages']['infer']; print(i['cache_hits'], i['requests'])"; }
first=$(c); second=$(c); model=$(c --set llm.model=other-model)
sed 's/Which novel interest cluster/Which new interest cluster/' "$RAGTIDE_SRC/jobs/prompts/rag.tmpl" >"$T/edited.tmpl"
tmpl=$(c --set "prompt.template=$T/edited.tmpl")
n=$(python3 -c "import json; print(json.load(open('$(last_summary "$T/out/cache.rtt")'))['stages']['count']['pairs_with_data'])")
[ "$first" = "0 $n" ] && [ "$second" = "$n 0" ] && [ "$model" = "0 $n" ] && [ "$tmpl" = "0 $n" ] ||
  fail "cache hits/requests: first '$first' second '$second' model '$model' template '$tmpl' (n=$n)"
python3 -c "
import json; s=json.load(open('$(last_summary "$T/out/cache.rtt")'))['incremental']
assert s['context_changed_share'] == 0.0 and s['answers_reused'] == 0, s"
pass "answer cache: reused when unchanged, invalidated by model and template"
echo "faults: all checks passed"
