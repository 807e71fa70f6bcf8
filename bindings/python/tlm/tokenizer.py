"""tlm.Tokenizer: text to token ids and back."""

from ._library import _L, _c, _i32, _sz
from ._errors import (_check, _check_int32, _check_size, _check_bytes, _check_path,
                      _check_list, _out)
from ._structs import _TokenizerParams, _init_struct, _named
from ._handles import _Handle, _Resource
from .context import _context_of


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

