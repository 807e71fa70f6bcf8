"""tlm.Model: create, load, save, import, export, quantize, generate."""

from ._library import _L, _c
from ._errors import (Error, _check, _check_path, _check_instance, _set_fields, _out,
                      _E_UNSUPPORTED)
from ._structs import (_ModelConfig, _ModelImportParams, _ModelExportParams,
                       _ModelLoadParams, _MODEL_FORMATS, _WEIGHT_TYPES, _WEIGHT_FORMATS,
                       _WEIGHT_FORMAT_NAMES, _init_struct, _named)
from ._handles import _Handle
from .context import _context_of
from .tokenizer import Tokenizer


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
    def load(cls, ctx, path, memory_map=False, verify_checksums=True):
        """Load a .tlm file (a model or a trainer checkpoint).

        memory_map=True uses the parameters in place in the mapped file (no
        copy; read-only, not trainable; the file must not change while the
        model lives); verify_checksums=False then skips the parameter
        checksums (docs/format.md)."""
        _context_of(ctx)
        p = _init_struct(_ModelLoadParams, _L().tlm_model_load_params_init)
        p.memory_map = 1 if memory_map else 0
        p.verify_checksums = 1 if verify_checksums else 0
        return cls(ctx, _handle=_out(_L().tlm_model_load, ctx.handle,
                                     _check_path("path", path), _c.byref(p)))

    def save(self, path):
        """Save as a .tlm file (atomically)."""
        _check(_L().tlm_model_save(self.handle, _check_path("path", path)))

    @classmethod
    def import_(cls, ctx, path, format="auto", config_path=None, allow_nonfinite=False):
        """Import another program's model (docs/formats-import.md): a Hugging
        Face GPT-2 or Llama directory, model.safetensors or index, an llm.c
        or llama2.c checkpoint, a tlm safetensors export or a .tlm; `format` "auto"
        detects it from the content. No tokenizer is attached. A NaN or
        infinite weight is refused (tlm.Error naming the tensor and the
        element) unless allow_nonfinite=True (for debugging a broken
        checkpoint)."""
        _context_of(ctx)
        p = _init_struct(_ModelImportParams, _L().tlm_model_import_params_init)
        p.format = _named(_MODEL_FORMATS, format, "format")
        p.allow_nonfinite = 1 if allow_nonfinite else 0
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
            raise Error(_E_UNSUPPORTED, "tlm: weight format %d is newer than this "
                        "binding" % code)
        return _WEIGHT_FORMAT_NAMES[code]

    def perplexity(self, text):
        """exp of the mean cross-entropy per token of `text` (str or bytes)
        under the model and its tokenizer (tlm_score_text, as `tlm eval`)."""
        from .session import perplexity  # session.py imports this module
        return perplexity(self, text)

    def session(self, threads=0, chunk_tokens=0):
        """A new Session (KV cache) of this model; see tlm.Session."""
        from .session import Session
        return Session(self, threads=threads, chunk_tokens=chunk_tokens)

    def score(self, tokens, top_k=0):
        """Per-token log-probabilities of text or ids, in a session of its
        own: see Session.score."""
        with self.session() as session:
            return session.score(tokens, top_k=top_k)

    def beam_search(self, src_ids, bos_id, eos_id, **settings):
        """Decode a source with an encoder-decoder model, in a session of
        its own: see Session.beam_search. Returns (ids, score)."""
        with self.session() as session:
            return session.beam_search(src_ids, bos_id, eos_id, **settings)

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
                 stop_at_eos=True, on_text=None, on_token=None, **sampling):
        """Continue `prompt` and return the generated text, in a session of
        its own (a new sequence every call; Session.generate continues a
        conversation).

        on_text(piece) is called with each piece of text as it is produced
        (streaming), on_token(id, piece, logprob) with each token; a true
        return value stops. `sampler` is a Sampler, or the sampling
        settings are given as keywords (temperature=0.8, top_k=40, seed=1,
        ...). While it runs, the callbacks cannot close or reset the model,
        its context or the sampler (tlm.Error)."""
        from .session import _run_generate
        model = self.handle
        session = _out(_L().tlm_session_create, model, None)
        try:
            return _run_generate(self, (session, ()), sampler, prompt, max_tokens, stop,
                                 stop_at_eos, on_text, on_token, False, sampling)
        finally:
            _L().tlm_session_free(session)
