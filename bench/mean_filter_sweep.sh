#!/usr/bin/env bash
# When does the 3 x 3 spatial mean help? Synthesises the realistic SI
# (eelsvae-synth --noise paper) at a range of doses, runs eelsvae-pca on its
# shifted SIs with --mean-filter 1 and 3, and prints per dose the noise PCC
# the programs estimate (what eelsvae_preprocess_options_choose_spatial
# decides by) and, for each shift, PCA's PR-AUC and its F1 at the default
# rule without and with the mean. The evidence behind
# EELSVAE_MEAN_FILTER_BELOW_PCC (docs/preprocessing.md). With --blur it
# compares the spatial blur instead (--spatial-sigma 0.5 and 0, the mean as
# the blurred run chose it), the evidence behind EELSVAE_SPATIAL_BLUR_BELOW_PCC.
#
#   bench/mean_filter_sweep.sh [--build DIR] [--out DIR] [--doses "9 30 60 …"]
#                              [--shifts 0.9,2.4] [--synth "ARGS"] [--blur]
#
#   --build DIR   meson build directory holding examples/ (default build)
#   --out DIR     work directory (default: a temporary one, removed at the end)
#   --doses LIST  doses (default "9 15 30 60 120 250 500 1000")
#   --shifts LIST shifts in eV (default 0.9,2.4)
#   --synth ARGS  eelsvae-synth's noise and geometry (default "--noise paper
#                 --size 128 --disks 4 --radius 6")
#   --blur        blur against none on y and x, scored over 690:730 eV
set -euo pipefail

build=build out="" doses="9 15 30 60 120 250 500 1000" shifts=0.9,2.4 blur=0
synth_args="--noise paper --size 128 --disks 4 --radius 6"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --doses) doses=$2; shift 2 ;;
    --shifts) shifts=$2; shift 2 ;;
    --synth) synth_args=$2; shift 2 ;;
    --blur) blur=1; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "mean_filter_sweep.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
bin="$build/examples"
[[ -x "$bin/eelsvae-synth" ]] || { echo "mean_filter_sweep.sh: no $bin/eelsvae-synth: build first" >&2; exit 2; }
if [[ -z "$out" ]]; then out=$(mktemp -d); trap 'rm -rf "$out"' EXIT; fi

# A value of eelsvae-pca's metrics.json, to 3 decimals.
metric() { sed -n "s/^ *\"$2\": *\\([-0-9.e]*\\),\$/\\1/p" "$1" | awk '{printf "%.3f", $1}'; }

# eelsvae-pca on shift $shift of SI $si with --mean-filter K, or choosing it (auto).
pca() { # K|auto
  local k=$1 dir="$si/pca_${shift}_$1"
  # shellcheck disable=SC2046 # no --mean-filter for auto, on purpose
  "$bin/eelsvae-pca" "$si/shift_$shift.npy" --out "$dir" --edge Fe-L --truth "$si/mask.npy" --map-format npy \
    $([[ $k == auto ]] || echo --mean-filter "$k") >/dev/null 2>"$dir.log"
}

# eelsvae-pca on shift $shift of SI $si with the blur's σ, the mean as the blurred run chose it.
blur_run() { # SIGMA
  local dir="$si/blur_${shift}_$1" mean=()
  [[ $1 == 0.5 ]] || mean=(--mean-filter "$chosen")
  "$bin/eelsvae-pca" "$si/shift_$shift.npy" --out "$dir" --window 690:730 --truth "$si/mask.npy" --map-format npy \
    --spatial-sigma "$1" "${mean[@]}" >/dev/null 2>"$dir.log"
}

if [[ $blur == 1 ]]; then
  printf '| dose | noise PCC | ΔE (eV) | PR-AUC, blur | PR-AUC, none | F1 at the rule, blur | F1, none |\n'
else
  printf '| dose | noise PCC | ΔE (eV) | PR-AUC, no mean | PR-AUC, 3 x 3 | F1 at the rule, no mean | F1, 3 x 3 |\n'
fi
printf '|---|---|---|---|---|---|---|\n'
for dose in $doses; do
  si="$out/dose$dose"
  # shellcheck disable=SC2086 # the extra arguments are a word list on purpose
  "$bin/eelsvae-synth" --out "$si" --dose "$dose" --shifts "$shifts" $synth_args >/dev/null 2>&1
  for shift in ${shifts//,/ }; do
    # The first run chooses the mean itself and prints the estimate. It gives
    # what its choice given explicitly gives (tests/smoke_examples.sh checks
    # that), so the mean sweep runs only the other setting; the blur sweep
    # runs without the blur, with the same mean.
    if [[ $blur == 1 ]]; then blur_run 0.5; log="$si/blur_${shift}_0.5.log"; else pca auto; log="$si/pca_${shift}_auto.log"; fi
    pcc=$(sed -n 's/^noise: a perfect reconstruction would reach PCC \([0-9.]*\).*/\1/p' "$log")
    if grep -q "^noise: .* mean (--mean-filter 1: none)" "$log"; then chosen=3 other=1; else chosen=1 other=3; fi
    if [[ $blur == 1 ]]; then
      blur_run 0
      m1="$si/blur_${shift}_0.5/metrics.json" m3="$si/blur_${shift}_0/metrics.json"
    else
      pca "$other"
      declare -A metrics=([$chosen]="$si/pca_${shift}_auto/metrics.json" [$other]="$si/pca_${shift}_$other/metrics.json")
      m1=${metrics[1]} m3=${metrics[3]}
    fi
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$dose" "$pcc" "$shift" "$(metric "$m1" pr_auc)" \
      "$(metric "$m3" pr_auc)" "$(metric "$m1" f1)" "$(metric "$m3" f1)"
  done
done
