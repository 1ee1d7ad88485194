"""Synthetic spectrum images, disk masks and anomaly injection."""
import math

import numpy as np
import pytest

import eelsvae
from eelsvae import EelsvaeError, Status


def test_synthesize_shape_axes_and_determinism():
    kw = dict(ny=12, nx=10, energy_start=690.0, energy_end=730.0, dispersion=0.5, o_edge=695.0, seed=5)
    counts, expected = eelsvae.synthesize(expected=True, **kw)
    ne = math.floor((730.0 - 690.0) / 0.5 + 1e-9) + 1
    assert counts.shape == expected.shape == (12, 10, ne)
    e = counts.energy_axis
    assert (e.offset, e.scale, e.units) == (690.0, 0.5, "eV")
    again = eelsvae.synthesize(**kw)
    assert again.to_numpy().tobytes() == counts.to_numpy().tobytes()          # same seed, same bits
    other = eelsvae.synthesize(**dict(kw, seed=6))
    assert other.to_numpy().tobytes() != counts.to_numpy().tobytes()
    # Poisson + read noise about the expectation: the mean residual is ~0 and
    # its variance ~ expected + read_noise² (σ = 3 by default).
    c = counts.to_numpy().astype(np.float64)
    x = expected.to_numpy().astype(np.float64)
    assert np.all(x > 0)
    z = (c - x) / np.sqrt(x + 9.0)
    assert abs(z.mean()) < 0.05
    assert z.var() == pytest.approx(1.0, abs=0.1)


def test_synthesize_options_object_and_bad_field():
    opt = eelsvae.SynthOptions(ny=4, nx=4, energy_start=700.0, energy_end=710.0, dispersion=1.0, o_edge=702.0)
    assert eelsvae.synthesize(opt).shape == (4, 4, 11)
    with pytest.raises(EelsvaeError) as info:
        eelsvae.synthesize(opt, dispersion=-1.0)
    assert info.value.status == Status.INVALID_ARGUMENT and "dispersion" in info.value.message


def test_disk_mask_is_the_union_of_its_disks():
    mask, centres = eelsvae.disk_mask(40, 50, 5, 3.0, min_separation=8.0, seed=9)
    assert mask.dtype == np.bool_ and mask.shape == (40, 50) and centres.shape == (5, 2)
    yy, xx = np.mgrid[0:40, 0:50]
    want = np.zeros((40, 50), bool)
    for cy, cx in centres:
        assert 3.0 <= cy <= 40 - 1 - 3.0 and 3.0 <= cx <= 50 - 1 - 3.0
        want |= (yy - cy) ** 2 + (xx - cx) ** 2 <= 9.0
    np.testing.assert_array_equal(mask, want)
    d = np.hypot(*(centres[:, None, :] - centres[None, :, :]).transpose(2, 0, 1))
    assert d[np.triu_indices(5, 1)].min() >= 8.0
    with pytest.raises(EelsvaeError) as info:
        eelsvae.disk_mask(10, 10, 50, 4.0, min_separation=8.0)
    assert info.value.status == Status.DIMENSION


def test_inject_shift_matches_numpy_interpolation(rng):
    ny, nx, ne = 6, 7, 80
    a = np.cumsum(rng.random((ny, nx, ne)), axis=2).astype(np.float32)     # smooth-ish spectra
    cube = eelsvae.Cube.from_numpy(a, energy=(690.0, 0.5, "eV"))
    mask = rng.random((ny, nx)) < 0.4
    cube.inject_shift(mask, 700.0, 715.0, 1.3)
    energies = 690.0 + 0.5 * np.arange(ne)
    inside = (energies >= 700.0 - 1e-9) & (energies <= 715.0 + 1e-9)
    want = a.astype(np.float64).copy()
    for y, x in zip(*np.nonzero(mask)):
        shifted = np.interp(energies - 1.3, energies, a[y, x].astype(np.float64))
        want[y, x, inside] = shifted[inside]
    out = cube.to_numpy()
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out[~mask], a[~mask])          # unmasked pixels untouched
    with pytest.raises(EelsvaeError) as info:
        cube.inject_shift(np.zeros((3, 3), bool), 700.0, 715.0, 1.0)
    assert info.value.status == Status.DIMENSION


def test_realistic_setting_is_the_library_one():
    # The realistic options come from the library (eelsvae_synth_options_init_realistic),
    # not a Python copy: a lower dose, no gradient but a thickness field; fields still override.
    default, real = eelsvae.SynthOptions(), eelsvae.SynthOptions.realistic(ny=8, nx=8)
    assert (real.ny, real.nx) == (8, 8)
    assert real.dose < default.dose and real.thickness_gradient == 0.0
    assert real.thickness_variation > default.thickness_variation == 0.05
    counts, expected = eelsvae.synthesize(real, expected=True)
    # At the realistic dose the Poisson noise is large: the counts scatter about
    # the expectation by more than 10 % per channel on average.
    c, e = counts.to_numpy(), expected.to_numpy()
    assert np.mean(np.abs(c - e) / e) > 0.1
    with pytest.raises(TypeError):
        eelsvae.SynthOptions.realistic(no_such_field=1)
