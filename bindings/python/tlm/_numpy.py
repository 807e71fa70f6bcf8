"""numpy, when it is installed: tensors to and from numpy.ndarray.

numpy is optional. It is imported at the first call that needs it; without
it those calls raise tlm.NumpyMissing (a tlm.Error) and the rest of the
binding works.

Memory. tlm_tensor_data_f32() / _i32() give the address of a tensor's
values, valid as long as the tensor, so Tensor.numpy() returns an array
over that memory, no copy. Such an array pins the tensor: while it (or
any view of it) lives, closing the tensor or its context, and resetting
the context when the tensor is a result, raise tlm.Error instead of
freeing memory numpy still reads. tlm has no call that adopts memory it
did not allocate, so a tensor made from an array costs exactly one copy
(made into the new tensor's memory, converting the dtype on the way).
"""

import ctypes
import weakref

from ._errors import (Error, ArgumentError, ArgumentTypeError, NumpyMissing,
                      _E_SHAPE)

_FLOAT32_MAX = 3.4028234663852886e38
_INT32_MIN, _INT32_MAX = -2**31, 2**31 - 1

_numpy = None
_tried = False


def module():
    """numpy, or None when it cannot be imported."""
    global _numpy, _tried
    if not _tried:
        _tried = True
        try:
            import numpy
            _numpy = numpy
        except ImportError:
            _numpy = None
    return _numpy


def require(what):
    """numpy, or raise NumpyMissing naming `what` needed it."""
    np = module()
    if np is None:
        raise NumpyMissing(what)
    return np


def is_array(value):
    """True for a numpy array or numpy scalar (never imports numpy: an
    array exists only when numpy was imported)."""
    np = _numpy if _tried else (module() if type(value).__module__ == "numpy" else None)
    return np is not None and isinstance(value, (np.ndarray, np.generic))


def _position(np, array, flat_index):
    return tuple(int(i) for i in np.unravel_index(int(flat_index), array.shape))


def checked(values, dtype, name="values"):
    """`values` as a numpy array whose every element fits `dtype`
    ("float32" or "int32"), not yet converted: raises tlm.ArgumentError
    naming the first element that does not fit, ArgumentTypeError for an
    array that does not hold numbers."""
    np = require("a numpy array as tensor values")
    a = np.asarray(values)
    if a.dtype.kind not in "biuf":
        raise ArgumentTypeError("%s: a numpy array of dtype %s cannot become a "
                                "tensor (numbers only: bool, integer or floating "
                                "point)" % (name, a.dtype))
    if a.size == 0:
        raise ArgumentError("%s: an empty array (shape %s) has no elements"
                            % (name, a.shape))
    if dtype == "float32":
        if a.dtype.kind == "f" and a.dtype.itemsize > 4:
            too_large = np.isfinite(a) & (np.abs(a) > _FLOAT32_MAX)
            if too_large.any():
                i = np.argmax(too_large.reshape(-1))
                raise ArgumentError("%s%s = %r is too large for a float32 (the largest "
                                    "is about 3.4e38)" % (name, _position(np, a, i),
                                                          float(a.reshape(-1)[i])))
        return a
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.trunc(a))
        if bad.any():
            i = np.argmax(bad.reshape(-1))
            raise ArgumentError("%s%s = %r is not an integer (an int32 tensor)"
                                % (name, _position(np, a, i), float(a.reshape(-1)[i])))
    if a.dtype.kind != "b":
        low, high = a.min(), a.max()
        if low < _INT32_MIN or high > _INT32_MAX:
            flat = a.reshape(-1)
            i = np.argmin(flat) if low < _INT32_MIN else np.argmax(flat)
            raise ArgumentError("%s%s = %d is outside the range of int32 (%d..%d)"
                                % (name, _position(np, a, i), int(flat[i]),
                                   _INT32_MIN, _INT32_MAX))
    return a


class _SharedMemory:
    """The base object of an array over a tensor's memory. A pinning one
    holds the tensor's resource (not the Tensor: numpy arrays are opaque
    to the garbage collector, so an array holding Python objects would
    make every cycle through it uncollectable) and counts as a view of it
    until numpy lets go of it (the last array over it is gone); a tensor
    or context collected meanwhile is freed then. A non-pinning one (a
    temporary array inside a method) holds the tensor."""

    def __init__(self, tensor, address, shape, typestr, pin):
        self.__array_interface__ = {"version": 3, "shape": tuple(shape),
                                    "typestr": typestr, "data": (address, False)}
        if pin:
            res = tensor._res
            self.resource = res
            res.views += 1
            # Not at exit: an array may outlive the finalizers there, and
            # the process's end frees the memory anyway.
            weakref.finalize(self, res.view_released).atexit = False
        else:
            self.tensor = tensor


def over(tensor, address, shape, dtype, pin=True):
    """A numpy array over `shape` values of `dtype` at `address` (memory
    of `tensor`)."""
    np = require("Tensor.numpy()")
    typestr = "<f4" if dtype == "float32" else "<i4"
    return np.asarray(_SharedMemory(tensor, address, shape, typestr, pin))


def empty(shape, dtype, what):
    """A new C-contiguous array and a ctypes pointer to its first value."""
    np = require(what)
    a = np.empty(shape, dtype=np.float32 if dtype == "float32" else np.int32)
    ctype = ctypes.c_float if dtype == "float32" else ctypes.c_int32
    return a, a.ctypes.data_as(ctypes.POINTER(ctype))


def fill(destination, source, name="values"):
    """Copy `source` (an array of the same number of elements) into
    `destination`, converting."""
    np = require("a numpy array as tensor values")
    if source.size != destination.size:
        raise Error(_E_SHAPE, "tlm: %s: %d values (shape %s) for a tensor of %d"
                    % (name, source.size, source.shape, destination.size))
    np.copyto(destination, source.reshape(destination.shape), casting="unsafe")
