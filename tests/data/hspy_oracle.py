"""HyperSpy as the oracle for libeelsvae's .hspy reader and writer.

    hspy_oracle.py make OUTDIR
        HyperSpy writes a corpus of .hspy files into OUTDIR (several element
        types, 1-D to 4-D, calibrated axes, titles, EELS metadata, chunked
        and gzip-compressed or not, big-endian data, a signal axis that is
        not the last, two experiments in one file, non-uniform axes) and
        describes each as HyperSpy loads it: NAME.txt and NAME.bin.
        The single-signal files shipped with HyperSpy's own tests are
        described as corpus_<stem>.txt/.bin (not copied).
    hspy_oracle.py describe FILE PREFIX [FILE PREFIX ...]
        HyperSpy loads FILE and writes PREFIX.txt and PREFIX.bin.

A description is "key<TAB>value" lines: dtype, ndim, shape, class,
signal_dimension, axis<i>.{name,units,offset,scale,navigate} in array
order, title, signal_type and, when HyperSpy's metadata has them, date,
time, beam_energy, convergence_angle, collection_angle, exposure_s and
microscope. Floats are repr()s (they read back exactly). The .bin holds the
elements little-endian, C order (float16 widened to float32, as libeelsvae
reads it; bool as bytes 0/1; complex as interleaved real, imaginary).
"""
import glob
import logging
import os
import sys
import warnings

import h5py
import numpy as np

warnings.simplefilter("ignore")
logging.disable(logging.CRITICAL)
import hyperspy.api as hs  # noqa: E402

CORPUS = "/usr/lib/python3/dist-packages/hyperspy/tests/io/hdf5_files"


def text(v):
    """Undefined, None and '<undefined>' are no value."""
    if v is None:
        return ""
    v = str(v)
    return "" if v == "<undefined>" else v


def item(md, path):
    return md.get_item(path) if md.has_item(path) else None


def exposure_seconds(md):
    """Detector.EELS.exposure or dwell_time (Detector.* in files of format
    < 1.2, which HyperSpy moves there), scaled by a `<name>_units` sibling."""
    factors = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "\u00b5s": 1e-6, "ns": 1e-9}
    for node in ("Acquisition_instrument.TEM.Detector.EELS", "Acquisition_instrument.TEM.Detector"):
        for name in ("exposure", "dwell_time"):
            v = item(md, node + "." + name)
            if v is not None and not isinstance(v, (dict, str)):
                unit = item(md, node + "." + name + "_units")
                return float(v) * factors.get(unit, 1.0)
    return None


def describe(s, prefix):
    data = np.asarray(s.data)
    if data.dtype.names == ("R", "G", "B", "A") and all(data.dtype[n] == np.uint8 for n in "RGBA"):
        dtype = "rgba8"
        raw = data.view(np.uint8).reshape(data.shape + (4,))
    elif data.dtype == np.float16:
        dtype = "float16"
        raw = data.astype("<f4")
    else:
        dtype = data.dtype.name
        raw = data.astype(data.dtype.newbyteorder("<"))
    lines = [("dtype", dtype), ("ndim", data.ndim), ("shape", " ".join(str(n) for n in data.shape)),
             ("class", type(s).__name__), ("signal_dimension", s.axes_manager.signal_dimension)]
    axes = sorted(s.axes_manager._axes, key=lambda a: a.index_in_array)
    for a in axes:
        i = a.index_in_array
        if a.is_uniform:
            offset, scale = float(a.offset), float(a.scale)
        else:  # a DataAxis: its first point and mean step, and whether the steps are equal
            points = np.asarray(a.axis, dtype=float)
            offset, scale = points[0], (points[-1] - points[0]) / (len(points) - 1)
            lines.append((f"axis{i}.equal_steps", int(np.allclose(np.diff(points), scale, rtol=1e-9, atol=0))))
        lines += [(f"axis{i}.name", text(a.name)), (f"axis{i}.units", text(a.units)),
                  (f"axis{i}.offset", repr(float(offset))), (f"axis{i}.scale", repr(float(scale))),
                  (f"axis{i}.navigate", int(bool(a.navigate)))]
    md = s.metadata
    lines += [("title", text(item(md, "General.title"))), ("signal_type", text(item(md, "Signal.signal_type")))]
    for key, path in (("date", "General.date"), ("time", "General.time"),
                      ("microscope", "Acquisition_instrument.TEM.microscope")):
        v = item(md, path)
        if v not in (None, ""):
            lines.append((key, str(v)))
    for key, paths in (("beam_energy", ["Acquisition_instrument.TEM.beam_energy"]),
                       ("convergence_angle", ["Acquisition_instrument.TEM.convergence_angle"]),
                       ("collection_angle", ["Acquisition_instrument.TEM.Detector.EELS.collection_angle",
                                             "Acquisition_instrument.TEM.Detector.collection_angle"])):
        for p in paths:
            v = item(md, p)
            if v is not None:
                lines.append((key, repr(float(v))))
                break
    e = exposure_seconds(md)
    if e is not None:
        lines.append(("exposure_s", repr(e)))
    with open(prefix + ".txt", "w", encoding="utf-8") as f:
        for k, v in lines:
            f.write(f"{k}\t{v}\n")
    np.ascontiguousarray(raw).tofile(prefix + ".bin")


def load_and_describe(path, prefix):
    s = hs.load(path)
    if isinstance(s, list):
        s = s[0]
    describe(s, prefix)


def calibrate(s, names, units, offsets, scales):
    for a, n, u, o, sc in zip(sorted(s.axes_manager._axes, key=lambda a: a.index_in_array), names, units, offsets,
                              scales):
        a.name, a.units, a.offset, a.scale = n, u, o, sc


def make(out):
    rng = np.random.default_rng(20240611)
    files = {}

    # A float32 EELS spectrum image with everything libeelsvae maps.
    s = hs.signals.Signal1D(rng.normal(100, 10, (3, 4, 5)).astype(np.float32))
    s.set_signal_type("EELS")
    s.metadata.General.title = "EELS cube"
    calibrate(s, ["y", "x", "Energy loss"], ["nm", "nm", "eV"], [-1.5, 2.25, 400.0], [0.5, 0.75, 0.125])
    s.set_microscope_parameters(beam_energy=200.0, convergence_angle=10.5, collection_angle=20.25)
    s.metadata.set_item("Acquisition_instrument.TEM.Detector.EELS.exposure", 0.015)
    s.metadata.set_item("Acquisition_instrument.TEM.microscope", "Nion UltraSTEM")
    s.metadata.General.date = "2023-04-05"
    s.metadata.General.time = "13:14:15"
    files["eels_f32"] = s

    # A 1-D float64 spectrum with a non-ASCII title; integer calibration values.
    s = hs.signals.Signal1D(rng.normal(0, 1, 7))
    s.metadata.General.title = "Spectre \u00e9 \u00b5"
    calibrate(s, ["Energy"], ["keV"], [-3.5], [0.125])
    files["spectrum_f64"] = s

    # Images of each integer type and bool.
    for dt in ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"):
        info = np.iinfo(dt)
        a = rng.integers(info.min, info.max, size=(5, 6), dtype=dt, endpoint=True)
        a.flat[0], a.flat[1] = info.min, info.max
        s = hs.signals.Signal2D(a)
        calibrate(s, ["y", "x"], ["\u00b5m", "\u00b5m"], [0.0, 1.0], [2.0, 3.0])
        files["image_" + dt] = s
    files["mask_bool"] = hs.signals.Signal2D(rng.integers(0, 2, (4, 7)).astype(bool))

    # Complex spectra (navigation 3, signal 4).
    c = rng.normal(size=(3, 4)) + 1j * rng.normal(size=(3, 4))
    files["complex64"] = hs.signals.ComplexSignal1D(c.astype(np.complex64))
    files["complex128"] = hs.signals.ComplexSignal1D(c)

    # float16 (read as float32 by libeelsvae), big-endian float32, rgba8.
    files["half"] = hs.signals.Signal1D(rng.normal(0, 100, (2, 9)).astype(np.float16))
    files["big_endian_f32"] = hs.signals.Signal1D(rng.normal(0, 1, (2, 3, 4)).astype(">f4"))
    rgba = np.zeros((3, 5), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1"), ("A", "u1")])
    raw = rng.integers(0, 256, (3, 5, 4), dtype=np.uint8)
    for k, n in enumerate("RGBA"):
        rgba[n] = raw[..., k]
    files["rgba8"] = hs.signals.Signal2D(rgba)

    # A 4-D signal (two navigation, two signal axes).
    files["four_d"] = hs.signals.Signal2D(rng.normal(0, 1, (2, 3, 4, 5)).astype(np.float32))

    for name, sig in files.items():
        path = os.path.join(out, name + ".hspy")
        sig.save(path, overwrite=True)
        load_and_describe(path, os.path.join(out, name))

    # Storage variants of one spectrum image: several chunks, gzip 9, none.
    s = hs.signals.Signal1D(rng.normal(5, 2, (6, 7, 8)).astype(np.float32))
    s.set_signal_type("EELS")
    variants = {"chunked_gzip9": dict(chunks=(2, 3, 8), compression="gzip", compression_opts=9),
                "uncompressed": dict(compression=None, shuffle=False)}
    for name, kw in variants.items():
        path = os.path.join(out, name + ".hspy")
        s.save(path, overwrite=True, **kw)
        load_and_describe(path, os.path.join(out, name))

    # The signal axis first: navigate flags as written, not "the last axes".
    path = os.path.join(out, "signal_first.hspy")
    hs.signals.Signal1D(rng.normal(0, 1, (5, 3, 4)).astype(np.float32)).save(path, overwrite=True)
    with h5py.File(path, "r+") as f:
        g = f["Experiments/__unnamed__"]
        g["axis-0"].attrs["navigate"] = np.bool_(False)
        g["axis-2"].attrs["navigate"] = np.bool_(True)
    load_and_describe(path, os.path.join(out, "signal_first"))

    # Two experiments: HyperSpy lists them in name order; the first is read.
    path = os.path.join(out, "two.hspy")
    a = hs.signals.Signal1D(np.arange(6, dtype=np.int16).reshape(2, 3))
    a.metadata.General.title = "b second"
    a.save(path, overwrite=True)
    b = hs.signals.Signal1D(np.arange(10, dtype=np.int32).reshape(2, 5) * 3)
    b.metadata.General.title = "a first"
    tmp = os.path.join(out, "two_b.hspy")
    b.save(tmp, overwrite=True)
    with h5py.File(tmp, "r") as src, h5py.File(path, "r+") as dst:
        src.copy("Experiments/a first", dst["Experiments"])
    os.remove(tmp)
    load_and_describe(path, os.path.join(out, "two"))

    # A DataAxis whose points are evenly spaced (read) or not (refused).
    for name, points in (("points_uniform", 10.0 + 0.5 * np.arange(6)), ("points_squares", np.arange(6.0) ** 2)):
        s = hs.signals.Signal1D(np.arange(12, dtype=np.float32).reshape(2, 6))
        s.axes_manager[-1].convert_to_non_uniform_axis()
        s.axes_manager[-1].axis = points
        path = os.path.join(out, name + ".hspy")
        s.save(path, overwrite=True)
        load_and_describe(path, os.path.join(out, name))

    make_bad(out, rng)

    for path in sorted(glob.glob(os.path.join(CORPUS, "*"))):
        stem = os.path.splitext(os.path.basename(path))[0]
        try:
            load_and_describe(path, os.path.join(out, "corpus_" + stem))
        except Exception as e:  # noqa: BLE001 - recorded for the C test
            with open(os.path.join(out, "corpus_" + stem + ".txt"), "w") as f:
                f.write(f"error\t{type(e).__name__}\n")


def make_bad(out, rng):
    """Files libeelsvae must refuse with a clear status (bad_*.hspy)."""
    def fresh(name, **kw):
        path = os.path.join(out, name)
        s = hs.signals.Signal1D(rng.normal(0, 1, (4, 5, 6)).astype(np.float32))
        s.save(path, overwrite=True, **kw)
        return path

    with h5py.File(os.path.join(out, "bad_no_experiments.hdf5"), "w") as f:
        f["data"] = np.zeros(3)
    with h5py.File(os.path.join(out, "bad_no_data.hspy"), "w") as f:
        f.attrs["file_format"] = "HyperSpy"
        f.create_group("Experiments/empty")
    with h5py.File(fresh("bad_missing_axis.hspy"), "r+") as f:
        del f["Experiments/__unnamed__/axis-1"]
    with h5py.File(fresh("bad_axis_size.hspy"), "r+") as f:
        f["Experiments/__unnamed__/axis-0"].attrs["size"] = 7
    with h5py.File(fresh("bad_scale_zero.hspy"), "r+") as f:
        f["Experiments/__unnamed__/axis-2"].attrs["scale"] = 0.0
    fresh("bad_lzf.hspy", compression="lzf", shuffle=False)
    # A gzip chunk overwritten with garbage: the inflate fails on reading.
    path = fresh("bad_chunk.hspy", chunks=(4, 5, 6))
    with h5py.File(path, "r") as f:
        info = f["Experiments/__unnamed__/data"].id.get_chunk_info(0)
    with open(path, "r+b") as f:
        f.seek(info.byte_offset)
        f.write(bytes([0xAA]) * info.size)


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
