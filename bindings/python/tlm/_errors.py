"""tlm.Error and its subclasses, and the checks every argument passes
before it reaches C."""

import math
import numbers
import operator
import os
import struct

from . import _library
from ._library import _L, _c, _p, _i32, _i64, _u32, _u64, _f32, _f64, _sz


# tlm's statuses (include/tlm.h, TLM_STATUS_TABLE): pinned values, so the
# names are known here even when the library could not be loaded.
_STATUS_NAMES = {
    0: "TLM_OK", -1: "TLM_E_INVALID", -2: "TLM_E_NOMEM", -3: "TLM_E_SHAPE",
    -4: "TLM_E_RANGE", -5: "TLM_E_OVERFLOW", -6: "TLM_E_IO", -7: "TLM_E_FORMAT",
    -8: "TLM_E_VERSION", -9: "TLM_E_STATE", -10: "TLM_E_UNSUPPORTED",
    -11: "TLM_E_NONFINITE", -12: "TLM_E_CANCELLED", -13: "TLM_E_THREAD",
    -14: "TLM_E_INTERNAL",
}


class Error(Exception):
    """A tlm call failed: .status (negative TLM_E_* code), .name, and tlm's
    message naming the call and the argument at fault."""

    def __init__(self, status, message):
        self.status = status
        name = _STATUS_NAMES.get(status)
        if name is None and _library._lib is not None:  # a status newer than this file
            name = _library._lib.tlm_status_name(status).decode()
        self.name = name or "TLM_E_UNKNOWN"
        super().__init__(message)


_E_INVALID, _E_SHAPE, _E_RANGE, _E_IO, _E_STATE, _E_UNSUPPORTED, _E_CANCELLED = \
    -1, -3, -4, -6, -9, -10, -12


class ArgumentError(Error, ValueError):
    """An argument refused by the binding before it reaches C: a value
    outside its C type's range, or (as ArgumentTypeError, also a TypeError)
    of the wrong type. Status TLM_E_INVALID."""

    def __init__(self, message):
        super().__init__(_E_INVALID, "tlm: " + message)


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument of the wrong type (a tlm.ArgumentError and a TypeError)."""


class LibraryNotFound(Error, OSError):
    """libtlm could not be loaded (TLM_E_IO; also an OSError): the message
    lists every place tried."""

    def __init__(self, message):
        super().__init__(_E_IO, message)


class NumpyMissing(Error, ImportError):
    """A call that takes or returns numpy arrays, made where numpy is not
    installed (TLM_E_UNSUPPORTED; also an ImportError)."""

    def __init__(self, what):
        super().__init__(_E_UNSUPPORTED, "tlm: %s needs numpy, which this Python "
                         "cannot import (install python3-numpy, or pip install "
                         "numpy)" % what)


def _check(status):
    if status != 0:
        raise Error(status, _L().tlm_last_error().decode("utf-8", "replace"))


# ------------------------------------------------------ argument checks
# ctypes converts a Python int to a C integer modulo 2**bits and a float to
# float32 with overflow to infinity, silently; every value passes one of
# these first.

_SIZE_T_BITS = 8 * _c.sizeof(_sz)
_INT_RANGES = {
    "int32": (-2**31, 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-2**63, 2**63 - 1),
    "uint64": (0, 2**64 - 1),
    "size_t": (0, 2**_SIZE_T_BITS - 1),
}


def _type_name(value):
    return type(value).__name__


def _check_integer(ctype, name, value):
    # bool is an int in Python, but True for a count is a mistake.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError("%s must be an integer (C %s), not %s %r"
                                % (name, ctype, _type_name(value), value))
    value = operator.index(value)
    low, high = _INT_RANGES[ctype]
    if not low <= value <= high:
        raise ArgumentError("%s = %d is outside the range of its C type %s (%d..%d)"
                            % (name, value, ctype, low, high))
    return value


def _check_int32(name, value):
    return _check_integer("int32", name, value)


def _check_uint32(name, value):
    return _check_integer("uint32", name, value)


def _check_int64(name, value):
    return _check_integer("int64", name, value)


def _check_uint64(name, value):
    return _check_integer("uint64", name, value)


def _check_size(name, value):
    return _check_integer("size_t", name, value)


def _check_float(name, value):
    """A C double: any real number (NaN and infinity are C's to judge)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError("%s must be a number, not %s %r"
                                % (name, _type_name(value), value))
    return float(value)


def _check_float32(name, value):
    """A C float: a real number whose magnitude fits a float32."""
    value = _check_float(name, value)
    if math.isfinite(value):
        try:
            rounded = struct.unpack("f", struct.pack("f", value))[0]
        except OverflowError:  # some Pythons refuse, others give infinity
            rounded = math.inf
        if math.isinf(rounded):
            raise ArgumentError("%s = %r is too large for a float32 (the largest is "
                                "about 3.4e38)" % (name, value))
    return value


def _check_bytes(name, value):
    """Text for C: str (as UTF-8) or a bytes-like object."""
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ArgumentError("%s has no UTF-8 form (%s)" % (name, e)) from None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise ArgumentTypeError("%s must be str or bytes, not %s"
                            % (name, _type_name(value)))


def _check_cstring(name, value):
    """A NUL-terminated C string: C would stop at an embedded NUL."""
    data = _check_bytes(name, value)
    if b"\0" in data:
        raise ArgumentError("%s holds a NUL byte (C would read only %r)"
                            % (name, data.split(b"\0", 1)[0]))
    return data


def _check_path(name, value):
    if not isinstance(value, (str, bytes, os.PathLike)):
        raise ArgumentTypeError("%s must be a path (str, bytes or os.PathLike), "
                                "not %s" % (name, _type_name(value)))
    try:
        path = os.fsencode(value)
    except (TypeError, UnicodeError) as e:
        raise ArgumentError("%s: %s" % (name, e)) from None
    return _check_cstring(name, path)


def _check_instance(name, value, cls, allow_none=False):
    if value is None and allow_none:
        return None
    if not isinstance(value, cls):
        raise ArgumentTypeError("%s must be a tlm.%s%s, not %s"
                                % (name, cls.__name__, " or None" if allow_none else "",
                                   _type_name(value)))
    return value


def _check_list(name, value):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ArgumentTypeError("%s must be a list, not %s" % (name, _type_name(value)))
    return list(value)


# How each C type of a settings field is checked.
_FIELD_CHECKS = {_i32: _check_int32, _u32: _check_uint32, _i64: _check_int64,
                 _u64: _check_uint64, _sz: _check_size, _f32: _check_float32,
                 _f64: _check_float}


def _set_fields(params, settings, what):
    """Set numeric fields of a settings struct from keywords, each checked
    against its C type."""
    types = dict(params._fields_)
    for key, value in settings.items():
        check = _FIELD_CHECKS.get(types.get(key))
        if key == "struct_size" or check is None:
            raise ArgumentError("%s has no setting %r" % (what, key))
        setattr(params, key, check(key, value))


def _out(fn, *args):
    """Call a create-style function whose out-pointer comes first."""
    handle = _p()
    _check(fn(_c.byref(handle), *args))
    return handle.value

