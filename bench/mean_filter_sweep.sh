#!/usr/bin/env bash
# When does the 3 x 3 spatial mean help? Synthesises the realistic SI
# (eelsvae-synth --noise paper) at a range of doses, runs eelsvae-pca on its
# shifted SIs with --mean-filter 1 and 3, and prints per dose the noise PCC
# the programs estimate (what eelsvae_preprocess_options_choose_mean_filter
# decides by) and, for each shift, PCA's PR-AUC and its F1 at the default
# rule without and with the mean. The evidence behind
# EELSVAE_MEAN_FILTER_BELOW_PCC (docs/preprocessing.md).
#
#   bench/mean_filter_sweep.sh [--build DIR] [--out DIR] [--doses "9 30 60 …"]
#                              [--shifts 0.9,2.4] [--synth "ARGS"]
#
#   --build DIR   meson build directory holding examples/ (default build)
#   --out DIR     work directory (default: a temporary one, removed at the end)
#   --doses LIST  doses (default "9 15 30 60 120 250 500 1000")
#   --shifts LIST shifts in eV (default 0.9,2.4)
#   --synth ARGS  eelsvae-synth's geometry (default "--size 128 --disks 4 --radius 6")
set -euo pipefail

build=build out="" doses="9 15 30 60 120 250 500 1000" shifts=0.9,2.4 synth_args="--size 128 --disks 4 --radius 6"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --doses) doses=$2; shift 2 ;;
    --shifts) shifts=$2; shift 2 ;;
    --synth) synth_args=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "mean_filter_sweep.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
bin="$build/examples"
[[ -x "$bin/eelsvae-synth" ]] || { echo "mean_filter_sweep.sh: no $bin/eelsvae-synth: build first" >&2; exit 2; }
if [[ -z "$out" ]]; then out=$(mktemp -d); trap 'rm -rf "$out"' EXIT; fi

# A value of eelsvae-pca's metrics.json, to 3 decimals.
metric() { sed -n "s/^ *\"$2\": *\\([-0-9.e]*\\),\$/\\1/p" "$1" | awk '{printf "%.3f", $1}'; }

printf '| dose | noise PCC | ΔE (eV) | PR-AUC, no mean | PR-AUC, 3 x 3 | F1 at the rule, no mean | F1, 3 x 3 |\n'
printf '|---|---|---|---|---|---|---|\n'
for dose in $doses; do
  si="$out/dose$dose"
  # shellcheck disable=SC2086 # the extra arguments are a word list on purpose
  "$bin/eelsvae-synth" --out "$si" --noise paper --dose "$dose" --shifts "$shifts" $synth_args >/dev/null 2>&1
  for shift in ${shifts//,/ }; do
    row="| $dose |"
    for k in 1 3; do
      dir="$si/pca_${shift}_mean$k"
      "$bin/eelsvae-pca" "$si/shift_$shift.npy" --out "$dir" --edge Fe-L --mean-filter "$k" \
        --truth "$si/mask.npy" --map-format npy >/dev/null 2>"$dir.log"
    done
    # The estimate, from a run that chose for itself.
    "$bin/eelsvae-pca" "$si/shift_$shift.npy" --out "$si/pca_${shift}_auto" --edge Fe-L --map-format npy \
      >/dev/null 2>"$si/auto.log"
    pcc=$(sed -n 's/^noise: a perfect reconstruction would reach PCC \([0-9.]*\).*/\1/p' "$si/auto.log")
    m1="$si/pca_${shift}_mean1/metrics.json" m3="$si/pca_${shift}_mean3/metrics.json"
    printf '%s %s | %s | %s | %s | %s | %s |\n' "$row" "$pcc" "$shift" "$(metric "$m1" pr_auc)" \
      "$(metric "$m3" pr_auc)" "$(metric "$m1" f1)" "$(metric "$m3" f1)"
  done
done
