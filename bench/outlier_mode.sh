#!/usr/bin/env bash
# Outlier mode against its target: a model trained on the shifted SI itself
# (with and without --outlier-mode) against one trained on the clean twin,
# scored on that shifted SI. Small on purpose (two shared cores): one shift,
# a 96 × 96 SI, disks of radius 4 (4 disks ≈ 2.2 % of the pixels, as the
# benchmark's; 16 disks ≈ 9 %), the Fe-L window, 16-pixel tiles.
#
# Five trainings of 24 epochs (7 batches each): 10 to 19 minutes apiece on two
# cores shared with other jobs (outlier mode about a fifth longer).
#
# usage: bench/outlier_mode.sh BUILD_DIR OUT_DIR [EPOCHS] [SHIFT]
# Prints one line per (disks, training): F1 at Otsu and ROC-AUC from
# eelsvae-detect's metrics.json.
set -euo pipefail
bin=$1/examples
out=$2
epochs=${3:-24}
shift_ev=${4:-2.4}
mkdir -p "$out"
train=(--edge Fe-L --tile 16 --epochs "$epochs" --threads 2 --quiet)

# metrics.json's "f1" and "roc_auc" as two columns
metrics() { python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["f1"], m["roc_auc"])' "$1"; }

run() { # NAME TRAIN_CUBE SI_DIR [train options…]
  local name=$1 cube=$2 si=$3
  shift 3
  local t0=$SECONDS
  "$bin/eelsvae-train" "$cube" --model "$out/$name.bin" "${train[@]}" "$@" 2>"$out/$name.train.log"
  local t1=$SECONDS
  "$bin/eelsvae-detect" "$si/shift_$shift_ev.npy" --model "$out/$name.bin" --out "$out/$name" --truth "$si/mask.npy" \
    --window 690:730 --threads 2 >"$out/$name.detect.log" 2>&1
  echo "$name $(metrics "$out/$name/metrics.json") train_s $((t1 - t0)) detect_s $((SECONDS - t1))"
}

for disks in 16 4; do
  si=$out/si$disks
  "$bin/eelsvae-synth" --out "$si" --size 96 --shifts "$shift_ev" --disks "$disks" --radius 4 --threads 2 >/dev/null
done
run clean "$out/si16/clean.npy" "$out/si16" --no-outlier-mode # the same clean twin for both (seed 1)
for disks in 16 4; do
  si=$out/si$disks
  run "self${disks}_off" "$si/shift_$shift_ev.npy" "$si" --no-outlier-mode
  run "self${disks}_on" "$si/shift_$shift_ev.npy" "$si" --outlier-mode
done
"$bin/eelsvae-detect" "$out/si4/shift_$shift_ev.npy" --model "$out/clean.bin" --out "$out/clean4" \
  --truth "$out/si4/mask.npy" --window 690:730 --threads 2 >"$out/clean4.detect.log" 2>&1
echo "clean4 $(metrics "$out/clean4/metrics.json")"
