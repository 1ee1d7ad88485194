#!/usr/bin/python3
"""Train one variant of the benchmark's VAE and score it where it is closest
to PCA: ΔE 0.9 and 2.4 eV on eelsvae-bench's default SI (192 × 192, seed 1,
four disks of radius 8), against PCA 3 under the same preprocessing.

A variant is the fast preset with some fields changed, e.g.

    bench/vae_variants.py base
    bench/vae_variants.py batch4 --batch 4
    bench/vae_variants.py latent40 --latent 40
    bench/vae_variants.py gaussian --loss gaussian
    bench/vae_variants.py no-spatial-blur --spatial-sigma 0

For each it prints the training time, the reconstruction fidelity over
690–730 eV against the generator's noise-free cube (PSNR, and the rms of
the mean residual spectrum: the part of the error every pixel shares), and
per shift and method: F1 at Otsu's threshold, the misses (those on a disk's
outer one-pixel ring apart), the false alarms, the threshold, the mean PCC
of normal and anomalous pixels, and the gap between the highest anomalous
and the lowest normal PCC (positive: the classes separate completely).

Training takes 7–9 minutes on two cores (batch 4: about 18). Needs NumPy
and the Python bindings; set EELSVAE_LIBRARY to a build's
lib/libeelsvae.so. The trained model is saved as NAME.evae in --out.
"""
import argparse
import os
import sys
import time

import numpy as np

SIZE, SEED, DISKS, RADIUS = 192, 1, 4, 8.0
WINDOW = (690.0, 730.0)


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="name of the variant (the model is saved as NAME.evae)")
    p.add_argument("--out", default=".", help="directory for the model (default: here)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--beta", type=float, default=1.2, help="weight of the KL term")
    p.add_argument("--latent", type=int, default=16)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--loss", choices=("bernoulli", "gaussian", "poisson"), default="bernoulli")
    p.add_argument("--spatial-sigma", type=float, default=0.5,
                   help="Gaussian blur σ along y and x in the preprocessing of both methods (energy keeps 0.5)")
    p.add_argument("--recon-stride", type=int, default=12)
    return p.parse_args()


def bindings():
    """The eelsvae package of this checkout, or exit saying what is missing."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings", "python"))
    try:
        import eelsvae
        import eelsvae.score
    except ImportError as e:
        sys.exit(f"vae_variants.py: {e}\n(set EELSVAE_LIBRARY to a build's lib/libeelsvae.so)")
    return eelsvae


def describe(ev, tag, s, mask, ring):
    t = ev.score.otsu_threshold(s.ravel())
    flagged = s <= t
    missed = mask & ~flagged
    false_alarms = int((flagged & ~mask).sum())
    tp = int((flagged & mask).sum())
    f1 = 2 * tp / (2 * tp + false_alarms + int(missed.sum()))
    a, n = s[mask], s[~mask]
    return (f"{tag:5s} F1 {f1:.4f}  missed {int(missed.sum())} ({int((missed & ring).sum())} on the ring), "
            f"false alarms {false_alarms}, threshold {t:.3f}, mean PCC {n.mean():.3f} / {a.mean():.3f}, "
            f"gap {n.min() - a.max():+.3f}")


def main():
    a = parse()
    ev = bindings()
    pre = ev.PreprocessOptions(mean_filter=1, sigma=(a.spatial_sigma, a.spatial_sigma, 0.5))
    model = ev.Model(seed=SEED, preset="fast", beta=a.beta, latent=a.latent, hidden=a.hidden, loss=a.loss)
    raw, expected = ev.synthesize(ny=SIZE, nx=SIZE, seed=SEED, expected=True)
    t0 = time.time()
    history = model.train(raw, preset="fast", seed=SEED, epochs=a.epochs, batch=a.batch,
                          learning_rate=a.learning_rate, preprocess=pre)
    seconds = time.time() - t0
    model.save(os.path.join(a.out, a.name + ".evae"))
    last = history[-1]
    print(f"{a.name}: trained in {seconds:.0f} s, {len(history)} epochs, loss {last.loss:.1f}, "
          f"validation {last.validation_loss:.1f}, KL {last.kl:.1f}")

    prepared, truth = model.prepare(raw), model.prepare(expected)
    recon = model.reconstruct(prepared, stride=a.recon_stride)
    p, x, r = np.asarray(prepared), np.asarray(truth), np.asarray(recon)
    w = (prepared.energy >= WINDOW[0]) & (prepared.energy <= WINDOW[1])
    psnr = lambda u, v: 10 * np.log10(1.0 / np.mean((u[..., w] - v[..., w]) ** 2))  # noqa: E731
    bias = np.sqrt(np.mean(np.mean((r - x)[..., w], axis=(0, 1)) ** 2))
    print(f"  fidelity 690–730 eV: PSNR input {psnr(p, x):.2f} dB, VAE {psnr(r, x):.2f} dB; "
          f"mean residual spectrum rms {bias:.4f}")

    mask, centres = ev.disk_mask(SIZE, SIZE, DISKS, RADIUS, 2 * RADIUS + 4, SEED)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    nearest = np.min([np.hypot(yy - cy, xx - cx) for cy, cx in centres], axis=0)
    ring = mask & (nearest > RADIUS - 1)
    scorer = ev.Scorer("pcc", WINDOW)
    clean = raw.copy()
    lo, hi = clean.preprocess(pre)
    for shift in (0.9, 2.4):
        injected = raw.copy()
        injected.inject_shift(mask, WINDOW[0], WINDOW[1], shift)
        vae_in = model.prepare(injected)
        vae = np.asarray(scorer.score(vae_in, model.reconstruct(vae_in, stride=a.recon_stride))).reshape(SIZE, SIZE)
        pca_in = injected.copy()
        pca_in.preprocess(pre, use_fixed_scaling=True, scale_lo=lo, scale_hi=hi)
        pca = ev.PCA.fit(pca_in, 3)
        pca3 = np.asarray(scorer.score(pca_in, pca.reconstruct(pca_in))).reshape(SIZE, SIZE)
        print(f"  ΔE {shift} eV: {describe(ev, 'VAE', vae, mask, ring)}")
        print(f"  {'':9s} {describe(ev, 'PCA 3', pca3, mask, ring)}")


if __name__ == "__main__":
    main()
