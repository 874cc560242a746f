#!/usr/bin/env bash
# Values and flags checked before any work: out-of-range values exit 2 with
# the key and its range; a command refuses another command's flags; a
# secret in a refused argument is never echoed; the table's directory is
# created. One rank, no endpoint calls (llm.api = retrieval).
source "$RAGTIDE_SRC/tests/lib/common.sh"

make_data 20 200 4 3
write_config 2026-01-02 2026-01-04
no_work() { # expect_exit 2 ...; nothing may have been written
  expect_exit 2 "$@"
  [ -z "$(ls -A "$T/out" 2>/dev/null)" ] || { ls -la "$T/out"; fail "a refused run left files: $*"; }
}
r() { "$RT" refresh --config "$T/job.ini" "$@"; }

no_work r --set retrieval.popular_n=-1
expect_err "retrieval.popular_n = -1: must be in 0..64"
no_work r --set output.keep=100
expect_err "output.keep = 100: must be in 0..99"
no_work r --set memory.per_rank_mb=-1
expect_err "memory.per_rank_mb = -1"
no_work r --set output.flush_s=0
expect_err "output.flush_s must be in 1..3600"
no_work r --set job.grace_s=-5
expect_err "job.grace_s must be in 0..86400"
no_work r --set input.window_days=7
expect_err "input.window_days replaces input.window_start/window_end"
pass "out-of-range values: exit 2 naming the key and its range, before any work"

no_work r --out "$T/x.counts"
expect_err 'refresh: unexpected argument "--out"'
no_work "$RT" aggregate --config "$T/job.ini" --out "$T/out/c.rtc" --no-cache
expect_err 'aggregate: unexpected argument "--no-cache"'
no_work "$RT" aggregate --config "$T/job.ini" --out "$T/out/c.rtc" --force
pass "a command refuses another command's flags"

no_work r "--bogus=Authorization: Bearer sk-test-SECRET-1234"
expect_err 'unexpected argument "--bogus=..."'
grep -q "SECRET" "$T/err" && fail "a refused argument echoed its value"
# --set=k=v is --set k=v
rm -rf "$T/out"
"$RT" refresh --config "$T/job.ini" --set=llm.api=retrieval "--set=output.table=$T/out/new/dir/t.rtt" 2>"$T/log" ||
  { cat "$T/log"; fail "--set=k=v refused"; }
[ -s "$T/out/new/dir/t.rtt" ] || fail "the table's directory was not created"
"$RT" validate "$T/out/new/dir/t.rtt" >/dev/null || fail "table invalid"
pass "--set=k=v accepted; secrets never echoed; output directories created"
