#!/usr/bin/env bash
# Should a model judge new maps against the scores of the SI it was trained
# on, rather than against each map's own bulk (eelsvae_score_p_values)?
# Scores the training SI and, for each seed, an anomaly-free SI and the same
# SI with a shift in disks, with eelsvae-detect; then flags each map at
# fdr:0.01 twice: against its own median/MAD of log(1 - PCC), and against
# those of the training SI's map. Prints flagged pixels (anomaly-free) and
# F1 (shifted) for both references.
#
#   bench/model_reference.sh --model FILE --train CUBE [--build DIR] [--out DIR]
#                            [--seeds "11 12 13 14 15"] [--shift EV] [--args "ARGS"]
#
#   --model FILE  a model from eelsvae-train (e.g. trained on eelsvae-synth's
#                 seed-1 clean.npy with --edge Fe-L)
#   --train CUBE  the SI it was trained on
#   --build DIR   meson build directory holding examples/ (default build)
#   --out DIR     work directory (default: a temporary one, removed at the end)
#   --seeds LIST  seeds of the new SIs (default 11 12 13 14 15)
#   --shift EV    shift injected into the disks of each new SI (default 2.4)
#   --args ARGS   extra eelsvae-detect arguments (default "--edge Fe-L")
set -euo pipefail

build=build out="" seeds="11 12 13 14 15" shift_ev=2.4 model="" train="" det_args="--edge Fe-L"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --shift) shift_ev=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --train) train=$2; shift 2 ;;
    --args) det_args=$2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "model_reference.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ -n "$model" && -n "$train" ]] || { echo "model_reference.sh: --model and --train are required (see --help)" >&2; exit 2; }
bin="$build/examples"
[[ -x "$bin/eelsvae-detect" ]] || { echo "model_reference.sh: no $bin/eelsvae-detect: build first" >&2; exit 2; }
if [[ -z "$out" ]]; then out=$(mktemp -d); trap 'rm -rf "$out"' EXIT; fi

# det_args is a list of arguments, split on purpose.
# shellcheck disable=SC2086
detect() { "$bin/eelsvae-detect" "$1" --model "$model" $det_args --out "$2" --map-format npy "${@:3}" >/dev/null 2>"$2.log" ||
  { echo "model_reference.sh: eelsvae-detect $1 failed: $(cat "$2.log")" >&2; exit 1; }; }
detect "$train" "$out/train"
for s in $seeds; do
  "$bin/eelsvae-synth" --out "$out/si$s" --seed "$s" --shifts "$shift_ev" >/dev/null 2>"$out/synth.log" ||
    { echo "model_reference.sh: eelsvae-synth --seed $s failed: $(cat "$out/synth.log")" >&2; exit 1; }
  detect "$out/si$s/clean.npy" "$out/clean$s"
  detect "$out/si$s/shift_$shift_ev.npy" "$out/shift$s"
  rm -f "$out/si$s/expected.npy"
done

/usr/bin/python3 - "$out" "$shift_ev" $seeds <<'EOF'
import sys
import numpy as np
from scipy.special import ndtr
out, shift, seeds = sys.argv[1], sys.argv[2], sys.argv[3:]

def log_distance(path):
    return np.log(np.maximum(1.0 - np.load(path).astype(float).ravel(), 1e-12))

def robust_fit(t):  # the library's: median and 1.4826 × MAD
    m = np.median(t)
    return m, 1.4826 * np.median(np.abs(t - m))

def flagged(t, ref, q=0.01):  # Benjamini–Hochberg over one-sided normal p-values
    p = ndtr(-(t - ref[0]) / ref[1])
    o = np.sort(p)
    k = np.nonzero(o <= q * np.arange(1, p.size + 1) / p.size)[0]
    return p <= o[k[-1]] if k.size else np.zeros(p.size, bool)

trained = robust_fit(log_distance(out + "/train/score.npy"))
print("training SI's reference: centre %.3f, spread %.3f of log(1 - PCC)" % trained)
print("seed | own map: anomaly-free flagged, F1 at %s eV | training SI: the same | own centre, spread" % shift)
for s in seeds:
    clean, shifted = log_distance(out + "/clean%s/score.npy" % s), log_distance(out + "/shift%s/score.npy" % s)
    truth = np.load(out + "/si%s/mask.npy" % s).ravel() > 0
    f1 = lambda m: 2.0 * (m & truth).sum() / (m.sum() + truth.sum())
    own = (flagged(clean, robust_fit(clean)).sum(), f1(flagged(shifted, robust_fit(shifted))))
    model = (flagged(clean, trained).sum(), f1(flagged(shifted, trained)))
    print("%4s | %6d, %.3f | %6d, %.3f | %.3f, %.3f" % (s, *own, *model, *robust_fit(clean)))
EOF
