"""Per-pixel scores, Otsu thresholds, masks, metrics and detection."""
import ctypes
import dataclasses
from ctypes import byref, c_double, c_size_t
from typing import Optional

import numpy as np

from . import _lib
from ._array import Handle, float32_buffer, fptr, mask_buffer, u8ptr
from ._lib import lib
from .cube import Cube, _options, as_cube
from .enums import Direction
from .options import ScorerOptions

__all__ = ["Scorer", "Metrics", "Detection", "otsu_threshold", "threshold_mask", "metrics", "roc_auc",
           "pr_auc", "score_histogram", "detect"]


class Scorer(Handle):
    """Scores every pixel of a cube against its reconstruction over an energy window.

    ``kind``: 'pcc' (low = anomalous), 'mse' or 'spectral_angle' (high = anomalous);
    ``window``: (lo, hi) in the cube's energy units (default the paper's 690–730 eV).
    """
    _free_name = "eelsvae_scorer_free"
    _kind = "Scorer"

    def __init__(self, kind=None, window=None, options=None):
        fields = {}
        if kind is not None:
            fields["kind"] = kind
        if window is not None:
            lo, hi = window
            fields.update(window_lo=lo, window_hi=hi)
        opt = _options(ScorerOptions, options, fields)
        ptr = _lib.ScorerP()
        lib.eelsvae_scorer_create(byref(opt.struct), byref(ptr))
        Handle.__init__(self, ptr)
        self.options = opt.copy()

    kind = property(lambda self: self.options.kind, doc="The :class:`ScoreKind`.")
    window = property(lambda self: (self.options.window_lo, self.options.window_hi), doc="(lo, hi) energy window.")

    @property
    def direction(self):
        """Which side of a threshold is anomalous (:class:`Direction`)."""
        return Direction(lib.eelsvae_scorer_direction(self._h))

    def score(self, original, reconstruction, return_degenerate=False):
        """The (ny, nx) float32 score map; with return_degenerate, also the count of
        pixels that met a degenerate case (a constant spectrum, a zero spectrum)."""
        original, reconstruction = as_cube(original), as_cube(reconstruction)
        ny, nx, _ = original.shape
        out = np.empty((ny, nx), np.float32)
        degenerate = c_size_t()
        lib.eelsvae_scorer_score(self._h, original._h, reconstruction._h, fptr(out), out.size, byref(degenerate))
        return (out, degenerate.value) if return_degenerate else out

    def __repr__(self):
        return "<Scorer %s %g … %g>" % ((self.kind.name.lower(),) + self.window)


def otsu_threshold(scores, bins=256):
    """Otsu's threshold of scores (any shape), as scikit-image's threshold_otsu(float32 scores, nbins=bins)."""
    s = float32_buffer(scores).reshape(-1)
    out = c_double()
    lib.eelsvae_otsu_threshold(fptr(s), s.size, bins, byref(out))
    return out.value


def threshold_mask(scores, threshold, direction):
    """Bool mask (the shape of ``scores``) of the anomalous side of a threshold.

    ``direction``: 'below' (score ≤ threshold is anomalous, PCC) or 'above'
    (score > threshold), or a :class:`Direction`.  NaN scores are never anomalous.
    """
    s = float32_buffer(scores)
    mask = np.empty(s.shape, np.uint8)
    lib.eelsvae_threshold_mask(fptr(s), s.size, threshold, int(Direction.coerce(direction)), u8ptr(mask))
    return mask.view(np.bool_)


@dataclasses.dataclass(frozen=True)
class Metrics:
    """Agreement of a predicted mask with the truth (``eelsvae_metrics``)."""
    true_positive: int
    false_positive: int
    false_negative: int
    true_negative: int
    precision: float
    recall: float
    f1: float
    iou: float


def _pair(predicted, truth, what=("predicted", "truth")):
    p, t = mask_buffer(predicted, what[0]), mask_buffer(truth, what[1])
    if p.size != t.size:
        raise ValueError("%s has %d elements but %s has %d" % (what[0], p.size, what[1], t.size))
    return p, t


def metrics(predicted, truth):
    """:class:`Metrics` of a predicted mask against the true one (same number of pixels)."""
    p, t = _pair(predicted, truth)
    m = _lib.MetricsStruct()
    m.struct_size = ctypes.sizeof(m)
    lib.eelsvae_metrics_compute(u8ptr(p), u8ptr(t), p.size, byref(m))
    return Metrics(*(getattr(m, f.name) for f in dataclasses.fields(Metrics)))


def _scores_truth(scores, truth):
    s = float32_buffer(scores)
    t = mask_buffer(truth, "truth")
    if s.size != t.size:
        raise ValueError("scores has %d elements but truth has %d" % (s.size, t.size))
    return s, t


def roc_auc(scores, truth, direction):
    """Area under the ROC curve (ties count ½), as sklearn's roc_auc_score(truth, ±scores)."""
    s, t = _scores_truth(scores, truth)
    out = c_double()
    lib.eelsvae_roc_auc(fptr(s), u8ptr(t), s.size, int(Direction.coerce(direction)), byref(out))
    return out.value


def pr_auc(scores, truth, direction):
    """Average precision, as sklearn's average_precision_score(truth, ±scores)."""
    s, t = _scores_truth(scores, truth)
    out = c_double()
    lib.eelsvae_pr_auc(fptr(s), u8ptr(t), s.size, int(Direction.coerce(direction)), byref(out))
    return out.value


def score_histogram(scores, truth, lo, hi, bins):
    """``(normal, anomalous)``: uint64 counts in ``bins`` equal bins over [lo, hi] (ends clamped)."""
    s, t = _scores_truth(scores, truth)
    normal = np.zeros(bins, np.uint64)
    anomalous = np.zeros(bins, np.uint64)
    p64 = ctypes.POINTER(ctypes.c_uint64)
    lib.eelsvae_score_histogram(fptr(s), u8ptr(t), s.size, lo, hi, bins, normal.ctypes.data_as(p64),
                                anomalous.ctypes.data_as(p64))
    return normal, anomalous


@dataclasses.dataclass
class Detection:
    """What detection found: the score map, Otsu's threshold and the anomaly mask."""
    scores: np.ndarray          # (ny, nx) float32
    threshold: float
    mask: np.ndarray            # (ny, nx) bool, True = anomalous
    direction: Direction
    degenerate: int             # pixels that met a degenerate scoring case
    reconstruction: Optional[Cube] = None
    prepared: Optional[Cube] = None

    def metrics(self, truth):
        """:class:`Metrics` of the mask against a true mask."""
        return metrics(self.mask, truth)

    def roc_auc(self, truth):
        return roc_auc(self.scores, truth, self.direction)

    def pr_auc(self, truth):
        return pr_auc(self.scores, truth, self.direction)


def detect(original, reconstruction, scorer=None, bins=256, threshold=None):
    """Score ``original`` against ``reconstruction``, threshold (Otsu unless given) and mask.

    ``scorer`` is a :class:`Scorer` (default: PCC over 690–730 eV).
    """
    scorer = Scorer() if scorer is None else scorer
    original, reconstruction = as_cube(original), as_cube(reconstruction)
    scores, degenerate = scorer.score(original, reconstruction, return_degenerate=True)
    if threshold is None:
        threshold = otsu_threshold(scores, bins)
    direction = scorer.direction
    return Detection(scores, float(threshold), threshold_mask(scores, threshold, direction), direction,
                     degenerate, reconstruction)
