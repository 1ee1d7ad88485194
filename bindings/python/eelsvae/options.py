"""Pythonic option objects over the C option structs.

Each class holds the mirrored ctypes struct, filled by the library's own
``*_options_init_sized`` with the mirror's ``ctypes.sizeof`` (so the
defaults are the library's, not copies of them, and the library writes no
more than the mirror holds), and exposes its fields as attributes.
Keyword arguments override fields;
an unknown name is a ``TypeError``, as for any Python call::

    opt = PreprocessOptions(preset="paper", mean_filter=5)
    opt.sigma = (0.5, 0.5, 0.0)
    opt2 = opt.replace(median_filter=3)      # a modified copy
"""
import collections
import ctypes
import math

from . import _lib
from .enums import LossKind, Preset, ScoreKind
from ._lib import lib

__all__ = ["PreprocessOptions", "SynthOptions", "PcaOptions", "ScorerOptions", "ModelOptions",
           "TrainOptions", "ConvLayer"]


class Options:
    """Base class: a C options struct with attribute access to its fields."""
    _struct = None      # the ctypes mirror
    _enums = {}         # field name -> IntEnum class
    _hidden = ("struct_size",)
    _has_preset = False
    _extra = ()         # Python-only attributes (not in the struct)

    def __init__(self, *args, preset=None, **fields):
        if args:
            raise TypeError("%s takes keyword arguments only" % type(self).__name__)
        object.__setattr__(self, "_c", self._struct())
        if self._has_preset:
            self._fill(Preset.coerce("paper" if preset is None else preset))
        elif preset is not None:
            raise TypeError("%s has no presets" % type(self).__name__)
        else:
            self._fill(None)
        for name in self._extra:
            object.__setattr__(self, name, None)
        self.update(**fields)

    def _fill(self, preset):  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    @classmethod
    def field_names(cls):
        """Names settable on this object, in the struct's order."""
        names = [n for n, _ in cls._struct._fields_ if n not in cls._hidden]
        return tuple(names) + tuple(cls._extra)

    def update(self, **fields):
        """Set several fields at once; an unknown name is a TypeError."""
        known = self.field_names()
        for name, value in fields.items():
            if name not in known:
                raise TypeError("%s has no field %r; fields are %s" % (type(self).__name__, name, ", ".join(known)))
            setattr(self, name, value)
        return self

    def replace(self, **fields):
        """A copy with some fields changed."""
        other = self.copy()
        other.update(**fields)
        return other

    def copy(self):
        other = object.__new__(type(self))
        object.__setattr__(other, "_c", self._struct.from_buffer_copy(self._c))
        for name in self._extra:
            object.__setattr__(other, name, getattr(self, name))
        return other

    def to_dict(self):
        return {name: getattr(self, name) for name in self.field_names()}

    def __getattr__(self, name):
        # Only reached for names that are not ordinary attributes.
        if name.startswith("_") or name not in self.field_names():
            raise AttributeError("%s has no field %r" % (type(self).__name__, name))
        value = getattr(self._c, name)
        if isinstance(value, ctypes.Array):
            return tuple(value)
        if name in self._enums:
            return self._enums[name](value)
        return value

    def __setattr__(self, name, value):
        if name in self._extra or isinstance(getattr(type(self), name, None), property):
            object.__setattr__(self, name, value)
            return
        if name not in self.field_names():
            raise AttributeError("%s has no field %r" % (type(self).__name__, name))
        if name in self._enums:
            value = int(self._enums[name].coerce(value))
        current = getattr(self._c, name)
        if isinstance(current, ctypes.Array):
            values = tuple(value)
            if len(values) != len(current):
                raise ValueError("%s.%s takes %d values, not %d" % (type(self).__name__, name, len(current),
                                                                     len(values)))
            value = type(current)(*values)
        elif isinstance(value, bool):
            value = int(value)
        try:
            setattr(self._c, name, value)
        except TypeError as exc:
            raise TypeError("%s.%s: %s" % (type(self).__name__, name, exc)) from None

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self):
        body = ", ".join("%s=%r" % item for item in self.to_dict().items())
        return "%s(%s)" % (type(self).__name__, body)

    @property
    def struct(self):
        """The underlying ctypes struct (struct_size: the mirror's size, set by the library's init)."""
        return self._c


class PreprocessOptions(Options):
    """``eelsvae_preprocess_options``: blur, robust scaling, spatial filters (presets 'paper', 'fast')."""
    MEAN_FILTER_BELOW_PCC = 0.95  # EELSVAE_MEAN_FILTER_BELOW_PCC
    SPATIAL_BLUR_BELOW_PCC = 0.99  # EELSVAE_SPATIAL_BLUR_BELOW_PCC
    _struct = _lib.PreprocessOptions
    _has_preset = True

    def _fill(self, preset):
        lib.eelsvae_preprocess_options_init_sized(ctypes.byref(self._c), int(preset), ctypes.sizeof(self._c))

    def choose_spatial(self, cube, window):
        """Set the spatial smoothing for the noise of ``cube`` (raw counts) over ``window``.

        ``mean_filter`` 3 where the estimated noise PCC after this chain's
        blur is below ``MEAN_FILTER_BELOW_PCC`` (0.95), else 1; ``sigma`` on
        y and x 0 from ``SPATIAL_BLUR_BELOW_PCC`` (0.99) up, else unchanged;
        as the programs choose them
        (``eelsvae_preprocess_options_choose_spatial``).  ``window`` is
        ``(lo, hi)`` in eV, the range the detection scores.  Returns the
        estimate: the median over pixels of the PCC a perfect reconstruction
        would score.
        """
        lo, hi = window
        pcc = ctypes.c_double()
        lib.eelsvae_preprocess_options_choose_spatial(ctypes.byref(self._c), cube._h, float(lo), float(hi),
                                                      ctypes.byref(pcc))
        return pcc.value


class SynthOptions(Options):
    """``eelsvae_synth_options``: the synthetic BiFeO3-like SI.

    ``SynthOptions.realistic(**fields)`` starts from the library's realistic
    setting instead (the paper's noise level and nuisances measured on real
    SIs: ``eelsvae_synth_options_init_realistic``).
    """
    _struct = _lib.SynthOptions

    def _fill(self, preset):
        lib.eelsvae_synth_options_init_sized(ctypes.byref(self._c), ctypes.sizeof(self._c))

    @classmethod
    def realistic(cls, **fields):
        """The realistic setting, with some fields overridden."""
        opt = cls()
        lib.eelsvae_synth_options_init_realistic_sized(ctypes.byref(opt._c), ctypes.sizeof(opt._c))
        return opt.update(**fields)


class PcaOptions(Options):
    """``eelsvae_pca_options``.

    ``trim_fraction`` (default 0: every spectrum) in (0, 0.5) makes the fit
    robust to a cube that holds its own anomalies: each component is fitted on
    the spectra whose reconstruction error lies within the lowest 1 − f.
    """
    _struct = _lib.PcaOptions

    def _fill(self, preset):
        lib.eelsvae_pca_options_init_sized(ctypes.byref(self._c), ctypes.sizeof(self._c))


class ScorerOptions(Options):
    """``eelsvae_scorer_options``: kind (a :class:`ScoreKind` or its name) and energy window."""
    _struct = _lib.ScorerOptions
    _enums = {"kind": ScoreKind}

    def _fill(self, preset):
        lib.eelsvae_scorer_options_init_sized(ctypes.byref(self._c), ctypes.sizeof(self._c))


#: One encoder convolution: output channels and (y, x, E) kernel, stride, padding.
ConvLayer = collections.namedtuple("ConvLayer", "channels kernel stride padding")


class ModelOptions(Options):
    """``eelsvae_model_options``: the VAE architecture (presets 'paper', 'fast').

    The convolutions are the ``layers`` attribute: a tuple of :class:`ConvLayer`;
    assigning a list of ConvLayer (or of 4-tuples) sets ``conv_layers`` too.
    ``energy_bin`` (presets 1) sums that many adjacent channels of the data into
    one of the network's ``energy_channels``; :meth:`fit` chooses it, the tile and
    the energy range for a given spectrum image.
    """
    _struct = _lib.ModelOptions
    _enums = {"loss": LossKind}
    _hidden = ("struct_size", "conv", "conv_layers")
    _has_preset = True

    def _fill(self, preset):
        lib.eelsvae_model_options_init_sized(ctypes.byref(self._c), int(preset), ctypes.sizeof(self._c))

    @classmethod
    def field_names(cls):
        return Options.field_names.__func__(cls) + ("layers",)

    @classmethod
    def _from_struct(cls, struct):
        other = object.__new__(cls)
        object.__setattr__(other, "_c", struct)
        return other

    def __getattr__(self, name):
        if name == "layers":
            c = self._c
            n = min(c.conv_layers, _lib.MAX_CONV_LAYERS)
            return tuple(ConvLayer(s.channels, tuple(s.kernel), tuple(s.stride), tuple(s.padding))
                         for s in c.conv[:n])
        return Options.__getattr__(self, name)

    def __setattr__(self, name, value):
        if name != "layers":
            Options.__setattr__(self, name, value)
            return
        layers = [ConvLayer(*layer) if not isinstance(layer, dict) else ConvLayer(**layer) for layer in value]
        if not 1 <= len(layers) <= _lib.MAX_CONV_LAYERS:
            raise ValueError("a model has 1 … %d conv layers, not %d" % (_lib.MAX_CONV_LAYERS, len(layers)))
        ctypes.memset(ctypes.addressof(self._c.conv), 0, ctypes.sizeof(self._c.conv))
        for spec, layer in zip(self._c.conv, layers):
            spec.channels = layer.channels
            for field in ("kernel", "stride", "padding"):
                triple = tuple(getattr(layer, field))
                if len(triple) != 3:
                    raise ValueError("ConvLayer.%s takes 3 values (y, x, E), not %r" % (field, triple))
                setattr(spec, field, (ctypes.c_size_t * 3)(*triple))
        self._c.conv_layers = len(layers)

    def fit(self, cube, window=None):
        """Adapt the architecture's input to a spectrum image, in place; returns self.

        ``eelsvae_model_options_fit``: the current ``tile`` and ``energy_channels``
        are upper bounds.  ``tile`` becomes the largest that fits the scan and that
        the spatial strides divide; the channels of ``window`` (``(lo, hi)`` eV, an
        :class:`eelsvae.Edge` or an edge name; None = the whole energy axis) are
        binned (``energy_bin``) by the smallest factor that brings them within
        ``energy_channels``, rounded to a multiple of the energy strides, and
        ``energy_start`` set to the first channel taken.  E.g. the 'fast' preset
        on a 1024-channel axis: energy_bin 7, 144 channels; a 6-pixel-wide scan:
        tile 4.  On failure (EelsvaeError: an uncalibrated energy axis or a range
        off it is RANGE, a scan smaller than the smallest tile DIMENSION) the
        options are left unchanged.  ``options.copy().fit(cube)`` keeps the original.
        """
        from .cube import as_cube          # late: cube.py imports this module
        from .score import _as_window
        cube = as_cube(cube)
        window = _as_window(window)
        lo, hi = (math.nan, math.nan) if window is None else window
        lib.eelsvae_model_options_fit(ctypes.byref(self._c), cube._h, lo, hi)
        return self


class TrainOptions(Options):
    """``eelsvae_train_options`` (presets 'paper', 'fast').

    ``preprocess`` (a :class:`PreprocessOptions`, None = the paper's chain) and
    ``checkpoint_path`` are Python attributes; the progress callback is an
    argument of :meth:`eelsvae.Model.train`.  ``min_tiles`` (presets 64): where
    the cubes give fewer tiles at ``tile_stride``, a smaller step is taken so that
    a small scan still yields that many (0 = always ``tile_stride``);
    ``min_steps`` (presets 0): raise ``epochs`` so that at least this many
    optimiser steps are taken (0 = exactly ``epochs``);
    ``outlier_cut`` (presets 0 = off): outlier mode, for training on the very
    scan that is analysed — after a warm-up of a third of the epochs, every
    epoch leaves out of the reconstruction loss the pixels whose 1 − PCC
    against their reconstruction exceeds median + ``outlier_cut`` · 1.4826 ·
    MAD (3 is eelsvae-train's default), so the model does not learn the
    anomalies it should find.
    """
    _struct = _lib.TrainOptions
    _hidden = ("struct_size", "preprocess", "checkpoint_path", "progress", "progress_user")
    _extra = ("preprocess", "checkpoint_path")
    _has_preset = True

    def _fill(self, preset):
        lib.eelsvae_train_options_init_sized(ctypes.byref(self._c), int(preset), ctypes.sizeof(self._c))
