#!/usr/bin/python3
"""HyperSpy's reading of every DigitalMicrograph file in its own test data:
the oracle for tests/test_dm.c.

    dm_oracle.py OUTDIR

Walks hyperspy/tests/io for .dm3/.dm4 files, loads each with hs.load() (one
process for all, HyperSpy's import being slow) and writes OUTDIR/manifest.tsv,
tab-separated lines:

    file    PATH
    error   MESSAGE                                   (HyperSpy cannot load it)
    signals COUNT   MAIN                              (MAIN: io.h's rule)
    signal  INDEX   DTYPE   NDIM    SHAPE...    DATAFILE
    axis    INDEX   OFFSET  SCALE   NAVIGATE    NAME    UNITS
    meta    KEY     VALUE
    end

with each signal's elements in OUTDIR/DATAFILE: C order, little-endian,
RGB as four bytes R, G, B, A, bool as one byte. Numbers are written with
repr() so that they read back exactly. Exits 77 when HyperSpy is missing.
"""
import logging
import os
import sys
import warnings


def text(value):
    """A value on one manifest line: no tabs or newlines."""
    return str(value).replace("\t", " ").replace("\n", " ")


def element_bytes(data):
    import numpy as np
    if data.dtype.names:  # HyperSpy's RGB: fields R, G, B, A of uint8
        rgba = np.stack([data[c] for c in ("R", "G", "B", "A")], axis=-1).astype(np.uint8)
        return "rgba8", rgba.tobytes()
    if data.dtype == np.bool_:
        return "bool", np.ascontiguousarray(data).astype(np.uint8).tobytes()
    little = data.dtype.newbyteorder("<")
    return str(data.dtype), np.ascontiguousarray(data, dtype=little).tobytes()


def first(md, paths):
    for path in paths:
        if md.has_item(path):
            value = md.get_item(path)
            if value is not None:
                return value
    return None


def metadata(s):
    """The io.h metadata keys, from HyperSpy's reading."""
    md, om = s.metadata, s.original_metadata
    out = {}
    title = om.get_item("ImageList.TagGroup0.Name", "")
    if isinstance(title, str) and title:
        out["title"] = title
    if md.Signal.get_item("signal_type", ""):
        out["signal_type"] = md.Signal.signal_type
    for key, path in (("acquisition_date", "General.date"), ("acquisition_time", "General.time")):
        if md.has_item(path):
            out[key] = md.get_item(path)
    instruments = ("Acquisition_instrument.TEM.", "Acquisition_instrument.SEM.")
    numbers = {
        "beam_energy_kev": [i + "beam_energy" for i in instruments],
        "collection_angle_mrad": ["Acquisition_instrument.TEM.Detector.EELS.collection_angle"],
        "convergence_angle_mrad": ["Acquisition_instrument.TEM.convergence_angle"],
        "exposure_s": ["Acquisition_instrument.TEM.Detector.EELS.exposure",
                       "Acquisition_instrument.TEM.Detector.EELS.dwell_time",
                       "Acquisition_instrument.Detector.integration_time",
                       "Acquisition_instrument.TEM.Camera.exposure"],
    }
    for key, paths in numbers.items():
        value = first(md, paths)
        if value is not None:
            out[key] = repr(float(value))
    microscope = first(md, [i + "microscope" for i in instruments])
    if microscope:
        out["microscope"] = microscope
    # Not a HyperSpy metadata item: the spectrometer's own tag.
    dispersion = om.get_item("ImageList.TagGroup0.ImageTags.EELS Spectrometer.Dispersion (eV/ch)")
    if isinstance(dispersion, (int, float)):
        out["dispersion_ev"] = repr(float(dispersion))
    return out


def is_spectrum_image(s):
    om = s.original_metadata
    fmt = om.get_item("ImageList.TagGroup0.ImageTags.Meta Data.Format", "")
    return fmt == "Spectrum image" or om.has_item("ImageList.TagGroup0.ImageTags.spim")


def main_index(signals):
    """io.h: the spectrum image if any (the largest), else the largest; the first of equals."""
    best = 0
    for i, s in enumerate(signals):
        b = signals[best]
        if (is_spectrum_image(s) and not is_spectrum_image(b)) or (
                is_spectrum_image(s) == is_spectrum_image(b) and s.data.size > b.data.size):
            best = i
    return best


def main():
    out_dir = sys.argv[1]
    try:
        import numpy as np  # noqa: F401
        import hyperspy
        import hyperspy.api as hs
    except Exception as e:  # any failure to import is "no oracle"
        print("HyperSpy is not importable: %s" % e, file=sys.stderr)
        return 77
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    root = os.path.join(os.path.dirname(hyperspy.__file__), "tests", "io")
    files = []
    for directory, _, names in os.walk(root):
        files += [os.path.join(directory, n) for n in names if n.lower().endswith((".dm3", ".dm4"))]
    files.sort()
    lines = ["version\t%s" % hyperspy.__version__]
    for k, path in enumerate(files):
        lines.append("file\t%s" % path)
        try:
            loaded = hs.load(path)
        except Exception as e:
            lines += ["error\t%s: %s" % (type(e).__name__, text(e)), "end"]
            continue
        signals = loaded if isinstance(loaded, list) else [loaded]
        lines.append("signals\t%d\t%d" % (len(signals), main_index(signals)))
        for i, s in enumerate(signals):
            dtype, raw = element_bytes(s.data)
            data_file = "dm_%03d_%d.bin" % (k, i)
            with open(os.path.join(out_dir, data_file), "wb") as f:
                f.write(raw)
            lines.append("signal\t%d\t%s\t%d\t%s\t%s" % (
                i, dtype, s.data.ndim, "\t".join(str(n) for n in s.data.shape), data_file))
            for j, a in enumerate(s.axes_manager._axes):
                name = a.name if isinstance(a.name, str) else ""
                units = a.units if isinstance(a.units, str) else ""
                lines.append("axis\t%d\t%r\t%r\t%d\t%s\t%s" % (
                    j, float(a.offset), float(a.scale), int(bool(a.navigate)), text(name), text(units)))
            for key, value in metadata(s).items():
                lines.append("meta\t%s\t%s" % (key, text(value)))
        lines.append("end")
    with open(os.path.join(out_dir, "manifest.tsv"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
