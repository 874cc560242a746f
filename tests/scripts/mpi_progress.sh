#!/usr/bin/env bash
# Progress reporting with nonblocking collectives (src/pipeline/progress.c)
# across 3 ranks with uneven work: no deadlock, sane counts.
source "$RAGTIDE_SRC/tests/lib/common.sh"
timeout 120 mpirun --oversubscribe -n 3 "$RAGTIDE_BUILD/tests/mpi_progress" 2>"$T/err" | tee "$T/out" || { cat "$T/err"; fail "mpi_progress"; }
grep -q "^ok:" "$T/out" || fail "mpi_progress did not report ok"
echo "1 passed, 0 failed"
