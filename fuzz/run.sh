#!/usr/bin/env bash
# Build the libFuzzer harnesses (clang, ASan + UBSan) and run each for a
# bounded time; print executions and findings per harness; exit non-zero
# when any harness found something.
#
#   fuzz/run.sh [SECONDS] [HARNESS ...]   every harness (default), SECONDS each (default 60)
#   fuzz/run.sh 60                        the CI run: one minute per harness
#   nice fuzz/run.sh 3600 dm rpl          a longer local run of two harnesses
#
# Environment: FUZZ_BUILD (build directory, default build-fuzz), FUZZ_JOBS
# (ninja jobs), FUZZ_ARGS (more libFuzzer flags, e.g. "-jobs=4 -workers=4").
#
# Per harness, under $FUZZ_BUILD/fuzz-run/<name>/: corpus/ (what the fuzzer
# found interesting; kept between runs, so later runs start further on),
# findings/ (crash-*, leak-*, timeout-*, oom-* reproducers) and log.txt.
# A reproducer reruns with:  $FUZZ_BUILD/fuzz/fuzz_<name> FILE
# Once the bug is fixed, copy the reproducer to fuzz/regressions/<name>/;
# the test "fuzz-<name>" replays it in every build from then on.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
[[ $# -gt 0 ]] && shift
build=${FUZZ_BUILD:-$root/build-fuzz}

if ! command -v "${CC:-clang}" >/dev/null; then
  echo "fuzz/run.sh: needs clang with its libFuzzer runtime (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
fi
opts=(-Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized
      -Dtests=false -Dexamples=false -Dbench=false -Ddocs=disabled)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
quiet() { "$@" >"$log" 2>&1 || { cat "$log" >&2; echo "fuzz/run.sh: failed: $*" >&2; exit 1; }; }
if [[ -f "$build/build.ninja" ]]; then
  quiet meson setup --reconfigure "$build" "$root" "${opts[@]}"
else
  CC=${CC:-clang} quiet meson setup "$build" "$root" "${opts[@]}"
fi
quiet ninja -C "$build" ${FUZZ_JOBS:+-j "$FUZZ_JOBS"}
harnesses=("$@")
if [[ ${#harnesses[@]} -eq 0 ]]; then
  # every harness this build has (.hspy only with HDF5)
  for exe in "$build"/fuzz/fuzz_*; do
    [[ -f $exe && -x $exe ]] && harnesses+=("$(basename "$exe" | sed 's/^fuzz_//')")
  done
fi

# Findings: sanitizer reports, leaks, UBSan (halt on the first), slow inputs
# (-timeout), single allocations over -malloc_limit_mb and RSS over -rss_limit_mb.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0:handle_abort=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export OMP_NUM_THREADS=1

# A crash, hang, leak or exhaustion of memory whose stack (for memory, the
# largest live allocation's) reaches libhdf5 before any of our source lines
# (lib/, fuzz/, tests/, examples/; glibc's own frames, such as the abort of
# a stack-protector failure inside libhdf5, do not count as ours)
# is a bug in libhdf5 (it does not defend against corrupt files; see
# fuzz/README.md): it is kept apart under upstream/ and the run goes on.
# (HDF5 objects our reader leaves open are not such leaks: fuzz_hspy checks
# that none is.)
upstream_crash() {
  awk '
    function decide(verdict) { if (verdict == "no") ours = 1; decided = 1 }
    /ERROR: AddressSanitizer|runtime error|ERROR: UndefinedBehaviorSanitizer|ERROR: libFuzzer: (timeout|out-of-memory)/ && !mode {
      mode = "crash"; next
    }
    /ERROR: LeakSanitizer/ && !mode { mode = "leak"; next }
    mode == "leak" && /^(Direct|Indirect) leak/ { if (blocks && !decided) ours = 1; blocks++; decided = 0; next }
    mode && /^ *#[0-9]+ / && !decided {
      if ($0 ~ /libhdf5/) decide("yes")
      else if ($0 ~ /(^|[ \/])(lib|fuzz|tests|examples)\/[^ ]*\.[ch]:[0-9]+/) decide("no")
      if (mode == "crash" && decided) exit
    }
    END {
      if (mode == "leak" && blocks && !decided) ours = 1
      print (mode && decided && !ours) ? "yes" : "no"
    }' "$1" | grep -q yes
}

status=0
summary=()
for name in "${harnesses[@]}"; do
  out="$build/fuzz-run/$name"
  mkdir -p "$out/corpus" "$out/findings" "$out/upstream"
  seeds=("$root/fuzz/corpus/$name")
  [[ -d "$root/fuzz/regressions/$name" ]] && seeds+=("$root/fuzz/regressions/$name")
  if [[ $name == dm ]]; then
    # HyperSpy's DM test files, when installed, are read as extra seeds
    # where they are; they are GPL test data, so they are not copied here.
    for dir in /usr/lib/python3/dist-packages/hyperspy/tests/io/dm[34]_*_data; do
      [[ -d $dir ]] && seeds+=("$dir")
    done
  fi
  dict=()
  [[ -f "$root/fuzz/$name.dict" ]] && dict=(-dict="$root/fuzz/$name.dict")
  : > "$out/log.txt"
  start=$SECONDS new=0 upstream=0
  while :; do
    left=$(( seconds - (SECONDS - start) ))
    (( left > 0 )) || break
    before=$(ls "$out/findings" | wc -l)
    set +e
    # shellcheck disable=SC2086
    "$build/fuzz/fuzz_$name" "$out/corpus" "${seeds[@]}" "${dict[@]}" \
      -max_total_time="$left" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=65536 \
      -artifact_prefix="$out/findings/" -print_final_stats=1 ${FUZZ_ARGS:-} > "$out/last.txt" 2>&1
    rc=$?
    set -e
    cat "$out/last.txt" >> "$out/log.txt"
    found=$(( $(ls "$out/findings" | wc -l) - before ))
    (( rc == 0 )) && break
    if (( found == 1 )) && upstream_crash "$out/last.txt" && (( upstream < 1000 )); then
      file=$(ls -t "$out/findings" | head -n 1)
      mv "$out/findings/$file" "$out/upstream/"
      cp "$out/last.txt" "$out/upstream/$file.log"
      upstream=$(( upstream + 1 ))
      continue
    fi
    new=$(( found > 0 ? found : 1 )) # a crash libFuzzer could not save counts too
    break
  done
  rm -f "$out/last.txt"
  execs=$(awk '/stat::number_of_executed_units/ {n += $NF} END {print n + 0}' "$out/log.txt")
  corpus=$(ls "$out/corpus" | wc -l)
  line=$(printf '%-6s %9d executions  %5d corpus  %d finding(s)' "$name" "$execs" "$corpus" "$new")
  (( upstream > 0 )) && line+=" (+$upstream crash(es) inside libhdf5, kept in $out/upstream)"
  if (( new > 0 )); then
    status=1
    line+=": $(ls -t "$out/findings" | head -n "$new" | tr '\n' ' ')"
    echo "== fuzz_$name: finding; log $out/log.txt" >&2
    grep -m1 -E "ERROR: |runtime error|fuzz check failed|out-of-memory|timeout" "$out/log.txt" >&2 ||
      tail -n 20 "$out/log.txt" >&2
  fi
  summary+=("$line")
done
echo "fuzz: ${seconds} s per harness"
printf '%s\n' "${summary[@]}"
exit "$status"
