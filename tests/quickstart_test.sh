#!/usr/bin/env bash
# The docs' main page shows examples/eelsvae-quickstart.c; this runs it, so
# the walkthrough cannot rot: on a small cube from eelsvae-synth (a Fe SI)
# with EDGE Fe-L it must write a (y, x) float32 PCC map, and agree with
# `eelsvae-pca --edge Fe-L`, which runs the same pipeline (the fast
# preprocessing, its mean filter chosen for the noise; 4 components fitted with trim
# 0.1; PCC over the Fe-L2,3 window, 698–751 eV; the default rule fdr:0.01): the
# same score map (to 1e-6) and the same number of anomalous pixels. Without
# EDGE it scores the whole energy axis and must agree with eelsvae-pca
# without --edge/--window; a .npy without EV0 DEV still scores the whole
# axis (channel numbers need no calibration) but not an edge; an unknown
# edge is refused naming it. With NumPy (/usr/bin/python3) it also checks
# that the count it prints is that of the scores at or below the printed
# threshold, and that the Fe-L scores rank the injected disks low (ROC-AUC
# against the truth above 0.75; chance is 0.5).
# usage: quickstart_test.sh BUILD_EXAMPLES_DIR
set -euo pipefail
bin=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/eelsvae-quickstart.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
qs=$bin/eelsvae-quickstart

"$qs" --help | grep "^Usage: eelsvae-quickstart " >/dev/null || fail "--help"
set +e; "$qs" >/dev/null 2>"$tmp/err"; rc=$?; set -e
[[ $rc -eq 2 ]] && grep -q "^Usage:" "$tmp/err" || fail "no arguments: rc $rc, expected 2 and the usage"
set +e; "$qs" "$tmp/no-such.npy" "$tmp/s.npy" 2>"$tmp/err"; rc=$?; set -e
[[ $rc -eq 1 ]] && grep -q "EELSVAE_ERR_IO: .*no-such.npy" "$tmp/err" ||
  fail "a missing file: rc $rc, $(cat "$tmp/err") (expected 1 and EELSVAE_ERR_IO naming the file)"

set +e; "$qs" a b c d e f >/dev/null 2>"$tmp/err"; rc=$?; set -e
[[ $rc -eq 2 ]] && grep -q "^Usage:" "$tmp/err" || fail "six arguments: rc $rc, expected 2 and the usage"

"$bin/eelsvae-synth" --out "$tmp/si" --size 48 --shifts 5.4 --disks 2 --radius 5 >/dev/null 2>&1 ||
  fail "eelsvae-synth"
# An edge name the table lacks is refused, naming it, before any work.
set +e; "$qs" "$tmp/si/shift_5.4.npy" "$tmp/s.npy" Xx-L 420 0.3 >/dev/null 2>"$tmp/err"; rc=$?; set -e
[[ $rc -eq 1 ]] && grep -q "EELSVAE_ERR_INVALID_ARGUMENT: .*Xx-L" "$tmp/err" ||
  fail "an unknown edge: rc $rc, $(cat "$tmp/err") (expected 1 and EELSVAE_ERR_INVALID_ARGUMENT naming it)"
[[ ! -e $tmp/s.npy ]] || fail "an unknown edge still wrote a score map"
# An edge window on a .npy without EV0 DEV: the library reads no sidecar, so
# the axis is uncalibrated and an energy in eV names no channel.
set +e; "$qs" "$tmp/si/shift_5.4.npy" "$tmp/s.npy" Fe-L >/dev/null 2>"$tmp/err"; rc=$?; set -e
[[ $rc -eq 1 ]] && grep -q "EELSVAE_ERR_RANGE: .*uncalibrated" "$tmp/err" ||
  fail "an edge on an uncalibrated .npy: rc $rc, $(cat "$tmp/err") (expected 1 and EELSVAE_ERR_RANGE)"
"$qs" "$tmp/si/shift_5.4.npy" "$tmp/score.npy" Fe-L 420 0.3 >"$tmp/out" 2>"$tmp/err" ||
  fail "eelsvae-quickstart: $(cat "$tmp/err")"
# The whole energy axis: with the calibration, and without it (channels).
"$qs" "$tmp/si/shift_5.4.npy" "$tmp/score_all.npy" 420 0.3 >"$tmp/out_all" 2>"$tmp/err" ||
  fail "eelsvae-quickstart over the whole axis: $(cat "$tmp/err")"
"$qs" "$tmp/si/shift_5.4.npy" "$tmp/score_bare.npy" >"$tmp/out_bare" 2>"$tmp/err" ||
  fail "eelsvae-quickstart over the whole axis, no EV0 DEV: $(cat "$tmp/err")"
cmp -s "$tmp/out_all" "$tmp/out_bare" && cmp -s "$tmp/score_all.npy" "$tmp/score_bare.npy" ||
  fail "the whole axis in channels and in eV give other results"
cmp -s "$tmp/out" "$tmp/out_all" && fail "scoring Fe-L and the whole axis print the same: $(cat "$tmp/out")"
anomalous_all=$(awk '/^anomalous / {print $2}' "$tmp/out_all")
threshold=$(awk '/^threshold / {print $2}' "$tmp/out")
anomalous=$(awk '/^anomalous / {print $2}' "$tmp/out")
grep -q "^anomalous [0-9]* of 2304 pixels$" "$tmp/out" || fail "unexpected output: $(cat "$tmp/out")"
"$bin/eelsvae-info" "$tmp/score.npy" >"$tmp/info" || fail "eelsvae-info on the score map"
grep -q "(48, 48)" "$tmp/info" && grep -q "float32" "$tmp/info" || fail "the score map is not 48 × 48 float32: $(cat "$tmp/info")"

"$bin/eelsvae-pca" "$tmp/si/shift_5.4.npy" --components 4 --trim 0.1 --edge Fe-L --out "$tmp/pca" \
  --map-format npy --energy-offset 420 --energy-scale 0.3 >/dev/null 2>"$tmp/err" || fail "eelsvae-pca: $(cat "$tmp/err")"
grep -q "scoring the Fe-L2,3 edge, 698 … 751 eV" "$tmp/err" || fail "eelsvae-pca --edge Fe-L: not 698–751 eV: $(cat "$tmp/err")"
"$bin/eelsvae-pca" "$tmp/si/shift_5.4.npy" --components 4 --trim 0.1 --out "$tmp/pca_all" \
  --map-format npy --energy-offset 420 --energy-scale 0.3 >/dev/null 2>"$tmp/err" ||
  fail "eelsvae-pca over the whole axis: $(cat "$tmp/err")"

py=${EELSVAE_PYTHON:-/usr/bin/python3}
if [[ -x "$py" ]] && "$py" -c 'import numpy' 2>/dev/null; then
  "$py" - "$tmp" "$threshold" "$anomalous" "$anomalous_all" <<'EOF' || fail "the quickstart's results (see above)"
import sys
import numpy as np
tmp, threshold, anomalous, anomalous_all = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
score = np.load(tmp + "/score.npy")
truth = np.load(tmp + "/si/mask.npy").astype(bool)
problems = []
if score.shape != (48, 48) or score.dtype != np.float32:
    problems.append("score map is %s %s, not (48, 48) float32" % (score.shape, score.dtype))
# Fe-L window and whole axis: the maps and counts of eelsvae-pca's runs.
for name, mine, pca, count in (("Fe-L", "score", "pca", anomalous), ("whole axis", "score_all", "pca_all", anomalous_all)):
    s, pca_score, pca_mask = np.load(tmp + "/" + mine + ".npy"), np.load(tmp + "/" + pca + "/score.npy"), np.load(tmp + "/" + pca + "/mask.npy")
    if s.shape != pca_score.shape or not np.allclose(s, pca_score, rtol=0, atol=1e-6):
        problems.append("%s: score map differs from eelsvae-pca's by up to %g" % (name, np.abs(s - pca_score).max()))
    if count != int(np.count_nonzero(pca_mask)):
        problems.append("%s: %d anomalous pixels, eelsvae-pca finds %d" % (name, count, np.count_nonzero(pca_mask)))
# The threshold is printed to 6 decimals: allow the pixels within that rounding.
lo = np.count_nonzero(score <= threshold - 1e-6)
hi = np.count_nonzero(score <= threshold + 1e-6)
if not lo <= anomalous <= hi:
    problems.append("%d anomalous pixels, but %d…%d scores lie at or below %g" % (anomalous, lo, hi, threshold))
# ROC-AUC of −score (low PCC = anomalous), as the Mann–Whitney statistic.
a, n = score[truth], score[~truth]
auc = ((a[:, None] < n[None, :]).sum() + 0.5 * (a[:, None] == n[None, :]).sum()) / (a.size * n.size)
if not auc > 0.75:
    problems.append("ROC-AUC of the score map against the truth is %.3f, not above 0.75" % auc)
for p in problems:
    print("FAIL: " + p, file=sys.stderr)
print("quickstart: threshold %g, %d anomalous pixels, ROC-AUC %.3f" % (threshold, anomalous, auc))
sys.exit(1 if problems else 0)
EOF
else
  # Without NumPy: the same count as eelsvae-pca's mask, from its bytes
  # (a 2-D uint8 .npy is a header and then one byte per pixel).
  ones=$(tail -c 2304 "$tmp/pca/mask.npy" | od -An -v -tu1 | tr -s ' ' '\n' | grep -c '^1$' || true)
  [[ "$ones" -eq "$anomalous" ]] || fail "$anomalous anomalous pixels, eelsvae-pca finds $ones"
  ones=$(tail -c 2304 "$tmp/pca_all/mask.npy" | od -An -v -tu1 | tr -s ' ' '\n' | grep -c '^1$' || true)
  [[ "$ones" -eq "$anomalous_all" ]] || fail "whole axis: $anomalous_all anomalous pixels, eelsvae-pca finds $ones"
  echo "skipped: the NumPy checks (no NumPy in ${py})"
fi
echo "1 passed, 0 failed"
