"""Python bindings of libeelsvae: spectral anomaly detection in EELS spectrum images.

ctypes over the installed shared library (no compiled extension).  The
library is found through ``EELSVAE_LIBRARY`` (a full path) first, then the
loader path (``libeelsvae.so.0``).

    import eelsvae
    cube = eelsvae.load("si.dm4")                    # or Cube.from_numpy(a), Cube.from_hyperspy(s)
    pca = eelsvae.PCA.fit(cube, components=4)
    result = eelsvae.detect(cube, pca.reconstruct(cube), eelsvae.Scorer("pcc", "Fe-L"))   # default: whole axis
    result.scores, result.threshold, result.mask     # NumPy arrays and the threshold of fdr:0.01
    eelsvae.edge("Ti-L").window                      # (446.0, 492.0): onset − 10 … last onset + 30 eV
    opt = eelsvae.fit_model_options(cube, preset="fast")   # tile, energy range and binning for this SI

Library failures raise :class:`EelsvaeError` with ``.status`` and ``.message``.
"""
from . import _lib
from .cube import AxisCalibration, Cube, disk_mask, load, synthesize, tiling
from .enums import Axis, Direction, DType, Format, LogLevel, LossKind, Preset, ScoreKind
from .errors import EelsvaeError, Status
from .model import MemoryEstimate, Model, TrainProgress, estimate_memory, fit_model_options
from .options import (ConvLayer, ModelOptions, PcaOptions, PreprocessOptions, ScorerOptions, SynthOptions,
                      TrainOptions)
from .pca import PCA
from .score import (Detection, Edge, Explanation, Metrics, Scorer, default_rule, detect, edge, edges, explain,
                    metrics, otsu_threshold, p_values, pr_auc, roc_auc, score_histogram, threshold, threshold_mask)
from .signal import Signal, SignalAxis, detect_format, file_signals, format_supported

__version__ = "0.1.0"

__all__ = [
    "Axis", "AxisCalibration", "ConvLayer", "Cube", "DType", "Detection", "Direction", "Edge", "EelsvaeError",
    "Explanation", "Format", "LogLevel", "LossKind", "MemoryEstimate", "Metrics", "Model", "ModelOptions", "PCA", "PcaOptions",
    "Preset", "PreprocessOptions", "ScoreKind", "Scorer", "ScorerOptions", "Signal", "SignalAxis", "Status",
    "SynthOptions", "TrainOptions", "TrainProgress", "default_rule", "detect", "detect_format", "disk_mask", "edge", "edges",
    "estimate_memory", "explain", "file_signals", "fit_model_options", "format_supported", "library_path", "load",
    "metrics", "otsu_threshold", "p_values", "pr_auc",
    "roc_auc", "score_histogram", "set_log_callback", "set_threads", "synthesize", "threads",
    "threshold", "threshold_mask", "tiling", "to_hyperspy", "version", "version_number",
]


def version():
    """Version string of the loaded library, e.g. '0.1.0'."""
    return _lib.version_string()


def version_number():
    """Version of the loaded library as major·10000 + minor·100 + patch."""
    return _lib.lib.eelsvae_version_number()


def library_path():
    """The file name the shared library was loaded from."""
    return _lib.LIBRARY_PATH


def set_threads(count):
    """Threads the library's parallel work may use (0 = all cores)."""
    _lib.lib.eelsvae_set_threads(count)


def threads():
    """Threads the library's parallel work uses."""
    return _lib.lib.eelsvae_threads()


_log_callback = None   # the ctypes thunk must stay alive while installed


def set_log_callback(fn):
    """Receive the library's log lines as ``fn(level: LogLevel, message: str)``; None removes it.

    The library calls it from whichever thread logs.  An exception raised by
    ``fn`` is reported through sys.unraisablehook and otherwise ignored (it
    cannot travel through C).  ``set_log_callback(logging_handler())`` routes
    the lines to the ``logging`` logger 'eelsvae'.
    """
    global _log_callback
    if fn is None:
        _lib.lib.eelsvae_set_log_callback(_lib.LOG_FN(), None)
        _log_callback = None
        return

    def thunk(user, level, message):
        fn(LogLevel(level), _lib.decode(message))

    callback = _lib.LOG_FN(thunk)
    _lib.lib.eelsvae_set_log_callback(callback, None)
    _log_callback = callback


def logging_handler(logger=None):
    """A log callback for :func:`set_log_callback` that writes to a ``logging`` logger."""
    import logging
    log = logger or logging.getLogger("eelsvae")
    levels = {LogLevel.DEBUG: logging.DEBUG, LogLevel.INFO: logging.INFO, LogLevel.WARN: logging.WARNING}

    def handler(level, message):
        log.log(levels.get(level, logging.INFO), "%s", message)
    return handler


def to_hyperspy(obj, like=None, title=None, copy=True):
    """A HyperSpy signal of a Cube (EELSSpectrum), a 2-D map (Signal2D) or a Signal; see eelsvae.hyperspy."""
    from .hyperspy import to_hyperspy as convert
    return convert(obj, like=like, title=title, copy=copy)
