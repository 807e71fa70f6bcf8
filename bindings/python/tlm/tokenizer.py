"""tlm.Tokenizer: text to token ids and back."""

from ._library import _L, _c, _i32, _p, _sz
from ._errors import (_check, _check_int32, _check_size, _check_bytes, _check_path,
                      _check_list, _out, _E_RANGE)
from ._structs import _TokenizerParams, _init_struct, _named
from ._handles import _Handle, _Resource
from .context import _context_of


_TOKENIZER_KINDS = {"byte": 0, "char": 1, "bpe": 2}
_TOKENIZER_KIND_NAMES = {0: "byte", 1: "char", 2: "bpe", 3: "gpt2",
                         4: "sentencepiece"}
# enum tlm_special_token
_SPECIAL_TOKENS = {"bos": 0, "eos": 1, "pad": 2, "unk": 3}


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

    @classmethod
    def load(cls, ctx, path):
        """Read a tokenizer file that save() wrote (tlm_tokenizer_load)."""
        _context_of(ctx, allow_none=True)
        return cls(_out(_L().tlm_tokenizer_load, ctx.handle if ctx else None,
                        _check_path("path", path)), ctx)

    @classmethod
    def from_bytes(cls, ctx, data):
        """Read a tokenizer from the bytes to_bytes() returned (any bytes
        are safe: a malformed image raises tlm.Error, TLM_E_FORMAT)."""
        _context_of(ctx, allow_none=True)
        data = _check_bytes("data", data)
        return cls(_out(_L().tlm_tokenizer_load_memory, ctx.handle if ctx else None,
                        data, len(data)), ctx)

    def save(self, path):
        """Write the tokenizer file of docs/tokenizer.md, atomically."""
        _check(_L().tlm_tokenizer_save(self.handle, _check_path("path", path)))

    def to_bytes(self):
        """The tokenizer's file image (what save() writes), as bytes."""
        handle = self.handle
        size = _sz()
        _check(_L().tlm_tokenizer_save_memory(handle, None, 0, _c.byref(size)))
        buf = _c.create_string_buffer(max(1, size.value))
        _check(_L().tlm_tokenizer_save_memory(handle, buf, size.value, _c.byref(size)))
        return buf.raw[:size.value]

    def special_id(self, which):
        """The id of special token `which` ("bos", "eos", "pad" or "unk"),
        or None when the tokenizer has none (only character-level and
        SentencePiece tokenizers have "unk"; a SentencePiece model may
        lack any of them)."""
        code = _named(_SPECIAL_TOKENS, which, "which")
        value = _L().tlm_tokenizer_special_id(self.handle, code)
        if value == _E_RANGE:
            return None
        if value < 0:
            _check(value)
        return value

    @property
    def bos_id(self):
        """The begin-of-text id, or None (see special_id)."""
        return self.special_id("bos")

    @property
    def eos_id(self):
        """The end-of-text id, or None (see special_id)."""
        return self.special_id("eos")

    @property
    def pad_id(self):
        """The padding id, or None (see special_id)."""
        return self.special_id("pad")

    @property
    def unk_id(self):
        """The unknown-character id, or None (see special_id)."""
        return self.special_id("unk")

    def token_bytes(self, id):
        """The bytes token `id` decodes to (tlm_tokenizer_token_bytes): b""
        for the special tokens (GPT-2's <|endoftext|> excepted), U+FFFD's
        UTF-8 for the unknown token; bytes, since a token may hold part
        of a character."""
        address = _p()
        length = _sz()
        _check(_L().tlm_tokenizer_token_bytes(self.handle, _check_int32("id", id),
                                              _c.byref(address), _c.byref(length)))
        return _c.string_at(address.value, length.value) if length.value else b""

    @property
    def merges(self):
        """The BPE (or GPT-2) merges, in rank order: a list of (left,
        right) id pairs, merge `rank` making token 256 + rank; [] for the
        other kinds."""
        handle = self.handle
        count = _L().tlm_tokenizer_merge_count(handle)
        if count < 0:
            _check(count)
        left, right = _i32(), _i32()
        pairs = []
        for rank in range(count):
            _check(_L().tlm_tokenizer_merge(handle, rank, _c.byref(left), _c.byref(right)))
            pairs.append((left.value, right.value))
        return pairs

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

