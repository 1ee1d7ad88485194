"""Shared fixtures of the eelsvae binding tests.

Run from the repository root:
    EELSVAE_LIBRARY=BUILD/lib/libeelsvae.so PYTHONPATH=bindings/python \
        /usr/bin/python3 -m pytest -q bindings/python/tests
(bindings/python/run_tests.sh BUILD does exactly that.)
"""
import os
import pathlib

import numpy as np
import pytest

import eelsvae
from eelsvae import ConvLayer

HERE = pathlib.Path(__file__).resolve().parent


def source_dir():
    """The libeelsvae source tree (for the headers and the version script), or None."""
    env = os.environ.get("EELSVAE_SOURCE_DIR")
    candidates = [pathlib.Path(env)] if env else []
    candidates.append(HERE.parents[2])          # bindings/python/tests -> repository root
    for path in candidates:
        if (path / "include" / "eelsvae" / "base.h").is_file():
            return path
    return None


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def calibrated_random_cube(rng, ny=5, nx=6, ne=60, e0=680.0, de=1.0):
    """A random positive cube with energy axis e0, e0+de, … (eV); returns (cube, array copy)."""
    a = rng.uniform(1.0, 2.0, size=(ny, nx, ne)).astype(np.float32)
    cube = eelsvae.Cube.from_numpy(a, energy=(e0, de, "eV"))
    return cube, a


# ---- a tiny VAE shared by the model tests (the architecture of tests/test_model.c) ----

TINY_LAYERS = [ConvLayer(2, (1, 1, 3), (1, 1, 2), (0, 0, 1)),
               ConvLayer(4, (3, 3, 3), (2, 2, 2), (1, 1, 1)),
               ConvLayer(4, (3, 3, 3), (2, 2, 2), (1, 1, 1))]


def tiny_arch():
    return eelsvae.ModelOptions(preset="fast", tile=8, energy_channels=32, energy_start=695.0, hidden=8, latent=4,
                                beta=1.2, loss="bernoulli", layers=TINY_LAYERS)


def tiny_train_options(epochs=2):
    return eelsvae.TrainOptions(preset="fast", epochs=epochs, batch=4, tile_stride=4, validation_fraction=0.1,
                                early_stop_patience=0, seed=7)


def training_cube(seed=11):
    """24 × 24 pixels, 686 … 737 eV at 1 eV: the tiny model's 32 channels from 695 eV fit."""
    return eelsvae.synthesize(ny=24, nx=24, energy_start=686.0, energy_end=737.0, dispersion=1.0, o_edge=690.0,
                              dose=1000.0, seed=seed)


@pytest.fixture(scope="session")
def trained_model():
    """A tiny model trained for 2 epochs on one synthetic cube (about 2 s), and that cube."""
    cube = training_cube()
    model = eelsvae.Model(tiny_arch(), seed=3)
    history = model.train(cube, options=tiny_train_options(2))
    return model, cube, history
