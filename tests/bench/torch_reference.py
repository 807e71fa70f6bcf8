#!/usr/bin/python3
"""The PyTorch side of the training benchmark (tests/bench/bench_train.c).

An independent, plain-PyTorch GPT with the same configuration, the same
initialisation, the same optimizer (AdamW lr 1e-3, betas 0.9/0.99, weight
decay 0.1 on every tensor of 2 or more dimensions, as nanoGPT's
configure_optimizers; gradient clipping at 1), the same batch shapes and
the same data (the text's distinct bytes as the vocabulary, 90/10 split),
run at the same thread counts. It prints the same JSON lines as
bench_train, with "impl":"torch":

  torch_reference.py [--data PATH] [--config nanogpt-cpu|6x384|all]
                     [--threads 1,2] [--steps N] [--warmup N] [--seed N]
                     [--quality] [--eval-every N] [--eval-batches N]
                     [--coretype SkylakeX] [--gelu tanh|exact]
                     [--omp-wait-policy PASSIVE|ACTIVE|unset]
                     [--attention auto|sdpa|manual] [--compile on|off]
                     [--matmul-precision highest|high|medium]

Run it with the interpreter whose PyTorch is to be measured: Debian's
python3-torch 1.13 (/usr/bin/python3) or a current PyTorch 2.x from PyPI
in a virtual environment (compare_train.py --torch PYTHON runs both).

Debian's python3-torch (1.13) does its matrix products in OpenBLAS 0.3.21,
which does not recognise this machine's CPU and falls back to SSE3
kernels; with OpenMP's default spin-waiting, two threads run at half the
speed of one. So for each thread count the script re-runs itself with
OPENBLAS_CORETYPE (default SkylakeX: AVX-512 kernels), OMP_WAIT_POLICY
(default PASSIVE), OMP_NUM_THREADS and OPENBLAS_NUM_THREADS set (OpenBLAS
and OpenMP read them when they load) and OPENBLAS_L2_SIZE removed. Every
line names the core OpenBLAS reports ("openblas_core", null when PyTorch
does not use the system's OpenBLAS, as PyPI's builds with MKL and oneDNN).

PyTorch 2.x settings: --attention auto (the default) uses the fused
F.scaled_dot_product_attention (is_causal) where PyTorch has it (2.0 on)
and the explicit masked softmax otherwise (1.13; also --attention manual);
--compile on wraps the model in torch.compile (2.0 on; the warm-up steps
include the compilation); --matmul-precision sets
torch.set_float32_matmul_precision (2.0 on; the default "highest" keeps
float32 products, "medium" lets oneDNN use bf16 on CPUs that have it).
Every line says what ran ("torch_version", "attention", "compile",
"matmul_precision", "omp_wait_policy"), the process's peak resident
memory just after importing torch ("import_rss_mb": the libraries) and
so far ("peak_rss_mb"), both from getrusage. Optional: no test needs it.
"""

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

CONFIGS = {
    # name: layers, heads, width, context, batch, measured steps, warm-up
    "nanogpt-cpu": (4, 4, 128, 64, 12, 30, 3),
    "6x384": (6, 6, 384, 256, 16, 5, 2),
}
CHILD = "TLM_TORCH_REFERENCE_CHILD"


def dumps(record):
    """One JSON line, compact like bench_train's."""
    return json.dumps(record, separators=(",", ":"))


def default_data():
    env = os.environ.get("TLM_BENCH_DATA")
    if env:
        return env
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(root, "..", "shared", "data", "tinyshakespeare.txt")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=None)
    p.add_argument("--config", default=None)
    p.add_argument("--threads", default=None, help="comma list, e.g. 1,2")
    p.add_argument("--steps", type=int, default=0)
    p.add_argument("--warmup", type=int, default=-1)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--quality", action="store_true")
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--eval-batches", type=int, default=100)
    p.add_argument("--coretype", default="SkylakeX")
    p.add_argument("--gelu", choices=("tanh", "exact"), default="tanh",
                   help="exact: the erf GELU of nanoGPT's model")
    p.add_argument("--omp-wait-policy", choices=("PASSIVE", "ACTIVE", "unset"),
                   default="PASSIVE", help="OMP_WAIT_POLICY of the run (unset: "
                   "the OpenMP runtime's default)")
    p.add_argument("--attention", choices=("auto", "sdpa", "manual"), default="auto",
                   help="sdpa: F.scaled_dot_product_attention (PyTorch 2.0 on); "
                   "auto: sdpa where available, else manual")
    p.add_argument("--compile", choices=("on", "off"), default="off",
                   help="on: torch.compile the model (PyTorch 2.0 on)")
    p.add_argument("--matmul-precision", choices=("highest", "high", "medium"),
                   default="highest", help="torch.set_float32_matmul_precision "
                   "(PyTorch 2.0 on)")
    a = p.parse_args()
    if a.config is None:
        a.config = "nanogpt-cpu" if a.quality else "all"
    if a.threads is None:
        a.threads = "1" if a.quality else "1,2"
    if a.config != "all" and a.config not in CONFIGS:
        p.error("--config expects nanogpt-cpu, 6x384 or all")
    if a.data is None:
        a.data = default_data()
    return a


def parent(a):
    """Re-run this script once per thread count with the environment set."""
    if not os.path.exists(a.data):
        print(f"torch_reference: cannot open '{a.data}': skipped", file=sys.stderr)
        print(dumps({"bench": "train", "impl": "torch", "skipped": "no data"}))
        return 77
    for threads in [int(t) for t in a.threads.split(",")]:
        env = dict(os.environ)
        env.pop("OPENBLAS_L2_SIZE", None)
        env.pop("OMP_WAIT_POLICY", None)
        if a.omp_wait_policy != "unset":
            env["OMP_WAIT_POLICY"] = a.omp_wait_policy
        env.update({
            CHILD: str(threads),
            "OPENBLAS_CORETYPE": a.coretype,
            "OMP_NUM_THREADS": str(threads),
            "OPENBLAS_NUM_THREADS": str(threads),
        })
        status = subprocess.call([sys.executable, os.path.abspath(__file__)] + sys.argv[1:],
                                 env=env)
        if status != 0:
            return status
    return 0


def child(a, threads):
    import ctypes
    import torch
    # What the libraries alone hold resident (PyPI's CUDA build maps
    # several hundred MB), to tell them from the training's memory.
    import_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    gelu_form = "none" if a.gelu == "exact" else "tanh"
    has_sdpa = hasattr(F, "scaled_dot_product_attention")
    if a.attention == "sdpa" and not has_sdpa:
        print(f"torch_reference: PyTorch {torch.__version__} has no "
              "scaled_dot_product_attention (2.0 on)", file=sys.stderr)
        return 2
    use_sdpa = a.attention == "sdpa" or (a.attention == "auto" and has_sdpa)
    if a.compile == "on" and not hasattr(torch, "compile"):
        print(f"torch_reference: PyTorch {torch.__version__} has no torch.compile "
              "(2.0 on)", file=sys.stderr)
        return 2
    if hasattr(torch, "set_float32_matmul_precision"):
        torch.set_float32_matmul_precision(a.matmul_precision)
    elif a.matmul_precision != "highest":
        print(f"torch_reference: PyTorch {torch.__version__} has no "
              "set_float32_matmul_precision (2.0 on)", file=sys.stderr)
        return 2
    # The system's OpenBLAS only when this PyTorch loaded it (Debian's);
    # PyPI's wheels bring MKL and oneDNN and never load it.
    core = None
    if any("libopenblas" in line for line in open("/proc/self/maps")):
        try:
            lib = ctypes.CDLL("libopenblas.so.0")
            lib.openblas_get_corename.restype = ctypes.c_char_p
            core = lib.openblas_get_corename().decode()
        except (OSError, AttributeError):
            pass
    settings = {"torch_version": torch.__version__.split("+")[0],
                "attention": "sdpa" if use_sdpa else "manual",
                "compile": a.compile == "on",
                "matmul_precision": a.matmul_precision,
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                "import_rss_mb": import_rss_mb}

    def peak_rss_mb():
        # ru_maxrss is in KiB on Linux.
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

    class LayerNorm(nn.Module):
        """LayerNorm with a gain and no bias (torch 1.13 has no bias=False)."""

        def __init__(self, width):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(width))

        def forward(self, x):
            return F.layer_norm(x, self.weight.shape, self.weight, None, 1e-5)

    class Attention(nn.Module):
        def __init__(self, width, heads):
            super().__init__()
            self.heads = heads
            self.qkv = nn.Linear(width, 3 * width, bias=False)
            self.proj = nn.Linear(width, width, bias=False)

        def forward(self, x):
            b, t, c = x.shape
            q, k, v = self.qkv(x).split(c, dim=2)
            q = q.view(b, t, self.heads, c // self.heads).transpose(1, 2)
            k = k.view(b, t, self.heads, c // self.heads).transpose(1, 2)
            v = v.view(b, t, self.heads, c // self.heads).transpose(1, 2)
            if use_sdpa:  # fused: no T x T matrix kept for the backward
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                return self.proj(y.transpose(1, 2).contiguous().view(b, t, c))
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            mask = torch.ones(t, t, dtype=torch.bool).tril()
            scores = scores.masked_fill(~mask, float("-inf"))
            y = F.softmax(scores, dim=-1) @ v
            return self.proj(y.transpose(1, 2).contiguous().view(b, t, c))

    class Block(nn.Module):
        def __init__(self, width, heads):
            super().__init__()
            self.ln1 = LayerNorm(width)
            self.attn = Attention(width, heads)
            self.ln2 = LayerNorm(width)
            self.fc = nn.Linear(width, 4 * width, bias=False)
            self.fc2 = nn.Linear(4 * width, width, bias=False)

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.fc2(F.gelu(self.fc(self.ln2(x)), approximate=gelu_form))

    class GPT(nn.Module):
        def __init__(self, vocab, layers, heads, width, context):
            super().__init__()
            self.tokens = nn.Embedding(vocab, width)
            self.positions = nn.Embedding(context, width)
            self.blocks = nn.ModuleList([Block(width, heads) for _ in range(layers)])
            self.ln_f = LayerNorm(width)
            # GPT-2 initialisation: N(0, 0.02) everywhere, the projections
            # into the residual stream N(0, 0.02 / sqrt(2 layers)).
            for name, p in self.named_parameters():
                if p.dim() >= 2:
                    std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "fc2.weight")) else 0.02
                    nn.init.normal_(p, mean=0.0, std=std)

        def forward(self, idx, targets):
            t = idx.size(1)
            x = self.tokens(idx) + self.positions(torch.arange(t))
            for block in self.blocks:
                x = block(x)
            logits = F.linear(self.ln_f(x), self.tokens.weight)  # tied output
            return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    raw = open(a.data, "rb").read()
    symbols = sorted(set(raw))
    table = [0] * 256
    for i, s in enumerate(symbols):
        table[s] = i
    data = torch.tensor([table[b] for b in raw], dtype=torch.long)
    n_train = int(len(data) * 0.9)
    splits = {"train": data[:n_train], "val": data[n_train:]}
    torch.manual_seed(a.seed)

    def batch(split, size, context, gen=None):
        part = splits[split]
        starts = torch.randint(len(part) - context, (size,), generator=gen)
        x = torch.stack([part[i:i + context] for i in starts])
        y = torch.stack([part[i + 1:i + 1 + context] for i in starts])
        return x, y

    names = list(CONFIGS) if a.config == "all" else [a.config]
    for name in names:
        layers, heads, width, context, size, steps, warmup = CONFIGS[name]
        total = a.steps if a.quality and a.steps > 0 else 2000
        model = GPT(len(symbols), layers, heads, width, context)
        decay = [p for p in model.parameters() if p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=1e-3, betas=(0.9, 0.99))
        params = sum(p.numel() for p in model.parameters())
        # The optimizer holds the parameters themselves; the compiled
        # module shares them and is only what the steps call.
        forward = torch.compile(model) if a.compile == "on" else model

        def lr_at(it):
            # train_shakespeare_char.py: warmup_iters 100, cosine decay to
            # min_lr 1e-4 at lr_decay_iters = max_iters (nanoGPT's get_lr).
            warm = 100 if total > 100 else 0
            if it < warm:
                return 1e-3 * it / warm
            if it > total:
                return 1e-4
            ratio = (it - warm) / max(1, total - warm)
            return 1e-4 + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (1e-3 - 1e-4)

        def train_step(it):
            for group in opt.param_groups:
                group["lr"] = lr_at(it)
            x, y = batch("train", size, context)
            loss = forward(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.item()

        @torch.no_grad()
        def evaluate(split):
            model.eval()
            gen = torch.Generator().manual_seed(a.seed + 1)
            losses = [forward(*batch(split, size, context, gen)).item()
                      for _ in range(a.eval_batches)]
            model.train()
            return sum(losses) / len(losses)

        common = {"impl": "torch", "config": name}
        if not a.quality:
            steps = a.steps if a.steps > 0 else steps
            warmup = a.warmup if a.warmup >= 0 else warmup
            it = 0
            for _ in range(warmup):
                train_step(it)
                it += 1
            times = []
            loss = 0.0
            for _ in range(steps):
                start = time.perf_counter()
                loss = train_step(it)
                times.append(time.perf_counter() - start)
                it += 1
            times.sort()
            median = times[steps // 2] if steps % 2 else 0.5 * (times[steps // 2 - 1] + times[steps // 2])
            print(dumps({"bench": "train", **common, "layers": layers, "heads": heads,
                              "width": width, "threads": torch.get_num_threads(),
                              "batch": size, "context": context, "steps": steps,
                              "tokens_per_s": round(size * context / median, 1),
                              "ms_per_step": round(1e3 * median, 3),
                              "ms_per_step_mean": round(1e3 * sum(times) / steps, 3),
                              "ms_per_step_min": round(1e3 * times[0], 3),
                              "loss": round(loss, 4), "params": params,
                              "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
                              "openblas_core": core, **settings,
                              "peak_rss_mb": peak_rss_mb()}), flush=True)
            continue
        steps = total
        elapsed = 0.0
        loss = 0.0
        for it in range(steps):
            if it % a.eval_every == 0:
                print(dumps({"bench": "train_curve", **common, "step": it,
                                  "train_loss": round(evaluate("train"), 4),
                                  "val_loss": round(evaluate("val"), 4),
                                  "seconds": round(elapsed, 1)}), flush=True)
            start = time.perf_counter()
            loss = train_step(it)
            elapsed += time.perf_counter() - start
        print(dumps({"bench": "train_quality", **common,
                          "threads": torch.get_num_threads(), "steps": steps,
                          "batch": size, "context": context,
                          "eval_batches": a.eval_batches, "decay_embeddings": True,
                          "gelu": a.gelu,
                          "seed": a.seed, "train_loss": round(evaluate("train"), 4),
                          "val_loss": round(evaluate("val"), 4),
                          "last_step_loss": round(loss, 4),
                          "training_seconds": round(elapsed, 1),
                          "tokens_per_s": round(steps * size * context / elapsed, 1),
                          "params": params, "openblas_core": core, **settings,
                          "peak_rss_mb": peak_rss_mb()}), flush=True)
    return 0


def main():
    a = parse_args()
    threads = os.environ.get(CHILD)
    if threads is None:
        return parent(a)
    return child(a, int(threads))


if __name__ == "__main__":
    sys.exit(main())
