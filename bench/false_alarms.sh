#!/usr/bin/env bash
# How many pixels does a threshold rule flag on spectrum images that hold no
# anomaly at all? Synthesises the clean SI of each seed (eelsvae-synth), runs
# eelsvae-pca on it (and eelsvae-detect with --model) under each rule, and
# prints the flagged fraction per seed with its mean and worst over the seeds.
#
#   bench/false_alarms.sh [--build DIR] [--out DIR] [--seeds "11 12 13 14 15"]
#                         [--rules "otsu fdr:0.01"] [--model FILE]
#                         [--synth "ARGS"] [--args "ARGS"]
#
#   --build DIR   meson build directory holding examples/ (default build)
#   --out DIR     work directory (default: a temporary one, removed at the end)
#   --seeds LIST  seeds of the anomaly-free SIs (default 11 12 13 14 15: none is
#                 the benchmark's seed 1, which a model may have been trained on)
#   --rules LIST  threshold rules (default "otsu fdr:0.01 fdr:0.05")
#   --model FILE  also run eelsvae-detect with this model from eelsvae-train
#   --synth ARGS  extra eelsvae-synth arguments, e.g. "--size 96 --dose 60"
#   --args ARGS   extra arguments of both detectors, e.g. "--edge Fe-L"
set -euo pipefail

build=build out="" seeds="11 12 13 14 15" rules="otsu fdr:0.01 fdr:0.05" model="" synth_args="" det_args=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --rules) rules=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --synth) synth_args=$2; shift 2 ;;
    --args) det_args=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "false_alarms.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
bin="$build/examples"
[[ -x "$bin/eelsvae-synth" ]] || { echo "false_alarms.sh: no $bin/eelsvae-synth: build first (tools/test.sh)" >&2; exit 2; }
if [[ -z "$out" ]]; then out=$(mktemp -d); trap 'rm -rf "$out"' EXIT; fi

# The "flagged N of M pixels" line of a detector → "N M".
flagged() { awk '/^flagged / {print $2, $4}'; }

methods=(pca)
[[ -n "$model" ]] && methods+=(vae)
declare -A frac
for seed in $seeds; do
  si="$out/seed$seed"
  # shellcheck disable=SC2086 # the extra arguments are word lists on purpose
  "$bin/eelsvae-synth" --out "$si" --seed "$seed" --shifts 2.4 $synth_args >/dev/null
  for method in "${methods[@]}"; do
    for rule in $rules; do
      dir="$si/$method-${rule//:/_}"
      if [[ $method == pca ]]; then
        # shellcheck disable=SC2086
        line=$("$bin/eelsvae-pca" "$si/clean.npy" --out "$dir" --threshold "$rule" $det_args 2>"$dir.log" | flagged)
      else
        # shellcheck disable=SC2086
        line=$("$bin/eelsvae-detect" "$si/clean.npy" --model "$model" --out "$dir" --threshold "$rule" $det_args \
               2>"$dir.log" | flagged)
      fi
      read -r n total <<<"$line"
      frac[$method,$rule,$seed]=$(awk -v n="$n" -v t="$total" 'BEGIN {printf "%.4f", 100 * n / t}')
      printf 'seed %s  %-4s %-14s flagged %6s of %s (%s %%)\n' "$seed" "$method" "$rule" "$n" "$total" \
        "${frac[$method,$rule,$seed]}"
    done
  done
done

echo
echo "anomaly-free SIs, seeds: $seeds"
printf '| method | rule | mean flagged %% | worst flagged %% |\n|---|---|---|---|\n'
for method in "${methods[@]}"; do
  for rule in $rules; do
    values=()
    for seed in $seeds; do values+=("${frac[$method,$rule,$seed]}"); done
    printf '%s\n' "${values[@]}" | awk -v m="$method" -v r="$rule" \
      '{s += $1; if ($1 > w) w = $1; n++} END {printf "| %s | %s | %.3f | %.3f |\n", m, r, s / n, w}'
  done
done
