#!/usr/bin/env bash
# A table a person can read (issue 13): lookup and export with keywords and
# every candidate; `ragtide explain` shows one pair's context, prompt, raw
# answer, match and provenance; `ragtide journal dump` prints the journal.
# One rank against the simulator (--follow 1: it answers the first
# retrieved cluster, so explain's match is predictable).
source "$RAGTIDE_SRC/tests/lib/common.sh"

make_data 20 300 5 23
start_sim sim "$T/data/catalog.tsv" --seed 3 --follow 1
write_config 2026-01-02 2026-01-05
printf '[retrieval]\ntop_n = 3\n[output]\ncandidates = 3\nprogress_s = 0\n' >>"$T/job.ini"
"$RT" refresh --config "$T/job.ini" 2>"$T/log" || { cat "$T/log"; fail "refresh"; }
TB="$T/out/table.rtt"

# A pair with data and three candidates, from the export.
"$RT" export --catalog "$T/data/catalog.tsv" "$TB" >"$T/x.tsv"
head -1 "$T/x.tsv" | grep -q $'^c1\tc2\trank\tnext\tprovenance\tday\tc1_keywords\tc2_keywords\tnext_keywords$' ||
  fail "export --catalog header: $(head -1 "$T/x.tsv")"
read -r c1 c2 < <(awk -F'\t' 'NR > 1 && $3 == 2 && $5 == "rag" {print $1, $2; exit}' "$T/x.tsv") || true
[ -n "$c1" ] || fail "no pair with three rag candidates in the export"
kw() { awk -F'\t' -v id="$1" '$1 == id {print $2}' "$T/data/catalog.tsv"; }
awk -F'\t' -v a="$c1" -v b="$c2" '$1 == a && $2 == b' "$T/x.tsv" >"$T/pair.tsv"
[ "$(wc -l <"$T/pair.tsv")" -eq 3 ] || fail "export: expected 3 candidates of ($c1, $c2): $(cat "$T/pair.tsv")"
while IFS=$'\t' read -r a b rank nxt prov day k1 k2 kn; do
  [ "$k1" = "$(kw "$a")" ] && [ "$k2" = "$(kw "$b")" ] && [ "$kn" = "$(kw "$nxt")" ] ||
    fail "export keywords of ($a, $b) #$rank: '$k1' '$k2' '$kn'"
done <"$T/pair.tsv"
pass "export --catalog: every candidate with the three clusters' keywords"

"$RT" lookup --catalog "$T/data/catalog.tsv" "$TB" "$c1" "$c2" >"$T/l.txt"
first=$(awk -F'\t' '$3 == 0 {print $4}' "$T/pair.tsv"); third=$(awk -F'\t' '$3 == 2 {print $4}' "$T/pair.tsv")
grep -qF "$c1 ($(kw "$c1")) then $c2 ($(kw "$c2"))" "$T/l.txt" || fail "lookup: no keywords line: $(cat "$T/l.txt")"
grep -qF "$c1 $c2 -> $first (rag)  $(kw "$first")" "$T/l.txt" || fail "lookup: first candidate: $(cat "$T/l.txt")"
grep -qF "  #3 -> $third (rag)  $(kw "$third")" "$T/l.txt" || fail "lookup: third candidate: $(cat "$T/l.txt")"
"$RT" lookup --json --catalog "$T/data/catalog.tsv" "$TB" "$c1" "$c2" | python3 -c "
import json, sys; o = json.load(sys.stdin)
assert len(o['candidates']) == 3 and o['candidates'][2]['next'] == $third, o
assert o['candidates'][0]['keywords'] == sys.argv[1] and o['c1_keywords'] == sys.argv[2], o" "$(kw "$first")" "$(kw "$c1")" ||
  fail "lookup --json --catalog"
printf '1\tsomething else\n' >"$T/other.tsv"
expect_exit 3 "$RT" lookup --catalog "$T/other.tsv" "$TB" "$c1" "$c2"
expect_err "is not the one"
pass "lookup --catalog: every candidate with keywords; a foreign catalog is refused (exit 3)"

# explain: context, prompt, raw answer, match, provenance — and nothing written.
before=$(ls -la "$T/out" | md5sum)
"$RT" explain --config "$T/job.ini" "$c1" "$c2" >"$T/e.txt" 2>"$T/e.err" || { cat "$T/e.err"; fail "explain"; }
for want in "pair $c1 then $c2 in $TB" "retrieved context (retrieval.mode" \
    "fingerprint the same as in $TB.contexts: the served table was built from this context" \
    "prompt (llm.model" "[user]" "answer (journal $TB.answers" "[raw]" "match: exact (similarity 1.00) -> $first" \
    "-> provenance rag" "#1 $first (rag"; do
  grep -qF -- "$want" "$T/e.txt" || { cat "$T/e.txt"; fail "explain lacks: $want"; }
done
# the context lists the retrieved successors in order: the first is the answer (--follow 1)
awk '/^retrieved context/{f=1; next} f && /^  [0-9]/{print $1; exit}' "$T/e.txt" | grep -qx "$first" ||
  fail "explain: the first retrieved successor is not $first"
grep -qF "$(kw "$first")" "$T/e.txt" || fail "explain: no keywords of the answer"
[ "$(ls -la "$T/out" | md5sum)" = "$before" ] || fail "explain changed the table's directory"
# with another prompt template the journal has no answer for the request
sed 's/Which novel interest cluster/Which new interest cluster/' "$RAGTIDE_SRC/jobs/prompts/rag.tmpl" >"$T/edited.tmpl"
"$RT" explain --config "$T/job.ini" --set "prompt.template=$T/edited.tmpl" "$TB" "$c1" "$c2" >"$T/e2.txt" 2>&1 ||
  { cat "$T/e2.txt"; fail "explain (edited template)"; }
grep -qF "answer: none in the journal" "$T/e2.txt" || { cat "$T/e2.txt"; fail "explain: another prompt found an answer"; }
expect_exit 2 "$RT" explain --config "$T/job.ini" "$c1" 999999
expect_err "999999 is not a cluster"
pass "explain: context (fingerprint checked), prompt, raw answer, match and provenance; nothing written"

"$RT" journal dump "$TB.answers" >"$T/j.jsonl"
n=$(wc -l <"$T/j.jsonl")
[ "$n" -eq "$(python3 -c "import json; print(json.load(open('$TB.summary.json'))['stages']['infer']['calls'])")" ] ||
  fail "journal dump: $n lines, not one per call"
python3 -c "
import json, sys
for line in open(sys.argv[1]): o = json.loads(line); assert o['answer'] and len(o['key']) == 16, o" "$T/j.jsonl" ||
  fail "journal dump lines"
pass "journal dump: one JSON line per answer"
