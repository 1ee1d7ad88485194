"""Signals: N-D arrays as files hold them (any element type), with axes and metadata."""
import collections
import ctypes
from ctypes import byref, c_double, c_int, c_size_t

import numpy as np

from . import _lib
from ._array import Handle
from ._lib import lib
from .enums import DType, Format

__all__ = ["Signal", "SignalAxis", "detect_format", "format_name", "format_supported", "file_signals",
           "RGBA8", "numpy_dtype", "numpy_dtype_code"]

#: DigitalMicrograph RGB elements, as HyperSpy spells them (hyperspy.misc.rgb_tools.rgba8).
RGBA8 = np.dtype({"names": ["R", "G", "B", "A"], "formats": ["u1", "u1", "u1", "u1"]})

_NUMPY = {
    DType.INT8: np.dtype(np.int8), DType.UINT8: np.dtype(np.uint8),
    DType.INT16: np.dtype(np.int16), DType.UINT16: np.dtype(np.uint16),
    DType.INT32: np.dtype(np.int32), DType.UINT32: np.dtype(np.uint32),
    DType.INT64: np.dtype(np.int64), DType.UINT64: np.dtype(np.uint64),
    DType.FLOAT16: np.dtype(np.float16), DType.FLOAT32: np.dtype(np.float32),
    DType.FLOAT64: np.dtype(np.float64), DType.BOOL: np.dtype(np.bool_),
    DType.COMPLEX64: np.dtype(np.complex64), DType.COMPLEX128: np.dtype(np.complex128),
    DType.RGBA8: RGBA8,
}


def numpy_dtype(code):
    """The NumPy dtype of an :class:`DType` (native byte order; RGBA8 is :data:`RGBA8`)."""
    return _NUMPY[DType.coerce(code)]


def numpy_dtype_code(array):
    """``(array, DType)``: the array in native byte order, C order, and its element type.

    float16 (which the library reads but does not create) becomes float32;
    an RGB(A) structured array of four uint8 fields becomes RGBA8.  Other
    structured or object arrays are a TypeError.  Copies only when needed.
    """
    a = np.asarray(array)
    dt = a.dtype
    if dt.fields is not None:
        if len(dt.fields) == 4 and all(dt.fields[n][0] == np.uint8 for n in dt.names) and dt.itemsize == 4:
            return np.ascontiguousarray(a).view(RGBA8), DType.RGBA8
        raise TypeError("the library has no element type for the structured dtype %s" % dt)
    if dt == np.float16:
        return np.ascontiguousarray(a, dtype=np.float32), DType.FLOAT32
    native = dt.newbyteorder("=")
    for code, candidate in _NUMPY.items():
        if code is not DType.RGBA8 and candidate == native:
            return np.ascontiguousarray(a, dtype=native), code
    raise TypeError("the library has no element type for %s" % dt)


#: One axis of a signal: value(i) = offset + scale·i; ``navigate`` False for the signal axis.
SignalAxis = collections.namedtuple("SignalAxis", "size offset scale name units navigate")


class Signal(Handle):
    """An N-D array with one calibrated axis per dimension, a title and metadata.

    Axes and data are in C order, slowest first, as HyperSpy holds
    ``signal.data`` (a spectrum image is (y, x, E)).
    """
    _free_name = "eelsvae_signal_free"
    _kind = "Signal"

    @classmethod
    def _wrap(cls, ptr):
        sig = cls.__new__(cls)
        Handle.__init__(sig, ptr)
        return sig

    @classmethod
    def load(cls, path, index=None):
        """Read the main signal of a file (or signal ``index``, see :func:`file_signals`)."""
        ptr = _lib.SignalP()
        if index is None:
            lib.eelsvae_signal_load(_lib.fspath(path), byref(ptr))
        else:
            lib.eelsvae_signal_load_index(_lib.fspath(path), index, byref(ptr))
        return cls._wrap(ptr)

    @classmethod
    def from_numpy(cls, array, axes=None, metadata=None):
        """A signal holding a copy of ``array`` (1 … 8 dimensions).

        ``axes``: optional list, one per dimension, of dicts or :class:`SignalAxis`
        with offset, scale, name, units, navigate.  ``metadata``: a dict of
        strings (numbers are written with repr, which round-trips).
        """
        a, code = numpy_dtype_code(array)
        if a.ndim == 0:
            a = a.reshape(1)
        shape = (c_size_t * a.ndim)(*a.shape)
        ptr = _lib.SignalP()
        lib.eelsvae_signal_create(int(code), a.ndim, shape, a.ctypes.data_as(ctypes.c_void_p), byref(ptr))
        sig = cls._wrap(ptr)
        if axes is not None:
            if len(axes) != a.ndim:
                raise ValueError("%d axes given for a %d-D array" % (len(axes), a.ndim))
            for i, ax in enumerate(axes):
                ax = ax._asdict() if isinstance(ax, SignalAxis) else dict(ax)
                ax.pop("size", None)
                sig.set_axis(i, **ax)
        if metadata:
            sig.update_metadata(metadata)
        return sig

    @classmethod
    def from_cube(cls, cube):
        """A float32 (y, x, E) signal of a cube, with its calibration; signal type 'EELS'."""
        ptr = _lib.SignalP()
        lib.eelsvae_signal_from_cube(cube._h, byref(ptr))
        return cls._wrap(ptr)

    # ---- shape and data ---------------------------------------------------------------

    def _shape(self):
        ndim, code = c_size_t(), c_int()
        shape = (c_size_t * _lib.SIGNAL_MAX_DIMS)()
        lib.eelsvae_signal_shape(self._h, byref(ndim), shape, byref(code))
        return tuple(shape[:ndim.value]), DType(code.value)

    @property
    def shape(self):
        return self._shape()[0]

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def dtype_code(self):
        """The library's element type (:class:`DType`)."""
        return self._shape()[1]

    @property
    def dtype(self):
        """The NumPy dtype of the elements (complex64/128 and :data:`RGBA8` included)."""
        return numpy_dtype(self.dtype_code)

    def to_numpy(self, copy=True):
        """The elements as a NumPy array; copy=False gives a read-only view that keeps the signal alive."""
        shape, code = self._shape()
        address = lib.eelsvae_signal_data(self._h)
        view = self._view(address, shape, numpy_dtype(code), readonly=True)
        return view.copy() if copy else view

    def __array__(self, dtype=None, copy=None):
        view = self.to_numpy(copy=bool(copy))
        return view if dtype is None else view.astype(dtype, copy=False)

    # ---- axes -----------------------------------------------------------------------------

    def axis(self, index):
        """:class:`SignalAxis` of dimension ``index`` (C order, slowest first)."""
        offset, scale, navigate = c_double(), c_double(), c_int()
        name, units = ctypes.c_char_p(), ctypes.c_char_p()
        lib.eelsvae_signal_axis(self._h, index, byref(offset), byref(scale), byref(name), byref(units),
                                byref(navigate))
        size = self.shape[index]
        return SignalAxis(size, offset.value, scale.value, _lib.decode(name.value), _lib.decode(units.value),
                          bool(navigate.value))

    @property
    def axes(self):
        """Every axis, slowest first."""
        return [self.axis(i) for i in range(self.ndim)]

    def set_axis(self, index, offset=0.0, scale=1.0, name="", units="", navigate=None):
        """Calibrate an axis; ``navigate`` defaults to True for all but the last axis."""
        if navigate is None:
            navigate = index != self.ndim - 1
        lib.eelsvae_signal_set_axis(self._h, index, offset, scale, _lib.text(name, "axis name", 64),
                                    _lib.text(units, "units", _lib.UNITS_MAX), int(bool(navigate)))

    # ---- metadata ---------------------------------------------------------------------------

    @property
    def metadata(self):
        """The metadata as a dict of strings (a snapshot; change it with :meth:`set_metadata`)."""
        out = {}
        key, value = ctypes.c_char_p(), ctypes.c_char_p()
        for i in range(lib.eelsvae_signal_metadata_count(self._h)):
            lib.eelsvae_signal_metadata_at(self._h, i, byref(key), byref(value))
            out[_lib.decode(key.value)] = _lib.decode(value.value)
        return out

    def get_metadata(self, key, default=None):
        value = lib.eelsvae_signal_metadata_get(self._h, _lib.text(key, "key"))
        return default if value is None else _lib.decode(value)

    def set_metadata(self, key, value):
        if isinstance(value, float):
            value = repr(value)
        lib.eelsvae_signal_metadata_set(self._h, _lib.text(key, "key"), _lib.text(str(value), "value"))

    def update_metadata(self, mapping):
        for key, value in dict(mapping).items():
            self.set_metadata(key, value)

    @property
    def title(self):
        return self.get_metadata("title", "")

    @title.setter
    def title(self, value):
        self.set_metadata("title", value)

    # ---- conversions and files --------------------------------------------------------------

    def to_cube(self):
        """A float32 (y, x, E) :class:`eelsvae.Cube` with the calibration of the axes."""
        from .cube import Cube
        ptr = _lib.CubeP()
        lib.eelsvae_signal_to_cube(self._h, byref(ptr))
        return Cube._wrap(ptr)

    def save(self, path):
        """Write in the format of the extension (.npy, .hspy/.hdf5, .rpl), atomically."""
        lib.eelsvae_signal_save(self._h, _lib.fspath(path))

    def to_hyperspy(self):
        """The signal as a HyperSpy signal with its axes and title (a copy)."""
        from .hyperspy import to_hyperspy
        return to_hyperspy(self)

    def __repr__(self):
        if self.closed:
            return "<Signal closed>"
        return "<Signal %s %s %r>" % ("×".join(map(str, self.shape)), self.dtype_code.name.lower(), self.title)


def detect_format(path):
    """The :class:`Format` of a file, from its first bytes (UNKNOWN when none matches)."""
    code = c_int()
    lib.eelsvae_format_detect(_lib.fspath(path), byref(code))
    return Format(code.value)


def format_name(fmt):
    return _lib.decode(lib.eelsvae_format_name(int(Format.coerce(fmt))))


def format_supported(fmt):
    """Whether this build reads and writes a format (.hspy needs HDF5)."""
    return bool(lib.eelsvae_format_supported(int(Format.coerce(fmt))))


def file_signals(path):
    """``(count, main_index)``: how many signals a file holds and which is the main one."""
    count, main = c_size_t(), c_size_t()
    lib.eelsvae_file_signals(_lib.fspath(path), byref(count), byref(main))
    return count.value, main.value
