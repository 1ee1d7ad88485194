"""Spectrum-image cubes: NumPy in and out, calibration, files, preprocessing,
synthesis and anomaly injection."""
import collections
import ctypes
import operator
from ctypes import byref, c_double, c_size_t

import numpy as np

from . import _lib
from ._array import Handle, float32_buffer, fptr, mask_buffer, u8ptr
from ._lib import lib
from .enums import Axis
from .options import PreprocessOptions, SynthOptions

__all__ = ["Cube", "AxisCalibration", "load", "synthesize", "disk_mask", "tiling"]


class AxisCalibration(collections.namedtuple("AxisCalibration", "offset scale units")):
    """Calibration of one axis: value(i) = offset + scale·i, in ``units``."""

    def values(self, n):
        """The values of the first ``n`` indices (float64)."""
        return self.offset + self.scale * np.arange(n, dtype=np.float64)


def _as_calibration(value):
    if isinstance(value, AxisCalibration):
        return value
    if isinstance(value, dict):
        return AxisCalibration(value.get("offset", 0.0), value.get("scale", 1.0), value.get("units", ""))
    items = tuple(value)
    if len(items) == 2:
        items += ("",)
    if len(items) != 3:
        raise ValueError("an axis calibration is (offset, scale[, units]), not %r" % (value,))
    return AxisCalibration(*items)


class Cube(Handle):
    """An ny × nx × ne float32 spectrum image owned by the library.

    The samples are row-major with energy fastest, the layout of a NumPy
    (y, x, E) array.  ``to_numpy()`` (and ``np.asarray(cube)``) give a view
    onto the cube's own memory, writable and zero-copy; the view keeps the
    cube alive.  Methods that change the samples (``preprocess``, ``scale``,
    ``gaussian_blur``, …) work in place, so existing views see the change.
    """
    _free_name = "eelsvae_cube_free"
    _kind = "Cube"

    def __init__(self, ny, nx, ne):
        """A zero-filled cube (axes uncalibrated: offset 0, scale 1; energy units 'eV')."""
        ptr = _lib.CubeP()
        lib.eelsvae_cube_create(ny, nx, ne, byref(ptr))
        Handle.__init__(self, ptr)

    @classmethod
    def _wrap(cls, ptr):
        cube = cls.__new__(cls)
        Handle.__init__(cube, ptr)
        return cube

    # ---- NumPy --------------------------------------------------------------------

    @classmethod
    def from_numpy(cls, array, *, y=None, x=None, energy=None):
        """A cube holding a copy of a (y, x, E) array.

        A float32 C-contiguous array is copied once by the library.  Any other
        dtype (integers, float64, …) or layout (Fortran order, strided views)
        is converted into the cube's memory in the same single copy; complex
        or non-numeric data is a TypeError, a shape that is not 3-D a ValueError.
        y, x, energy: optional calibrations (offset, scale[, units]).  Without
        ``energy`` the energy axis is uncalibrated (channel numbers): an energy
        window in eV, a model or :meth:`eelsvae.ModelOptions.fit` refuse it
        (EelsvaeError RANGE) until ``cube.energy_axis = (offset, scale, "eV")``;
        PCA and a whole-axis :class:`eelsvae.Scorer` (the default) do not need it.
        """
        a = np.asarray(array)
        if a.ndim != 3:
            raise ValueError("a cube is a 3-D (y, x, E) array; got shape %r" % (a.shape,))
        if a.dtype.kind not in "biuf":
            raise TypeError("a cube holds real numbers; cannot convert %s to float32" % a.dtype)
        ny, nx, ne = a.shape
        if a.dtype == np.float32 and a.flags.c_contiguous and a.dtype.isnative:
            ptr = _lib.CubeP()
            lib.eelsvae_cube_create_from(fptr(a), ny, nx, ne, byref(ptr))
            cube = cls._wrap(ptr)
        else:
            cube = cls(ny, nx, ne)
            np.copyto(cube.to_numpy(), a, casting="unsafe")
        for axis, cal in ((Axis.Y, y), (Axis.X, x), (Axis.E, energy)):
            if cal is not None:
                cube.set_axis(axis, *_as_calibration(cal))
        return cube

    def to_numpy(self, copy=False, writeable=True):
        """The samples as a (ny, nx, ne) float32 array.

        copy=False (default): a view onto the cube's memory, no copy; writing
        to it changes the cube, and it keeps the cube alive.  copy=True: an
        independent array.
        """
        ny, nx, ne = self.shape
        address = ctypes.cast(lib.eelsvae_cube_data(self._h), ctypes.c_void_p).value
        view = self._view(address, (ny, nx, ne), np.float32, readonly=not writeable)
        return view.copy() if copy else view

    def __array__(self, dtype=None, copy=None):
        view = self.to_numpy(copy=bool(copy))
        return view if dtype is None else view.astype(dtype, copy=False)

    @property
    def data(self):
        """Writable zero-copy (ny, nx, ne) view; ``cube.data[...] = a`` assigns the samples."""
        return self.to_numpy()

    @data.setter
    def data(self, values):
        np.copyto(self.to_numpy(), values, casting="same_kind")

    # ---- shape and calibration ---------------------------------------------------

    @property
    def shape(self):
        ny, nx, ne = c_size_t(), c_size_t(), c_size_t()
        lib.eelsvae_cube_shape(self._h, byref(ny), byref(nx), byref(ne))
        return (ny.value, nx.value, ne.value)

    ny = property(lambda self: self.shape[0], doc="Rows.")
    nx = property(lambda self: self.shape[1], doc="Columns.")
    ne = property(lambda self: self.shape[2], doc="Energy channels.")

    def axis(self, axis):
        """:class:`AxisCalibration` of an axis ('y', 'x', 'e'/'energy' or an :class:`Axis`)."""
        offset, scale, units = c_double(), c_double(), ctypes.c_char_p()
        lib.eelsvae_cube_axis(self._h, int(Axis.coerce(axis)), byref(offset), byref(scale), byref(units))
        return AxisCalibration(offset.value, scale.value, _lib.decode(units.value))

    def set_axis(self, axis, offset, scale, units=None):
        """Calibrate an axis: value(i) = offset + scale·i (scale ≠ 0; units < 16 bytes)."""
        lib.eelsvae_cube_set_axis(self._h, int(Axis.coerce(axis)), offset, scale,
                                  _lib.text(units, "units", _lib.UNITS_MAX))

    y_axis = property(lambda self: self.axis(Axis.Y), lambda self, v: self.set_axis(Axis.Y, *_as_calibration(v)),
                      doc="Calibration of the rows; assign (offset, scale[, units]).")
    x_axis = property(lambda self: self.axis(Axis.X), lambda self, v: self.set_axis(Axis.X, *_as_calibration(v)),
                      doc="Calibration of the columns; assign (offset, scale[, units]).")
    energy_axis = property(lambda self: self.axis(Axis.E),
                           lambda self, v: self.set_axis(Axis.E, *_as_calibration(v)),
                           doc="Calibration of the energy axis; assign (offset, scale[, units]).")

    @property
    def energy(self):
        """Energy of every channel (float64, the energy axis' units)."""
        return self.energy_axis.values(self.ne)

    def energy_window(self, lo, hi):
        """The channels of the energy window [lo, hi] as a ``slice``."""
        first, count = c_size_t(), c_size_t()
        lib.eelsvae_cube_energy_window(self._h, lo, hi, byref(first), byref(count))
        return slice(first.value, first.value + count.value)

    def spectrum(self, y, x):
        """The spectrum at pixel (y, x): a writable ne-sample view into the cube."""
        ptr = ctypes.POINTER(ctypes.c_float)()
        lib.eelsvae_cube_spectrum(self._h, y, x, byref(ptr))
        address = ctypes.cast(ptr, ctypes.c_void_p).value
        return self._view(address, (self.ne,), np.float32)

    # ---- new cubes -------------------------------------------------------------------

    def _derive(self, fn, *args):
        ptr = _lib.CubeP()
        fn(self._h, *args, byref(ptr))
        return Cube._wrap(ptr)

    def copy(self):
        """A deep copy, samples and calibration."""
        return self._derive(lib.eelsvae_cube_copy)

    def crop(self, y0, x0, ny, nx):
        """A new cube of the pixels y0 … y0+ny−1, x0 … x0+nx−1 (offsets moved)."""
        return self._derive(lib.eelsvae_cube_crop, y0, x0, ny, nx)

    def crop_energy(self, lo, hi):
        """A new cube of the channels of the energy window [lo, hi]."""
        return self._derive(lib.eelsvae_cube_crop_energy, lo, hi)

    def bin_energy(self, bin):
        """A new cube whose channel k is the sum of channels k·bin … k·bin + bin − 1 (a coarser
        dispersion, as a detector's binning; counts stay counts).

        The ``ne % bin`` channels left over at the top end are dropped; the energy
        axis moves to the centre of the first bin, offset + (bin − 1)·scale/2, with
        bin·scale per channel.  ``bin`` is 1 … ne.
        """
        if isinstance(bin, bool):
            raise TypeError("bin is a whole number of channels, not %r" % (bin,))
        bin = operator.index(bin)
        if bin < 1:
            raise ValueError("bin must be ≥ 1, not %d" % bin)
        return self._derive(lib.eelsvae_cube_bin_energy, bin)

    # ---- summaries -----------------------------------------------------------------

    def sum_image(self):
        """Sum over energy at every pixel: (ny, nx) float32."""
        ny, nx, _ = self.shape
        out = np.empty((ny, nx), np.float32)
        lib.eelsvae_cube_sum_image(self._h, fptr(out), out.size)
        return out

    def mean_spectrum(self):
        """Mean spectrum over all pixels: (ne,) float32."""
        out = np.empty(self.ne, np.float32)
        lib.eelsvae_cube_mean_spectrum(self._h, fptr(out), out.size)
        return out

    def check_finite(self):
        """Raise EelsvaeError (NUMERIC, naming the pixel) if a sample is NaN or ±Inf."""
        lib.eelsvae_cube_check_finite(self._h)

    # ---- tiles -------------------------------------------------------------------------

    def to_tiles(self, tile, stride=0):
        """Every T × T tile covering the scan, origins every ``stride`` pixels (0 = T, no
        overlap) plus one flush against each far edge: (tiles, T, T, ne) float32, row-major."""
        ny, nx, ne = self.shape
        ty, tx = tiling(ny, nx, tile, stride)
        out = np.empty((ty * tx, tile, tile, ne), np.float32)
        lib.eelsvae_cube_to_tiles(self._h, tile, stride, fptr(out), out.size)
        return out

    @classmethod
    def from_tiles(cls, tiles, ny, nx, stride=0):
        """Reassemble an ny × nx cube from (tiles, T, T, ne) tiles cut at ``stride``, averaging overlaps."""
        t = float32_buffer(tiles, "tiles")
        if t.ndim != 4 or t.shape[1] != t.shape[2]:
            raise ValueError("tiles are a (count, T, T, ne) array; got shape %r" % (t.shape,))
        cube = cls(ny, nx, t.shape[3])
        lib.eelsvae_cube_from_tiles(cube._h, t.shape[1], stride, fptr(t), t.size)
        return cube

    # ---- preprocessing (in place) ---------------------------------------------------

    def gaussian_blur(self, sigma_y, sigma_x, sigma_e):
        """Separable Gaussian blur in place (σ in pixels/channels; 0 leaves an axis alone)."""
        lib.eelsvae_cube_gaussian_blur(self._h, sigma_y, sigma_x, sigma_e)

    def percentiles(self, lo, hi):
        """(value at percentile lo, value at percentile hi) of all samples, NumPy's linear rule."""
        v_lo, v_hi = c_double(), c_double()
        lib.eelsvae_cube_percentiles(self._h, lo, hi, byref(v_lo), byref(v_hi))
        return v_lo.value, v_hi.value

    def scale(self, lo, hi):
        """Min-max scaling in place: v ↦ clip((v − lo)/(hi − lo), 0, 1)."""
        lib.eelsvae_cube_scale(self._h, lo, hi)

    def mean_filter(self, k):
        """k × k spatial mean filter in place (k odd): the k × k block nearest each pixel, shifted inward at the edges."""
        lib.eelsvae_cube_mean_filter(self._h, k)

    def median_filter(self, k):
        """k × k spatial median filter in place (k odd, ≤ 255)."""
        lib.eelsvae_cube_median_filter(self._h, k)

    def preprocess(self, options=None, **fields):
        """The preprocessing chain in place: blur, scaling, mean filter, median filter.

        ``options`` is a :class:`PreprocessOptions` (default: the paper's preset)
        and keyword arguments override its fields (``preset='fast'`` picks a
        preset).  Returns ``(scale_lo, scale_hi)``, the scaling used: pass
        ``use_fixed_scaling=True, scale_lo=…, scale_hi=…`` to apply the
        identical transform to another cube.
        """
        opt = _options(PreprocessOptions, options, fields)
        lo, hi = c_double(), c_double()
        lib.eelsvae_cube_preprocess(self._h, byref(opt.struct), byref(lo), byref(hi))
        return lo.value, hi.value

    def inject_shift(self, mask, lo, hi, shift):
        """Shift the [lo, hi] eV part of every masked spectrum by ``shift`` eV, in place."""
        m = mask_buffer(mask)
        lib.eelsvae_cube_inject_shift(self._h, u8ptr(m), m.size, lo, hi, shift)

    # ---- files and other libraries ---------------------------------------------------

    @classmethod
    def load(cls, path):
        """Load the main signal of any readable file (npy, dm3/dm4, hspy, rpl) as a cube."""
        ptr = _lib.CubeP()
        lib.eelsvae_cube_load(_lib.fspath(path), byref(ptr))
        return cls._wrap(ptr)

    def save(self, path):
        """Save in the format of the extension (.npy, .hspy/.hdf5, .rpl), atomically."""
        lib.eelsvae_cube_save(self._h, _lib.fspath(path))

    def save_npy(self, path):
        """Save as a float32 (y, x, E) .npy file, atomically."""
        lib.eelsvae_cube_save_npy(self._h, _lib.fspath(path))

    def save_map(self, values, path, title=None):
        """Save a (ny, nx) map (scores, a mask) with this cube's spatial calibration,
        as a Signal2D-shaped file (.npy, .hspy or .rpl)."""
        from .signal import numpy_dtype_code
        array = np.asarray(values)
        if array.shape != self.shape[:2]:
            raise ValueError("a map of this cube is %r, not %r" % (self.shape[:2], array.shape))
        array, code = numpy_dtype_code(array)
        lib.eelsvae_map_save(array.ctypes.data_as(ctypes.c_void_p), int(code), self._h,
                             _lib.text(title, "title"), _lib.fspath(path))

    def to_signal(self):
        """The cube as a float32 :class:`eelsvae.Signal` with its calibration."""
        from .signal import Signal
        return Signal.from_cube(self)

    @classmethod
    def from_hyperspy(cls, signal):
        """A cube from a HyperSpy Signal1D spectrum image (data copied, axes calibrated)."""
        from .hyperspy import cube_from_hyperspy
        return cube_from_hyperspy(signal)

    def to_hyperspy(self, title=None):
        """The cube as a HyperSpy EELSSpectrum (a copy) with its axes."""
        from .hyperspy import to_hyperspy
        return to_hyperspy(self, title=title)

    def __repr__(self):
        if self.closed:
            return "<Cube closed>"
        e = self.energy_axis
        return "<Cube %d×%d×%d, E %g … %g %s>" % (self.ny, self.nx, self.ne, e.offset,
                                                  e.offset + e.scale * (self.ne - 1), e.units)


def as_cube(value, what="cube"):
    """A Cube from a Cube or a (y, x, E) array (copied)."""
    if isinstance(value, Cube):
        return value
    if hasattr(value, "axes_manager"):
        return Cube.from_hyperspy(value)
    return Cube.from_numpy(value)


def _options(cls, options, fields):
    preset = fields.pop("preset", None)
    if options is None:
        return cls(preset=preset, **fields) if cls._has_preset else cls(**fields)
    if not isinstance(options, cls):
        raise TypeError("options must be a %s, not %s" % (cls.__name__, type(options).__name__))
    if preset is not None:
        raise TypeError("give either options or preset, not both")
    return options.replace(**fields) if fields else options


def load(path):
    """Load any readable file (npy, dm3/dm4, hspy, rpl) as a :class:`Cube`."""
    return Cube.load(path)


def synthesize(options=None, *, expected=False, **fields):
    """A synthetic BiFeO3-like SI in raw counts (see :class:`SynthOptions` for the fields).

    Returns the noisy cube, or ``(counts, expected)`` with ``expected=True``
    (the noise-free expectation).
    """
    opt = _options(SynthOptions, options, fields)
    counts, clean = _lib.CubeP(), _lib.CubeP()
    lib.eelsvae_synth_generate(byref(opt.struct), byref(counts), byref(clean) if expected else None)
    if expected:
        return Cube._wrap(counts), Cube._wrap(clean)
    return Cube._wrap(counts)


def disk_mask(ny, nx, count, radius, min_separation=0.0, seed=1):
    """``count`` random disks in an ny × nx mask: ``(mask (ny, nx) bool, centres (count, 2) float64 (cy, cx))``."""
    mask = np.zeros((ny, nx), np.uint8)
    centres = np.zeros((count, 2), np.float64)
    lib.eelsvae_disk_mask(ny, nx, count, radius, min_separation, seed, u8ptr(mask),
                          centres.ctypes.data_as(ctypes.POINTER(c_double)))
    return mask.view(np.bool_), centres


def tiling(ny, nx, tile, stride=0):
    """(tiles_y, tiles_x): how many T × T tiles at ``stride`` (0 = T) cover an ny × nx scan."""
    ty, tx = c_size_t(), c_size_t()
    lib.eelsvae_tiling(ny, nx, tile, stride, byref(ty), byref(tx))
    return ty.value, tx.value
