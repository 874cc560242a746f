#!/usr/bin/env bash
# Secrets out of core dumps (issue 13): a process that holds an API key is
# non-dumpable, so a crash leaves no core with the key in it. The control
# run, without a key, must leave a core holding a marker string from its
# environment: that proves this machine writes cores where we look and that
# grep finds strings in them, so the second half can fail.
source "$RAGTIDE_SRC/tests/lib/common.sh"

pattern=$(cat /proc/sys/kernel/core_pattern)
case "$pattern" in
  core|core.%p|core.*) ;;
  *) echo "SKIP: kernel.core_pattern is \"$pattern\" (cores go to a handler, not the working directory);"
     echo "      set it to \"core\" to run this test"; exit 77 ;;
esac
ulimit -c unlimited

make_data 20 200 4 3
write_config 2026-01-02 2026-01-04
MARK="rt-core-marker-$$-$RANDOM"
KEY="sk-test-CORE-$$-$RANDOM-secret"

# crash NAME [env...]: start a refresh that pauses after reading, SIGSEGV it, echo the core's path.
crash() {
  local d="$T/$1"; shift
  mkdir -p "$d"
  (cd "$d" && exec env "$@" RAGTIDE_CORE_MARKER="$MARK" RAGTIDE_TEST_PAUSE=aggregate \
    RAGTIDE_TEST_PAUSE_FILE="$d/paused" "$RT" refresh --config "$T/job.ini" --set llm.api=retrieval \
    --set llm.api_key_env=RT_TEST_KEY >"$d/log" 2>&1) &
  local sh=$!
  for _ in $(seq 600); do [ -s "$d/paused" ] && break; sleep 0.05; done
  [ -s "$d/paused" ] || { cat "$d/log"; fail "$1: the run did not reach the pause point"; }
  kill -SEGV "$(cat "$d/paused")"
  wait $sh 2>/dev/null || true
  ls "$d"/core* 2>/dev/null | head -1 || true
}

c=$(crash control)
[ -n "$c" ] || fail "control run (no key): no core written; cannot test core contents here"
grep -qa "$MARK" "$c" || fail "control run: the marker is not in its core ($c): grep on cores does not work"
pass "control: a crash without a key leaves a core, and the core holds the environment ($(stat -c %s "$c") bytes)"

c=$(crash keyed RT_TEST_KEY="$KEY")
if [ -n "$c" ]; then
  n=$(grep -ca "$KEY" "$c" || true)
  [ "$n" -eq 0 ] || fail "a core of a process holding the key has $n lines with the key ($c)"
  pass "the core of a process holding the key does not hold it"
else
  pass "a crash of a process holding the key writes no core (non-dumpable)"
fi
