#!/usr/bin/env bash
# The example programs' smoke sequence (tests/smoke_examples.sh) on tiny
# inputs, every run under valgrind memcheck: no invalid access, no use of
# an uninitialised value, no definite or indirect leak. Runs that must fail
# (bad options, missing calibration, a window off the axis, another
# dispersion) are checked for their own exit status and message, so the
# programs' error paths are covered too.
#
# usage: tools/valgrind-examples.sh BUILD_DIR      (the build root or its examples/)
#   VALGRIND_LOG_DIR=DIR  keep every run's valgrind log there (default: a temporary)
#
# valgrind reports through its own exit status, 97 — not 1, which the
# programs use for their expected failures. "Still reachable" blocks are
# not errors: exit() from a usage error leaves the caller's buffers
# reachable, and the OpenMP and OpenBLAS thread pools keep theirs until the
# process ends. "Possibly lost" is not counted either: glibc keeps thread
# stacks (and their TLS) of the pools' threads through interior pointers.
# No suppression file is needed (tools/valgrind.supp would be the place,
# each entry with the reason it is noise).
set -euo pipefail
build=${1:?usage: valgrind-examples.sh BUILD_DIR}
bin=$build
[[ -x $bin/eelsvae-synth ]] || bin=$build/examples
[[ -x $bin/eelsvae-synth ]] || { echo "no example programs in $build or $build/examples" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 77; }
if ldd "$bin/eelsvae-synth" 2>/dev/null | grep -q 'libasan\|libtsan'; then
  echo "the example programs are built with a sanitizer; valgrind cannot run them" >&2
  exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
logs=${VALGRIND_LOG_DIR:-$tmp/logs}
mkdir -p "$logs"
supp=()
[[ -f "$(dirname "$0")/valgrind.supp" ]] && supp=(--suppressions="$(dirname "$0")/valgrind.supp")
# Two OpenMP threads: the parallel paths run (valgrind serialises them anyway).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OMP_WAIT_POLICY=passive

runs=0
fail() { echo "FAIL: $*" >&2; exit 1; }
# vg RC NAME PROGRAM ARGS…: run under memcheck, expect exit status RC
# ("nz": any failure but valgrind's).
vg() {
  local want=$1 name=$2 prog=$3
  shift 3
  runs=$((runs + 1))
  local log
  log=$logs/$(printf %02d $runs)-$name.log
  set +e
  valgrind --quiet --error-exitcode=97 --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect "${supp[@]}" --log-file="$log" \
    "$bin/$prog" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  set -e
  if [[ $rc -eq 97 ]] || grep -q "ERROR SUMMARY: [1-9]" "$log"; then
    cat "$log" >&2
    fail "$prog $*: valgrind found errors (log above)"
  fi
  if [[ $want == nz ]]; then [[ $rc -ne 0 ]] || fail "$prog $*: exit 0, expected a failure"
  else [[ $rc -eq $want ]] || fail "$prog $*: exit $rc, expected $want; stderr: $(cat "$tmp/err")"; fi
  echo "ok $runs $name ($prog, exit $rc)"
}
expect_err() { grep -q "$1" "$tmp/err" || fail "stderr lacks '$1': $(cat "$tmp/err")"; }

for p in eelsvae-synth eelsvae-pca eelsvae-info eelsvae-train eelsvae-detect eelsvae-convert; do
  [[ -x $bin/$p ]] || continue
  vg 0 help "$p" --help
  grep -q "^Usage: $p" "$tmp/out" || fail "$p --help"
  vg 2 bad-option "$p" --no-such-option
  expect_err "unknown option"
done

# 24 × 24 pixels: one 24 × 24 tile of the fast preset. Training names
# --epochs (without it eelsvae-train trains at least 900 steps) and models
# the whole energy axis, binned.
vg 0 synth eelsvae-synth --out "$tmp/si" --size 24 --shifts 2.4 --disks 1 --radius 4
for f in clean.npy mask.npy shift_2.4.npy; do
  [[ -s $tmp/si/$f && -s $tmp/si/$f.json ]] || fail "eelsvae-synth did not write $f and its sidecar $f.json"
done
vg 0 info-mask eelsvae-info "$tmp/si/mask.npy"
grep -q "shape   (24, 24)" "$tmp/out" || fail "eelsvae-info on the mask: $(cat "$tmp/out")"
vg 0 info-cube eelsvae-info "$tmp/si/clean.npy"
cal=(--energy-offset 420 --energy-scale 0.3)
# eelsvae-synth's sidecars calibrate its files (the JSON reader under memcheck).
vg 0 pca-sidecar eelsvae-pca "$tmp/si/shift_2.4.npy" --components 3 --window 690:730 --out "$tmp/ps" --map-format npy
expect_err "calibration from sidecar"

rm -f "$tmp/si/"*.json # no sidecar: the programs must ask for the calibration
vg nz pca-no-calibration eelsvae-pca "$tmp/si/shift_2.4.npy" --out "$tmp/p0"
expect_err "energy-offset"
vg 0 pca eelsvae-pca "$tmp/si/shift_2.4.npy" --components 3 --window 690:730 --out "$tmp/p" --map-format npy \
  --truth "$tmp/si/mask.npy" "${cal[@]}"
for f in score.npy score.npy.json mask.npy metrics.json; do [[ -s $tmp/p/$f ]] || fail "eelsvae-pca did not write $f"; done
cmp -s "$tmp/p/score.npy" "$tmp/ps/score.npy" || fail "eelsvae-pca: the sidecar and the options give other scores"
vg 1 pca-window-off-axis eelsvae-pca "$tmp/si/shift_2.4.npy" --out "$tmp/p1" --window 900:950 "${cal[@]}"
expect_err "lies outside the energy axis"

vg 0 train eelsvae-train "$tmp/si/clean.npy" --model "$tmp/m.evae" --epochs 1 --quiet "${cal[@]}" \
  --checkpoint "$tmp/ck.evae"
[[ -s $tmp/m.evae && -s $tmp/ck.evae ]] || fail "eelsvae-train wrote no model or checkpoint"
vg 0 train-resume eelsvae-train "$tmp/si/clean.npy" --model "$tmp/m2.evae" --epochs 1 --quiet "${cal[@]}" \
  --resume "$tmp/ck.evae"
cmp -s "$tmp/m.evae" "$tmp/m2.evae" || fail "resuming a finished checkpoint changed the model"
vg 0 detect eelsvae-detect "$tmp/si/shift_2.4.npy" --model "$tmp/m.evae" --out "$tmp/d" --truth "$tmp/si/mask.npy" \
  --latent --recon --map-format npy "${cal[@]}"
for f in score.npy score.npy.json mask.npy metrics.json latent.npy recon.npy; do
  [[ -s $tmp/d/$f ]] || fail "eelsvae-detect did not write $f"
done
vg 1 detect-other-dispersion eelsvae-detect "$tmp/si/shift_2.4.npy" --model "$tmp/m.evae" --out "$tmp/d2" \
  --energy-offset 420 --energy-scale 0.25
expect_err "dispersion"

if [[ -x $bin/eelsvae-convert ]]; then
  vg 0 convert-npy eelsvae-convert "$tmp/si/shift_2.4.npy" "$tmp/c.npy" "${cal[@]}"
  for ext in rpl hspy; do
    set +e
    "$bin/eelsvae-convert" "$tmp/c.npy" "$tmp/probe.$ext" >/dev/null 2>&1
    supported=$?
    set -e
    [[ $supported -eq 0 ]] || { echo "skip convert-$ext: not supported by this build"; continue; }
    vg 0 "convert-$ext" eelsvae-convert "$tmp/c.npy" "$tmp/c.$ext"
    vg 0 "info-$ext" eelsvae-info "$tmp/c.$ext"
  done
fi
echo "valgrind: $runs runs clean"
