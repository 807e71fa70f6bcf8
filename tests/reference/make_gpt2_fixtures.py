#!/usr/bin/env python3
"""Write the GPT-2 import/export fixtures, with Hugging Face transformers
as the reference (issue #17).

    /work/venv/bin/python tests/reference/make_gpt2_fixtures.py --out tests/fixtures/gpt2

Each fixture is a tiny random GPT2LMHeadModel written by transformers'
save_pretrained (model.safetensors + config.json, F32, F16, BF16, sharded,
and one with its tensor names stripped of the `transformer.` prefix),
plus two llm.c checkpoints (version 3 float32 and version 5 bfloat16)
written here from the F32 model following llm.c's published layout.
Beside them, expected/<name>.safetensors records what transformers
computes for fixed token ids: the logits, the loss on the shifted targets
and the parameters after one torch.optim.AdamW step configured as tlm's
optimizer (see README.md, "GPT-2 fixtures").

    /work/venv/bin/python tests/reference/make_gpt2_fixtures.py --check-export DIR [--fixture NAME]

loads a directory that tlm exported in Hugging Face form with
GPT2LMHeadModel.from_pretrained and compares its logits on the recorded
ids with the recorded ones (NAME defaults to DIR's base name).

Deterministic: fixed seeds, one thread, so running it again gives the same
files byte for byte on the same transformers/PyTorch build.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

import transformers
from transformers import GPT2Config, GPT2LMHeadModel

GENERATOR_COMMAND = ("/work/venv/bin/python tests/reference/make_gpt2_fixtures.py "
                     "--out tests/fixtures/gpt2")

# Batch shape of every fixture's token ids.
BATCH = 2
LENGTH = 10

# One AdamW step, chosen to be exactly representable in float32 so that
# tlm's float settings and PyTorch's double ones are the same numbers.
# eps is large (2^-10) on purpose: after one step m_hat / sqrt(v_hat) is
# g / |g|, and with a tiny eps an element whose gradient is near zero
# would flip by 2 lr on round-off; with eps comparable to the small
# gradients the update is a smooth function of the gradient.
ADAMW = dict(lr=2.0 ** -7, beta1=0.875, beta2=0.984375, eps=2.0 ** -10,
             weight_decay=0.125)

# Rows of each 2-D parameter (in tlm's [out, in] layout) whose updated
# values are recorded; 1-D parameters are recorded whole.
UPDATED_ROWS = 4

# tlm's activation enum values (include/tlm.h, enum tlm_activation).
TLM_ACTIVATION = {"gelu_new": 0, "gelu_pytorch_tanh": 0, "gelu": 1, "relu": 2}

FIXTURES = [
    dict(name="f32", seed=1701, dtype=torch.float32,
         about="F32, gelu_new, layer_norm_epsilon 1e-5 (the llm.c files are "
               "written from this one)",
         n_layer=2, n_head=4, n_embd=32, vocab_size=97,
         activation="gelu_new", eps=1e-5, prefix=True, shard=None),
    dict(name="f16", seed=1702, dtype=torch.float16,
         about="F16 (model.half()), gelu_pytorch_tanh, layer_norm_epsilon 1e-3",
         n_layer=2, n_head=4, n_embd=40, vocab_size=113,
         activation="gelu_pytorch_tanh", eps=1e-3, prefix=True, shard=None),
    dict(name="bf16_noprefix", seed=1703, dtype=torch.bfloat16,
         about="BF16, exact gelu, tensor names without the transformer. prefix",
         n_layer=2, n_head=2, n_embd=32, vocab_size=127,
         activation="gelu", eps=1e-5, prefix=False, shard=None),
    dict(name="sharded", seed=1704, dtype=torch.float16,
         about="F16 in 3 shards with model.safetensors.index.json, "
               "layer_norm_epsilon 3e-4",
         n_layer=2, n_head=2, n_embd=32, vocab_size=101,
         activation="gelu_new", eps=3e-4, prefix=True, shard="25KB"),
]

# The llm.c checkpoints of fixture "f32": name, version, element type.
# Version 3 holds the same float32 values as "f32", so its expected values
# are those of expected/f32.safetensors; version 5 has its own.
LLMC = [("llmc_v3", 3, torch.float32), ("llmc_v5", 5, torch.bfloat16)]
LLMC_MAGIC = 20240326
# Fixtures whose expected values are another's.
EXPECTED_OF = {"llmc_v3": "f32"}


def build_model(spec):
    """A random GPT2LMHeadModel whose every parameter is far from its
    initialisation: weights N(0, 0.15^2) (so that logits are not nearly
    uniform), LayerNorm weights 1 + N(0, 0.2^2), LayerNorm and linear
    biases N(0, 0.1^2): a wrong mapping of any tensor changes the logits."""
    config = GPT2Config(
        n_layer=spec["n_layer"], n_head=spec["n_head"], n_embd=spec["n_embd"],
        n_positions=32, vocab_size=spec["vocab_size"],
        activation_function=spec["activation"],
        layer_norm_epsilon=spec["eps"],
        bos_token_id=spec["vocab_size"] - 1, eos_token_id=spec["vocab_size"] - 1)
    torch.manual_seed(spec["seed"])
    model = GPT2LMHeadModel(config)
    generator = torch.Generator().manual_seed(spec["seed"])
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if ".ln_" in name and name.endswith(".weight"):
                p.copy_(1.0 + 0.2 * noise)
            elif name.endswith(".bias"):
                p.copy_(0.1 * noise)
            else:
                p.copy_(0.15 * noise)
    return model.to(spec["dtype"])


def save_hf(model, spec, directory):
    if os.path.isdir(directory):
        shutil.rmtree(directory)
    kwargs = {"safe_serialization": True}
    if spec["shard"] is not None:
        kwargs["max_shard_size"] = spec["shard"]
    model.save_pretrained(directory, **kwargs)
    if not spec["prefix"]:
        # Rename transformer.X to X, as checkpoints of GPT2Model (and
        # OpenAI's converted ones) name them, and add the buffers old
        # checkpoints carry: each layer's causal mask h.N.attn.bias
        # [1, 1, n_positions, n_positions] and h.N.attn.masked_bias (a
        # scalar), which are not parameters and must be ignored.
        path = os.path.join(directory, "model.safetensors")
        tensors = load_file(path)
        renamed = {}
        for name, t in tensors.items():
            assert name.startswith("transformer."), name
            renamed[name[len("transformer."):]] = t
        n = model.config.n_positions
        for i in range(model.config.n_layer):
            renamed[f"h.{i}.attn.bias"] = torch.tril(torch.ones(n, n)).view(1, 1, n, n).to(
                model.dtype)
            renamed[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4).to(model.dtype)
        save_file(renamed, path, metadata={"format": "pt"})


def reference_model(directory, like=None):
    """The model as transformers reads it from `directory`, in float32,
    eager attention. `like`: the in-memory model it must equal."""
    model = GPT2LMHeadModel.from_pretrained(directory, dtype=torch.float32,
                                            attn_implementation="eager")
    if like is not None:
        theirs = dict(like.named_parameters())
        for name, p in model.named_parameters():
            assert torch.equal(p, theirs[name].float()), f"{directory}: {name} reloaded differently"
    model.eval()  # no dropout: the forward and the step below are deterministic
    return model


def token_ids(vocab_size, seed):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (BATCH, LENGTH), generator=generator)
    targets = torch.full_like(ids, -1)
    targets[:, :-1] = ids[:, 1:]  # the next token; the last position has none
    return ids, targets


def tlm_parameters(model):
    """The model's parameters under tlm's names and layout (docs/model.md):
    Conv1D weights [in, out] transposed to [out, in], c_attn split into
    q, k and v."""
    p = {n[len("transformer."):]: t.detach() for n, t in model.named_parameters()
         if n.startswith("transformer.")}
    C = model.config.n_embd
    out = {"token_embedding.weight": p["wte.weight"],
           "position_embedding.weight": p["wpe.weight"]}
    for i in range(model.config.n_layer):
        h, d = f"h.{i}.", f"decoder.layers.{i}."
        out[d + "self_attn_norm.weight"] = p[h + "ln_1.weight"]
        out[d + "self_attn_norm.bias"] = p[h + "ln_1.bias"]
        w, b = p[h + "attn.c_attn.weight"], p[h + "attn.c_attn.bias"]
        for j, part in enumerate("qkv"):
            out[d + f"self_attn.{part}_proj.weight"] = w[:, j * C:(j + 1) * C].t()
            out[d + f"self_attn.{part}_proj.bias"] = b[j * C:(j + 1) * C]
        out[d + "self_attn.o_proj.weight"] = p[h + "attn.c_proj.weight"].t()
        out[d + "self_attn.o_proj.bias"] = p[h + "attn.c_proj.bias"]
        out[d + "ffn_norm.weight"] = p[h + "ln_2.weight"]
        out[d + "ffn_norm.bias"] = p[h + "ln_2.bias"]
        out[d + "ffn.up_proj.weight"] = p[h + "mlp.c_fc.weight"].t()
        out[d + "ffn.up_proj.bias"] = p[h + "mlp.c_fc.bias"]
        out[d + "ffn.down_proj.weight"] = p[h + "mlp.c_proj.weight"].t()
        out[d + "ffn.down_proj.bias"] = p[h + "mlp.c_proj.bias"]
    out["decoder.final_norm.weight"] = p["ln_f.weight"]
    out["decoder.final_norm.bias"] = p["ln_f.bias"]
    return out


def reference_results(model, ids, targets):
    """Logits, loss and the parameters after one AdamW step."""
    V = model.config.vocab_size
    out = model(input_ids=ids, labels=ids)  # transformers shifts the labels itself
    logits = out.logits
    loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-1)
    assert torch.allclose(loss, out.loss, rtol=1e-6, atol=0), (loss, out.loss)
    # tlm's default decay flags: 2-D and larger parameters decay (matrices,
    # both embeddings), 1-D ones (biases, LayerNorm) do not. The tied
    # lm_head is the same Parameter as wte, listed once.
    decay = [p for _, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for _, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": ADAMW["weight_decay"]},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=ADAMW["lr"], betas=(ADAMW["beta1"], ADAMW["beta2"]), eps=ADAMW["eps"],
        foreach=False)
    model.zero_grad()
    out.loss.backward()
    gradient_scale = max(p.grad.abs().max().item() for p in model.parameters())
    optimizer.step()
    updated = {}
    for name, t in tlm_parameters(model).items():
        updated["updated." + name] = (t if t.dim() == 1 else t[:UPDATED_ROWS]).contiguous().clone()
    return logits.detach(), loss.detach(), updated, gradient_scale


def config_record(spec):
    return {
        "config.ints": torch.tensor(
            [spec["vocab_size"], spec["n_embd"], spec["n_head"], spec["n_layer"], 32,
             TLM_ACTIVATION[spec["activation"]]], dtype=torch.int32),
        "config.layer_norm_epsilon": torch.tensor([spec["eps"]], dtype=torch.float32),
    }


def write_expected(path, spec, about, ids, targets, logits, loss, updated):
    tensors = {"input.ids": ids.to(torch.int32).contiguous(),
               "input.targets": targets.to(torch.int32).contiguous(),
               "expected.logits": logits.float().contiguous(),
               "expected.loss": loss.float().reshape(1)}
    for key, value in ADAMW.items():
        tensors["adamw." + key] = torch.tensor([value], dtype=torch.float32)
    tensors.update(config_record(spec))
    tensors.update(updated)
    # One metadata key: safetensors writes several in a random order, and
    # the file should come out the same byte for byte.
    metadata = {"gpt2.fixture": json.dumps({
        "about": about,
        "generator": GENERATOR_COMMAND,
        "reference": f"transformers {transformers.__version__}, torch {torch.__version__}, "
                     "float32, eager attention, eval mode (no dropout)",
        "adamw": ADAMW,
        "updated": f"updated.<tlm name>: the parameter after one AdamW step, in tlm's "
                   f"[out, in] layout; of 2-D ones, their first {UPDATED_ROWS} rows",
    }, sort_keys=True)}
    save_file(tensors, path, metadata=metadata)


def write_llmc(path, model, version, dtype):
    """An llm.c checkpoint: 256 int32 header (magic, version, maxT, V, L,
    NH, C, Vp), then the parameters in llm.c's order, every matrix in
    nn.Linear's [out, in] layout, wte padded to Vp rows of zeros."""
    cfg = model.config
    V, C, L = cfg.vocab_size, cfg.n_embd, cfg.n_layer
    Vp = (V + 127) // 128 * 128
    header = np.zeros(256, dtype="<i4")
    header[:8] = [LLMC_MAGIC, version, cfg.n_positions, V, L, cfg.n_head, C, Vp]
    p = {n[len("transformer."):]: t.detach().float() for n, t in model.named_parameters()
         if n.startswith("transformer.")}
    wte = torch.zeros(Vp, C)
    wte[:V] = p["wte.weight"]

    def stacked(suffix, transpose=False):
        return [p[f"h.{i}.{suffix}"].t() if transpose else p[f"h.{i}.{suffix}"] for i in range(L)]

    order = [wte, p["wpe.weight"]]
    order += stacked("ln_1.weight") + stacked("ln_1.bias")
    order += stacked("attn.c_attn.weight", True) + stacked("attn.c_attn.bias")
    order += stacked("attn.c_proj.weight", True) + stacked("attn.c_proj.bias")
    order += stacked("ln_2.weight") + stacked("ln_2.bias")
    order += stacked("mlp.c_fc.weight", True) + stacked("mlp.c_fc.bias")
    order += stacked("mlp.c_proj.weight", True) + stacked("mlp.c_proj.bias")
    order += [p["ln_f.weight"], p["ln_f.bias"]]
    with open(path, "wb") as f:
        f.write(header.tobytes())
        for t in order:
            t = t.contiguous()
            if dtype == torch.float32:
                f.write(t.numpy().astype("<f4").tobytes())
            else:  # bfloat16, rounded to nearest even by PyTorch
                f.write(t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes())


def discrimination(model, ids):
    """How far the logits move under the mistakes an importer could make
    that a fixture must catch (printed, not stored)."""
    base = model(input_ids=ids).logits
    scale = base.abs().max().item()
    report = {}
    for name, change in [("layer_norm_epsilon 1e-5", ("layer_norm_epsilon", 1e-5)),
                         ("tanh gelu", ("activation_function", "gelu_new")),
                         ("exact gelu", ("activation_function", "gelu"))]:
        key, value = change
        if getattr(model.config, key) == value:
            continue
        changed = GPT2LMHeadModel(GPT2Config(**{**model.config.to_dict(), key: value}))
        changed.load_state_dict(model.state_dict())
        changed.eval()
        with torch.no_grad():
            other = changed(input_ids=ids).logits
        report[name] = (other - base).abs().max().item() / scale
    return report


def generate(out_dir):
    torch.use_deterministic_algorithms(True)
    os.makedirs(os.path.join(out_dir, "expected"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "llmc"), exist_ok=True)
    for spec in FIXTURES:
        model = build_model(spec)
        directory = os.path.join(out_dir, spec["name"])
        save_hf(model, spec, directory)
        reference = reference_model(directory, like=model)
        ids, targets = token_ids(spec["vocab_size"], spec["seed"] + 1)
        with torch.no_grad():
            report = discrimination(reference, ids)
        logits, loss, updated, gscale = reference_results(reference, ids, targets)
        write_expected(os.path.join(out_dir, "expected", spec["name"] + ".safetensors"),
                       spec, spec["about"], ids, targets, logits, loss, updated)
        print(f"{spec['name']}: loss {loss.item():.6f}, max|logit| {logits.abs().max().item():.3f}, "
              f"max|grad| {gscale:.3g}; relative logit change under "
              + ", ".join(f"{k}: {v:.2e}" for k, v in report.items()))
        if spec["name"] != "f32":
            continue
        for name, version, dtype in LLMC:
            write_llmc(os.path.join(out_dir, "llmc", name + ".bin"), model, version, dtype)
            if version == 3:
                continue
            # What the file holds (every value rounded to bfloat16), read
            # back by transformers like the other fixtures.
            rounded = GPT2LMHeadModel(model.config)
            rounded.load_state_dict({k: v.to(dtype).float() for k, v in model.state_dict().items()})
            with tempfile.TemporaryDirectory() as scratch:
                rounded.save_pretrained(scratch, safe_serialization=True)
                logits, loss, updated, _ = reference_results(
                    reference_model(scratch, like=rounded), ids, targets)
            write_expected(os.path.join(out_dir, "expected", name + ".safetensors"), spec,
                           f"llm.c version {version} ({'float32' if version == 3 else 'bfloat16'}) "
                           "checkpoint of fixture f32; expected values from its stored weights",
                           ids, targets, logits, loss, updated)
            print(f"{name}: loss {loss.item():.6f}")


def check_export(directory, fixture, expected_dir, logits_file=None):
    fixture = EXPECTED_OF.get(fixture, fixture)
    expected = load_file(os.path.join(expected_dir, fixture + ".safetensors"))
    if logits_file is not None:
        # What tlm computed for the exported model (raw float32 [B, T, V]).
        shape = expected["expected.logits"].shape
        expected["expected.logits"] = torch.from_numpy(
            np.fromfile(logits_file, dtype="<f4").reshape(shape))
    model, info = GPT2LMHeadModel.from_pretrained(directory, dtype=torch.float32,
                                                  attn_implementation="eager",
                                                  output_loading_info=True)
    # Nothing left at its random initialisation, nothing ignored.
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="write the fixtures into this directory")
    parser.add_argument("--check-export", metavar="DIR", nargs="+",
                        help="load tlm-exported Hugging Face directories and compare their logits")
    parser.add_argument("--fixture", help="with --check-export: the fixture it came from "
                        "(default: the directory's base name)")
    parser.add_argument("--logits", help="with --check-export: compare with these raw float32 "
                        "logits (what tlm computed for the exported model) instead of the fixture's")
    parser.add_argument("--fixtures", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "gpt2"),
        help="with --check-export: the fixtures directory")
    args = parser.parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    if args.check_export:
        ok = all([check_export(d, args.fixture or os.path.basename(os.path.normpath(d)),
                               os.path.join(args.fixtures, "expected"), args.logits)
                  for d in args.check_export])
        return 0 if ok else 1
    if not args.out:
        parser.error("give --out DIR or --check-export DIR")
    generate(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
