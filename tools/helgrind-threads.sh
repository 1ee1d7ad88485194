#!/usr/bin/env bash
# helgrind on tests/test_threads (two models trained at once in two threads,
# compared with the same trainings run one after the other).
#
# usage: tools/helgrind-threads.sh BUILD_DIR | PATH/TO/test_threads
#
# It runs with OMP_NUM_THREADS=1. libgomp's barriers and its thread pool
# wait on futexes that helgrind (and ThreadSanitizer, unless libgomp itself
# is built with -fsanitize=thread) cannot see, so with OpenMP teams every
# parallel region is reported as racing with the previous one: tens of
# thousands of false reports that would bury a real one. With one OpenMP
# thread per training — OpenBLAS reads OMP_NUM_THREADS too, and FFTW runs
# single-threaded here — the only threads are the test's two trainings, and
# any report is about state they really share. The determinism of the
# OpenMP paths themselves is tested by test_threads and test_model with
# OMP_NUM_THREADS=2. Valgrind's default suppressions stay on: they hide
# only races reported inside glibc's own mutex code (helgrind-glibc2X-005).
set -euo pipefail
target=${1:?usage: helgrind-threads.sh BUILD_DIR | test_threads}
exe=$target
[[ -d $target ]] && exe=$target/tests/test_threads
[[ -x $exe ]] || { echo "no test_threads at $exe" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 77; }
if ldd "$exe" 2>/dev/null | grep -q 'libasan\|libtsan'; then
  echo "$exe is built with a sanitizer; valgrind cannot run it" >&2
  exit 77
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
OMP_NUM_THREADS=1 valgrind --tool=helgrind --error-exitcode=97 --suppressions="$(dirname "$0")/helgrind.supp" \
  --log-file="$log" "$exe"
rc=$?
set -e
if [[ $rc -ne 0 ]]; then
  cat "$log" >&2
  echo "helgrind: test_threads exited $rc (97: helgrind found errors, log above)" >&2
  exit 1
fi
grep "ERROR SUMMARY" "$log"
