#!/usr/bin/env bash
# Real spectrum images through the programs with defaults plus an edge name:
#  1. a 1.5 eV shift of the Ti L edge, and separately of the Mn L edge, is
#     injected into a 3 × 3 block of the Nion LSMO/STO SI (tests/data/real,
#     49 × 6 pixels × 1024 channels, MIT); eelsvae-train models the
#     un-injected SI (its clean twin, the paper's protocol) and eelsvae-detect
#     scores the injected one, and eelsvae-pca fits the injected one itself:
#     the injected pixels must rank first (ROC-AUC ≥ 0.95), the programs
#     must choose the spatial mean by the noise (none over Ti L, 3 × 3 over
#     Mn L), the maps must open in HyperSpy with the SI's spatial axes and
#     the provenance;
#  2. a DM4 SI of HyperSpy's test corpus: its maps open in HyperSpy with the
#     DM4's spatial axes, and the TIFF reads back (tifffile) with its pixel size;
#  3. every 3-D EELS SI of HyperSpy's test corpus goes through train and
#     detect with default options, or is refused with a message that says what
#     is too small.
# usage: real_si_test.sh EXAMPLES_DIR          (exit 77: no HyperSpy/tifffile)
set -euo pipefail
bin=$1
src=${EELSVAE_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
py=${EELSVAE_PYTHON:-/usr/bin/python3}
real=$src/tests/data/real/nion_LSMO-STO_SI-EELS.dm3
corpus=$("$py" -c 'import hyperspy, os; print(os.path.join(os.path.dirname(hyperspy.__file__), "tests", "io"))' 2>/dev/null) ||
  { echo "SKIP: $py cannot import hyperspy"; exit 77; }
"$py" -c 'import tifffile' 2>/dev/null || { echo "SKIP: $py cannot import tifffile"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# metric FILE KEY → the value in a metrics.json
metric() { "$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
at_least() { "$py" -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)' "$1" "$2"; }

# ---- 1. injected edge shifts in the real SI --------------------------------
check_edge() { # NAME EDGE LO HI MEAN_FILTER PIXELS…
  local name=$1 edge=$2 lo=$3 hi=$4 mean=$5; shift 5
  local d=$tmp/$name
  mkdir -p "$d"
  "$py" "$src/tests/data/inject_edge_shift.py" "$real" "$d/si.hspy" "$d/truth.npy" "$lo" "$hi" 1.5 "$@" 2>/dev/null ||
    fail "$name: injection"
  "$bin/eelsvae-train" "$real" --edge "$edge" --model "$d/m.evae" --no-outlier-mode --quiet 2>"$d/train.err" ||
    fail "$name: eelsvae-train: $(cat "$d/train.err")"
  "$bin/eelsvae-detect" "$d/si.hspy" --model "$d/m.evae" --edge "$edge" --out "$d/vae" --truth "$d/truth.npy" \
    --map-format hspy,tiff >"$d/detect.out" 2>"$d/detect.err" || fail "$name: eelsvae-detect: $(cat "$d/detect.err")"
  grep -q "edges inside .*$edge" "$d/detect.err" ||
    fail "$name: eelsvae-detect does not list $edge among the edges inside its window"
  "$bin/eelsvae-pca" "$d/si.hspy" --edge "$edge" --out "$d/pca" --truth "$d/truth.npy" >"$d/pca.out" 2>"$d/pca.err" ||
    fail "$name: eelsvae-pca: $(cat "$d/pca.err")"
  local chose=none
  grep -q "^noise: .*3 x 3 mean" "$d/pca.err" && chose=3
  grep -q "^noise: .*no spatial mean needed" "$d/pca.err" && chose=1
  [[ $chose == "$mean" ]] || fail "$name: eelsvae-pca chose mean filter $chose, expected $mean: $(grep noise "$d/pca.err")"
  grep -q "^noise: .*$( [[ $mean == 3 ]] && echo "3 x 3 mean" || echo "no spatial mean")" "$d/train.err" ||
    fail "$name: eelsvae-train did not choose mean filter $mean: $(grep noise "$d/train.err")"
  for method in vae pca; do
    local roc ap
    roc=$(metric "$d/$method/metrics.json" roc_auc)
    ap=$(metric "$d/$method/metrics.json" pr_auc)
    echo "$name $method: ROC-AUC $roc, PR-AUC $ap"
    at_least "$roc" 0.95 || fail "$name $method: ROC-AUC $roc < 0.95 (PR-AUC $ap)"
  done
  # The maps in HyperSpy: a Signal2D with the SI's spatial axes and the provenance.
  "$py" - "$real" "$d/vae/score.hspy" "$d/vae/mask.hspy" "$edge" <<'PY' || fail "$name: maps in HyperSpy"
import logging, sys, warnings
logging.disable(logging.CRITICAL); warnings.filterwarnings("ignore")
import hyperspy.api as hs
si, score, mask, edge = sys.argv[1:5]
def describe(a):  # no units: '' in one file, traits' Undefined in another
    return a.size, a.offset, a.scale, a.units if isinstance(a.units, str) else ""
ref = hs.load(si).axes_manager.navigation_axes        # x, y
for path in (score, mask):
    s = hs.load(path)
    assert s._signal_dimension == 2, (path, s)
    got = s.axes_manager.signal_axes
    for a, b in zip(got, ref):
        assert describe(a) == describe(b), (path, describe(a), describe(b))
    p = s.metadata.Provenance
    assert p.source.endswith("si.hspy") and p.method == "vae" and p.model.endswith("m.evae"), p
    assert edge.split("-")[0] in p.energy_range and p.threshold_rule == "fdr:0.01", p
    float(p.threshold)
PY
}
# Ti is strong in rows 0–17 and 29–48 (STO), Mn in the LSMO side: blocks where each edge is.
check_edge ti Ti-L 446 492 1 6,1 6,2 6,3 7,1 7,2 7,3 8,1 8,2 8,3
check_edge mn Mn-L 630 681 3 38,1 38,2 38,3 39,1 39,2 39,3 40,1 40,2 40,3

# ---- 2. a DM4 SI: maps with the DM4's axes, and a TIFF with its pixel size --
dm4=$corpus/dm4_3D_data/EELS_SI.dm4
if [[ -f $dm4 ]]; then
  "$bin/eelsvae-pca" "$dm4" --components 2 --trim 0 --out "$tmp/dm4" --map-format hspy,tiff >/dev/null 2>"$tmp/dm4.err" ||
    fail "eelsvae-pca on $dm4: $(cat "$tmp/dm4.err")"
  "$py" - "$dm4" "$tmp/dm4" <<'PY' || fail "DM4 maps"
import logging, sys, warnings
logging.disable(logging.CRITICAL); warnings.filterwarnings("ignore")
import hyperspy.api as hs, numpy as np, tifffile
dm4, out = sys.argv[1:3]
ref = hs.load(dm4).axes_manager.navigation_axes
s = hs.load(out + "/score.hspy")
def describe(a):  # no units: '' in one file, traits' Undefined in another
    return a.size, a.offset, a.scale, a.units if isinstance(a.units, str) else ""
for a, b in zip(s.axes_manager.signal_axes, ref):
    assert describe(a) == describe(b), (describe(a), describe(b))
with tifffile.TiffFile(out + "/score.tif") as t:
    page = t.pages[0]
    assert np.array_equal(page.asarray(), s.data), "TIFF and .hspy maps differ"
    xres, yres = page.tags["XResolution"].value, page.tags["YResolution"].value
    for (num, den), axis in ((xres, ref[0]), (yres, ref[1])):
        assert abs(den / num - axis.scale) <= 1e-6 * axis.scale, (num, den, axis.scale)
    unit = t.imagej_metadata["unit"]
    assert unit == {"µm": "micron"}.get(ref[0].units, ref[0].units), unit
    assert "EELS_SI.dm4" in t.imagej_metadata["Info"]
PY
fi

# ---- 3. every 3-D EELS SI of the corpus: trained and detected, or refused clearly
"$py" - "$corpus" >"$tmp/corpus.txt" <<'PY'
import glob, logging, os, sys, warnings
logging.disable(logging.CRITICAL); warnings.filterwarnings("ignore")
import hyperspy.api as hs
root = sys.argv[1]
for pattern in ("**/*.dm3", "**/*.dm4", "**/*.hspy", "**/*.rpl"):
    for path in sorted(glob.glob(os.path.join(root, pattern), recursive=True)):
        try:
            signals = hs.load(path)
        except Exception:
            continue
        for s in signals if isinstance(signals, list) else [signals]:
            if (s.data.ndim == 3 and s.axes_manager.signal_dimension == 1
                    and s.metadata.get_item("Signal.signal_type", "") == "EELS"):
                print(path)
                break
PY
count=$(wc -l <"$tmp/corpus.txt")
[[ $count -ge 1 ]] || fail "no 3-D EELS SI found in $corpus"
while read -r f; do
  set +e
  "$bin/eelsvae-train" "$f" --model "$tmp/c.evae" --quiet 2>"$tmp/c.err"; rc=$?
  set -e
  if [[ $rc -eq 0 ]]; then
    "$bin/eelsvae-detect" "$f" --model "$tmp/c.evae" --out "$tmp/c" >/dev/null 2>"$tmp/c.err" ||
      fail "$f trained but eelsvae-detect failed: $(cat "$tmp/c.err")"
    echo "corpus: $f trained and detected"
  else
    [[ $rc -eq 1 ]] || fail "$f: eelsvae-train exited $rc"
    grep -q "the smallest scan it accepts is" "$tmp/c.err" || fail "$f: unclear refusal: $(cat "$tmp/c.err")"
    echo "corpus: $f refused: $(tail -1 "$tmp/c.err" | sed 's/.*smaller/smaller/')"
  fi
done <"$tmp/corpus.txt"
echo "real SIs: Ti and Mn shifts found, DM4 maps calibrated, $count corpus SIs handled"
