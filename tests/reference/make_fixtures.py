#!/usr/bin/python3
"""Write the golden fixtures of tlm's model: one safetensors file per config.

    /usr/bin/python3 tests/reference/make_fixtures.py --out tests/fixtures

Each fixture holds a small random model (float32 weights under their
docs/model.md names), a batch of inputs, and what the reference computes
for them in float64 (then stored as float32): the logits, the loss and the
gradient of the loss with respect to every parameter. See README.md.

Deterministic: every config has its own fixed seed, so running this again
gives the same files byte for byte (on the same PyTorch build).
"""

import argparse
import dataclasses
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tlm_reference as ref  # noqa: E402

GENERATOR_COMMAND = "/usr/bin/python3 tests/reference/make_fixtures.py --out tests/fixtures"


# ---------------------------------------------------------------------------
# The fixture set
# ---------------------------------------------------------------------------
#
# Each entry: name, seed, description, Config, batch shape and, for the
# masked kinds, which positions are padding. Sizes are small, odd where the
# architecture allows (odd vocab, odd d_ff, odd lengths, odd d_model and
# head_dim where no rotation or sinusoid needs them even), and two configs
# have n_heads * head_dim != d_model.

FIXTURES = [
    dict(
        name="gpt_learned_layernorm_gelu_prenorm",
        seed=101,
        about="GPT: learned positions, LayerNorm, tanh GELU, pre-norm, "
              "bias, tied output; odd d_model 33 and head_dim 11",
        config=ref.Config(vocab_size=37, d_model=33, n_heads=3, head_dim=0,
                          d_ff=57, n_encoder_layers=0, n_decoder_layers=2,
                          max_context=16, position="learned", norm="layer",
                          norm_placement="pre", activation="gelu", bias=1,
                          tied_output=1),
        B=2, T=7),
    dict(
        name="gpt_sinusoidal_layernorm_relu_postnorm",
        seed=202,
        about="GPT: sinusoidal positions, LayerNorm, ReLU, post-norm, "
              "bias, untied lm_head",
        config=ref.Config(vocab_size=41, d_model=32, n_heads=4, head_dim=0,
                          d_ff=75, n_encoder_layers=0, n_decoder_layers=2,
                          max_context=16, position="sinusoidal", norm="layer",
                          norm_placement="post", activation="relu", bias=1,
                          tied_output=0),
        B=2, T=9),
    dict(
        name="gpt_rotary_rmsnorm_swiglu_prenorm",
        seed=303,
        about="GPT, llama style: rotary, RMSNorm, SwiGLU, pre-norm, no "
              "bias, untied; n_heads*head_dim = 3*10 = 30 != d_model 24",
        config=ref.Config(vocab_size=43, d_model=24, n_heads=3, head_dim=10,
                          d_ff=46, n_encoder_layers=0, n_decoder_layers=2,
                          max_context=16, position="rotary", norm="rms",
                          norm_placement="pre", activation="swiglu", bias=0,
                          tied_output=0, rope_base=10000.0),
        B=2, T=8),
    dict(
        name="gpt_learned_rmsnorm_gelu_exact_postnorm",
        seed=404,
        about="GPT: learned positions, RMSNorm, exact (erf) GELU, "
              "post-norm, no bias, tied; one layer, 2 heads of 15",
        config=ref.Config(vocab_size=47, d_model=30, n_heads=2, head_dim=0,
                          d_ff=61, n_encoder_layers=0, n_decoder_layers=1,
                          max_context=16, position="learned", norm="rms",
                          norm_placement="post", activation="gelu_exact",
                          bias=0, tied_output=1),
        B=2, T=5),
    dict(
        name="encoder_learned_layernorm_gelu_prenorm",
        seed=505,
        about="encoder-only: bidirectional self-attention with a key "
              "padding mask (batch 0 right-padded by 2, batch 1 "
              "left-padded by 3; targets -1 there), learned positions, "
              "LayerNorm, tanh GELU, pre-norm, bias, tied",
        config=ref.Config(vocab_size=53, d_model=36, n_heads=4, head_dim=0,
                          d_ff=83, n_encoder_layers=2, n_decoder_layers=0,
                          max_context=16, position="learned", norm="layer",
                          norm_placement="pre", activation="gelu", bias=1,
                          tied_output=1),
        B=2, T=9,
        mask=[[1, 1, 1, 1, 1, 1, 1, 0, 0],
              [0, 0, 0, 1, 1, 1, 1, 1, 1]]),
    dict(
        name="seq2seq_sinusoidal_layernorm_gelu_prenorm",
        seed=606,
        about="encoder-decoder: 2 encoder + 1 decoder layers, "
              "cross-attention with a source padding mask (batch 1's last "
              "2 source tokens), sinusoidal positions, LayerNorm, tanh "
              "GELU, pre-norm, bias, tied",
        config=ref.Config(vocab_size=59, d_model=40, n_heads=4, head_dim=0,
                          d_ff=89, n_encoder_layers=2, n_decoder_layers=1,
                          max_context=16, position="sinusoidal", norm="layer",
                          norm_placement="pre", activation="gelu", bias=1,
                          tied_output=1),
        B=2, T=6, Ts=7,
        src_mask=[[1, 1, 1, 1, 1, 1, 1],
                  [1, 1, 1, 1, 1, 0, 0]]),
    dict(
        name="seq2seq_rotary_rmsnorm_swiglu_postnorm",
        seed=707,
        about="encoder-decoder: 1 encoder + 2 decoder layers, rotary "
              "(rope_base 500, in both self-attentions, not in "
              "cross-attention), RMSNorm, SwiGLU, post-norm, no bias, "
              "untied; source padding mask (batch 0's last 3 source "
              "tokens); n_heads*head_dim = 4*14 = 56 != d_model 48",
        config=ref.Config(vocab_size=61, d_model=48, n_heads=4, head_dim=14,
                          d_ff=67, n_encoder_layers=1, n_decoder_layers=2,
                          max_context=16, position="rotary", norm="rms",
                          norm_placement="post", activation="swiglu", bias=0,
                          tied_output=0, rope_base=500.0),
        B=2, T=5, Ts=9,
        src_mask=[[1, 1, 1, 1, 1, 1, 0, 0, 0],
                  [1, 1, 1, 1, 1, 1, 1, 1, 1]]),
    dict(
        name="gpt_rotary_rmsnorm_swiglu_gqa",
        seed=808,
        about="GPT, llama style with grouped-query attention: 4 query "
              "heads over 2 key/value heads of 8, rotary, RMSNorm, SwiGLU, "
              "pre-norm, no bias, untied",
        config=ref.Config(vocab_size=67, d_model=32, n_heads=4, head_dim=0,
                          d_ff=45, n_encoder_layers=0, n_decoder_layers=2,
                          max_context=16, position="rotary", norm="rms",
                          norm_placement="pre", activation="swiglu", bias=0,
                          tied_output=0, n_kv_heads=2),
        B=2, T=9),
    dict(
        name="seq2seq_learned_layernorm_gelu_mqa",
        seed=909,
        about="encoder-decoder with multi-query attention: 3 query heads "
              "over 1 key/value head of 9 in every self- and "
              "cross-attention, 1 encoder + 2 decoder layers, learned "
              "positions, LayerNorm, tanh GELU, pre-norm, bias, tied; "
              "source padding mask (batch 1's last 2 source tokens)",
        config=ref.Config(vocab_size=71, d_model=27, n_heads=3, head_dim=0,
                          d_ff=51, n_encoder_layers=1, n_decoder_layers=2,
                          max_context=16, position="learned", norm="layer",
                          norm_placement="pre", activation="gelu", bias=1,
                          tied_output=1, n_kv_heads=1),
        B=2, T=7, Ts=8,
        src_mask=[[1, 1, 1, 1, 1, 1, 1, 1],
                  [1, 1, 1, 1, 1, 1, 0, 0]]),
]


# ---------------------------------------------------------------------------
# safetensors writer (the format, written by hand)
# ---------------------------------------------------------------------------
#
# file = u64 little-endian N | N bytes of JSON header | raw data
# header = {"__metadata__": {str: str}, name: {"dtype", "shape",
#           "data_offsets": [begin, end]} ...}, offsets relative to the
# start of the data; the JSON is padded with spaces so that N % 8 == 0.

_DTYPES = {np.dtype("<f4"): "F32", np.dtype("<i4"): "I32"}


def write_safetensors(path, tensors, metadata):
    """tensors: {name: numpy array of float32 or int32}; metadata: {str: str}."""
    header = {"__metadata__": dict(metadata)}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        if a.dtype not in _DTYPES:
            raise TypeError("%s: dtype %s not written" % (name, a.dtype))
        raw = a.tobytes(order="C")
        header[name] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


# ---------------------------------------------------------------------------
# Building one fixture
# ---------------------------------------------------------------------------

def random_ids(gen, B, T, V):
    return torch.randint(0, V, (B, T), generator=gen, dtype=torch.int64)


def random_targets(gen, B, T, V, ignore_fraction=0.2):
    """Random targets with about `ignore_fraction` of them -1, at least one
    -1 in the batch, and never a whole row of -1."""
    t = random_ids(gen, B, T, V)
    drop = torch.rand(B, T, generator=gen) < ignore_fraction
    drop[:, 0] = False
    if not bool(drop.any()):
        drop[B - 1, T // 2] = True
    return torch.where(drop, torch.full_like(t, -1), t)


def build(spec):
    """Parameters, inputs and float64 results of one fixture spec."""
    # init_seed records the fixture's seed; the weights are stored, so tlm
    # loads them instead of initialising from it.
    c = dataclasses.replace(spec["config"], init_seed=spec["seed"]).resolved()
    gen = torch.Generator().manual_seed(spec["seed"])
    params = ref.random_parameters(c, gen, dtype=torch.float32)
    B, T, V = spec["B"], spec["T"], c.vocab_size

    inputs = {}
    ids = random_ids(gen, B, T, V)
    targets = random_targets(gen, B, T, V)
    src_ids = src_mask = None
    if c.kind == "encoder":
        src_mask = torch.tensor(spec["mask"], dtype=torch.int64)
        targets = torch.where(src_mask == 0, torch.full_like(targets, -1),
                              targets)
        inputs["input.mask"] = src_mask
    elif c.kind == "seq2seq":
        src_ids = random_ids(gen, B, spec["Ts"], V)
        src_mask = torch.tensor(spec["src_mask"], dtype=torch.int64)
        inputs["input.src_ids"] = src_ids
        inputs["input.src_mask"] = src_mask
    inputs["input.ids"] = ids
    inputs["input.targets"] = targets

    logits, loss, grads = ref.forward_and_grads(
        params, c, ids, targets, src_ids, src_mask, dtype=torch.float64)

    # Without rotary, the gradient of every k_proj.bias is zero in exact
    # arithmetic: it adds q_i . bk to all the scores of query i alike, which
    # the softmax ignores. float64 gives round-off (~1e-17) whose digits
    # change with the summation order; store the exact zero instead, after
    # checking that the computed value is round-off.
    if c.position != "rotary":
        scale = max(float(g.abs().max()) for g in grads.values())
        for name in grads:
            if name.endswith("k_proj.bias"):
                assert float(grads[name].abs().max()) < 1e-12 * scale, name
                grads[name] = torch.zeros_like(grads[name])
    return c, params, inputs, logits, loss, grads


def fixture_tensors(params, inputs, logits, loss, grads):
    """The flat {name: numpy array} written to the file."""
    out = {}
    for name, p in params.items():
        out[name] = p.numpy().astype(np.float32)
    for name, t in inputs.items():
        out[name] = t.numpy().astype(np.int32)
    out["expected.logits"] = logits.numpy().astype(np.float32)
    out["expected.loss"] = loss.numpy().astype(np.float32).reshape(1)
    for name, g in grads.items():
        out["grad." + name] = g.numpy().astype(np.float32)
    return out


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.normpath(os.path.join(here, "..", "fixtures"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=default_out,
                    help="directory of the .safetensors files (default %s)"
                    % default_out)
    args = ap.parse_args(argv)

    # one thread: a fixed summation order, so the files are reproducible
    # byte for byte
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    total = 0
    for spec in FIXTURES:
        c, params, inputs, logits, loss, grads = build(spec)
        tensors = fixture_tensors(params, inputs, logits, loss, grads)
        metadata = {
            "tlm.config": c.to_json(),
            "tlm.fixture": spec["about"],
            "tlm.generator": GENERATOR_COMMAND,
        }
        path = os.path.join(args.out, spec["name"] + ".safetensors")
        write_safetensors(path, tensors, metadata)
        size = os.path.getsize(path)
        total += size
        n_params = sum(p.numel() for p in params.values())
        print("%-44s %7d bytes  %6d params  loss %.6f"
              % (spec["name"], size, n_params, float(loss)))
    print("total %d bytes" % total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
