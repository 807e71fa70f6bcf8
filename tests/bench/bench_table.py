#!/usr/bin/env python3
"""Turns the JSON lines of tests/bench/bench into Markdown tables: one row
per shape with the GFLOP/s of each ISA, OpenBLAS's and their ratio, then
the geometric means.

    build/tests/bench/bench > bench.json
    tests/bench/bench_table.py bench.json [scalar.json]

A second file from `bench --isa scalar` adds the speed-up over the scalar
reference kernel (what tlm used before the SIMD kernels)."""
import json
import sys


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


def main(paths):
    rows = load(paths[0])
    scalar = {}
    if len(paths) > 1:
        for r in load(paths[1]):
            if r["bench"] == "gemm":
                scalar[r["case"]] = r["gflops"]
    isas = []
    cases = {}
    order = []
    for r in rows:
        if r["bench"] != "gemm" or r.get("threads", 1) != 1:
            continue
        if r["isa"] not in isas:
            isas.append(r["isa"])
        if r["case"] not in cases:
            cases[r["case"]] = {}
            order.append(r["case"])
        cases[r["case"]][r["isa"]] = r
    head = "| shape | M x N x K | form |"
    rule = "| --- | --- | --- |"
    for isa in isas:
        core = next((cases[c][isa].get("ref_coretype") for c in order
                     if isa in cases[c]), "?")
        head += f" {isa} | OpenBLAS {core} | ratio |"
        rule += " ---: | ---: | ---: |"
        if scalar:
            head += " vs scalar |"
            rule += " ---: |"
    print(head)
    print(rule)
    for c in order:
        any_row = next(iter(cases[c].values()))
        batch = any_row.get("batch", 1)
        line = (f"| {c} | {any_row['m']} x {any_row['n']} x {any_row['k']}"
                + (f" (x{batch})" if batch > 1 else "")
                + f" | {any_row['form']} |")
        for isa in isas:
            r = cases[c].get(isa)
            if r is None:
                line += " | | |" + (" |" if scalar else "")
                continue
            ref = r.get("ref_gflops")
            ratio = r.get("ratio")
            line += f" {r['gflops']:.1f} |"
            line += f" {ref:.1f} |" if ref is not None else " - |"
            line += f" {ratio:.2f} |" if ratio is not None else " - |"
            if scalar:
                s = scalar.get(c)
                line += f" {r['gflops'] / s:.1f}x |" if s else " - |"
        print(line)
    print()
    print("| ISA | shapes | GFLOP/s | OpenBLAS | ratio | training (M > 1) | decoding (M = 1) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        if r["bench"] != "gemm_geomean":
            continue
        def fmt(key, digits=2):
            v = r.get(key)
            return f"{v:.{digits}f}" if isinstance(v, (int, float)) else "-"
        print(f"| {r['isa']} | {r['shapes']} | {fmt('gflops', 1)} "
              f"| {fmt('ref_gflops', 1)} | {fmt('ratio')} "
              f"| {fmt('train_ratio')} | {fmt('decode_ratio')} |")


if __name__ == "__main__":
    main(sys.argv[1:])
