#!/usr/bin/python3
"""Sanity checks of the golden fixtures and of the reference itself.

    /usr/bin/python3 tests/reference/check_fixtures.py [--dir tests/fixtures]

For every tests/fixtures/*.safetensors:
  1. parse it with the reader below (independent of make_fixtures.py's
     writer) and validate the format: header length and padding, dtypes,
     shapes against byte ranges, contiguous non-overlapping data that fills
     the file, string metadata;
  2. check the config in the metadata (every docs/model.md field, resolved)
     and that the parameter and grad.* names and shapes are exactly those
     of docs/model.md for it;
  3. re-run the reference from the stored float32 weights in float64 (must
     reproduce the stored values up to float32 rounding) and in float32
     (must agree with float64 to ~1e-5), printing the max relative
     differences;
  4. check the float64 gradient against a central finite difference of the
     float64 loss along a few random directions;
  5. where the architecture allows (LayerNorm with bias, no rotary, no
     SwiGLU, n_heads * head_dim = d_model), compute the logits again with
     PyTorch's nn.TransformerEncoderLayer / nn.TransformerDecoderLayer
     loaded with the stored weights.

Before that, the hand-written building blocks of tlm_reference.py are
compared with PyTorch's own (layer_norm, gelu, silu, cross_entropy) and
with differently written versions (rotary through complex numbers,
sinusoid and attention by loops).

Exit status 0 when everything holds, 1 otherwise.
"""

import argparse
import dataclasses
import glob
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tlm_reference as ref  # noqa: E402

# tolerances on max|a - b| / max|b| per tensor
TOL_F64_VS_STORED = 1e-6   # stored values are float64 results rounded to f32
TOL_F32_VS_F64 = 5e-5      # float32 forward/backward against float64
TOL_FINITE_DIFF = 1e-6     # directional derivative, float64


class FixtureError(Exception):
    pass


# ---------------------------------------------------------------------------
# safetensors reader
# ---------------------------------------------------------------------------

_NP_DTYPES = {"F32": np.dtype("<f4"), "I32": np.dtype("<i4")}


def read_safetensors(path):
    """Return ({name: numpy array}, {str: str} metadata), validating."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise FixtureError("%s: shorter than the 8-byte header length" % path)
    (n,) = struct.unpack_from("<Q", blob, 0)
    if n % 8 != 0:
        raise FixtureError("header length %d is not a multiple of 8" % n)
    if 8 + n > len(blob):
        raise FixtureError("header length %d runs past the file" % n)
    raw_header = blob[8:8 + n]
    if not raw_header.startswith(b"{"):
        raise FixtureError("header does not start with '{'")
    header = json.loads(raw_header.decode("utf-8"))
    data = blob[8 + n:]

    metadata = header.pop("__metadata__", {})
    if not all(isinstance(k, str) and isinstance(v, str)
               for k, v in metadata.items()):
        raise FixtureError("__metadata__ values must be strings")

    tensors = {}
    ranges = []
    for name, entry in header.items():
        if set(entry) != {"dtype", "shape", "data_offsets"}:
            raise FixtureError("%s: header keys %s" % (name, sorted(entry)))
        dtype = _NP_DTYPES.get(entry["dtype"])
        if dtype is None:
            raise FixtureError("%s: unexpected dtype %s" % (name, entry["dtype"]))
        shape = tuple(entry["shape"])
        begin, end = entry["data_offsets"]
        count = int(np.prod(shape)) if shape else 1
        if end - begin != count * dtype.itemsize or begin < 0 or end > len(data):
            raise FixtureError("%s: offsets %s do not fit shape %s"
                               % (name, entry["data_offsets"], shape))
        tensors[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(shape)
        ranges.append((begin, end))
    ranges.sort()
    position = 0
    for begin, end in ranges:
        if begin != position:
            raise FixtureError("data has a hole or an overlap at byte %d" % begin)
        position = end
    if position != len(data):
        raise FixtureError("%d trailing bytes after the data"
                           % (len(data) - position))
    return tensors, metadata


# ---------------------------------------------------------------------------
# Building blocks against independent versions
# ---------------------------------------------------------------------------

def worst(values):
    """The largest of `values`, or NaN if any is NaN: Python's max() skips
    a NaN that is not first (every comparison with it is false)."""
    values = list(values)
    for v in values:
        if math.isnan(v):
            return v
    return max(values)


def rel(a, b, floor=0.0):
    """max|a - b| / max(max|b|, floor); the floor keeps a tensor that is
    zero in exact arithmetic (see below) from dividing by round-off."""
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    scale = worst([float(b.abs().max()) if b.numel() else 0.0, floor])
    diff = float((a - b).abs().max()) if b.numel() else 0.0
    return diff / scale if scale > 0 else diff


def check_building_blocks():
    problems = []
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 5, 12, generator=g, dtype=torch.float64)
    w = 1 + 0.1 * torch.randn(12, generator=g, dtype=torch.float64)
    b = 0.1 * torch.randn(12, generator=g, dtype=torch.float64)

    def expect(what, got, want, tol=1e-12):
        r = rel(got, want)
        if not r <= tol:
            problems.append("%s: relative difference %.3g" % (what, r))

    expect("layer_norm", ref.layer_norm(x, w, b, 1e-5),
           F.layer_norm(x, (12,), w, b, 1e-5))
    expect("rms_norm", ref.rms_norm(x, w, 1e-5),
           x * torch.rsqrt((x ** 2).sum(-1, keepdim=True) / 12 + 1e-5) * w)
    expect("gelu_tanh", ref.gelu_tanh(x), F.gelu(x, approximate="tanh"))
    expect("gelu_exact", ref.gelu_exact(x), F.gelu(x))
    expect("silu", ref.silu(x), F.silu(x))

    logits = torch.randn(2, 4, 7, generator=g, dtype=torch.float64)
    targets = torch.tensor([[1, -1, 6, 0], [-1, 2, 3, 3]])
    expect("cross_entropy", ref.cross_entropy(logits, targets, -1),
           F.cross_entropy(logits.reshape(-1, 7), targets.reshape(-1),
                           ignore_index=-1).reshape(1))

    # rotary as complex multiplication: z_i = x[2i] + j x[2i+1] times
    # exp(j p base^(-2i/hd))
    q = torch.randn(2, 3, 6, 10, generator=g, dtype=torch.float64)
    base = 500.0
    z = torch.view_as_complex(q.reshape(2, 3, 6, 5, 2).contiguous())
    ang = torch.tensor([[p * base ** (-2.0 * i / 10) for i in range(5)]
                        for p in range(6)], dtype=torch.float64)
    want = torch.view_as_real(z * torch.polar(torch.ones_like(ang), ang))
    expect("rope", ref.rope(q, base), want.reshape(2, 3, 6, 10))

    pe = [[math.sin(p / 10000 ** (d / 12)) if d % 2 == 0
           else math.cos(p / 10000 ** ((d - 1) / 12)) for d in range(12)]
          for p in range(9)]
    expect("sinusoidal", ref.sinusoidal_table(9, 12, torch.float64),
           torch.tensor(pe, dtype=torch.float64))

    # attention by explicit loops, with a padding mask and causality
    B, H, Tq, Tk, hd = 2, 2, 4, 6, 3
    q = torch.randn(B, H, Tq, hd, generator=g, dtype=torch.float64)
    k = torch.randn(B, H, Tk, hd, generator=g, dtype=torch.float64)
    v = torch.randn(B, H, Tk, hd, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0, 1, 1, 1], [0, 0, 0, 1, 1, 0]])
    for causal in (False, True):
        want = torch.zeros(B, H, Tq, hd, dtype=torch.float64)
        for bi in range(B):
            for h in range(H):
                for i in range(Tq):
                    keys = [j for j in range(Tk) if mask[bi, j]
                            and (not causal or j <= i + Tk - Tq)]
                    if not keys:
                        continue     # a row that sees nothing gives zeros
                    s = [float(q[bi, h, i] @ k[bi, h, j]) / math.sqrt(hd)
                         for j in keys]
                    m = max(s)
                    e = [math.exp(t - m) for t in s]
                    for j, ej in zip(keys, e):
                        want[bi, h, i] += ej / sum(e) * v[bi, h, j]
        expect("attention causal=%d" % causal,
               ref.attention_core(q, k, v, mask, causal), want)
    # query rows of batch 1 with causal: rows 0..1 see keys j<=2/3, all
    # padding up to j=2, so row 0 must be exactly zero (covered above).

    # grouped-query attention block (4 query heads over 2 and over 1
    # key/value heads, rotary) against a loop that gives query head h the
    # columns of kv head h // (H / Hkv) of the k and v projections
    for n_kv in (2, 1):
        c = ref.Config(vocab_size=5, d_model=8, n_heads=4, head_dim=4,
                       n_kv_heads=n_kv, position="rotary", bias=1).resolved()
        params = {name: torch.randn(shape, generator=g, dtype=torch.float64)
                  for name, shape in ref._attention_shapes(c, "a").items()}
        x = torch.randn(2, 5, 8, generator=g, dtype=torch.float64)
        heads = []
        for h in range(4):
            kv = h // (4 // n_kv)
            rows_q = slice(4 * h, 4 * h + 4)
            rows_kv = slice(4 * kv, 4 * kv + 4)
            qh = x @ params["a.q_proj.weight"][rows_q].T + params["a.q_proj.bias"][rows_q]
            kh = x @ params["a.k_proj.weight"][rows_kv].T + params["a.k_proj.bias"][rows_kv]
            vh = x @ params["a.v_proj.weight"][rows_kv].T + params["a.v_proj.bias"][rows_kv]
            qh = ref.rope(qh.unsqueeze(1), c.rope_base)
            kh = ref.rope(kh.unsqueeze(1), c.rope_base)
            heads.append(ref.attention_core(qh, kh, vh.unsqueeze(1), None, True))
        merged = torch.cat(heads, dim=1).transpose(1, 2).reshape(2, 5, 16)
        want = merged @ params["a.o_proj.weight"].T + params["a.o_proj.bias"]
        expect("grouped-query attention, n_kv_heads %d" % n_kv,
               ref.attention_block(x, x, params, "a", c, None, True, True), want)
    return problems


# ---------------------------------------------------------------------------
# The whole model against PyTorch's own transformer layers
# ---------------------------------------------------------------------------
#
# Where the architectures coincide (LayerNorm with bias, H * hd = D, learned
# or sinusoidal positions, no SwiGLU) the stored weights are loaded into
# nn.TransformerEncoderLayer / nn.TransformerDecoderLayer and the model is
# assembled around them: an independent check of the attention, masks,
# residual wiring and norm placement. (The reference itself never uses
# these classes.)

def _load_attention(mha, params, prefix):
    w = torch.cat([params[prefix + "." + p + "_proj.weight"]
                   for p in ("q", "k", "v")])
    b = torch.cat([params[prefix + "." + p + "_proj.bias"]
                   for p in ("q", "k", "v")])
    mha.in_proj_weight.copy_(w)
    mha.in_proj_bias.copy_(b)
    mha.out_proj.weight.copy_(params[prefix + ".o_proj.weight"])
    mha.out_proj.bias.copy_(params[prefix + ".o_proj.bias"])


def _load_norm(ln, params, name):
    ln.weight.copy_(params[name + ".weight"])
    ln.bias.copy_(params[name + ".bias"])


def _load_ffn(layer, params, prefix):
    layer.linear1.weight.copy_(params[prefix + ".up_proj.weight"])
    layer.linear1.bias.copy_(params[prefix + ".up_proj.bias"])
    layer.linear2.weight.copy_(params[prefix + ".down_proj.weight"])
    layer.linear2.bias.copy_(params[prefix + ".down_proj.bias"])


def builtin_applies(c):
    return (c.norm == "layer" and c.bias and c.position != "rotary"
            and c.activation != "swiglu" and c.n_heads * c.head_dim == c.d_model
            and c.n_kv_heads in (0, c.n_heads))   # nn.MultiheadAttention: no GQA


@torch.no_grad()
def builtin_logits(params, c, ids, src_ids, src_mask):
    """Logits [B, T, V] through nn.Transformer{Encoder,Decoder}Layer, float64."""
    p = {n: t.to(torch.float64) for n, t in params.items()}
    act = {"gelu": lambda x: F.gelu(x, approximate="tanh"),
           "gelu_exact": F.gelu, "relu": F.relu}[c.activation]
    kw = dict(d_model=c.d_model, nhead=c.n_heads, dim_feedforward=c.d_ff,
              dropout=0.0, activation=act, layer_norm_eps=c.norm_eps,
              batch_first=True, norm_first=c.norm_placement == "pre",
              dtype=torch.float64)

    def embed(tokens):
        h = p["token_embedding.weight"][tokens]
        T = tokens.shape[1]
        if c.position == "learned":
            h = h + p["position_embedding.weight"][:T]
        else:
            h = h + ref.sinusoidal_table(T, c.d_model, torch.float64)
        return h

    def final(x, stack):
        if c.norm_placement == "pre":
            ln = torch.nn.LayerNorm(c.d_model, eps=c.norm_eps, dtype=torch.float64)
            _load_norm(ln, p, stack + ".final_norm")
            x = ln(x)
        return x

    def encoder_stack(x, stack, n_layers, attn_mask, padding):
        for i in range(n_layers):
            pre = "%s.layers.%d" % (stack, i)
            layer = torch.nn.TransformerEncoderLayer(**kw).eval()
            _load_attention(layer.self_attn, p, pre + ".self_attn")
            _load_norm(layer.norm1, p, pre + ".self_attn_norm")
            _load_norm(layer.norm2, p, pre + ".ffn_norm")
            _load_ffn(layer, p, pre + ".ffn")
            x = layer(x, src_mask=attn_mask, src_key_padding_mask=padding)
        return final(x, stack)

    def causal_mask(T):
        return torch.triu(torch.full((T, T), float("-inf"),
                                     dtype=torch.float64), diagonal=1)

    T = ids.shape[1]
    if c.kind == "decoder":    # a GPT layer is an encoder layer, causal
        y = encoder_stack(embed(ids), "decoder", c.n_decoder_layers,
                          causal_mask(T), None)
    elif c.kind == "encoder":
        y = encoder_stack(embed(ids), "encoder", c.n_encoder_layers,
                          None, src_mask == 0)
    else:
        memory = encoder_stack(embed(src_ids), "encoder", c.n_encoder_layers,
                               None, src_mask == 0)
        x = embed(ids)
        for i in range(c.n_decoder_layers):
            pre = "decoder.layers.%d" % i
            layer = torch.nn.TransformerDecoderLayer(**kw).eval()
            _load_attention(layer.self_attn, p, pre + ".self_attn")
            _load_attention(layer.multihead_attn, p, pre + ".cross_attn")
            _load_norm(layer.norm1, p, pre + ".self_attn_norm")
            _load_norm(layer.norm2, p, pre + ".cross_attn_norm")
            _load_norm(layer.norm3, p, pre + ".ffn_norm")
            _load_ffn(layer, p, pre + ".ffn")
            x = layer(x, memory, tgt_mask=causal_mask(T),
                      memory_key_padding_mask=src_mask == 0)
        y = final(x, "decoder")
    w_out = p["token_embedding.weight"] if c.tied_output else p["lm_head.weight"]
    return y @ w_out.T


# ---------------------------------------------------------------------------
# One fixture
# ---------------------------------------------------------------------------

CONFIG_FIELDS = [f.name for f in dataclasses.fields(ref.Config)]


def check_fixture(path, n_directions=3):
    problems = []
    tensors, meta = read_safetensors(path)
    for key in ("tlm.config", "tlm.fixture", "tlm.generator"):
        if key not in meta:
            raise FixtureError("metadata %s missing" % key)
    cfg_dict = json.loads(meta["tlm.config"])
    # n_kv_heads is written only when it differs from n_heads (as tlm does)
    want_fields = [f for f in CONFIG_FIELDS
                   if f != "n_kv_heads" or "n_kv_heads" in cfg_dict]
    if sorted(cfg_dict) != sorted(want_fields):
        raise FixtureError("config fields %s" % sorted(cfg_dict))
    if cfg_dict.get("n_kv_heads", 0) == cfg_dict["n_heads"]:
        raise FixtureError("n_kv_heads written although it equals n_heads")
    c = ref.Config(**cfg_dict)
    if c.head_dim == 0 or c.d_ff == 0:
        raise FixtureError("head_dim and d_ff must be resolved")
    if json.loads(c.to_json()) != cfg_dict:
        raise FixtureError("config is not in resolved form")

    # names and shapes
    shapes = ref.parameter_shapes(c)
    want_inputs = {"input.ids", "input.targets"}
    if c.kind == "encoder":
        want_inputs |= {"input.mask"}
    elif c.kind == "seq2seq":
        want_inputs |= {"input.src_ids", "input.src_mask"}
    want = (set(shapes) | {"grad." + n for n in shapes} | want_inputs
            | {"expected.logits", "expected.loss"})
    if set(tensors) != want:
        raise FixtureError("tensor names differ: missing %s, extra %s"
                           % (sorted(want - set(tensors)),
                              sorted(set(tensors) - want)))
    for name, shape in shapes.items():
        for key in (name, "grad." + name):
            if tensors[key].shape != tuple(shape) or tensors[key].dtype != np.float32:
                raise FixtureError("%s: %s %s, expected F32 %s" % (
                    key, tensors[key].dtype, tensors[key].shape, shape))
    for key in want_inputs:
        if tensors[key].dtype != np.int32:
            raise FixtureError("%s is not I32" % key)

    ids = torch.from_numpy(tensors["input.ids"].astype(np.int64))
    targets = torch.from_numpy(tensors["input.targets"].astype(np.int64))
    B, T = ids.shape
    V = c.vocab_size
    src_ids = src_mask = None
    if c.kind == "encoder":
        src_mask = torch.from_numpy(tensors["input.mask"].astype(np.int64))
    elif c.kind == "seq2seq":
        src_ids = torch.from_numpy(tensors["input.src_ids"].astype(np.int64))
        src_mask = torch.from_numpy(tensors["input.src_mask"].astype(np.int64))
    if tensors["expected.logits"].shape != (B, T, V) or \
            tensors["expected.loss"].shape != (1,):
        raise FixtureError("expected.* shapes")
    if targets.shape != (B, T) or not bool(((targets >= -1) & (targets < V)).all()):
        raise FixtureError("input.targets shape or range")
    if not bool((targets == -1).any()) or not bool((targets != -1).any()):
        raise FixtureError("input.targets should mix -1 and real targets")
    if not bool(((ids >= 0) & (ids < V)).all()):
        raise FixtureError("input.ids out of range")
    if not np.all(np.isfinite(tensors["expected.logits"])):
        raise FixtureError("non-finite logits")

    params = {n: torch.from_numpy(tensors[n].copy()) for n in shapes}
    stored = {"logits": torch.from_numpy(tensors["expected.logits"].copy()),
              "loss": torch.from_numpy(tensors["expected.loss"].copy())}
    stored_grads = {n: torch.from_numpy(tensors["grad." + n].copy())
                    for n in shapes}

    # Gradients are compared per tensor relative to the tensor's largest
    # entry, but never to less than 1e-3 of the largest gradient entry of
    # the model: without rotary the gradient of every k_proj.bias is zero in
    # exact arithmetic (softmax ignores a constant added to a query's
    # scores, and q . bk is the same for every key); it is stored as exact
    # zeros and only an absolute comparison makes sense there.
    grad_floor = 1e-3 * worst(float(g.abs().max()) for g in stored_grads.values())
    results = {}
    for dtype in (torch.float64, torch.float32):
        logits, loss, grads = ref.forward_and_grads(
            params, c, ids, targets, src_ids, src_mask, dtype=dtype)
        per_tensor = {n: rel(grads[n], stored_grads[n], grad_floor)
                      for n in shapes if not n.endswith("k_proj.bias")}
        r_grad = worst(per_tensor.values())
        worst_name = next(n for n, r in per_tensor.items()
                          if r == r_grad or math.isnan(r))
        r_kbias = worst([rel(grads[n], stored_grads[n], grad_floor)
                         for n in shapes if n.endswith("k_proj.bias")] or [0.0])
        results[dtype] = (rel(logits, stored["logits"]),
                          rel(loss, stored["loss"]), r_grad, r_kbias, worst_name)
        if dtype == torch.float64:
            grads64 = grads

    # finite differences of the float64 loss along random directions
    g = torch.Generator().manual_seed(12345)
    p64 = {n: p.to(torch.float64) for n, p in params.items()}
    r_fd = 0.0
    eps = 1e-6
    for _ in range(n_directions):
        d = {n: torch.randn(p.shape, generator=g, dtype=torch.float64)
             for n, p in p64.items()}
        plus = {n: p64[n] + eps * d[n] for n in p64}
        minus = {n: p64[n] - eps * d[n] for n in p64}
        with torch.no_grad():
            lp = float(ref.forward(plus, c, ids, targets, src_ids, src_mask)[1])
            lm = float(ref.forward(minus, c, ids, targets, src_ids, src_mask)[1])
        numeric = (lp - lm) / (2 * eps)
        terms = [grads64[n] * d[n] for n in p64]
        analytic = sum(float(t.sum()) for t in terms)
        magnitude = sum(float(t.abs().sum()) for t in terms)
        r_fd = worst([r_fd, abs(numeric - analytic) / magnitude])

    r_builtin = None
    if builtin_applies(c):
        r_builtin = rel(builtin_logits(params, c, ids, src_ids, src_mask),
                        stored["logits"])
        if not r_builtin <= TOL_F64_VS_STORED:
            problems.append("%s: PyTorch's transformer layers give logits "
                            "%.3g away" % (path, r_builtin))

    f64, f32 = results[torch.float64], results[torch.float32]
    print("%s\n  float64 vs stored: logits %.1e  loss %.1e  grads %.1e  "
          "k_proj.bias grads %.1e\n  float32 vs stored: logits %.1e  "
          "loss %.1e  grads %.1e  k_proj.bias grads %.1e  (worst grad %s)\n"
          "  finite differences: %.1e  nn.Transformer*Layer logits: %s"
          % (os.path.basename(path).replace(".safetensors", ""),
             f64[0], f64[1], f64[2], f64[3],
             f32[0], f32[1], f32[2], f32[3], f32[4], r_fd,
             "n/a" if r_builtin is None else "%.1e" % r_builtin))
    for label, res, tol in (("float64 re-run vs stored", f64, TOL_F64_VS_STORED),
                            ("float32 re-run vs stored", f32, TOL_F32_VS_F64)):
        for what, r in zip(("logits", "loss", "grads (worst %s)" % res[4],
                            "k_proj.bias grads"), res[:4]):
            if not r <= tol:
                problems.append("%s: %s: %s differ by %.3g > %.0e"
                                % (path, label, what, r, tol))
    # k_proj.bias gradients are exactly zero without rotary (make_fixtures)
    if c.position != "rotary":
        for n in shapes:
            if n.endswith("k_proj.bias") and np.any(tensors["grad." + n] != 0):
                problems.append("%s: grad.%s is not exactly zero" % (path, n))
    if not r_fd <= TOL_FINITE_DIFF:
        problems.append("%s: finite-difference check %.3g > %.0e"
                        % (path, r_fd, TOL_FINITE_DIFF))
    # every gradient should carry signal (no parameter silently unused);
    # k_proj.bias is zero in exact arithmetic (see above)
    for n in shapes:
        if not n.endswith("k_proj.bias") and \
                not np.any(tensors["grad." + n] != 0):
            problems.append("%s: grad.%s is all zero" % (path, n))
    return problems


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    default_dir = os.path.normpath(os.path.join(here, "..", "fixtures"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=default_dir)
    args = ap.parse_args(argv)

    problems = check_building_blocks()
    print("building blocks: %s" % ("ok" if not problems else "FAILED"))
    paths = sorted(glob.glob(os.path.join(args.dir, "*.safetensors")))
    if not paths:
        problems.append("no fixtures in %s" % args.dir)
    total = 0
    for path in paths:
        total += os.path.getsize(path)
        try:
            problems += check_fixture(path)
        except (FixtureError, ValueError, KeyError) as e:
            problems.append("%s: %s" % (path, e))
    print("%d fixtures, %d bytes" % (len(paths), total))
    for p in problems:
        print("PROBLEM: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
