#!/usr/bin/env bash
# Kill-safety of training: SIGKILL eelsvae-train at random moments, and at
# the moment a checkpoint or the model is being written, several times over
# one training run. After every kill
#   - the checkpoint (when there is one yet) loads: eelsvae_model_load checks
#     its size and CRC-32, so a torn file cannot pass;
#   - the model file is exactly the old one, byte for byte (or, when the run
#     had finished, the new one);
#   - nothing but the writers' temporaries (NAME.tmp.XXXXXX) is left over.
# Finally the run is resumed from the last checkpoint to its end, and the
# model must equal, byte for byte, the one an uninterrupted run writes.
#
# usage: kill_checkpoint.sh BUILD_EXAMPLES_DIR
#   KILL_SEED=N   seed of the random moments (default: from the clock; printed)
set -euo pipefail
bin=$1
tmp=$(mktemp -d)
pid=
cleanup() {
  if [[ -n $pid ]]; then kill -9 "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

seed=${KILL_SEED:-$(( $(date +%s%N) % 32768 ))}
RANDOM=$seed
echo "KILL_SEED=$seed"

epochs=20
"$bin/eelsvae-synth" --out "$tmp/si" --size 25 --shifts 2.4 --disks 1 --radius 4 >/dev/null
cube=$tmp/si/clean.npy
# 25 × 25 pixels at tile 24: four tiles at any step (training steps down
# to stride 1 where a scan gives few tiles, so a larger scan would give many
# more and train far longer), one batch per epoch; a 32-channel energy window keeps the checkpoint near
# 30 MB, so writing it takes long enough to be caught in the middle. Every
# run names --epochs (without it eelsvae-train raises the epochs to 900
# optimiser steps). The window and tile make a new model only: a run that
# resumes takes them from the checkpoint, and refuses them (checked below).
train=("$bin/eelsvae-train" "$cube" --energy-offset 420 --energy-scale 0.3 --threads 2 --batch 4 --quiet)
new_model=(--window 686:695.5 --tile 24)
model=$tmp/model.evae
ck=$tmp/ck.evae

"${train[@]}" "${new_model[@]}" --model "$tmp/ref.evae" --epochs "$epochs" --seed 3 2>"$tmp/err" ||
  fail "reference run: $(cat "$tmp/err")"
"${train[@]}" "${new_model[@]}" --model "$tmp/old.evae" --epochs 1 --seed 9 --checkpoint "$tmp/ck0.evae" \
  2>"$tmp/err" || fail "old model: $(cat "$tmp/err")"
# Resuming takes the checkpoint's model: another window or tile is a usage error.
set +e; "${train[@]}" --window 686:695.5 --resume "$tmp/ck0.evae" --epochs 2 --model "$tmp/probe.evae" \
  2>"$tmp/err"; rc=$?; set -e
[[ $rc -eq 2 ]] && grep -q -- "--resume continues the checkpoint's model" "$tmp/err" ||
  fail "--resume with --window: rc $rc, $(cat "$tmp/err") (expected 2 and a usage error)"
rm -f "$tmp/ck0.evae" "$tmp/probe.evae"
cmp -s "$tmp/ref.evae" "$tmp/old.evae" && fail "the old and the reference model are the same file"
cp "$tmp/old.evae" "$model"

# The checkpoint loads (eelsvae_model_load): resuming for "1 epoch" from a
# checkpoint past epoch 1 has nothing to train and saves what it loaded.
loads() {
  "${train[@]}" --resume "$1" --epochs 1 --model "$tmp/probe.evae" 2>"$tmp/err" ||
    fail "$2: $1 does not load: $(cat "$tmp/err")"
}

# Wait until a file matching the glob exists, or the process ends (1).
wait_for() {
  local glob=$1
  for _ in $(seq 1 20000); do
    compgen -G "$glob" >/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.003
  done
  return 1
}

start() {
  local resume=("${new_model[@]}")
  [[ -f $ck ]] && resume=(--resume "$ck")
  "${train[@]}" "${resume[@]}" --model "$model" --checkpoint "$ck" --epochs "$epochs" --seed 3 2>"$tmp/run.err" &
  pid=$!
}

# kind: random (a random moment), checkpoint (while the checkpoint is being
# written), model (while the model file is being written).
kills=0 mid_write=0 leftovers=0
for kind in checkpoint random checkpoint random checkpoint random random model; do
  start
  caught=yes
  case $kind in
    random) ms=$(( 50 + RANDOM % 1500 )); sleep "$(( ms / 1000 )).$(printf %03d $(( ms % 1000 )))" ;;
    checkpoint) wait_for "$ck.tmp.*" || caught=no ;;
    model) wait_for "$model.tmp.*" || caught=no ;;
  esac
  kill -9 "$pid" 2>/dev/null || true # it may have finished on its own
  set +e; wait "$pid" 2>/dev/null; rc=$?; set -e
  pid=
  finished=no
  if [[ $rc -eq 0 ]]; then finished=yes
  elif [[ $rc -ne 137 ]]; then fail "round $kind: eelsvae-train exited $rc: $(cat "$tmp/run.err")"
  else kills=$((kills + 1)); fi
  [[ $kind != random && $caught == yes && $rc -eq 137 ]] && mid_write=$((mid_write + 1))
  left=$(compgen -G "$tmp/*.tmp.*" | wc -l || true)
  echo "round $kind: killed $([[ $rc -eq 137 ]] && echo yes || echo no)," \
    "$([[ $kind == random ]] && echo "at a random moment" || echo "while writing: $caught")," \
    "temporaries left $left, run finished $finished"

  # Only temporaries may be left beside the files.
  for f in "$tmp"/*; do
    case $f in
      "$tmp"/si|"$tmp"/err|"$tmp"/run.err|"$model"|"$ck"|"$tmp"/ref.evae|"$tmp"/old.evae|"$tmp"/probe.evae) ;;
      "$ck".tmp.*|"$model".tmp.*) leftovers=$((leftovers + 1)); rm -f "$f" ;;
      *) fail "round $kind: unexpected file $f" ;;
    esac
  done
  [[ -f $ck ]] && loads "$ck" "round $kind"
  # The model file is the old one or the whole new one (a kill can land
  # between the rename and the exit); a finished run leaves the new one.
  if [[ $finished == yes ]]; then
    cmp -s "$model" "$tmp/ref.evae" || fail "round $kind: the finished run's model differs from the reference"
  elif ! cmp -s "$model" "$tmp/old.evae" && ! cmp -s "$model" "$tmp/ref.evae"; then
    fail "round $kind: after a kill the model file is neither the old one nor the new one"
  fi
done

# Finish from the last checkpoint: the very model of the uninterrupted run.
start
set +e; wait "$pid"; rc=$?; set -e
pid=
[[ $rc -eq 0 ]] || fail "final resume exited $rc: $(cat "$tmp/run.err")"
cmp -s "$model" "$tmp/ref.evae" || fail "the resumed model differs from the uninterrupted run's"
(( mid_write >= 2 )) || fail "only $mid_write kills landed during a write; the test did not test atomicity"
echo "$kills kills ($mid_write during a write, $leftovers temporaries left behind and removed); resumed model identical"
echo "1 passed, 0 failed"
