#!/usr/bin/env bash
# Smoke test of the example programs: --help, usage errors, and a small
# synthesise → PCA run whose outputs are checked for shape and sense.
# usage: smoke_examples.sh BUILD_EXAMPLES_DIR
set -euo pipefail
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

for p in eelsvae-synth eelsvae-pca eelsvae-info eelsvae-train eelsvae-detect eelsvae-convert; do
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

# ---- files in any format, with their calibration -----------------------------
# A .npy SI with a sidecar si.npy.json (as eelsvae-convert writes): awkward
# doubles that must round-trip, a non-ASCII unit, a string needing escapes.
py=/usr/bin/python3
have_numpy=0
[[ -x $py ]] && $py -c 'import numpy' 2>/dev/null && have_numpy=1
skip() { echo "SKIP: $*" >&2; }
mkdir -p "$tmp/cal"
cp "$tmp/si/shift_2.4.npy" "$tmp/cal/si.npy"
cat >"$tmp/cal/si.npy.json" <<'EOF'
{"shape": [48, 48, 1334], "dtype": "float32",
 "axes": [{"name": "y", "size": 48, "offset": -1.5, "scale": 0.1, "units": "nm", "navigate": true},
          {"name": "x", "size": 48, "offset": 2.25, "scale": 0.30000000000000004, "units": "\u00b5m", "navigate": true},
          {"name": "Energy loss", "size": 1334, "offset": 420, "scale": 0.3, "units": "eV", "navigate": false}],
 "metadata": {"title": "synthetic \"BiFeO3\"\tSI \\ 1", "beam_energy_kev": "200", "signal_type": "EELS"}}
EOF
"$bin/eelsvae-info" --json "$tmp/cal/si.npy" >"$tmp/info.json" || fail "eelsvae-info --json on a .npy with a sidecar"
"$bin/eelsvae-info" "$tmp/cal/si.npy" | grep -q "^calibration from sidecar" || fail "eelsvae-info: sidecar not reported"
# Compare a JSON description of a signal with the sidecar's: shape, dtype,
# every axis field exactly (doubles must round-trip), optionally metadata.
same_json() { # FILE.json REFERENCE.json [metadata]
  $py - "$@" <<'EOF'
import json, sys
got, ref = (json.load(open(p, encoding="utf-8")) for p in sys.argv[1:3])
keys = ["shape", "dtype", "axes"] + (["metadata"] if sys.argv[3:] == ["metadata"] else [])
for k in keys:
    g, r = got.get(k), ref[k]
    if k == "axes":
        g = [{f: a.get(f) for f in ("name", "size", "offset", "scale", "units", "navigate")} for a in g or []]
    if g != r:
        sys.exit(f"{sys.argv[1]}: {k} is {g!r}, expected {r!r}")
EOF
}
if [[ -x $py ]]; then
  $py -m json.tool "$tmp/info.json" >/dev/null || fail "eelsvae-info --json is not valid JSON: $(cat "$tmp/info.json")"
  same_json "$tmp/info.json" "$tmp/cal/si.npy.json" metadata || fail "eelsvae-info --json differs from the sidecar"
  "$bin/eelsvae-info" --json "$tmp/si/mask.npy" | $py -c '
import json, sys
d = json.load(sys.stdin)
assert d["shape"] == [48, 48] and d["dtype"] == "uint8", d
assert [(a["size"], a["offset"], a["scale"]) for a in d["axes"]] == [(48, 0, 1)] * 2, d["axes"]' ||
    fail "eelsvae-info --json on the mask"
else
  skip "no /usr/bin/python3: eelsvae-info --json not parsed"
fi

# The programs take the calibration from the sidecar: the same maps as with
# the options on the bare file; a broken or mismatched sidecar is refused.
"$bin/eelsvae-pca" "$tmp/cal/si.npy" --components 3 --window 690:730 --out "$tmp/pc" \
  --truth "$tmp/si/mask.npy" >/dev/null 2>"$tmp/err" || fail "eelsvae-pca on a .npy with a sidecar: $(cat "$tmp/err")"
grep -q "calibration from sidecar" "$tmp/err" || fail "eelsvae-pca does not say where the calibration came from"
cmp -s "$tmp/p/score.npy" "$tmp/pc/score.npy" || fail "eelsvae-pca: sidecar calibration gives other scores"
cmp -s "$tmp/p/metrics.json" "$tmp/pc/metrics.json" || fail "eelsvae-pca: sidecar calibration gives other metrics"
cp "$tmp/cal/si.npy" "$tmp/cal/bad.npy"
printf '{"axes": [{"offset": 0, "scale": 1},]}' >"$tmp/cal/bad.npy.json"
set +e; "$bin/eelsvae-pca" "$tmp/cal/bad.npy" --out "$tmp/pb" 2>"$tmp/err"; rc=$?; set -e
[[ $rc -eq 1 ]] && grep -q "bad.npy.json: not valid JSON at byte" "$tmp/err" || fail "a broken sidecar: rc $rc, $(cat "$tmp/err")"
sed 's/"shape": \[48, 48, 1334\]/"shape": [48, 47, 1334]/' "$tmp/cal/si.npy.json" >"$tmp/cal/bad.npy.json"
set +e; "$bin/eelsvae-info" "$tmp/cal/bad.npy" >/dev/null 2>"$tmp/err"; rc=$?; set -e
[[ $rc -eq 1 ]] && grep -q "bad.npy.json: its \"shape\" is not the shape of" "$tmp/err" ||
  fail "a sidecar of another shape: rc $rc, $(cat "$tmp/err")"
# Bytes that are not UTF-8 (an old file's Latin-1 "µ") still give valid JSON.
printf '{"axes": [{"offset": 0, "scale": 1}, {"offset": 0, "scale": 1}, {"offset": 420, "scale": 0.3}],
  "metadata": {"note": "5 \xb5m"}}' >"$tmp/cal/bad.npy.json"
if [[ -x $py ]]; then
  "$bin/eelsvae-info" --json "$tmp/cal/bad.npy" | $py -c 'import json, sys
d = json.load(sys.stdin)
assert d["metadata"] == {"note": "5 \u00b5m"}, d["metadata"]' || fail "eelsvae-info --json with a Latin-1 byte"
fi
set +e; "$bin/eelsvae-info" "$tmp/si/calibration.json" >/dev/null 2>"$tmp/err"; rc=$?; set -e
[[ $rc -eq 1 ]] && grep -q "calibration.json: not a .npy, .dm3" "$tmp/err" || fail "an unknown format: rc $rc, $(cat "$tmp/err")"

# eelsvae-convert: npy → npy (+ sidecar) → rpl → hspy → npy keeps the data
# bitwise and the axes; the steps this build or its readers lack are skipped.
conv() { # IN OUT; returns 3 when the format is not supported here
  if "$bin/eelsvae-convert" "$1" "$2" 2>"$tmp/conv.err"; then return 0; fi
  grep -q "EELSVAE_ERR_UNSUPPORTED" "$tmp/conv.err" && { skip "$(tail -1 "$tmp/conv.err")"; return 3; }
  fail "eelsvae-convert $1 $2: $(cat "$tmp/conv.err")"
}
same_data() { # A.npy B.npy: same dtype, same shape, same bytes
  $py -c 'import numpy as np, sys
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
sys.exit(0 if a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes() else 1)' "$1" "$2"
}
mkdir -p "$tmp/rt"
conv "$tmp/cal/si.npy" "$tmp/rt/a.npy"
[[ -s "$tmp/rt/a.npy.json" ]] || fail "eelsvae-convert to .npy wrote no sidecar"
conv "$tmp/si/mask.npy" "$tmp/rt/mask.npy"
if [[ $have_numpy -eq 1 ]]; then
  same_data "$tmp/cal/si.npy" "$tmp/rt/a.npy" || fail "npy → npy changed the data"
  same_data "$tmp/si/mask.npy" "$tmp/rt/mask.npy" || fail "npy → npy changed a uint8 mask"
  same_json "$tmp/rt/a.npy.json" "$tmp/cal/si.npy.json" metadata || fail "npy → npy changed the axes or metadata"
  last=$tmp/rt/a.npy
  if conv "$last" "$tmp/rt/b.rpl"; then
    [[ -s "$tmp/rt/b.raw" ]] || fail "eelsvae-convert to .rpl wrote no b.raw"
    "$bin/eelsvae-info" --json "$tmp/rt/b.rpl" >"$tmp/rt/b.json"
    same_json "$tmp/rt/b.json" "$tmp/cal/si.npy.json" || fail "npy → rpl changed the axes"
    last=$tmp/rt/b.rpl
  fi
  if conv "$last" "$tmp/rt/c.hspy"; then
    "$bin/eelsvae-info" --json "$tmp/rt/c.hspy" >"$tmp/rt/c.json"
    same_json "$tmp/rt/c.json" "$tmp/cal/si.npy.json" || fail "$(basename "$last") → hspy changed the axes"
    last=$tmp/rt/c.hspy
  fi
  if [[ $last != "$tmp/rt/a.npy" ]]; then
    conv "$last" "$tmp/rt/d.npy"
    same_data "$tmp/cal/si.npy" "$tmp/rt/d.npy" || fail "the round trip through $(basename "$last") changed the data"
    same_json "$tmp/rt/d.npy.json" "$tmp/cal/si.npy.json" || fail "the round trip through $(basename "$last") changed the axes"
  fi
else
  skip "no NumPy for /usr/bin/python3: round trips not compared"
fi

# eelsvae-detect on the sidecar-calibrated cube: the scores of the run with
# the options, and (with HDF5) score.hspy/mask.hspy with the spatial axes.
set +e; "$bin/eelsvae-detect" "$tmp/cal/si.npy" --model "$tmp/m.evae" --out "$tmp/d3" --map-format nope 2>"$tmp/err"; rc=$?; set -e
[[ $rc -eq 2 ]] && grep -q "map-format" "$tmp/err" || fail "--map-format nope: rc $rc, $(cat "$tmp/err")"
formats=npy,hspy
if ! "$bin/eelsvae-detect" "$tmp/cal/si.npy" --model "$tmp/m.evae" --out "$tmp/d3" --map-format $formats \
    >/dev/null 2>"$tmp/err"; then
  grep -q "EELSVAE_ERR_UNSUPPORTED" "$tmp/err" || fail "eelsvae-detect --map-format npy,hspy: $(cat "$tmp/err")"
  skip "$(tail -1 "$tmp/err")"
  formats=npy
  "$bin/eelsvae-detect" "$tmp/cal/si.npy" --model "$tmp/m.evae" --out "$tmp/d3" >/dev/null 2>"$tmp/err" ||
    fail "eelsvae-detect on a .npy with a sidecar: $(cat "$tmp/err")"
fi
cmp -s "$tmp/d/score.npy" "$tmp/d3/score.npy" || fail "eelsvae-detect: sidecar calibration gives other scores"
if [[ $formats == npy,hspy && $have_numpy -eq 1 ]]; then
  "$bin/eelsvae-info" --json "$tmp/d3/score.hspy" | $py -c '
import json, sys
d, ref = json.load(sys.stdin), json.load(open(sys.argv[1]))
want = [{**a, "navigate": False} for a in ref["axes"][:2]]
got = [{f: a[f] for f in want[0]} for a in d["axes"]]
assert d["shape"] == [48, 48] and d["dtype"] == "float32" and got == want, (d, want)' "$tmp/cal/si.npy.json" ||
    fail "score.hspy has not the shape or spatial axes of the cube"
  conv "$tmp/d3/mask.hspy" "$tmp/rt/mask_d3.npy"
  same_data "$tmp/d3/mask.npy" "$tmp/rt/mask_d3.npy" || fail "mask.hspy and mask.npy differ"
fi

# eelsvae-train (once, it is slow) and eelsvae-detect on .rpl and .hspy files
# (made by eelsvae-convert, calibrated with its options): the model and the
# scores of the .npy runs with --energy-offset/--energy-scale.
trained=0
for ext in rpl hspy; do
  "$bin/eelsvae-convert" "$tmp/si/clean.npy" "$tmp/rt/clean.$ext" --energy-offset 420 --energy-scale 0.3 \
    2>"$tmp/err" || { grep -q "EELSVAE_ERR_UNSUPPORTED" "$tmp/err" && skip "$(tail -1 "$tmp/err")" && continue; } ||
    fail "eelsvae-convert --energy-offset/--energy-scale to .$ext: $(cat "$tmp/err")"
  if [[ $trained -eq 0 ]]; then
    "$bin/eelsvae-train" "$tmp/rt/clean.$ext" --model "$tmp/m_$ext.evae" --epochs 1 --quiet 2>"$tmp/err" ||
      fail "eelsvae-train on .$ext: $(cat "$tmp/err")"
    grep -q "energy 420 eV + 0.3 eV per channel, calibration from the file" "$tmp/err" ||
      fail "eelsvae-train on .$ext: not the file's calibration: $(cat "$tmp/err")"
    cmp -s "$tmp/m.evae" "$tmp/m_$ext.evae" || fail "eelsvae-train on .$ext trained another model than on the .npy"
    trained=1
  fi
  [[ -s $tmp/rt/b.rpl && $ext == rpl ]] || [[ -s $tmp/rt/c.hspy && $ext == hspy ]] || continue
  [[ $ext == rpl ]] && cube=$tmp/rt/b.rpl || cube=$tmp/rt/c.hspy
  "$bin/eelsvae-detect" "$cube" --model "$tmp/m.evae" --out "$tmp/d_$ext" >/dev/null 2>"$tmp/err" ||
    fail "eelsvae-detect on .$ext: $(cat "$tmp/err")"
  cmp -s "$tmp/d/score.npy" "$tmp/d_$ext/score.npy" || fail "eelsvae-detect on .$ext gives other scores"
done

# A real DigitalMicrograph SI (HyperSpy's test file): the programs take it
# directly, calibrated from the file, and read it as HyperSpy does.
dm4=/usr/lib/python3/dist-packages/hyperspy/tests/io/dm4_3D_data/EELS_SI.dm4
if [[ ! -r $dm4 ]]; then
  skip "no $dm4: DigitalMicrograph not checked"
elif ! "$bin/eelsvae-info" --json "$dm4" >"$tmp/dm4.json" 2>"$tmp/err"; then
  grep -q "EELSVAE_ERR_UNSUPPORTED" "$tmp/err" || fail "eelsvae-info on $dm4: $(cat "$tmp/err")"
  skip "$(tail -1 "$tmp/err")"
else
  "$bin/eelsvae-pca" "$dm4" --components 2 --window 690:730 --out "$tmp/dmpca" >/dev/null 2>"$tmp/err" ||
    fail "eelsvae-pca on $dm4: $(cat "$tmp/err")"
  grep -q "energy 300 eV + 1 eV per channel, calibration from the file" "$tmp/err" ||
    fail "eelsvae-pca on $dm4: not the file's calibration: $(cat "$tmp/err")"
  conv "$dm4" "$tmp/rt/dm4.npy"
  if [[ $have_numpy -eq 1 ]] && $py -c 'import hyperspy' 2>/dev/null; then
    $py - "$dm4" "$tmp/dm4.json" "$tmp/rt/dm4.npy" <<'EOF' 2>"$tmp/err" || fail "$dm4 differs from HyperSpy's reading: $(cat "$tmp/err")"
import json, logging, sys, warnings
warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)
import numpy as np, hyperspy.api as hs
s, d, a = hs.load(sys.argv[1]), json.load(open(sys.argv[2], encoding="utf-8")), np.load(sys.argv[3])
assert d["shape"] == list(s.data.shape) and d["dtype"] == str(s.data.dtype), (d["shape"], d["dtype"])
want = [(x.name, x.size, x.offset, x.scale, x.units, x.navigate) for x in s.axes_manager._axes]
got = [(x["name"], x["size"], x["offset"], x["scale"], x["units"], x["navigate"]) for x in d["axes"]]
assert got == want, (got, want)
m, g = d["metadata"], s.metadata
assert m["title"] == g.General.title and m["signal_type"] == g.Signal.signal_type, m
assert m["acquisition_date"] == g.General.date and m["acquisition_time"] == g.General.time, m
assert float(m["beam_energy_kev"]) == g.Acquisition_instrument.TEM.beam_energy, m
assert a.dtype == s.data.dtype and np.array_equal(a, s.data), "eelsvae-convert's .npy holds other data"
EOF
  else
    skip "no HyperSpy for /usr/bin/python3: $dm4 not compared with it"
  fi
fi
echo "1 passed, 0 failed"
