#!/usr/bin/python3
"""Speed and agreement peers of libeelsvae's PCA (run by pca-bench).

Times, on the same cube and with the same k, centring and Poisson weighting:
  - HyperSpy: decomposition(algorithm='SVD', output_dimension=k) followed by
    get_decomposition_model(k) (the mean is added back when centred, since
    HyperSpy's model leaves it out);
  - scikit-learn: PCA(n_components=k, svd_solver='randomized') fit and
    inverse_transform (TruncatedSVD when the data is not centred);
  - NumPy: the full SVD (np.linalg.svd, full_matrices=False) and its rank-k
    reconstruction, which is the exact reference every agreement is
    measured against: the smallest, over pixels, Pearson correlation between
    a method's reconstructed spectrum and NumPy's.

Every peer is optional: one that cannot be imported prints
"skipped: <name> not installed". Results go to --result as tab-separated
lines "method<TAB>seconds<TAB>agreement" (agreement "nan" when unknown);
our own agreement is the line "ours".
"""
import argparse
import contextlib
import io
import logging
import sys
import time
import warnings


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cube", required=True, help="raw little-endian float32 cube, y × x × E")
    p.add_argument("--shape", required=True, nargs=3, type=int, metavar=("NY", "NX", "NE"))
    p.add_argument("--ours", help="our reconstruction, raw float32, same shape")
    p.add_argument("--components", type=int, default=4)
    p.add_argument("--center", type=int, default=1)
    p.add_argument("--poisson", type=int, default=0)
    p.add_argument("--reps", type=int, default=3, help="best of this many runs (NumPy's SVD runs once)")
    p.add_argument("--result", required=True)
    return p.parse_args()


def best_of(reps, fn):
    best, out = float("inf"), None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def min_pcc(a, b, np):
    """Smallest per-row Pearson correlation of two (pixels × E) arrays."""
    worst = 1.0
    for start in range(0, a.shape[0], 4096):
        x = a[start:start + 4096].astype(np.float64)
        y = b[start:start + 4096].astype(np.float64)
        x -= x.mean(axis=1, keepdims=True)
        y -= y.mean(axis=1, keepdims=True)
        den = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(den > 0, (x * y).sum(axis=1) / den, 1.0)
        worst = min(worst, float(r.min()))
    return worst


def poisson_roots(X, np):
    """HyperSpy's sqrt(aG)·sqrt(bH), as two broadcastable factors."""
    return np.sqrt(X.sum(axis=1, dtype=np.float64))[:, None], np.sqrt(X.sum(axis=0, dtype=np.float64))[None, :]


def normalise(X, np):
    ra, rb = poisson_roots(X, np)
    with np.errstate(divide="ignore", invalid="ignore"):
        Xn = np.nan_to_num(X / (ra * rb)).astype(np.float32)
    return Xn, ra, rb


def numpy_svd(X, a, np):
    def run():
        Xn, ra, rb = normalise(X, np) if a.poisson else (X, None, None)
        mu = Xn.mean(axis=0) if a.center else np.zeros(Xn.shape[1], np.float32)
        U, S, VT = np.linalg.svd(Xn - mu, full_matrices=False)
        k = a.components
        R = (U[:, :k] * S[:k]) @ VT[:k] + mu
        return R * (ra * rb) if a.poisson else R
    return best_of(1, run)


def sklearn_pca(X, a, np):
    from sklearn.decomposition import PCA, TruncatedSVD

    def run():
        Xn, ra, rb = normalise(X, np) if a.poisson else (X, None, None)
        if a.center:
            model = PCA(n_components=a.components, svd_solver="randomized", random_state=0)
        else:
            model = TruncatedSVD(n_components=a.components, algorithm="randomized", random_state=0)
        R = model.inverse_transform(model.fit_transform(Xn))
        return R * (ra * rb) if a.poisson else R
    return best_of(a.reps, run)


def hyperspy_svd(X, a, np):
    import hyperspy.api as hs
    logging.getLogger("hyperspy").setLevel(logging.ERROR)
    ny, nx, ne = a.shape

    def run():
        s = hs.signals.Signal1D(X.reshape(ny, nx, ne).copy())
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s.decomposition(algorithm="SVD", output_dimension=a.components,
                            centre="navigation" if a.center else None,
                            normalize_poissonian_noise=bool(a.poisson))
            R = s.get_decomposition_model(a.components).data.reshape(ny * nx, ne)
        if a.center:
            R = R + s.learning_results.mean.reshape(1, ne)
        return R
    return best_of(a.reps, run)


def main():
    a = parse()
    try:
        import numpy as np
    except ImportError:
        print("skipped: numpy not installed (no peers, no agreement)")
        open(a.result, "w").close()
        return 0
    ny, nx, ne = a.shape
    X = np.fromfile(a.cube, dtype="<f4").reshape(ny * nx, ne)
    lines = []
    t, exact = numpy_svd(X, a, np)
    lines.append(("numpy-svd", t, 1.0))
    if a.ours:
        ours = np.fromfile(a.ours, dtype="<f4").reshape(ny * nx, ne)
        lines.insert(0, ("ours", float("nan"), min_pcc(ours, exact, np)))
        del ours
    for name, module, fn in (("hyperspy", "hyperspy", hyperspy_svd), ("sklearn", "sklearn", sklearn_pca)):
        try:
            __import__(module)
        except ImportError:
            print(f"skipped: {name} not installed")
            continue
        t, R = fn(X, a, np)
        lines.append((name, t, min_pcc(R, exact, np)))
        del R
    with open(a.result, "w") as f:
        for name, t, agree in lines:
            f.write(f"{name}\t{t:.6f}\t{agree:.9f}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
