"""Scores, Otsu, masks, metrics and AUCs against NumPy (and scikit-image/-learn when installed)."""
import numpy as np
import pytest

import eelsvae
from eelsvae import Direction, EelsvaeError, ScoreKind, Status


def _pair(rng, ny=6, nx=7, ne=60, e0=680.0):
    a = rng.uniform(1.0, 2.0, (ny, nx, ne)).astype(np.float32)
    b = (a + rng.normal(0.0, 0.2, a.shape)).astype(np.float32)
    calib = (e0, 1.0, "eV")
    return eelsvae.Cube.from_numpy(a, energy=calib), eelsvae.Cube.from_numpy(b, energy=calib), a, b


def _window(e0, ne, lo, hi):
    energies = e0 + np.arange(ne)
    return (energies >= lo - 1e-9) & (energies <= hi + 1e-9)


def _pcc(a, b, w):
    return np.array([[np.corrcoef(a[y, x, w].astype(np.float64), b[y, x, w].astype(np.float64))[0, 1]
                      for x in range(a.shape[1])] for y in range(a.shape[0])])


def test_pcc_map_matches_numpy_corrcoef(rng):
    orig, rec, a, b = _pair(rng)
    scorer = eelsvae.Scorer()                                   # the default: PCC over the whole energy axis
    assert scorer.kind == ScoreKind.PCC and scorer.window is None
    assert np.isnan(scorer.options.window_lo) and np.isnan(scorer.options.window_hi)   # C's NaN … NaN
    assert repr(scorer) == "<Scorer pcc whole energy axis>"
    assert scorer.direction == Direction.BELOW
    scores, degenerate = scorer.score(orig, rec, return_degenerate=True)
    assert scores.shape == (6, 7) and scores.dtype == np.float32 and degenerate == 0
    np.testing.assert_allclose(scores, _pcc(a, b, slice(None)), rtol=0, atol=1e-5)
    # the paper's Fe L window, asked for explicitly, still scores over 690–730 eV only
    paper = eelsvae.Scorer("pcc", (690.0, 730.0))
    assert paper.window == (690.0, 730.0) and repr(paper) == "<Scorer pcc 690 … 730>"
    w = _window(680.0, 60, 690.0, 730.0)
    assert 0 < w.sum() < 60
    paper_scores = paper.score(orig, rec)
    np.testing.assert_allclose(paper_scores, _pcc(a, b, w), rtol=0, atol=1e-5)
    assert not np.allclose(paper_scores, scores, atol=1e-3)
    # NaN … NaN given explicitly is the whole axis too
    nan = eelsvae.Scorer("pcc", (float("nan"), float("nan")))
    assert nan.window is None
    np.testing.assert_array_equal(nan.score(orig, rec), scores)


def test_default_scorer_scores_any_edge_and_an_uncalibrated_axis(rng):
    # A Ti L SI (440–520 eV, far from Fe L): the default window is its whole axis.
    orig, rec, a, b = _pair(rng, ne=80, e0=440.0)
    np.testing.assert_allclose(eelsvae.Scorer().score(orig, rec), _pcc(a, b, slice(None)), rtol=0, atol=1e-5)
    with pytest.raises(EelsvaeError) as info:
        eelsvae.Scorer("pcc", (690.0, 730.0)).score(orig, rec)  # the old default misses this axis
    assert info.value.status == Status.RANGE
    # channel numbers only: the whole axis needs no calibration, an eV window does
    raw_a, raw_b = eelsvae.Cube.from_numpy(a), eelsvae.Cube.from_numpy(b)
    np.testing.assert_allclose(eelsvae.Scorer("mse").score(raw_a, raw_b),
                               ((a.astype(np.float64) - b) ** 2).mean(axis=2), rtol=1e-5)
    with pytest.raises(EelsvaeError) as info:
        eelsvae.Scorer("pcc", (10.0, 20.0)).score(raw_a, raw_b)
    assert info.value.status == Status.RANGE and "uncalibrated" in info.value.message


def test_edge_lookup_and_window():
    ti = eelsvae.edge("Ti-L")
    assert isinstance(ti, eelsvae.Edge)
    assert (ti.element, ti.shell, ti.name) == ("Ti", "L2,3", "Ti-L2,3")
    assert ti.onset == pytest.approx(456.0, abs=1.0) and ti.last_onset > ti.onset
    assert ti.window == (ti.onset - 10.0, ti.last_onset + 30.0)
    # the accepted spellings all name the same edge
    for name in ("Ti-L2,3", "ti-l", "TI L", "Ti_L23", "Ti-L3", "Ti-L2"):
        assert eelsvae.edge(name) == ti, name
    fe = eelsvae.edge("Fe-L")
    assert fe.onset == pytest.approx(708.0, abs=1.0) and fe.last_onset == pytest.approx(721.0, abs=1.0)
    assert fe.window == (fe.onset - 10.0, fe.last_onset + 30.0)
    o = eelsvae.edge("O-K")
    assert o.shell == "K" and o.onset == o.last_onset == pytest.approx(532.0, abs=1.0)
    assert eelsvae.edge("La-M").shell == "M4,5"
    assert eelsvae.edge(ti) is ti
    with pytest.raises(EelsvaeError) as info:
        eelsvae.edge("Ti-K")
    assert info.value.status == Status.INVALID_ARGUMENT and "Ti-L2,3" in info.value.message
    with pytest.raises(EelsvaeError) as info:
        eelsvae.edge("Xx-K")
    assert info.value.status == Status.INVALID_ARGUMENT
    with pytest.raises(TypeError):
        eelsvae.edge(456.0)
    with pytest.raises(ValueError):
        eelsvae.edge("Ti\0L")


def test_edges_lists_the_table_in_order_of_onset():
    table = eelsvae.edges()
    assert len(table) > 100
    assert all(isinstance(e, eelsvae.Edge) for e in table)
    onsets = [e.onset for e in table]
    assert onsets == sorted(onsets)
    assert all(20.0 <= e.onset <= e.last_onset <= 3000.0 for e in table)
    assert all(e.window == (e.onset - 10.0, e.last_onset + 30.0) for e in table)
    assert {e.shell for e in table} <= {"K", "L1", "L2,3", "M2,3", "M4,5"}
    names = [e.name for e in table]
    assert len(set(names)) == len(names)
    assert eelsvae.edge("Ti-L") in table and eelsvae.edge("O-K") in table
    # every entry is found again by its own name
    assert all(eelsvae.edge(e.name) == e for e in table)


def test_scorer_takes_an_edge_as_its_window(rng):
    orig, rec, a, b = _pair(rng, ne=80, e0=690.0)
    fe = eelsvae.edge("Fe-L")
    by_name = eelsvae.Scorer("pcc", "Fe-L")
    assert by_name.window == fe.window and eelsvae.Scorer("pcc", fe).window == fe.window
    w = _window(690.0, 80, *fe.window)
    np.testing.assert_allclose(by_name.score(orig, rec), _pcc(a, b, w), rtol=0, atol=1e-5)
    with pytest.raises(TypeError):
        eelsvae.Scorer("pcc", 700.0)


def test_mse_and_spectral_angle_match_numpy(rng):
    orig, rec, a, b = _pair(rng)
    w = _window(680.0, 60, 700.0, 720.0)
    A, B = a[..., w].astype(np.float64), b[..., w].astype(np.float64)
    mse = eelsvae.Scorer("mse", (700.0, 720.0))
    assert mse.direction == Direction.ABOVE
    np.testing.assert_allclose(mse.score(orig, rec), ((A - B) ** 2).mean(axis=2), rtol=1e-5, atol=1e-7)
    angle = eelsvae.Scorer(ScoreKind.SPECTRAL_ANGLE, (700.0, 720.0))
    cos = (A * B).sum(axis=2) / np.sqrt((A * A).sum(axis=2) * (B * B).sum(axis=2))
    np.testing.assert_allclose(angle.score(orig, rec), np.arccos(np.clip(cos, -1, 1)), rtol=0, atol=2e-4)


def test_score_shape_mismatch_is_dimension(rng):
    orig, _, _, _ = _pair(rng)
    small = orig.crop(0, 0, 2, 2)
    with pytest.raises(EelsvaeError) as info:
        eelsvae.Scorer().score(orig, small)
    assert info.value.status == Status.DIMENSION and info.value.message


def _numpy_otsu(values, nbins=256):
    """scikit-image's threshold_otsu, in NumPy: float32 edges and centres as np.histogram makes them."""
    values = np.asarray(values, np.float32).ravel()
    hist, edges = np.histogram(values, bins=nbins, range=(values.min(), values.max()))
    centres = (edges[:-1] + edges[1:]) / 2
    hist = hist.astype(np.float64)
    w1 = np.cumsum(hist)
    w2 = np.cumsum(hist[::-1])[::-1]
    m1 = np.cumsum(hist * centres) / w1
    m2 = (np.cumsum((hist * centres)[::-1]) / w2[::-1])[::-1]
    between = w1[:-1] * w2[1:] * (m1[:-1] - m2[1:]) ** 2
    return centres[np.argmax(between)]


def test_otsu_matches_numpy_and_skimage(rng):
    scores = np.concatenate([rng.normal(0.9, 0.03, 900), rng.normal(0.5, 0.08, 100)]).astype(np.float32)
    t = eelsvae.otsu_threshold(scores.reshape(25, 40))
    assert np.float32(t) == _numpy_otsu(scores)
    assert 0.55 < t < 0.85
    try:
        from skimage.filters import threshold_otsu
    except ImportError:
        return
    assert np.float32(t) == np.float32(threshold_otsu(scores, nbins=256))
    assert np.float32(eelsvae.otsu_threshold(scores, bins=64)) == np.float32(threshold_otsu(scores, nbins=64))


def test_threshold_mask_both_directions(rng):
    scores = rng.random((5, 8)).astype(np.float32)
    scores[0, 0] = np.nan
    below = eelsvae.threshold_mask(scores, 0.3, "below")
    above = eelsvae.threshold_mask(scores, 0.3, Direction.ABOVE)
    assert below.dtype == np.bool_ and below.shape == (5, 8)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(below, scores <= np.float32(0.3))
        np.testing.assert_array_equal(above, scores > np.float32(0.3))
    assert not below[0, 0] and not above[0, 0]


def test_metrics_match_numpy_counts(rng):
    truth = rng.random((20, 20)) < 0.2
    pred = truth ^ (rng.random((20, 20)) < 0.1)
    m = eelsvae.metrics(pred, truth)
    tp = int(np.sum(pred & truth))
    fp = int(np.sum(pred & ~truth))
    fn = int(np.sum(~pred & truth))
    tn = int(np.sum(~pred & ~truth))
    assert (m.true_positive, m.false_positive, m.false_negative, m.true_negative) == (tp, fp, fn, tn)
    p, r = tp / (tp + fp), tp / (tp + fn)
    assert m.precision == pytest.approx(p, rel=1e-12)
    assert m.recall == pytest.approx(r, rel=1e-12)
    assert m.f1 == pytest.approx(2 * p * r / (p + r), rel=1e-12)
    assert m.iou == pytest.approx(tp / (tp + fp + fn), rel=1e-12)
    empty = eelsvae.metrics(np.zeros(9, np.uint8), np.zeros(9, np.uint8))
    assert (empty.precision, empty.recall, empty.f1, empty.iou) == (1.0, 1.0, 1.0, 1.0)


def test_roc_and_pr_auc_match_sklearn(rng):
    sk = pytest.importorskip("sklearn.metrics")
    truth = rng.random(500) < 0.15
    scores = (rng.normal(0.0, 1.0, 500) - 1.2 * truth).astype(np.float32)   # anomalies lean low
    scores[:40] = np.round(scores[:40], 1)                                  # some ties
    auc = eelsvae.roc_auc(scores, truth, "below")
    assert auc == pytest.approx(sk.roc_auc_score(truth, -scores.astype(np.float64)), abs=1e-12)
    assert eelsvae.roc_auc(scores, truth, "above") == pytest.approx(1.0 - auc, abs=1e-12)
    ap = eelsvae.pr_auc(scores, truth, "below")
    assert ap == pytest.approx(sk.average_precision_score(truth, -scores.astype(np.float64)), abs=1e-9)
    with pytest.raises(EelsvaeError) as info:
        eelsvae.roc_auc(scores, np.zeros(500, bool), "below")
    assert info.value.status == Status.INVALID_ARGUMENT


def test_score_histogram_matches_numpy(rng):
    scores = rng.uniform(-0.2, 1.2, 400).astype(np.float32)
    truth = rng.random(400) < 0.3
    normal, anomalous = eelsvae.score_histogram(scores, truth, 0.0, 1.0, 10)
    idx = np.clip(np.floor((scores.astype(np.float64) - 0.0) / 1.0 * 10), 0, 9).astype(int)
    np.testing.assert_array_equal(normal, np.bincount(idx[~truth], minlength=10))
    np.testing.assert_array_equal(anomalous, np.bincount(idx[truth], minlength=10))
    assert normal.dtype == np.uint64 and normal.sum() + anomalous.sum() == 400


def test_detect_with_pca_finds_injected_anomalies():
    cube = eelsvae.synthesize(ny=32, nx=32, energy_start=686.0, energy_end=740.0, dispersion=0.5,
                              o_edge=690.0, dose=3000.0, seed=4)
    truth, _ = eelsvae.disk_mask(32, 32, 4, 3.0, min_separation=9.0, seed=2)
    cube.inject_shift(truth, 700.0, 730.0, 2.0)
    pca = eelsvae.PCA.fit(cube, 1)      # more components start to model the shifted disks too
    scorer = eelsvae.Scorer("pcc", (700.0, 725.0))
    result = eelsvae.detect(cube, pca.reconstruct(cube), scorer, threshold="otsu")
    # the result is exactly the composition of its parts
    scores = scorer.score(cube, result.reconstruction)
    np.testing.assert_array_equal(result.scores, scores)
    assert result.threshold == eelsvae.otsu_threshold(scores)
    np.testing.assert_array_equal(result.mask, eelsvae.threshold_mask(scores, result.threshold, "below"))
    assert result.direction == Direction.BELOW
    # and a 2 eV shift of the Fe L edge in 4 disks is found by the rank-1 PCA baseline
    assert result.roc_auc(truth) > 0.95
    m = result.metrics(truth)
    assert m.recall > 0.8 and m.precision > 0.8


def test_threshold_rules_as_the_programs_spell_them():
    scores = np.arange(100, dtype=np.float32)[::-1].copy()
    assert eelsvae.threshold(scores, "value:9.5") == 9.5
    t = eelsvae.threshold(scores, "contamination:0.05")        # the 5 lowest: 0 … 4
    assert eelsvae.threshold_mask(scores, t, "below").sum() == 5
    t = eelsvae.threshold(scores, "contamination:0.05", direction="above")
    assert set(np.flatnonzero(eelsvae.threshold_mask(scores, t, "above"))) == set(range(5))  # 99 … 95
    assert eelsvae.threshold(scores, "otsu") == eelsvae.otsu_threshold(scores)
    with pytest.raises(eelsvae.EelsvaeError) as info:
        eelsvae.threshold(scores, "fdr:1.5")
    assert "0 < Q < 1" in info.value.message


def test_fdr_flags_nothing_in_a_normal_bulk_and_finds_outliers(rng):
    from scipy.stats import norm
    # 1 − PCC log-normal about 0.02: the reference's own law
    bulk = (1.0 - 0.02 * np.exp(0.25 * norm.ppf((np.arange(2000) + 0.5) / 2000))).astype(np.float32)
    rng.shuffle(bulk)
    assert eelsvae.threshold(bulk, "fdr:0.01") == -np.inf
    assert eelsvae.threshold_mask(bulk, eelsvae.threshold(bulk, "otsu"), "below").sum() > 200
    scores = bulk.copy()
    scores[:15] = np.linspace(0.85, 0.9, 15)
    p = eelsvae.p_values(scores)
    t = np.log(1.0 - scores.astype(np.float64))                 # the library fits log(1 − PCC) in double
    med = np.median(t)
    mad = 1.4826 * np.median(np.abs(t - med))
    np.testing.assert_allclose(p, norm.sf((t - med) / mad), rtol=1e-9, atol=1e-300)
    # Benjamini–Hochberg by hand
    order = np.sort(p)
    passed = np.flatnonzero(order <= np.arange(1, p.size + 1) * 0.01 / p.size)
    k = passed[-1] + 1 if passed.size else 0
    t = eelsvae.threshold(scores, "fdr:0.01")
    assert eelsvae.threshold_mask(scores, t, "below").sum() == k == 15


def test_chi2_against_its_noise_model(rng):
    """The chi-square: high = anomalous, about 1 where the noise is what the fitted
    model says (variance 0.01 + 0.02·x̂ here), and per pixel mean(r² / (a + b·x̂))."""
    ny, nx, ne = 40, 40, 50
    xhat = (rng.uniform(1.0, 10.0, (ny, nx, 1)) * np.linspace(0.5, 1.5, ne)).astype(np.float32)
    x = (xhat + rng.normal(0.0, 1.0, xhat.shape) * np.sqrt(0.01 + 0.02 * xhat)).astype(np.float32)
    calib = (600.0, 1.0, "eV")
    orig, rec = eelsvae.Cube.from_numpy(x, energy=calib), eelsvae.Cube.from_numpy(xhat, energy=calib)
    scorer = eelsvae.Scorer("chi2")
    assert scorer.kind == ScoreKind.CHI2 and eelsvae.Scorer("chi_square").kind == ScoreKind.CHI2
    assert scorer.direction == Direction.ABOVE and repr(scorer) == "<Scorer chi2 whole energy axis>"
    a, b = scorer.noise_model(orig, rec)
    assert abs(a - 0.01) < 0.01 and abs(b - 0.02) < 0.002, (a, b)
    scores = scorer.score(orig, rec)
    r = x.astype(np.float64) - xhat
    np.testing.assert_allclose(scores, (r * r / (a + b * xhat.astype(np.float64))).mean(axis=2), rtol=1e-5)
    assert abs(float(scores.mean()) - 1.0) < 0.05
    with pytest.raises(EelsvaeError) as info:
        scorer.noise_model(rec, rec)                        # a perfect reconstruction shows no noise
    assert info.value.status == Status.NUMERIC and "no noise" in info.value.message


def test_explain_matches_numpy_means(rng):
    orig, rec, a, b = _pair(rng)                                # 6 × 7 pixels, 680 … 739 eV
    mask = np.zeros((6, 7), bool)
    mask[1:3, 2:5] = True
    e = eelsvae.explain(orig, rec, mask, (690.0, 730.0))
    w = _window(680.0, 60, 690.0, 730.0)
    np.testing.assert_allclose(e.energy, 680.0 + np.flatnonzero(w), rtol=0, atol=1e-9)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    np.testing.assert_allclose(e.flagged_mean, a64[mask][:, w].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(e.flagged_reconstruction_mean, b64[mask][:, w].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(e.bulk_mean, a64[~mask][:, w].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(e.mean_residual, (a64 - b64)[mask][:, w].mean(axis=0), rtol=0, atol=1e-12)
    # the default window is the whole axis, and a mask of 0/1 numbers is a mask too
    whole = eelsvae.explain(orig, rec, mask.astype(np.uint8))
    assert whole.energy.shape == (60,)
    np.testing.assert_allclose(whole.bulk_mean, a64[~mask].mean(axis=0), rtol=1e-12)
    # every pixel flagged: there is no bulk
    assert np.isnan(eelsvae.explain(orig, rec, np.ones((6, 7)), (690.0, 730.0)).bulk_mean).all()


def test_explain_refuses_what_it_cannot_explain(rng):
    orig, rec, _, _ = _pair(rng)
    with pytest.raises(EelsvaeError) as info:
        eelsvae.explain(orig, rec, np.zeros((6, 7), bool))
    assert info.value.status == Status.INVALID_ARGUMENT and "no pixel is flagged" in info.value.message
    with pytest.raises(EelsvaeError) as info:
        eelsvae.explain(orig, rec, np.ones(41, bool))
    assert info.value.status == Status.DIMENSION
    with pytest.raises(EelsvaeError) as info:
        eelsvae.explain(orig, rec, np.ones((6, 7), bool), "Ti-L")      # 446 … 492 eV: not on this axis
    assert info.value.status == Status.RANGE
