"""The 3-D convolutional VAE: create, train (with a progress callback that can
cancel, and Ctrl-C that cancels cleanly), prepare, reconstruct, encode,
decode, detect, save and load."""
import ctypes
import dataclasses
import signal
import threading
from ctypes import byref

import numpy as np

from . import _lib
from ._array import Handle, float32_buffer, fptr, mask_buffer
from ._lib import lib
from .cube import Cube, _options, as_cube, tiling
from .errors import EelsvaeError
from .options import ModelOptions, PreprocessOptions, TrainOptions
from .score import detect as _detect

__all__ = ["Model", "TrainProgress", "MemoryEstimate", "estimate_memory", "fit_model_options"]


@dataclasses.dataclass(frozen=True)
class TrainProgress:
    """Where training stands (``eelsvae_train_progress``), given to the progress callback.

    A field the running library's struct does not hold (an older library) is None.
    """
    epoch: int
    epochs: int
    batch: int
    batches: int
    epoch_done: bool
    loss: float
    reconstruction: float
    kl: float
    validation_loss: float
    learning_rate: float
    elapsed_seconds: float
    eta_seconds: float

    @classmethod
    def _from_struct(cls, ptr):
        p = ptr.contents
        size = p.struct_size
        values = {}
        for f in dataclasses.fields(cls):
            field = getattr(_lib.TrainProgressStruct, f.name)
            values[f.name] = getattr(p, f.name) if field.offset + field.size <= size else None
        if values["epoch_done"] is not None:
            values["epoch_done"] = bool(values["epoch_done"])
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Memory a model needs to train (``eelsvae_memory_estimate``), in bytes."""
    parameters: int
    parameter_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    activation_bytes: int
    workspace_bytes: int
    total_bytes: int


def estimate_memory(options=None, batch=1, **fields):
    """:class:`MemoryEstimate` of training an architecture (:class:`ModelOptions`) at a batch size."""
    opt = _options(ModelOptions, options, fields)
    est = _lib.MemoryEstimateStruct()
    est.struct_size = ctypes.sizeof(est)
    lib.eelsvae_model_estimate_memory(byref(opt.struct), batch, byref(est))
    return MemoryEstimate(*(getattr(est, f.name) for f in dataclasses.fields(MemoryEstimate)))


def fit_model_options(cube, window=None, options=None, **fields):
    """A :class:`ModelOptions` fitted to a spectrum image (see :meth:`ModelOptions.fit`).

    ``options`` (default: the paper's preset; ``preset='fast'`` and field keywords
    as for :class:`ModelOptions`) is not changed: the fit is made on a copy, whose
    ``tile`` and ``energy_channels`` are the upper bounds.  ``window``: (lo, hi) eV,
    an :class:`eelsvae.Edge` or an edge name; None = the whole energy axis::

        opt = eelsvae.fit_model_options(cube, preset="fast")
        model = eelsvae.Model(opt)
    """
    opt = _options(ModelOptions, options, fields)
    return opt.copy().fit(cube, window)


class _SigintToFlag:
    """While active (main thread only), Ctrl-C sets a flag instead of raising at an
    arbitrary point, so that the progress callback can cancel training cleanly."""

    def __init__(self):
        self.pressed = False
        self._previous = None
        self._active = False

    def __enter__(self):
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handler)
            self._active = True
        return self

    def _handler(self, signum, frame):
        self.pressed = True

    def __exit__(self, *exc):
        if self._active:
            signal.signal(signal.SIGINT, self._previous)
            self._active = False


class Model(Handle):
    """A 3-D convolutional VAE.

    ``Model(options, seed=1)`` creates fresh weights for an architecture
    (:class:`ModelOptions`, default the paper's; ``preset='fast'`` and field
    keywords as for the options).  A model is not shared between threads in
    C; here every call holds the model's own lock, so concurrent use from
    several Python threads is serialised rather than unsafe.
    """
    _free_name = "eelsvae_model_free"
    _kind = "Model"

    def __init__(self, options=None, seed=1, **fields):
        opt = _options(ModelOptions, options, fields)
        ptr = _lib.ModelP()
        lib.eelsvae_model_create(byref(opt.struct), seed, byref(ptr))
        Handle.__init__(self, ptr)
        self._lock = threading.RLock()

    @classmethod
    def _wrap(cls, ptr):
        model = cls.__new__(cls)
        Handle.__init__(model, ptr)
        model._lock = threading.RLock()
        return model

    @classmethod
    def load(cls, path):
        """Load a model or checkpoint written by :meth:`save`."""
        ptr = _lib.ModelP()
        lib.eelsvae_model_load(_lib.fspath(path), byref(ptr))
        return cls._wrap(ptr)

    def save(self, path, training_state=False):
        """Save (atomically); ``training_state=True`` writes a checkpoint training can resume from."""
        with self._lock:
            lib.eelsvae_model_save(self._h, _lib.fspath(path), int(bool(training_state)))

    @property
    def options(self):
        """The architecture (:class:`ModelOptions`, a copy)."""
        struct = _lib.ModelOptions()
        with self._lock:
            lib.eelsvae_model_options_get_sized(self._h, byref(struct), ctypes.sizeof(struct))
        return ModelOptions._from_struct(struct)

    @property
    def parameter_count(self):
        with self._lock:
            return lib.eelsvae_model_parameter_count(self._h)

    # ---- training -------------------------------------------------------------------

    def train(self, cubes, exclude=None, options=None, progress=None, **fields):
        """Train on bulk spectrum images in raw counts (calibrated energy axes).

        cubes:    a :class:`Cube` or a list of them;
        exclude:  None, or one mask per cube (None entries allowed): a tile that
                  touches a non-zero pixel is not trained on;
        options:  :class:`TrainOptions` (default the paper's preset); keywords
                  override fields (``preset='fast'``, ``epochs=2``,
                  ``preprocess=PreprocessOptions(...)``, ``checkpoint_path=…``);
        progress: ``progress(p: TrainProgress)`` called after every batch;
                  a true return value cancels (EelsvaeError, status CANCELLED).

        An exception raised by ``progress`` cancels training and propagates.
        Ctrl-C (KeyboardInterrupt) cancels at the next batch boundary and is
        re-raised once the library has stopped and freed its work memory; the
        model keeps the weights of the last finished step and can be trained
        further.  Returns the :class:`TrainProgress` of every finished epoch.
        """
        opt = _options(TrainOptions, options, fields)
        cube_list = [cubes] if isinstance(cubes, Cube) or not isinstance(cubes, (list, tuple)) else list(cubes)
        cube_list = [as_cube(c) for c in cube_list]
        n = len(cube_list)
        handles = (_lib.CubeP * max(n, 1))(*[c._h for c in cube_list])

        keep = []  # everything C points at must outlive the call
        masks = None
        if exclude is not None:
            exclude = list(exclude) if isinstance(exclude, (list, tuple)) else [exclude]
            if len(exclude) != n:
                raise ValueError("%d exclusion masks for %d cubes" % (len(exclude), n))
            masks = (_lib.P_u8 * max(n, 1))()
            for i, (cube, m) in enumerate(zip(cube_list, exclude)):
                if m is None:
                    continue
                buf = mask_buffer(m, "exclude[%d]" % i)
                if buf.size != cube.ny * cube.nx:
                    raise ValueError("exclude[%d] has %d pixels; cube %d has %d × %d" % (i, buf.size, i, cube.ny,
                                                                                        cube.nx))
                keep.append(buf)
                masks[i] = buf.ctypes.data_as(_lib.P_u8)

        c_opt = _lib.TrainOptions.from_buffer_copy(opt.struct)
        if opt.preprocess is not None:
            pre = opt.preprocess
            if not isinstance(pre, PreprocessOptions):
                raise TypeError("preprocess must be a PreprocessOptions")
            pre_struct = _lib.PreprocessOptions.from_buffer_copy(pre.struct)
            keep.append(pre_struct)
            c_opt.preprocess = ctypes.pointer(pre_struct)
        if opt.checkpoint_path is not None:
            path = _lib.fspath(opt.checkpoint_path)
            keep.append(path)
            c_opt.checkpoint_path = path

        history = []
        failure = []   # the exception the callback caught, re-raised after the C call

        def on_progress(user, ptr):
            # Must never let an exception escape into C: ctypes would print
            # and return 0 (carry on).  Anything raised cancels instead.
            try:
                if sigint.pressed:
                    return 1
                record = TrainProgress._from_struct(ptr)
                if record.epoch_done:
                    history.append(record)
                if progress is not None and progress(record):
                    return 1
                return 1 if sigint.pressed else 0
            except BaseException as exc:  # noqa: B902 - KeyboardInterrupt included on purpose
                failure.append(exc)
                return 1

        callback = _lib.TRAIN_PROGRESS_FN(on_progress)
        c_opt.progress = callback
        c_opt.progress_user = None

        status_error = None
        with self._lock, _SigintToFlag() as sigint:
            try:
                lib.eelsvae_model_train(self._h, handles, masks, n, byref(c_opt))
            except EelsvaeError as exc:
                status_error = exc
        del keep
        if failure:
            raise failure[0] from status_error
        if sigint.pressed:
            raise KeyboardInterrupt() from status_error
        if status_error is not None:
            raise status_error
        return history

    # ---- detection --------------------------------------------------------------------

    def prepare(self, raw):
        """Apply the training's input transform (energy crop, preprocessing with the
        recorded scaling) to a raw cube: the network's input (a new :class:`Cube`)."""
        raw = as_cube(raw)
        ptr = _lib.CubeP()
        with self._lock:
            lib.eelsvae_model_prepare(self._h, raw._h, byref(ptr))
        return Cube._wrap(ptr)

    def reconstruct(self, prepared, stride=0):
        """Reconstruction of a prepared cube (z = μ), values in [0, 1].

        ``stride``: step between tile origins, 1 … T; 0 = T (each pixel through the one
        tile that holds it).  A smaller stride averages every tile holding a pixel,
        which removes the tile grid from score maps at (T / stride)² times the work.
        """
        ptr = _lib.CubeP()
        with self._lock:
            lib.eelsvae_model_reconstruct(self._h, prepared._h, stride, byref(ptr))
        return Cube._wrap(ptr)

    def encode(self, prepared):
        """``(mu, logvar)``: (tiles, latent) float32 each, the non-overlapping tiles
        (stride T) in :meth:`Cube.to_tiles` order."""
        arch = self.options
        ny, nx, _ = prepared.shape
        ty, tx = tiling(ny, nx, arch.tile, 0)
        mu = np.empty((ty * tx, arch.latent), np.float32)
        logvar = np.empty_like(mu)
        with self._lock:
            lib.eelsvae_model_encode(self._h, prepared._h, fptr(mu), fptr(logvar), mu.size)
        return mu, logvar

    def decode(self, z):
        """Tiles from latent vectors: z (n, latent) → (n, T, T, E) float32 (σ of the logits)."""
        arch = self.options
        zz = float32_buffer(z, "z")
        if zz.ndim == 1:
            zz = zz.reshape(1, -1)
        if zz.ndim != 2 or zz.shape[1] != arch.latent:
            raise ValueError("z must be (n, %d); got shape %r" % (arch.latent, np.shape(z)))
        out = np.empty((zz.shape[0], arch.tile, arch.tile, arch.energy_channels), np.float32)
        with self._lock:
            lib.eelsvae_model_decode(self._h, fptr(zz), zz.shape[0], fptr(out), out.size)
        return out

    def detect(self, raw, scorer=None, threshold=None, stride=0):
        """prepare → reconstruct (at ``stride``, see :meth:`reconstruct`) → score → threshold → mask.

        ``scorer``: a :class:`eelsvae.Scorer`; default PCC over the whole energy
        range the model takes (no edge assumed), so any edge's SI is scored as it is.
        Returns a :class:`eelsvae.Detection` whose ``prepared`` and
        ``reconstruction`` are the cubes the scores compare.
        """
        prepared = self.prepare(raw)
        reconstruction = self.reconstruct(prepared, stride)
        result = _detect(prepared, reconstruction, scorer, threshold=threshold)
        result.prepared = prepared
        return result

    def __repr__(self):
        if self.closed:
            return "<Model closed>"
        o = self.options
        binned = " (bins of %d)" % o.energy_bin if o.energy_bin > 1 else ""
        return "<Model T=%d E=%d%s from %g eV, %d conv, latent %d, %d parameters>" % (
            o.tile, o.energy_channels, binned, o.energy_start, len(o.layers), o.latent, self.parameter_count)
