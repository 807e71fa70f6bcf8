"""tlm.Context: the handle everything else is made in."""

from ._library import _L, _c, _u64
from ._errors import (Error, ArgumentError, _check, _check_int32, _check_uint64,
                      _check_instance, _out, _E_STATE)
from ._structs import _ContextParams, _init_struct
from ._handles import _Handle, _ContextResource

# memory_limit=None: no limit (UINT64_MAX in C).
_NO_LIMIT = 2**64 - 1


def _context_of(ctx, allow_none=False):
    return _check_instance("ctx", ctx, Context, allow_none)


class Context(_Handle):
    """Owns the allocator, the thread pool, tensors and the autodiff tape.

    threads: compute threads (0: the environment variable TLM_THREADS, else
    one per core). seed: seeds the context's generator (dropout).
    memory_limit: bytes that models, sessions, trainers and datasets made
    in the context may hold together; a create that would pass it fails
    with tlm.Error (TLM_E_NOMEM) before allocating. 0 (default): the memory
    available to the process; None: no limit (docs/reliability.md,
    "Memory")."""
    _kind = "context"

    def __init__(self, threads=0, seed=None, memory_limit=0):
        params = _init_struct(_ContextParams, _L().tlm_context_params_init)
        params.n_threads = _check_int32("threads", threads)
        if memory_limit is None:
            params.memory_limit = _NO_LIMIT
        else:
            params.memory_limit = _check_uint64("memory_limit", memory_limit)
            if params.memory_limit == _NO_LIMIT:
                raise ArgumentError("memory_limit: give None for no limit")
        if seed is not None:
            seed = _check_uint64("seed", seed)
        self._res = _ContextResource(_out(_L().tlm_context_create, _c.byref(params)))
        if seed is not None:
            _check(_L().tlm_context_set_seed(self.handle, seed))

    @property
    def threads(self):
        """Compute threads of the context."""
        return _L().tlm_context_thread_count(self.handle)

    @property
    def memory_limit(self):
        """The memory limit in bytes (0 resolved to what the process had
        available when the context was made), or None for no limit."""
        value = _u64()
        _check(_L().tlm_context_memory_limit(self.handle, _c.byref(value)))
        return None if value.value == _NO_LIMIT else value.value

    @property
    def memory_in_use(self):
        """Bytes the context and what is made in it hold now (tokenizers
        and memory-mapped model files excluded)."""
        value = _u64()
        _check(_L().tlm_context_memory_in_use(self.handle, _c.byref(value)))
        return value.value

    def tensor(self, values, dtype="float32", requires_grad=False, shape=None):
        """A leaf tensor from a (nested) list of numbers or a numpy array
        (copied once); see Tensor."""
        from .tensor import Tensor  # tensor.py imports this module
        return Tensor(self, values, dtype=dtype, requires_grad=requires_grad, shape=shape)

    def zero_grad(self):
        """Set every gradient of the context to zero."""
        _check(_L().tlm_context_zero_grad(self.handle))

    def forward(self):
        """Re-run every recorded operation from its inputs' current values."""
        _check(_L().tlm_context_forward(self.handle))

    def reset(self):
        """Forget every result and the tape (leaf tensors stay; result
        tensors raise tlm.Error from now on). Refused while a trainer
        trains a model of this context (its graph lives on the tape), and
        while numpy arrays share a result's memory."""
        handle = self.handle
        self._res.refuse_if_busy("reset the context", views=False)
        self._res.refuse_if_viewed("reset the context")
        if self._res.find("trainer") is not None:
            raise Error(_E_STATE, "tlm: cannot reset the context while a trainer "
                        "uses it (its training graph is on the tape): close the "
                        "trainer first")
        _check(_L().tlm_context_reset(handle))
        self._res.after_reset()
