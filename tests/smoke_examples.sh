#!/usr/bin/env bash
# Smoke test of the example programs: --help, usage errors, and a small
# synthesise → PCA run whose outputs are checked for shape and sense.
# usage: smoke_examples.sh BUILD_EXAMPLES_DIR
set -euo pipefail
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

for p in eelsvae-synth eelsvae-pca eelsvae-info eelsvae-train eelsvae-detect; do
  "$bin/$p" --help | grep -q "^Usage: $p" || fail "$p --help"
  set +e; "$bin/$p" --no-such-option >/dev/null 2>"$tmp/err"; rc=$?; set -e
  [[ $rc -eq 2 ]] || fail "$p with a bad option exited $rc, expected 2"
  grep -q "unknown option" "$tmp/err" || fail "$p: no message for a bad option"
done

"$bin/eelsvae-synth" --out "$tmp/si" --size 48 --shifts 2.4 --disks 2 --radius 5 > "$tmp/synth.txt"
for f in clean.npy expected.npy mask.npy shift_2.4.npy calibration.json; do
  [[ -s "$tmp/si/$f" ]] || fail "eelsvae-synth did not write $f"
done
grep -q "^shape 48 48 1334$" "$tmp/synth.txt" || fail "unexpected shape: $(cat "$tmp/synth.txt")"
"$bin/eelsvae-info" "$tmp/si/mask.npy" | grep -q "shape   (48, 48)" || fail "eelsvae-info on the mask"
"$bin/eelsvae-info" "$tmp/si/clean.npy" | grep -q "dtype   float32" || fail "eelsvae-info on the cube"

# A .npy cube has no calibration: the program must say what to pass.
set +e; "$bin/eelsvae-pca" "$tmp/si/shift_2.4.npy" --out "$tmp/p" 2>"$tmp/err"; rc=$?; set -e
[[ $rc -ne 0 ]] && grep -q "energy-offset" "$tmp/err" || fail "eelsvae-pca without calibration: rc $rc, $(cat "$tmp/err")"

"$bin/eelsvae-pca" "$tmp/si/shift_2.4.npy" --components 3 --window 690:730 --out "$tmp/p" \
  --truth "$tmp/si/mask.npy" --energy-offset 420 --energy-scale 0.3 > "$tmp/pca.txt" 2>/dev/null
for f in score.npy mask.npy metrics.json; do [[ -s "$tmp/p/$f" ]] || fail "eelsvae-pca did not write $f"; done
grep -q '"f1"' "$tmp/p/metrics.json" || fail "metrics.json has no f1"
f1=$(awk '/^f1 / {print $2}' "$tmp/pca.txt")
awk -v f="$f1" 'BEGIN { exit !(f >= 0 && f <= 1) }' || fail "F1 '$f1' outside [0, 1]"
set +e; "$bin/eelsvae-pca" "$tmp/si/shift_2.4.npy" --out "$tmp/p" --energy-offset 420 --energy-scale 0.3 \
  --window 900:950 2>"$tmp/err"; rc=$?; set -e
[[ $rc -eq 1 ]] && grep -q "EELSVAE_ERR_RANGE\|extends past" "$tmp/err" || fail "window outside the axis: rc $rc, $(cat "$tmp/err")"

# Train the fast preset for one epoch on the clean cube, then detect on the twin.
"$bin/eelsvae-train" "$tmp/si/clean.npy" --model "$tmp/m.evae" --epochs 1 --quiet \
  --energy-offset 420 --energy-scale 0.3 2>"$tmp/train.err" || fail "eelsvae-train: $(cat "$tmp/train.err")"
[[ -s "$tmp/m.evae" ]] || fail "eelsvae-train wrote no model"
"$bin/eelsvae-detect" "$tmp/si/shift_2.4.npy" --model "$tmp/m.evae" --out "$tmp/d" --truth "$tmp/si/mask.npy" \
  --latent --recon --energy-offset 420 --energy-scale 0.3 > "$tmp/detect.txt" 2>"$tmp/detect.err" ||
  fail "eelsvae-detect: $(cat "$tmp/detect.err")"
for f in score.npy mask.npy metrics.json latent.npy recon.npy; do [[ -s "$tmp/d/$f" ]] || fail "eelsvae-detect did not write $f"; done
"$bin/eelsvae-info" "$tmp/d/latent.npy" | grep -q "shape   (2, 2, " || fail "latent.npy is not tiles_y × tiles_x × L"
grep -q '"method": "vae"' "$tmp/d/metrics.json" || fail "metrics.json is not labelled vae"
# A model applied to a cube of another dispersion must refuse, naming it.
set +e; "$bin/eelsvae-detect" "$tmp/si/shift_2.4.npy" --model "$tmp/m.evae" --out "$tmp/d2" \
  --energy-offset 420 --energy-scale 0.25 2>"$tmp/err"; rc=$?; set -e
[[ $rc -eq 1 ]] || fail "a different dispersion: rc $rc, $(cat "$tmp/err")"
echo "1 passed, 0 failed"
