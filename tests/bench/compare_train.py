#!/usr/bin/python3
"""Training speed (or quality) of tlm and PyTorch side by side.

  tests/bench/compare_train.py [--build build] [--repeat N] [--out FILE]
                               [bench_train options...]

Runs build/tests/bench/bench_train and tests/bench/torch_reference.py
with the same options (--data, --config, --threads, --steps, --warmup,
--seed, --quality, --eval-every, --eval-batches, --gelu), alternating them
--repeat times (default 1) so that both see the same load on a shared
machine, and prints per configuration and thread count the two results
and the ratio: tokens/s of tlm over torch (above 1: tlm is faster), or
with --quality the validation losses. With several repeats the best
(highest tokens/s) line of each side is kept. Every JSON line read is
also written to --out when given.
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run(command):
    print("+ " + " ".join(command), file=sys.stderr, flush=True)
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if result.returncode == 77:
        print("skipped: no data (give --data PATH)", file=sys.stderr)
        sys.exit(77)
    if result.returncode != 0:
        print(f"failed with status {result.returncode}", file=sys.stderr)
        sys.exit(1)
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--out", default=None)
    a, rest = p.parse_known_args()
    quality = "--quality" in rest
    tlm = [os.path.join(a.build, "tests", "bench", "bench_train")] + rest
    # Debian's python3-torch lives under /usr/bin/python3, which need not be
    # the python3 first on PATH (pyenv, a virtualenv).
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    torch = [python, os.path.join(HERE, "torch_reference.py")] + rest
    records = []
    for _ in range(max(1, a.repeat)):
        records += run(tlm)
        records += run(torch)
    if a.out:
        with open(a.out, "w") as f:
            for r in records:
                f.write(json.dumps(r, separators=(",", ":")) + "\n")

    kind = "train_quality" if quality else "train"
    best = {}
    for r in records:
        if r.get("bench") != kind:
            continue
        key = (r["config"], r["threads"], r["impl"])
        if key not in best or r["tokens_per_s"] > best[key]["tokens_per_s"]:
            best[key] = r
    keys = sorted({(c, t) for c, t, _ in best}, key=lambda k: (k[0] != "nanogpt-cpu", k))
    if quality:
        print(f"{'config':<12} {'threads':>7} {'steps':>6} {'tlm val':>8} {'torch val':>9}"
              f" {'tlm tok/s':>10} {'torch tok/s':>11} {'speed ratio':>11}")
    else:
        print(f"{'config':<12} {'threads':>7} {'tlm ms/step':>11} {'torch ms/step':>13}"
              f" {'tlm tok/s':>10} {'torch tok/s':>11} {'tlm/torch':>9}")
    for config, threads in keys:
        t = best.get((config, threads, "tlm"))
        r = best.get((config, threads, "torch"))
        ratio = t["tokens_per_s"] / r["tokens_per_s"] if t and r else float("nan")
        if quality:
            print(f"{config:<12} {threads:>7} {(t or r)['steps']:>6}"
                  f" {t['val_loss'] if t else float('nan'):>8.4f}"
                  f" {r['val_loss'] if r else float('nan'):>9.4f}"
                  f" {t['tokens_per_s'] if t else float('nan'):>10.1f}"
                  f" {r['tokens_per_s'] if r else float('nan'):>11.1f} {ratio:>11.2f}")
        else:
            print(f"{config:<12} {threads:>7}"
                  f" {t['ms_per_step'] if t else float('nan'):>11.1f}"
                  f" {r['ms_per_step'] if r else float('nan'):>13.1f}"
                  f" {t['tokens_per_s'] if t else float('nan'):>10.1f}"
                  f" {r['tokens_per_s'] if r else float('nan'):>11.1f} {ratio:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
