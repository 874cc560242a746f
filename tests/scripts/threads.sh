#!/usr/bin/env bash
# Threads per rank (job.threads = 0): a rank takes the CPUs it may run on,
# shared with the ranks on the node bound to the same CPUs, so the node is
# neither oversubscribed nor left idle; job.threads overrides. Read from the
# run summary's process.threads (max over ranks).
source "$RAGTIDE_SRC/tests/lib/common.sh"

make_data 30 300 4 5
write_config
cpus=$(nproc)
# threads RANKS MPIRUN_FLAGS [--set ...]: the thread count the run reports
threads() {
  local n=$1 flags=$2; shift 2
  # shellcheck disable=SC2086
  mpirun -n "$n" $flags "$RT" aggregate --config "$T/job.ini" --out "$T/c.rtc" "$@" 2>"$T/log" ||
    { cat "$T/log"; fail "aggregate -n $n $flags $*"; }
  python3 -c "import json; print(json.load(open('$T/c.rtc.summary.json'))['stages']['process']['threads'])"
}
check() { # WANT GOT WHAT
  [ "$1" = "$2" ] || fail "$3: $2 threads per rank, want $1"
  pass "$3: $2 threads per rank"
}

check 1 "$(threads 1 "--bind-to core")" "1 rank bound to one core"
check "$cpus" "$(threads 1 "--bind-to none")" "1 rank, unbound, $cpus CPUs"
half=$((cpus / 2 > 1 ? cpus / 2 : 1))
check "$half" "$(threads 2 "--bind-to none --oversubscribe")" "2 unbound ranks share $cpus CPUs"
check 1 "$(threads $((cpus + 1)) "--bind-to none --oversubscribe")" "$((cpus + 1)) unbound ranks on $cpus CPUs"
check 3 "$(threads 1 "--bind-to core" --set job.threads=3)" "job.threads = 3 overrides the binding"
grep -q "1 ranks x 3 threads" "$T/log" || fail "the start line names ranks and threads: $(cat "$T/log")"
pass "the start line says '1 ranks x 3 threads'"
echo "threads: all checks passed"
