"""tlm.Sampler: logits to the next token."""

from . import _numpy
from ._library import _L, _c, _f32, _i32
from ._errors import (ArgumentError, _check, _check_float32, _check_int32, _check_list,
                      _check_uint64, _out, _set_fields)
from ._structs import _SamplerParams, _init_struct
from ._handles import _Handle
from .context import _context_of


def _logits(values):
    """A ctypes float32 array of logits (a list or numpy array) and its
    length; -infinity marks an impossible token."""
    if _numpy.is_array(values):
        np = _numpy.require("numpy logits")
        a = np.ascontiguousarray(_numpy.checked(values, "float32", "logits").reshape(-1),
                                 dtype=np.float32)
        return (_f32 * a.size).from_buffer_copy(a), a.size
    values = _check_list("logits", values)
    if not values:
        raise ArgumentError("logits: no value")
    return (_f32 * len(values))(*[_check_float32("logits[%d]" % i, v)
                                  for i, v in enumerate(values)]), len(values)


def log_softmax_at(logits, id):
    """log softmax(logits)[id] in nats, computed stably
    (tlm_log_softmax_at): a token's log-probability under the model,
    without temperature, filters or penalties."""
    data, n = _logits(logits)
    out = _f32()
    _check(_L().tlm_log_softmax_at(data, _check_int32("vocab", n),
                                   _check_int32("id", id), _c.byref(out)))
    return out.value


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

    def sample(self, logits):
        """Choose the next token from `logits` (a list or numpy array of
        vocab floats; -inf: impossible) through the sampler's pipeline;
        returns (id, logprob under the final distribution; 0 when
        greedy). The token is not recorded: accept() it (or another)."""
        data, n = _logits(logits)
        token, logprob = _i32(), _f32()
        _check(_L().tlm_sampler_sample(self.handle, data, _check_int32("vocab", n),
                                       _c.byref(token), _c.byref(logprob)))
        return token.value, logprob.value

    def probabilities(self, logits):
        """The distribution sample() would draw from, as a list of vocab
        floats (0 for filtered tokens); draws nothing, records nothing."""
        data, n = _logits(logits)
        probs = (_f32 * n)()
        _check(_L().tlm_sampler_probabilities(self.handle, data, _check_int32("vocab", n),
                                              probs))
        return list(probs)

    def accept(self, token):
        """Record a token (a prompt token or the one chosen) in the
        history the penalties read."""
        _check(_L().tlm_sampler_accept(self.handle, _check_int32("token", token)))
