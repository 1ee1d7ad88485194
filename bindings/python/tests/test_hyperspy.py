"""HyperSpy interoperability (skipped when HyperSpy is not importable)."""
import warnings

import numpy as np
import pytest

import eelsvae
from eelsvae import EelsvaeError, Status

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    hs = pytest.importorskip("hyperspy.api")


def _si(rng, shape=(4, 5, 30)):
    data = rng.random(shape).astype(np.float32)
    axes = [dict(name="y", size=shape[0], offset=2.0, scale=0.5, units="nm", navigate=True),
            dict(name="x", size=shape[1], offset=-1.0, scale=0.25, units="nm", navigate=True),
            dict(name="Energy loss", size=shape[2], offset=690.0, scale=0.5, units="eV", navigate=False)]
    return hs.signals.Signal1D(data, axes=axes), data


def test_cube_from_signal1d(rng):
    si, data = _si(rng)
    cube = eelsvae.Cube.from_hyperspy(si)
    np.testing.assert_array_equal(cube.to_numpy(), data)
    assert cube.y_axis == (2.0, 0.5, "nm")
    assert cube.x_axis == (-1.0, 0.25, "nm")
    assert cube.energy_axis == (690.0, 0.5, "eV")
    # float64 data and a line scan (x | E) convert too
    line = hs.signals.Signal1D(rng.random((6, 30)))
    line.axes_manager[-1].offset = 700.0
    c2 = eelsvae.Cube.from_hyperspy(line)
    assert c2.shape == (1, 6, 30) and c2.energy_axis.offset == 700.0
    np.testing.assert_allclose(c2.to_numpy()[0], line.data.astype(np.float32), rtol=0, atol=0)
    with pytest.raises(ValueError):
        eelsvae.Cube.from_hyperspy(hs.signals.Signal2D(np.zeros((4, 4))))


def test_cube_to_eels_spectrum_round_trip(rng):
    si, data = _si(rng)
    cube = eelsvae.Cube.from_hyperspy(si)
    out = cube.to_hyperspy(title="round trip")
    assert out.metadata.Signal.signal_type == "EELS"
    assert out.metadata.General.title == "round trip"
    assert out.axes_manager.navigation_shape == (5, 4) and out.axes_manager.signal_shape == (30,)
    for mine, theirs in zip(sorted(out.axes_manager._axes, key=lambda a: a.index_in_array),
                            sorted(si.axes_manager._axes, key=lambda a: a.index_in_array)):
        assert (mine.offset, mine.scale, mine.units, mine.navigate) == \
               (theirs.offset, theirs.scale, theirs.units, theirs.navigate)
    np.testing.assert_array_equal(out.data, data)
    shared = eelsvae.to_hyperspy(cube, copy=False)
    shared.data[0, 0, 0] = -7.0                      # zero-copy: the cube sees it
    assert cube.to_numpy()[0, 0, 0] == -7.0


def test_score_map_to_signal2d(rng):
    si, _ = _si(rng)
    cube = eelsvae.Cube.from_hyperspy(si)
    scores = eelsvae.Scorer("pcc", (695.0, 700.0)).score(cube, cube.copy())
    np.testing.assert_allclose(scores, 1.0, atol=1e-6)          # a cube against itself
    sig = eelsvae.to_hyperspy(scores, like=cube, title="PCC")
    assert isinstance(sig, hs.signals.Signal2D)
    assert sig.axes_manager.signal_shape == (5, 4) and sig.axes_manager.navigation_dimension == 0
    y, x = sorted(sig.axes_manager._axes, key=lambda a: a.index_in_array)
    assert (y.offset, y.scale, y.units) == (2.0, 0.5, "nm")
    assert (x.offset, x.scale, x.units) == (-1.0, 0.25, "nm")
    assert sig.metadata.General.title == "PCC"
    np.testing.assert_array_equal(sig.data, scores)
    mask = eelsvae.to_hyperspy(scores < 0.5, like=cube)
    assert mask.data.dtype == np.bool_


def _load_or_skip(path):
    try:
        return eelsvae.load(path)
    except EelsvaeError as exc:
        if exc.status == Status.UNSUPPORTED:
            pytest.skip("this libeelsvae does not read %s yet: %s" % (path.suffix, exc.message))
        raise


@pytest.mark.parametrize("ext", [".hspy", ".rpl"])
def test_files_written_by_hyperspy_load_as_cubes(tmp_path, rng, ext):
    si, data = _si(rng)
    path = tmp_path / ("si" + ext)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        si.save(str(path))
    cube = _load_or_skip(path)
    np.testing.assert_array_equal(cube.to_numpy(), data)
    assert cube.energy_axis.offset == pytest.approx(690.0) and cube.energy_axis.scale == pytest.approx(0.5)


@pytest.mark.parametrize("ext", [".hspy", ".rpl"])
def test_files_written_by_eelsvae_open_in_hyperspy(tmp_path, rng, ext):
    si, data = _si(rng)
    cube = eelsvae.Cube.from_hyperspy(si)
    path = tmp_path / ("si" + ext)
    try:
        cube.save(path)
    except EelsvaeError as exc:
        if exc.status == Status.UNSUPPORTED:
            pytest.skip("this libeelsvae does not write %s yet: %s" % (ext, exc.message))
        raise
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = hs.load(str(path))
    np.testing.assert_array_equal(np.asarray(back.data, np.float32), data)
    assert back.axes_manager.signal_axes[0].offset == pytest.approx(690.0)
