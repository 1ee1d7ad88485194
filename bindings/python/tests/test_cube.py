"""Cubes and NumPy: copies in, zero-copy views out, calibration, crops, tiles, files."""
import gc
import re
import weakref

import numpy as np
import pytest

import eelsvae
from eelsvae import Axis, EelsvaeError, Status

from conftest import calibrated_random_cube


def test_from_numpy_copies_and_round_trips(rng):
    a = rng.random((3, 4, 5)).astype(np.float32)
    cube = eelsvae.Cube.from_numpy(a)
    assert cube.shape == (3, 4, 5) and (cube.ny, cube.nx, cube.ne) == (3, 4, 5)
    out = cube.to_numpy()
    assert out.dtype == np.float32 and out.shape == (3, 4, 5) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, a)
    a[0, 0, 0] = -1.0                      # the cube holds its own copy
    assert out[0, 0, 0] != -1.0
    assert not np.shares_memory(out, a)


@pytest.mark.parametrize("make", [
    lambda a: a.astype(np.float64),
    lambda a: (a * 1000).astype(np.int16),
    lambda a: np.asfortranarray(a),
    lambda a: np.ascontiguousarray(np.concatenate([a, a], axis=2))[:, :, ::2],   # strided view
    lambda a: a.astype(">f4"),                                                      # big-endian
    lambda a: a > 0.5,                                                              # bool
], ids=["float64", "int16", "fortran", "strided", "big-endian", "bool"])
def test_from_numpy_converts_other_layouts(rng, make):
    base = rng.random((3, 4, 6)).astype(np.float32)
    src = make(base)
    cube = eelsvae.Cube.from_numpy(src)
    np.testing.assert_array_equal(cube.to_numpy(), np.asarray(src, dtype=np.float32))


def test_from_numpy_rejects_bad_input():
    with pytest.raises(ValueError):
        eelsvae.Cube.from_numpy(np.zeros((4, 5), np.float32))
    with pytest.raises(TypeError):
        eelsvae.Cube.from_numpy(np.zeros((2, 2, 2), np.complex128))
    with pytest.raises(TypeError):
        eelsvae.Cube.from_numpy(np.array([[["a"]]]))
    with pytest.raises(EelsvaeError) as info:
        eelsvae.Cube.from_numpy(np.zeros((0, 2, 2), np.float32))
    assert info.value.status == Status.INVALID_ARGUMENT


def test_view_is_zero_copy_and_aliases(rng):
    cube = eelsvae.Cube.from_numpy(rng.random((3, 4, 5)).astype(np.float32))
    v1 = cube.to_numpy()
    v2 = np.asarray(cube)
    assert np.shares_memory(v1, v2)
    assert v1.ctypes.data == v2.ctypes.data
    assert v1.ctypes.data % 64 == 0            # the library's 64-byte alignment
    v1[1, 2, 3] = 123.5
    assert v2[1, 2, 3] == np.float32(123.5)
    assert cube.spectrum(1, 2)[3] == np.float32(123.5)
    assert cube.to_numpy(copy=True)[1, 2, 3] == np.float32(123.5)
    # in-place library operations are seen by existing views
    cube.scale(0.0, 1000.0)
    np.testing.assert_allclose(v2[1, 2, 3], 0.1235, rtol=1e-6)
    # a copy does not alias
    c = cube.to_numpy(copy=True)
    c[0, 0, 0] = -5
    assert v1[0, 0, 0] != -5


def test_view_keeps_cube_alive_and_blocks_close(rng):
    cube = eelsvae.Cube.from_numpy(np.full((2, 2, 3), 7.0, np.float32))
    view = cube.to_numpy()
    alive = weakref.ref(cube)
    with pytest.raises(BufferError):
        cube.close()
    del cube
    gc.collect()
    assert alive() is not None                 # the view's base holds the cube
    np.testing.assert_array_equal(view, 7.0)
    sub = view[1]                              # a view of the view still keeps it
    del view
    gc.collect()
    assert alive() is not None
    np.testing.assert_array_equal(sub, 7.0)
    del sub
    gc.collect()
    assert alive() is None


def test_closed_cube_refuses_work():
    cube = eelsvae.Cube(1, 1, 2)
    cube.close()
    cube.close()                               # idempotent
    with pytest.raises(ValueError):
        cube.to_numpy()
    with eelsvae.Cube(1, 1, 2) as c:
        assert not c.closed
    assert c.closed


def test_read_only_view(rng):
    cube = eelsvae.Cube.from_numpy(rng.random((2, 2, 2)).astype(np.float32))
    ro = cube.to_numpy(writeable=False)
    with pytest.raises(ValueError):
        ro[0, 0, 0] = 1.0


def test_data_setter_assigns_in_place(rng):
    cube = eelsvae.Cube(2, 3, 4)
    view = cube.data
    new = rng.random((2, 3, 4))
    cube.data = new
    np.testing.assert_allclose(view, new.astype(np.float32), rtol=0, atol=0)


def test_calibration_properties(rng):
    cube = eelsvae.Cube(2, 3, 5)
    assert cube.energy_axis == (0.0, 1.0, "eV")
    assert cube.y_axis == (0.0, 1.0, "")
    cube.energy_axis = (420.0, 0.25, "eV")
    cube.y_axis = (10.0, 2.0, "nm")
    cube.set_axis("x", -1.0, 0.5, "nm")
    assert cube.axis(Axis.E) == (420.0, 0.25, "eV")
    assert cube.axis("y") == (10.0, 2.0, "nm")
    assert cube.x_axis.offset == -1.0 and cube.x_axis.scale == 0.5
    np.testing.assert_allclose(cube.energy, 420.0 + 0.25 * np.arange(5), rtol=0, atol=1e-12)
    with pytest.raises(ValueError):
        cube.set_axis("e", 0.0, 1.0, "a-units-string-far-too-long")
    with pytest.raises(EelsvaeError) as info:
        cube.set_axis("e", 0.0, 0.0)
    assert info.value.status == Status.INVALID_ARGUMENT and info.value.message


def test_energy_window_and_crops(rng):
    cube, a = calibrated_random_cube(rng, ny=6, nx=7, ne=50, e0=680.0, de=0.5)
    energies = 680.0 + 0.5 * np.arange(50)
    inside = np.nonzero((energies >= 690.0 - 1e-9) & (energies <= 700.0 + 1e-9))[0]
    window = cube.energy_window(690.0, 700.0)
    assert (window.start, window.stop) == (inside[0], inside[-1] + 1)

    cropped = cube.crop_energy(690.0, 700.0)
    np.testing.assert_array_equal(cropped.to_numpy(), a[:, :, window])
    assert cropped.energy_axis.offset == pytest.approx(energies[window.start], abs=1e-9)
    assert cropped.energy_axis.scale == 0.5

    cube.set_axis("y", 100.0, 2.0, "nm")
    part = cube.crop(2, 3, 3, 4)
    np.testing.assert_array_equal(part.to_numpy(), a[2:5, 3:7])
    assert part.y_axis.offset == pytest.approx(104.0)
    with pytest.raises(EelsvaeError) as info:
        cube.energy_window(900.0, 950.0)
    assert info.value.status == Status.RANGE


def test_bin_energy_sums_channels_and_moves_the_axis_to_the_bin_centre(rng):
    cube, a = calibrated_random_cube(rng, ny=3, nx=4, ne=23, e0=400.0, de=0.5)
    cube.set_axis("y", 10.0, 2.0, "nm")
    binned = cube.bin_energy(5)
    assert binned.shape == (3, 4, 4)                            # 23 // 5; the top 3 channels dropped
    want = a[:, :, :20].astype(np.float64).reshape(3, 4, 4, 5).sum(axis=3)
    np.testing.assert_allclose(binned.to_numpy(), want, rtol=1e-6, atol=0)
    e = binned.energy_axis
    assert e.offset == pytest.approx(400.0 + 0.5 * (5 - 1) / 2) and e.scale == pytest.approx(2.5)
    assert e.units == "eV"
    # each binned channel sits at the mean energy of the channels it sums
    np.testing.assert_allclose(binned.energy, cube.energy[:20].reshape(4, 5).mean(axis=1), rtol=0, atol=1e-9)
    assert binned.y_axis == cube.y_axis                          # spatial axes untouched
    # counts stay counts: the total is kept (over the channels binned)
    assert binned.to_numpy().sum(dtype=np.float64) == pytest.approx(a[:, :, :20].sum(dtype=np.float64), rel=1e-6)
    # bin 1 is a copy; the source is unchanged
    np.testing.assert_array_equal(cube.bin_energy(1).to_numpy(), a)
    assert cube.bin_energy(1).energy_axis == cube.energy_axis
    np.testing.assert_array_equal(cube.to_numpy(), a)
    assert cube.bin_energy(np.int64(23)).shape == (3, 4, 1)
    with pytest.raises(EelsvaeError) as info:
        cube.bin_energy(24)                                      # more than the channel count
    assert info.value.status == Status.INVALID_ARGUMENT and info.value.message
    with pytest.raises(ValueError):
        cube.bin_energy(0)
    with pytest.raises(TypeError):
        cube.bin_energy(2.5)


def test_copy_is_deep(rng):
    cube, a = calibrated_random_cube(rng)
    twin = cube.copy()
    np.testing.assert_array_equal(twin.to_numpy(), a)
    assert twin.energy_axis == cube.energy_axis
    twin.to_numpy()[...] = 0
    np.testing.assert_array_equal(cube.to_numpy(), a)


def test_sum_image_and_mean_spectrum(rng):
    cube, a = calibrated_random_cube(rng, ny=7, nx=5, ne=33)
    np.testing.assert_allclose(cube.sum_image(), a.astype(np.float64).sum(axis=2), rtol=1e-5)
    np.testing.assert_allclose(cube.mean_spectrum(), a.astype(np.float64).mean(axis=(0, 1)), rtol=1e-5)


def test_check_finite_names_the_pixel(rng):
    cube, a = calibrated_random_cube(rng, ny=3, nx=4, ne=5)
    cube.check_finite()
    cube.to_numpy()[2, 1, 3] = np.nan
    with pytest.raises(EelsvaeError) as info:
        cube.check_finite()
    assert info.value.status == Status.NUMERIC
    # names the pixel (y 2, x 1) and channel 3, whatever the wording around them
    assert re.search(r"\b2\b.*\b1\b.*\b3\b", info.value.message), info.value.message


@pytest.mark.parametrize("stride", [0, 4, 3, 1])
def test_tiles_follow_the_documented_layout(rng, stride):
    ny, nx, T = 10, 13, 4
    a = rng.random((ny, nx, 3)).astype(np.float32)
    cube = eelsvae.Cube.from_numpy(a)
    s = stride or T
    ty, tx = eelsvae.tiling(ny, nx, T, stride)
    assert (ty, tx) == (-(-(ny - T) // s) + 1, -(-(nx - T) // s) + 1)
    tiles = cube.to_tiles(T, stride)
    assert tiles.shape == (ty * tx, T, T, 3)
    for i in range(ty):
        for j in range(tx):
            y0, x0 = min(i * s, ny - T), min(j * s, nx - T)
            np.testing.assert_array_equal(tiles[i * tx + j], a[y0:y0 + T, x0:x0 + T])
    back = eelsvae.Cube.from_tiles(tiles, ny, nx, stride)
    np.testing.assert_allclose(back.to_numpy(), a, rtol=1e-6)


def test_tiling_errors():
    with pytest.raises(EelsvaeError) as info:
        eelsvae.tiling(3, 3, 4)
    assert info.value.status == Status.DIMENSION
    with pytest.raises(EelsvaeError) as info:
        eelsvae.tiling(8, 8, 4, 5)
    assert info.value.status == Status.INVALID_ARGUMENT and "stride" in info.value.message


def test_npy_files_round_trip(tmp_path, rng):
    a = rng.random((3, 4, 5)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    cube = eelsvae.load(tmp_path / "a.npy")
    np.testing.assert_array_equal(cube.to_numpy(), a)
    assert eelsvae.detect_format(tmp_path / "a.npy") == eelsvae.Format.NPY
    cube.to_numpy()[0, 0, 0] = 9.0
    cube.save_npy(str(tmp_path / "b.npy"))
    b = np.load(tmp_path / "b.npy")
    assert b.dtype == np.float32 and b.shape == (3, 4, 5) and b[0, 0, 0] == 9.0
    cube.save(tmp_path / "c.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), b)
    # integer .npy files are converted to float32
    np.save(tmp_path / "i.npy", (a * 100).astype(np.uint16))
    np.testing.assert_array_equal(eelsvae.Cube.load(tmp_path / "i.npy").to_numpy(),
                                  (a * 100).astype(np.uint16).astype(np.float32))


def test_map_save_writes_a_2d_array(tmp_path, rng):
    cube, _ = calibrated_random_cube(rng, ny=3, nx=4)
    scores = rng.random((3, 4)).astype(np.float32)
    cube.save_map(scores, tmp_path / "scores.npy", title="PCC")
    np.testing.assert_array_equal(np.load(tmp_path / "scores.npy"), scores)
    with pytest.raises(ValueError):
        cube.save_map(scores.T, tmp_path / "bad.npy")
