#!/usr/bin/python3
"""NumPy side of tests/test_npy.c.

    make_npy_corpus.py DIR           write np_*.npy files with NumPy into DIR
    make_npy_corpus.py --check DIR   check the ours_*.npy files libeelsvae wrote

Every array holds a formula of its C-order flat index i (k = (i*37) % 51),
which test_npy.c computes independently in C:

    signed   iN   (k - 25) * SCALE[code]
    unsigned uN   k * SCALE[code]
    f2            (k - 25) / 4
    f4, f8        (k - 25) / 3   (rounded to the dtype)
    b1            k % 3 == 0

The scales make every byte of the wider integers matter, so a byte-order
mistake cannot go unnoticed. Exits non-zero on any mismatch.
"""
import io
import os
import sys

import numpy as np
import numpy.lib.format as npf

SCALE = {
    "i1": 1, "i2": 1000, "i4": 80000000, "i8": 1000000007000,
    "u1": 1, "u2": 1000, "u4": 80000000, "u8": 360000000000000000,
}
CODES = ["i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8", "b1"]


def formula(code, shape):
    n = int(np.prod(shape, dtype=np.int64))
    k = (np.arange(n, dtype=np.int64) * 37) % 51
    if code[0] == "i":
        v = (k - 25) * np.int64(SCALE[code])
    elif code[0] == "u":
        v = k.astype(np.uint64) * np.uint64(SCALE[code])
    elif code == "f2":
        v = (k - 25) / 4.0
    elif code[0] == "f":
        v = (k - 25) / 3.0
    else:
        v = k % 3 == 0
    return v.astype(np.dtype(code)).reshape(shape)


def byte_orders(code):
    return ["|"] if code[1] == "1" else ["<", ">"]


def order_name(bo):
    return {"<": "le", ">": "be", "|": "na"}[bo]


def write_corpus(out):
    shape = (3, 4, 5)
    for code in CODES:
        for bo in byte_orders(code):
            a = formula(code, shape).astype(np.dtype(bo + code))
            np.save(os.path.join(out, "np_%s_%s_c.npy" % (code, order_name(bo))), a)
            f = np.asfortranarray(a)
            assert f.flags.f_contiguous and not f.flags.c_contiguous
            np.save(os.path.join(out, "np_%s_%s_f.npy" % (code, order_name(bo))), f)

    # Header versions 2.0 and 3.0 (4-byte header length).
    for version, code, bo, fortran in [((2, 0), "f4", ">", False), ((2, 0), "i2", "<", True),
                                       ((3, 0), "i8", ">", True), ((3, 0), "f2", "<", False)]:
        a = formula(code, shape).astype(np.dtype(bo + code))
        if fortran:
            a = np.asfortranarray(a)
        name = "np_v%d_%s_%s_%s.npy" % (version[0], code, order_name(bo), "f" if fortran else "c")
        with open(os.path.join(out, name), "wb") as fp:
            npf.write_array(fp, a, version=version)

    # float16 corner values: zeros, subnormals, the smallest normal, the
    # largest finite, infinities, NaN and a rounded 1/3.
    special = [0.0, -0.0, 2.0**-24, -3 * 2.0**-24, 1023 * 2.0**-24, 2.0**-14, 65504.0,
               -np.inf, np.inf, np.nan, 1.0 / 3.0]
    for bo in "<>":
        np.save(os.path.join(out, "np_f2special_%s.npy" % order_name(bo)), np.array(special, dtype=bo + "f2"))

    # Scalars, 1-D, 2-D Fortran, empty.
    np.save(os.path.join(out, "np_scalar_f8.npy"), np.float64(-2.75))
    np.save(os.path.join(out, "np_scalar_i2_be.npy"), np.array(-1234, dtype=">i2"))
    np.save(os.path.join(out, "np_1d_u2_be.npy"), formula("u2", (7,)).astype(">u2"))
    np.save(os.path.join(out, "np_2d_f8_f.npy"), np.asfortranarray(formula("f8", (4, 6))))
    np.save(os.path.join(out, "np_empty_f4_be_f.npy"), np.zeros((2, 0, 3), dtype=">f4", order="F"))


def parse_ours(name):
    """ours_<code>_<shape>.npy with shape "3x4x5", "7", "2x0x3" or "scalar"."""
    stem = name[len("ours_"):-len(".npy")]
    code, shape_text = stem.split("_", 1)
    shape = () if shape_text == "scalar" else tuple(int(s) for s in shape_text.split("x"))
    return code, shape


def check_ours(directory):
    errors = []
    seen = set()
    names = sorted(n for n in os.listdir(directory) if n.startswith("ours_") and n.endswith(".npy"))
    for name in names:
        code, shape = parse_ours(name)
        seen.add(code)
        path = os.path.join(directory, name)
        a = np.load(path, allow_pickle=False)
        want = formula(code, shape)
        want_dtype = np.dtype(code).newbyteorder("<")
        if a.dtype != want_dtype or a.dtype.str != want_dtype.str:
            errors.append("%s: dtype %s, expected %s" % (name, a.dtype.str, want_dtype.str))
            continue
        if a.shape != shape:
            errors.append("%s: shape %s, expected %s" % (name, a.shape, shape))
            continue
        if not np.array_equal(a, want):
            bad = np.flatnonzero(a.reshape(-1) != want.reshape(-1))
            errors.append("%s: %d values differ, first at flat index %d" % (name, bad.size, bad[0]))
            continue
        # Byte for byte what NumPy itself writes for the same array, where
        # this NumPy pads headers as libeelsvae does (numpy >= 1.24).
        with open(path, "rb") as fp:
            ours = fp.read()
        buf = io.BytesIO()
        np.save(buf, want)
        if hasattr(npf, "GROWTH_AXIS_MAX_DIGITS") and ours != buf.getvalue():
            errors.append("%s: bytes differ from np.save of the same array" % name)
        major, minor = npf.read_magic(io.BytesIO(ours))
        if (major, minor) != (1, 0):
            errors.append("%s: version %d.%d, expected 1.0" % (name, major, minor))
        if (len(ours) - want.nbytes) % 64 != 0:
            errors.append("%s: data does not start on a 64-byte boundary" % name)
    missing = sorted(set(CODES) - {"f2"} - seen)
    if missing:
        errors.append("no ours_*.npy file for %s" % ", ".join(missing))
    for e in errors:
        print("make_npy_corpus.py --check: " + e, file=sys.stderr)
    return 1 if errors else 0


def main(argv):
    if len(argv) == 3 and argv[1] == "--check":
        return check_ours(argv[2])
    if len(argv) == 2:
        write_corpus(argv[1])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
