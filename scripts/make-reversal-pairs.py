#!/usr/bin/env python3
"""Writes a string-reversal task for `tlm train --pairs`: one
SOURCE<TAB>TARGET line per pair, the target being the source reversed
(docs/seq2seq.md, "From the command line").

    python3 scripts/make-reversal-pairs.py [--pairs N] [--seed S]
        [--letters abcdefgh] [--min-length 3] [--max-length 8] [-o FILE]

Every source is distinct, so the pairs tlm train holds out (the last 10%
of the lines) are strings it never trains on. The strings come from the
script's own generator (splitmix64), so a seed gives the same file with
every Python 3. Standard library only; writes to standard output by
default.
"""
import argparse
import sys

MASK = (1 << 64) - 1


def splitmix64(state):
    """The next state and output of splitmix64."""
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=6000, help="lines (default 6000)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument("--letters", default="abcdefgh",
                        help="the alphabet (default abcdefgh)")
    parser.add_argument("--min-length", type=int, default=3, help="default 3")
    parser.add_argument("--max-length", type=int, default=8, help="default 8")
    parser.add_argument("-o", "--out", help="file to write (default: standard output)")
    args = parser.parse_args()
    letters = args.letters
    if (not letters or "\t" in letters or "\n" in letters or "\r" in letters
            or len(set(letters)) != len(letters)):
        parser.error("--letters: distinct characters, no TAB, CR or newline")
    if not 1 <= args.min_length <= args.max_length:
        parser.error("expected 1 <= --min-length <= --max-length")
    possible = sum(len(letters) ** n
                   for n in range(args.min_length, args.max_length + 1))
    if not 1 <= args.pairs <= possible:
        parser.error("--pairs: 1..%d distinct strings of these lengths" % possible)
    state = args.seed & MASK
    seen = set()
    lines = []
    spread = args.max_length - args.min_length + 1
    while len(lines) < args.pairs:
        state, r = splitmix64(state)
        n = args.min_length + r % spread
        chars = []
        for _ in range(n):
            state, r = splitmix64(state)
            chars.append(letters[r % len(letters)])
        source = "".join(chars)
        if source in seen:
            continue
        seen.add(source)
        lines.append(source + "\t" + source[::-1] + "\n")
    if args.out is None:
        sys.stdout.write("".join(lines))
    else:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write("".join(lines))


if __name__ == "__main__":
    main()
