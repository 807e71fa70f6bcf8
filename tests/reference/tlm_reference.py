"""An independent, plain-PyTorch implementation of tlm's transformer.

This module re-implements, from docs/model.md alone, the model that
tlm_model computes in C, so that the two can be compared number for number
(the golden fixtures in tests/fixtures/ are produced with it by
make_fixtures.py).

It is written like a lecture implementation: no nn.Module, no
nn.Transformer*, no fused attention. The parameters are a plain dict
{name: tensor} keyed by the names of docs/model.md, and forward() is a
sequence of tensor operations whose shapes are given in the comments.

Notation (as in docs/model.md):
    B batch, T decoder (or encoder-only) length, Ts source length,
    D d_model, H n_heads, Hkv n_kv_heads, hd head_dim, F d_ff, V vocab_size.

The functions work in whatever floating dtype the parameters have; the
fixtures are computed in float64 from float32 weights.
"""

import dataclasses
import json
import math

import torch


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class Config:
    """Every field of docs/model.md's configuration table, same names."""

    vocab_size: int
    d_model: int = 128
    n_heads: int = 4
    head_dim: int = 0            # 0 means d_model / n_heads
    d_ff: int = 0                # 0 means 4 * d_model
    n_encoder_layers: int = 0
    n_decoder_layers: int = 4
    max_context: int = 256
    position: str = "learned"    # "sinusoidal" | "learned" | "rotary"
    norm: str = "layer"          # "layer" | "rms"
    norm_placement: str = "pre"  # "pre" | "post"
    activation: str = "gelu"     # "gelu" (tanh) | "gelu_exact" | "relu" | "swiglu"
    bias: int = 1
    tied_output: int = 1
    embedding_dropout: float = 0.0
    residual_dropout: float = 0.0
    norm_eps: float = 1e-5
    rope_base: float = 10000.0
    init_seed: int = 0
    n_kv_heads: int = 0          # 0 means n_heads; must divide n_heads

    def resolved(self):
        """A copy with head_dim, d_ff and n_kv_heads filled in (never 0),
        validated."""
        c = dataclasses.replace(self)
        if c.n_kv_heads == 0:
            c.n_kv_heads = c.n_heads
        if c.n_kv_heads < 1 or c.n_heads % c.n_kv_heads:
            raise ValueError("n_kv_heads %d must divide n_heads %d"
                             % (c.n_kv_heads, c.n_heads))
        if c.head_dim == 0:
            if c.d_model % c.n_heads != 0:
                raise ValueError("head_dim 0 needs n_heads to divide d_model")
            c.head_dim = c.d_model // c.n_heads
        if c.d_ff == 0:
            c.d_ff = 4 * c.d_model
        if c.position not in ("sinusoidal", "learned", "rotary"):
            raise ValueError("position %r" % c.position)
        if c.norm not in ("layer", "rms"):
            raise ValueError("norm %r" % c.norm)
        if c.norm_placement not in ("pre", "post"):
            raise ValueError("norm_placement %r" % c.norm_placement)
        if c.activation not in ("gelu", "gelu_exact", "relu", "swiglu"):
            raise ValueError("activation %r" % c.activation)
        if c.position == "sinusoidal" and c.d_model % 2:
            raise ValueError("sinusoidal positions need an even d_model")
        if c.position == "rotary" and c.head_dim % 2:
            raise ValueError("rotary positions need an even head_dim")
        if c.n_encoder_layers == 0 and c.n_decoder_layers == 0:
            raise ValueError("the model has no layers")
        if c.embedding_dropout != 0 or c.residual_dropout != 0:
            raise ValueError("the reference computes without dropout")
        return c

    @property
    def kind(self):
        if self.n_encoder_layers == 0:
            return "decoder"      # GPT
        if self.n_decoder_layers == 0:
            return "encoder"      # encoder-only (BERT-like)
        return "seq2seq"          # encoder-decoder

    def to_json(self):
        """The config as the JSON object stored in fixture metadata.
        n_kv_heads appears only when it differs from n_heads, as tlm writes
        it (so the multi-head fixtures are what they were before it)."""
        fields = dataclasses.asdict(self.resolved())
        if fields["n_kv_heads"] == fields["n_heads"]:
            del fields["n_kv_heads"]
        return json.dumps(fields, sort_keys=False)


# ---------------------------------------------------------------------------
# Parameter names and shapes (docs/model.md, "Parameter names and shapes")
# ---------------------------------------------------------------------------

def _norm_shapes(c, name):
    """A norm: weight [D], bias [D] only for LayerNorm with bias on."""
    shapes = {name + ".weight": (c.d_model,)}
    if c.norm == "layer" and c.bias:
        shapes[name + ".bias"] = (c.d_model,)
    return shapes


def _linear_shapes(c, name, n_out, n_in):
    """A linear projection: weight [out, in], bias [out] when bias is on."""
    shapes = {name + ".weight": (n_out, n_in)}
    if c.bias:
        shapes[name + ".bias"] = (n_out,)
    return shapes


def _attention_shapes(c, prefix):
    """q [H*hd, D]; k and v [Hkv*hd, D] (grouped-query attention);
    o [D, H*hd]."""
    D, HD, KVD = c.d_model, c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim
    shapes = {}
    shapes.update(_linear_shapes(c, prefix + ".q_proj", HD, D))
    for p in ("k_proj", "v_proj"):
        shapes.update(_linear_shapes(c, prefix + "." + p, KVD, D))
    shapes.update(_linear_shapes(c, prefix + ".o_proj", D, HD))
    return shapes


def _ffn_shapes(c, prefix):
    D, Fw = c.d_model, c.d_ff
    shapes = {}
    if c.activation == "swiglu":
        shapes.update(_linear_shapes(c, prefix + ".gate_proj", Fw, D))
    shapes.update(_linear_shapes(c, prefix + ".up_proj", Fw, D))
    shapes.update(_linear_shapes(c, prefix + ".down_proj", D, Fw))
    return shapes


def parameter_shapes(config):
    """Ordered dict {name: shape} of every parameter of the model."""
    c = config.resolved()
    shapes = {"token_embedding.weight": (c.vocab_size, c.d_model)}
    if c.position == "learned":
        shapes["position_embedding.weight"] = (c.max_context, c.d_model)
    for stack, n_layers in (("encoder", c.n_encoder_layers),
                            ("decoder", c.n_decoder_layers)):
        for i in range(n_layers):
            layer = "%s.layers.%d" % (stack, i)
            shapes.update(_norm_shapes(c, layer + ".self_attn_norm"))
            shapes.update(_attention_shapes(c, layer + ".self_attn"))
            if stack == "decoder" and c.kind == "seq2seq":
                shapes.update(_norm_shapes(c, layer + ".cross_attn_norm"))
                shapes.update(_attention_shapes(c, layer + ".cross_attn"))
            shapes.update(_norm_shapes(c, layer + ".ffn_norm"))
            shapes.update(_ffn_shapes(c, layer + ".ffn"))
        if n_layers > 0 and c.norm_placement == "pre":
            shapes.update(_norm_shapes(c, stack + ".final_norm"))
    if not c.tied_output:
        shapes["lm_head.weight"] = (c.vocab_size, c.d_model)
    return shapes


def random_parameters(config, generator, weight_std=0.2, dtype=torch.float32):
    """Random parameters for a test: weights and embeddings ~ N(0, std^2),
    norm weights ~ 1 + N(0, 0.1^2), biases (linear and norm) ~ N(0, 0.05^2).

    Larger than the GPT-2 initialisation of docs/model.md on purpose, so
    that a comparison against these weights is sensitive to every term.
    """
    params = {}
    for name, shape in parameter_shapes(config).items():
        noise = torch.randn(shape, generator=generator, dtype=torch.float64)
        is_norm = "_norm." in name   # self_attn_norm, ffn_norm, final_norm, ...
        if is_norm and name.endswith(".weight"):
            value = 1.0 + 0.1 * noise
        elif name.endswith(".bias"):
            value = 0.05 * noise
        else:
            value = weight_std * noise
        params[name] = value.to(dtype)
    return params


# ---------------------------------------------------------------------------
# Building blocks (each matches one tlm_* operation of include/tlm.h)
# ---------------------------------------------------------------------------

def linear(x, params, name):
    """x W^T + b: x [..., in], W [out, in], b [out] (when present)."""
    y = torch.matmul(x, params[name + ".weight"].transpose(0, 1))
    b = params.get(name + ".bias")
    if b is not None:
        y = y + b
    return y


def layer_norm(x, weight, bias, eps):
    """(x - mean) / sqrt(var + eps) * weight + bias over the last dim,
    with the biased variance (divide by D). x [..., D]."""
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    y = (x - mean) / torch.sqrt(var + eps) * weight
    if bias is not None:
        y = y + bias
    return y


def rms_norm(x, weight, eps):
    """x / sqrt(mean(x^2) + eps) * weight over the last dim. x [..., D]."""
    ms = (x * x).mean(dim=-1, keepdim=True)
    return x / torch.sqrt(ms + eps) * weight


def norm(x, params, name, c):
    weight = params[name + ".weight"]
    if c.norm == "layer":
        return layer_norm(x, weight, params.get(name + ".bias"), c.norm_eps)
    return rms_norm(x, weight, c.norm_eps)


def gelu_tanh(x):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (TLM_GELU_TANH)."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi)
                                       * (x + 0.044715 * x ** 3)))


def gelu_exact(x):
    """x Phi(x) = 0.5 x (1 + erf(x / sqrt(2)))  (TLM_GELU_EXACT)."""
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def silu(x):
    """x sigmoid(x)."""
    return x * torch.sigmoid(x)


def sinusoidal_table(T, D, dtype):
    """PE [T, D]: PE[p, 2i] = sin(p / 10000^(2i/D)), PE[p, 2i+1] = cos(...)
    (tlm_add_sinusoidal_positions with offset 0). Computed in float64."""
    p = torch.arange(T, dtype=torch.float64).unsqueeze(1)          # [T, 1]
    two_i = torch.arange(0, D, 2, dtype=torch.float64)               # [D/2]
    angle = p / torch.pow(10000.0, two_i / D)                        # [T, D/2]
    pe = torch.zeros(T, D, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe.to(dtype)


def rope(x, base):
    """Rotary position embedding (tlm_rope with offset 0).

    x [B, H, T, hd]. Each interleaved pair (x[2i], x[2i+1]) of the vector at
    position p is rotated by the angle theta = p * base^(-2i/hd), i the pair
    index 0..hd/2-1:
        y[2i]   = x[2i] cos(theta) - x[2i+1] sin(theta)
        y[2i+1] = x[2i] sin(theta) + x[2i+1] cos(theta)
    """
    T, hd = x.shape[-2], x.shape[-1]
    p = torch.arange(T, dtype=torch.float64).unsqueeze(1)            # [T, 1]
    two_i = torch.arange(0, hd, 2, dtype=torch.float64)              # [hd/2]
    theta = p * torch.pow(float(base), -two_i / hd)                  # [T, hd/2]
    cos = torch.cos(theta).to(x.dtype)
    sin = torch.sin(theta).to(x.dtype)
    x_even, x_odd = x[..., 0::2], x[..., 1::2]                       # [B,H,T,hd/2]
    y_even = x_even * cos - x_odd * sin
    y_odd = x_even * sin + x_odd * cos
    # interleave back: [..., hd/2, 2] -> [..., hd]
    return torch.stack((y_even, y_odd), dim=-1).flatten(-2)


def split_heads(x, H):
    """[B, T, H*hd] -> [B, H, T, hd]."""
    B, T, HD = x.shape
    return x.reshape(B, T, H, HD // H).transpose(1, 2)


def merge_heads(x):
    """[B, H, T, hd] -> [B, T, H*hd]."""
    B, H, T, hd = x.shape
    return x.transpose(1, 2).reshape(B, T, H * hd)


def attention_core(q, k, v, key_mask=None, causal=False):
    """softmax(q k^T / sqrt(hd) + mask) v, written out (tlm_attention).

    q [B, H, Tq, hd], k [B, H, Tk, hd], v [B, H, Tk, hd]
    key_mask None or [B, Tk] (non-zero: visible)
    causal: query i sees keys j <= i + (Tk - Tq)
    Returns [B, H, Tq, hd]. A query row that sees no key gives zeros.
    """
    B, H, Tq, hd = q.shape
    Tk = k.shape[2]
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd)   # [B,H,Tq,Tk]

    visible = torch.ones(B, 1, Tq, Tk, dtype=torch.bool)
    if key_mask is not None:
        visible = visible & (key_mask != 0).reshape(B, 1, 1, Tk)
    if causal:
        i = torch.arange(Tq).reshape(Tq, 1)
        j = torch.arange(Tk).reshape(1, Tk)
        visible = visible & (j <= i + (Tk - Tq)).reshape(1, 1, Tq, Tk)
    visible = visible.expand(B, H, Tq, Tk)

    # -inf on hidden keys; a row with no visible key is set to 0 before the
    # softmax and its probabilities multiplied by 0 below, so it yields
    # zeros (and no NaN) in the forward and the backward pass.
    any_visible = visible.any(dim=-1, keepdim=True)                  # [B,H,Tq,1]
    scores = scores.masked_fill(~visible, float("-inf"))
    scores = torch.where(any_visible, scores, torch.zeros_like(scores))
    probs = torch.softmax(scores, dim=-1) * visible.to(scores.dtype)
    return torch.matmul(probs, v)                                     # [B,H,Tq,hd]


def attention_block(x, kv, params, prefix, c, key_mask, causal, rotary):
    """One attention sub-layer (self- or cross-attention).

    x [B, Tq, D] gives the queries, kv [B, Tk, D] the keys and values
    (kv is x for self-attention, the encoder output for cross-attention).
    Returns [B, Tq, D].
    """
    H, Hkv = c.n_heads, c.n_kv_heads
    q = split_heads(linear(x, params, prefix + ".q_proj"), H)     # [B,H,Tq,hd]
    k = split_heads(linear(kv, params, prefix + ".k_proj"), Hkv)  # [B,Hkv,Tk,hd]
    v = split_heads(linear(kv, params, prefix + ".v_proj"), Hkv)  # [B,Hkv,Tk,hd]
    if rotary:
        q = rope(q, c.rope_base)
        k = rope(k, c.rope_base)
    # Grouped-query attention: each key/value head serves H/Hkv consecutive
    # query heads (query head h uses kv head h // (H/Hkv)), done here the
    # plain way, by repeating each kv head for its group.
    k = torch.repeat_interleave(k, H // Hkv, dim=1)               # [B,H,Tk,hd]
    v = torch.repeat_interleave(v, H // Hkv, dim=1)               # [B,H,Tk,hd]
    a = attention_core(q, k, v, key_mask=key_mask, causal=causal)
    a = merge_heads(a)                                            # [B,Tq,H*hd]
    return linear(a, params, prefix + ".o_proj")                  # [B,Tq,D]


def ffn_block(x, params, prefix, c):
    """Feedforward sub-layer. x [B, T, D] -> [B, T, F] -> [B, T, D]."""
    if c.activation == "swiglu":
        gate = linear(x, params, prefix + ".gate_proj")           # [B,T,F]
        up = linear(x, params, prefix + ".up_proj")               # [B,T,F]
        hidden = silu(gate) * up
    else:
        up = linear(x, params, prefix + ".up_proj")               # [B,T,F]
        if c.activation == "gelu":
            hidden = gelu_tanh(up)
        elif c.activation == "gelu_exact":
            hidden = gelu_exact(up)
        else:
            hidden = torch.relu(up)
    return linear(hidden, params, prefix + ".down_proj")          # [B,T,D]


def residual(x, params, norm_name, c, sublayer):
    """Wrap a sub-layer with its residual connection and norm.

    pre-norm:  x + sublayer(norm(x))
    post-norm: norm(x + sublayer(x))
    (dropout is 0 in the reference)
    """
    if c.norm_placement == "pre":
        return x + sublayer(norm(x, params, norm_name, c))
    return norm(x + sublayer(x), params, norm_name, c)


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------

def embed(params, c, ids):
    """Token embedding plus positions. ids [B, T] (int) -> h [B, T, D]."""
    h = params["token_embedding.weight"][ids.long()]              # [B,T,D]
    T = ids.shape[1]
    if T > c.max_context:
        raise ValueError("sequence length %d > max_context %d"
                         % (T, c.max_context))
    if c.position == "learned":
        h = h + params["position_embedding.weight"][:T]           # + [T,D]
    elif c.position == "sinusoidal":
        h = h + sinusoidal_table(T, c.d_model, h.dtype)           # + [T,D]
    # rotary: nothing here, q and k are rotated inside self-attention
    return h                                                      # no sqrt(D) scale


def encoder(params, c, src_ids, src_mask):
    """The encoder stack: bidirectional self-attention that sees every
    non-padding key, then feedforward. src_ids [B, Ts] -> [B, Ts, D]."""
    rotary = c.position == "rotary"
    x = embed(params, c, src_ids)
    for i in range(c.n_encoder_layers):
        layer = "encoder.layers.%d" % i
        x = residual(x, params, layer + ".self_attn_norm", c,
                     lambda y: attention_block(y, y, params, layer + ".self_attn",
                                               c, src_mask, False, rotary))
        x = residual(x, params, layer + ".ffn_norm", c,
                     lambda y: ffn_block(y, params, layer + ".ffn", c))
    if c.norm_placement == "pre":
        x = norm(x, params, "encoder.final_norm", c)
    return x


def decoder(params, c, ids, memory, memory_mask):
    """The decoder stack: causal self-attention, cross-attention to the
    encoder output `memory` [B, Ts, D] when there is one, feedforward.
    ids [B, T] -> [B, T, D]."""
    rotary = c.position == "rotary"
    x = embed(params, c, ids)
    for i in range(c.n_decoder_layers):
        layer = "decoder.layers.%d" % i
        x = residual(x, params, layer + ".self_attn_norm", c,
                     lambda y: attention_block(y, y, params, layer + ".self_attn",
                                               c, None, True, rotary))
        if memory is not None:
            # no rotary in cross-attention; padding keys of the source hidden
            x = residual(x, params, layer + ".cross_attn_norm", c,
                         lambda y: attention_block(y, memory, params,
                                                   layer + ".cross_attn", c,
                                                   memory_mask, False, False))
        x = residual(x, params, layer + ".ffn_norm", c,
                     lambda y: ffn_block(y, params, layer + ".ffn", c))
    if c.norm_placement == "pre":
        x = norm(x, params, "decoder.final_norm", c)
    return x


def cross_entropy(logits, targets, ignore_index=-1):
    """Mean over positions with target != ignore_index of
    -log softmax(logits)[target]; 0 when every position is ignored
    (tlm_cross_entropy). logits [B, T, V], targets [B, T] -> shape [1]."""
    V = logits.shape[-1]
    logp = torch.log_softmax(logits.reshape(-1, V), dim=-1)      # [B*T, V]
    t = targets.reshape(-1)
    keep = t != ignore_index
    if not bool(keep.any()):
        return (logits.sum() * 0).reshape(1)
    picked = logp[keep].gather(1, t[keep].long().unsqueeze(1))   # [N, 1]
    return (-picked.mean()).reshape(1)


def forward(params, config, ids, targets, src_ids=None, src_mask=None):
    """The whole model.

    decoder-only: ids [B, T] is the input; src_ids and src_mask are None.
    encoder-only: ids [B, T] is the encoder input and src_mask [B, T]
                  (optional) its padding mask (1 visible, 0 padding);
                  src_ids is None.
    seq2seq:      src_ids [B, Ts] the encoder input, src_mask [B, Ts]
                  (optional) its padding mask, ids [B, T] the decoder input.
    targets [B, T] (int, -1 ignored) or None.

    Returns (logits [B, T, V], loss [1] or None).
    """
    c = config.resolved()
    if c.kind == "decoder":
        if src_ids is not None or src_mask is not None:
            raise ValueError("a decoder-only model takes no source")
        y = decoder(params, c, ids, None, None)
    elif c.kind == "encoder":
        if src_ids is not None:
            raise ValueError("an encoder-only model takes its input as ids")
        y = encoder(params, c, ids, src_mask)
    else:
        if src_ids is None:
            raise ValueError("a seq2seq model needs src_ids")
        memory = encoder(params, c, src_ids, src_mask)
        y = decoder(params, c, ids, memory, src_mask)

    w_out = params["token_embedding.weight"] if c.tied_output \
        else params["lm_head.weight"]                             # [V, D]
    logits = torch.matmul(y, w_out.transpose(0, 1))               # [B,T,V]
    loss = None if targets is None else cross_entropy(logits, targets, -1)
    return logits, loss


def forward_and_grads(params, config, ids, targets, src_ids=None,
                      src_mask=None, dtype=torch.float64):
    """Run forward and backward in `dtype`, from copies of `params`.

    Returns (logits, loss, grads) with grads {name: d loss / d param}, all
    in `dtype`.
    """
    leaves = {name: p.detach().to(dtype).clone().requires_grad_(True)
              for name, p in params.items()}
    logits, loss = forward(leaves, config, ids, targets, src_ids, src_mask)
    loss.sum().backward()
    grads = {name: p.grad.detach().clone() for name, p in leaves.items()}
    return logits.detach(), loss.detach(), grads
