#!/usr/bin/python3
"""Independent answers for tests/test_score.c.

Usage: score_oracle.py DIR N BINS NY NX NE E_OFFSET E_SCALE LO HI

Reads, all raw little-endian:
  DIR/scores.f32   N float32 scores
  DIR/truth.u8     N bytes, non-zero = anomalous
  DIR/orig.f32     NY*NX*NE float32, (y, x, E) with E fastest
  DIR/recon.f32    same shape
and writes DIR/oracle.txt, one "name value" per line:
  roc_above roc_below ap_above ap_below   scikit-learn on score / -score
  otsu_numpy                              NumPy transcription of skimage's threshold_otsu(scores, BINS)
  otsu_skimage                            skimage itself, when it imports
  pcc_<p> mse_<p> angle_<p>               per pixel p over the channels with LO <= E <= HI
"""
import sys

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def otsu_numpy(image, nbins):
    """scikit-image 0.19's threshold_otsu for a float image, written out."""
    image = np.asarray(image).ravel()
    if np.all(image == image[0]):
        return float(image[0])
    counts, edges = np.histogram(image, bins=nbins)
    centres = (edges[:-1] + edges[1:]) / 2.0
    counts = counts.astype(float)
    weight1 = np.cumsum(counts)
    weight2 = np.cumsum(counts[::-1])[::-1]
    mean1 = np.cumsum(counts * centres) / weight1
    mean2 = (np.cumsum((counts * centres)[::-1]) / weight2[::-1])[::-1]
    variance12 = weight1[:-1] * weight2[1:] * (mean1[:-1] - mean2[1:]) ** 2
    return float(centres[np.argmax(variance12)])


def main():
    d = sys.argv[1]
    n, bins, ny, nx, ne = (int(v) for v in sys.argv[2:7])
    e_offset, e_scale, lo, hi = (float(v) for v in sys.argv[7:11])

    scores = np.fromfile(f"{d}/scores.f32", dtype="<f4", count=n)
    truth = np.fromfile(f"{d}/truth.u8", dtype=np.uint8, count=n) != 0
    assert scores.size == n and truth.size == n

    out = {
        "roc_above": roc_auc_score(truth, scores),
        "roc_below": roc_auc_score(truth, -scores),
        "ap_above": average_precision_score(truth, scores),
        "ap_below": average_precision_score(truth, -scores),
        "otsu_numpy": otsu_numpy(scores, bins),
    }
    try:
        from skimage.filters import threshold_otsu
    except ImportError:
        pass
    else:
        out["otsu_skimage"] = float(threshold_otsu(scores, nbins=bins))

    shape = (ny, nx, ne)
    orig = np.fromfile(f"{d}/orig.f32", dtype="<f4").reshape(shape).astype(np.float64)
    recon = np.fromfile(f"{d}/recon.f32", dtype="<f4").reshape(shape).astype(np.float64)
    energy = e_offset + e_scale * np.arange(ne)
    tol = 1e-6 * abs(e_scale)
    keep = (energy >= lo - tol) & (energy <= hi + tol)
    a = orig[:, :, keep].reshape(ny * nx, -1)
    b = recon[:, :, keep].reshape(ny * nx, -1)
    for p in range(ny * nx):
        out[f"pcc_{p}"] = np.corrcoef(a[p], b[p])[0, 1]
        out[f"mse_{p}"] = np.mean((a[p] - b[p]) ** 2)
        cos = a[p] @ b[p] / (np.linalg.norm(a[p]) * np.linalg.norm(b[p]))
        out[f"angle_{p}"] = np.arccos(np.clip(cos, -1.0, 1.0))
    out["window_channels"] = int(keep.sum())

    with open(f"{d}/oracle.txt", "w") as f:
        for k, v in out.items():
            f.write(f"{k} {float(v):.17g}\n")


if __name__ == "__main__":
    main()
