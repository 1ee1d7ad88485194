#!/usr/bin/python3
"""SciPy/NumPy oracle for tests/test_preprocess.c.

Reads a cube as RAW little-endian float32 (shape on the command line), applies
the requested scipy.ndimage filters (the mean filter in NumPy: its window
shifts inward at the edges) / numpy.percentile in float64 and writes
each result as RAW little-endian float32 (or a text line for numbers) into
OUTDIR, numbered in the order the options were given:

  preprocess_oracle.py IN NY NX NE OUTDIR
      [--blur SY,SX,SE]...            -> blur_<i>.f32
      [--mean K]...                   -> mean_<i>.f32
      [--median K]...                 -> median_<i>.f32
      [--percentile PLO,PHI]...       -> percentile_<i>.txt  ("v_lo v_hi")
      [--chain SY,SX,SE,PLO,PHI,MEAN,MEDIAN]...
                                      -> chain_<i>.f32 and chain_<i>.txt ("lo hi")

Raw files rather than .npy so that this oracle does not depend on the
library's own .npy code.
"""
import argparse
import sys

import numpy as np
import scipy.ndimage as ndi


def floats(text, count):
    values = [float(v) for v in text.split(",")]
    if len(values) != count:
        raise SystemExit(f"expected {count} comma-separated numbers, got {text!r}")
    return values


def save(path, array):
    np.ascontiguousarray(array, dtype="<f4").tofile(path)


def blur(cube, sigma):
    return ndi.gaussian_filter(cube, sigma=sigma, mode="reflect", truncate=4.0)


def inward_box(a, k, axis):
    """Mean of the k consecutive samples nearest each one along axis: the
    window centred where it fits, shifted inward at the ends, the whole axis
    when shorter (the library's mean filter; not SciPy's mirrored one)."""
    n = a.shape[axis]
    w, r = min(k, n), (k - 1) // 2
    valid = sum(np.take(a, np.arange(j, j + n - w + 1), axis=axis) for j in range(w)) / w
    return np.take(valid, np.clip(np.arange(n) - r, 0, n - w), axis=axis)


def mean(cube, k):
    return inward_box(inward_box(cube, k, 0), k, 1)


def median(cube, k):
    return ndi.median_filter(cube, size=(k, k, 1), mode="reflect")


def chain(cube, sy, sx, se, plo, phi, k_mean, k_median):
    blurred = blur(cube, (sy, sx, se))
    lo, hi = np.percentile(blurred, [plo, phi])
    scaled = np.clip((blurred - lo) / (hi - lo), 0.0, 1.0)
    out = mean(scaled, int(k_mean))
    if int(k_median) > 1:
        out = median(out, int(k_median))
    return out, lo, hi


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("ny", type=int)
    ap.add_argument("nx", type=int)
    ap.add_argument("ne", type=int)
    ap.add_argument("outdir")
    ap.add_argument("--blur", action="append", default=[])
    ap.add_argument("--mean", action="append", type=int, default=[])
    ap.add_argument("--median", action="append", type=int, default=[])
    ap.add_argument("--percentile", action="append", default=[])
    ap.add_argument("--chain", action="append", default=[])
    args = ap.parse_args()

    raw = np.fromfile(args.input, dtype="<f4")
    if raw.size != args.ny * args.nx * args.ne:
        raise SystemExit(f"{args.input}: {raw.size} floats, expected {args.ny}x{args.nx}x{args.ne}")
    cube = raw.reshape(args.ny, args.nx, args.ne).astype(np.float64)

    for i, text in enumerate(args.blur):
        save(f"{args.outdir}/blur_{i}.f32", blur(cube, floats(text, 3)))
    for i, k in enumerate(args.mean):
        save(f"{args.outdir}/mean_{i}.f32", mean(cube, k))
    for i, k in enumerate(args.median):
        save(f"{args.outdir}/median_{i}.f32", median(cube, k))
    for i, text in enumerate(args.percentile):
        lo, hi = np.percentile(cube, floats(text, 2))
        with open(f"{args.outdir}/percentile_{i}.txt", "w") as f:
            f.write(f"{lo!r} {hi!r}\n")
    for i, text in enumerate(args.chain):
        out, lo, hi = chain(cube, *floats(text, 7))
        save(f"{args.outdir}/chain_{i}.f32", out)
        with open(f"{args.outdir}/chain_{i}.txt", "w") as f:
            f.write(f"{lo!r} {hi!r}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
