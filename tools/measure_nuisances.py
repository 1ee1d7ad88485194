#!/usr/bin/python3
"""Measure the nuisances of real EELS spectrum images, so that the synthetic
generator's realistic setting (eelsvae_synth_options_realistic) can take
magnitudes from data rather than guesses.

For each 3-D EELS SI (rows × columns × energy; rows are the slow scan) it
prints:
  - intensity/thickness variation: relative std of the per-pixel total
    counts, raw and after removing a least-squares planar trend a + b·y + c·x;
  - row-to-row gain: each row's mean total against the mean of its two
    neighbours (a smooth fit that follows a composition band, as the
    interface of the Nion SI, but not an independent gain per row); for
    independent gains of std σ that difference has std σ·√1.5, so σ is
    its std over √1.5; and the within-row variation (each pixel against
    its row's mean), which no row gain explains;
  - energy drift: the shift of each row's strongest edge onset, found by
    cross-correlating the derivative of the row's mean spectrum with that of
    the whole SI's mean over the edge (sub-channel, parabolic peak): peak to
    peak, the linear slope per row, and the jitter about that line;
  - the background power-law exponent r of A·E^−r, fitted per pixel
    between the first channel and 10 eV before the first edge;
  - the noise variance over the mean in the pre-edge background (after the
    per-pixel power law is removed, from the difference of neighbouring
    channels): 1 for counts in electrons, larger for scaled counts.

Usage: /usr/bin/python3 tools/measure_nuisances.py [FILE ...]
Without files: the real SI in tests/data/real and every 3-D EELS SI of
HyperSpy's test files (signal dimension 1, navigation dimension 2).
"""
import glob
import logging
import os
import sys
import warnings

import numpy as np

logging.disable(logging.CRITICAL)
warnings.filterwarnings("ignore")
import hyperspy.api as hs  # noqa: E402  (after silencing its import-time logging)

HERE = os.path.dirname(os.path.abspath(__file__))
REAL_SI = os.path.join(HERE, "..", "tests", "data", "real", "nion_LSMO-STO_SI-EELS.dm3")

# Onsets (eV) of edges that appear in the public SIs (eXSpy's edge
# database / the EELS Atlas); the strongest within the axis is tracked.
EDGES = {"C K": 284, "N K": 401, "Ti L3": 456, "O K": 532, "Cr L3": 575, "Mn L3": 640,
         "Fe L3": 708, "Co L3": 779, "La M5": 832, "Ni L3": 855, "Cu L3": 931}
MIN_ROWS = 4  # fewer rows than this: no row gain or drift (nothing to fit)


def hyperspy_corpus():
    """Paths of HyperSpy's test files that hold a 3-D EELS SI."""
    import hyperspy
    root = os.path.join(os.path.dirname(hyperspy.__file__), "tests")
    found = []
    for pattern in ("**/*.dm3", "**/*.dm4", "**/*.hspy"):
        for path in sorted(glob.glob(os.path.join(root, pattern), recursive=True)):
            if any(s is not None for s in eels_signals(path)):
                found.append(path)
    return found


def eels_signals(path):
    try:
        loaded = hs.load(path)
    except Exception:
        return []
    out = []
    for s in loaded if isinstance(loaded, list) else [loaded]:
        am = s.axes_manager
        if (am.signal_dimension == 1 and am.navigation_dimension == 2
                and s.metadata.get_item("Signal.signal_type", "") == "EELS"):
            out.append(s)
    return out


def energy_axis(s):
    ax = s.axes_manager.signal_axes[0]
    return ax.offset + ax.scale * np.arange(ax.size), ax.scale


def relative_std(v):
    return float(np.std(v) / np.mean(v))


def planar_residual(img):
    """img minus its least-squares plane a + b·y + c·x, relative to the mean."""
    ny, nx = img.shape
    y, x = np.mgrid[0:ny, 0:nx]
    design = np.column_stack([np.ones(img.size), y.ravel(), x.ravel()])
    coef, *_ = np.linalg.lstsq(design, img.ravel(), rcond=None)
    return (img.ravel() - design @ coef) / img.mean()


def row_gain(img):
    """Each inner row's mean over the mean of its two neighbours, minus 1,
    scaled by 1/√1.5 to estimate the std of independent row gains."""
    means = img.mean(axis=1)
    return (means[1:-1] / (0.5 * (means[:-2] + means[2:])) - 1) / np.sqrt(1.5)


def within_row(img):
    """Each pixel over its row's mean, minus 1."""
    return (img / img.mean(axis=1, keepdims=True)).ravel() - 1


MIN_JUMP = 1.02  # an edge whose mean jumps less than this is taken as absent


def edge_jumps(data, e):
    """{(name, onset): jump} of the listed edges on the axis: the SI mean
    spectrum 5–15 eV above the onset over 15–5 eV below."""
    mean = data.reshape(-1, data.shape[-1]).mean(axis=0)
    jumps = {}
    for name, onset in EDGES.items():
        if onset - 20 < e[0] or onset + 20 > e[-1]:
            continue
        below = mean[(e > onset - 15) & (e < onset - 5)].mean()
        above = mean[(e > onset + 5) & (e < onset + 15)].mean()
        if below > 0:
            jumps[(name, onset)] = above / below
    return jumps


def subsample_peak(c):
    k = int(np.argmax(c))
    if 0 < k < len(c) - 1:
        den = c[k - 1] - 2 * c[k] + c[k + 1]
        return k + (0.5 * (c[k - 1] - c[k + 1]) / den if den != 0 else 0.0)
    return float(k)


def row_drift(data, e, scale, onset):
    """Per-row energy shift (eV) of the edge at `onset` against the SI mean."""
    window = (e > onset - 25) & (e < onset + 25)
    ref = np.gradient(data.reshape(-1, data.shape[-1]).mean(axis=0)[window])
    ref = (ref - ref.mean()) / ref.std()
    max_lag = max(1, int(round(3.0 / scale)))  # ± 3 eV
    shifts = []
    for row in data:
        d = np.gradient(row.mean(axis=0)[window])
        d = (d - d.mean()) / (d.std() or 1)
        corr = np.array([np.sum(np.roll(d, -lag) * ref) for lag in range(-max_lag, max_lag + 1)])
        shifts.append((subsample_peak(corr) - max_lag) * scale)
    return np.array(shifts)


def background_exponent(data, e, first_edge):
    """r of A·E^−r per pixel over [e0, first_edge − 10 eV]; the noise
    variance/mean there from neighbouring-channel differences."""
    window = (e >= e[0]) & (e < first_edge - 10)
    if window.sum() < 8:
        return None, None
    spectra = data.reshape(-1, data.shape[-1])[:, window].astype(float)
    positive = np.all(spectra > 0, axis=1)
    if not positive.any():
        return None, None
    spectra = spectra[positive]
    log_e = np.log(e[window])
    slope, intercept = np.polyfit(log_e, np.log(spectra).T, 1)
    model = np.exp(intercept[:, None] + slope[:, None] * log_e[None, :])
    # var(x_i − x_{i+1}) = 2 var for white noise; the model removes the trend.
    resid = spectra - model
    var = np.var(np.diff(resid, axis=1), axis=1) / 2
    return -slope, float(np.median(var / model.mean(axis=1)))


def describe(path, s):
    data = np.asarray(s.data, dtype=float)
    ny, nx, ne = data.shape
    e, scale = energy_axis(s)
    totals = data.sum(axis=2)
    print(f"\n{os.path.basename(path)}: {ny} rows × {nx} columns × {ne} channels, "
          f"{e[0]:.1f}–{e[-1]:.1f} eV at {scale:g} eV/channel")
    print(f"  total counts per pixel: relative std {100 * relative_std(totals):.1f} %"
          + (f", after a planar trend {100 * np.std(planar_residual(totals)):.1f} %" if ny * nx > 3 else ""))
    jumps = edge_jumps(data, e)
    present = {k: v for k, v in jumps.items() if v > MIN_JUMP}
    edge = max(present, key=present.get) if present else None
    print("  edges present (jump): " + (", ".join(f"{k[0]} {v:.2f}" for k, v in present.items()) or "none listed"))
    first = min((k[1] for k in present), default=None)
    if first is not None:
        r, noise = background_exponent(data, e, first)
        if r is not None:
            print(f"  background exponent r ({e[0]:.0f}–{first - 10:.0f} eV): {np.mean(r):.2f} ± {np.std(r):.2f} "
                  f"(range {np.min(r):.2f}–{np.max(r):.2f}); noise variance / mean counts {noise:.2f}")
    if ny < MIN_ROWS:
        print(f"  only {ny} rows: no row gain or drift")
        return
    gain = row_gain(totals)
    print(f"  row gain: std {100 * np.std(gain):.1f} %, max |deviation| {100 * np.max(np.abs(gain)):.1f} % "
          f"(each row's mean against its neighbours', {ny} rows); within a row: std "
          f"{100 * np.std(within_row(totals)):.1f} % ({nx} pixels per row)")
    if edge is None:
        print("  no listed edge on the axis: no drift")
        return
    shifts = row_drift(data, e, scale, edge[1])
    rows = np.arange(ny)
    slope, icpt = np.polyfit(rows, shifts, 1)
    jitter = shifts - (slope * rows + icpt)
    print(f"  energy drift of the {edge[0]} onset ({edge[1]} eV) per row: peak to peak {np.ptp(shifts):.3f} eV, "
          f"slope {slope:+.4f} eV/row ({slope * ny:+.3f} eV over the scan), jitter std {np.std(jitter):.3f} eV")


def main(paths):
    if not paths:
        paths = [REAL_SI] + hyperspy_corpus()
    for path in paths:
        signals = eels_signals(path)
        if not signals:
            print(f"\n{path}: no 3-D EELS SI")
        for s in signals:
            describe(path, s)


if __name__ == "__main__":
    main(sys.argv[1:])
