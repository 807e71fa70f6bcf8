#!/usr/bin/env python3
"""Write the Llama import/export fixtures, with Hugging Face transformers
and llama2.c's run.c as the references (issue #18).

    /work/venv/bin/python tests/reference/make_llama_fixtures.py --out tests/fixtures/llama \\
        --runc /work/ext/golden/run_golden

Three tiny random LlamaForCausalLM models (multi-head untied; grouped-query
with 2 key/value heads of 4, tied, rope_theta 500000, rms_norm_eps 1e-6;
multi-query untied), each written by transformers' save_pretrained
(model.safetensors + config.json; the grouped-query one also in BF16) and,
from the same weights, as llama2.c checkpoints in the legacy format and in
export.py's version 1 ("ak42") format by a writer of our own that follows
llama2.c's published export.py layout. Beside them expected/<name>.safetensors
records what transformers computes for fixed token ids: logits, the loss on
the next tokens, the parameters after one torch.optim.AdamW step (set up as
tlm's optimizer), transformers' greedy continuation of BOS, and the greedy
ids of llama2.c's run.c on the legacy file (see README.md, "Llama
fixtures").

--runc names a build of llama2.c's run.c patched to print each generated id
and to dump the logits of every step (outside the repository; README.md
says how it is made). The script runs it at temperature 0 on every legacy
file, records its ids and compares its logits with transformers'.

    /work/venv/bin/python tests/reference/make_llama_fixtures.py --check-export DIR [--fixture NAME]

loads a directory that tlm exported in Hugging Face form with
LlamaForCausalLM.from_pretrained and compares its logits on the recorded
ids with the recorded ones (NAME defaults to DIR's base name).

Deterministic: fixed seeds, one thread, so running it again gives the same
files byte for byte on the same transformers/PyTorch build.
"""

import argparse
import copy
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

import transformers
from transformers import LlamaConfig, LlamaForCausalLM

GENERATOR_COMMAND = ("/work/venv/bin/python tests/reference/make_llama_fixtures.py "
                     "--out tests/fixtures/llama --runc /work/ext/golden/run_golden")
LLAMA2C_COMMIT = "350e04f"  # karpathy/llama2.c, the run.c built for the cross-check

# Token ids of every fixture: two sequences of LENGTH; the first starts
# with BOS (1) as a Llama prompt does.
BATCH = 2
LENGTH = 12
BOS = 1
EOS = 2
# Greedy decoding: new tokens after the prompt [BOS] (run.c's -n counts
# the forward steps, one per generated token here).
GREEDY_STEPS = 24

# One AdamW step, every setting exact in float32 (see the GPT-2 fixtures:
# eps 2^-10 keeps the update a smooth function of the gradient).
ADAMW = dict(lr=2.0 ** -7, beta1=0.875, beta2=0.984375, eps=2.0 ** -10,
             weight_decay=0.125)
UPDATED_ROWS = 4

COMMON = dict(vocab_size=64, hidden_size=32, num_attention_heads=4, num_hidden_layers=2,
              intermediate_size=43, max_position_embeddings=64)

FIXTURES = [
    dict(name="mha", seed=1810, kv_heads=4, tied=False, rope_theta=10000.0, eps=1e-5,
         about="multi-head attention (4 key/value heads of 4), untied lm_head, "
               "rope_theta 10000, rms_norm_eps 1e-5"),
    dict(name="gqa", seed=1820, kv_heads=2, tied=True, rope_theta=500000.0, eps=1e-6,
         about="grouped-query attention (2 key/value heads of 4), tied output, "
               "rope_theta 500000, rms_norm_eps 1e-6"),
    dict(name="mqa", seed=1830, kv_heads=1, tied=False, rope_theta=10000.0, eps=1e-5,
         about="multi-query attention (1 key/value head of 4), untied lm_head, "
               "rope_theta 10000, rms_norm_eps 1e-5"),
    # Heads wider than hidden_size / heads (config.json's head_dim, as
    # some Llama-architecture models have): llama2.c cannot hold it.
    dict(name="wide", seed=1850, kv_heads=2, tied=False, rope_theta=10000.0, eps=1e-5,
         head_dim=12, llama2c=False,
         about="grouped-query attention (2 key/value heads of 4) with head_dim 12 "
               "(4 x 12 = 48 != hidden_size 32), untied lm_head, rope_theta 10000, "
               "rms_norm_eps 1e-5"),
]
# A fixture also written in shards (save_pretrained's max_shard_size), with
# model.safetensors.index.json: same weights, same expected values.
SHARDED_OF = {"mqa_sharded": ("mqa", "30KB")}
# End to end with a SentencePiece tokenizer (the sp fixture's
# tests/tokenizer/sp_bpe.model, vocabulary 1000, copied beside the
# weights as tokenizer.model): `tlm generate` on this prompt at
# temperature 0 must print what transformers' greedy generate() produces,
# decoded by sentencepiece. Llama's defaults (eps 1e-5, base 10000), so
# that run.c runs it too.
SP_FIXTURE = dict(name="sp_gqa", seed=1840, kv_heads=2, tied=True, rope_theta=10000.0,
                  eps=1e-5, vocab_size=1000,
                  about="grouped-query attention (2 of 4), tied, vocabulary 1000 with the "
                        "SentencePiece tokenizer tests/tokenizer/sp_bpe.model as tokenizer.model")
SP_PROMPT = "Once upon a time, the tokenizer"
SP_MODEL = os.path.join("tests", "tokenizer", "sp_bpe.model")
SP_BIN = os.path.join("tests", "tokenizer", "sp_bpe.bin")

# The BF16 copy of a fixture: same weights rounded to bfloat16.
BF16_OF = {"gqa_bf16": "gqa"}
# run.c fixes eps 1e-5 and rope base 10000; a llama2.c file of a fixture
# with other values is another model, whose expected values are
# expected/<name>_llama2c.safetensors.
LLAMA2C_EPS = 1e-5
LLAMA2C_THETA = 10000.0


def llama_config(spec, rope_theta=None, eps=None):
    common = {**COMMON, "vocab_size": spec.get("vocab_size", COMMON["vocab_size"])}
    if "head_dim" in spec:
        common["head_dim"] = spec["head_dim"]
    return LlamaConfig(
        **common, num_key_value_heads=spec["kv_heads"],
        rms_norm_eps=spec["eps"] if eps is None else eps,
        rope_theta=spec["rope_theta"] if rope_theta is None else rope_theta,
        tie_word_embeddings=spec["tied"], bos_token_id=BOS, eos_token_id=EOS,
        hidden_act="silu", attention_bias=False, mlp_bias=False)


def build_model(spec):
    """A random LlamaForCausalLM far from its initialisation: matrices
    N(0, 0.2^2), the embedding and lm_head N(0, 0.3^2) (logits with clear
    margins), RMSNorm weights 1 + N(0, 0.2^2): a wrong mapping of any
    tensor changes the logits."""
    torch.manual_seed(spec["seed"])
    model = LlamaForCausalLM(llama_config(spec))
    generator = torch.Generator().manual_seed(spec["seed"])
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * noise)
            elif "embed_tokens" in name or "lm_head" in name:
                p.copy_(0.3 * noise)
            else:
                p.copy_(0.2 * noise)
    model.eval()
    return model


# Greedy decoding must be decidable in float32 and run the whole way: the
# first seed (counting up from the fixture's) whose greedy continuation of
# BOS, under the fixture's settings and under run.c's, never produces BOS
# (run.c stops there) and never has its two best logits closer than this.
GREEDY_MARGIN = 0.01
# ... and that does not settle on one id at once (a test of positions).
GREEDY_DISTINCT = 8


def choose_model(spec):
    """build_model() with the first seed from spec["seed"] on whose greedy
    paths run.c runs all GREEDY_STEPS and argmax is clear."""
    seed = spec["seed"]
    while True:
        model = build_model({**spec, "seed": seed})
        fine = True
        configs = [llama_config(spec)]
        if spec.get("llama2c", True):
            configs.append(llama_config(spec, LLAMA2C_THETA, LLAMA2C_EPS))
        for config in configs:
            with torch.no_grad():
                ids, margin = greedy_ids(same_weights(model, config), GREEDY_STEPS)
            fine = (fine and BOS not in ids and margin >= GREEDY_MARGIN
                    and len(set(ids)) >= GREEDY_DISTINCT)
        if fine:
            return model, seed
        seed += 1


def reference_model(directory):
    """The model as transformers reads the directory back, in float32."""
    model = LlamaForCausalLM.from_pretrained(directory, dtype=torch.float32,
                                             attn_implementation="eager")
    model.eval()
    return model


def same_weights(model, config):
    """A fresh model with `config` and `model`'s weights (float32)."""
    config._attn_implementation = "eager"
    other = LlamaForCausalLM(config)
    other.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    other.eval()
    return other


def token_ids(vocab, seed):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (BATCH, LENGTH), generator=generator)
    ids[0, 0] = BOS
    targets = torch.full_like(ids, -1)
    targets[:, :-1] = ids[:, 1:]
    return ids, targets


# ---------------------------------------------------------------------------
# The rotary layouts.
#
# transformers' LlamaAttention rotates with rotate_half: within a head of hd
# components, component j (j < hd/2) pairs with component j + hd/2, both at
# the angle p * theta^(-2j/hd) (inv_freq[j], the table repeated twice):
#   out[j]        = x[j] cos - x[j + hd/2] sin
#   out[j + hd/2] = x[j + hd/2] cos + x[j] sin.
# llama2.c (model.py's apply_rotary_emb, run.c) and tlm rotate adjacent
# pairs: component 2i pairs with 2i + 1 at the angle p * theta^(-2i/hd)
# (run.c: freq = 1 / theta^(head_dim / head_size) with head_dim = 2i):
#   out[2i]     = x[2i] cos - x[2i + 1] sin
#   out[2i + 1] = x[2i] sin + x[2i + 1] cos.
# The two agree when interleaved[2i + r] = half_split[r * hd/2 + i]
# (r in {0, 1}, i < hd/2): both the pair and the frequency index match.
# Since q = W x, this is a permutation of the rows of W within each head
# (k's with the key/value head count). q . k is a sum over the components
# of a head, unchanged when q and k are permuted alike, so the attention
# weights, and everything after them, are the same. (llama2.c's export.py
# does this in permute_reverse: view(heads, 2, hd/2, in).transpose(1, 2).)
# forward_interleaved() below checks it numerically against transformers.

def interleave_rows(w, heads):
    """HF half-split rows -> interleaved rows, per head: row 2i + r of a
    head is HF row r * hd/2 + i."""
    out_features, in_features = w.shape
    hd = out_features // heads
    order = []
    for h in range(heads):
        for i in range(hd // 2):
            for r in range(2):
                order.append(h * hd + r * (hd // 2) + i)
    return w[order, :]


def tlm_parameters(model):
    """The model's parameters under their tlm names (docs/model.md), q and
    k in tlm's (interleaved) layout."""
    cfg = model.config
    p = dict(model.named_parameters())
    out = {"token_embedding.weight": p["model.embed_tokens.weight"]}
    for i in range(cfg.num_hidden_layers):
        h, d = f"model.layers.{i}.", f"decoder.layers.{i}."
        out[d + "self_attn_norm.weight"] = p[h + "input_layernorm.weight"]
        out[d + "self_attn.q_proj.weight"] = interleave_rows(
            p[h + "self_attn.q_proj.weight"], cfg.num_attention_heads)
        out[d + "self_attn.k_proj.weight"] = interleave_rows(
            p[h + "self_attn.k_proj.weight"], cfg.num_key_value_heads)
        out[d + "self_attn.v_proj.weight"] = p[h + "self_attn.v_proj.weight"]
        out[d + "self_attn.o_proj.weight"] = p[h + "self_attn.o_proj.weight"]
        out[d + "ffn_norm.weight"] = p[h + "post_attention_layernorm.weight"]
        out[d + "ffn.gate_proj.weight"] = p[h + "mlp.gate_proj.weight"]
        out[d + "ffn.up_proj.weight"] = p[h + "mlp.up_proj.weight"]
        out[d + "ffn.down_proj.weight"] = p[h + "mlp.down_proj.weight"]
    out["decoder.final_norm.weight"] = p["model.norm.weight"]
    if not cfg.tie_word_embeddings:
        out["lm_head.weight"] = p["lm_head.weight"]
    return out


def forward_interleaved(weights, cfg, ids, theta, eps):
    """An independent float64 forward pass of the llama2.c/tlm layout
    (interleaved rotary, as run.c computes it), from tlm_parameters()'s
    tensors: the check that the permutation above is right."""
    w = {k: v.detach().double() for k, v in weights.items()}
    H, Hkv = cfg.num_attention_heads, cfg.num_key_value_heads
    hd = cfg.head_dim
    B, T = ids.shape

    def rms(x, g):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * g

    x = w["token_embedding.weight"][ids]
    pos = torch.arange(T, dtype=torch.float64)
    i = torch.arange(hd // 2, dtype=torch.float64)
    angle = pos[:, None] * theta ** (-2.0 * i / hd)[None, :]  # [T, hd/2]
    cos, sin = torch.cos(angle), torch.sin(angle)

    def rotate(t):  # [B, T, heads, hd], adjacent pairs
        even, odd = t[..., 0::2], t[..., 1::2]
        c, s = cos[None, :, None, :], sin[None, :, None, :]
        out = torch.empty_like(t)
        out[..., 0::2] = even * c - odd * s
        out[..., 1::2] = even * s + odd * c
        return out

    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    for layer in range(cfg.num_hidden_layers):
        d = f"decoder.layers.{layer}."
        a = rms(x, w[d + "self_attn_norm.weight"])
        q = rotate((a @ w[d + "self_attn.q_proj.weight"].t()).view(B, T, H, hd))
        k = rotate((a @ w[d + "self_attn.k_proj.weight"].t()).view(B, T, Hkv, hd))
        v = (a @ w[d + "self_attn.v_proj.weight"].t()).view(B, T, Hkv, hd)
        heads = []
        for h in range(H):
            g = h // (H // Hkv)  # consecutive query heads share a kv head
            score = q[:, :, h] @ k[:, :, g].transpose(1, 2) / np.sqrt(hd)
            score = score.masked_fill(causal, float("-inf"))
            heads.append(torch.softmax(score, -1) @ v[:, :, g])
        x = x + torch.cat(heads, -1) @ w[d + "self_attn.o_proj.weight"].t()
        f = rms(x, w[d + "ffn_norm.weight"])
        gate = f @ w[d + "ffn.gate_proj.weight"].t()
        up = f @ w[d + "ffn.up_proj.weight"].t()
        x = x + (F.silu(gate) * up) @ w[d + "ffn.down_proj.weight"].t()
    x = rms(x, w["decoder.final_norm.weight"])
    head = w.get("lm_head.weight", w["token_embedding.weight"])
    return x @ head.t()


# ---------------------------------------------------------------------------
# llama2.c checkpoints, after llama2.c's export.py (legacy_export and
# version1_export) and run.c's memory_map_weights.

def freq_tables(hd, seq_len, theta=LLAMA2C_THETA):
    """model.py's precompute_freqs_cis (float32) cut to seq_len rows, as
    legacy_export writes them: cos then sin, each [seq_len, hd/2]. run.c
    skips both."""
    freqs = 1.0 / (theta ** (torch.arange(0, hd, 2)[: hd // 2].float() / hd))
    t = torch.arange(seq_len)
    angles = torch.outer(t, freqs).float()
    return torch.cos(angles), torch.sin(angles)


def f32_bytes(t):
    return t.detach().contiguous().float().numpy().astype("<f4").tobytes()


def llama2c_weights(model):
    """tlm_parameters() in llama2.c's terms (wq/wk interleaved)."""
    cfg = model.config
    t = tlm_parameters(model)
    L = cfg.num_hidden_layers

    def per_layer(suffix):
        return [t[f"decoder.layers.{i}.{suffix}"] for i in range(L)]

    return dict(
        embedding=t["token_embedding.weight"],
        att_norm=per_layer("self_attn_norm.weight"),
        wq=per_layer("self_attn.q_proj.weight"), wk=per_layer("self_attn.k_proj.weight"),
        wv=per_layer("self_attn.v_proj.weight"), wo=per_layer("self_attn.o_proj.weight"),
        ffn_norm=per_layer("ffn_norm.weight"),
        w1=per_layer("ffn.gate_proj.weight"), w2=per_layer("ffn.down_proj.weight"),
        w3=per_layer("ffn.up_proj.weight"),
        final_norm=t["decoder.final_norm.weight"],
        classifier=t.get("lm_head.weight"))


def llama2c_header_ints(cfg, vocab):
    return struct.pack("<7i", cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers,
                       cfg.num_attention_heads, cfg.num_key_value_heads, vocab,
                       cfg.max_position_embeddings)


def write_llama2c_legacy(path, model):
    """Legacy (version 0): 7 int32 (dim, hidden_dim, n_layers, n_heads,
    n_kv_heads, vocab_size, seq_len; vocab negative when the classifier is
    not shared), the embedding, then each kind of layer weight for all
    layers in turn (attention norm, wq, wk, wv, wo, ffn norm, w1, w2, w3),
    the final norm, the two freq_cis tables, and the classifier when not
    shared."""
    cfg = model.config
    w = llama2c_weights(model)
    hd = cfg.hidden_size // cfg.num_attention_heads
    shared = w["classifier"] is None
    vocab = cfg.vocab_size if shared else -cfg.vocab_size
    cos, sin = freq_tables(hd, cfg.max_position_embeddings)
    with open(path, "wb") as f:
        f.write(llama2c_header_ints(cfg, vocab))
        f.write(f32_bytes(w["embedding"]))
        for kind in ("att_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w2", "w3"):
            for t in w[kind]:
                f.write(f32_bytes(t))
        f.write(f32_bytes(w["final_norm"]))
        f.write(f32_bytes(cos))
        f.write(f32_bytes(sin))
        if not shared:
            f.write(f32_bytes(w["classifier"]))


def write_llama2c_v1(path, model):
    """export.py version 1: a 256-byte header (uint32 magic 0x616b3432,
    int32 version 1, the 7 int32 with vocab_size positive, uint8
    shared_classifier, zeros), then the norms (attention norms of all
    layers, ffn norms, final norm), the embedding, wq, wk, wv, wo, w1, w2,
    w3 of all layers in turn, and the classifier when not shared."""
    cfg = model.config
    w = llama2c_weights(model)
    shared = w["classifier"] is None
    header = struct.pack("<Ii", 0x616B3432, 1) + llama2c_header_ints(cfg, cfg.vocab_size)
    header += struct.pack("<B", int(shared))
    header += b"\0" * (256 - len(header))
    with open(path, "wb") as f:
        f.write(header)
        for t in w["att_norm"] + w["ffn_norm"] + [w["final_norm"], w["embedding"]]:
            f.write(f32_bytes(t))
        for kind in ("wq", "wk", "wv", "wo", "w1", "w2", "w3"):
            for t in w[kind]:
                f.write(f32_bytes(t))
        if not shared:
            f.write(f32_bytes(w["classifier"]))


def write_tokenizer_bin(path, vocab):
    """A synthetic llama2.c tokenizer.bin of `vocab` distinct pieces (run.c
    needs one of the model's size): int32 max_token_length, then per token
    float32 score, int32 length, the bytes. Ids 0, 1, 2 are <unk>, <s>,
    </s> as llama2.c's tokenizer.py writes them; id k >= 3 is " t<k>"."""
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"]
    pieces += [b" t%d" % k for k in range(3, vocab)]
    with open(path, "wb") as f:
        f.write(struct.pack("<i", max(len(p) for p in pieces)))
        for k, piece in enumerate(pieces):
            f.write(struct.pack("<fi", 0.0 if k < 3 else -float(k), len(piece)))
            f.write(piece)


# ---------------------------------------------------------------------------
# Expected values

def reference_results(model, ids, targets):
    """Logits, loss, parameters after one AdamW step, greedy ids."""
    V = model.config.vocab_size
    out = model(input_ids=ids, labels=ids)  # transformers shifts the labels itself
    logits = out.logits
    loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-1)
    assert torch.allclose(loss, out.loss, rtol=1e-6, atol=0), (loss, out.loss)
    with torch.no_grad():
        greedy, margin = greedy_ids(model, GREEDY_STEPS)
    # tlm's default decay flags: 2-D parameters decay (matrices, the
    # embedding, lm_head), 1-D ones (the RMSNorm weights) do not. A tied
    # lm_head is the embedding's Parameter, listed once.
    decay = [p for _, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for _, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": ADAMW["weight_decay"]},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=ADAMW["lr"], betas=(ADAMW["beta1"], ADAMW["beta2"]), eps=ADAMW["eps"],
        foreach=False)
    model.zero_grad()
    out.loss.backward()
    optimizer.step()
    updated = {}
    with torch.no_grad():
        for name, t in tlm_parameters(model).items():
            updated["updated." + name] = (t if t.dim() == 1 else t[:UPDATED_ROWS]).contiguous().clone()
    return logits.detach(), loss.detach(), updated, greedy, margin


def greedy_ids(model, steps):
    """Greedy continuation of [BOS] by argmax over transformers' logits
    (recomputed over the whole sequence each step), and the smallest gap
    between the best and second-best logit on the way."""
    seq = [BOS]
    margin = float("inf")
    for _ in range(steps):
        logits = model(input_ids=torch.tensor([seq])).logits[0, -1]
        top = torch.topk(logits, 2).values
        margin = min(margin, (top[0] - top[1]).item())
        seq.append(int(torch.argmax(logits)))
    return seq[1:], margin


def config_record(cfg, theta, eps):
    return {
        # vocab, d_model, n_heads, n_kv_heads, n_layers, max_context, d_ff, tied,
        # head_dim
        "config.ints": torch.tensor(
            [cfg.vocab_size, cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads,
             cfg.num_hidden_layers, cfg.max_position_embeddings, cfg.intermediate_size,
             int(cfg.tie_word_embeddings), cfg.head_dim], dtype=torch.int32),
        # norm_eps, rope_base
        "config.floats": torch.tensor([eps, theta], dtype=torch.float32),
    }


def write_expected(path, about, cfg, theta, eps, ids, targets, results, extra=None):
    logits, loss, updated, greedy, _ = results
    tensors = {"input.ids": ids.to(torch.int32).contiguous(),
               "input.targets": targets.to(torch.int32).contiguous(),
               "expected.logits": logits.float().contiguous(),
               "expected.loss": loss.float().reshape(1),
               "greedy.ids": torch.tensor(greedy, dtype=torch.int32)}
    for key, value in ADAMW.items():
        tensors["adamw." + key] = torch.tensor([value], dtype=torch.float32)
    tensors.update(config_record(cfg, theta, eps))
    tensors.update(updated)
    if extra:
        tensors.update(extra)
    metadata = {"llama.fixture": json.dumps({
        "about": about,
        "generator": GENERATOR_COMMAND,
        "reference": f"transformers {transformers.__version__}, torch {torch.__version__}, "
                     "float32, eager attention, eval mode",
        "adamw": ADAMW,
        "greedy": f"greedy.ids: argmax continuation of [BOS={BOS}], {GREEDY_STEPS} tokens",
        "updated": f"updated.<tlm name>: the parameter after one AdamW step, in tlm's "
                   f"layout (q/k rows interleaved); of 2-D ones, their first {UPDATED_ROWS} rows",
    }, sort_keys=True)}
    save_file(tensors, path, metadata=metadata)


def save_hf(model, directory, dtype=torch.float32, max_shard_size=None):
    if os.path.isdir(directory):
        shutil.rmtree(directory)
    if dtype != torch.float32:
        model = copy.deepcopy(model).to(dtype)
    if max_shard_size:
        model.save_pretrained(directory, safe_serialization=True, max_shard_size=max_shard_size)
    else:
        model.save_pretrained(directory, safe_serialization=True)


# ---------------------------------------------------------------------------
# run.c

def run_runc(runc, checkpoint, tokenizer, vocab):
    """run.c at temperature 0 from the empty prompt (BOS only), GREEDY_STEPS
    steps: its generated ids and its logits at every step."""
    with tempfile.TemporaryDirectory() as scratch:
        dump = os.path.join(scratch, "logits.f32")
        command = [runc, checkpoint, "-z", tokenizer, "-t", "0", "-s", "1",
                   "-n", str(GREEDY_STEPS)]
        result = subprocess.run(command, capture_output=True, text=True,
                                env={**os.environ, "GOLDEN_LOGITS": dump,
                                     "OMP_NUM_THREADS": "1"}, check=True)
        ids = [int(line.split()[2]) for line in result.stderr.splitlines()
               if line.startswith("golden id ")]
        logits = np.fromfile(dump, dtype="<f4").reshape(-1, vocab)
    return ids, logits, command


def runc_check(runc, checkpoint, tokenizer, model, greedy):
    """run.c's ids and how far its logits are from transformers' along
    run.c's own path."""
    V = model.config.vocab_size
    ids, logits, command = run_runc(runc, checkpoint, tokenizer, V)
    seq = torch.tensor([[BOS] + ids[: len(logits) - 1]])
    with torch.no_grad():
        reference = model(input_ids=seq).logits[0].numpy()
    n = min(len(logits), reference.shape[0])
    error = float(np.abs(logits[:n] - reference[:n]).max() / np.abs(reference[:n]).max())
    return dict(ids=ids, matches_transformers=ids == greedy[: len(ids)],
                stopped_at_bos=len(ids) < GREEDY_STEPS,
                logits_relative_error=error,
                first_step_logits_max_abs_diff=float(np.abs(logits[0] - reference[0]).max()),
                command=" ".join([command[0], os.path.relpath(command[1])] + command[2:3]
                                 + [os.path.relpath(command[3])] + command[4:]))


# ---------------------------------------------------------------------------

def generate(out_dir, runc, sp_model=SP_MODEL, sp_bin=SP_BIN):
    torch.use_deterministic_algorithms(True)
    for sub in ("expected", "llama2c"):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    tokenizer = os.path.join(out_dir, "llama2c", "tokenizer.bin")
    write_tokenizer_bin(tokenizer, COMMON["vocab_size"])
    runc_record = {"llama2c_commit": LLAMA2C_COMMIT,
                   "build": "gcc -O2 -o run_golden run_golden.c -lm (run.c patched to print "
                            "each generated id to stderr and dump each step's logits; "
                            "tests/reference/README.md)",
                   "files": {}}
    for spec in FIXTURES:
        model, seed = choose_model(spec)
        name = spec["name"]
        directory = os.path.join(out_dir, name)
        save_hf(model, directory)
        reference = reference_model(directory)
        for key, value in model.state_dict().items():
            assert torch.equal(value, reference.state_dict()[key]), key
        ids, targets = token_ids(COMMON["vocab_size"], seed + 1000)
        cfg = reference.config

        # The permutation, checked: the interleaved float64 pass against
        # transformers' logits.
        with torch.no_grad():
            hf = reference(input_ids=ids).logits
            mine = forward_interleaved(tlm_parameters(reference), cfg, ids,
                                       spec["rope_theta"], spec["eps"])
        permutation_error = ((mine - hf.double()).abs().max() / hf.abs().max()).item()
        assert permutation_error < 1e-5, permutation_error

        results = reference_results(reference, ids, targets)
        write_expected(os.path.join(out_dir, "expected", name + ".safetensors"), spec["about"],
                       cfg, spec["rope_theta"], spec["eps"], ids, targets, results)
        print(f"{name}: seed {seed}, loss {results[1].item():.6f}, max|logit| "
              f"{results[0].abs().max().item():.3f}, greedy margin {results[4]:.3g}, "
              f"interleaved float64 pass against transformers {permutation_error:.2e}")

        for sharded_name, (of, shard_size) in SHARDED_OF.items():
            if of == name:
                save_hf(model, os.path.join(out_dir, sharded_name), max_shard_size=shard_size)
                back = reference_model(os.path.join(out_dir, sharded_name))
                for key, value in model.state_dict().items():
                    assert torch.equal(value, back.state_dict()[key]), key
                print(f"{sharded_name}: {name}'s weights in "
                      f"{len([f for f in os.listdir(os.path.join(out_dir, sharded_name)) if f.startswith('model-')])} shards")
        if not spec.get("llama2c", True):
            continue
        # llama2.c files of the same weights.
        legacy = os.path.join(out_dir, "llama2c", name + ".bin")
        write_llama2c_legacy(legacy, model)
        write_llama2c_v1(os.path.join(out_dir, "llama2c", name + "_ak42.bin"), model)
        as_llama2c = name
        if spec["eps"] != LLAMA2C_EPS or spec["rope_theta"] != LLAMA2C_THETA:
            # What run.c computes from these weights: eps 1e-5, base 10000.
            as_llama2c = name + "_llama2c"
            results = reference_results(
                same_weights(model, llama_config(spec, LLAMA2C_THETA, LLAMA2C_EPS)), ids, targets)
        # reference_results stepped its model: run.c is compared with a fresh one.
        llama2c_model = same_weights(model, llama_config(spec, LLAMA2C_THETA, LLAMA2C_EPS))
        greedy, margin = results[3], results[4]
        extra = {}
        if runc:
            record = runc_check(runc, legacy, tokenizer, llama2c_model, greedy)
            runc_record["files"][name + ".bin"] = record
            extra["runc.ids"] = torch.tensor(record["ids"], dtype=torch.int32)
            print(f"{name}.bin: run.c ids {'match' if record['matches_transformers'] else 'DIFFER FROM'}"
                  f" transformers' greedy ids ({len(record['ids'])} ids, greedy margin "
                  f"{margin:.3g}); run.c logits relative error {record['logits_relative_error']:.2e}")
            assert record["matches_transformers"], (record["ids"], greedy)
        write_expected(os.path.join(out_dir, "expected", as_llama2c + ".safetensors"),
                       spec["about"] + f"; the llama2.c files' model (eps {LLAMA2C_EPS}, "
                       f"rope base {LLAMA2C_THETA:g})" if as_llama2c != name else spec["about"],
                       llama2c_model.config, LLAMA2C_THETA, LLAMA2C_EPS, ids, targets, results,
                       extra)
        if as_llama2c != name:
            print(f"{as_llama2c}: loss {results[1].item():.6f}")

        for bf16_name, of in BF16_OF.items():
            if of != name:
                continue
            save_hf(model, os.path.join(out_dir, bf16_name), torch.bfloat16)
            rounded = reference_model(os.path.join(out_dir, bf16_name))
            results = reference_results(rounded, ids, targets)
            write_expected(os.path.join(out_dir, "expected", bf16_name + ".safetensors"),
                           spec["about"] + "; BF16 (model.to(bfloat16)), expected values "
                           "from the stored bfloat16 weights", rounded.config,
                           spec["rope_theta"], spec["eps"], ids, targets, results)
            print(f"{bf16_name}: loss {results[1].item():.6f}, greedy margin {results[4]:.3g}")
            assert results[4] >= GREEDY_MARGIN
    record = generate_sp(out_dir, runc, sp_model, sp_bin)
    if runc:
        runc_record["sp_gqa"] = record
        with open(os.path.join(out_dir, "llama2c", "runc.json"), "w") as f:
            json.dump(runc_record, f, indent=1, sort_keys=True)
            f.write("\n")


def check_export(directory, fixture, expected_dir, logits_file=None):
    expected = load_file(os.path.join(expected_dir, fixture + ".safetensors"))
    if logits_file is not None:
        shape = expected["expected.logits"].shape
        expected["expected.logits"] = torch.from_numpy(
            np.fromfile(logits_file, dtype="<f4").reshape(shape))
    model, info = LlamaForCausalLM.from_pretrained(directory, dtype=torch.float32,
                                                   attn_implementation="eager",
                                                   output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=expected["input.ids"].long()).logits
    want = expected["expected.logits"]
    error = (logits - want).abs().max().item() / want.abs().max().item()
    ok = error <= 1e-5 and not problems
    if problems:
        print(f"{directory}: loading reported {problems}")
    against = f"tlm's {logits_file}" if logits_file else f"fixture {fixture}"
    print(f"{directory}: transformers {transformers.__version__} loads it as "
          f"{type(model).__name__}; logits against {against}: "
          f"relative error {error:.2e} ({'ok' if ok else 'FAIL'})")
    return ok


def sp_greedy(model, sp, prompt_ids):
    """transformers' greedy generate() after [BOS] + the prompt's ids:
    GREEDY_STEPS new ids, and the smallest top-2 logit gap on the way."""
    out = model.generate(torch.tensor([prompt_ids]), max_new_tokens=GREEDY_STEPS,
                         do_sample=False, num_beams=1, output_scores=True,
                         return_dict_in_generate=True, pad_token_id=EOS)
    ids = out.sequences[0, len(prompt_ids):].tolist()
    margin = min((torch.topk(score[0], 2).values[0] - torch.topk(score[0], 2).values[1]).item()
                 for score in out.scores)
    return ids, margin


def generate_sp(out_dir, runc, sp_model, sp_bin):
    """The SentencePiece end-to-end fixture: sp_gqa/ (transformers'
    files + tokenizer.model) and expected/sp_gqa_generate.txt, the text
    `tlm generate --prompt SP_PROMPT --temperature 0 --tokens 24` prints."""
    import sentencepiece
    sp = sentencepiece.SentencePieceProcessor(model_file=sp_model)
    spec = SP_FIXTURE
    assert sp.vocab_size() == spec["vocab_size"], sp.vocab_size()
    prompt_ids = [BOS] + sp.encode(SP_PROMPT)
    assert sp.decode(prompt_ids) == SP_PROMPT
    seed = spec["seed"]
    while True:
        model = build_model({**spec, "seed": seed})
        with torch.no_grad():
            ids, margin = sp_greedy(model, sp, prompt_ids)
        # Ids whose text is plain: no control, unknown or byte pieces
        # (sentencepiece and a byte-wise decoder may show invalid UTF-8
        # differently), and none ending the generation.
        plain = all(not (sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i)) for i in ids)
        if plain and margin >= GREEDY_MARGIN and len(set(ids)) >= GREEDY_DISTINCT:
            break
        seed += 1
    name = spec["name"]
    directory = os.path.join(out_dir, name)
    save_hf(model, directory)
    shutil.copyfile(sp_model, os.path.join(directory, "tokenizer.model"))
    reference = reference_model(directory)
    with torch.no_grad():
        again, _ = sp_greedy(reference, sp, prompt_ids)
    assert again == ids
    text = sp.decode(prompt_ids + ids)
    with open(os.path.join(out_dir, "expected", name + "_generate.txt"), "w",
              encoding="utf-8") as f:
        f.write(text)
    save_file({"prompt.ids": torch.tensor(prompt_ids, dtype=torch.int32),
               "greedy.ids": torch.tensor(ids, dtype=torch.int32)},
              os.path.join(out_dir, "expected", name + ".safetensors"),
              metadata={"llama.fixture": json.dumps({
                  "about": spec["about"], "generator": GENERATOR_COMMAND,
                  "prompt": SP_PROMPT,
                  "greedy": f"transformers generate(do_sample=False), {GREEDY_STEPS} new ids "
                            "after prompt.ids ([BOS] + sentencepiece's ids of the prompt)"},
                  sort_keys=True)})
    print(f"{name}: seed {seed}, greedy margin {margin:.3g}; text {text!r}")
    record = None
    if runc:
        # run.c on a legacy file of these weights with sp's tokenizer.bin
        # and the same prompt (the file is not kept: the HF files hold
        # the weights).
        with tempfile.TemporaryDirectory() as scratch:
            legacy = os.path.join(scratch, name + ".bin")
            write_llama2c_legacy(legacy, model)
            command = [runc, legacy, "-z", sp_bin, "-t", "0", "-s", "1",
                       "-n", str(len(prompt_ids) - 1 + GREEDY_STEPS), "-i", SP_PROMPT]
            result = subprocess.run(command, capture_output=True, check=True,
                                    env={**os.environ, "OMP_NUM_THREADS": "1"})
        runc_ids = [int(line.split()[2]) for line in result.stderr.decode().splitlines()
                    if line.startswith("golden id ")]
        runc_text = result.stdout.decode("utf-8").rstrip("\n")
        record = dict(ids=runc_ids, text=runc_text, matches_transformers=(
            runc_ids == prompt_ids[1:] + ids and runc_text == text),
            command=" ".join([command[0], "<legacy file of sp_gqa>", "-z", SP_BIN]
                             + command[4:-1] + [json.dumps(SP_PROMPT)]))
        print(f"{name}: run.c prints {runc_text!r} "
              f"({'the same' if record['matches_transformers'] else 'DIFFERENT'})")
        assert record["matches_transformers"], record
    return record


def check_runc(runc, prefix, tokenizer):
    """run.c on PREFIX.bin (a model tlm changed and exported) against
    tlm's greedy ids PREFIX.ids.i32 and its logits PREFIX.logits.f32."""
    V = COMMON["vocab_size"]
    ids, logits, command = run_runc(runc, prefix + ".bin", tokenizer, V)
    tlm_ids = np.fromfile(prefix + ".ids.i32", dtype="<i4").tolist()
    tlm_logits = np.fromfile(prefix + ".logits.f32", dtype="<f4").reshape(-1, V)
    n = len(ids)  # run.c stops after printing BOS
    same = ids == tlm_ids[:n]
    error = float(np.abs(logits[:n] - tlm_logits[:n]).max() / np.abs(tlm_logits[:n]).max())
    ok = same and error <= 1e-5
    print(f"{' '.join(command)}: {n} ids {'equal to' if same else 'DIFFERENT FROM'} tlm's; "
          f"logits against tlm's: relative error {error:.2e} ({'ok' if ok else 'FAIL'})")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="write the fixtures into this directory")
    parser.add_argument("--runc", help="the patched run.c build (README.md) to cross-check with")
    parser.add_argument("--check-export", metavar="DIR", nargs="+",
                        help="load tlm-exported Hugging Face directories and compare their logits")
    parser.add_argument("--fixture", help="with --check-export: the fixture it came from "
                        "(default: the directory's base name)")
    parser.add_argument("--logits", help="with --check-export: compare with these raw float32 "
                        "logits (what tlm computed for the exported model)")
    parser.add_argument("--sp-model", default=SP_MODEL,
                        help="the SentencePiece model of fixture sp_gqa (default: %(default)s)")
    parser.add_argument("--sp-bin", default=SP_BIN,
                        help="its llama2.c tokenizer.bin, for run.c (default: %(default)s)")
    parser.add_argument("--check-runc", metavar="PREFIX", nargs="+",
                        help="with --runc: run run.c on PREFIX.bin and compare with tlm's "
                        "PREFIX.ids.i32 and PREFIX.logits.f32")
    parser.add_argument("--fixtures", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "llama"),
        help="with --check-export: the fixtures directory")
    args = parser.parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    if args.check_runc:
        if not args.runc:
            parser.error("--check-runc needs --runc")
        tokenizer = os.path.join(args.fixtures, "llama2c", "tokenizer.bin")
        ok = all([check_runc(args.runc, p, tokenizer) for p in args.check_runc])
        return 0 if ok else 1
    if args.check_export:
        ok = all([check_export(d, args.fixture or os.path.basename(os.path.normpath(d)),
                               os.path.join(args.fixtures, "expected"), args.logits)
                  for d in args.check_export])
        return 0 if ok else 1
    if not args.out:
        parser.error("give --out DIR or --check-export DIR")
    if not args.runc:
        print("note: no --runc: run.c's ids (runc.ids, runc.json) are not written", file=sys.stderr)
    generate(args.out, args.runc, args.sp_model, args.sp_bin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
