#!/usr/bin/env bash
# Values and flags checked before any work: out-of-range values exit 2 with
# file:line or --set, the key and its range; unknown keys, flags and
# commands suggest the nearest name; a command refuses another command's
# flags; a secret in a refused argument is never echoed; `help config` says
# what each command requires, and the README lists every key; the table's
# directory is created. One rank, no endpoint calls (llm.api = retrieval).
source "$RAGTIDE_SRC/tests/lib/common.sh"

make_data 20 200 4 3
write_config 2026-01-02 2026-01-04
no_work() { # expect_exit 2 ...; nothing may have been written
  expect_exit 2 "$@"
  [ -z "$(ls -A "$T/out" 2>/dev/null)" ] || { ls -la "$T/out"; fail "a refused run left files: $*"; }
}
r() { "$RT" refresh --config "$T/job.ini" "$@"; }

no_work r --set retrieval.popular_n=-1
expect_err "ragtide: error: --set: retrieval.popular_n = -1: must be in 0..64"
no_work r --set output.keep=100
expect_err "--set: output.keep = 100: must be in 0..99"
no_work r --set memory.per_rank_mb=-1
expect_err "--set: memory.per_rank_mb = -1: must be in 0..1073741824 (MiB; 0 = no cap)"
no_work r --set=output.flush_s=0
expect_err "--set: output.flush_s = 0: must be in 1..3600"
no_work r --set job.grace_s=-5
expect_err "--set: job.grace_s = -5: must be in 0..86400"
no_work r --set gates.min_exact_match=1.01
expect_err "--set: gates.min_exact_match = 1.01: must be in [0, 1]"
no_work r --set input.window_days=7
expect_err "ragtide: error: --set: input.window_days replaces input.window_start/window_end (input.window_start: $T/job.ini:4): set one or the other"
cp "$T/job.ini" "$T/range.ini"
printf '[llm]\nmax_tokens = 0\n' >>"$T/range.ini"
no_work "$RT" refresh --config "$T/range.ini"
expect_err "ragtide: error: $T/range.ini:$(wc -l <"$T/range.ini"): llm.max_tokens = 0: must be in 1..1048576"
pass "out-of-range values: exit 2 naming the key and its range, before any work"

no_work r --out "$T/x.counts"
expect_err 'refresh: unknown flag "--out" (a flag of aggregate, export-finetune; see `ragtide help refresh`)'
no_work "$RT" aggregate --config "$T/job.ini" --out "$T/out/c.rtc" --no-cache
expect_err 'aggregate: unknown flag "--no-cache" (a flag of refresh; see `ragtide help aggregate`)'
no_work "$RT" aggregate --config "$T/job.ini" --out "$T/out/c.rtc" --force
expect_err 'aggregate: unknown flag "--force" (a flag of refresh; see `ragtide help aggregate`)'
pass "a command refuses another command's flags"

no_work r "--bogus=Authorization: Bearer sk-test-SECRET-1234"
expect_err 'refresh: unknown flag "--bogus=..." (see `ragtide help refresh`)'
grep -q "SECRET" "$T/err" && fail "a refused argument echoed its value"
no_work r --set "llm.header=Authorization: Bearer sk-test-SECRET-1234"
expect_err '--set: unknown key "llm.header"; did you mean "llm.headers"?'
grep -q "SECRET" "$T/err" && fail "a refused --set echoed its value"
no_work r --set "llm.headers:Authorization Bearer sk-test-SECRET-1234"
expect_err "--set: expected section.key=value"
grep -q "SECRET" "$T/err" && fail "a refused --set echoed its value"
# --set=k=v is --set k=v
rm -rf "$T/out"
"$RT" refresh --config "$T/job.ini" --set=llm.api=retrieval "--set=output.table=$T/out/new/dir/t.rtt" 2>"$T/log" ||
  { cat "$T/log"; fail "--set=k=v refused"; }
[ -s "$T/out/new/dir/t.rtt" ] || fail "the table's directory was not created"
"$RT" validate "$T/out/new/dir/t.rtt" >/dev/null || fail "table invalid"
pass "--set=k=v accepted; secrets never echoed; output directories created"

# did you mean: config keys (file and --set), values, flags, commands
rm -rf "$T/out" && mkdir -p "$T/out"
cp "$T/job.ini" "$T/typo.ini"
printf '[llm]\nconcurency = 4\n' >>"$T/typo.ini"
no_work "$RT" refresh --config "$T/typo.ini"
expect_err "$T/typo.ini:$(wc -l <"$T/typo.ini"): unknown key \"llm.concurency\"; did you mean \"llm.concurrency\"? (\`ragtide help config\` lists the keys)"
no_work r --set=retrieval.topn=2
expect_err '--set: unknown key "retrieval.topn"; did you mean "retrieval.top_n"?'
no_work r --set input.dedup=uniq
expect_err '--set: input.dedup = "uniq" is not one of consecutive|unique; did you mean "unique"?'
no_work r --set llm.api=opena
expect_err '; did you mean "openai"?'
no_work r --no-cach
expect_err 'refresh: unknown flag "--no-cach"; did you mean "--no-cache"? (see `ragtide help refresh`)'
expect_exit 2 "$RT" lookup --jsn "$T/x" 1 2
expect_err 'ragtide lookup: unknown flag "--jsn"; did you mean "--json"?'
expect_exit 2 "$RT" drift --count "$T/x"
expect_err 'drift: unknown flag "--count"; did you mean "--counts"?'
expect_exit 2 "$RT" refesh --config "$T/job.ini"
expect_err 'ragtide: unknown command "refesh"; did you mean "refresh"? (`ragtide help` lists them)'
expect_exit 2 "$RT" help agregate
expect_err 'ragtide: unknown command "agregate"; did you mean "aggregate"?'
pass "unknown keys, values, flags and commands: exit 2 with the nearest name"

# help: every flag a command takes is in its help; `help config` says what each command requires
"$RT" help flags >"$T/flags"
[ "$(wc -l <"$T/flags")" -gt 20 ] || fail "help flags lists too few flags"
while read -r cmd flag; do
  "$RT" "$cmd" --help | grep -qF -- "$flag" || fail "ragtide $cmd --help does not mention $flag"
done <"$T/flags"
"$RT" aggregate --help | grep -qF -- "--format tsv" || fail "aggregate --help omits --format tsv"
"$RT" help config refresh >"$T/hc"
grep -qF "input.logs (unless input.counts is set or prompt.mode = base)" "$T/hc" || { cat "$T/hc"; fail "help config refresh"; }
grep -qF "input.window_start (unless input.window_days is set or prompt.mode = base)" "$T/hc" || fail "help config: window"
grep -qF "    output.table" "$T/hc" || fail "help config refresh: output.table is required"
"$RT" help config export-finetune >"$T/hc"
sed -n '/^  export-finetune:/,/^$/p' "$T/hc" | grep -q "input.logs" && fail "help config: export-finetune does not need the logs"
pass "every flag is in its command's help; help config says what each command requires"

# the README's configuration table lists every key, and no key that does not exist
"$RT" help config --names >"$T/keys"
[ "$(wc -l <"$T/keys")" -gt 50 ] || fail "help config --names lists too few keys"
readme=$(sed -n '/^## Configuration/,/^## /p' "$RAGTIDE_SRC/README.md")
while read -r key; do
  grep -qF "\`$key\`" <<<"$readme" || fail "README's configuration table lacks $key"
done <"$T/keys"
grep -oE '^\| `[a-z_]+\.[a-z_]+`(, `[a-z_]+\.[a-z_]+`)*' <<<"$readme" | grep -oE '[a-z_]+\.[a-z_]+' | while read -r key; do
  grep -qxF "$key" "$T/keys" || fail "README's configuration table lists $key, which is not a key"
done
pass "the README's configuration table lists exactly the keys of the code's table"
