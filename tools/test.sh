#!/usr/bin/env bash
# Build libeelsvae and run its test suite (the README's test command).
#   tools/test.sh              release build, every test
#   tools/test.sh --sanitize   the same under AddressSanitizer + UBSan
#   tools/test.sh --valgrind   memcheck on the example programs, helgrind on
#                              concurrent training (the release build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tools/install-deps.sh

build=build
opts=(-Dtests=true -Dexamples=true)
if [[ "${1:-}" == "--sanitize" ]]; then
  build=build-sanitize
  opts+=(-Db_sanitize=address,undefined -Dbuildtype=debugoptimized -Db_lundef=false -Ddocs=disabled)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
fi
suites=()
if [[ "${1:-}" == "--valgrind" ]]; then suites=(--setup valgrind --suite valgrind); fi
if [[ -d "$build" ]]; then meson setup --reconfigure "$build" "${opts[@]}" >/dev/null
else meson setup "$build" "${opts[@]}" >/dev/null; fi
ninja -C "$build"
set +e
meson test -C "$build" --print-errorlogs --num-processes 2 "${suites[@]}" | tee "$build/test-summary.txt"
rc=${PIPESTATUS[0]}
set -e
count() { awk -v k="$1" '$1 == k":" {print $2}' "$build/test-summary.txt"; }
ok=$(count Ok); expfail=$(count "Expected Fail"); fail=$(count Fail); skip=$(count Skipped); timeout=$(count Timeout)
echo "tests: ${ok:-0} passed, $(( ${fail:-0} + ${timeout:-0} )) failed, ${skip:-0} skipped"
exit "$rc"
