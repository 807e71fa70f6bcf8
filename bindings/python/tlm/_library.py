"""Finding and loading libtlm, and the C signatures of the calls used."""

import ctypes
import ctypes.util
import os
import subprocess

_c = ctypes
_p = _c.c_void_p
_i32, _i64, _u32, _u64 = _c.c_int32, _c.c_int64, _c.c_uint32, _c.c_uint64
_int, _f32, _f64, _sz = _c.c_int, _c.c_float, _c.c_double, _c.c_size_t
_str = _c.c_char_p

# The library's soname major this binding is written for (TLM_VERSION_MAJOR).
_SONAME = "libtlm.so.0"


_c = ctypes
_p = _c.c_void_p
_i32, _i64, _u32, _u64 = _c.c_int32, _c.c_int64, _c.c_uint32, _c.c_uint64
_int, _f32, _f64, _sz = _c.c_int, _c.c_float, _c.c_double, _c.c_size_t
_str = _c.c_char_p


def _pkg_config_libdir():
    """The libdir pkg-config gives for tlm (an installed prefix), or None."""
    try:
        result = subprocess.run(["pkg-config", "--variable=libdir", "tlm"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                check=False, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    libdir = result.stdout.decode("utf-8", "replace").strip()
    return libdir if result.returncode == 0 and libdir else None


def _candidates():
    env = os.environ.get("TLM_LIBRARY")
    if env:
        if os.path.isdir(env):
            yield os.path.join(env, _SONAME)
            yield os.path.join(env, "libtlm.so")
        else:
            yield env
        return  # an explicit choice: nothing else is tried
    # A checkout's in-tree build: this file is bindings/python/tlm/_library.py.
    here = os.path.dirname(os.path.abspath(__file__))
    top = os.path.dirname(os.path.dirname(os.path.dirname(here)))
    if os.path.isfile(os.path.join(top, "include", "tlm.h")):
        yield os.path.join(top, "build", "lib", _SONAME)
    # The dynamic linker's search (LD_LIBRARY_PATH, the ldconfig cache, the
    # default directories), then an installed prefix pkg-config knows.
    yield _SONAME
    libdir = _pkg_config_libdir()
    if libdir:
        yield os.path.join(libdir, _SONAME)
    found = ctypes.util.find_library("tlm")
    if found:
        yield found


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
    from ._errors import LibraryNotFound  # here: _errors needs this module
    raise LibraryNotFound("tlm: libtlm not found; set TLM_LIBRARY to its path "
                "(the file, or the directory holding %s). Tried: %s"
                % (_SONAME, "; ".join(tried)))


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
    "tlm_context_memory_limit": (_int, [_p, _c.POINTER(_u64)]),
    "tlm_context_memory_in_use": (_int, [_p, _c.POINTER(_u64)]),
    "tlm_context_set_seed": (_int, [_p, _u64]),
    "tlm_context_zero_grad": (_int, [_p]),
    "tlm_context_forward": (_int, [_p]),
    "tlm_context_reset": (_int, [_p]),
    "tlm_context_set_grad_enabled": (_int, [_p, _i32]),
    "tlm_tensor_create": (_int, [_c.POINTER(_p), _p, _i32, _i32, _c.POINTER(_i64)]),
    "tlm_tensor_data_f32": (_p, [_p]),
    "tlm_tensor_data_i32": (_p, [_p]),
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
    "tlm_tokenizer_special_id": (_i32, [_p, _i32]),
    "tlm_tokenizer_token_bytes": (_int, [_p, _i32, _c.POINTER(_p), _c.POINTER(_sz)]),
    "tlm_tokenizer_merge_count": (_i32, [_p]),
    "tlm_tokenizer_merge": (_int, [_p, _i32, _c.POINTER(_i32), _c.POINTER(_i32)]),
    "tlm_tokenizer_save": (_int, [_p, _str]),
    "tlm_tokenizer_load": (_int, [_c.POINTER(_p), _p, _str]),
    "tlm_tokenizer_save_memory": (_int, [_p, _p, _sz, _c.POINTER(_sz)]),
    "tlm_tokenizer_load_memory": (_int, [_c.POINTER(_p), _p, _c.c_char_p, _sz]),
    "tlm_model_config_init": (_int, [_p]),
    "tlm_model_create": (_int, [_c.POINTER(_p), _p, _p]),
    "tlm_model_load_params_init": (_int, [_p]),
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
    "tlm_score_tokens": (_int, [_p, _c.POINTER(_i32), _sz, _i32, _p]),
    "tlm_score_continuation": (_int, [_p, _p, _c.c_char_p, _sz, _c.c_char_p, _sz,
                                      _c.POINTER(_c.c_double)]),
    "tlm_session_params_init": (_int, [_p]),
    "tlm_session_create": (_int, [_c.POINTER(_p), _p, _p]),
    "tlm_session_free": (None, [_p]),
    "tlm_session_reset": (_int, [_p]),
    "tlm_session_copy": (_int, [_p, _p]),
    "tlm_session_position": (_i32, [_p]),
    "tlm_session_decode": (_int, [_p, _c.POINTER(_i32), _sz, _p, _i32]),
    "tlm_session_last_error": (_str, [_p]),
    "tlm_session_encode": (_int, [_p, _c.POINTER(_i32), _sz, _c.POINTER(_i32), _p]),
    "tlm_beam_search_params_init": (_int, [_p]),
    "tlm_beam_search": (_int, [_p, _c.POINTER(_i32), _sz, _c.POINTER(_i32), _p,
                               _c.POINTER(_i32), _sz, _c.POINTER(_sz), _c.POINTER(_f64)]),
    "tlm_sampler_params_init": (_int, [_p]),
    "tlm_sampler_create": (_int, [_c.POINTER(_p), _p, _p]),
    "tlm_sampler_free": (None, [_p]),
    "tlm_sampler_get_params": (_int, [_p, _p]),
    "tlm_sampler_reset": (_int, [_p]),
    "tlm_sampler_set_seed": (_int, [_p, _u64]),
    "tlm_sampler_accept": (_int, [_p, _i32]),
    "tlm_sampler_sample": (_int, [_p, _c.POINTER(_f32), _i32, _c.POINTER(_i32),
                                  _c.POINTER(_f32)]),
    "tlm_sampler_probabilities": (_int, [_p, _c.POINTER(_f32), _i32, _c.POINTER(_f32)]),
    "tlm_log_softmax_at": (_int, [_c.POINTER(_f32), _i32, _i32, _c.POINTER(_f32)]),
    "tlm_generate_params_init": (_int, [_p]),
    "tlm_generate": (_int, [_p, _p, _p, _c.c_char_p, _sz, _p, _c.POINTER(_i32)]),
    "tlm_dataset_params_init": (_int, [_p]),
    "tlm_dataset_from_ids": (_int, [_c.POINTER(_p), _p, _c.POINTER(_i32), _sz, _p]),
    "tlm_dataset_from_text_file": (_int, [_c.POINTER(_p), _p, _str, _p, _p]),
    "tlm_dataset_from_pairs": (_int, [_c.POINTER(_p), _p, _c.POINTER(_i32),
                                      _c.POINTER(_i64), _i64, _p]),
    "tlm_dataset_free": (None, [_p]),
    "tlm_dataset_size": (_i64, [_p, _i32]),
    "tlm_optimizer_params_init": (_int, [_p]),
    "tlm_optimizer_params_init_for": (_int, [_p, _i32]),
    "tlm_schedule_params_init": (_int, [_p]),
    "tlm_trainer_params_init": (_int, [_p]),
    "tlm_trainer_create": (_int, [_c.POINTER(_p), _p, _p, _p]),
    "tlm_trainer_free": (None, [_p]),
    "tlm_step_info_init": (_int, [_p]),
    "tlm_trainer_step": (_int, [_p, _p]),
    "tlm_trainer_evaluate": (_int, [_p, _i32, _i32, _c.POINTER(_f32)]),
    "tlm_trainer_evaluate_seeded": (_int, [_p, _i32, _i32, _u64, _c.POINTER(_f32)]),
    "tlm_trainer_save": (_int, [_p, _str]),
    "tlm_trainer_resume": (_int, [_p, _str]),
    "tlm_trainer_step_count": (_i64, [_p]),
}


def _declare(lib):
    for name, (restype, argtypes) in _FUNCTIONS.items():
        f = getattr(lib, name)
        f.restype = restype
        f.argtypes = argtypes


def _L():
    return _lib if _lib is not None else load_library()



def version():
    """The library's version, e.g. "0.2.0"."""
    return _L().tlm_version_string().decode()


def version_number():
    """The library's version as MAJOR * 10000 + MINOR * 100 + PATCH."""
    return _L().tlm_version_number()


def library_path():
    """The file of the loaded libtlm (loading it first): the path the
    dynamic linker resolved (from /proc/self/maps), else the name it was
    loaded by."""
    lib = _L()
    address = ctypes.cast(lib.tlm_version_number, _p).value
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                fields = line.split(None, 5)
                low, high = (int(x, 16) for x in fields[0].split("-"))
                if low <= address < high and len(fields) == 6:
                    return fields[5].strip()
    except (OSError, ValueError):
        pass
    return lib._name
