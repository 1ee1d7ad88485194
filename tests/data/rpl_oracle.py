"""HyperSpy as the oracle for libeelsvae's Ripple (.rpl/.raw) reader and writer.

    rpl_oracle.py make OUTDIR
        HyperSpy writes Ripple files into OUTDIR (every element type its
        writer knows, both byte orders, spectra, spectrum images, images and
        image stacks, calibration and EELS metadata), and hand-written
        headers cover what only its reader knows (int8, int16, uint32,
        uint64, an offset, comments, CRLF lines, ev-per-chan alone, upper-case
        keys and .RAW). Each is described as HyperSpy loads it (NAME.txt,
        NAME.bin, the format of hspy_oracle.py). The files shipped with
        HyperSpy's tests are described as corpus_<stem>.txt/.bin.
    rpl_oracle.py describe FILE PREFIX [FILE PREFIX ...]
        HyperSpy loads FILE and writes PREFIX.txt and PREFIX.bin.
"""
import glob
import os
import sys

import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hspy_oracle import hs, load_and_describe  # noqa: E402  (silences warnings and logging too)

CORPUS = "/usr/lib/python3/dist-packages/hyperspy/tests/io/ripple_files"


def header(path, lines, newline="\n"):
    with open(path, "w", encoding="latin-1", newline="") as f:
        for line in lines:
            f.write(line + newline)


def make(out):
    rng = np.random.default_rng(77)
    saved = {}

    # A float32 EELS spectrum image with calibration and metadata.
    s = hs.signals.Signal1D(rng.normal(50, 5, (3, 4, 6)).astype(np.float32))
    s.set_signal_type("EELS")
    s.metadata.General.title = "SI \u00e9t\u00e9"
    nav_x, nav_y = s.axes_manager.navigation_axes
    nav_x.name, nav_x.units, nav_x.offset, nav_x.scale = "x", "nm", 1.5, 0.25
    nav_y.name, nav_y.units, nav_y.offset, nav_y.scale = "y", "nm", -2.0, 0.5
    e = s.axes_manager.signal_axes[0]
    e.name, e.units, e.offset, e.scale = "Energy loss", "eV", 285.5, 0.05
    s.set_microscope_parameters(beam_energy=300.0, convergence_angle=21.5, collection_angle=33.25)
    s.metadata.General.date = "2022-02-03"
    s.metadata.General.time = "04:05:06"
    saved["si_f32"] = s

    # Every type HyperSpy's writer takes, as a 2-D Signal1D (navigation 5, signal 7).
    for dt in ("float64", "uint8", "uint16", "int32", "int64"):
        a = (rng.normal(0, 1000, (5, 7))).astype(dt) if dt.startswith("float") else \
            rng.integers(np.iinfo(dt).min, np.iinfo(dt).max, (5, 7), dtype=dt, endpoint=True)
        saved["line_" + dt] = hs.signals.Signal1D(a)
    # Big-endian data: HyperSpy writes byte-order big-endian.
    saved["big_f64"] = hs.signals.Signal1D(rng.normal(0, 1, (2, 3, 5)).astype(">f8"))
    saved["big_u16"] = hs.signals.Signal2D(rng.integers(0, 65535, (4, 5)).astype(">u2"))
    # A single spectrum, an image and an image stack.
    s = hs.signals.Signal1D(rng.normal(0, 1, 9).astype(np.float32))
    s.axes_manager[0].offset, s.axes_manager[0].scale, s.axes_manager[0].units = -1.0, 0.5, "eV"
    saved["spectrum"] = s
    s = hs.signals.Signal2D(rng.normal(0, 1, (4, 6)).astype(np.float32))
    s.metadata.General.title = "an image"
    saved["image"] = s
    s = hs.signals.Signal2D(rng.integers(0, 255, (3, 4, 5)).astype(np.uint8))
    s.axes_manager.navigation_axes[0].name = "frame"
    saved["stack"] = s

    for name, sig in saved.items():
        path = os.path.join(out, name + ".rpl")
        sig.save(path, overwrite=True)
        load_and_describe(path, os.path.join(out, name))

    # Hand-written headers: types only the reader knows, an offset, comments.
    def raw(name, array, prefix=b""):
        with open(os.path.join(out, name), "wb") as f:
            f.write(prefix)
            f.write(array.tobytes())

    cases = []
    a = rng.integers(-128, 127, (2, 3, 4), dtype=np.int8)
    raw("h_int8.raw", a)
    cases.append(("h_int8", ["; comment line", "key\tvalue", "width\t3", "height\t2", "depth\t4", "offset\t0",
                             "data-type\tsigned", "data-length\t1", "byte-order\tdont-care",
                             "record-by\tvector ; a trailing comment", "depth-scale\t0.5", "depth-units\teV"], "\n"))
    a = rng.integers(-30000, 30000, (3, 2, 5), dtype=np.int16).astype(">i2")
    raw("h_int16_be.raw", a, prefix=b"\0" * 16)
    cases.append(("h_int16_be", ["key\tvalue", "width\t2", "height\t3", "depth\t5", "offset\t16",
                                 "data-type\tsigned", "data-length\t2", "byte-order\tbig-endian", "record-by\tvector",
                                 "ev-per-chan\t2.5", "title\tCRLF lines"], "\r\n"))
    a = rng.integers(0, 2**32 - 1, (4, 3, 2), dtype=np.uint32)
    raw("h_uint32_stack.raw", a)
    cases.append(("h_uint32_stack", ["key\tvalue", "width\t2", "height\t3", "depth\t4", "offset\t0",
                                     "data-type\tunsigned", "data-length\t4", "byte-order\tlittle-endian",
                                     "record-by\timage", "width-origin\t5", "width-scale\t-1.5",
                                     "width-units\t\u00b5m", "depth-name\ttime", "depth-units\t<undefined>"], "\n"))
    a = rng.integers(0, 2**63, (2, 6), dtype=np.uint64)
    raw("h_uint64_image.raw", a)
    cases.append(("h_uint64_image", ["key\tvalue", "width\t6", "height\t2", "depth\t1", "offset\t0",
                                     "data-type\tunsigned", "data-length\t8", "byte-order\tlittle-endian",
                                     "record-by\tdont-care", "signal\tEELS", "beam-energy\t80"], "\n"))
    for name, lines, newline in cases:
        header(os.path.join(out, name + ".rpl"), lines, newline)
        load_and_describe(os.path.join(out, name + ".rpl"), os.path.join(out, name))

    for path in sorted(glob.glob(os.path.join(CORPUS, "*.rpl"))):
        stem = os.path.splitext(os.path.basename(path))[0]
        load_and_describe(path, os.path.join(out, "corpus_" + stem))


def main(argv):
    if len(argv) == 3 and argv[1] == "make":
        make(argv[2])
    elif len(argv) >= 4 and argv[1] == "describe" and len(argv) % 2 == 0:
        for i in range(2, len(argv), 2):
            load_and_describe(argv[i], argv[i + 1])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
