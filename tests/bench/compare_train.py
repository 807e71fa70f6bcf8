#!/usr/bin/python3
"""Training speed (or quality) of tlm and PyTorch side by side.

  tests/bench/compare_train.py [--build build] [--rounds N]
                               [--torch PYTHON]... [--torch-compile off,on]
                               [--tlm-precision float32,bf16]
                               [--out FILE] [bench_train options...]

Runs build/tests/bench/bench_train and tests/bench/torch_reference.py under
each --torch interpreter (default /usr/bin/python3, Debian's PyTorch 1.13;
give it again with a virtual environment's python for PyTorch 2.x: one
--torch per PyTorch), with the same options (--data, --config, --threads,
--steps, --warmup, --seed, --quality, --eval-every, --eval-batches,
--gelu, and torch_reference.py's own --omp-wait-policy, --attention,
--matmul-precision, --coretype, which bench_train does not take and are
passed to PyTorch only; bench_train's --eval-seed, which torch_reference.py
does not take, is passed to tlm only).

Speed mode: for each configuration and thread count, --rounds times
(default 3) one process of each program in turn, the order rotated every
round so that none always runs first: tlm (once per --tlm-precision,
default float32; bf16 runs are labelled tlm-bf16), each PyTorch, and with
--torch-compile off,on each PyTorch 2.x once more under torch.compile.
Each process's peak resident memory is read from the kernel when it ends
(wait4's ru_maxrss: the whole process, libraries included). The table
gives the median over the rounds of each program's ms per step (each
itself a median over its measured steps) and peak RSS, and tlm's speed
and memory against the fastest PyTorch variant at that thread count and
against the fastest at any thread count ("best": PyTorch at its best
thread count); above 1 tlm is faster, below 1 it uses less memory. Every
tlm row is compared with PyTorch's float32 products (its default; pass
--matmul-precision to change that).

Quality mode (--quality): one run of each program, the validation losses.

Every JSON line read (each with "round", "label" and "peak_rss_mb_wait4"
added) goes to --out when given.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CONFIGS = ("nanogpt-cpu", "6x384")
# torch_reference.py's options that bench_train does not have.
TORCH_ONLY = ("--omp-wait-policy", "--attention", "--matmul-precision", "--coretype")
# bench_train's options that torch_reference.py does not have.
TLM_ONLY = ("--eval-seed",)


def run(command, env=None):
    """The JSON lines of one process and its peak RSS in MB."""
    print("+ " + " ".join(command), file=sys.stderr, flush=True)
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    child.stdout.close()
    if child.returncode == 77:
        print("skipped: no data (give --data PATH)", file=sys.stderr)
        sys.exit(77)
    if child.returncode != 0:
        print(f"failed with status {child.returncode}", file=sys.stderr)
        sys.exit(1)
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return records, round(usage.ru_maxrss / 1024, 1)  # KiB on Linux


def torch_version(python):
    try:
        out = subprocess.run([python, "-c", "import torch; print(torch.__version__)"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.split("+")[0]


def option_value(rest, name, default):
    for i, arg in enumerate(rest):
        if arg == name and i + 1 < len(rest):
            return rest[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def without_options(rest, names):
    """rest without the named options (and their values)."""
    out, skip = [], False
    for arg in rest:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif not any(arg.startswith(n + "=") for n in names):
            out.append(arg)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--rounds", "--repeat", type=int, default=3, dest="rounds")
    p.add_argument("--torch", action="append", default=None, metavar="PYTHON",
                   help="an interpreter with PyTorch; repeat for several")
    p.add_argument("--torch-compile", default="off",
                   help="off, on or off,on: PyTorch 2.x without and/or with torch.compile")
    p.add_argument("--tlm-precision", default="float32",
                   help="float32, bf16 or float32,bf16: tlm's training precision(s)")
    p.add_argument("--out", default=None)
    a, rest = p.parse_known_args()
    quality = "--quality" in rest
    pythons = a.torch or ["/usr/bin/python3" if os.path.exists("/usr/bin/python3")
                          else sys.executable]
    compile_modes = [m for m in a.torch_compile.split(",") if m]
    if not compile_modes or any(m not in ("off", "on") for m in compile_modes):
        p.error("--torch-compile expects off, on or off,on")
    precisions = [m for m in a.tlm_precision.split(",") if m]
    if not precisions or any(m not in ("float32", "bf16") for m in precisions):
        p.error("--tlm-precision expects float32, bf16 or float32,bf16")

    bench = os.path.join(a.build, "tests", "bench", "bench_train")
    tlm_rest = without_options(rest, TORCH_ONLY)
    programs = [("tlm" if precision == "float32" else "tlm-" + precision,
                 [bench] + tlm_rest + ["--precision", precision]) for precision in precisions]
    for python in pythons:
        version = torch_version(python)
        if version is None:
            print(f"compare_train: {python} cannot import torch", file=sys.stderr)
            return 1
        for mode in compile_modes:
            if mode == "on" and int(version.split(".")[0]) < 2:
                continue
            label = f"torch-{version}" + ("+compile" if mode == "on" else "")
            programs.append((label, [python, os.path.join(HERE, "torch_reference.py")]
                             + without_options(rest, TLM_ONLY) + ["--compile", mode]))

    config = option_value(rest, "--config", "nanogpt-cpu" if quality else "all")
    threads = option_value(rest, "--threads", "1" if quality else "1,2")
    configs = CONFIGS if config == "all" else (config,)
    thread_counts = [int(t) for t in threads.split(",")]

    records = []
    rounds = 1 if quality else max(1, a.rounds)
    for name in configs:
        for count in thread_counts:
            for r in range(rounds):
                order = programs[r % len(programs):] + programs[:r % len(programs)]
                for label, command in order:
                    command = without_options(command, ("--config", "--threads"))
                    lines, rss = run(command + ["--config", name, "--threads", str(count)])
                    for line in lines:
                        line.update({"round": r + 1, "label": label,
                                     "peak_rss_mb_wait4": rss})
                    records += lines
    if a.out:
        with open(a.out, "w") as f:
            for r in records:
                f.write(json.dumps(r, separators=(",", ":")) + "\n")
    labels = [label for label, _ in programs]
    if quality:
        print_quality(records, labels)
    else:
        print_speed(records, labels, configs, thread_counts, rounds)
    return 0


def is_tlm(label):
    return label == "tlm" or label.startswith("tlm-")


def print_quality(records, labels):
    print(f"{'config':<12} {'threads':>7} {'program':<22} {'steps':>6} {'val loss':>8}"
          f" {'train loss':>10} {'tok/s':>9} {'peak RSS MB':>11}")
    for r in records:
        if r.get("bench") == "train_quality":
            print(f"{r['config']:<12} {r['threads']:>7} {r['label']:<22} {r['steps']:>6}"
                  f" {r['val_loss']:>8.4f} {r['train_loss']:>10.4f}"
                  f" {r['tokens_per_s']:>9.1f} {r['peak_rss_mb_wait4']:>11.1f}")


def print_speed(records, labels, configs, thread_counts, rounds):
    medians = {}  # (config, threads, label) -> (ms per step, tokens/s, peak RSS)
    for name in configs:
        for count in thread_counts:
            for label in labels:
                mine = [r for r in records if r.get("bench") == "train"
                        and r["config"] == name and r["label"] == label
                        and r["threads"] == count]
                if mine:
                    ms = statistics.median(r["ms_per_step"] for r in mine)
                    tokens = mine[0]["batch"] * mine[0]["context"]
                    rss = statistics.median(r["peak_rss_mb_wait4"] for r in mine)
                    medians[name, count, label] = (ms, 1e3 * tokens / ms, rss)
    print(f"medians of {rounds} alternating rounds; ratios: tlm's tokens/s over the"
          " fastest PyTorch's, tlm's peak RSS over that PyTorch's")
    print(f"{'config':<12} {'threads':>7} {'program':<22} {'ms/step':>9} {'tok/s':>9}"
          f" {'peak RSS MB':>11} {'speed vs fastest':>16} {'RSS vs it':>9}"
          f" {'speed vs best':>13}")
    for name in configs:
        torch_all = [(v[0], k[2], k[1]) for k, v in medians.items()
                     if k[0] == name and not is_tlm(k[2])]
        best = min(torch_all) if torch_all else None
        for count in thread_counts:
            here = [(medians[name, count, label][0], label) for label in labels
                    if not is_tlm(label) and (name, count, label) in medians]
            fastest = min(here)[1] if here else None
            for label in labels:
                if (name, count, label) not in medians:
                    continue
                ms, tokens, rss = medians[name, count, label]
                speed = rss_ratio = versus_best = ""
                if is_tlm(label) and fastest is not None:
                    f_ms, _, f_rss = medians[name, count, fastest]
                    speed = f"{f_ms / ms:.2f}x"
                    rss_ratio = f"{rss / f_rss:.2f}"
                    versus_best = f"{best[0] / ms:.2f}x"
                mark = " *" if label == fastest else ""
                print(f"{name:<12} {count:>7} {label + mark:<22} {ms:>9.1f} {tokens:>9.1f}"
                      f" {rss:>11.1f} {speed:>16} {rss_ratio:>9} {versus_best:>13}")
        if best is not None:
            print(f"{name:<12} fastest PyTorch at its best thread count: {best[1]},"
                  f" {best[2]} threads, {best[0]:.1f} ms/step")
    print("* the fastest PyTorch variant at that thread count")


if __name__ == "__main__":
    sys.exit(main())
