"""tlm.Sampler: logits to the next token."""

from ._library import _L, _c
from ._errors import _check, _check_uint64, _out
from ._errors import _set_fields
from ._structs import _SamplerParams, _init_struct
from ._handles import _Handle
from .context import _context_of


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

