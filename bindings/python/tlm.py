"""tlm from Python: a ctypes binding of libtlm (no compiled extension).

    import tlm
    with tlm.Context() as ctx:
        model = tlm.Model.load(ctx, "my.tlm")
        text = model.generate("Once upon a time", max_tokens=100,
                              temperature=0.8, on_text=print)

The shared library is found, in this order, at:
  1. the path in the environment variable TLM_LIBRARY (a file, or a
     directory holding libtlm.so);
  2. the build directory of the checkout this file lives in
     (build/lib/libtlm.so, two levels up from bindings/python);
  3. the system's library path (ctypes.util.find_library("tlm"), then
     libtlm.so.0).

Every failing call raises tlm.Error, whose message is tlm's own (the
function, the argument and the values at fault); .status holds the
negative TLM_E_* code and .name its name ("TLM_E_INVALID", ...).

Handles are freed when their Python object is garbage-collected, or
explicitly with close() (every class is also a context manager). Objects
keep the context they were made in alive; closing a context frees every
tensor made in it.
"""

import ctypes
import ctypes.util
import math
import os
import weakref

__all__ = [
    "Error", "version", "version_number", "Context", "Tensor", "Tokenizer",
    "Model", "Sampler", "Trainer", "train", "cross_entropy", "matmul",
    "load_library",
]

# ---------------------------------------------------------------- library

_c = ctypes
_p = _c.c_void_p
_i32, _i64, _u32, _u64 = _c.c_int32, _c.c_int64, _c.c_uint32, _c.c_uint64
_int, _f32, _f64, _sz = _c.c_int, _c.c_float, _c.c_double, _c.c_size_t
_str = _c.c_char_p


def _candidates():
    env = os.environ.get("TLM_LIBRARY")
    if env:
        if os.path.isdir(env):
            yield os.path.join(env, "libtlm.so")
        else:
            yield env
    here = os.path.dirname(os.path.abspath(__file__))
    top = os.path.dirname(os.path.dirname(here))
    yield os.path.join(top, "build", "lib", "libtlm.so")
    found = ctypes.util.find_library("tlm")
    if found:
        yield found
    yield "libtlm.so.0"


_lib = None


def load_library(path=None):
    """Load libtlm (from `path`, or as described in the module's help) and
    declare its functions; called on first use. Returns the ctypes CDLL."""
    global _lib
    if _lib is not None and path is None:
        return _lib
    tried = []
    for candidate in ([path] if path else _candidates()):
        if os.sep in candidate and not os.path.exists(candidate):
            tried.append(candidate + " (no such file)")
            continue
        try:
            lib = ctypes.CDLL(candidate)
        except OSError as e:
            tried.append("%s (%s)" % (candidate, e))
            continue
        _declare(lib)
        _lib = lib
        return lib
    raise OSError("tlm: libtlm not found; set TLM_LIBRARY to its path. Tried: "
                  + "; ".join(tried))


# name: (restype, argtypes). Status-returning functions have restype _int.
_FUNCTIONS = {
    "tlm_version_number": (_u32, []),
    "tlm_version_string": (_str, []),
    "tlm_strerror": (_str, [_int]),
    "tlm_status_name": (_str, [_int]),
    "tlm_last_error": (_str, []),
    "tlm_context_params_init": (_int, [_p]),
    "tlm_context_create": (_int, [_c.POINTER(_p), _p]),
    "tlm_context_free": (None, [_p]),
    "tlm_context_thread_count": (_i32, [_p]),
    "tlm_context_set_seed": (_int, [_p, _u64]),
    "tlm_context_zero_grad": (_int, [_p]),
    "tlm_context_forward": (_int, [_p]),
    "tlm_context_reset": (_int, [_p]),
    "tlm_context_set_grad_enabled": (_int, [_p, _i32]),
    "tlm_tensor_from_f32": (_int, [_c.POINTER(_p), _p, _i32, _c.POINTER(_i64), _c.POINTER(_f32)]),
    "tlm_tensor_from_i32": (_int, [_c.POINTER(_p), _p, _i32, _c.POINTER(_i64), _c.POINTER(_i32)]),
    "tlm_tensor_free": (None, [_p]),
    "tlm_tensor_ndim": (_i32, [_p]),
    "tlm_tensor_shape": (_i32, [_p, _c.POINTER(_i64), _sz]),
    "tlm_tensor_numel": (_i64, [_p]),
    "tlm_tensor_dtype": (_i32, [_p]),
    "tlm_tensor_get_f32": (_int, [_p, _c.POINTER(_f32), _sz]),
    "tlm_tensor_get_i32": (_int, [_p, _c.POINTER(_i32), _sz]),
    "tlm_tensor_set_f32": (_int, [_p, _c.POINTER(_f32), _sz]),
    "tlm_tensor_set_i32": (_int, [_p, _c.POINTER(_i32), _sz]),
    "tlm_tensor_set_requires_grad": (_int, [_p, _i32]),
    "tlm_tensor_requires_grad": (_int, [_p]),
    "tlm_tensor_get_grad_f32": (_int, [_p, _c.POINTER(_f32), _sz]),
    "tlm_backward": (_int, [_p]),
    "tlm_add": (_int, [_c.POINTER(_p), _p, _p]),
    "tlm_sub": (_int, [_c.POINTER(_p), _p, _p]),
    "tlm_mul": (_int, [_c.POINTER(_p), _p, _p]),
    "tlm_scale": (_int, [_c.POINTER(_p), _p, _f32]),
    "tlm_add_scalar": (_int, [_c.POINTER(_p), _p, _f32]),
    "tlm_matmul": (_int, [_c.POINTER(_p), _p, _p, _p, _i32]),
    "tlm_reshape": (_int, [_c.POINTER(_p), _p, _i32, _c.POINTER(_i64)]),
    "tlm_transpose": (_int, [_c.POINTER(_p), _p]),
    "tlm_sum": (_int, [_c.POINTER(_p), _p]),
    "tlm_mean": (_int, [_c.POINTER(_p), _p]),
    "tlm_relu": (_int, [_c.POINTER(_p), _p]),
    "tlm_gelu": (_int, [_c.POINTER(_p), _p, _i32]),
    "tlm_silu": (_int, [_c.POINTER(_p), _p]),
    "tlm_softmax": (_int, [_c.POINTER(_p), _p]),
    "tlm_log_softmax": (_int, [_c.POINTER(_p), _p]),
    "tlm_cross_entropy": (_int, [_c.POINTER(_p), _p, _p, _i32]),
    "tlm_tokenizer_params_init": (_int, [_p]),
    "tlm_tokenizer_train": (_int, [_c.POINTER(_p), _p, _c.c_char_p, _sz, _p]),
    "tlm_tokenizer_free": (None, [_p]),
    "tlm_tokenizer_import": (_int, [_c.POINTER(_p), _p, _c.c_char_p]),
    "tlm_tokenizer_export": (_int, [_p, _c.c_char_p]),
    "tlm_tokenizer_kind": (_i32, [_p]),
    "tlm_tokenizer_vocab_size": (_i32, [_p]),
    "tlm_tokenizer_encode": (_int, [_p, _c.c_char_p, _sz, _c.POINTER(_i32), _sz, _c.POINTER(_sz)]),
    "tlm_tokenizer_decode": (_int, [_p, _c.POINTER(_i32), _sz, _c.c_char_p, _sz, _c.POINTER(_sz)]),
    "tlm_model_config_init": (_int, [_p]),
    "tlm_model_create": (_int, [_c.POINTER(_p), _p, _p]),
    "tlm_model_load": (_int, [_c.POINTER(_p), _p, _str, _p]),
    "tlm_model_save": (_int, [_p, _str]),
    "tlm_model_import_params_init": (_int, [_p]),
    "tlm_model_import": (_int, [_c.POINTER(_p), _p, _str, _p]),
    "tlm_model_export_params_init": (_int, [_p]),
    "tlm_model_export": (_int, [_p, _str, _p]),
    "tlm_model_free": (None, [_p]),
    "tlm_model_parameter_count": (_i64, [_p]),
    "tlm_model_get_config": (_int, [_p, _p]),
    "tlm_model_set_tokenizer": (_int, [_p, _p]),
    "tlm_model_tokenizer": (_p, [_p]),
    "tlm_model_quantize": (_int, [_c.POINTER(_p), _p, _i32]),
    "tlm_model_weight_format": (_i32, [_p]),
    "tlm_score_text": (_int, [_p, _p, _c.c_char_p, _sz, _c.POINTER(_c.c_double), _c.POINTER(_i64)]),
    "tlm_session_create": (_int, [_c.POINTER(_p), _p, _p]),
    "tlm_session_free": (None, [_p]),
    "tlm_sampler_params_init": (_int, [_p]),
    "tlm_sampler_create": (_int, [_c.POINTER(_p), _p, _p]),
    "tlm_sampler_free": (None, [_p]),
    "tlm_sampler_get_params": (_int, [_p, _p]),
    "tlm_sampler_reset": (_int, [_p]),
    "tlm_sampler_set_seed": (_int, [_p, _u64]),
    "tlm_generate_params_init": (_int, [_p]),
    "tlm_generate": (_int, [_p, _p, _p, _c.c_char_p, _sz, _p, _c.POINTER(_i32)]),
    "tlm_dataset_params_init": (_int, [_p]),
    "tlm_dataset_from_text_file": (_int, [_c.POINTER(_p), _p, _str, _p, _p]),
    "tlm_dataset_free": (None, [_p]),
    "tlm_dataset_size": (_i64, [_p, _i32]),
    "tlm_optimizer_params_init": (_int, [_p]),
    "tlm_schedule_params_init": (_int, [_p]),
    "tlm_trainer_params_init": (_int, [_p]),
    "tlm_trainer_create": (_int, [_c.POINTER(_p), _p, _p, _p]),
    "tlm_trainer_free": (None, [_p]),
    "tlm_step_info_init": (_int, [_p]),
    "tlm_trainer_step": (_int, [_p, _p]),
    "tlm_trainer_evaluate": (_int, [_p, _i32, _i32, _c.POINTER(_f32)]),
    "tlm_trainer_save": (_int, [_p, _str]),
}


def _declare(lib):
    for name, (restype, argtypes) in _FUNCTIONS.items():
        f = getattr(lib, name)
        f.restype = restype
        f.argtypes = argtypes


def _L():
    return _lib if _lib is not None else load_library()


# ----------------------------------------------------------------- errors

class Error(Exception):
    """A tlm call failed: .status (negative TLM_E_* code), .name, and tlm's
    message naming the call and the argument at fault."""

    def __init__(self, status, message):
        self.status = status
        self.name = _L().tlm_status_name(status).decode()
        super().__init__(message)


def _check(status):
    if status != 0:
        raise Error(status, _L().tlm_last_error().decode("utf-8", "replace"))


def version():
    """The library's version, e.g. "0.2.0"."""
    return _L().tlm_version_string().decode()


def version_number():
    """The library's version as MAJOR * 10000 + MINOR * 100 + PATCH."""
    return _L().tlm_version_number()


def _out(fn, *args):
    """Call a create-style function whose out-pointer comes first."""
    handle = _p()
    _check(fn(_c.byref(handle), *args))
    return handle.value


# ----------------------------------------------------- settings structs
# These mirror include/tlm.h exactly; _init_struct() checks the size the
# library writes into struct_size against ctypes' size, so a binding that
# drifted from the header fails loudly instead of corrupting memory.

class _ContextParams(_c.Structure):
    _fields_ = [("struct_size", _sz), ("alloc_fn", _p), ("free_fn", _p),
                ("alloc_user", _p), ("log_fn", _p), ("log_user", _p),
                ("log_level", _i32), ("n_threads", _i32)]


class _ModelConfig(_c.Structure):
    _fields_ = [("struct_size", _sz), ("vocab_size", _i32), ("d_model", _i32),
                ("n_heads", _i32), ("head_dim", _i32), ("d_ff", _i32),
                ("n_encoder_layers", _i32), ("n_decoder_layers", _i32),
                ("max_context", _i32), ("position", _i32), ("norm", _i32),
                ("norm_placement", _i32), ("activation", _i32), ("bias", _i32),
                ("tied_output", _i32), ("embedding_dropout", _f32),
                ("residual_dropout", _f32), ("norm_eps", _f32),
                ("rope_base", _f32), ("init_seed", _u64), ("n_kv_heads", _i32)]


class _ModelImportParams(_c.Structure):
    _fields_ = [("struct_size", _sz), ("format", _i32), ("config_path", _str),
                ("config", _p)]


class _ModelExportParams(_c.Structure):
    _fields_ = [("struct_size", _sz), ("format", _i32), ("weight_type", _i32)]


# tlm_model_format and tlm_weight_type by name.
_MODEL_FORMATS = {"auto": 0, "tlm": 1, "safetensors": 2, "hf": 3, "llmc": 4,
                  "llama2c": 5}
_WEIGHT_TYPES = {"f32": 0, "f16": 1, "bf16": 2}
# enum tlm_weight_format: how a model stores its matrices
_WEIGHT_FORMATS = {"f32": 0, "bf16": 1, "int8": 2}
_WEIGHT_FORMAT_NAMES = {v: k for k, v in _WEIGHT_FORMATS.items()}


def _named(table, value, what):
    if value not in table:
        raise Error(-1, "tlm.py: %s %r is not one of %s" % (what, value, ", ".join(table)))
    return table[value]


class _TokenizerParams(_c.Structure):
    _fields_ = [("struct_size", _sz), ("kind", _i32), ("vocab_size", _i32),
                ("min_pair_count", _i32)]


class _SamplerParams(_c.Structure):
    _fields_ = [("struct_size", _sz), ("temperature", _f32), ("top_k", _i32),
                ("top_p", _f32), ("min_p", _f32), ("repetition_penalty", _f32),
                ("frequency_penalty", _f32), ("presence_penalty", _f32),
                ("penalty_window", _i32), ("seed", _u64)]


_TOKEN_FN = _c.CFUNCTYPE(_int, _p, _i32, _c.POINTER(_c.c_char), _sz, _f32)


class _GenerateParams(_c.Structure):
    _fields_ = [("struct_size", _sz), ("max_tokens", _i32),
                ("stop_at_eos", _i32), ("stop", _str), ("callback", _TOKEN_FN),
                ("callback_user", _p)]


class _OptimizerParams(_c.Structure):
    _fields_ = [("struct_size", _sz), ("kind", _i32), ("lr", _f32),
                ("beta1", _f32), ("beta2", _f32), ("eps", _f32),
                ("weight_decay", _f32), ("momentum", _f32), ("nesterov", _i32),
                ("decay_flags", _p)]


class _DatasetParams(_c.Structure):
    _fields_ = [("struct_size", _sz), ("validation_fraction", _f32),
                ("use_cache", _i32)]


class _ScheduleParams(_c.Structure):
    _fields_ = [("struct_size", _sz), ("kind", _i32), ("lr", _f32),
                ("min_lr", _f32), ("warmup_start_factor", _f32),
                ("warmup_steps", _i64), ("decay_end_step", _i64)]


class _StepInfo(_c.Structure):
    _fields_ = [("struct_size", _sz), ("step", _i64), ("loss", _f32),
                ("lr", _f32), ("grad_norm", _f64), ("skipped", _i32),
                ("tokens", _i64)]


class _TrainerParams(_c.Structure):
    _fields_ = [("struct_size", _sz), ("batch_size", _i32), ("context", _i32),
                ("accumulation", _i32), ("grad_clip", _f32), ("seed", _u64),
                ("optimizer", _c.POINTER(_OptimizerParams)),
                ("schedule", _c.POINTER(_ScheduleParams)),
                ("progress", _p), ("progress_user", _p), ("bos_id", _i32),
                ("pad_id", _i32), ("max_grad_norm", _f32), ("comm", _p)]


def _init_struct(cls, init, *extra):
    """A settings struct filled by its tlm_*_init function.

    tlm's settings structs grow at the end and carry their size: a library
    newer than this binding accepts the shorter struct (the fields it does
    not know keep their defaults), so only a library older than the
    binding is an error."""
    # Room to spare: a newer library writes its larger struct here.
    raw = _c.create_string_buffer(_c.sizeof(cls) + 1024)
    _check(init(raw, *extra))
    written = _sz.from_buffer(raw).value
    if written < _c.sizeof(cls):
        raise Error(-10, "tlm.py: %s is %d bytes here but %d in libtlm: the "
                    "library is older than the binding" % (cls.__name__[1:],
                                                          _c.sizeof(cls), written))
    params = cls.from_buffer_copy(raw.raw[:_c.sizeof(cls)])
    params.struct_size = _c.sizeof(cls)
    return params


# ----------------------------------------------------------------- handles

class _Handle:
    _free = None

    def __init__(self, handle):
        self._h = handle

    @property
    def handle(self):
        """The raw C pointer (an int); raises once closed."""
        if not self._h:
            raise Error(-9, "tlm.py: %s is closed" % type(self).__name__)
        return self._h

    def close(self):
        """Free the handle now (later calls raise tlm.Error)."""
        if self._h and self._free and _lib is not None:
            getattr(_lib, self._free)(self._h)
        self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


class Context(_Handle):
    """Owns the allocator, the thread pool, tensors and the autodiff tape.

    threads: compute threads (0: one per core). seed: seeds the context's
    generator (dropout)."""
    _free = "tlm_context_free"

    def __init__(self, threads=0, seed=None):
        params = _init_struct(_ContextParams, _L().tlm_context_params_init)
        params.n_threads = threads
        super().__init__(_out(_L().tlm_context_create, _c.byref(params)))
        # Tensors live as long as the context (results on the tape may use
        # any of them); other handles made in the context are tracked
        # weakly, so that close() can free them first, newest first.
        self._tensors = []
        self._children = {}
        self._serial = 0
        if seed is not None:
            _check(_L().tlm_context_set_seed(self.handle, seed))

    @property
    def threads(self):
        """Compute threads of the context."""
        return _L().tlm_context_thread_count(self.handle)

    def tensor(self, values, dtype="float32", requires_grad=False):
        """A leaf tensor from a (nested) list; see Tensor."""
        return Tensor(self, values, dtype=dtype, requires_grad=requires_grad)

    def zero_grad(self):
        """Set every gradient of the context to zero."""
        _check(_L().tlm_context_zero_grad(self.handle))

    def forward(self):
        """Re-run every recorded operation from its inputs' current values."""
        _check(_L().tlm_context_forward(self.handle))

    def reset(self):
        """Forget every result and the tape (leaf tensors stay)."""
        _check(_L().tlm_context_reset(self.handle))

    def _adopt(self, child):
        self._serial += 1
        self._children[self._serial] = weakref.ref(child)

    def close(self):
        """Free every handle made in the context, then the context."""
        children = getattr(self, "_children", {})
        for key in sorted(children, reverse=True):
            child = children[key]()
            if child is not None:
                child.close()
        self._children = {}
        for t in getattr(self, "_tensors", []):
            t._h = None  # freed with the context
        self._tensors = []
        super().close()


# ------------------------------------------------------------------ tensors

def _flatten(values):
    """(flat list, shape) of a nested list of numbers."""
    if not isinstance(values, (list, tuple)):
        return [values], []
    if not values:
        raise Error(-1, "tlm.py: an empty list has no shape")
    parts = [_flatten(v) for v in values]
    shape = parts[0][1]
    if any(p[1] != shape for p in parts):
        raise Error(-3, "tlm.py: ragged nested list (rows of different shapes)")
    return [x for p in parts for x in p[0]], [len(values)] + shape


def _nest(flat, shape):
    if len(shape) <= 1:
        return list(flat)
    step = len(flat) // shape[0]
    return [_nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


class Tensor(_Handle):
    """A tensor of float32 (values, parameters) or int32 (token ids, class
    targets), 1 to 4 dimensions.

    Tensor(ctx, [[1, 2], [3, 4]]) makes a leaf; arithmetic (+, -, *, @ and
    the methods below) records results on the context's tape, and
    backward() fills the gradients of leaves made with requires_grad=True.
    """
    _free = "tlm_tensor_free"

    def __init__(self, ctx, values, dtype="float32", requires_grad=False,
                 shape=None):
        self.ctx = ctx
        flat, nested_shape = _flatten(values)
        shape = list(shape) if shape is not None else (nested_shape or [1])
        dims = (_i64 * len(shape))(*shape)
        if dtype == "float32":
            data = (_f32 * len(flat))(*flat)
            fn = _L().tlm_tensor_from_f32
        elif dtype == "int32":
            data = (_i32 * len(flat))(*flat)
            fn = _L().tlm_tensor_from_i32
        else:
            raise Error(-1, "tlm.py: dtype must be 'float32' or 'int32', not %r" % (dtype,))
        n = 1
        for d in shape:
            n *= d
        if n != len(flat):
            raise Error(-3, "tlm.py: %d values do not fill shape %s" % (len(flat), shape))
        super().__init__(_out(fn, ctx.handle, len(shape), dims, data))
        ctx._tensors.append(self)
        if requires_grad:
            self.requires_grad = True

    @classmethod
    def _result(cls, ctx, handle):
        t = cls.__new__(cls)
        t.ctx = ctx
        t._h = handle
        ctx._tensors.append(t)
        return t

    def close(self):
        # A result's memory belongs to the context; only leaves are freed,
        # and only while their context lives.
        if self._h and getattr(self, "_leaf", True) and self.ctx._h:
            _L().tlm_tensor_free(self._h)
        self._h = None

    # ---- shape and values
    @property
    def shape(self):
        """The dimensions, as a tuple."""
        dims = (_i64 * 4)()
        n = _L().tlm_tensor_shape(self.handle, dims, 4)
        return tuple(dims[i] for i in range(n))

    @property
    def dtype(self):
        """"float32" or "int32"."""
        return "int32" if _L().tlm_tensor_dtype(self.handle) == 1 else "float32"

    def __len__(self):
        return self.shape[0]

    def numel(self):
        """Number of elements."""
        return _L().tlm_tensor_numel(self.handle)

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
            raise Error(-3, "tlm.py: item() of a tensor of %d elements" % len(v))
        return v[0]

    def set(self, values):
        """Overwrite the elements (a flat or nested list of numel values)."""
        flat, _ = _flatten(values)
        n = len(flat)
        if self.dtype == "int32":
            _check(_L().tlm_tensor_set_i32(self.handle, (_i32 * n)(*flat), n))
        else:
            _check(_L().tlm_tensor_set_f32(self.handle, (_f32 * n)(*flat), n))

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
        r = _out(getattr(_L(), name), *args)
        t = Tensor._result(self.ctx, r)
        t._leaf = False
        return t

    def _other(self, other):
        if isinstance(other, Tensor):
            return other
        return Tensor(self.ctx, other)

    def __add__(self, other):
        if isinstance(other, (int, float)):
            return self._op("tlm_add_scalar", self.handle, float(other))
        return self._op("tlm_add", self.handle, self._other(other).handle)

    def __sub__(self, other):
        if isinstance(other, (int, float)):
            return self._op("tlm_add_scalar", self.handle, -float(other))
        return self._op("tlm_sub", self.handle, self._other(other).handle)

    def __mul__(self, other):
        if isinstance(other, (int, float)):
            return self._op("tlm_scale", self.handle, float(other))
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
        dims = (_i64 * len(shape))(*shape)
        return self._op("tlm_reshape", self.handle, len(shape), dims)

    def transpose(self):
        """Swap the last two dimensions."""
        return self._op("tlm_transpose", self.handle)

    def __repr__(self):
        if not self._h:
            return "Tensor(closed)"
        return "Tensor(%s, shape=%s, dtype=%s)" % (self.tolist(), self.shape, self.dtype)


def matmul(a, b, bias=None, transpose_b=False):
    """a [.., M, K] times b [K, N] (or [N, K] with transpose_b), plus bias."""
    return a._op("tlm_matmul", a.handle, b.handle,
                 bias.handle if bias is not None else None,
                 1 if transpose_b else 0)


def cross_entropy(logits, targets, ignore_index=-1):
    """Mean of -log softmax(logits)[target] over positions; `targets` an
    int32 Tensor or a list of class ids."""
    if not isinstance(targets, Tensor):
        targets = Tensor(logits.ctx, targets, dtype="int32")
    return logits._op("tlm_cross_entropy", logits.handle, targets.handle, ignore_index)


# --------------------------------------------------------------- tokenizer

_TOKENIZER_KINDS = {"byte": 0, "char": 1, "bpe": 2}
_TOKENIZER_KIND_NAMES = {0: "byte", 1: "char", 2: "bpe", 3: "gpt2",
                         4: "sentencepiece"}


class Tokenizer(_Handle):
    """Text to token ids and back. Tokenizer.train(ctx, text, kind="char")
    learns one; a loaded model brings its own (Model.tokenizer)."""
    _free = "tlm_tokenizer_free"

    def __init__(self, handle, owned=True, keep=None):
        super().__init__(handle)
        self._owned = owned
        self._keep = keep  # the model a borrowed tokenizer belongs to

    @classmethod
    def train(cls, ctx, text, kind="char", vocab_size=512):
        """Learn a tokenizer from `text` (str or bytes): "byte", "char" or
        "bpe" (with `vocab_size` ids)."""
        if kind not in _TOKENIZER_KINDS:
            raise Error(-1, "tlm.py: kind must be byte, char or bpe, not %r" % (kind,))
        data = text.encode() if isinstance(text, str) else bytes(text)
        params = _init_struct(_TokenizerParams, _L().tlm_tokenizer_params_init)
        params.kind = _TOKENIZER_KINDS[kind]
        params.vocab_size = vocab_size
        tok = cls(_out(_L().tlm_tokenizer_train, ctx.handle if ctx else None,
                       data, len(data), _c.byref(params)))
        if ctx is not None:
            ctx._adopt(tok)  # it uses the context's allocator
        return tok

    @classmethod
    def import_(cls, ctx, path):
        """Read a published tokenizer (tlm_tokenizer_import): a directory
        with GPT-2's encoder.json + vocab.bpe (or vocab.json + merges.txt),
        a tiktoken rank file, a SentencePiece tokenizer.model (or a
        directory holding one), llama2.c's tokenizer.bin, or a tlm
        tokenizer file."""
        tok = cls(_out(_L().tlm_tokenizer_import, ctx.handle if ctx else None,
                       os.fsencode(path)))
        if ctx is not None:
            ctx._adopt(tok)
        return tok

    def export(self, directory):
        """Write a GPT-2 tokenizer as encoder.json + vocab.bpe, or a
        SentencePiece one as tokenizer.model, into `directory`
        (tlm_tokenizer_export)."""
        _check(_L().tlm_tokenizer_export(self.handle, os.fsencode(directory)))

    @property
    def kind(self):
        """"byte", "char", "bpe", "gpt2" or "sentencepiece"."""
        return _TOKENIZER_KIND_NAMES[_L().tlm_tokenizer_kind(self.handle)]

    def close(self):
        if self._owned:
            super().close()
        self._h = None

    @property
    def vocab_size(self):
        """Number of token ids, special tokens included."""
        return _L().tlm_tokenizer_vocab_size(self.handle)

    def encode(self, text):
        """Token ids of `text` (str or bytes)."""
        data = text.encode() if isinstance(text, str) else bytes(text)
        # The bound of tlm_tokenizer_encode: a SentencePiece tokenizer's
        # dummy prefix and byte fallback give up to 3 ids a byte.
        capacity = 3 * len(data) + 3
        ids = (_i32 * capacity)()
        n = _sz()
        _check(_L().tlm_tokenizer_encode(self.handle, data, len(data), ids,
                                         capacity, _c.byref(n)))
        return list(ids[:n.value])

    def decode(self, ids):
        """The text of a list of ids (str; invalid UTF-8 is replaced)."""
        arr = (_i32 * max(1, len(ids)))(*ids)
        n = _sz()
        _check(_L().tlm_tokenizer_decode(self.handle, arr, len(ids), None, 0,
                                         _c.byref(n)))
        capacity = n.value + 1
        buf = _c.create_string_buffer(capacity)
        _check(_L().tlm_tokenizer_decode(self.handle, arr, len(ids), buf,
                                         capacity, _c.byref(n)))
        return buf.raw[:n.value].decode("utf-8", "replace")


# ------------------------------------------------------------------ sampler

class Sampler(_Handle):
    """Turns logits into the next token: temperature (0: greedy), top_k,
    top_p, min_p, repetition_penalty, frequency_penalty, presence_penalty,
    penalty_window and seed, as in docs/sampling.md."""
    _free = "tlm_sampler_free"

    def __init__(self, ctx, **settings):
        params = _init_struct(_SamplerParams, _L().tlm_sampler_params_init)
        for key, value in settings.items():
            if key == "struct_size" or key not in dict(_SamplerParams._fields_):
                raise Error(-1, "tlm.py: Sampler has no setting %r" % (key,))
            setattr(params, key, value)
        self.ctx = ctx
        super().__init__(_out(_L().tlm_sampler_create, ctx.handle, _c.byref(params)))
        ctx._adopt(self)

    @property
    def settings(self):
        """The settings in use, as a dict."""
        params = _init_struct(_SamplerParams, _L().tlm_sampler_params_init)
        _check(_L().tlm_sampler_get_params(self.handle, _c.byref(params)))
        return {name: getattr(params, name) for name, _ in _SamplerParams._fields_
                if name != "struct_size"}

    def reset(self, seed=None):
        """Forget the accepted tokens (penalties); optionally reseed."""
        _check(_L().tlm_sampler_reset(self.handle))
        if seed is not None:
            _check(_L().tlm_sampler_set_seed(self.handle, seed))


# -------------------------------------------------------------------- model

class Model(_Handle):
    """A transformer: Model.load(ctx, path) for a .tlm file, or
    Model(ctx, vocab_size=..., d_model=..., ...) with any field of
    tlm_model_config (docs/model.md)."""
    _free = "tlm_model_free"

    def __init__(self, ctx, _handle=None, **config):
        self.ctx = ctx
        if _handle is None:
            c = _init_struct(_ModelConfig, _L().tlm_model_config_init)
            for key, value in config.items():
                if key == "struct_size" or key not in dict(_ModelConfig._fields_):
                    raise Error(-1, "tlm.py: the model config has no field %r" % (key,))
                setattr(c, key, value)
            _handle = _out(_L().tlm_model_create, ctx.handle, _c.byref(c))
        super().__init__(_handle)
        ctx._adopt(self)

    @classmethod
    def load(cls, ctx, path):
        """Load a .tlm file (a model or a trainer checkpoint)."""
        return cls(ctx, _handle=_out(_L().tlm_model_load, ctx.handle,
                                     os.fsencode(path), None))

    def save(self, path):
        """Save as a .tlm file (atomically)."""
        _check(_L().tlm_model_save(self.handle, os.fsencode(path)))

    @classmethod
    def import_(cls, ctx, path, format="auto", config_path=None):
        """Import another program's model (docs/formats-import.md): a Hugging
        Face GPT-2 or Llama directory, model.safetensors or index, an llm.c
        or llama2.c checkpoint, a tlm safetensors export or a .tlm; `format` "auto"
        detects it from the content. No tokenizer is attached."""
        p = _init_struct(_ModelImportParams, _L().tlm_model_import_params_init)
        p.format = _named(_MODEL_FORMATS, format, "format")
        p.config_path = os.fsencode(config_path) if config_path is not None else None
        return cls(ctx, _handle=_out(_L().tlm_model_import, ctx.handle,
                                     os.fsencode(path), _c.byref(p)))

    def export(self, path, format, dtype="f32"):
        """Write the model as "hf" (a directory), "llama2c", "llmc",
        "safetensors" or "tlm", its weights as dtype "f32", "f16" (hf) or "bf16" (hf, llmc)."""
        p = _init_struct(_ModelExportParams, _L().tlm_model_export_params_init)
        p.format = _named(_MODEL_FORMATS, format, "format")
        p.weight_type = _named(_WEIGHT_TYPES, dtype, "dtype")
        _check(_L().tlm_model_export(self.handle, os.fsencode(path), _c.byref(p)))

    def quantize(self, fmt):
        """A copy of the model (same context, tokenizer copied) whose
        matrices are stored as fmt "int8" (groups of 32 inputs, float32
        scales), "bf16" or "f32" (dequantized: trainable again); norms and
        biases stay float32 (tlm_model_quantize, docs/quantization.md)."""
        return Model(self.ctx, _handle=_out(_L().tlm_model_quantize, self.handle,
                                            _named(_WEIGHT_FORMATS, fmt, "fmt")))

    @property
    def weight_format(self):
        """How the matrices are stored: "f32", "bf16" or "int8"."""
        code = _L().tlm_model_weight_format(self.handle)
        if code < 0:
            raise Error(code, "tlm_model_weight_format failed")
        return _WEIGHT_FORMAT_NAMES[code]

    def perplexity(self, text):
        """exp of the mean cross-entropy per token of `text` (str or bytes)
        under the model and its tokenizer (tlm_score_text, as `tlm eval`)."""
        data = text.encode() if isinstance(text, str) else bytes(text)
        session = _out(_L().tlm_session_create, self.handle, None)
        try:
            logprob = _c.c_double(0.0)
            scored = _i64(0)
            _check(_L().tlm_score_text(session, _L().tlm_model_tokenizer(self.handle),
                                       data, len(data), _c.byref(logprob), _c.byref(scored)))
        finally:
            _L().tlm_session_free(session)
        if scored.value == 0:
            raise Error(-1, "tlm.py: perplexity: fewer than two tokens to score")
        return math.exp(-logprob.value / scored.value)

    @property
    def parameter_count(self):
        """Number of trainable values."""
        return _L().tlm_model_parameter_count(self.handle)

    @property
    def config(self):
        """The configuration, as a dict."""
        c = _init_struct(_ModelConfig, _L().tlm_model_config_init)
        _check(_L().tlm_model_get_config(self.handle, _c.byref(c)))
        return {name: getattr(c, name) for name, _ in _ModelConfig._fields_
                if name != "struct_size"}

    @property
    def tokenizer(self):
        """The model's tokenizer (borrowed: lives as long as the model), or
        None."""
        h = _L().tlm_model_tokenizer(self.handle)
        return Tokenizer(h, owned=False, keep=self) if h else None

    @tokenizer.setter
    def tokenizer(self, tok):
        _check(_L().tlm_model_set_tokenizer(self.handle, tok.handle if tok else None))

    def generate(self, prompt, max_tokens=256, sampler=None, stop=None,
                 stop_at_eos=True, on_text=None, **sampling):
        """Continue `prompt` and return the generated text.

        on_text(piece) is called with each piece of text as it is produced
        (streaming); returning True from it stops. `sampler` is a Sampler,
        or the sampling settings are given as keywords (temperature=0.8,
        top_k=40, seed=1, ...)."""
        tok = _L().tlm_model_tokenizer(self.handle)
        if not tok:
            raise Error(-9, "tlm.py: the model has no tokenizer")
        own_sampler = sampler is None
        if own_sampler:
            sampler = Sampler(self.ctx, **sampling)
        elif sampling:
            raise Error(-1, "tlm.py: give a sampler or sampling settings, not both")
        pieces = []
        raised = []

        def on_token(user, token, piece, length, logprob):
            text = _c.string_at(piece, length)
            pieces.append(text)
            if on_text is not None:
                try:
                    if on_text(text.decode("utf-8", "replace")):
                        return 1
                except BaseException as e:  # re-raised after the call
                    raised.append(e)
                    return 1
            return 0

        callback = _TOKEN_FN(on_token)  # kept alive during the call
        params = _init_struct(_GenerateParams, _L().tlm_generate_params_init)
        params.max_tokens = max_tokens
        params.stop_at_eos = 1 if stop_at_eos else 0
        stop_bytes = stop.encode() if stop is not None else None
        params.stop = stop_bytes
        params.callback = callback
        data = prompt.encode() if isinstance(prompt, str) else bytes(prompt)
        session = _out(_L().tlm_session_create, self.handle, None)
        try:
            status = _L().tlm_generate(session, sampler.handle, tok, data, len(data),
                                       _c.byref(params), None)
            if raised:
                raise raised[0]
            if status != -12:  # TLM_E_CANCELLED: the callback asked to stop
                _check(status)
        finally:
            _L().tlm_session_free(session)
            if own_sampler:
                sampler.close()
        return b"".join(pieces).decode("utf-8", "replace")


# ------------------------------------------------------------------ training

class Trainer(_Handle):
    """Trains a model on a text file: the file is encoded with the model's
    tokenizer, 90% trained on and 10% held out (validation_fraction).

    Trainer(model, "text.txt", batch_size=8, context=32, lr=1e-3,
            steps=None (for a cosine schedule), warmup=0, seed=1)"""
    _free = "tlm_trainer_free"

    def __init__(self, model, path, batch_size=12, context=0, lr=1e-3,
                 weight_decay=0.1, steps=None, warmup=0, min_lr=None,
                 grad_clip=1.0, seed=1, validation_fraction=0.1):
        self.model = model
        tok = _L().tlm_model_tokenizer(model.handle)
        if not tok:
            raise Error(-9, "tlm.py: the model has no tokenizer to encode the text")
        data = _init_struct(_DatasetParams, _L().tlm_dataset_params_init)
        data.validation_fraction = validation_fraction
        data.use_cache = 0
        self._dataset = _out(_L().tlm_dataset_from_text_file, model.ctx.handle,
                             os.fsencode(path), tok, _c.byref(data))
        try:
            opt = _init_struct(_OptimizerParams, _L().tlm_optimizer_params_init)
            opt.lr = lr
            opt.beta2 = 0.99
            opt.weight_decay = weight_decay
            sched = _init_struct(_ScheduleParams, _L().tlm_schedule_params_init)
            sched.lr = lr
            sched.warmup_steps = warmup
            if steps is not None:
                sched.kind = 1  # cosine decay to min_lr at `steps`
                sched.min_lr = lr / 10 if min_lr is None else min_lr
                sched.decay_end_step = steps
            params = _init_struct(_TrainerParams, _L().tlm_trainer_params_init)
            params.batch_size = batch_size
            params.context = context
            params.grad_clip = grad_clip
            params.seed = seed
            params.optimizer = _c.pointer(opt)
            params.schedule = _c.pointer(sched)
            handle = _out(_L().tlm_trainer_create, model.handle, self._dataset,
                          _c.byref(params))
        except BaseException:
            _L().tlm_dataset_free(self._dataset)
            raise
        super().__init__(handle)
        model.ctx._adopt(self)

    def step(self):
        """One optimisation step; returns its training loss."""
        info = _init_struct(_StepInfo, _L().tlm_step_info_init)
        _check(_L().tlm_trainer_step(self.handle, _c.byref(info)))
        return info.loss

    def evaluate(self, batches=8, split="validation"):
        """Mean loss over `batches` batches of the validation (or "train")
        part."""
        loss = _f32()
        _check(_L().tlm_trainer_evaluate(self.handle, 0 if split == "train" else 1,
                                         batches, _c.byref(loss)))
        return loss.value

    def save(self, path):
        """Save a checkpoint (model + optimizer state) that Model.load reads."""
        _check(_L().tlm_trainer_save(self.handle, os.fsencode(path)))

    def close(self):
        super().close()
        if getattr(self, "_dataset", None) and _lib is not None:
            _lib.tlm_dataset_free(self._dataset)
        self._dataset = None


def train(ctx, path, steps=200, tokenizer="char", on_step=None, **model_config):
    """Train a new character-level (or "byte") model on the text file at
    `path` for `steps` steps and return it.

    Model settings come as keywords (d_model=64, n_heads=4,
    n_decoder_layers=2, max_context=64, ...); on_step(step, loss) is called
    after every step."""
    with open(path, "rb") as f:
        text = f.read()
    trainer_keys = ("batch_size", "lr", "weight_decay", "warmup", "seed", "grad_clip")
    trainer_settings = {k: model_config.pop(k) for k in trainer_keys if k in model_config}
    with Tokenizer.train(ctx, text, kind=tokenizer) as tok:
        model_config.setdefault("max_context", 64)
        model = Model(ctx, vocab_size=tok.vocab_size, **model_config)
        model.tokenizer = tok
    with Trainer(model, path, context=model_config["max_context"], steps=steps,
                 **trainer_settings) as trainer:
        for i in range(steps):
            loss = trainer.step()
            if on_step is not None:
                on_step(i + 1, loss)
    return model
