"""HyperSpy interoperability (optional: HyperSpy is imported only when used).

    cube = eelsvae.Cube.from_hyperspy(si)            # a Signal1D SI, data + axes
    maps = eelsvae.to_hyperspy(result.scores, like=cube, title="PCC")   # a Signal2D

HyperSpy holds an SI as data (y, x, E) with axes in that array order, the
cube's own layout, so data moves with at most one copy (none when the SI is
already float32 and C-contiguous).
"""
import numpy as np

from .cube import AxisCalibration, Cube
from .enums import Axis

__all__ = ["cube_from_hyperspy", "to_hyperspy", "hyperspy_available"]

_ENERGY_NAME = "Energy loss"


def _signals():
    try:
        import hyperspy.signals as signals
    except ImportError as exc:  # pragma: no cover - exercised only without HyperSpy
        raise ImportError("this needs HyperSpy (Debian: python3-hyperspy)") from exc
    return signals


def hyperspy_available():
    """Whether HyperSpy can be imported (without importing it: that takes seconds)."""
    import importlib.util
    return importlib.util.find_spec("hyperspy") is not None


def _eels_class():
    """EELSSpectrum where it lives (exspy for HyperSpy ≥ 2, hyperspy.signals before), else None."""
    try:
        from exspy.signals import EELSSpectrum
        return EELSSpectrum
    except ImportError:
        pass
    return getattr(_signals(), "EELSSpectrum", None)


def _units(axis):
    units = getattr(axis, "units", "")
    return units if isinstance(units, str) and units != "<undefined>" else ""


def _check_uniform(axis):
    if not getattr(axis, "is_uniform", True):
        raise ValueError("axis %r is not uniform; a cube needs offset + scale·i calibration" % (axis.name,))


def _fit_units(units):
    data = units.encode("utf-8")
    while len(data) >= 16:               # EELSVAE_UNITS_MAX, NUL included
        units = units[:-1]
        data = units.encode("utf-8")
    return units


def cube_from_hyperspy(signal):
    """A :class:`Cube` from a HyperSpy Signal1D (an SI (y, x | E), a line (x | E) or one spectrum).

    Data is copied into the cube (converted to float32); the offsets, scales
    and units of the axes become the cube's calibration (units longer than
    15 bytes are cut).
    """
    am = signal.axes_manager
    if am.signal_dimension != 1:
        raise ValueError("a cube needs a Signal1D (one signal axis); this signal has %d" % am.signal_dimension)
    if am.navigation_dimension > 2:
        raise ValueError("a cube has at most 2 navigation axes (y, x); this signal has %d"
                         % am.navigation_dimension)
    axes = sorted(am._axes, key=lambda a: a.index_in_array)
    for a in axes:
        _check_uniform(a)
    data = np.asarray(signal.data)
    energy = am.signal_axes[0]
    if energy.index_in_array != data.ndim - 1:      # a transposed view: energy must be fastest
        data = np.moveaxis(data, energy.index_in_array, -1)
        axes = [a for a in axes if a is not energy] + [energy]
    nav = [a for a in axes if a is not energy]
    data = data.reshape((1,) * (3 - data.ndim) + data.shape)
    cube = Cube.from_numpy(data)
    for which, axis in zip((Axis.Y, Axis.X)[2 - len(nav):], nav):
        cube.set_axis(which, axis.offset, axis.scale, _fit_units(_units(axis)))
    cube.set_axis(Axis.E, energy.offset, energy.scale, _fit_units(_units(energy)) or "eV")
    return cube


def _axis_dict(name, size, cal, navigate):
    return {"name": name, "size": int(size), "offset": float(cal.offset), "scale": float(cal.scale),
            "units": cal.units or None, "navigate": bool(navigate)}


def _with_title(sig, title, signal_type=None):
    if title:
        sig.metadata.General.title = title
    if signal_type:
        sig.set_signal_type(signal_type)
    return sig


def to_hyperspy(obj, like=None, title=None, copy=True):
    """A HyperSpy signal of a cube, a 2-D map, or an :class:`eelsvae.Signal`.

    * a :class:`Cube` → EELSSpectrum (Signal1D with signal type 'EELS' when
      EELSSpectrum is not available), axes y, x (navigation) and energy;
      ``copy=False`` shares the cube's memory (the signal keeps it alive);
    * a (ny, nx) array (a score map, a mask) → Signal2D, with the spatial
      calibration of ``like`` (a Cube) when given;
    * an :class:`eelsvae.Signal` → Signal1D/Signal2D/BaseSignal by its number of
      signal axes, with its axes, title and signal type.
    """
    signals = _signals()
    from .signal import Signal
    if isinstance(obj, Cube):
        ny, nx, ne = obj.shape
        axes = [_axis_dict("y", ny, obj.y_axis, True), _axis_dict("x", nx, obj.x_axis, True),
                _axis_dict(_ENERGY_NAME, ne, obj.energy_axis, False)]
        cls = _eels_class()
        sig = (cls or signals.Signal1D)(obj.to_numpy(copy=copy), axes=axes)
        return _with_title(sig, title, None if cls else "EELS")
    if isinstance(obj, Signal):
        axes = [_axis_dict(a.name or "axis%d" % i, a.size, AxisCalibration(a.offset, a.scale, a.units),
                           a.navigate) for i, a in enumerate(obj.axes)]
        n_signal = sum(not a["navigate"] for a in axes)
        cls = {1: signals.Signal1D, 2: signals.Signal2D}.get(n_signal, signals.BaseSignal)
        sig = cls(obj.to_numpy(copy=True), axes=axes)
        meta = obj.metadata
        return _with_title(sig, title or meta.get("title"), meta.get("signal_type"))
    data = np.array(obj, copy=copy) if copy else np.asarray(obj)
    if data.ndim != 2:
        raise ValueError("to_hyperspy takes a Cube, a Signal or a 2-D map; got shape %r" % (data.shape,))
    if like is not None:
        if like.shape[:2] != data.shape:
            raise ValueError("the map is %r but the cube's scan is %r" % (data.shape, like.shape[:2]))
        cal_y, cal_x = like.y_axis, like.x_axis
    else:
        cal_y = cal_x = AxisCalibration(0.0, 1.0, "")
    axes = [_axis_dict("y", data.shape[0], cal_y, False), _axis_dict("x", data.shape[1], cal_x, False)]
    return _with_title(signals.Signal2D(data, axes=axes), title)
