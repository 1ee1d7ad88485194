"""Signals: every element type to and from NumPy, axes, metadata, files."""
import numpy as np
import pytest

import eelsvae
from eelsvae import DType, EelsvaeError, Format, Status
from eelsvae.signal import RGBA8


def _example(dtype, rng, shape=(3, 4, 5)):
    if dtype == RGBA8:
        raw = rng.integers(0, 256, size=shape + (4,), dtype=np.uint8)
        return np.ascontiguousarray(raw).view(RGBA8).reshape(shape)
    if np.issubdtype(dtype, np.complexfloating):
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -1000), min(info.max, 1000), size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


ALL = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64, np.float32, np.float64,
       np.bool_, np.complex64, np.complex128, RGBA8]


@pytest.mark.parametrize("dtype", ALL, ids=lambda d: np.dtype(d).name if d is not RGBA8 else "rgba8")
def test_every_dtype_round_trips(rng, dtype):
    a = _example(np.dtype(dtype), rng)
    sig = eelsvae.Signal.from_numpy(a)
    assert sig.shape == a.shape and sig.ndim == 3
    assert sig.dtype == np.dtype(dtype)
    out = sig.to_numpy()
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, a)
    view = sig.to_numpy(copy=False)
    assert not view.flags.writeable
    np.testing.assert_array_equal(view, a)


def test_float16_is_widened_and_byte_order_normalised(rng):
    a = rng.standard_normal((2, 3)).astype(np.float16)
    sig = eelsvae.Signal.from_numpy(a)
    assert sig.dtype_code == DType.FLOAT32
    np.testing.assert_array_equal(sig.to_numpy(), a.astype(np.float32))
    b = rng.standard_normal((2, 3)).astype(">f8")
    np.testing.assert_array_equal(eelsvae.Signal.from_numpy(b).to_numpy(), b.astype(np.float64))
    with pytest.raises(TypeError):
        eelsvae.Signal.from_numpy(np.array(["text"]))


def test_axes_and_metadata(rng):
    a = rng.random((4, 5, 6)).astype(np.float32)
    axes = [dict(offset=1.0, scale=2.0, name="y", units="nm"),
            dict(offset=0.0, scale=0.5, name="x", units="nm"),
            dict(offset=420.0, scale=0.3, name="Energy loss", units="eV", navigate=False)]
    sig = eelsvae.Signal.from_numpy(a, axes=axes, metadata={"title": "SI", "beam_energy_kev": 200.0})
    got = sig.axes
    assert [ax.size for ax in got] == [4, 5, 6]
    assert [ax.name for ax in got] == ["y", "x", "Energy loss"]
    assert [ax.navigate for ax in got] == [True, True, False]
    assert got[2].offset == 420.0 and got[2].scale == 0.3 and got[2].units == "eV"
    assert sig.title == "SI"
    assert float(sig.get_metadata("beam_energy_kev")) == 200.0
    sig.set_metadata("microscope", "Nion UltraSTEM")
    assert sig.metadata == {"title": "SI", "beam_energy_kev": "200.0", "microscope": "Nion UltraSTEM"}
    assert sig.get_metadata("absent") is None
    with pytest.raises(EelsvaeError) as info:
        sig.set_axis(3, 0.0, 1.0)
    assert info.value.status == Status.RANGE
    cube = sig.to_cube()
    assert cube.shape == (4, 5, 6)
    assert cube.energy_axis == (420.0, 0.3, "eV") and cube.y_axis == (1.0, 2.0, "nm")
    np.testing.assert_array_equal(cube.to_numpy(), a)


def test_cube_signal_round_trip(rng):
    a = rng.random((2, 3, 7)).astype(np.float32)
    cube = eelsvae.Cube.from_numpy(a, energy=(700.0, 0.1, "eV"), x=(5.0, 2.0, "nm"))
    sig = cube.to_signal()
    assert sig.get_metadata("signal_type") == "EELS"
    assert sig.axes[2].offset == 700.0 and sig.axes[1].units == "nm" and not sig.axes[2].navigate
    np.testing.assert_array_equal(sig.to_numpy(), a)


def test_complex_signal_is_not_a_cube(rng):
    sig = eelsvae.Signal.from_numpy(_example(np.dtype(np.complex64), rng))
    with pytest.raises(EelsvaeError) as info:
        sig.to_cube()
    assert info.value.status == Status.UNSUPPORTED and info.value.message


def test_npy_signal_files(tmp_path, rng):
    a = rng.integers(0, 5000, size=(3, 4, 5)).astype(np.uint16)
    sig = eelsvae.Signal.from_numpy(a)
    sig.save(tmp_path / "s.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), a)
    assert np.load(tmp_path / "s.npy").dtype == np.uint16
    back = eelsvae.Signal.load(tmp_path / "s.npy")
    np.testing.assert_array_equal(back.to_numpy(), a)
    assert eelsvae.file_signals(tmp_path / "s.npy") == (1, 0)
    assert eelsvae.detect_format(tmp_path / "s.npy") == Format.NPY
    assert eelsvae.format_supported("npy")
    (tmp_path / "x.bin").write_bytes(b"\x00" * 64)
    assert eelsvae.detect_format(tmp_path / "x.bin") == Format.UNKNOWN
    with pytest.raises(EelsvaeError) as info:
        sig.save(tmp_path / "s.unknown-extension")
    assert info.value.status == Status.INVALID_ARGUMENT


def test_npy_signal_keeps_the_file_dtype(tmp_path, rng):
    a = rng.integers(0, 5000, size=(3, 4)).astype(np.uint16)
    np.save(tmp_path / "u16.npy", a)
    s = eelsvae.Signal.load(tmp_path / "u16.npy")
    assert s.dtype == np.uint16
    np.testing.assert_array_equal(s.to_numpy(), a)
    f = np.asfortranarray(rng.integers(-9, 9, size=(3, 5, 2)).astype(">i8"))
    np.save(tmp_path / "i8f.npy", f)
    s = eelsvae.Signal.load(tmp_path / "i8f.npy")
    assert s.dtype == np.int64
    np.testing.assert_array_equal(s.to_numpy(), f)
