#!/usr/bin/env bash
# The example programs' image writers (examples/common/image.c), read back by
# other software: tests/image_writer writes known maps as 32-bit float TIFF
# and PNG heatmaps, then /usr/bin/python3 reads the TIFFs with tifffile (the
# values bit for bit, float32, the shape, the pixel size from the resolution
# tags, the unit and the description from ImageJ's metadata) and the PNGs
# with PIL (their size, a flagged pixel's viridis colour inside its outline,
# the outline, NaN grey, the colour bar); without PIL only the PNG header's
# size is checked. Exit 77 ("skipped") when the build lacks libtiff or libpng,
# or python3 lacks tifffile.
# usage: image_test.sh IMAGE_WRITER
set -euo pipefail
writer=$1
python=${EELSVAE_PYTHON:-/usr/bin/python3}
[[ -n "$python" ]] || python=/usr/bin/python3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/eelsvae-image.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

set +e; "$writer" "$tmp" >"$tmp/out" 2>"$tmp/err"; rc=$?; set -e
if [[ $rc -eq 77 ]]; then cat "$tmp/out"; exit 77; fi
[[ $rc -eq 0 ]] || fail "image_writer exited $rc: $(cat "$tmp/err")"
# The failures it provokes: messages naming the file and the reason.
grep -q "cannot write $tmp/no-such-dir/x.tif: No such file or directory" "$tmp/err" ||
  fail "no message for an unwritable path: $(cat "$tmp/err")"
grep -q "cannot write $tmp/bad.tif: invalid pixel size" "$tmp/err" || fail "no message for a zero pixel size"
grep -q "cannot write $tmp/a-directory: Is a directory" "$tmp/err" ||
  fail "no message for a directory in the way: $(cat "$tmp/err")"
[[ ! -e "$tmp/bad.tif" ]] || fail "bad.tif written"
! ls "$tmp" | grep -q '\.tmp\.' || fail "a temporary left behind: $(ls "$tmp")"

if ! "$python" -c 'import tifffile' 2>/dev/null; then
  echo "skip: $python cannot import tifffile"
  exit 77
fi

"$python" - "$tmp" <<'EOF'
import os, struct, sys
import numpy as np
import tifffile

tmp = sys.argv[1]
def fail(msg):
    sys.exit("FAIL: " + msg)

# ---- TIFF ----------------------------------------------------------------
expected = np.fromfile(os.path.join(tmp, "line.f32"), dtype=np.float32).reshape(6, 49)
with tifffile.TiffFile(os.path.join(tmp, "line.tif")) as tif:
    page = tif.pages[0]
    data = page.asarray()
    if data.dtype != np.float32 or data.shape != (6, 49):
        fail(f"TIFF holds {data.dtype} {data.shape}, expected float32 (6, 49)")
    if not np.array_equal(data.view(np.uint32), expected.view(np.uint32)):
        fail("TIFF values differ from the map (bit for bit)")
    tags = page.tags
    if tags["SampleFormat"].value != 3 or tags["BitsPerSample"].value != 32 or tags["SamplesPerPixel"].value != 1:
        fail("not one 32-bit IEEE float sample per pixel")
    if tags["Compression"].value != 1:
        fail(f"compression {tags['Compression'].value}")
    if int(tags["ResolutionUnit"].value) != 1:
        fail(f"ResolutionUnit {tags['ResolutionUnit'].value}, expected 1 (NONE)")
    xres = tags["XResolution"].value
    yres = tags["YResolution"].value
    px, py = xres[1] / xres[0], yres[1] / yres[0]  # unit per pixel
    if abs(px - 0.25) > 1e-6 or abs(py - 0.5) > 1e-6:
        fail(f"pixel size from the resolution tags {py} (y) × {px} (x), expected 0.5 × 0.25")
    if tags["ImageDescription"].value.strip() != "ImageJ=1.11a\nunit=nm":  # tifffile strips the last newline
        fail(f"ImageDescription {tags['ImageDescription'].value!r}")
    if not tif.is_imagej:
        fail("tifffile does not see an ImageJ file")
    meta = tif.imagej_metadata
    if meta.get("unit") != "nm":
        fail(f"ImageJ unit {meta.get('unit')!r}")
    info = "eelsvae test map: PCC over 690-730 eV\nsource: tests/image_writer.c (µ ✓)"
    if meta.get("Info") != info:
        fail(f"ImageJ Info property {meta.get('Info')!r}, expected {info!r}")
with tifffile.TiffFile(os.path.join(tmp, "micron.tif")) as tif:
    meta = tif.imagej_metadata
    if meta.get("unit") != "micron" or "Info" in meta:
        fail(f"micron.tif metadata {meta}")
    xres = tif.pages[0].tags["XResolution"].value
    if abs(xres[1] / xres[0] - 0.002) > 1e-9:
        fail(f"micron.tif pixel size {xres[1] / xres[0]}")
    if not np.array_equal(tif.asarray().view(np.uint32), expected.view(np.uint32)):
        fail("micron.tif values")
print("TIFF: float32 (6, 49) bit for bit, 0.5 nm × 0.25 nm, unit and Info as ImageJ reads them")

# ---- PNG -----------------------------------------------------------------
facts = {}
for line in open(os.path.join(tmp, "out")):
    name, key, *rest = line.split()
    facts.setdefault(name, {})[key] = rest

LUT = [(68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
       (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37)]
def viridis(t):
    t = min(max(t, 0.0), 1.0) * 8
    i = min(int(t), 7)
    w = t - i
    return tuple(int(round(LUT[i][c] * (1 - w) + LUT[i + 1][c] * w)) for c in range(3))
def close(a, b):
    return all(abs(int(x) - int(y)) <= 1 for x, y in zip(a, b))
RED, GREY = (255, 0, 0), (128, 128, 128)

def png_size(path):
    head = open(path, "rb").read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        fail(f"{path} is not a PNG")
    return struct.unpack(">II", head[16:24])

try:
    from PIL import Image
except ImportError:
    Image = None

for name in ("line", "disks", "big", "huge"):
    path = os.path.join(tmp, name + ".png")
    w, h, mx, my, mw, mh, zoom, shrink = map(int, facts[name]["geometry"])
    if png_size(path) != (w, h):
        fail(f"{name}.png is {png_size(path)}, geometry says {(w, h)}")
    if max(mw, mh) > 1600:
        fail(f"{name}.png: the map is {mw} × {mh}, longer than 1600 px")
    if name != "huge" and mw < 480:
        fail(f"{name}.png: the map is {mw} px wide, less than 480")
    if Image is None:
        continue
    img = Image.open(path).convert("RGB")
    pix = img.load()
    cy, cx, value = facts[name]["centre"]
    cy, cx, value = int(cy) // shrink, int(cx) // shrink, float(value)
    # the centre of a flagged pixel's square: the viridis colour of its value
    sx, sy = mx + cx * zoom + zoom // 2, my + cy * zoom + zoom // 2
    if not close(pix[sx, sy], viridis(value)):
        fail(f"{name}.png: flagged pixel ({cy}, {cx}) centre {pix[sx, sy]}, expected viridis({value}) = {viridis(value)}")
    if name == "line":
        # a lone flagged pixel: its square's edge is outline, its inside is not
        for ox, oy in ((0, 0), (zoom - 1, 0), (0, zoom - 1), (zoom // 2, zoom - 1), (zoom - 1, zoom // 2)):
            p = pix[mx + cx * zoom + ox, my + cy * zoom + oy]
            if p != RED:
                fail(f"line.png: outline pixel +({ox}, {oy}) of ({cy}, {cx}) is {p}, expected {RED}")
        if pix[mx + cx * zoom + 1, my + cy * zoom + 1] == RED:
            fail("line.png: the outline is thicker than 1 px")
        # the unflagged neighbours carry no outline
        p = pix[mx + (cx + 1) * zoom, my + cy * zoom + zoom // 2]
        if p == RED:
            fail("line.png: outline drawn in an unflagged pixel")
        # NaN grey
        ny_, nx_ = map(int, facts["line"]["nan"])
        p = pix[mx + nx_ * zoom + zoom // 2, my + ny_ * zoom + zoom // 2]
        if p != GREY:
            fail(f"line.png: NaN pixel {p}, expected {GREY}")
        # the colour bar: high values on top, framed, right of the map
        bar_h = max(mh, 160)
        top = h - 12 - bar_h
        bx = mx + mw + 16 + 10
        if not close(pix[bx, top], viridis(1)) or not close(pix[bx, top + bar_h - 1], viridis(0)):
            fail(f"line.png: colour bar ends {pix[bx, top]} … {pix[bx, top + bar_h - 1]}")
        ink = sum(1 for x in range(mx + mw + 16 + 20, w) for y in range(h) if pix[x, y] == (0, 0, 0))
        if ink < 100:
            fail(f"line.png: no tick labels or caption ({ink} black pixels)")
    else:
        # walking left from the disk's centre, the outline comes before the disk ends
        x = sx
        while x > mx and pix[x, sy] != RED:
            x -= 1
        if pix[x, sy] != RED:
            fail(f"{name}.png: no outline left of the disk at ({cy}, {cx})")
print("PNG: sizes, flagged pixels in viridis inside their red outline, NaN grey, colour bar"
      + ("" if Image else " (only sizes: no PIL)"))
EOF
