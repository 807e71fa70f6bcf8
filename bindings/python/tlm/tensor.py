"""tlm.Tensor: values, autodiff, and numpy arrays."""

import numbers

from . import _numpy
from ._library import _L, _i32, _i64, _f32
from ._errors import (Error, ArgumentError, ArgumentTypeError, _check, _check_int32,
                      _check_int64, _check_float32, _check_list, _check_instance,
                      _out, _E_SHAPE)
from ._structs import _named
from ._handles import _Handle, _Resource
from .context import _context_of


def _flatten(values, name="values"):
    """(flat list, shape) of a nested list of numbers; elements are named
    by their position in the flat list."""
    if isinstance(values, Tensor):
        raise ArgumentTypeError("%s must be numbers or a nested list, not a "
                                "tlm.Tensor" % name)
    if not isinstance(values, (list, tuple)):
        return [values], []
    if not values:
        raise ArgumentError("%s: an empty list has no shape" % name)
    parts = [_flatten(v, name) for v in values]
    shape = parts[0][1]
    if any(p[1] != shape for p in parts):
        raise Error(_E_SHAPE, "tlm: %s: ragged nested list (rows of different "
                    "shapes)" % name)
    return [x for p in parts for x in p[0]], [len(values)] + shape


def _nest(flat, shape):
    if len(shape) <= 1:
        return list(flat)
    step = len(flat) // shape[0]
    return [_nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


_DTYPES = {"float32": 0, "int32": 1}


def _c_values(flat, dtype, name="values"):
    """A ctypes array of `flat`, every element checked against `dtype`."""
    if dtype == "int32":
        return (_i32 * len(flat))(*[_check_int32("%s[%d]" % (name, i), v)
                                    for i, v in enumerate(flat)])
    return (_f32 * len(flat))(*[_check_float32("%s[%d]" % (name, i), v)
                                for i, v in enumerate(flat)])


def _c_shape(shape, name="shape"):
    dims = [_check_int64("%s[%d]" % (name, i), d) for i, d in enumerate(shape)]
    return (_i64 * len(dims))(*dims), _check_int32("len(%s)" % name, len(dims))


class Tensor(_Handle):
    """A tensor of float32 (values, parameters) or int32 (token ids, class
    targets), 1 to 4 dimensions.

    Tensor(ctx, [[1, 2], [3, 4]]) makes a leaf, from a nested list or a
    numpy array of any numeric dtype (one copy, converted; `shape` may
    reshape it); arithmetic (+, -, *, @ and the methods below) records
    results on the context's tape, and backward() fills the gradients of
    leaves made with requires_grad=True. A result is valid until its
    context's reset(). numpy() gives the values as an array sharing the
    tensor's memory (docs/python.md, "numpy").
    """
    _kind = "tensor"
    _free = "tlm_tensor_free"

    def __init__(self, ctx, values, dtype="float32", requires_grad=False,
                 shape=None):
        self.ctx = _context_of(ctx)
        code = _named(_DTYPES, dtype, "dtype")
        if _numpy.is_array(values):
            self._from_array(values, dtype, code, shape)
        else:
            self._from_list(values, dtype, shape)
        if requires_grad:
            self.requires_grad = True

    def _from_list(self, values, dtype, shape):
        flat, nested_shape = _flatten(values)
        if shape is not None:
            shape = _check_list("shape", shape)
        else:
            shape = nested_shape or [1]
        dims, ndim = _c_shape(shape)
        data = _c_values(flat, dtype)
        n = 1
        for d in shape:
            n *= d
        if n != len(flat):
            raise Error(_E_SHAPE, "tlm: %d values do not fill shape %s" % (len(flat), shape))
        fn = _L().tlm_tensor_from_i32 if dtype == "int32" else _L().tlm_tensor_from_f32
        self._own(_out(fn, self.ctx.handle, ndim, dims, data), self.ctx)

    def _from_array(self, values, dtype, code, shape):
        """One copy, converting, straight into the new tensor's memory."""
        array = _numpy.checked(values, dtype)
        if shape is not None:
            shape = _check_list("shape", shape)
        else:
            shape = list(array.shape) or [1]
        dims, ndim = _c_shape(shape)
        self._own(_out(_L().tlm_tensor_create, self.ctx.handle, code, ndim, dims), self.ctx)
        _numpy.fill(self._shared(pin=False), array)

    def _address(self):
        """The address of the values (tlm_tensor_data_*), or None for a
        tensor that has none to share (a quantized parameter)."""
        if self.dtype == "int32":
            return _L().tlm_tensor_data_i32(self.handle)
        return _L().tlm_tensor_data_f32(self.handle)

    def _shared(self, pin=True):
        address = self._address()
        if address is None:
            return None
        return _numpy.over(self, address, self.shape, self.dtype, pin)

    @classmethod
    def _result(cls, ctx, handle):
        t = cls.__new__(cls)
        t.ctx = ctx
        t._res = _Resource(handle, cls._kind, None, ctx._res, on_reset=True)
        ctx._res.results += 1
        return t

    def close(self):
        """Forget the tensor; a leaf's memory is freed now, or at the next
        reset of its context while results computed since the last reset
        may read it."""
        res = self._res
        if res is None or res.pointer is None:
            return
        res.refuse_if_busy("close the tensor")
        res.finish_close("it was closed")

    # ---- shape and values
    @property
    def shape(self):
        """The dimensions, as a tuple."""
        dims = (_i64 * 4)()
        n = _L().tlm_tensor_shape(self.handle, dims, 4)
        if n < 0:
            _check(n)
        return tuple(dims[i] for i in range(n))

    @property
    def dtype(self):
        """"float32" or "int32"."""
        return "int32" if _L().tlm_tensor_dtype(self.handle) == 1 else "float32"

    def __len__(self):
        return self.shape[0]

    def numel(self):
        """Number of elements."""
        n = _L().tlm_tensor_numel(self.handle)
        if n < 0:
            _check(n)
        return n

    def values(self):
        """The elements as a flat list."""
        n = self.numel()
        if self.dtype == "int32":
            buf = (_i32 * n)()
            _check(_L().tlm_tensor_get_i32(self.handle, buf, n))
        else:
            buf = (_f32 * n)()
            _check(_L().tlm_tensor_get_f32(self.handle, buf, n))
        return list(buf)

    def tolist(self):
        """The elements as a nested list of the tensor's shape."""
        return _nest(self.values(), list(self.shape))

    def item(self):
        """The value of a one-element tensor."""
        v = self.values()
        if len(v) != 1:
            raise Error(_E_SHAPE, "tlm: item() of a tensor of %d elements" % len(v))
        return v[0]

    def set(self, values):
        """Overwrite the elements: a flat or nested list of numel values,
        or a numpy array of numel elements (converted as Tensor() does)."""
        if _numpy.is_array(values):
            array = _numpy.checked(values, self.dtype)
            shared = self._shared(pin=False)
            if shared is None:
                raise Error(_E_SHAPE, "tlm: this tensor's values cannot be written")
            _numpy.fill(shared, array)
            return
        flat, _ = _flatten(values)
        data = _c_values(flat, self.dtype)
        setter = (_L().tlm_tensor_set_i32 if self.dtype == "int32"
                  else _L().tlm_tensor_set_f32)
        _check(setter(self.handle, data, len(flat)))

    def numpy(self, copy=False):
        """The values as a numpy.ndarray of the tensor's shape (float32 or
        int32).

        By default the array shares the tensor's memory (no copy): writes
        to either are seen by both, and ctx.forward() updates it in place.
        While such an array (or a view of it) lives, the tensor and its
        context cannot be closed, nor the context reset when the tensor is
        a result (tlm.Error): delete the arrays first. copy=True returns an
        independent copy. Raises tlm.NumpyMissing without numpy."""
        if not copy:
            shared = self._shared()
            if shared is not None:
                return shared
        n = self.numel()
        array, pointer = _numpy.empty(self.shape, self.dtype, "Tensor.numpy()")
        getter = (_L().tlm_tensor_get_i32 if self.dtype == "int32"
                  else _L().tlm_tensor_get_f32)
        _check(getter(self.handle, pointer, n))
        return array

    def __array__(self, dtype=None, copy=None):
        """np.asarray(tensor): a copy (tensor.numpy() shares memory)."""
        array = self.numpy(copy=True)
        return array if dtype is None else array.astype(dtype)

    def grad_numpy(self):
        """The gradient as a numpy.ndarray of the tensor's shape (a copy)."""
        n = self.numel()
        array, pointer = _numpy.empty(self.shape, "float32", "Tensor.grad_numpy()")
        _check(_L().tlm_tensor_get_grad_f32(self.handle, pointer, n))
        return array

    # ---- gradients
    @property
    def requires_grad(self):
        """True when backward() computes this leaf's gradient."""
        return bool(_L().tlm_tensor_requires_grad(self.handle))

    @requires_grad.setter
    def requires_grad(self, flag):
        _check(_L().tlm_tensor_set_requires_grad(self.handle, 1 if flag else 0))

    @property
    def grad(self):
        """The gradient as a flat list."""
        n = self.numel()
        buf = (_f32 * n)()
        _check(_L().tlm_tensor_get_grad_f32(self.handle, buf, n))
        return list(buf)

    def backward(self):
        """Back-propagate from this one-element tensor (gradients add up;
        Context.zero_grad() clears them)."""
        _check(_L().tlm_backward(self.handle))

    # ---- operations
    def _op(self, name, *args):
        return Tensor._result(self.ctx, _out(getattr(_L(), name), *args))

    def _other(self, other):
        if isinstance(other, Tensor):
            return other
        return Tensor(self.ctx, other)

    @staticmethod
    def _is_scalar(other):
        return isinstance(other, numbers.Real) and not isinstance(other, bool)

    def __add__(self, other):
        if self._is_scalar(other):
            return self._op("tlm_add_scalar", self.handle, _check_float32("scalar", other))
        return self._op("tlm_add", self.handle, self._other(other).handle)

    def __sub__(self, other):
        if self._is_scalar(other):
            return self._op("tlm_add_scalar", self.handle, -_check_float32("scalar", other))
        return self._op("tlm_sub", self.handle, self._other(other).handle)

    def __mul__(self, other):
        if self._is_scalar(other):
            return self._op("tlm_scale", self.handle, _check_float32("scalar", other))
        return self._op("tlm_mul", self.handle, self._other(other).handle)

    __radd__ = __add__
    __rmul__ = __mul__

    def __matmul__(self, other):
        return matmul(self, self._other(other))

    def sum(self):
        """Sum of all elements, shape [1]."""
        return self._op("tlm_sum", self.handle)

    def mean(self):
        """Mean of all elements, shape [1]."""
        return self._op("tlm_mean", self.handle)

    def relu(self):
        return self._op("tlm_relu", self.handle)

    def gelu(self, exact=False):
        return self._op("tlm_gelu", self.handle, 1 if exact else 0)

    def silu(self):
        return self._op("tlm_silu", self.handle)

    def softmax(self):
        """Softmax over the last dimension."""
        return self._op("tlm_softmax", self.handle)

    def log_softmax(self):
        """Log-softmax over the last dimension."""
        return self._op("tlm_log_softmax", self.handle)

    def reshape(self, *shape):
        dims, ndim = _c_shape(shape)
        return self._op("tlm_reshape", self.handle, ndim, dims)

    def transpose(self):
        """Swap the last two dimensions."""
        return self._op("tlm_transpose", self.handle)

    def __repr__(self):
        if self.closed:
            return "Tensor(%s)" % self._res.why if self._res else "Tensor()"
        return "Tensor(%s, shape=%s, dtype=%s)" % (self.tolist(), self.shape, self.dtype)


def matmul(a, b, bias=None, transpose_b=False):
    """a [.., M, K] times b [K, N] (or [N, K] with transpose_b), plus bias."""
    _check_instance("a", a, Tensor)
    _check_instance("b", b, Tensor)
    _check_instance("bias", bias, Tensor, allow_none=True)
    return a._op("tlm_matmul", a.handle, b.handle,
                 bias.handle if bias is not None else None,
                 1 if transpose_b else 0)


def cross_entropy(logits, targets, ignore_index=-1):
    """Mean of -log softmax(logits)[target] over positions; `targets` an
    int32 Tensor or a list of class ids."""
    _check_instance("logits", logits, Tensor)
    ignore_index = _check_int32("ignore_index", ignore_index)
    if not isinstance(targets, Tensor):
        flat, shape = _flatten(targets, "targets")
        for i, v in enumerate(flat):
            _check_int32("targets" if len(flat) == 1 else "targets[%d]" % i, v)
        targets = Tensor(logits.ctx, targets, dtype="int32")
    return logits._op("tlm_cross_entropy", logits.handle, targets.handle, ignore_index)

