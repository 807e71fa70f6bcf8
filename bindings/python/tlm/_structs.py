"""The settings structs of include/tlm.h, field for field, and the enums
the binding names."""

from ._library import _c, _p, _i32, _i64, _u64, _int, _f32, _f64, _sz, _str
from ._errors import Error, ArgumentError, ArgumentTypeError, _check, _type_name, _E_UNSUPPORTED


# These mirror include/tlm.h exactly; _init_struct() checks the size the
# library writes into struct_size against ctypes' size, so a binding that
# drifted from the header fails loudly instead of corrupting memory.

class _ContextParams(_c.Structure):
    _fields_ = [("struct_size", _sz), ("alloc_fn", _p), ("free_fn", _p),
                ("alloc_user", _p), ("log_fn", _p), ("log_user", _p),
                ("log_level", _i32), ("n_threads", _i32), ("memory_limit", _u64)]


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
                ("config", _p), ("allow_nonfinite", _i32)]


class _ModelLoadParams(_c.Structure):
    _fields_ = [("struct_size", _sz), ("memory_map", _i32),
                ("verify_checksums", _i32)]


class _SessionParams(_c.Structure):
    _fields_ = [("struct_size", _sz), ("chunk_tokens", _i32), ("n_threads", _i32)]


_TOP_LOGPROBS_MAX = 20  # TLM_TOP_LOGPROBS_MAX


class _TokenLogprob(_c.Structure):
    _fields_ = [("id", _i32), ("logprob", _f32), ("rank", _i32), ("n_top", _i32),
                ("top_ids", _i32 * _TOP_LOGPROBS_MAX),
                ("top_logprobs", _f32 * _TOP_LOGPROBS_MAX)]


class _BeamSearchParams(_c.Structure):
    _fields_ = [("struct_size", _sz), ("beam_width", _i32), ("max_length", _i32),
                ("bos_id", _i32), ("eos_id", _i32), ("length_penalty", _f32),
                ("sessions", _p), ("n_sessions", _i32)]


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
                ("callback_user", _p), ("continue_session", _i32)]


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


_PROGRESS_FN = _c.CFUNCTYPE(_int, _p, _c.POINTER(_StepInfo))


class _TrainerParams(_c.Structure):
    _fields_ = [("struct_size", _sz), ("batch_size", _i32), ("context", _i32),
                ("accumulation", _i32), ("grad_clip", _f32), ("seed", _u64),
                ("optimizer", _c.POINTER(_OptimizerParams)),
                ("schedule", _c.POINTER(_ScheduleParams)),
                ("progress", _PROGRESS_FN), ("progress_user", _p), ("bos_id", _i32),
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
        raise Error(_E_UNSUPPORTED, "tlm: %s is %d bytes here but %d in libtlm: the "
                    "library is older than the binding" % (cls.__name__[1:],
                                                          _c.sizeof(cls), written))
    params = cls.from_buffer_copy(raw.raw[:_c.sizeof(cls)])
    params.struct_size = _c.sizeof(cls)
    return params

