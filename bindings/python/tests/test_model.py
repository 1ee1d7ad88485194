"""The VAE through the bindings: architecture, training with a progress callback,
cancelling (callback, exception, Ctrl-C), detection, encode/decode, files."""
import math
import os
import signal

import numpy as np
import pytest

import eelsvae
from eelsvae import EelsvaeError, Status

from conftest import tiny_arch, tiny_train_options, training_cube


def _conv_out(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def _parameters_by_hand(opt):
    """Parameter count of the architecture model.h describes, computed from its options."""
    total, channels = 0, 1
    size = [opt.tile, opt.tile, opt.energy_channels]
    for layer in opt.layers:
        k = math.prod(layer.kernel)
        total += channels * layer.channels * k + layer.channels           # conv
        total += layer.channels * channels * k + channels                 # its transposed mirror
        size = [_conv_out(n, kk, ss, pp) for n, kk, ss, pp in zip(size, layer.kernel, layer.stride, layer.padding)]
        channels = layer.channels
    flat = channels * math.prod(size)
    h, L = opt.hidden, opt.latent
    total += flat * h + h            # Dense(flat → hidden)
    total += h * 2 * L + 2 * L       # Dense(hidden → μ, log σ²)
    total += L * h + h               # Dense(latent → hidden)
    total += h * flat + flat         # Dense(hidden → flat)
    return total


def test_architecture_options_and_parameter_count():
    arch = tiny_arch()
    assert len(arch.layers) == 3 and arch.layers[1].stride == (2, 2, 2)
    model = eelsvae.Model(arch, seed=1)
    back = model.options
    assert back == arch
    assert model.parameter_count == _parameters_by_hand(arch)
    est = eelsvae.estimate_memory(arch, batch=4)
    assert est.parameters == model.parameter_count
    assert est.parameter_bytes == 4 * est.parameters
    assert est.total_bytes == (est.parameter_bytes + est.gradient_bytes + est.optimizer_bytes
                               + est.activation_bytes + est.workspace_bytes)
    paper = eelsvae.ModelOptions(preset="paper")
    assert (paper.tile, paper.energy_channels, paper.latent, len(paper.layers)) == (24, 1312, 40, 4)
    assert eelsvae.estimate_memory(paper, batch=4).parameters == _parameters_by_hand(paper)


def test_invalid_architecture_is_reported():
    bad = tiny_arch().replace(tile=6)                 # not divisible by the total stride 4
    with pytest.raises(EelsvaeError) as info:
        eelsvae.Model(bad)
    assert info.value.status == Status.DIMENSION and info.value.message
    with pytest.raises(EelsvaeError) as info:
        eelsvae.Model(tiny_arch(), latent=0)
    assert info.value.status == Status.INVALID_ARGUMENT and "latent" in info.value.message


def test_training_calls_progress_after_every_batch(trained_model):
    model, cube, history = trained_model
    assert [p.epoch for p in history] == [1, 2]
    assert all(p.epoch_done and p.batch == p.batches and p.epochs == 2 for p in history)
    assert all(np.isfinite(p.loss) and np.isfinite(p.validation_loss) for p in history)
    # a second model, same data, with a callback recording every call
    calls = []
    fresh = eelsvae.Model(tiny_arch(), seed=3)
    fresh.train(cube, options=tiny_train_options(1), progress=calls.append)
    batches = calls[0].batches
    assert batches >= 1 and len(calls) == batches
    assert [c.batch for c in calls] == list(range(1, batches + 1))
    assert [c.epoch_done for c in calls] == [False] * (batches - 1) + [True]
    assert all(c.loss == pytest.approx(c.reconstruction + 1.2 * c.kl, rel=1e-9) for c in calls)
    # same seed, data and options as epoch 1 of the fixture: the same losses, bit for bit
    assert calls[-1].loss == history[0].loss


def test_callback_returning_true_cancels():
    cube = training_cube()
    model = eelsvae.Model(tiny_arch(), seed=3)
    calls = []

    def stop(p):
        calls.append(p)
        return True

    with pytest.raises(EelsvaeError) as info:
        model.train(cube, options=tiny_train_options(2), progress=stop)
    assert info.value.status == Status.CANCELLED and "cancel" in info.value.message
    assert len(calls) == 1


def test_keyboard_interrupt_in_callback_cancels_and_is_reraised():
    cube = training_cube()
    model = eelsvae.Model(tiny_arch(), seed=3)
    calls = []

    def interrupt(p):
        calls.append(p)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        model.train(cube, options=tiny_train_options(3), progress=interrupt)
    assert len(calls) == 1                                   # cancelled at the first batch
    cause = info.value.__cause__
    assert isinstance(cause, EelsvaeError) and cause.status == Status.CANCELLED
    # the model is intact and trains on afterwards
    assert model.train(cube, options=tiny_train_options(1))[-1].epoch >= 1


def test_other_exceptions_in_callback_propagate():
    model = eelsvae.Model(tiny_arch(), seed=3)
    with pytest.raises(ZeroDivisionError):
        model.train(training_cube(), options=tiny_train_options(1), progress=lambda p: 1 / 0)


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")
def test_ctrl_c_cancels_cleanly():
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT has a custom handler in this process")
    cube = training_cube()
    model = eelsvae.Model(tiny_arch(), seed=3)
    calls = []

    def press_ctrl_c(p):
        calls.append(p)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)            # what the terminal sends on Ctrl-C

    with pytest.raises(KeyboardInterrupt):
        model.train(cube, options=tiny_train_options(3), progress=press_ctrl_c)
    assert len(calls) == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # handler restored


def test_log_callback_receives_training_lines():
    lines = []
    eelsvae.set_log_callback(lambda level, message: lines.append((level, message)))
    try:
        eelsvae.Model(tiny_arch(), seed=3).train(training_cube(), options=tiny_train_options(1))
    finally:
        eelsvae.set_log_callback(None)
    assert any(level == eelsvae.LogLevel.INFO and "epoch 1/1" in message for level, message in lines), lines
    count = len(lines)
    eelsvae.Model(tiny_arch(), seed=3).train(training_cube(), options=tiny_train_options(1))
    assert len(lines) == count                                   # removed: nothing more arrives


def test_prepare_reconstruct_encode_decode_agree(trained_model):
    model, cube, _ = trained_model
    arch = model.options
    prepared = model.prepare(cube)
    assert prepared.shape == (24, 24, arch.energy_channels)
    assert prepared.energy_axis.offset >= arch.energy_start - 1e-9
    p = prepared.to_numpy()
    assert p.min() >= 0.0 and p.max() <= 1.0
    rec = model.reconstruct(prepared)
    r = rec.to_numpy()
    assert rec.shape == prepared.shape and r.min() >= 0.0 and r.max() <= 1.0
    mu, logvar = model.encode(prepared)
    ty, tx = eelsvae.tiling(24, 24, arch.tile)
    assert mu.shape == logvar.shape == (ty * tx, arch.latent)
    tiles = model.decode(mu)
    assert tiles.shape == (ty * tx, arch.tile, arch.tile, arch.energy_channels)
    # reconstruct is decode(μ) of every tile, reassembled (model.h)
    np.testing.assert_allclose(eelsvae.Cube.from_tiles(tiles, 24, 24).to_numpy(), r, rtol=0, atol=1e-5)
    with pytest.raises(ValueError):
        model.decode(np.zeros((2, arch.latent + 1), np.float32))


def test_overlapping_reconstruction(trained_model):
    model, cube, _ = trained_model
    T = model.options.tile
    prepared = model.prepare(cube)
    plain = model.reconstruct(prepared).to_numpy()
    np.testing.assert_array_equal(model.reconstruct(prepared, stride=T).to_numpy(), plain)   # stride T = 0
    dense = model.reconstruct(prepared, stride=T // 2).to_numpy()
    assert dense.shape == plain.shape and dense.min() >= 0.0 and dense.max() <= 1.0
    assert not np.array_equal(dense, plain)
    # each pixel of the stride-T/2 reconstruction is the mean of the tiles holding it:
    # check one interior pixel against the four overlapping tiles decoded directly
    tiles = prepared.to_tiles(T, T // 2)
    ty, tx = eelsvae.tiling(*prepared.shape[:2], T, T // 2)
    holders = []
    y, x = 11, 13
    for i in range(ty):
        for j in range(tx):
            y0, x0 = min(i * (T // 2), prepared.ny - T), min(j * (T // 2), prepared.nx - T)
            if y0 <= y < y0 + T and x0 <= x < x0 + T:
                single = eelsvae.Cube.from_numpy(tiles[i * tx + j])
                single.energy_axis = prepared.energy_axis
                holders.append(model.reconstruct(single).to_numpy()[y - y0, x - x0])
    assert len(holders) == 4
    np.testing.assert_allclose(dense[y, x], np.mean(holders, axis=0), rtol=0, atol=1e-5)
    with pytest.raises(EelsvaeError) as info:
        model.reconstruct(prepared, stride=T + 1)
    assert info.value.status == Status.INVALID_ARGUMENT


def test_detect_is_prepare_reconstruct_score_otsu(trained_model):
    model, cube, _ = trained_model
    scorer = eelsvae.Scorer("pcc", (700.0, 720.0))
    result = model.detect(cube, scorer)
    scores = scorer.score(result.prepared, model.reconstruct(result.prepared))
    np.testing.assert_array_equal(result.scores, scores)
    assert result.threshold == eelsvae.otsu_threshold(scores)
    np.testing.assert_array_equal(result.mask, eelsvae.threshold_mask(scores, result.threshold, "below"))
    with pytest.raises(EelsvaeError) as info:
        model.detect(cube)                     # the paper's 690–730 eV window is outside 695–726 eV
    assert info.value.status == Status.RANGE


def test_save_load_and_resume(trained_model, tmp_path):
    model, cube, _ = trained_model
    path = tmp_path / "tiny.evae"
    model.save(path)
    back = eelsvae.Model.load(path)
    assert back.options == model.options and back.parameter_count == model.parameter_count
    prepared = model.prepare(cube)
    np.testing.assert_array_equal(back.reconstruct(back.prepare(cube)).to_numpy(),
                                  model.reconstruct(prepared).to_numpy())
    ckpt = tmp_path / "tiny.ckpt"
    model.save(ckpt, training_state=True)
    resumed = eelsvae.Model.load(ckpt)
    history = resumed.train(cube, options=tiny_train_options(3))
    assert [p.epoch for p in history] == [3]                  # epochs 1–2 were in the checkpoint
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(EelsvaeError) as info:
        eelsvae.Model.load(path)
    assert info.value.status == Status.CHECKSUM


def test_training_errors():
    model = eelsvae.Model(tiny_arch(), seed=3)
    cube = training_cube()
    with pytest.raises(EelsvaeError) as info:
        model.train(cube, exclude=[np.ones((24, 24), bool)], options=tiny_train_options(1))
    assert info.value.status == Status.DIMENSION                # every tile excluded
    far = eelsvae.Cube.from_numpy(np.ones((24, 24, 80), np.float32), energy=(420.0, 1.0, "eV"))
    with pytest.raises(EelsvaeError) as info:
        model.train(far, options=tiny_train_options(1))
    assert info.value.status == Status.RANGE
    with pytest.raises(ValueError):
        model.train(cube, exclude=[None, None], options=tiny_train_options(1))
    with pytest.raises(EelsvaeError) as info:
        model.prepare(cube)                                      # never trained
    assert info.value.status == Status.INVALID_ARGUMENT
