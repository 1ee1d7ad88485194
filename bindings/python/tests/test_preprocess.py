"""Preprocessing through the bindings against NumPy/SciPy computing the same chain."""
import numpy as np
import pytest

import eelsvae
from eelsvae import EelsvaeError, Status

ndimage = pytest.importorskip("scipy.ndimage")


def _inward_box(a, k, axis):
    """Mean of the k samples nearest each one along axis, the window shifted
    inward at the ends (all of the axis when shorter): the library's mean."""
    n = a.shape[axis]
    w, r = min(k, n), (k - 1) // 2
    out = np.empty_like(a)
    for i in range(n):
        first = min(max(i - r, 0), n - w)
        idx = [slice(None)] * a.ndim
        idx[axis] = i
        window = [slice(None)] * a.ndim
        window[axis] = slice(first, first + w)
        out[tuple(idx)] = a[tuple(window)].mean(axis=axis)
    return out


def _inward_mean(a, k):
    return _inward_box(_inward_box(a, k, 0), k, 1)


def _cube(rng, shape=(9, 11, 40)):
    a = rng.gamma(3.0, 50.0, size=shape).astype(np.float32)
    return eelsvae.Cube.from_numpy(a), a


def test_gaussian_blur_matches_scipy(rng):
    cube, a = _cube(rng)
    cube.gaussian_blur(0.7, 1.3, 2.0)
    want = ndimage.gaussian_filter(a.astype(np.float64), sigma=(0.7, 1.3, 2.0), mode="reflect", truncate=4.0)
    np.testing.assert_allclose(cube.to_numpy(), want, rtol=2e-5, atol=1e-4)


def test_percentiles_match_numpy(rng):
    cube, a = _cube(rng)
    lo, hi = cube.percentiles(1.0, 99.0)
    want_lo, want_hi = np.percentile(a.astype(np.float64), [1.0, 99.0])
    assert lo == pytest.approx(want_lo, rel=1e-6)
    assert hi == pytest.approx(want_hi, rel=1e-6)


def test_scale_clips_to_unit_interval(rng):
    cube, a = _cube(rng)
    cube.scale(100.0, 200.0)
    want = np.clip((a.astype(np.float64) - 100.0) / 100.0, 0.0, 1.0)
    np.testing.assert_allclose(cube.to_numpy(), want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_mean_and_median_filters_match_numpy_and_scipy(rng, k):
    cube, a = _cube(rng, (8, 10, 6))
    twin = cube.copy()
    cube.mean_filter(k)
    np.testing.assert_allclose(cube.to_numpy(), _inward_mean(a.astype(np.float64), k), rtol=2e-6, atol=1e-4)
    twin.median_filter(k)
    np.testing.assert_array_equal(twin.to_numpy(), ndimage.median_filter(a, size=(k, k, 1), mode="reflect"))


def test_preprocess_chain_matches_numpy_and_returns_the_scaling(rng):
    cube, a = _cube(rng)
    lo, hi = cube.preprocess(preset="paper")
    blurred = ndimage.gaussian_filter(a.astype(np.float64), sigma=0.5, mode="reflect", truncate=4.0)
    want_lo, want_hi = np.percentile(blurred, [1.0, 99.0])
    assert lo == pytest.approx(want_lo, rel=1e-4)
    assert hi == pytest.approx(want_hi, rel=1e-4)
    scaled = np.clip((blurred - lo) / (hi - lo), 0.0, 1.0)
    want = _inward_mean(scaled, 3)
    np.testing.assert_allclose(cube.to_numpy(), want, rtol=0, atol=5e-5)


def test_fixed_scaling_reproduces_the_transform(rng):
    first, a = _cube(rng)
    lo, hi = first.preprocess()
    second = eelsvae.Cube.from_numpy(a)
    opt = eelsvae.PreprocessOptions(use_fixed_scaling=True, scale_lo=lo, scale_hi=hi)
    assert second.preprocess(opt) == (lo, hi)
    np.testing.assert_array_equal(second.to_numpy(), first.to_numpy())


def test_options_objects(rng):
    opt = eelsvae.PreprocessOptions(preset="fast", median_filter=3)
    assert opt.median_filter == 3 and opt.sigma == (0.5, 0.5, 0.5)
    opt.sigma = (0.0, 0.0, 1.0)
    assert opt.sigma == (0.0, 0.0, 1.0)
    other = opt.replace(mean_filter=5)
    assert other.mean_filter == 5 and opt.mean_filter == 1 and other != opt  # fast: no spatial mean
    with pytest.raises(ValueError):
        opt.sigma = (1.0, 2.0)
    with pytest.raises(AttributeError):
        opt.no_such_field = 1
    cube, a = _cube(rng, (5, 5, 8))
    before = cube.to_numpy(copy=True)
    with pytest.raises(EelsvaeError) as info:
        cube.preprocess(mean_filter=4)                 # even: invalid, and names the field
    assert info.value.status == Status.INVALID_ARGUMENT and "mean_filter" in info.value.message
    np.testing.assert_array_equal(cube.to_numpy(), before)   # unchanged on failure


def _noise_pcc_numpy(a, first, n, sigma):
    """The estimate of eelsvae_preprocess_options_choose_spatial, in NumPy."""
    x = a[:, :, first:first + n].astype(np.float64)
    d2 = x[:, :, 2:] - 2 * x[:, :, 1:-1] + x[:, :, :-2]
    noise = (d2 ** 2).sum(axis=2) / (6.0 * (n - 2))
    variance = x.var(axis=2)
    r = int(4 * sigma + 0.5)
    w = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma * sigma))
    gain = (np.sum((w / w.sum()) ** 2)) ** 3
    signal = np.clip(variance - noise, 0, None)
    return float(np.median(np.sqrt(signal / (signal + gain * noise))))


@pytest.mark.parametrize("amplitude, want, want_sigma", [(400.0, 1, 0.0), (60.0, 1, 0.5), (15.0, 3, 0.5)])
def test_choose_spatial_matches_numpy(rng, amplitude, want, want_sigma):
    # A smooth peak over Poisson noise: strong, neither the mean nor the
    # spatial blur is needed; middling, the blur is; weak, the mean is too.
    e = np.arange(60, dtype=np.float64)
    peak = amplitude * np.exp(-0.5 * ((e - 30) / 6.0) ** 2)
    a = rng.poisson(100.0 + peak, size=(10, 12, 60)).astype(np.float32)
    cube = eelsvae.Cube.from_numpy(a, energy=(500.0, 0.5, "eV"))
    opt = eelsvae.PreprocessOptions(preset="fast")
    pcc = opt.choose_spatial(cube, (505.0, 525.0))
    assert pcc == pytest.approx(_noise_pcc_numpy(a, 10, 41, 0.5), abs=1e-9)
    assert opt.mean_filter == want
    assert list(opt.sigma) == [want_sigma, want_sigma, 0.5]
    assert (pcc >= opt.SPATIAL_BLUR_BELOW_PCC) == (want_sigma == 0.0)
    with pytest.raises(EelsvaeError):
        opt.choose_spatial(cube, (505.0, 507.0))
