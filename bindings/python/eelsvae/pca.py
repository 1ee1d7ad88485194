"""The PCA baseline: fit a basis to a cube, project, reconstruct, save, load."""
import ctypes
from ctypes import byref, c_size_t

import numpy as np

from . import _lib
from ._array import Handle, fptr
from ._lib import lib
from .cube import Cube, _options, as_cube
from .options import PcaOptions

__all__ = ["PCA"]


class PCA(Handle):
    """A fitted k-component PCA basis of ne-channel spectra."""
    _free_name = "eelsvae_pca_free"
    _kind = "PCA"

    @classmethod
    def _wrap(cls, ptr):
        pca = cls.__new__(cls)
        Handle.__init__(pca, ptr)
        return pca

    @classmethod
    def fit(cls, cube, components=None, options=None, **fields):
        """Fit to a :class:`Cube` (or a (y, x, E) array).

        ``components`` is k (default 4); other :class:`PcaOptions` fields
        (center, poisson_normalize, seed, tolerance, max_iterations,
        trim_fraction) as keywords.  ``trim_fraction=f`` in (0, 0.5) fits a basis
        robust to anomalies in the cube itself (the spectra worst reconstructed,
        a fraction f, are left out of each component's fit); the default 0 fits
        every spectrum.  The energy axis is not read: a cube of any edge, or an
        uncalibrated one, is fitted alike.
        """
        if components is not None:
            fields["components"] = components
        opt = _options(PcaOptions, options, fields)
        cube = as_cube(cube)
        ptr = _lib.PcaP()
        lib.eelsvae_pca_fit(cube._h, byref(opt.struct), byref(ptr))
        return cls._wrap(ptr)

    @classmethod
    def load(cls, path):
        """Load a basis written by :meth:`save` (checksum and version checked)."""
        ptr = _lib.PcaP()
        lib.eelsvae_pca_load(_lib.fspath(path), byref(ptr))
        return cls._wrap(ptr)

    def save(self, path):
        """Save (versioned header, CRC-32, atomic rename)."""
        lib.eelsvae_pca_save(self._h, _lib.fspath(path))

    @property
    def shape(self):
        """(components k, channels ne)."""
        k, ne = c_size_t(), c_size_t()
        lib.eelsvae_pca_shape(self._h, byref(k), byref(ne))
        return k.value, ne.value

    n_components = property(lambda self: self.shape[0])
    n_channels = property(lambda self: self.shape[1])

    @property
    def components(self):
        """The k orthonormal components, (k, ne) float32 (a read-only view; keeps the basis alive)."""
        address = ctypes.cast(lib.eelsvae_pca_components(self._h), ctypes.c_void_p).value
        return self._view(address, self.shape, np.float32, readonly=True)

    @property
    def explained_variance_ratio(self):
        """Fraction of the variance each component explains, (k,) float64, decreasing."""
        k = self.n_components
        out = np.empty(k, np.float64)
        lib.eelsvae_pca_explained_variance_ratio(self._h, out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)), k)
        return out

    def project(self, cube):
        """Coordinates of every spectrum in the basis: (ny, nx, k) float32."""
        cube = as_cube(cube)
        ny, nx, _ = cube.shape
        out = np.empty((ny, nx, self.n_components), np.float32)
        lib.eelsvae_pca_project(self._h, cube._h, fptr(out), out.size)
        return out

    def reconstruct(self, cube):
        """The rank-k reconstruction of a cube, in its original units (a new :class:`Cube`)."""
        cube = as_cube(cube)
        ptr = _lib.CubeP()
        lib.eelsvae_pca_reconstruct(self._h, cube._h, byref(ptr))
        return Cube._wrap(ptr)

    def __repr__(self):
        return "<PCA closed>" if self.closed else "<PCA %d components × %d channels>" % self.shape
