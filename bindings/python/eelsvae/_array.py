"""NumPy views onto library memory, and the conversions of array arguments."""
import ctypes
import weakref

import numpy as np

from ._lib import lib

P_float = ctypes.POINTER(ctypes.c_float)
P_u8 = ctypes.POINTER(ctypes.c_uint8)


class _Export:
    """The base object of a NumPy view onto library memory.

    NumPy keeps it as the array's ``base``; it keeps ``owner`` (the Cube,
    Signal or PCA whose memory it is) alive for as long as any view exists.
    """

    def __init__(self, address, shape, dtype, owner, readonly):
        dtype = np.dtype(dtype)
        self.__array_interface__ = {
            "version": 3,
            "data": (address, bool(readonly)),
            "shape": tuple(int(n) for n in shape),
            "typestr": dtype.str,
            "descr": dtype.descr,
        }
        self.owner = owner


class Handle:
    """An owned C handle: freed by close(), by ``with``, or when collected.

    close() refuses (BufferError) while NumPy views onto the handle's memory
    are alive, since freeing would leave them dangling.
    """
    _free_name = None
    _kind = "handle"

    def __init__(self, ptr):
        if not ptr:
            raise ValueError("NULL %s" % self._kind)
        self._ptr = ptr
        self._free = getattr(lib, self._free_name)   # bound now: usable at interpreter exit
        self._exports = weakref.WeakSet()

    @property
    def _h(self):
        ptr = self._ptr
        if ptr is None:
            raise ValueError("operation on a closed %s" % self._kind)
        return ptr

    @property
    def closed(self):
        return self._ptr is None

    def close(self):
        """Free the C object now (idempotent)."""
        if self._ptr is None:
            return
        if len(self._exports):
            raise BufferError("cannot close a %s while %d NumPy view(s) of its memory exist"
                              % (self._kind, len(self._exports)))
        ptr, self._ptr = self._ptr, None
        self._free(ptr)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        ptr = getattr(self, "_ptr", None)
        if ptr is not None:
            self._ptr = None
            self._free(ptr)

    def _view(self, address, shape, dtype, readonly=False):
        """A NumPy array over ``address`` whose lifetime keeps self alive."""
        export = _Export(address, shape, dtype, self, readonly)
        self._exports.add(export)
        return np.asarray(export)

    def __reduce__(self):
        raise TypeError("%s objects cannot be pickled; save them to a file instead" % type(self).__name__)


# ---- conversions of arguments -------------------------------------------------------

def float32_buffer(values, what="scores"):
    """A C-contiguous float32 array of ``values`` (the same array when it already is one)."""
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise TypeError("%s must be real numbers, not %s" % (what, array.dtype))
    return np.ascontiguousarray(array, dtype=np.float32)


def mask_buffer(mask, what="mask"):
    """A C-contiguous uint8 0/1 array of a mask (non-zero = set); a bool array is viewed, not copied."""
    array = np.asarray(mask)
    if array.dtype == np.bool_:
        return np.ascontiguousarray(array).view(np.uint8)
    if array.dtype.kind not in "biuf":
        raise TypeError("%s must be bool or numbers, not %s" % (what, array.dtype))
    return np.ascontiguousarray(array != 0).view(np.uint8)


def fptr(array):
    return array.ctypes.data_as(P_float)


def u8ptr(array):
    return array.ctypes.data_as(P_u8)
