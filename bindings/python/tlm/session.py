"""tlm.Session: a model's KV cache. Feed tokens and read logits, generate
text that continues the session (a chat loop computes each token once),
and score tokens one by one."""

import collections
import math
import threading

from . import _numpy
from ._library import _L, _c, _i32, _i64, _f64, _sz
from ._errors import (Error, ArgumentError, _check, _check_int32, _check_float32,
                      _check_bytes,
                      _check_cstring, _check_instance, _check_list, _out,
                      _E_STATE, _E_CANCELLED, _E_INVALID)
from ._structs import (_SessionParams, _GenerateParams, _TokenLogprob, _TOKEN_FN,
                       _TOP_LOGPROBS_MAX, _BeamSearchParams, _init_struct)
from ._handles import _Handle
from .model import Model
from .sampler import Sampler

TokenLogprob = collections.namedtuple("TokenLogprob", "id text logprob rank top")
TokenLogprob.__doc__ = """One scored token (OpenAI's `logprobs`): its id and text,
log p(id | the tokens before it) in nats, its rank among the vocabulary (0:
the most probable) and `top`, the most probable alternatives at its
position as (id, text, logprob) tuples, most probable first."""

_LOGITS_CHOICES = (None, "last", "all")

# Guards the busy counts of the resources generate() uses: sessions of one
# model may generate in several threads at once (each its own session).
_busy_lock = threading.Lock()


def _token_ids(value, name="ids"):
    """A ctypes int32 array of token ids (a list or a numpy array)."""
    if _numpy.is_array(value):
        np = _numpy.require("numpy ids")
        ids = np.ascontiguousarray(_numpy.checked(value, "int32", name).reshape(-1),
                                   dtype=np.int32)
        return (_i32 * ids.size).from_buffer_copy(ids), ids.size
    ids = _check_list(name, value)
    return (_i32 * max(1, len(ids)))(*[_check_int32("%s[%d]" % (name, i), v)
                                       for i, v in enumerate(ids)]), len(ids)


def _source_mask(src_mask, n):
    """None, or a ctypes int32 array of the n flags of a source mask."""
    if src_mask is None:
        return None
    mask, count = _token_ids(src_mask, "src_mask")
    if count != n:
        raise ArgumentError("src_mask: %d flags for %d source ids" % (count, n))
    return mask


def _model_tokenizer(model, what):
    tok = _L().tlm_model_tokenizer(model.handle)
    if not tok:
        raise Error(_E_STATE, "tlm: %s needs the model's tokenizer, and the model "
                    "has none (model.tokenizer = ...)" % what)
    return tok


def _run_generate(model, session, sampler, prompt, max_tokens, stop, stop_at_eos,
                  on_text, on_token, continue_session, sampling):
    """tlm_generate on `session` (a pointer); the text generated."""
    data = _check_bytes("prompt", prompt)
    max_tokens = _check_int32("max_tokens", max_tokens)
    stop_bytes = _check_cstring("stop", stop) if stop is not None else None
    _check_instance("sampler", sampler, Sampler, allow_none=True)
    if sampler is not None and sampling:
        raise ArgumentError("give a sampler or sampling settings, not both")
    tok = _model_tokenizer(model, "generate()")
    pieces = []
    raised = []

    def on_generated(user, token, piece, length, logprob):
        text = _c.string_at(piece, length)
        pieces.append(text)
        try:
            stop_now = False
            if on_token is not None:
                stop_now = bool(on_token(token, text.decode("utf-8", "replace"), logprob))
            if on_text is not None and not stop_now:
                stop_now = bool(on_text(text.decode("utf-8", "replace")))
        except BaseException as e:  # re-raised after the call
            raised.append(e)
            return 1
        return 1 if stop_now else 0

    callback = _TOKEN_FN(on_generated)  # kept alive during the call
    params = _init_struct(_GenerateParams, _L().tlm_generate_params_init)
    params.max_tokens = max_tokens
    params.stop_at_eos = 1 if stop_at_eos else 0
    params.stop = stop_bytes
    params.callback = callback
    params.continue_session = 1 if continue_session else 0
    own_sampler = sampler is None
    if own_sampler:
        sampler = Sampler(model.ctx, **sampling)
    try:
        in_use = (model._res, sampler._res) + session[1]
        with _busy_lock:
            for res in in_use:
                res.busy += 1
        try:
            status = _L().tlm_generate(session[0], sampler.handle, tok, data, len(data),
                                       _c.byref(params), None)
        finally:
            with _busy_lock:
                for res in in_use:
                    res.busy -= 1
        if raised:
            raise raised[0]
        if status != _E_CANCELLED:  # the callback asked to stop
            _check(status)
    finally:
        if own_sampler:
            sampler.close()
    return b"".join(pieces).decode("utf-8", "replace")


class Session(_Handle):
    """A model's inference state (its KV cache): Session(model) or
    model.session().

    threads: the session's own compute threads (0: the model's context's
    count); chunk_tokens: most positions per forward pass (0: 64). The
    session keeps its model alive; closing the model (or its context)
    closes the session."""
    _kind = "session"
    _free = "tlm_session_free"

    def __init__(self, model, threads=0, chunk_tokens=0):
        self.model = _check_instance("model", model, Model)
        params = _init_struct(_SessionParams, _L().tlm_session_params_init)
        params.n_threads = _check_int32("threads", threads)
        params.chunk_tokens = _check_int32("chunk_tokens", chunk_tokens)
        self._own(_out(_L().tlm_session_create, model.handle, _c.byref(params)), model)

    @property
    def position(self):
        """Positions in the cache: the tokens fed or generated so far."""
        n = _L().tlm_session_position(self.handle)
        if n < 0:
            _check(n)
        return n

    def reset(self):
        """Forget every position: start a new sequence."""
        _check(_L().tlm_session_reset(self.handle))

    def copy(self):
        """A new session of the same model at exactly this one's state
        (tlm_session_copy): both continue alike from here."""
        other = Session(self.model)
        try:
            _check(_L().tlm_session_copy(other.handle, self.handle))
        except BaseException:
            other.close()
            raise
        return other

    def feed(self, ids, logits="last"):
        """Feed token ids (a list or numpy array) at the next positions and
        return the logits: logits="last" gives the last position's as a
        numpy array [vocab_size], "all" every fed position's [n, vocab_size],
        None nothing (no numpy needed). The arrays are written by tlm
        directly (no copy). A feed past max_context raises tlm.Error
        (TLM_E_RANGE) and consumes nothing."""
        if logits not in _LOGITS_CHOICES:
            raise ArgumentError("logits must be \"last\", \"all\" or None, not %r" % (logits,))
        handle = self.handle
        data, n = _token_ids(ids)
        if n == 0:
            raise ArgumentError("ids: no token to feed")
        if logits is None:
            _check(_L().tlm_session_decode(handle, data, n, None, 0))
            return None
        vocab = self.model.config["vocab_size"]
        rows = 1 if logits == "last" else n
        out, pointer = _numpy.empty((rows, vocab), "float32", "Session.feed(logits=...)")
        _check(_L().tlm_session_decode(handle, data, n, pointer, rows))
        return out[0] if logits == "last" else out

    def encode(self, src_ids, src_mask=None, logits=False):
        """Run the encoder over a source of ids (tlm_session_encode).

        An encoder-decoder model keeps the encoded source for the decoding
        that follows (feed() from the decoder's start id; the decoder's
        cache is cleared) and returns None. An encoder-only model computes
        every position's output: logits=True returns it as a numpy array
        [n, vocab_size]. src_mask: None, or n flags (1: a token, 0:
        padding, never attended). A decoder-only model raises tlm.Error
        (TLM_E_STATE)."""
        handle = self.handle
        data, n = _token_ids(src_ids, "src_ids")
        if n == 0:
            raise ArgumentError("src_ids: no token to encode")
        mask = _source_mask(src_mask, n)
        if not logits:
            _check(_L().tlm_session_encode(handle, data, n, mask, None))
            return None
        vocab = self.model.config["vocab_size"]
        out, pointer = _numpy.empty((n, vocab), "float32", "Session.encode(logits=True)")
        _check(_L().tlm_session_encode(handle, data, n, mask, pointer))
        return out

    def beam_search(self, src_ids, bos_id, eos_id, beam_width=4, max_length=0,
                    length_penalty=0.0, src_mask=None):
        """Decode a source with an encoder-decoder model (tlm_beam_search,
        docs/seq2seq.md) and return (ids, score): the best hypothesis's
        ids, without bos_id and eos_id, and its score, the log-probability
        divided by ((5 + len) / 6) ** length_penalty (GNMT; 0: none).

        beam_width=1 is greedy decoding. eos_id=-1: no end id, every
        hypothesis runs to max_length (0: max_context) ids. The session's
        contents are replaced; the other hypotheses' sessions are made
        and freed by the call. Deterministic."""
        handle = self.handle
        data, n = _token_ids(src_ids, "src_ids")
        if n == 0:
            raise ArgumentError("src_ids: no token to decode from")
        mask = _source_mask(src_mask, n)
        params = _init_struct(_BeamSearchParams, _L().tlm_beam_search_params_init)
        params.beam_width = _check_int32("beam_width", beam_width)
        params.max_length = _check_int32("max_length", max_length)
        params.bos_id = _check_int32("bos_id", bos_id)
        params.eos_id = _check_int32("eos_id", eos_id)
        params.length_penalty = _check_float32("length_penalty", length_penalty)
        # The result has at most max_length <= max_context ids.
        capacity = max(1, self.model.config["max_context"])
        out = (_i32 * capacity)()
        n_out = _sz()
        score = _f64()
        _check(_L().tlm_beam_search(handle, data, n, mask, _c.byref(params), out,
                                    capacity, _c.byref(n_out), _c.byref(score)))
        return list(out[:n_out.value]), score.value

    def generate(self, prompt, max_tokens=256, sampler=None, stop=None,
                 stop_at_eos=True, on_text=None, on_token=None,
                 continue_session=True, **sampling):
        """Generate text after `prompt` and return it.

        continue_session=True (default): the prompt is appended after the
        positions already in the session and every generated token stays
        in it, so the next call continues the conversation and computes
        only its new tokens (tlm_generate_params.continue_session). The
        window does not slide: a prompt that does not fit raises
        tlm.Error (TLM_E_RANGE), and generation stops when the context is
        full (compare position with max_context; reset() to start over).
        False: the session is reset first (as Model.generate).

        on_text(piece) and on_token(id, piece, logprob) are called for each
        generated token (a piece is "" while a UTF-8 character is
        incomplete); a true return value stops. `sampler` is a Sampler,
        whose penalty history then carries across calls; or give the
        sampling settings as keywords (temperature=0.8, top_k=40, seed=1,
        ...) for a sampler used by this call only. While it runs, the
        callbacks cannot close the session, the model, its context or the
        sampler (tlm.Error)."""
        return _run_generate(self.model, (self.handle, (self._res,)), sampler, prompt,
                             max_tokens, stop, stop_at_eos, on_text, on_token,
                             continue_session, sampling)

    def score(self, tokens, top_k=0):
        """Per-token log-probabilities (tlm_score_tokens): `tokens` is text
        (str or bytes, encoded with the model's tokenizer) or token ids;
        returns one TokenLogprob for each token after the first (which has
        no context), with the `top_k` (0..20) most probable alternatives at
        its position. The session is reset and left holding the
        sequence."""
        handle = self.handle
        top_k = _check_int32("top_k", top_k)
        if not 0 <= top_k <= _TOP_LOGPROBS_MAX:
            raise ArgumentError("top_k = %d is outside 0..%d" % (top_k, _TOP_LOGPROBS_MAX))
        if isinstance(tokens, (str, bytes, bytearray, memoryview)):
            data = _check_bytes("tokens", tokens)
            tok = self.model.tokenizer
            if tok is None:
                _model_tokenizer(self.model, "score() of text")
            ids = tok.encode(data)
            data, n = _token_ids(ids)
        else:
            data, n = _token_ids(tokens, "tokens")
            tok = self.model.tokenizer
        if n < 2:
            raise Error(_E_INVALID, "tlm: score(): %d token(s); scoring needs 2 or "
                        "more (the first has no context)" % n)
        out = (_TokenLogprob * (n - 1))()
        _check(_L().tlm_score_tokens(handle, data, n, top_k, out))

        def text(i):
            return tok.decode([i]) if tok is not None else None

        return [TokenLogprob(e.id, text(e.id), e.logprob, e.rank,
                             [(e.top_ids[k], text(e.top_ids[k]), e.top_logprobs[k])
                              for k in range(e.n_top)])
                for e in out]

    def score_continuation(self, prompt, continuation):
        """log p(continuation | prompt) in nats, the sum over the
        continuation's tokens (tlm_score_continuation): what two candidate
        answers are compared with."""
        handle = self.handle
        tok = _model_tokenizer(self.model, "score_continuation()")
        a = _check_bytes("prompt", prompt)
        b = _check_bytes("continuation", continuation)
        logprob = _f64()
        _check(_L().tlm_score_continuation(handle, tok, a, len(a), b, len(b),
                                           _c.byref(logprob)))
        return logprob.value

    def score_text(self, text):
        """(sum of log p over the tokens of `text` after the first, number
        of tokens scored) (tlm_score_text); perplexity is
        exp(-sum / count)."""
        handle = self.handle
        tok = _model_tokenizer(self.model, "score_text()")
        data = _check_bytes("text", text)
        logprob = _f64()
        scored = _i64()
        _check(_L().tlm_score_text(handle, tok, data, len(data), _c.byref(logprob),
                                   _c.byref(scored)))
        return logprob.value, scored.value


def perplexity(model, text):
    """exp of the mean cross-entropy per token of `text` under `model`."""
    with Session(model) as session:
        logprob, scored = session.score_text(text)
    if scored == 0:
        raise Error(_E_INVALID, "tlm: perplexity: fewer than two tokens to score")
    return math.exp(-logprob / scored)
