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

Errors. Every failure raises tlm.Error, whose message is tlm's own (the
function, the argument and the values at fault); .status holds the
negative TLM_E_* code and .name its name ("TLM_E_INVALID", ...). An
argument the binding refuses before calling C raises tlm.ArgumentError, a
subclass of tlm.Error and ValueError (and of TypeError for a wrong type):
every integer is checked against its C type (int32, uint32, int64, uint64,
size_t) instead of being wrapped by ctypes, a float32 must fit a float32,
text must be str or bytes, paths and stop strings hold no NUL byte.

Lifetimes: no call reaches freed memory, whatever the order of close()
calls and garbage collection.
  * An object keeps the objects it needs alive (a Python reference): what
    is made in a context keeps the context, a trainer its model, the
    tokenizer returned by model.tokenizer its model. The garbage collector
    thus never frees a parent before its children, even in cycles.
  * close() (or the end of a `with` block) frees a handle now, and first
    closes what depends on it: a context everything made in it (models,
    tokenizers, samplers, trainers, tensors), a model its trainers and the
    tokenizers model.tokenizer returned. Using a closed object raises
    tlm.Error (TLM_E_STATE) saying why, e.g. "this tokenizer cannot be
    used: the model this tokenizer belongs to was closed".
  * model.tokenizer is the model's own tokenizer, not a copy: assigning
    model.tokenizer (which stores a copy of the new one) invalidates it.
  * ctx.reset() invalidates every result tensor computed in the context
    (leaves stay); it raises while a trainer uses the context. A leaf
    closed while results may still read it is freed at the next reset.
  * While generate() runs, its on_text callback cannot close or reset the
    model, its context or the sampler, nor replace the model's tokenizer
    (tlm.Error).
  * Like the C handles, a context and everything made in it are used by
    one thread at a time.
"""

import ctypes
import ctypes.util
import itertools
import math
import numbers
import operator
import os
import struct

__all__ = [
    "Error", "ArgumentError", "ArgumentTypeError", "version", "version_number", "Context", "Tensor", "Tokenizer",
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


_E_INVALID, _E_SHAPE, _E_STATE, _E_UNSUPPORTED, _E_CANCELLED = -1, -3, -9, -10, -12


class ArgumentError(Error, ValueError):
    """An argument refused by the binding before it reaches C: a value
    outside its C type's range, or (as ArgumentTypeError, also a TypeError)
    of the wrong type. Status TLM_E_INVALID."""

    def __init__(self, message):
        super().__init__(_E_INVALID, "tlm.py: " + message)


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument of the wrong type (a tlm.ArgumentError and a TypeError)."""


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
    if not isinstance(value, str):
        raise ArgumentTypeError("%s must be one of %s, not %s %r"
                                % (what, ", ".join(table), _type_name(value), value))
    if value not in table:
        raise ArgumentError("%s %r is not one of %s" % (what, value, ", ".join(table)))
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
                ("pad_id", _i32), ("max_grad_norm", _f32), ("comm", _p),
                ("precision", _i32)]


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
# A C handle's lifetime is kept in a _Resource, apart from the Python
# object that wraps it: resources form a tree (a context's models, a
# model's trainers, ...) in which a parent frees its children first, and
# they never refer to Python objects, so the order in which the garbage
# collector finalizes a cycle of objects cannot free a parent first.

class _Resource:
    """One C handle: its pointer (None once gone), the function that frees
    it (None when its parent frees it or it is borrowed), the resources to
    free before it, and why it is gone."""
    __slots__ = ("pointer", "kind", "free_name", "parent", "children", "why",
                 "busy", "key", "on_reset")
    _serial = itertools.count()

    def __init__(self, pointer, kind, free_name, parent=None, on_reset=False):
        self.pointer = pointer
        self.kind = kind
        self.free_name = free_name
        self.children = {}  # key -> _Resource, in creation order
        self.why = None
        self.busy = 0       # > 0 while a C call that runs Python code uses it
        self.on_reset = on_reset  # a result tensor: gone at its context's reset
        self.key = next(_Resource._serial)
        self.parent = parent
        if parent is not None:
            parent.children[self.key] = self

    def get(self):
        """The pointer; raises once the handle is gone."""
        if self.pointer is None:
            raise Error(_E_STATE, "tlm.py: this %s cannot be used: %s" % (self.kind, self.why))
        return self.pointer

    def busy_in_tree(self):
        """The first resource of this subtree a running generate() uses."""
        if self.busy:
            return self
        for child in list(self.children.values()):
            found = child.busy_in_tree()
            if found is not None:
                return found
        return None

    def refuse_if_busy(self, action):
        busy = self.busy_in_tree()
        if busy is not None:
            raise Error(_E_STATE, "tlm.py: cannot %s while generate() uses the %s "
                        "(from its on_text callback)" % (action, busy.kind))

    def find(self, kind):
        """A live resource of `kind` in this subtree, or None."""
        for child in list(self.children.values()):
            if child.kind == kind and child.pointer is not None:
                return child
            found = child.find(kind)
            if found is not None:
                return found
        return None

    def close(self, why="it was closed"):
        if self.pointer is None:
            return
        self.refuse_if_busy("close the %s" % self.kind)
        self.release(why)

    def release(self, why, closed_kind=None):
        """Free the children (newest first), then the handle. `closed_kind`
        names, in the children's messages, what the caller closed."""
        if self.pointer is None:
            return
        closed_kind = closed_kind or self.kind
        for child in reversed(list(self.children.values())):
            child.release("the %s this %s belongs to was closed" % (closed_kind, child.kind),
                          closed_kind)
        pointer, self.pointer, self.why = self.pointer, None, why
        if self.parent is not None:
            self.parent.children.pop(self.key, None)
            self.parent = None
        if self.free_name is not None and _lib is not None:
            getattr(_lib, self.free_name)(pointer)

    def detach(self, why):
        """Forget the handle without freeing it (someone else frees it)."""
        if self.pointer is None:
            return
        for child in reversed(list(self.children.values())):
            child.release("the %s this %s belongs to was closed" % (self.kind, child.kind),
                          self.kind)
        self.pointer, self.why = None, why
        if self.parent is not None:
            self.parent.children.pop(self.key, None)
            self.parent = None


class _ContextResource(_Resource):
    """A context's resource: also counts the results computed since the
    last reset (while there are any, the tape may read every leaf) and
    holds the leaves closed meanwhile, freed at the next reset."""
    __slots__ = ("results", "deferred")

    def __init__(self, pointer):
        super().__init__(pointer, "context", "tlm_context_free")
        self.results = 0
        self.deferred = []

    def release(self, why, closed_kind=None):
        self.deferred = []  # tlm_context_free frees every leaf
        super().release(why, closed_kind)

    def after_reset(self):
        for child in list(self.children.values()):
            if child.on_reset:
                child.detach("its context was reset (ctx.reset()) after it was computed")
        self.results = 0
        pointers, self.deferred = self.deferred, []
        for pointer in pointers:
            _lib.tlm_tensor_free(pointer)


class _Handle:
    """Base of the classes that wrap a C handle (in self._res)."""
    _kind = "handle"
    _free = None
    _res = None

    def _own(self, pointer, parent=None):
        self._res = _Resource(pointer, self._kind, self._free,
                              parent._res if parent is not None else None)

    @property
    def handle(self):
        """The raw C pointer (an int); raises tlm.Error once it is gone."""
        if self._res is None:
            raise Error(_E_STATE, "tlm.py: this %s was never created" % self._kind)
        return self._res.get()

    @property
    def closed(self):
        """True once the handle is freed (by close() or with its parent)."""
        return self._res is None or self._res.pointer is None

    def close(self):
        """Free the handle now, after everything that depends on it (later
        calls raise tlm.Error)."""
        if self._res is not None:
            self._res.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown, or busy (cannot happen: referenced)
            pass


def _context_of(ctx, allow_none=False):
    return _check_instance("ctx", ctx, Context, allow_none)


class Context(_Handle):
    """Owns the allocator, the thread pool, tensors and the autodiff tape.

    threads: compute threads (0: one per core). seed: seeds the context's
    generator (dropout)."""
    _kind = "context"

    def __init__(self, threads=0, seed=None):
        params = _init_struct(_ContextParams, _L().tlm_context_params_init)
        params.n_threads = _check_int32("threads", threads)
        if seed is not None:
            seed = _check_uint64("seed", seed)
        self._res = _ContextResource(_out(_L().tlm_context_create, _c.byref(params)))
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
        """Forget every result and the tape (leaf tensors stay; result
        tensors raise tlm.Error from now on). Refused while a trainer
        trains a model of this context: its graph lives on the tape."""
        handle = self.handle
        self._res.refuse_if_busy("reset the context")
        if self._res.find("trainer") is not None:
            raise Error(_E_STATE, "tlm.py: cannot reset the context while a trainer "
                        "uses it (its training graph is on the tape): close the "
                        "trainer first")
        _check(_L().tlm_context_reset(handle))
        self._res.after_reset()


# ------------------------------------------------------------------ tensors

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
        raise Error(_E_SHAPE, "tlm.py: %s: ragged nested list (rows of different "
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

    Tensor(ctx, [[1, 2], [3, 4]]) makes a leaf; arithmetic (+, -, *, @ and
    the methods below) records results on the context's tape, and
    backward() fills the gradients of leaves made with requires_grad=True.
    A result is valid until its context's reset().
    """
    _kind = "tensor"
    _free = "tlm_tensor_free"

    def __init__(self, ctx, values, dtype="float32", requires_grad=False,
                 shape=None):
        self.ctx = _context_of(ctx)
        _named(_DTYPES, dtype, "dtype")
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
            raise Error(_E_SHAPE, "tlm.py: %d values do not fill shape %s" % (len(flat), shape))
        fn = _L().tlm_tensor_from_i32 if dtype == "int32" else _L().tlm_tensor_from_f32
        self._own(_out(fn, ctx.handle, ndim, dims, data), ctx)
        if requires_grad:
            self.requires_grad = True

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
        context = self.ctx._res
        if res.free_name is not None and context.results > 0:
            context.deferred.append(res.pointer)
            res.detach("it was closed")
        else:
            res.close()

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
            raise Error(_E_SHAPE, "tlm.py: item() of a tensor of %d elements" % len(v))
        return v[0]

    def set(self, values):
        """Overwrite the elements (a flat or nested list of numel values)."""
        flat, _ = _flatten(values)
        data = _c_values(flat, self.dtype)
        setter = (_L().tlm_tensor_set_i32 if self.dtype == "int32"
                  else _L().tlm_tensor_set_f32)
        _check(setter(self.handle, data, len(flat)))

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


# --------------------------------------------------------------- tokenizer

_TOKENIZER_KINDS = {"byte": 0, "char": 1, "bpe": 2}
_TOKENIZER_KIND_NAMES = {0: "byte", 1: "char", 2: "bpe", 3: "gpt2",
                         4: "sentencepiece"}


class Tokenizer(_Handle):
    """Text to token ids and back. Tokenizer.train(ctx, text, kind="char")
    learns one; a model brings its own (Model.tokenizer, valid while the
    model keeps it)."""
    _kind = "tokenizer"
    _free = "tlm_tokenizer_free"

    def __init__(self, handle, ctx=None):
        self.ctx = ctx  # its allocator's context, kept alive
        self._own(handle, ctx)

    @classmethod
    def _borrowed(cls, handle, model):
        """The tokenizer a model owns: never freed here, gone with the
        model or when the model's tokenizer is replaced."""
        tok = cls.__new__(cls)
        tok.ctx = model.ctx
        tok.model = model  # keeps the model alive
        tok._res = _Resource(handle, cls._kind, None, model._res)
        return tok

    @classmethod
    def train(cls, ctx, text, kind="char", vocab_size=512):
        """Learn a tokenizer from `text` (str or bytes): "byte", "char" or
        "bpe" (with `vocab_size` ids)."""
        _context_of(ctx, allow_none=True)
        kind = _named(_TOKENIZER_KINDS, kind, "kind")
        data = _check_bytes("text", text)
        params = _init_struct(_TokenizerParams, _L().tlm_tokenizer_params_init)
        params.kind = kind
        params.vocab_size = _check_int32("vocab_size", vocab_size)
        return cls(_out(_L().tlm_tokenizer_train, ctx.handle if ctx else None,
                        data, len(data), _c.byref(params)), ctx)

    @classmethod
    def import_(cls, ctx, path):
        """Read a published tokenizer (tlm_tokenizer_import): a directory
        with GPT-2's encoder.json + vocab.bpe (or vocab.json + merges.txt),
        a tiktoken rank file, a SentencePiece tokenizer.model (or a
        directory holding one), llama2.c's tokenizer.bin, or a tlm
        tokenizer file."""
        _context_of(ctx, allow_none=True)
        return cls(_out(_L().tlm_tokenizer_import, ctx.handle if ctx else None,
                        _check_path("path", path)), ctx)

    def export(self, directory):
        """Write a GPT-2 tokenizer as encoder.json + vocab.bpe, or a
        SentencePiece one as tokenizer.model, into `directory`
        (tlm_tokenizer_export)."""
        _check(_L().tlm_tokenizer_export(self.handle, _check_path("directory", directory)))

    @property
    def kind(self):
        """"byte", "char", "bpe", "gpt2" or "sentencepiece"."""
        return _TOKENIZER_KIND_NAMES[_L().tlm_tokenizer_kind(self.handle)]

    @property
    def vocab_size(self):
        """Number of token ids, special tokens included."""
        return _L().tlm_tokenizer_vocab_size(self.handle)

    def encode(self, text):
        """Token ids of `text` (str or bytes)."""
        data = _check_bytes("text", text)
        # The bound of tlm_tokenizer_encode: a SentencePiece tokenizer's
        # dummy prefix and byte fallback give up to 3 ids a byte.
        capacity = _check_size("3 * len(text) + 3", 3 * len(data) + 3)
        ids = (_i32 * capacity)()
        n = _sz()
        _check(_L().tlm_tokenizer_encode(self.handle, data, len(data), ids,
                                         capacity, _c.byref(n)))
        return list(ids[:n.value])

    def decode(self, ids):
        """The text of a list of ids (str; invalid UTF-8 is replaced)."""
        ids = _check_list("ids", ids)
        arr = (_i32 * max(1, len(ids)))(*[_check_int32("ids[%d]" % i, v)
                                          for i, v in enumerate(ids)])
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
    _kind = "sampler"
    _free = "tlm_sampler_free"

    def __init__(self, ctx, **settings):
        self.ctx = _context_of(ctx)
        params = _init_struct(_SamplerParams, _L().tlm_sampler_params_init)
        _set_fields(params, settings, "Sampler")
        self._own(_out(_L().tlm_sampler_create, ctx.handle, _c.byref(params)), ctx)

    @property
    def settings(self):
        """The settings in use, as a dict."""
        params = _init_struct(_SamplerParams, _L().tlm_sampler_params_init)
        _check(_L().tlm_sampler_get_params(self.handle, _c.byref(params)))
        return {name: getattr(params, name) for name, _ in _SamplerParams._fields_
                if name != "struct_size"}

    def reset(self, seed=None):
        """Forget the accepted tokens (penalties); optionally reseed."""
        if seed is not None:
            seed = _check_uint64("seed", seed)
        _check(_L().tlm_sampler_reset(self.handle))
        if seed is not None:
            _check(_L().tlm_sampler_set_seed(self.handle, seed))


# -------------------------------------------------------------------- model

class Model(_Handle):
    """A transformer: Model.load(ctx, path) for a .tlm file, or
    Model(ctx, vocab_size=..., d_model=..., ...) with any field of
    tlm_model_config (docs/model.md)."""
    _kind = "model"
    _free = "tlm_model_free"

    def __init__(self, ctx, _handle=None, **config):
        self.ctx = _context_of(ctx)
        if _handle is None:
            c = _init_struct(_ModelConfig, _L().tlm_model_config_init)
            _set_fields(c, config, "the model config")
            _handle = _out(_L().tlm_model_create, ctx.handle, _c.byref(c))
        self._own(_handle, ctx)

    @classmethod
    def load(cls, ctx, path):
        """Load a .tlm file (a model or a trainer checkpoint)."""
        _context_of(ctx)
        return cls(ctx, _handle=_out(_L().tlm_model_load, ctx.handle,
                                     _check_path("path", path), None))

    def save(self, path):
        """Save as a .tlm file (atomically)."""
        _check(_L().tlm_model_save(self.handle, _check_path("path", path)))

    @classmethod
    def import_(cls, ctx, path, format="auto", config_path=None):
        """Import another program's model (docs/formats-import.md): a Hugging
        Face GPT-2 or Llama directory, model.safetensors or index, an llm.c
        or llama2.c checkpoint, a tlm safetensors export or a .tlm; `format` "auto"
        detects it from the content. No tokenizer is attached."""
        _context_of(ctx)
        p = _init_struct(_ModelImportParams, _L().tlm_model_import_params_init)
        p.format = _named(_MODEL_FORMATS, format, "format")
        # Kept referenced until the call returns: p holds only its address.
        config_bytes = (_check_path("config_path", config_path)
                        if config_path is not None else None)
        p.config_path = config_bytes
        return cls(ctx, _handle=_out(_L().tlm_model_import, ctx.handle,
                                     _check_path("path", path), _c.byref(p)))

    def export(self, path, format, dtype="f32"):
        """Write the model as "hf" (a directory), "llama2c", "llmc",
        "safetensors" or "tlm", its weights as dtype "f32", "f16" (hf) or "bf16" (hf, llmc)."""
        p = _init_struct(_ModelExportParams, _L().tlm_model_export_params_init)
        p.format = _named(_MODEL_FORMATS, format, "format")
        p.weight_type = _named(_WEIGHT_TYPES, dtype, "dtype")
        _check(_L().tlm_model_export(self.handle, _check_path("path", path), _c.byref(p)))

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
            raise Error(-1, _L().tlm_last_error().decode("utf-8", "replace"))
        if code not in _WEIGHT_FORMAT_NAMES:
            raise Error(_E_UNSUPPORTED, "tlm.py: weight format %d is newer than this "
                        "binding" % code)
        return _WEIGHT_FORMAT_NAMES[code]

    def perplexity(self, text):
        """exp of the mean cross-entropy per token of `text` (str or bytes)
        under the model and its tokenizer (tlm_score_text, as `tlm eval`)."""
        data = _check_bytes("text", text)
        model = self.handle
        session = _out(_L().tlm_session_create, model, None)
        try:
            logprob = _c.c_double(0.0)
            scored = _i64(0)
            _check(_L().tlm_score_text(session, _L().tlm_model_tokenizer(model),
                                       data, len(data), _c.byref(logprob), _c.byref(scored)))
        finally:
            _L().tlm_session_free(session)
        if scored.value == 0:
            raise Error(_E_INVALID, "tlm.py: perplexity: fewer than two tokens to score")
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
        """The model's own tokenizer, or None. Not a copy: it raises
        tlm.Error once the model is closed or its tokenizer replaced."""
        h = _L().tlm_model_tokenizer(self.handle)
        return Tokenizer._borrowed(h, self) if h else None

    @tokenizer.setter
    def tokenizer(self, tok):
        """Attach a copy of `tok` (None detaches); the tokenizers the
        getter returned before are invalidated."""
        _check_instance("tokenizer", tok, Tokenizer, allow_none=True)
        model = self.handle
        self._res.refuse_if_busy("replace the model's tokenizer")
        _check(_L().tlm_model_set_tokenizer(model, tok.handle if tok is not None else None))
        for child in list(self._res.children.values()):
            if child.kind == "tokenizer":
                child.detach("the model's tokenizer was replaced (model.tokenizer = ...)")

    def generate(self, prompt, max_tokens=256, sampler=None, stop=None,
                 stop_at_eos=True, on_text=None, **sampling):
        """Continue `prompt` and return the generated text.

        on_text(piece) is called with each piece of text as it is produced
        (streaming); returning True from it stops. `sampler` is a Sampler,
        or the sampling settings are given as keywords (temperature=0.8,
        top_k=40, seed=1, ...). While it runs, the callback cannot close
        or reset the model, its context or the sampler (tlm.Error)."""
        model = self.handle
        data = _check_bytes("prompt", prompt)
        max_tokens = _check_int32("max_tokens", max_tokens)
        stop_bytes = _check_cstring("stop", stop) if stop is not None else None
        _check_instance("sampler", sampler, Sampler, allow_none=True)
        if sampler is not None and sampling:
            raise ArgumentError("give a sampler or sampling settings, not both")
        tok = _L().tlm_model_tokenizer(model)
        if not tok:
            raise Error(_E_STATE, "tlm.py: the model has no tokenizer")
        own_sampler = sampler is None
        if own_sampler:
            sampler = Sampler(self.ctx, **sampling)
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
        params.stop = stop_bytes
        params.callback = callback
        in_use = (self._res, sampler._res)
        session = _out(_L().tlm_session_create, model, None)
        for res in in_use:
            res.busy += 1
        try:
            status = _L().tlm_generate(session, sampler.handle, tok, data, len(data),
                                       _c.byref(params), None)
            if raised:
                raise raised[0]
            if status != _E_CANCELLED:  # the callback asked to stop
                _check(status)
        finally:
            for res in in_use:
                res.busy -= 1
            _L().tlm_session_free(session)
            if own_sampler:
                sampler.close()
        return b"".join(pieces).decode("utf-8", "replace")


# ------------------------------------------------------------------ training

_SPLITS = {"train": 0, "validation": 1}


class Trainer(_Handle):
    """Trains a model on a text file: the file is encoded with the model's
    tokenizer, 90% trained on and 10% held out (validation_fraction).

    Trainer(model, "text.txt", batch_size=8, context=32, lr=1e-3,
            steps=None (for a cosine schedule), warmup=0, seed=1)

    The trainer keeps its model alive; closing the model (or its context)
    closes the trainer, and the context cannot be reset while it lives."""
    _kind = "trainer"
    _free = "tlm_trainer_free"

    def __init__(self, model, path, batch_size=12, context=0, lr=1e-3,
                 weight_decay=0.1, steps=None, warmup=0, min_lr=None,
                 grad_clip=1.0, seed=1, validation_fraction=0.1):
        self.model = _check_instance("model", model, Model)
        path = _check_path("path", path)
        data = _init_struct(_DatasetParams, _L().tlm_dataset_params_init)
        data.validation_fraction = _check_float32("validation_fraction", validation_fraction)
        data.use_cache = 0
        opt = _init_struct(_OptimizerParams, _L().tlm_optimizer_params_init)
        opt.lr = _check_float32("lr", lr)
        opt.beta2 = 0.99
        opt.weight_decay = _check_float32("weight_decay", weight_decay)
        sched = _init_struct(_ScheduleParams, _L().tlm_schedule_params_init)
        sched.lr = opt.lr
        sched.warmup_steps = _check_int64("warmup", warmup)
        if steps is not None:
            sched.kind = 1  # cosine decay to min_lr at `steps`
            sched.min_lr = _check_float32("min_lr", lr / 10 if min_lr is None else min_lr)
            sched.decay_end_step = _check_int64("steps", steps)
        params = _init_struct(_TrainerParams, _L().tlm_trainer_params_init)
        params.batch_size = _check_int32("batch_size", batch_size)
        params.context = _check_int32("context", context)
        params.grad_clip = _check_float32("grad_clip", grad_clip)
        params.seed = _check_uint64("seed", seed)
        params.optimizer = _c.pointer(opt)
        params.schedule = _c.pointer(sched)
        tok = _L().tlm_model_tokenizer(model.handle)
        if not tok:
            raise Error(_E_STATE, "tlm.py: the model has no tokenizer to encode the text")
        # The dataset must outlive the trainer: the trainer's resource is
        # its child, and the dataset the model's.
        self._dataset = _Resource(_out(_L().tlm_dataset_from_text_file, model.ctx.handle,
                                       path, tok, _c.byref(data)),
                                  "dataset", "tlm_dataset_free", model._res)
        try:
            handle = _out(_L().tlm_trainer_create, model.handle, self._dataset.pointer,
                          _c.byref(params))
        except BaseException:
            self._dataset.close()
            raise
        self._res = _Resource(handle, self._kind, self._free, self._dataset)

    def step(self):
        """One optimisation step; returns its training loss."""
        info = _init_struct(_StepInfo, _L().tlm_step_info_init)
        _check(_L().tlm_trainer_step(self.handle, _c.byref(info)))
        return info.loss

    def evaluate(self, batches=8, split="validation"):
        """Mean loss over `batches` batches of the "validation" (or "train")
        part."""
        loss = _f32()
        _check(_L().tlm_trainer_evaluate(self.handle, _named(_SPLITS, split, "split"),
                                         _check_int32("batches", batches),
                                         _c.byref(loss)))
        return loss.value

    def save(self, path):
        """Save a checkpoint (model + optimizer state) that Model.load reads."""
        _check(_L().tlm_trainer_save(self.handle, _check_path("path", path)))

    def close(self):
        """Free the trainer and its dataset."""
        if self._res is not None:
            self._res.close()
        dataset = getattr(self, "_dataset", None)
        if dataset is not None:
            dataset.close()


def train(ctx, path, steps=200, tokenizer="char", on_step=None, **model_config):
    """Train a new character-level (or "byte") model on the text file at
    `path` for `steps` steps and return it.

    Model settings come as keywords (d_model=64, n_heads=4,
    n_decoder_layers=2, max_context=64, ...); on_step(step, loss) is called
    after every step."""
    _context_of(ctx)
    steps = _check_int64("steps", steps)
    with open(_check_path("path", path), "rb") as f:
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
