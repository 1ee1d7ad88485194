#!/usr/bin/env bash
# --explain of eelsvae-pca and eelsvae-detect (examples/common/explain.c).
# A small synthetic SI whose Fe L edge is shifted by 2.4 eV inside two disks:
# eelsvae-pca --explain must write explain.csv whose flagged mean rises
# through half its window maximum 2.4 eV above the bulk mean (tolerance
# ±0.45 eV: 1.5 channels of 0.3 eV, for the blurred disk rims the flagged
# set mixes in) and whose shift the program reports within the same
# tolerance, whose residual is flagged mean − reconstruction mean, and
# explain_top.csv whose pixels are the K lowest scores of score.npy in
# order; the SVGs parse and say how many pixels were flagged. When nothing
# is flagged the program says so and leaves no explain file behind; K = 0
# is a usage error. eelsvae-detect (a one-epoch model) writes the same files.
# usage: explain_test.sh BUILD_EXAMPLES_DIR
set -euo pipefail
bin=$1
py=${EELSVAE_PYTHON:-/usr/bin/python3}
[[ -x $py ]] || { echo "SKIP: no $py to read the CSV files" >&2; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$bin/eelsvae-synth" --out "$tmp/si" --size 48 --shifts 2.4 --disks 2 --radius 5 >/dev/null 2>&1 ||
  fail "eelsvae-synth"
"$bin/eelsvae-pca" "$tmp/si/shift_2.4.npy" --window 690:730 --out "$tmp/p" --map-format npy --explain-top 3 \
  > "$tmp/pca.txt" 2>"$tmp/err" || fail "eelsvae-pca --explain-top 3: $(cat "$tmp/err")"
grep -q "^explain: wrote explain.csv, explain.svg, explain_top.csv and explain_top.svg (top 3)" "$tmp/pca.txt" ||
  fail "eelsvae-pca --explain did not say what it wrote: $(cat "$tmp/pca.txt")"
flagged=$(awk '/^flagged / {print $2}' "$tmp/pca.txt")
reported=$(sed -n 's/^explain: the flagged mean matches the bulk mean shifted by \([-+0-9.]*\) eV.*/\1/p' "$tmp/pca.txt")
"$py" -c 'import sys; sys.exit(not abs(float(sys.argv[1]) - 2.4) <= 0.45)' "${reported:-nan}" ||
  fail "eelsvae-pca --explain reports a shift of '$reported' eV, injected 2.4: $(cat "$tmp/pca.txt")"

# The CSV files against the score map, and the injected shift.
"$py" - "$tmp/p" "$flagged" <<'EOF' || fail "eelsvae-pca's explain files (above)"
import ast, csv, struct, sys, xml.etree.ElementTree as ET
out, flagged = sys.argv[1], int(sys.argv[2])

rows = list(csv.DictReader(open(out + "/explain.csv")))
assert list(rows[0]) == ["energy_ev", "flagged_mean", "flagged_reconstruction_mean", "bulk_mean",
                         "mean_residual"], list(rows[0])
col = {k: [float(r[k]) for r in rows] for k in rows[0]}
e = col["energy_ev"]
assert len(e) == 134 and abs(e[0] - 690) < 1e-6 and abs(e[-1] - 729.9) < 1e-6, (len(e), e[0], e[-1])
for f, r, res in zip(col["flagged_mean"], col["flagged_reconstruction_mean"], col["mean_residual"]):
    assert abs(res - (f - r)) <= 1e-6, (res, f, r)

def half_max_crossing(y):
    """Energy where y first rises through half its window maximum (linear between channels)."""
    half = max(y) / 2
    for i in range(1, len(y)):
        if y[i - 1] < half <= y[i]:
            return e[i - 1] + (half - y[i - 1]) / (y[i] - y[i - 1]) * (e[i] - e[i - 1])
    raise AssertionError("never rises through half its maximum")

shift = half_max_crossing(col["flagged_mean"]) - half_max_crossing(col["bulk_mean"])
print("edge shift of the flagged mean: %+.2f eV (injected +2.4 eV)" % shift)
assert abs(shift - 2.4) <= 0.45, shift

# explain_top.csv: the 3 lowest PCC scores of the map, in order, 134 channels each.
with open(out + "/score.npy", "rb") as fh:
    assert fh.read(6) == b"\x93NUMPY"
    major = fh.read(2)[0]
    (hlen,) = struct.unpack("<H" if major == 1 else "<I", fh.read(2 if major == 1 else 4))
    header = ast.literal_eval(fh.read(hlen).decode("latin-1"))
    assert header["descr"] == "<f4" and not header["fortran_order"], header
    ny, nx = header["shape"]
    scores = struct.unpack("<%df" % (ny * nx), fh.read())
expected = sorted(range(ny * nx), key=lambda p: (scores[p], p))[:3]
top = list(csv.DictReader(open(out + "/explain_top.csv")))
assert list(top[0]) == ["rank", "y", "x", "score", "energy_ev", "spectrum", "reconstruction"], list(top[0])
assert len(top) == 3 * 134, len(top)
for rank, p in enumerate(expected, 1):
    mine = [r for r in top if int(r["rank"]) == rank]
    assert len(mine) == 134 and all((int(r["y"]), int(r["x"])) == divmod(p, nx) for r in mine), (rank, p, mine[0])
    assert abs(float(mine[0]["score"]) - scores[p]) <= 1e-6 * abs(scores[p]), (mine[0]["score"], scores[p])

# The SVGs are XML and say how many pixels were flagged, with the energy axis in eV.
for name in ("explain.svg", "explain_top.svg"):
    text = "".join(ET.parse(out + "/" + name).getroot().itertext())
    assert "energy loss (eV)" in text, name
    assert "preprocessed intensity" in text, name
assert "%d of %d pixels flagged" % (flagged, ny * nx) in "".join(ET.parse(out + "/explain.svg").getroot().itertext())
EOF

# Nothing flagged (no PCC is ≤ −2): said on stdout, not an error, and the
# files of the run above are gone rather than left to explain another run.
"$bin/eelsvae-pca" "$tmp/si/shift_2.4.npy" --window 690:730 --out "$tmp/p" --map-format npy --explain \
  --threshold value:-2 > "$tmp/none.txt" 2>"$tmp/err" || fail "eelsvae-pca --explain, nothing flagged: $(cat "$tmp/err")"
grep -q "^explain: no pixel was flagged" "$tmp/none.txt" || fail "no message when nothing is flagged: $(cat "$tmp/none.txt")"
for f in explain.csv explain.svg explain_top.csv explain_top.svg; do
  [[ ! -e $tmp/p/$f ]] || fail "$f left behind when nothing was flagged"
done

set +e; "$bin/eelsvae-pca" "$tmp/si/shift_2.4.npy" --out "$tmp/q" --explain-top 0 2>"$tmp/err"; rc=$?; set -e
[[ $rc -eq 2 ]] && grep -q -- "--explain-top" "$tmp/err" || fail "--explain-top 0: rc $rc, $(cat "$tmp/err")"

# eelsvae-detect shares cli_detect: the same files, its intensity labelled as the model prepared it.
"$bin/eelsvae-train" "$tmp/si/clean.npy" --model "$tmp/m.evae" --epochs 1 --quiet 2>"$tmp/err" ||
  fail "eelsvae-train: $(cat "$tmp/err")"
# Otsu: a 1-epoch model reconstructs too little for fdr:0.01 to flag anything;
# this checks the wiring, not the model.
"$bin/eelsvae-detect" "$tmp/si/shift_2.4.npy" --model "$tmp/m.evae" --out "$tmp/d" --map-format npy --explain \
  --threshold otsu \
  > "$tmp/detect.txt" 2>"$tmp/err" || fail "eelsvae-detect --explain: $(cat "$tmp/err")"
for f in explain.csv explain.svg explain_top.csv explain_top.svg; do
  [[ -s $tmp/d/$f ]] || fail "eelsvae-detect --explain wrote no $f ($(cat "$tmp/detect.txt"))"
done
head -1 "$tmp/d/explain.csv" | grep -qx "energy_ev,flagged_mean,flagged_reconstruction_mean,bulk_mean,mean_residual" ||
  fail "eelsvae-detect's explain.csv header: $(head -1 "$tmp/d/explain.csv")"
grep -q "model-prepared intensity" "$tmp/d/explain.svg" || fail "eelsvae-detect's explain.svg: intensity axis not labelled"
echo "explain: OK"
