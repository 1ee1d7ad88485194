"""The VAE through the bindings: architecture, training with a progress callback,
cancelling (callback, exception, Ctrl-C), detection, encode/decode, files."""
import math
import os
import signal

import numpy as np
import pytest

import eelsvae
from eelsvae import Direction, EelsvaeError, Status

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


def test_outlier_mode_keyword_trims_after_the_warm_up():
    # 3 epochs: the warm-up is epoch 1; epochs 2 and 3 each start with the
    # outlier map, which the log reports (on by default). Off, no map is made.
    def outlier_epochs(**fields):
        lines = []
        eelsvae.set_log_callback(lambda level, message: lines.append(message))
        try:
            eelsvae.Model(tiny_arch(), seed=3).train(training_cube(), options=tiny_train_options(3), **fields)
        finally:
            eelsvae.set_log_callback(None)
        return [m.split(":")[1].strip() for m in lines if "left out as outliers" in m]
    assert outlier_epochs() == ["epoch 2", "epoch 3"]
    assert outlier_epochs(outlier_cut=3.0) == ["epoch 2", "epoch 3"]
    assert outlier_epochs(outlier_cut=0.0) == []
    with pytest.raises(EelsvaeError) as info:
        eelsvae.Model(tiny_arch(), seed=3).train(training_cube(), options=tiny_train_options(1), outlier_cut=-1.0)
    assert info.value.status == Status.INVALID_ARGUMENT and "outlier_cut" in info.value.message


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
    # each pixel of the stride-T/2 reconstruction is the mean of the tiles holding it,
    # weighted min(k + 1, T - k) along each axis at offset k in the tile (cube.h):
    # check one interior pixel against the four overlapping tiles decoded directly
    tiles = prepared.to_tiles(T, T // 2)
    ty, tx = eelsvae.tiling(*prepared.shape[:2], T, T // 2)
    holders, weights = [], []

    def w(k):
        return min(k + 1, T - k)

    y, x = 11, 13
    for i in range(ty):
        for j in range(tx):
            y0, x0 = min(i * (T // 2), prepared.ny - T), min(j * (T // 2), prepared.nx - T)
            if y0 <= y < y0 + T and x0 <= x < x0 + T:
                single = eelsvae.Cube.from_numpy(tiles[i * tx + j])
                single.energy_axis = prepared.energy_axis
                holders.append(model.reconstruct(single).to_numpy()[y - y0, x - x0])
                weights.append(w(y - y0) * w(x - x0))
    assert len(holders) == 4
    np.testing.assert_allclose(dense[y, x], np.average(holders, axis=0, weights=weights), rtol=0, atol=1e-5)
    with pytest.raises(EelsvaeError) as info:
        model.reconstruct(prepared, stride=T + 1)
    assert info.value.status == Status.INVALID_ARGUMENT


def test_detect_is_prepare_reconstruct_score_threshold(trained_model):
    model, cube, _ = trained_model
    scorer = eelsvae.Scorer("pcc", (700.0, 720.0))
    result = model.detect(cube, scorer)
    scores = scorer.score(result.prepared, model.reconstruct(result.prepared))
    np.testing.assert_array_equal(result.scores, scores)
    assert eelsvae.default_rule() == "fdr:0.01"                 # the library's default, as the programs'
    assert result.threshold == eelsvae.threshold(scores, "fdr:0.01", "below")
    np.testing.assert_array_equal(result.mask, eelsvae.threshold_mask(scores, result.threshold, "below"))
    assert model.detect(cube, scorer, threshold="otsu").threshold == eelsvae.otsu_threshold(scores)
    assert model.detect(cube, scorer, threshold=0.5).threshold == 0.5
    # the default scorer takes the whole energy range the model sees (695–726 eV)
    default = model.detect(cube)
    assert eelsvae.Scorer().window is None
    np.testing.assert_array_equal(default.scores, eelsvae.Scorer().score(result.prepared, default.reconstruction))
    with pytest.raises(EelsvaeError) as info:
        model.detect(cube, eelsvae.Scorer("pcc", (690.0, 730.0)))   # the paper's window sticks out of 695–726 eV
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


# ---- the options' new fields, and fitting an architecture to a spectrum image ----------

def test_new_option_fields_have_the_presets_values():
    for preset in ("paper", "fast"):
        arch = eelsvae.ModelOptions(preset=preset)
        assert arch.energy_bin == 1 and "energy_bin" in arch.field_names()
        train = eelsvae.TrainOptions(preset=preset)
        assert (train.min_tiles, train.min_steps, train.outlier_cut) == (64, 0, 3.0)
    assert eelsvae.PcaOptions().trim_fraction == 0.1
    train = eelsvae.TrainOptions(preset="fast", min_tiles=16, min_steps=5)
    assert (train.min_tiles, train.min_steps) == (16, 5) and train.struct.min_steps == 5
    arch = eelsvae.ModelOptions(preset="fast").replace(energy_bin=3)
    assert arch.energy_bin == 3 and arch.struct.energy_bin == 3 and arch != eelsvae.ModelOptions(preset="fast")


def _flat_cube(ny, nx, ne, e0=400.0, de=0.5):
    return eelsvae.Cube.from_numpy(np.ones((ny, nx, ne), np.float32), energy=(e0, de, "eV"))


def test_fit_a_line_scan_gives_the_smallest_tile():
    cube = _flat_cube(6, 49, 300)
    opt = eelsvae.ModelOptions(preset="fast")
    assert opt.fit(cube) is opt                                 # in place, returning the options
    assert opt.tile == 4                                        # the product of the spatial strides
    assert opt.energy_bin == 2 and opt.energy_channels == 144   # 300 channels into a budget of 160
    assert opt.energy_start == pytest.approx(400.0)
    model = eelsvae.Model(opt)
    assert model.options == opt and model.options.energy_bin == 2
    assert "bins of 2" in repr(model)
    with pytest.raises(EelsvaeError) as info:
        eelsvae.ModelOptions(preset="fast").fit(_flat_cube(3, 49, 300))   # smaller than a 4 × 4 tile
    assert info.value.status == Status.DIMENSION and "4 × 4" in info.value.message


def test_fit_bins_a_long_axis_into_the_presets_budget():
    cube = _flat_cube(32, 32, 1024, e0=300.0, de=0.5)
    fast = eelsvae.ModelOptions(preset="fast")
    opt = eelsvae.fit_model_options(cube, preset="fast")
    assert (opt.energy_bin, opt.energy_channels, opt.tile) == (7, 144, 24)
    assert opt.energy_channels * opt.energy_bin <= 1024 and opt.energy_channels <= fast.energy_channels
    assert opt.energy_start == pytest.approx(300.0)
    assert opt.layers == fast.layers and opt.latent == fast.latent      # the rest of the preset is kept
    # fit_model_options leaves the options it is given alone
    given = eelsvae.ModelOptions(preset="fast")
    assert eelsvae.fit_model_options(cube, options=given) == opt and given == fast
    # the paper's budget of 1312 channels holds the whole axis unbinned
    paper = eelsvae.fit_model_options(cube)
    assert paper.energy_bin == 1 and paper.energy_channels == 1024


def test_fit_to_a_window_or_an_edge():
    cube = _flat_cube(24, 24, 400, e0=400.0, de=0.5)           # 400 … 599.5 eV
    ti = eelsvae.edge("Ti-L")
    by_edge = eelsvae.fit_model_options(cube, "Ti-L", preset="fast")
    assert by_edge == eelsvae.fit_model_options(cube, ti, preset="fast")
    assert by_edge == eelsvae.fit_model_options(cube, ti.window, preset="fast")
    lo, hi = ti.window
    assert by_edge.energy_bin == 1
    assert by_edge.energy_start == pytest.approx(lo)
    # 93 channels in 446 … 492 eV, rounded up to a multiple of the energy strides (16)
    assert by_edge.energy_channels == 96 and by_edge.energy_channels * 0.5 >= hi - lo
    with pytest.raises(EelsvaeError) as info:
        eelsvae.fit_model_options(cube, "Fe-L", preset="fast")   # 698 … 751 eV is off the axis
    assert info.value.status == Status.RANGE
    with pytest.raises(EelsvaeError) as info:
        eelsvae.fit_model_options(eelsvae.Cube.from_numpy(np.ones((8, 8, 64), np.float32)), preset="fast")
    assert info.value.status == Status.RANGE and "uncalibrated" in info.value.message
    opt = eelsvae.ModelOptions(preset="fast")
    with pytest.raises(EelsvaeError):
        opt.fit(cube, (700.0, 800.0))
    assert opt == eelsvae.ModelOptions(preset="fast")           # unchanged on failure


def test_fitted_model_trains_and_detects_on_a_non_fe_si_with_defaults():
    # A Ti L2,3-like SI (the synthetic generator's L3/L2 lines moved to Ti's
    # 456/462 eV) far from the paper's Fe L window, 8 pixels wide: the fitted
    # architecture, default scorer and min_tiles make it work end to end.
    cube = eelsvae.synthesize(ny=8, nx=20, energy_start=430.0, energy_end=520.0, dispersion=0.5, o_edge=440.0,
                              fe_l3=456.0, fe_l2=462.0, dose=1000.0, seed=3)
    arch = eelsvae.fit_model_options(cube, "Ti-L", options=tiny_arch())
    # the Ti L window's 93 channels into the tiny model's budget of 32: bins of 3
    assert (arch.tile, arch.energy_bin, arch.energy_channels) == (8, 3, 32)
    assert arch.energy_start == pytest.approx(eelsvae.edge("Ti-L").window[0])
    model = eelsvae.Model(arch, seed=2)
    # 8 × 20 pixels at stride 8 are 3 tiles, one batch of 4: min_tiles takes a smaller
    # step (3 batches), min_steps raises the 1 epoch asked for to reach 9 steps
    sparse = eelsvae.Model(arch, seed=2).train(cube, options=tiny_train_options(1).replace(tile_stride=8,
                                                                                          min_tiles=0))
    assert [(p.epoch, p.batches) for p in sparse] == [(1, 1)]
    options = tiny_train_options(1).replace(tile_stride=8, min_tiles=12, min_steps=9)
    history = model.train(cube, options=options)
    assert [(p.epoch, p.epochs, p.batches) for p in history] == [(1, 3, 3), (2, 3, 3), (3, 3, 3)]
    assert np.isfinite(history[-1].loss)
    result = model.detect(cube)                                 # default scorer: the whole range the model takes
    assert result.scores.shape == (8, 20) and np.isfinite(result.scores).all()
    assert result.mask.shape == (8, 20) and result.direction == Direction.BELOW
    # the network's input: 32 channels of 3 summed, its axis at the bins' centres
    e = result.prepared.energy_axis
    assert result.prepared.ne == 32 and e.scale == pytest.approx(1.5)
    assert e.offset == pytest.approx(arch.energy_start + 0.5)
