#!/usr/bin/env bash
# --score of eelsvae-pca and eelsvae-detect: the option is in --help, a bad
# name is a usage error naming the option, and on a small synthetic SI with a
# 2.4 eV shift eelsvae-pca --score chi2 writes a chi-square map — labelled so
# in metrics.json, its title and its provenance (with the noise model) —
# whose mask is its high side, whose ROC-AUC is measured on that side
# (a ROC-AUC taken on PCC's low side would fall below 0.5), and whose
# --explain-top pixels are its highest scores.
# usage: score_kind_test.sh BUILD_EXAMPLES_DIR
set -euo pipefail
bin=$1
py=${EELSVAE_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

for p in eelsvae-pca eelsvae-detect; do
  "$bin/$p" --help >"$tmp/help"   # not piped into grep -q, whose early exit would SIGPIPE it under pipefail
  grep -q -- "--score NAME" "$tmp/help" || fail "$p --help does not list --score"
  set +e; "$bin/$p" x.npy --out "$tmp/x" --score pearson >/dev/null 2>"$tmp/err"; rc=$?; set -e
  [[ $rc -eq 2 ]] || fail "$p --score pearson exited $rc, expected 2"
  grep -q -- "--score: 'pearson' is not a score; choose pcc or chi2" "$tmp/err" || fail "$p: $(cat "$tmp/err")"
done

"$bin/eelsvae-synth" --out "$tmp/si" --size 48 --shifts 2.4 --disks 2 --radius 5 >/dev/null
for score in pcc chi2; do
  "$bin/eelsvae-pca" "$tmp/si/shift_2.4.npy" --components 3 --window 690:730 --out "$tmp/$score" --score "$score" \
    --threshold otsu \
    --map-format npy --truth "$tmp/si/mask.npy" --explain-top 2 >"$tmp/$score.out" 2>"$tmp/$score.err" ||
    fail "eelsvae-pca --score $score: $(cat "$tmp/$score.err")"
  grep -q "\"score\": \"$score\"" "$tmp/$score/metrics.json" || fail "metrics.json is not labelled $score"
done
grep -q "noise model: variance = " "$tmp/chi2.err" || fail "eelsvae-pca --score chi2 does not report its noise model"
! grep -q "noise model" "$tmp/pcc.err" || fail "eelsvae-pca --score pcc reports a noise model"

[[ -x $py ]] && "$py" -c 'import numpy' 2>/dev/null || { echo "SKIP: no NumPy: maps not read" >&2; exit 0; }
"$py" - "$tmp" <<'PY' || fail "the chi2 maps"
import json, sys
import numpy as np
tmp = sys.argv[1]
def load(kind):
    m = json.load(open(f"{tmp}/{kind}/metrics.json"))
    side = json.load(open(f"{tmp}/{kind}/score.npy.json"))["metadata"]
    return m, side, np.load(f"{tmp}/{kind}/score.npy"), np.load(f"{tmp}/{kind}/mask.npy")
pm, pside, pscore, pmask = load("pcc")
cm, cside, cscore, cmask = load("chi2")
assert cside["title"] == "chi-square score" and pside["title"] == "PCC score", (cside, pside)
assert "chi-square" in cside["provenance.score"] and "provenance.noise_model" in cside, cside
assert "provenance.noise_model" not in pside, pside
assert cside["provenance.noise_model"].startswith("variance = "), cside
# high = anomalous: the mask is the high side of the threshold; PCC's the low side.
t = cm["threshold"]
assert np.array_equal(cmask.astype(bool), cscore > t), "chi2 mask is not score > threshold"
assert np.array_equal(pmask.astype(bool), pscore <= pm["threshold"]), "pcc mask is not score <= threshold"
# ROC-AUC on the chi-square's own side: well above chance (below 0.5 on PCC's side).
assert cm["roc_auc"] > 0.8 and pm["roc_auc"] > 0.8, (cm["roc_auc"], pm["roc_auc"])
# --explain-top ranks on the kind's anomalous side: the 2 highest chi-squares, highest first.
top = np.genfromtxt(f"{tmp}/chi2/explain_top.csv", delimiter=",", names=True)
ranked = [float(top["score"][top["rank"] == r][0]) for r in (1, 2)]
assert np.allclose(ranked, np.sort(cscore.ravel())[::-1][:2], rtol=1e-6), ranked
# The bulk's chi-square is about 1: its median is within 0.7 … 1.3.
med = float(np.median(cscore))
assert 0.7 < med < 1.3, med
PY
