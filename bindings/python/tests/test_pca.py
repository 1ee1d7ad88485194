"""PCA through the bindings against NumPy's SVD of the same data."""
import numpy as np
import pytest

import eelsvae
from eelsvae import EelsvaeError, Status


@pytest.fixture(scope="module")
def low_rank():
    """Rank-3 spectra with well separated singular values, plus a little noise: (cube, X (n, ne) float64)."""
    rng = np.random.default_rng(7)
    ny, nx, ne = 16, 14, 48
    basis = np.linalg.qr(rng.standard_normal((ne, 3)))[0].T                  # 3 orthonormal rows
    weights = rng.standard_normal((ny * nx, 3)) * np.array([10.0, 5.0, 2.0])
    X = 3.0 + weights @ basis + 0.01 * rng.standard_normal((ny * nx, ne))
    cube = eelsvae.Cube.from_numpy(X.reshape(ny, nx, ne).astype(np.float32))
    return cube, cube.to_numpy().reshape(-1, ne).astype(np.float64)


def test_fit_matches_numpy_svd(low_rank):
    cube, X = low_rank
    pca = eelsvae.PCA.fit(cube, components=3, tolerance=1e-6, max_iterations=100, trim_fraction=0)  # NumPy's plain fit
    assert pca.shape == (3, 48) and pca.n_components == 3 and pca.n_channels == 48
    C = pca.components.astype(np.float64)
    np.testing.assert_allclose(C @ C.T, np.eye(3), atol=1e-4)
    mean = X.mean(axis=0)
    _, s, vt = np.linalg.svd(X - mean, full_matrices=False)
    # component i is ± the i-th right singular vector
    np.testing.assert_allclose(np.abs(np.sum(C * vt[:3], axis=1)), 1.0, atol=1e-4)
    np.testing.assert_allclose(pca.explained_variance_ratio, s[:3] ** 2 / np.sum(s ** 2), rtol=1e-3)
    assert np.all(np.diff(pca.explained_variance_ratio) <= 0)


def test_project_and_reconstruct_match_numpy(low_rank):
    cube, X = low_rank
    pca = eelsvae.PCA.fit(cube, 3, trim_fraction=0)  # the plain fit: its mean is X's
    C = pca.components.astype(np.float64)
    mean = X.mean(axis=0)
    scores = pca.project(cube)
    assert scores.shape == (16, 14, 3) and scores.dtype == np.float32
    np.testing.assert_allclose(scores.reshape(-1, 3), (X - mean) @ C.T, rtol=1e-4, atol=2e-3)
    rec = pca.reconstruct(cube)
    assert isinstance(rec, eelsvae.Cube) and rec.shape == cube.shape
    np.testing.assert_allclose(rec.to_numpy().reshape(-1, 48), mean + ((X - mean) @ C.T) @ C, rtol=0, atol=2e-3)
    # rank 3 plus 0.01 noise: the reconstruction is within the noise of the data
    assert np.abs(rec.to_numpy().reshape(-1, 48) - X).max() < 0.1


def test_components_view_keeps_the_basis_alive(low_rank):
    cube, _ = low_rank
    pca = eelsvae.PCA.fit(cube, 2)
    comps = pca.components
    want = comps.copy()
    assert not comps.flags.writeable
    with pytest.raises(BufferError):
        pca.close()
    del pca
    np.testing.assert_array_equal(comps, want)


def test_save_load_round_trip_and_corruption(low_rank, tmp_path):
    cube, _ = low_rank
    pca = eelsvae.PCA.fit(cube, 3)
    path = tmp_path / "basis.pca"
    pca.save(path)
    back = eelsvae.PCA.load(path)
    np.testing.assert_array_equal(back.components, pca.components)
    np.testing.assert_array_equal(back.explained_variance_ratio, pca.explained_variance_ratio)
    np.testing.assert_array_equal(back.project(cube), pca.project(cube))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(EelsvaeError) as info:
        eelsvae.PCA.load(path)
    assert info.value.status == Status.CHECKSUM and info.value.message


def test_bad_component_count(low_rank):
    cube, _ = low_rank
    with pytest.raises(EelsvaeError) as info:
        eelsvae.PCA.fit(cube, components=0)
    assert info.value.status == Status.INVALID_ARGUMENT


def _ti_si_with_anomalies():
    """A Ti L2,3-like SI (the synthetic lines moved to 456/462 eV, 430 … 520 eV: no Fe L
    window) whose Ti L edge is shifted by 2 eV in 3 small disks (about 3 % of the pixels)."""
    cube = eelsvae.synthesize(ny=32, nx=32, energy_start=430.0, energy_end=520.0, dispersion=0.5, o_edge=440.0,
                              fe_l3=456.0, fe_l2=462.0, dose=3000.0, seed=4)
    truth, _ = eelsvae.disk_mask(32, 32, 3, 2.0, min_separation=9.0, seed=2)
    cube.inject_shift(truth, *eelsvae.edge("Ti-L").window, 2.0)
    return cube, truth


def test_trim_fraction_keeps_anomalies_out_of_the_basis():
    cube, truth = _ti_si_with_anomalies()
    assert 0.0 < truth.mean() < 0.05
    data = cube.to_numpy().astype(np.float64)

    def error_ratio(pca):
        err = ((pca.reconstruct(cube).to_numpy() - data) ** 2).mean(axis=2)
        return err[truth].mean() / err[~truth].mean()

    plain = eelsvae.PCA.fit(cube, trim_fraction=0)                # 4 components fitted on every spectrum
    robust = eelsvae.PCA.fit(cube, trim_fraction=0.05)
    assert robust.shape == plain.shape == (4, cube.ne)
    C = robust.components.astype(np.float64)
    np.testing.assert_allclose(C @ C.T, np.eye(4), atol=1e-4)
    # untrimmed, the shifted spectra claim a component and are reconstructed about as
    # well as the rest; trimmed, they stay far worse reconstructed than the bulk
    assert error_ratio(plain) < 3.0
    assert error_ratio(robust) > 50.0
    # and the default scorer (PCC over the whole axis) then finds them
    result = eelsvae.detect(cube, robust.reconstruct(cube))
    assert result.roc_auc(truth) > 0.99 and result.metrics(truth).f1 > 0.9
    for bad in (-0.1, 0.5):
        with pytest.raises(EelsvaeError) as info:
            eelsvae.PCA.fit(cube, trim_fraction=bad)
        assert info.value.status == Status.INVALID_ARGUMENT and "trim_fraction" in info.value.message


def test_pca_path_with_defaults_on_a_non_fe_si():
    cube, truth = _ti_si_with_anomalies()
    pca = eelsvae.PCA.fit(cube, 1)
    result = eelsvae.detect(cube, pca.reconstruct(cube))          # default scorer: no Fe L window needed
    assert result.scores.shape == (32, 32) and np.isfinite(result.scores).all()
    assert result.roc_auc(truth) > 0.95
    # the same on the raw channels, energy axis uncalibrated: PCA and the default score read no eV
    raw = eelsvae.Cube.from_numpy(cube.to_numpy())
    raw_result = eelsvae.detect(raw, eelsvae.PCA.fit(raw, 1).reconstruct(raw))
    np.testing.assert_allclose(raw_result.scores, result.scores, rtol=0, atol=1e-5)
