"""Library failures arrive as EelsvaeError with the right status and the library's message."""
import pickle
import threading

import numpy as np
import pytest

import eelsvae
from eelsvae import EelsvaeError, Status


def _raises(status, fn, *args, **kwargs):
    with pytest.raises(EelsvaeError) as info:
        fn(*args, **kwargs)
    err = info.value
    assert err.status == status, str(err)
    assert isinstance(err.status, Status) and isinstance(err.status, int)
    assert err.message.strip(), "empty message for %s" % err.status_name
    assert err.status_name == "EELSVAE_ERR_" + status.name
    assert err.status_name in str(err) and err.message in str(err)
    return err


def test_zero_dimension_is_invalid_argument():
    err = _raises(Status.INVALID_ARGUMENT, eelsvae.Cube, 0, 3, 4)
    assert err.function == "eelsvae_cube_create"


def test_crop_outside_is_range():
    cube = eelsvae.Cube(2, 3, 4)
    err = _raises(Status.RANGE, cube.crop, 1, 1, 2, 2)
    assert "crop" in err.message


def test_missing_file_is_io(tmp_path):
    err = _raises(Status.IO, eelsvae.load, tmp_path / "no-such-file.npy")
    assert "no-such-file.npy" in err.message


def test_unrecognised_file_is_unsupported(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("these are not spectra\n" * 10)
    err = _raises(Status.UNSUPPORTED, eelsvae.load, path)
    assert "notes.txt" in err.message


def test_truncated_npy_is_format(tmp_path, rng):
    path = tmp_path / "cut.npy"
    np.save(path, rng.random((4, 4, 8)).astype(np.float32))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - 40])
    _raises(Status.FORMAT, eelsvae.load, path)


def test_bad_scorer_window_is_range(rng):
    cube = eelsvae.Cube.from_numpy(rng.random((2, 2, 10)).astype(np.float32), energy=(100.0, 1.0, "eV"))
    scorer = eelsvae.Scorer("pcc", (690.0, 730.0))
    _raises(Status.RANGE, scorer.score, cube, cube)


def test_nan_in_otsu_is_numeric():
    _raises(Status.NUMERIC, eelsvae.otsu_threshold, np.array([0.1, np.nan, 0.3], np.float32))


def test_pca_file_checks(tmp_path, rng):
    junk = tmp_path / "junk.pca"
    junk.write_bytes(b"not a basis" * 20)
    _raises(Status.FORMAT, eelsvae.PCA.load, junk)


def test_python_side_checks_raise_python_exceptions():
    with pytest.raises(ValueError):
        eelsvae.Cube.from_numpy(np.zeros((3, 4), np.float32))
    with pytest.raises(TypeError):
        eelsvae.Cube.from_numpy(np.zeros((2, 2, 2), np.complex64))
    with pytest.raises(TypeError):
        eelsvae.PreprocessOptions(no_such_field=1)
    with pytest.raises(ValueError):
        eelsvae.Scorer(kind="no-such-kind")
    with pytest.raises(ValueError):
        eelsvae.metrics(np.zeros(3, bool), np.zeros(4, bool))


def test_error_is_picklable_and_keeps_unknown_status():
    err = EelsvaeError(Status.CHECKSUM, "model.bin: CRC mismatch", "eelsvae_model_load")
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.status, copy.message, copy.function) == (Status.CHECKSUM, err.message, err.function)
    odd = EelsvaeError(77, "from the future")
    assert odd.status == 77 and odd.status_name == "EELSVAE_ERR_UNKNOWN"


def test_messages_are_per_thread():
    # eelsvae_last_error() is thread-local: each thread must see its own detail,
    # even while another thread fails differently at the same time.
    results = {}
    barrier = threading.Barrier(2)

    def fail(name, fn):
        barrier.wait()
        seen = []
        for _ in range(200):
            try:
                fn()
            except EelsvaeError as exc:
                seen.append((exc.status, exc.message))
        results[name] = seen

    cube = eelsvae.Cube(2, 3, 4)
    threads = [threading.Thread(target=fail, args=("range", lambda: cube.crop(5, 5, 1, 1))),
               threading.Thread(target=fail, args=("invalid", lambda: eelsvae.Cube(0, 1, 1)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results["range"]) == 200 and len(results["invalid"]) == 200
    assert {s for s, _ in results["range"]} == {Status.RANGE}
    assert {s for s, _ in results["invalid"]} == {Status.INVALID_ARGUMENT}
    assert len({m for _, m in results["range"]}) == 1
    assert len({m for _, m in results["invalid"]}) == 1
    assert results["range"][0][1] != results["invalid"][0][1]
