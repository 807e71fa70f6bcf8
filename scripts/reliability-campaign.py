#!/usr/bin/env python3
"""The reliability campaign (docs/reliability.md, "The campaign").

Makes valid files of every format tlm reads (with the library and the
`tlm` program, in a scratch directory), damages them systematically, and
hands each damaged file to the library (tests/faults/campaign/campaign_load,
one child process per file) and to a sample of them to the `tlm` program
(`info`, `import`, `generate`, `train --resume`); then gives every flag of
every subcommand bad values; then SIGKILLs `tlm train` during its
checkpoint saves and checks that each checkpoint still loads; then
misuses the public API (tests/faults/campaign/campaign_misuse: wrong
struct_size, out-of-range enums and ids, handles of two contexts, calls
in the wrong state) and counts the NULL-argument calls of the bad-args
suites (tests/api/test_bad_args_*.c). Every
outcome is one JSON line in OUT/results.jsonl; OUT/summary.md is the table
docs/reliability.md quotes.

Outcomes: "refused" (a status and a message; "named" says whether the
message names the file), "loaded" (the damage did not matter, or was not
detected: a padding byte, a weight's value), "failed-after-load" (loaded,
then failed cleanly when used), and the findings: "crash" (a signal),
"sanitizer" (an AddressSanitizer/UBSan/LeakSanitizer report), "timeout",
"exit" (an unexpected exit status), a kill that left a checkpoint that does
not resume ("damaged"), and a valid file the driver could not use
("setup-error").

    scripts/reliability-campaign.py --build build-asan --out campaign-out
    scripts/reliability-campaign.py --build build --smoke   # the < 20 s version

Run it under `nice`. With an ASan+UBSan build (meson -Db_sanitize=address,undefined)
every child runs under the sanitizers; with a plain build each child's
address space is capped instead (CAMPAIGN_AS_LIMIT_MB).
"""

import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

SANITIZER_EXIT = 86
SANITIZER_ENV = {
    "ASAN_OPTIONS": "exitcode=86:detect_leaks=1:allocator_may_return_null=1:"
                    "malloc_limit_mb=2048:abort_on_error=0:halt_on_error=1",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=86",
    "LSAN_OPTIONS": "exitcode=86",
    "TLM_THREADS": "1",
}
# "damaged": a checkpoint that does not resume after a kill; "setup-error":
# the valid file itself failed (the driver could not run the loader).
# "accepted": a misuse call of the API that returned TLM_OK.
FINDINGS = ("crash", "sanitizer", "timeout", "exit", "damaged", "setup-error", "accepted")


def words_text(n_words, seed):
    """A deterministic pseudo-English training text."""
    rng = random.Random(seed)
    vocab = ("the a cat dog sat on mat and ran to house of tree in big small red "
             "blue sun moon was is it he she they we saw").split()
    lines = []
    for _ in range(n_words // 10):
        lines.append(" ".join(rng.choice(vocab) for _ in range(10)) + ".")
    return "\n".join(lines) + "\n"


def llama2c_tokenizer_bytes():
    """A small llama2.c tokenizer.bin (docs/tokenizer.md): unknown, begin,
    end, the 256 byte pieces, then letters and a few merges of words_text's
    words, scores falling with rank."""
    pieces = [("<unk>", 0.0), ("\n<s>\n", 0.0), ("\n</s>\n", 0.0)]
    pieces += [(f"<0x{b:02X}>", 0.0) for b in range(256)]
    merged = list(" abcdefghijklmnopqrstuvwxyz.") + [
        " t", "th", " th", "he", " the", " a", "at", " c", " cat", " d", "og", " dog",
        " s", " sa", " sat", " o", "on", " on", " m", " mat", "an", " an", " and"]
    pieces += [(p, -float(i)) for i, p in enumerate(merged)]
    out = bytearray(struct.pack("<i", 16))
    for text, score in pieces:
        b = text.encode()
        out += struct.pack("<fi", score, len(b)) + b
    return bytes(out)


def per_seed_table(results_path):
    """Lines of a table: per valid file, the damaged files and what the
    library and the CLI did with them."""
    per = {}
    with open(results_path) as f:
        for line in f:
            r = json.loads(line)
            if r.get("part") != "files":
                continue
            d = per.setdefault(r["seed"], {"files": set(), "lib": {}, "cli": {}})
            d["files"].add(r["file"])
            o = r["outcome"]
            if o == "refused" and not r.get("named", True):
                o = "refused, file not named"
            d[r["tool"]][o] = d[r["tool"]].get(o, 0) + 1
    cols = ["refused", "refused, file not named", "loaded", "failed-after-load"] + list(FINDINGS)
    lines = ["| valid file | damaged files | library loads: " + " / ".join(cols) +
             " | CLI runs: " + " / ".join(cols) + " |", "| --- | --- | --- | --- |"]
    total = {"files": 0, "lib": {}, "cli": {}}
    for seed, d in per.items():
        lines.append(f"| {seed} | {len(d['files'])} | " +
                     " / ".join(str(d["lib"].get(c, 0)) for c in cols) + " | " +
                     " / ".join(str(d["cli"].get(c, 0)) for c in cols) + " |")
        total["files"] += len(d["files"])
        for tool in ("lib", "cli"):
            for c, n in d[tool].items():
                total[tool][c] = total[tool].get(c, 0) + n
    lines.append(f"| **all** | {total['files']} | " +
                 " / ".join(str(total["lib"].get(c, 0)) for c in cols) + " | " +
                 " / ".join(str(total["cli"].get(c, 0)) for c in cols) + " |")
    return lines


class Campaign:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.tlm = os.path.join(self.build, "examples", "tlm")
        self.loader = os.path.join(self.build, "tests", "faults", "campaign", "campaign_load")
        self.make_corpus = os.path.join(self.build, "tests", "fuzz", "make_fuzz_corpus")
        self.misuse = os.path.join(self.build, "tests", "faults", "campaign", "campaign_misuse")
        for exe in (self.tlm, self.loader, self.make_corpus, self.misuse):
            if not os.access(exe, os.X_OK):
                sys.exit(f"reliability-campaign: {exe} is missing: build it "
                         f"(ninja -C {args.build} examples/tlm "
                         "tests/faults/campaign/campaign_load tests/faults/campaign/campaign_misuse "
                         "tests/fuzz/make_fuzz_corpus)")
        self.sanitized = self.build_is_sanitized()
        self.env = dict(os.environ)
        self.env.update(SANITIZER_ENV)
        if not self.sanitized:
            self.env["CAMPAIGN_AS_LIMIT_MB"] = "4096"
        self.work = tempfile.mkdtemp(prefix="tlm-campaign-", dir=args.scratch)
        self.out = os.path.abspath(args.out)
        os.makedirs(self.out, exist_ok=True)
        self.results = open(os.path.join(self.out, "results.jsonl"), "w")
        self.rng = random.Random(args.seed)
        self.counts = {}
        self.examples = {}
        self.undetected = {}
        self.flag_counts = {}
        self.started = time.time()

    def build_is_sanitized(self):
        try:
            with open(os.path.join(self.build, "meson-info", "intro-buildoptions.json")) as f:
                for option in json.load(f):
                    if option["name"] == "b_sanitize":
                        return option["value"] not in ("none", "")
        except (OSError, ValueError, KeyError):
            pass
        return False

    # ------------------------------------------------------------------ records

    def record(self, part, row):
        row["part"] = part
        self.results.write(json.dumps(row) + "\n")
        key = (part, row.get("tool", ""), row.get("outcome", ""))
        self.counts[key] = self.counts.get(key, 0) + 1
        if part == "files" and row.get("outcome") in ("loaded", "failed-after-load"):
            mutation = re.sub(r"@.*", "", row.get("mutation", ""))
            k = (row["seed"], row.get("loader", row.get("command", "")), mutation,
                 row["outcome"])
            self.undetected[k] = self.undetected.get(k, 0) + 1
        if row.get("outcome") in FINDINGS or (row.get("outcome") == "refused"
                                              and row.get("named") is False):
            ex = self.examples.setdefault((part, row.get("tool", ""), row["outcome"],
                                           row.get("named", True)), [])
            if len(ex) < 8:
                ex.append(row)

    def run(self, argv, timeout, cwd=None, stdin=None):
        """(returncode or 'timeout', stdout, stderr) of a child under the
        campaign's environment; a new process group so a timeout kills all."""
        try:
            p = subprocess.run(argv, cwd=cwd or self.work, env=self.env,
                               stdin=subprocess.DEVNULL if stdin is None else stdin,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=timeout, start_new_session=True)
            return p.returncode, p.stdout.decode("utf-8", "replace"), \
                p.stderr.decode("utf-8", "replace")
        except subprocess.TimeoutExpired as e:
            return "timeout", (e.stdout or b"").decode("utf-8", "replace"), \
                (e.stderr or b"").decode("utf-8", "replace")

    def check(self, argv, what):
        code, out, err = self.run(argv, 300)
        if code != 0:
            sys.exit(f"reliability-campaign: making {what} failed ({code}): {err.strip()}")
        return out

    # ------------------------------------------------------------ valid files

    def make_seeds(self):
        """Valid files of every format, made by the library and the CLI."""
        w = self.work
        corpus = os.path.join(w, "corpus")
        self.check([self.make_corpus, corpus], "the fuzz corpus")
        made = os.path.join(w, "made")
        tok = os.path.join(made, "tok")   # apart: an import reads tokenizer files beside the weights
        os.makedirs(tok)
        with open(os.path.join(tok, "tokenizer.bin"), "wb") as f:
            f.write(llama2c_tokenizer_bytes())
        self.check([self.loader, "prepare", tok,
                    os.path.join(corpus, "tiktoken", "tiny.tiktoken"),
                    os.path.join(tok, "tokenizer.bin")],
                   "GPT-2 and SentencePiece tokenizer files")
        self.text = os.path.join(w, "text.txt")
        with open(self.text, "w") as f:
            f.write(words_text(3000, self.args.seed))
        small = ["--steps", "2", "--eval-every", "2", "--eval-batches", "1",
                 "--layers", "1", "--heads", "2", "--dim", "16", "--context", "16",
                 "--batch", "2", "--threads", "1"]
        self.ckpt_gpt = os.path.join(made, "ckpt-gpt.tlm")
        self.ckpt_llama = os.path.join(made, "ckpt-llama.tlm")
        self.check([self.tlm, "train", "--data", self.text, "-o", self.ckpt_gpt] + small,
                   "a GPT checkpoint")
        self.check([self.tlm, "train", "--data", self.text, "--arch", "llama",
                    "-o", self.ckpt_llama] + small, "a Llama checkpoint")
        self.hf_dir = os.path.join(made, "hf")
        self.check([self.tlm, "export", self.ckpt_gpt, "--format", "hf", "-o", self.hf_dir],
                   "a Hugging Face export")
        self.check([self.tlm, "export", self.ckpt_llama, "--format", "llama2c",
                    "-o", os.path.join(made, "llama2c-v0.bin")], "a llama2.c export")
        self.check([self.tlm, "export", self.ckpt_gpt, "--format", "llmc",
                    "-o", os.path.join(made, "llmc.bin")], "an llm.c export")
        self.check([self.tlm, "export", self.ckpt_gpt, "--format", "safetensors",
                    "-o", os.path.join(made, "tlm.safetensors")], "a safetensors export")
        for to in ("int8", "bf16"):
            self.check([self.tlm, "quantize", self.ckpt_gpt, "--to", to,
                        "-o", os.path.join(made, f"{to}.tlm")], f"an {to} model")

        c = lambda *p: os.path.join(corpus, *p)
        m = lambda *p: os.path.join(made, *p)
        # (name, path, kind for the structure-aware damage, library loaders,
        #  CLI commands, the partner files a directory format needs)
        model_cli = ("info", "generate", "import")
        self.seeds = [
            ("tlm-f32", c("model_load", "tiny-0.tlm"), "tlm", ("model", "model-mmap"), model_cli),
            ("tlm-f32-b", c("model_load", "tiny-2.tlm"), "tlm", ("model",), ()),
            ("tlm-int8", m("int8.tlm"), "tlm", ("model", "model-mmap"), model_cli),
            ("tlm-bf16", m("bf16.tlm"), "tlm", ("model",), model_cli),
            ("checkpoint-gpt", self.ckpt_gpt, "tlm", ("model", "resume"), ("info", "generate", "resume")),
            ("checkpoint-llama", self.ckpt_llama, "tlm", ("resume",), ("resume",)),
            ("safetensors-tlm", m("tlm.safetensors"), "safetensors", ("import",), ("import",)),
            ("safetensors-hf", m("hf", "model.safetensors"), "safetensors", ("import",), ("import",)),
            ("hf-config.json", m("hf", "config.json"), "text", ("hf-config",), ("import-hf-config",)),
            ("llmc-f32", m("llmc.bin"), "llmc", ("import",), ("import",)),
            ("llmc-bf16", c("llmc_import", "tiny-bf16.bin"), "llmc", ("import",), ()),
            ("llama2c-v0", m("llama2c-v0.bin"), "llama2c0", ("import",), ("import",)),
            ("llama2c-v1", c("llama2c_import", "v1-tied.bin"), "llama2c", ("import",), ("import",)),
            ("llama2c-v2", c("llama2c_import", "v2-g4-tied.bin"), "llama2c", ("import",), ("import",)),
            ("tokenizer-char", c("tokenizer_load", "char.tok"), "binary", ("tokenizer",), ()),
            ("tokenizer-bpe", c("tokenizer_load", "bpe.tok"), "binary", ("tokenizer",), ()),
            ("tokenizer-gpt2", c("tokenizer_load", "gpt2.tok"), "binary", ("tokenizer",), ()),
            ("gpt2-encoder.json", m("tok", "gpt2", "encoder.json"), "text", ("tokenizer-import-dir",), ()),
            ("gpt2-vocab.bpe", m("tok", "gpt2", "vocab.bpe"), "text", ("tokenizer-import-dir",), ()),
            ("tiktoken", c("tiktoken", "tiny.tiktoken"), "text", ("tokenizer-import",), ()),
            ("sentencepiece.model", m("tok", "tokenizer.model"), "binary", ("tokenizer-import",), ()),
            ("llama2c-tokenizer.bin", m("tok", "tokenizer.bin"), "binary",
             ("tokenizer-import",), ()),
        ]
        for name, path, *_ in self.seeds:
            if not os.path.isfile(path):
                sys.exit(f"reliability-campaign: seed {name} ({path}) was not made")

    # ------------------------------------------------------------------ damage

    def tlm_sections(self, data):
        """[(kind, offset, size)] of a .tlm file's section table."""
        if len(data) < 64:
            return []
        count, = struct.unpack_from("<I", data, 24)
        table, = struct.unpack_from("<Q", data, 32)
        out = []
        for i in range(min(count, 64)):
            at = table + 32 * i
            if at + 32 > len(data):
                break
            kind = data[at:at + 8].rstrip(b"\0").decode("ascii", "replace")
            offset, size = struct.unpack_from("<QQ", data, at + 8)
            out.append((kind, offset, size, at))
        return out

    def tlm_fix_crcs(self, data, sections):
        """Recompute every section CRC, the table CRC and the header CRC, so
        that damage inside a section reaches the parser behind the checksum."""
        for kind, offset, size, at in sections:
            if offset + size <= len(data):
                struct.pack_into("<I", data, at + 24, zlib.crc32(bytes(data[offset:offset + size])))
        table, = struct.unpack_from("<Q", data, 32)
        end = table + 32 * len(sections)
        struct.pack_into("<I", data, 40, zlib.crc32(bytes(data[table:end])))
        struct.pack_into("<I", data, 44, zlib.crc32(bytes(data[0:44])))

    def header_region(self, kind, data):
        if kind == "tlm":
            sections = self.tlm_sections(data)
            return 64 + 32 * len(sections)
        if kind == "safetensors":
            n, = struct.unpack_from("<Q", data, 0)
            return min(8 + n, len(data))
        if kind == "llmc":
            return 64      # 256 int32, the first few used
        if kind == "llama2c0":
            return 28
        if kind == "llama2c":
            return 48
        return min(len(data), 512)

    def boundaries(self, kind, data):
        """Offsets where a truncation cuts at a section boundary."""
        b = set()
        if kind == "tlm":
            b.update((8, 16, 44, 48, 64))
            for _, offset, size, at in self.tlm_sections(data):
                b.update((at, at + 32, offset, offset + size))
        elif kind == "safetensors":
            n, = struct.unpack_from("<Q", data, 0)
            b.update((8, 8 + n))
            try:
                header = json.loads(data[8:8 + n])
                for v in header.values():
                    if isinstance(v, dict) and "data_offsets" in v:
                        b.update(8 + n + o for o in v["data_offsets"])
            except ValueError:
                pass
        elif kind == "llmc":
            b.update((4, 8, 1024))
        elif kind in ("llama2c0", "llama2c"):
            b.update((4, 8, 28, 256))
        else:
            b.update(i for i, ch in enumerate(data) if ch == 0x0a)
        out = set()
        for x in b:
            for d in (-1, 0, 1):
                if 0 <= x + d < len(data):
                    out.add(x + d)
        return sorted(out)

    def damage(self, name, kind, data, budget):
        """Yields (mutation, bytes) for one valid file, never the file itself
        (a splice or a random byte that changes nothing is dropped)."""
        for mutation, d in self.damage_all(name, kind, data, budget):
            if bytes(d) != data:
                yield mutation, d

    def damage_all(self, name, kind, data, budget):
        rng = self.rng
        data = bytes(data)
        hdr = self.header_region(kind, data)
        flips = list(range(hdr))
        if len(flips) > budget["flips"]:
            flips = sorted(rng.sample(flips, budget["flips"]))
        for i in flips:
            for mask in ((0xFF, 0x01) if budget["flips"] >= 1024 else (0xFF,)):
                d = bytearray(data)
                d[i] ^= mask
                yield f"flip@{i}^{mask:02x}", d
        cuts = self.boundaries(kind, data)
        if len(cuts) > budget["cuts"]:
            cuts = sorted(rng.sample(cuts, budget["cuts"]))
        for n in cuts:
            yield f"truncate-boundary@{n}", data[:n]
        for _ in range(budget["random_cuts"]):
            n = rng.randrange(len(data))
            yield f"truncate-random@{n}", data[:n]
        # length and count fields: every aligned word of the header region
        fields = []
        if kind == "tlm":
            fields = [(16, 8), (24, 4), (32, 8), (8, 4), (12, 4)]
            for _, _, _, at in self.tlm_sections(data):
                fields += [(at + 8, 8), (at + 16, 8)]
        elif kind == "safetensors":
            fields = [(0, 8)]
        elif kind in ("llmc", "llama2c0", "llama2c", "binary"):
            fields = [(o, 4) for o in range(0, min(hdr, 48) - 3, 4)]
        if len(fields) > budget["fields"]:
            fields = rng.sample(fields, budget["fields"])
        for at, width in fields:
            fmt = "<Q" if width == 8 else "<I"
            value, = struct.unpack_from(fmt, data, at)
            top = (1 << (8 * width)) - 1
            for label, v in (("0", 0), ("max", top), ("+1", (value + 1) & top),
                             ("-1", (value - 1) & top), ("half-max", top >> 1)):
                d = bytearray(data)
                struct.pack_into(fmt, d, at, v)
                if kind == "tlm" and at >= 64:
                    self.tlm_fix_crcs(d, self.tlm_sections(d))
                yield f"field@{at}={label}", d
        # .tlm: damage behind the checksums (the CRCs recomputed), so the
        # section parsers see it; reserved header bytes and padding included
        if kind == "tlm":
            sections = self.tlm_sections(data)
            targets = [("reserved-header", 28, 32), ("reserved-header", 48, 64)]
            for _, _, _, at in sections:
                targets.append(("reserved-table", at + 28, at + 32))
            for kind_name, offset, size, _ in sections:
                targets.append((f"section-{kind_name}", offset, offset + size))
            ends = sorted((o + s) for _, o, s, _ in sections)
            starts = sorted(o for _, o, _, _ in sections)
            for e in ends:
                nxt = [s for s in starts if s >= e]
                if nxt and nxt[0] > e:
                    targets.append(("padding", e, nxt[0]))
            for label, lo, hi in targets:
                if hi <= lo:
                    continue
                n = budget["behind_crc"] if label.startswith("section") else 2
                for _ in range(n):
                    d = bytearray(data)
                    i = rng.randrange(lo, hi)
                    d[i] ^= 1 << rng.randrange(8)
                    self.tlm_fix_crcs(d, self.tlm_sections(d))
                    yield f"crc-fixed-{label}@{i}", d
        for _ in range(budget["random_flips"]):
            d = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                d[rng.randrange(len(d))] = rng.randrange(256)
            yield "random-bytes", d
        for _ in range(budget["splices"]):
            d = bytearray(data)
            a = rng.randrange(len(d))
            b = rng.randrange(len(d))
            n = rng.randint(1, min(256, len(d)))
            piece = d[b:b + n]
            if rng.random() < 0.5:
                d[a:a + n] = piece          # overwrite
            else:
                d[a:a] = piece              # insert
            yield "splice", d

    # ----------------------------------------------------------- part (a)

    def part_files(self):
        budget = self.args.budget
        damaged = os.path.join(self.work, "damaged")
        os.makedirs(damaged)
        cli_rows = []
        for name, path, kind, loaders, cli in self.seeds:
            with open(path, "rb") as f:
                data = f.read()
            seed_dir = os.path.join(damaged, name)
            os.makedirs(seed_dir)
            files = []
            for i, (mutation, d) in enumerate(self.damage(name, kind, data, budget)):
                if "tokenizer-import-dir" in loaders or "import" in loaders and name == "safetensors-hf":
                    # directory formats: the damaged file beside its valid partners
                    sub = os.path.join(seed_dir, f"d{i:05d}")
                    shutil.copytree(os.path.dirname(path), sub)
                    target = os.path.join(sub, os.path.basename(path))
                else:
                    target = os.path.join(seed_dir, f"d{i:05d}-{os.path.basename(path)}")
                with open(target, "wb") as f:
                    f.write(d)
                files.append((target, mutation))
            self.files_damaged = getattr(self, "files_damaged", 0) + len(files)
            mutation_of = dict(files)
            for loader in loaders:
                argv = [self.loader, loader.replace("-dir", ""), self.work]
                if loader == "resume":
                    argv.append(path)
                elif loader == "hf-config":
                    argv.append(self.hf_dir)
                paths = []
                for target, _ in files:
                    p = os.path.dirname(target) if loader == "tokenizer-import-dir" else target
                    paths.append(p)
                proc = subprocess.run(argv, input="\n".join(paths).encode() + b"\n",
                                      stdout=subprocess.PIPE, env=self.env, cwd=self.work)
                by_path = dict(zip(paths, (t for t, _ in files)))
                for line in proc.stdout.decode("utf-8", "replace").splitlines():
                    row = json.loads(line)
                    target = by_path.get(row["file"], row["file"])
                    row["seed"] = name
                    row["mutation"] = mutation_of.get(target, "")
                    self.record("files", row)
            # the CLI on a sample of the same files
            if cli and files:
                k = min(len(files), budget["cli_per_seed"])
                for target, mutation in self.rng.sample(files, k):
                    for command in cli:
                        self.cli_on_file(name, command, target, mutation)
            print(f"  {name}: {len(files)} damaged files "
                  f"({time.time() - self.started:.0f} s)", flush=True)

    def cli_on_file(self, seed, command, target, mutation):
        out = os.path.join(self.work, "cli-out.tlm")
        if command == "info":
            argv = [self.tlm, "info", target]
        elif command == "generate":
            argv = [self.tlm, "generate", target, "-n", "4"]
        elif command == "import":
            argv = [self.tlm, "import", target, "-o", out]
        elif command == "import-hf-config":
            argv = [self.tlm, "import", self.hf_dir, "--format", "hf", "--config", target,
                    "-o", out]
        elif command == "resume":
            argv = [self.tlm, "train", "--data", self.text, "--resume", target,
                    "--steps", "3", "--eval-every", "3", "--eval-batches", "1",
                    "--batch", "2", "--threads", "1", "-o", out]
        else:
            raise ValueError(command)
        code, _, err = self.run(argv, 60)
        row = {"tool": "cli", "command": command, "file": target, "seed": seed,
               "mutation": mutation}
        row.update(self.classify_cli(code, err, os.path.basename(target)))
        self.record("files", row)
        if os.path.exists(out):
            os.remove(out)

    def classify_cli(self, code, err, name):
        lines = [l for l in err.splitlines() if l.strip()]
        if code == "timeout":
            return {"outcome": "timeout", "stderr": err[-1500:]}
        if ("ERROR: AddressSanitizer" in err or "runtime error:" in err
                or "ERROR: LeakSanitizer" in err or code == SANITIZER_EXIT):
            return {"outcome": "sanitizer", "code": code, "stderr": err[-1500:]}
        if code < 0:
            return {"outcome": "crash", "signal": -code, "stderr": err[-1500:]}
        if code == 0:
            return {"outcome": "loaded", "code": 0}
        if code in (1, 2):
            message = lines[-1] if lines else ""
            return {"outcome": "refused", "code": code,
                    "named": name is None or name in err,
                    "one_line": len(lines) == 1, "message": message[:300]}
        return {"outcome": "exit", "code": code, "stderr": err[-1500:]}

    # ----------------------------------------------------------- part (b)

    def help_flags(self, command):
        code, out, err = self.run([self.tlm, command, "--help"], 30)
        flags = []
        for line in (out + err).splitlines():
            m = re.match(r"\s+(?:-\w, )?--([a-z0-9-]+)(?: (\S+))?\s", line)
            if m and m.group(1) != "help":
                flags.append((m.group(1), m.group(2)))
        return flags

    def part_flags(self):
        w = os.path.join(self.work, "flags")
        os.makedirs(w)
        model = self.ckpt_gpt
        log = os.path.join(w, "log.jsonl")
        self.check([self.tlm, "train", "--data", self.text, "--steps", "2", "--eval-every", "1",
                    "--eval-batches", "1", "--layers", "1", "--heads", "2", "--dim", "16",
                    "--context", "16", "--batch", "2", "--threads", "1",
                    "-o", os.path.join(w, "m.tlm"), "--log", log], "a training log")
        small_train = ["--steps", "2", "--eval-every", "2", "--eval-batches", "1",
                       "--layers", "1", "--heads", "2", "--dim", "16", "--context", "16",
                       "--batch", "2", "--threads", "1"]
        base = {
            "train": ["--data", self.text, "-o", "out.tlm"] + small_train,
            "generate": [model, "-n", "4"],
            "eval": [model, "--data", self.text],
            "info": [model],
            "export": [model, "--format", "safetensors", "-o", "out.safetensors"],
            "import": [os.path.join(self.work, "made", "tlm.safetensors"), "-o", "out.tlm"],
            "plot": [log, "-o", "out.svg"],
            "attention": [model, "--prompt", "the cat", "-o", "out.svg"],
            "quantize": [model, "--to", "int8", "-o", "out.tlm"],
        }
        values = ["", " ", "-1", "0", "99999999999999999999", "1e400", "1e-50", "nan", "inf",
                  "text", " 5", "5 ", "0x10", "5abc", "-"]
        path_values = ["", " ", "no/such/dir/file", w, "text", "a'quote"]
        if self.args.smoke:
            base = {k: base[k] for k in ("info", "generate")}
            values, path_values = ["", "-1", "nan", " 5"], ["", w]
        total = 0
        for command, argv0 in base.items():
            for flag, value_name in self.help_flags(command):
                if value_name is None:
                    continue   # a switch: no value to get wrong
                if value_name in ("N", "X", "SECONDS"):
                    value_kind = "number"
                elif value_name in ("FILE", "OUT", "MODEL", "MODEL.tlm", "DIR", "PATH"):
                    value_kind = "path"
                else:
                    value_kind = "text"   # a prompt, a title, a name from a list
                for v in (path_values if value_kind == "path" else values):
                    argv = [self.tlm, command] + self.replace_flag(argv0, flag, v)
                    run_dir = os.path.join(w, "run")
                    os.makedirs(run_dir)
                    code, _, err = self.run(argv, self.args.flag_timeout, cwd=run_dir)
                    shutil.rmtree(run_dir)
                    row = {"tool": "cli", "command": command, "flag": "--" + flag, "value": v,
                           "value_kind": value_kind}
                    row.update(self.classify_cli(code, err, None))
                    row["named"] = ("--" + flag) in err or f"'{v}'" in err
                    self.record("flags", row)
                    self.flag_counts[(value_kind, v, row["outcome"])] = \
                        self.flag_counts.get((value_kind, v, row["outcome"]), 0) + 1
                    total += 1
        print(f"  flags: {total} flag/value pairs ({time.time() - self.started:.0f} s)",
              flush=True)

    @staticmethod
    def replace_flag(argv, flag, value):
        """argv with --flag set to value (replacing a value already there)."""
        out = []
        skip = False
        for a in argv:
            if skip:
                skip = False
                continue
            if a == "--" + flag or (flag == "out" and a == "-o"):
                skip = True
                continue
            out.append(a)
        return out + ["--" + flag, value]

    # ----------------------------------------------------------- part (c)

    def part_kills(self):
        w = os.path.join(self.work, "kills")
        os.makedirs(w)
        ckpt = os.path.join(w, "run.tlm")
        args = ["--data", self.text, "--steps", "1000000", "--eval-every", "1",
                "--eval-batches", "1", "--layers", "4", "--heads", "2", "--dim", "128",
                "--context", "8", "--batch", "1", "--threads", "1", "-o", ckpt]
        # A wide model with tiny batches: a 10 MB checkpoint (weights and
        # both AdamW moments) written and synced at every step.
        survived = 0
        for i in range(self.args.kills):
            argv = [self.tlm, "train"] + args
            if os.path.exists(ckpt):
                argv += ["--resume", ckpt]
            before = {f for f in os.listdir(w) if ".tmp-" in f}
            p = subprocess.Popen(argv, cwd=w, env=self.env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
            # Odd kills at a random moment; even kills aimed at a save: once
            # this process's temporary file appears (after its first step
            # at the earliest), a random 0-50 ms more.
            aimed = i % 2 == 0
            started = time.time()
            if aimed:
                marker = f".tmp-{p.pid}-"
                while time.time() - started < self.args.kill_max_delay * 5 and \
                        p.poll() is None and \
                        not any(marker in f for f in os.listdir(w)):
                    time.sleep(0.001)
                time.sleep(self.rng.uniform(0, 0.05))
            else:
                time.sleep(self.rng.uniform(0.3, self.args.kill_max_delay))
            delay = time.time() - started
            p.send_signal(signal.SIGKILL)
            p.wait()
            row = {"tool": "kill", "kill": i, "aimed_at_save": aimed,
                   "delay_s": round(delay, 3)}
            temps = {f for f in os.listdir(w) if ".tmp-" in f}
            row["stale_temporaries"] = len(temps)
            row["during_save"] = bool(temps - before)
            self.kills_during_save = getattr(self, "kills_during_save", 0) + row["during_save"]
            if not os.path.exists(ckpt):
                row["outcome"] = "no-checkpoint-yet"
            else:
                try:
                    proc = subprocess.run([self.loader, "resume", self.work, ckpt],
                                          input=(ckpt + "\n").encode(), stdout=subprocess.PIPE,
                                          env=self.env, cwd=self.work, timeout=120)
                    out = proc.stdout.decode().splitlines()
                    lib = json.loads(out[0]) if out else {
                        "outcome": "exit", "message": f"the driver printed nothing (status {proc.returncode})"}
                except subprocess.TimeoutExpired:
                    lib = {"outcome": "timeout", "message": "the driver ran 120 s"}
                code, _, err = self.run([self.tlm, "info", ckpt], 60)
                row["lib"] = lib["outcome"]
                row["cli_info"] = code
                ok = lib["outcome"] == "loaded" and code == 0
                row["outcome"] = "intact" if ok else "damaged"
                if not ok:
                    row["detail"] = lib.get("message", "") + " | " + err[-500:]
                survived += ok
            self.record("kills", row)
        early = self.counts.get(("kills", "kill", "no-checkpoint-yet"), 0)
        print(f"  kills: {self.args.kills}: {survived} of {self.args.kills - early} "
              f"checkpoints intact, {early} before the first checkpoint, "
              f"{getattr(self, 'kills_during_save', 0)} kills landed during a save "
              f"({time.time() - self.started:.0f} s)", flush=True)

    # ----------------------------------------------------------- part (d)

    @staticmethod
    def count_bad_args_calls():
        """(checked calls, of which with a message check) in the bad-args
        suites: each assert_*(tlm_...( is one call with a NULL handle,
        NULL out-pointer or bad value."""
        top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        api = os.path.join(top, "tests", "api")
        calls = messages = 0
        for name in sorted(os.listdir(api)):
            if name.startswith("test_bad_args") and name.endswith(".c"):
                with open(os.path.join(api, name)) as f:
                    text = f.read()
                calls += len(re.findall(r"assert_[a-z_]+\(\s*tlm_[a-z0-9_]+\(", text))
                messages += len(re.findall(r"assert_message_names|assert_thread_only_names",
                                           text))
        return calls, messages

    def part_api(self):
        w = os.path.join(self.work, "api")
        os.makedirs(w)
        code, out, err = self.run([self.misuse, w], 120, cwd=w)
        summary = {}
        for line in out.splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if "summary" in r:
                summary = r["summary"]
            elif "call" in r:
                self.record("api", {"tool": "lib", "call": r["call"], "argument": r["argument"],
                                    "misuse": r["misuse"], "outcome": r["outcome"],
                                    "named": r["named"], "stderr": r["message"]})
            elif "check" in r:
                self.record("api", {"tool": "check", "check": r["check"],
                                    "outcome": "ok" if r["ok"] else "exit"})
        if code == "timeout" or (isinstance(code, int) and code not in (0, 1)) or not summary:
            outcome = {SANITIZER_EXIT: "sanitizer", "timeout": "timeout"}.get(
                code, "crash" if isinstance(code, int) and code < 0 else "exit")
            self.record("api", {"tool": "driver", "outcome": outcome, "code": str(code),
                                "stderr": err[-2000:]})
        self.api_summary = summary
        self.bad_args = self.count_bad_args_calls()
        print(f"  api: {summary.get('calls', 0)} misuse calls, {summary.get('refused', 0)} "
              f"refused, {summary.get('named', 0)} naming function and argument; bad-args "
              f"suites: {self.bad_args[0]} checked calls ({time.time() - self.started:.0f} s)",
              flush=True)

    # ----------------------------------------------------------- summary

    def summary(self):
        git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             cwd=os.path.dirname(os.path.abspath(__file__)))
        commit = git.stdout.decode().strip() or "?"
        info = {}
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    info.setdefault(k.strip(), v.strip())
        except OSError:
            pass
        cpu = (f"{info.get('model name', '?')} (family {info.get('cpu family', '?')} "
               f"model {info.get('model', '?')})")
        lines = [f"# tlm reliability campaign",
                 "",
                 f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
                 f"- commit: {commit}",
                 f"- build: {self.build} ({'ASan+UBSan' if self.sanitized else 'no sanitizer'})",
                 f"- machine: {cpu}, {os.cpu_count()} CPUs",
                 f"- seed: {self.args.seed}; wall time {time.time() - self.started:.0f} s",
                 f"- damaged files: {getattr(self, 'files_damaged', 0)}",
                 f"- API misuse calls (campaign_misuse): "
                 f"{getattr(self, 'api_summary', {}).get('calls', 0)}, refused "
                 f"{getattr(self, 'api_summary', {}).get('refused', 0)}, naming the function "
                 f"and the argument {getattr(self, 'api_summary', {}).get('named', 0)}; "
                 f"NULL-argument and bad-value calls of the bad-args suites "
                 f"(tests/api/test_bad_args_*.c, counted in the source): "
                 f"{getattr(self, 'bad_args', (0, 0))[0]}, with "
                 f"{getattr(self, 'bad_args', (0, 0))[1]} message checks",
                 "",
                 "| part | tool | outcome | count |",
                 "| --- | --- | --- | --- |"]
        for (part, tool, outcome), n in sorted(self.counts.items()):
            lines.append(f"| {part} | {tool} | {outcome} | {n} |")
        self.results.flush()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        lines[6] += f", CPU time of the children {usage.ru_utime + usage.ru_stime:.0f} s"
        lines += ["", "## Per valid file", ""]
        lines += per_seed_table(os.path.join(self.out, "results.jsonl"))
        lines += [f"", f"Kills that landed during a save (a new temporary left): "
                  f"{getattr(self, 'kills_during_save', 0)}",
                  "", "## Flag values: outcomes by kind of flag and value", "",
                  "| flag kind | value | outcome | count |", "| --- | --- | --- | --- |"]
        for (kind, v, outcome), n in sorted(self.flag_counts.items()):
            lines.append(f"| {kind} | `{v!r}` | {outcome} | {n} |")
        lines += ["", "## Damaged files that loaded (damage that did not matter or was not detected)",
                  "", "| seed | loader/command | mutation | outcome | count |",
                  "| --- | --- | --- | --- | --- |"]
        for (seed, tool, mutation, outcome), n in sorted(self.undetected.items()):
            lines.append(f"| {seed} | {tool} | {mutation} | {outcome} | {n} |")
        lines += ["", "## Refusals whose message does not name the file / flag, and findings", ""]
        for key, rows in sorted(self.examples.items(), key=str):
            lines.append(f"### {key}")
            for r in rows:
                lines.append("- `" + json.dumps({k: r[k] for k in r if k != "stderr"})[:400] + "`")
                if r.get("stderr"):
                    lines.append("  stderr: `" + r["stderr"].replace("\n", " | ")[:600] + "`")
            lines.append("")
        text = "\n".join(lines) + "\n"
        with open(os.path.join(self.out, "summary.md"), "w") as f:
            f.write(text)
        print(text)
        findings = sum(n for (p, t, o), n in self.counts.items() if o in FINDINGS)
        return findings


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", help="a meson build directory of tlm (required)")
    ap.add_argument("--out", default="reliability-campaign",
                    help="where results.jsonl and summary.md go (default: ./reliability-campaign)")
    ap.add_argument("--scratch", help="parent of the scratch directory (default: $TMPDIR)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--smoke", action="store_true",
                    help="a bounded run of every part (< 20 s): the test suite's version")
    ap.add_argument("--parts", default="files,flags,kills,api")
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--kill-max-delay", type=float, default=4.0)
    ap.add_argument("--flag-timeout", type=float, default=20.0)
    ap.add_argument("--budget", dest="budget_set", default="",
                    help="change the damage budget per valid file: key=N,... (flips: header "
                         "bytes, both masks from 1024; cuts; random_cuts; fields; behind_crc; "
                         "random_flips; splices; cli_per_seed)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--fail-on-findings", action="store_true",
                    help="exit 1 when a crash, sanitizer report, timeout or odd exit was seen")
    ap.add_argument("--table", metavar="RESULTS",
                    help="only print the per-file table of an earlier run's results.jsonl")
    args = ap.parse_args()
    if args.table:
        print("\n".join(per_seed_table(args.table)))
        return 0
    if args.smoke:
        args.budget = dict(flips=6, cuts=3, random_cuts=1, fields=3, behind_crc=1,
                           random_flips=2, splices=1, cli_per_seed=1)
        args.kills = min(args.kills, 2)
        args.kill_max_delay = 1.0
        args.flag_timeout = 10.0
    else:
        args.budget = dict(flips=1024, cuts=60, random_cuts=60, fields=64, behind_crc=100,
                           random_flips=300, splices=200, cli_per_seed=25)
    for item in filter(None, args.budget_set.split(",")):
        key, _, value = item.partition("=")
        if key not in args.budget:
            ap.error(f"--budget: unknown key {key!r} (one of {', '.join(args.budget)})")
        if not value.isdigit():
            ap.error(f"--budget: {key}={value!r}: expected a whole number")
        args.budget[key] = int(value)
    if not args.build:
        ap.error("--build is required")
    # A misspelt part would otherwise run nothing and report an empty,
    # finding-free summary.
    unknown = set(args.parts.split(",")) - {"files", "flags", "kills", "api"}
    if unknown:
        ap.error(f"--parts: unknown part(s) {', '.join(sorted(unknown))} "
                 "(files, flags, kills, api, comma-separated)")
    c = Campaign(args)
    try:
        print(f"reliability campaign in {c.work}", flush=True)
        c.make_seeds()
        parts = args.parts.split(",")
        if "files" in parts:
            c.part_files()
        if "flags" in parts:
            c.part_flags()
        if "kills" in parts:
            c.part_kills()
        if "api" in parts:
            c.part_api()
        findings = c.summary()
    finally:
        c.results.close()
        if not args.keep:
            shutil.rmtree(c.work, ignore_errors=True)
    if args.fail_on_findings and findings:
        print(f"reliability-campaign: {findings} findings", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
