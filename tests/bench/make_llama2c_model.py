#!/usr/bin/env python3
"""Random-weight checkpoints in llama2.c's formats, for bench_llama2c.

The speed of decoding does not depend on the weights' values, so the
benchmark needs only files of the right shapes; this writes them without
torch or the internet (numpy only):

  15M   dim 288, hidden 768, 6 layers, 6 heads, 6 kv heads, vocab 32000,
        seq 256 (stories15M's shape)
  110M  dim 768, hidden 2048, 12 layers, 12 heads, 12 kv heads, vocab 32000,
        seq 1024 (stories110M's shape)
  260K  dim 64, hidden 172, 5 layers, 8 heads, 4 kv heads, vocab 512,
        seq 512 (stories260K's grouped-query shape)

The layout is what llama2.c's export.py legacy_export() writes and run.c's
memory_map_weights() reads: a header of 7 int32 (dim, hidden_dim, n_layers,
n_heads, n_kv_heads, vocab_size, seq_len; vocab_size negative when the
classifier is not shared with the embedding), then float32 tensors, each
row-major [out, in] as torch's Linear stores it:
  token embedding [vocab, dim]
  attention_norm of every layer [dim]
  wq of every layer [n_heads*hd, dim], wk [n_kv*hd, dim], wv [n_kv*hd, dim],
  wo [dim, n_heads*hd]
  ffn_norm of every layer [dim]
  w1 of every layer [hidden, dim], w2 [dim, hidden], w3 [hidden, dim]
  final norm [dim]
  freqs_cos [seq, hd/2], freqs_sin [seq, hd/2] (run.c skips them)
  the classifier [vocab, dim] only when it is not shared.

Scales keep activations sane: embedding rows N(0, 0.05^2) (so the tied
classifier's logits spread by about 1 and a greedy choice is clear-cut),
projections N(0, 1/fan_in), the two projections that feed the residual
stream (wo, w2) further divided by sqrt(2 * n_layers), norm weights
1 + N(0, 0.01^2). Rows 1 and 2 (BOS, EOS) of the classifier are scaled
down 1000-fold so that greedy decoding never picks them: run.c stops at
BOS, and both programs must run the same number of positions.

--version 2 writes the same weights (the same seed draws the same values)
in export.py's version 2 format (version2_export(), read by runq.c): a
256-byte header ("ak42", 2, the 7 int32 with vocab_size positive, a byte
saying whether the classifier is shared, the int32 group size, zeros), the
norms in float32 (every layer's attention_norm, then ffn_norm, then the
final norm), then each matrix (token embedding, wq, wk, wv, wo, w1, w2, w3
of every layer, the classifier when not shared) as int8 values followed
by its float32 scales. Quantization is export.py's quantize_q80(): the
flattened tensor in groups of 64 (halved until it divides dim, as export.py
does: 32 for the 15M shape), scale = max|w| / 127 in float32, q = w / scale
rounded half to even (torch.round). The bytes were checked identical to
export.py's quantize_q80 on the float32 file's tensors, and runq.c decodes
the files deterministically (the same greedy text as run.c on the float32
file, for 40 tokens of the 15M shape).

  python3 tests/bench/make_llama2c_model.py OUT_DIR [--shapes 15M,110M,260K]
      [--seed N] [--untied] [--version 0|2]

writes OUT_DIR/random15M.bin etc. (version 2: random15M_q80.bin) (e.g. /work/ext/models; never into the
repository: the 110M file is 440 MB). Each file is written to a temporary
name and renamed, so a failure leaves no half-written file.
"""
import argparse
import os
import struct
import sys

import numpy as np

SHAPES = {
    # name: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab, seq_len
    "15M": (288, 768, 6, 6, 6, 32000, 256),
    "110M": (768, 2048, 12, 12, 12, 32000, 1024),
    "260K": (64, 172, 5, 8, 4, 512, 512),
}


def make_tensors(shape, seed, tied):
    """The model's tensors, drawn from the generator in the order the
    legacy file lists them (so that every version holds the same weights
    for a seed): a dict of float32 arrays, per-layer lists for the layer
    tensors."""
    dim, hidden, layers, heads, kv_heads, vocab, seq = shape
    hd = dim // heads
    rng = np.random.default_rng(seed)

    def normal(rows, cols, std):
        return (rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(std))

    t = {}
    t["embedding"] = normal(vocab, dim, 0.05)
    t["classifier"] = t["embedding"] if tied else normal(vocab, dim, 0.05)
    t["classifier"][1:3] *= np.float32(1e-3)  # never BOS/EOS when greedy
    residual = 1.0 / np.sqrt(2.0 * layers)
    t["attention_norm"] = [1 + normal(1, dim, 0.01) for _ in range(layers)]
    t["wq"] = [normal(heads * hd, dim, 1 / np.sqrt(dim)) for _ in range(layers)]
    t["wk"] = [normal(kv_heads * hd, dim, 1 / np.sqrt(dim)) for _ in range(layers)]
    t["wv"] = [normal(kv_heads * hd, dim, 1 / np.sqrt(dim)) for _ in range(layers)]
    t["wo"] = [normal(dim, heads * hd, residual / np.sqrt(heads * hd))
               for _ in range(layers)]
    t["ffn_norm"] = [1 + normal(1, dim, 0.01) for _ in range(layers)]
    t["w1"] = [normal(hidden, dim, 1 / np.sqrt(dim)) for _ in range(layers)]
    t["w2"] = [normal(dim, hidden, residual / np.sqrt(hidden)) for _ in range(layers)]
    t["w3"] = [normal(hidden, dim, 1 / np.sqrt(dim)) for _ in range(layers)]
    t["norm"] = 1 + normal(1, dim, 0.01)
    return t


def out(f, array):
    f.write(np.ascontiguousarray(array, dtype="<f4").tobytes())


def write_legacy(f, shape, t, tied):
    """Version 0: header of 7 int32, then float32 tensors."""
    dim, hidden, layers, heads, kv_heads, vocab, seq = shape
    hd = dim // heads
    f.write(struct.pack("<7i", dim, hidden, layers, heads, kv_heads,
                        vocab if tied else -vocab, seq))
    out(f, t["embedding"])
    for name in ("attention_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w2", "w3"):
        for array in t[name]:
            out(f, array)
    out(f, t["norm"])
    # export.py's freqs_cos / freqs_sin (model.py precompute_freqs_cis,
    # theta 10000): written for the layout, never read by run.c.
    freqs = 1.0 / (10000.0 ** (np.arange(0, hd, 2, dtype=np.float32) / hd))
    angles = np.outer(np.arange(seq, dtype=np.float32), freqs)
    out(f, np.cos(angles))
    out(f, np.sin(angles))
    if not tied:
        out(f, t["classifier"])


def quantize_q80(w, group_size):
    """export.py's quantize_q80 in numpy: the tensor flattened into groups
    of group_size, scale = max|w| / 127 (float32), q = w / scale rounded
    half to even (torch.round) -> int8. Returns (q int8, scale float32)."""
    groups = np.ascontiguousarray(w, dtype=np.float32).reshape(-1, group_size)
    scale = np.abs(groups).max(axis=1) / np.float32(127.0)
    q = np.round(groups / scale[:, None]).astype(np.int8)
    return q, scale.astype(np.float32)


def write_version2(f, shape, t, tied, group_size=64):
    """Version 2 (export.py version2_export): a 256-byte header ("ak42",
    version 2, the 7 int32 with vocab_size positive, a byte saying whether
    the classifier is shared, the int32 group size, zeros), the norms in
    float32 (attention norms of every layer, feedforward norms, the final
    norm), then each matrix as int8 values followed by its float32 group
    scales: embedding, wq, wk, wv, wo, w1, w2, w3 of every layer, and the
    classifier when not shared. The group size halves until it divides
    dim, as export.py does (15M: 288 -> 32)."""
    dim, hidden, layers, heads, kv_heads, vocab, seq = shape
    while dim % group_size != 0:
        group_size //= 2
        print(f"BACKOFF: reducing group size to {group_size} to fit dim")
    header = struct.pack("<Ii7iBi", 0x616b3432, 2, dim, hidden, layers, heads,
                         kv_heads, vocab, seq, int(tied), group_size)
    f.write(header + b"\0" * (256 - len(header)))
    for array in t["attention_norm"] + t["ffn_norm"] + [t["norm"]]:
        out(f, array)
    matrices = [t["embedding"]]
    for name in ("wq", "wk", "wv", "wo", "w1", "w2", "w3"):
        matrices += t[name]
    if not tied:
        matrices.append(t["classifier"])
    for w in matrices:
        if w.size % group_size != 0:
            raise ValueError(f"{w.shape} is not a multiple of group size {group_size}")
        if w.shape[1] % group_size != 0:
            print(f"warning: rows of {w.shape} span groups; runq.c drops their tails")
        q, scale = quantize_q80(w, group_size)
        f.write(q.tobytes())
        out(f, scale)
    return group_size


def write_model(path, shape, seed, tied, version):
    dim, hidden, layers, heads, kv_heads, vocab, seq = shape
    hd = dim // heads
    t = make_tensors(shape, seed, tied)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        if version == 2:
            group_size = write_version2(f, shape, t, tied)
        else:
            write_legacy(f, shape, t, tied)
    os.replace(tmp, path)
    params = (vocab * dim * (1 if tied else 2) + layers * (2 * dim + dim * heads * hd * 2
              + 2 * dim * kv_heads * hd + 3 * dim * hidden) + dim)
    what = f"version 2, Q8_0 groups of {group_size}" if version == 2 else "legacy float32"
    print(f"wrote {path}: {params} parameters, {what}, {os.path.getsize(path)} bytes")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--shapes", default="15M,110M,260K")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--untied", action="store_true",
                        help="write a separate classifier (negative vocab_size)")
    parser.add_argument("--version", type=int, choices=(0, 2), default=0,
                        help="0: legacy float32 (run.c); 2: Q8_0 int8 (runq.c)")
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    for name in args.shapes.split(","):
        if name not in SHAPES:
            sys.exit(f"unknown shape '{name}' (one of {', '.join(SHAPES)})")
        suffix = ("_untied" if args.untied else "") + ("_q80" if args.version == 2 else "")
        write_model(os.path.join(args.out_dir, f"random{name}{suffix}.bin"),
                    SHAPES[name], args.seed, not args.untied, args.version)


if __name__ == "__main__":
    main()
