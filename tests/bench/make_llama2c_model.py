#!/usr/bin/env python3
"""Random-weight checkpoints in llama2.c's legacy format, for bench_llama2c.

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

  python3 tests/bench/make_llama2c_model.py OUT_DIR [--shapes 15M,110M,260K]
      [--seed N] [--untied]

writes OUT_DIR/random15M.bin etc. (e.g. /work/ext/models; never into the
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


def write_model(path, shape, seed, tied):
    dim, hidden, layers, heads, kv_heads, vocab, seq = shape
    hd = dim // heads
    rng = np.random.default_rng(seed)

    def normal(rows, cols, std):
        return (rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(std))

    def out(f, array):
        f.write(np.ascontiguousarray(array, dtype="<f4").tobytes())

    embedding = normal(vocab, dim, 0.05)
    classifier = embedding if tied else normal(vocab, dim, 0.05)
    classifier[1:3] *= np.float32(1e-3)  # never BOS/EOS when greedy
    residual = 1.0 / np.sqrt(2.0 * layers)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<7i", dim, hidden, layers, heads, kv_heads,
                            vocab if tied else -vocab, seq))
        out(f, embedding)
        for _ in range(layers):
            out(f, 1 + normal(1, dim, 0.01))
        for _ in range(layers):
            out(f, normal(heads * hd, dim, 1 / np.sqrt(dim)))
        for _ in range(layers):
            out(f, normal(kv_heads * hd, dim, 1 / np.sqrt(dim)))
        for _ in range(layers):
            out(f, normal(kv_heads * hd, dim, 1 / np.sqrt(dim)))
        for _ in range(layers):
            out(f, normal(dim, heads * hd, residual / np.sqrt(heads * hd)))
        for _ in range(layers):
            out(f, 1 + normal(1, dim, 0.01))
        for _ in range(layers):
            out(f, normal(hidden, dim, 1 / np.sqrt(dim)))
        for _ in range(layers):
            out(f, normal(dim, hidden, residual / np.sqrt(hidden)))
        for _ in range(layers):
            out(f, normal(hidden, dim, 1 / np.sqrt(dim)))
        out(f, 1 + normal(1, dim, 0.01))
        # export.py's freqs_cos / freqs_sin (model.py precompute_freqs_cis,
        # theta 10000): written for the layout, never read by run.c.
        freqs = 1.0 / (10000.0 ** (np.arange(0, hd, 2, dtype=np.float32) / hd))
        angles = np.outer(np.arange(seq, dtype=np.float32), freqs)
        out(f, np.cos(angles))
        out(f, np.sin(angles))
        if not tied:
            out(f, classifier)
    os.replace(tmp, path)
    params = (vocab * dim * (1 if tied else 2) + layers * (2 * dim + dim * heads * hd * 2
              + 2 * dim * kv_heads * hd + 3 * dim * hidden) + dim)
    print(f"wrote {path}: {params} parameters, {os.path.getsize(path)} bytes")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--shapes", default="15M,110M,260K")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--untied", action="store_true",
                        help="write a separate classifier (negative vocab_size)")
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    for name in args.shapes.split(","):
        if name not in SHAPES:
            sys.exit(f"unknown shape '{name}' (one of {', '.join(SHAPES)})")
        suffix = "_untied" if args.untied else ""
        write_model(os.path.join(args.out_dir, f"random{name}{suffix}.bin"),
                    SHAPES[name], args.seed, not args.untied)


if __name__ == "__main__":
    main()
