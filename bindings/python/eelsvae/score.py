"""Per-pixel scores, Otsu thresholds, masks, metrics and detection; the table of
core-loss edges whose windows scores are taken over."""
import ctypes
import dataclasses
import math
from ctypes import byref, c_double, c_size_t
from typing import Optional, Tuple

import numpy as np

from . import _lib
from ._array import Handle, float32_buffer, fptr, mask_buffer, u8ptr
from ._lib import ThresholdRuleStruct, lib
from .cube import Cube, _options, as_cube
from .enums import Direction
from .options import ScorerOptions

__all__ = ["Scorer", "Metrics", "Detection", "Explanation", "Edge", "edge", "edges", "explain", "otsu_threshold",
           "default_rule", "threshold", "p_values", "threshold_mask",
           "metrics", "roc_auc", "pr_auc", "score_histogram", "detect"]


# ---- the edge table (edges.h) -------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Edge:
    """One core-loss edge of the library's table (``eelsvae_edge``), energies in eV.

    ``onset`` is the onset of the first sub-edge (L3 of L2,3, M5 of M4,5),
    ``last_onset`` that of the last (L2, M4; equal to ``onset`` for K and L1);
    ``window`` is ``(onset − 10, last_onset + 30)``, the window to score the
    edge over (``eelsvae_edge_window``; not clipped to any cube's axis).
    """
    element: str
    shell: str
    onset: float
    last_onset: float
    window: Tuple[float, float]

    @property
    def name(self):
        """The edge's full name, e.g. 'Ti-L2,3'."""
        return "%s-%s" % (self.element, self.shell)

    @classmethod
    def _from_struct(cls, e):
        lo, hi = c_double(), c_double()
        lib.eelsvae_edge_window(byref(e), byref(lo), byref(hi))
        return cls(_lib.decode(e.element), _lib.decode(e.shell), e.onset_ev, e.last_onset_ev, (lo.value, hi.value))


def _edge_struct():
    e = _lib.EdgeStruct()
    e.struct_size = ctypes.sizeof(e)
    return e


def edge(name):
    """The :class:`Edge` of a name: 'Ti-L', 'Ti-L2,3', 'o k', 'La_M4,5', … (element case-insensitive;
    'L' is L2,3, 'M' is M4,5 where the element has one, else M2,3).

    An unknown edge is an EelsvaeError (INVALID_ARGUMENT) whose message lists the
    element's edges.  An :class:`Edge` is returned as it is.
    """
    if isinstance(name, Edge):
        return name
    if not isinstance(name, str):
        raise TypeError("an edge name is a str such as 'Fe-L', not %s" % type(name).__name__)
    e = _edge_struct()
    lib.eelsvae_edge_lookup(_lib.text(name, "edge name"), byref(e))
    return Edge._from_struct(e)


def edges():
    """Every :class:`Edge` of the table (K, L1, L2,3, M2,3, M4,5 with onsets 20–3000 eV), by increasing onset."""
    out = []
    e = _edge_struct()
    for i in range(lib.eelsvae_edge_count()):
        lib.eelsvae_edge_at(i, byref(e))
        out.append(Edge._from_struct(e))
    return out


def _as_window(window):
    """(lo, hi) floats from a (lo, hi) pair, an :class:`Edge` or an edge name; None stays None
    (the whole energy axis)."""
    if window is None:
        return None
    if isinstance(window, (str, Edge)):
        return edge(window).window
    try:
        lo, hi = window
    except (TypeError, ValueError):
        raise TypeError("a window is (lo, hi), an Edge or an edge name such as 'Fe-L', not %r"
                        % (window,)) from None
    return float(lo), float(hi)


class Scorer(Handle):
    """Scores every pixel of a cube against its reconstruction over an energy window.

    ``kind``: 'pcc' (low = anomalous), 'mse', 'spectral_angle' or 'chi2' (high =
    anomalous; the reduced chi-square against the noise model of :meth:`noise_model`,
    about 1 for a bulk pixel whatever its counts);
    ``window``: (lo, hi) in the cube's energy units, an :class:`Edge` or an edge
    name such as 'Fe-L' (its :attr:`Edge.window`, eV); default (None) the whole
    energy axis, as no edge is assumed (the paper's Fe L window was 690–730 eV).
    """
    _free_name = "eelsvae_scorer_free"
    _kind = "Scorer"

    def __init__(self, kind=None, window=None, options=None):
        fields = {}
        if kind is not None:
            fields["kind"] = kind
        window = _as_window(window)
        if window is not None:
            lo, hi = window
            fields.update(window_lo=lo, window_hi=hi)
        opt = _options(ScorerOptions, options, fields)
        ptr = _lib.ScorerP()
        lib.eelsvae_scorer_create(byref(opt.struct), byref(ptr))
        Handle.__init__(self, ptr)
        self.options = opt.copy()

    kind = property(lambda self: self.options.kind, doc="The :class:`ScoreKind`.")

    @property
    def window(self):
        """(lo, hi) energy window, or None for the whole energy axis (the C default, NaN … NaN)."""
        lo, hi = self.options.window_lo, self.options.window_hi
        return None if math.isnan(lo) and math.isnan(hi) else (lo, hi)

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

    def noise_model(self, original, reconstruction):
        """(intercept, slope) of the variance a + b·x̂ the chi-square score divides by,
        fitted robustly on this map over the scorer's window (any kind may ask).
        Raises EelsvaeError (NUMERIC) when the residuals show no noise."""
        original, reconstruction = as_cube(original), as_cube(reconstruction)
        a, b = c_double(), c_double()
        lib.eelsvae_scorer_noise_model(self._h, original._h, reconstruction._h, byref(a), byref(b))
        return a.value, b.value

    def __repr__(self):
        if self.closed:
            return "<Scorer closed>"
        window = self.window
        where = "whole energy axis" if window is None else "%g … %g" % window
        return "<Scorer %s %s>" % (self.kind.name.lower(), where)


@dataclasses.dataclass(frozen=True)
class Explanation:
    """Why pixels were flagged (``eelsvae_explain_means``): per channel of the window, float64 arrays."""
    energy: np.ndarray                       # each channel's energy (the energy axis' units, eV)
    flagged_mean: np.ndarray                 # mean spectrum of the flagged pixels
    flagged_reconstruction_mean: np.ndarray  # mean of their reconstructions
    bulk_mean: np.ndarray                    # mean spectrum of the unflagged pixels (NaN when all are flagged)
    mean_residual: np.ndarray                # flagged_mean − flagged_reconstruction_mean


def explain(original, reconstruction, mask, window=None):
    """The :class:`Explanation` of a mask (any shape of ny·nx elements, non-zero = flagged) over an
    energy window: (lo, hi), an :class:`Edge` or an edge name; None (the default) is the whole
    energy axis, as for :class:`Scorer`.  No flagged pixel is an EelsvaeError (INVALID_ARGUMENT)."""
    original, reconstruction = as_cube(original), as_cube(reconstruction)
    m = mask_buffer(mask)
    window = _as_window(window)
    if window is None:
        lo = hi = math.nan
        channels = original.shape[2]
    else:
        lo, hi = window
        span = original.energy_window(lo, hi)
        channels = span.stop - span.start
    out = [np.empty(channels, np.float64) for _ in range(5)]
    pd = ctypes.POINTER(c_double)
    lib.eelsvae_explain_means(original._h, reconstruction._h, u8ptr(m), m.size, lo, hi,
                              *(o.ctypes.data_as(pd) for o in out), channels)
    return Explanation(*out)


def otsu_threshold(scores, bins=256):
    """Otsu's threshold of scores (any shape), as scikit-image's threshold_otsu(float32 scores, nbins=bins)."""
    s = float32_buffer(scores).reshape(-1)
    out = c_double()
    lib.eelsvae_otsu_threshold(fptr(s), s.size, bins, byref(out))
    return out.value


def default_rule():
    """The rule detection uses where none is named, the library's and the programs':
    ``"fdr:0.01"`` (:c:func:`eelsvae_threshold_rule_default`)."""
    return _lib.decode(lib.eelsvae_threshold_rule_default())


def threshold(scores, rule=None, direction="below"):
    """The threshold a rule chooses for scores (any shape), as the programs' ``--threshold``:
    ``"otsu"`` (``"otsu:BINS"``), ``"fdr:Q"`` (Benjamini–Hochberg over :func:`p_values`),
    ``"contamination:F"`` (the fraction F most anomalous) or ``"value:X"``; by
    default :func:`default_rule`. ``-inf``/``inf`` when the rule flags nothing."""
    rule = default_rule() if rule is None else rule
    s = float32_buffer(scores).reshape(-1)
    r = ThresholdRuleStruct(struct_size=ctypes.sizeof(ThresholdRuleStruct))
    lib.eelsvae_threshold_rule_parse(_lib.text(rule, "threshold rule"), byref(r))
    out = c_double()
    lib.eelsvae_threshold_select(fptr(s), s.size, int(Direction.coerce(direction)), byref(r), byref(out))
    return out.value


_rule_threshold = threshold  # for detect(), whose threshold argument hides the name


def p_values(scores, direction="below"):
    """One-sided p-value of every score (the shape of ``scores``) against the map's own bulk: the
    log of each score's distance from a perfect reconstruction (1 − PCC below, the score above)
    fitted as normal (median, 1.4826 × MAD); the chance a bulk pixel lies as far."""
    s = float32_buffer(scores)
    out = np.empty(s.shape, np.float64)
    lib.eelsvae_score_p_values(fptr(s), s.size, int(Direction.coerce(direction)),
                               out.ctypes.data_as(ctypes.POINTER(c_double)), out.size)
    return out


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
    """What detection found: the score map, the threshold and the anomaly mask."""
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


def detect(original, reconstruction, scorer=None, threshold=None):
    """Score ``original`` against ``reconstruction``, threshold and mask.

    ``scorer`` is a :class:`Scorer` (default: PCC over the whole energy axis).
    ``threshold`` is a rule as :func:`threshold` takes (default
    :func:`default_rule`, ``"fdr:0.01"``; ``"otsu"`` is the paper's) or a score.
    """
    scorer = Scorer() if scorer is None else scorer
    original, reconstruction = as_cube(original), as_cube(reconstruction)
    scores, degenerate = scorer.score(original, reconstruction, return_degenerate=True)
    direction = scorer.direction
    if threshold is None or isinstance(threshold, str):
        threshold = _rule_threshold(scores, threshold, direction)
    return Detection(scores, float(threshold), threshold_mask(scores, threshold, direction), direction,
                     degenerate, reconstruction)
