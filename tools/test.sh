#!/usr/bin/env bash
# Run every ragtide test: installs the Debian packages it needs, builds, runs
# the unit tests (Criterion), the multi-rank and end-to-end tests (CTest),
# then the unit and end-to-end tests again under AddressSanitizer +
# UndefinedBehaviorSanitizer, then every fuzz target (tests/fuzz/) for a few
# seconds on its seed corpus (clang, libFuzzer + ASan + UBSan).
#   tools/test.sh            everything
#   tools/test.sh -L unit    only tests with that CTest label (unit, e2e)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-deps.sh

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
# One node: Open MPI's ob1 transport; its default here (UCX) spends 0.2 s of
# every MPI_Init probing network devices.
export OMPI_MCA_pml=${OMPI_MCA_pml:-ob1}
# Open MPI and its helpers keep some allocations until exit; only theirs are
# suppressed, a leak in ragtide still fails the sanitizer run.
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

start=$(date +%s)
echo "== build (RelWithDebInfo) =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 >build/last-build.log 2>&1 || { tail -50 build/last-build.log; exit 1; }

echo "== tests =="
status=0
(cd build && ctest --output-on-failure -j2 --timeout 600 "$@") || status=1

if [ $# -eq 0 ] || [ "$*" = "-L unit" ]; then
  echo "== unit tests under ASan + UBSan =="
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DRAGTIDE_SANITIZE=ON >/dev/null
  cmake --build build-asan -j2 >build-asan/last-build.log 2>&1 || { tail -50 build-asan/last-build.log; exit 1; }
  (cd build-asan && ctest -L unit --output-on-failure -j2 --timeout 600) || status=1
  echo "== end-to-end tests under ASan + UBSan (memory errors; leak checks stay with the unit tests:"
  echo "   Open MPI's dlopen'ed plugins keep allocations LeakSanitizer cannot attribute) =="
  # Not repeated here: the real llama-server, the install, the real Slurm and
  # the kill-at-every-moment resume test (they test processes and
  # schedulers, run in the pass above; the journal and stop code they drive
  # runs under the sanitizers in refresh_e2e, faults and the unit tests), nor
  # the core dump test (ASan turns core dumps off: its control run would
  # find no core).
  (cd build-asan && ASAN_OPTIONS=detect_leaks=0 ctest -L e2e -E "llama_server|install_consumer|slurm|resume|core_dump" \
    --output-on-failure -j2 --timeout 900) || status=1
fi
if [ $# -eq 0 ]; then
  # A fresh corpus from the seeds (made again by the tools just built, with the
  # committed regression inputs of tests/fuzz/seeds/); a crash, leak, timeout
  # or sanitizer report in any target fails the run. FUZZ_SECONDS overrides 4.
  echo "== fuzz targets, ${FUZZ_SECONDS:-4} s each on their seed corpora (clang: libFuzzer + ASan + UBSan) =="
  fuzz_start=$(date +%s)
  rm -rf build-fuzz/seeds
  FUZZ_FRESH=1 RAGTIDE_BUILD="$PWD/build" RAGTIDE_FUZZ_BUILD="$PWD/build-fuzz" tools/fuzz.sh all "${FUZZ_SECONDS:-4}" ||
    status=1
  echo "   (fuzz step: $(( $(date +%s) - fuzz_start )) s, clang build included)"
fi
echo "== tools/test.sh finished in $(( $(date +%s) - start )) s: $([ $status -eq 0 ] && echo PASS || echo FAIL) =="
exit $status
