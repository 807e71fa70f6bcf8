#!/usr/bin/env python3
"""Write the tokens files llm.c's train_gpt2 reads, for bench_gpt2's comparison.

    /work/venv/bin/python tests/bench/llmc_tokens.py LLMC_DIR [--data-dir DIR]

Encodes tinyshakespeare.txt with GPT-2's tokenizer (OpenAI's tiktoken,
built from the local encoder.json + vocab.bpe of DIR/gpt2/, default
../shared/data next to the source tree) and writes, in LLMC_DIR,
dev/data/tinyshakespeare/tiny_shakespeare_{val,train}.bin in llm.c's
tokens format (llmc/dataloader.h): a header of 256 little-endian int32
(magic 20240520, version 1, the token count), then the tokens as uint16.
The first 32768 tokens validate and the rest train, as llm.c's own
dev/data/tinyshakespeare.py splits them; each document starts with
<|endoftext|> (id 50256). Only the benchmark's llm.c comparison needs this;
nothing in the build or the tests runs it.
"""
import argparse
import os
import struct
import sys

MAGIC = 20240520
VERSION = 1
HEADER_INTS = 256
VAL_TOKENS = 32768


def gpt2_encoding(gpt2_dir):
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=os.path.join(gpt2_dir, "vocab.bpe"),
        encoder_json_file=os.path.join(gpt2_dir, "encoder.json"))
    # GPT-2's pre-tokenization pattern, as tiktoken's "gpt2" encoding has it.
    pattern = (r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"""
               r"""|\s+(?!\S)|\s+""")
    return tiktoken.Encoding(name="gpt2-local", pat_str=pattern,
                             mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256})


def write_tokens(path, tokens):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    header = [0] * HEADER_INTS
    header[0], header[1], header[2] = MAGIC, VERSION, len(tokens)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<%di" % HEADER_INTS, *header))
        f.write(struct.pack("<%dH" % len(tokens), *tokens))
    os.replace(path + ".tmp", path)
    print("wrote %s (%d tokens)" % (path, len(tokens)))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_data = os.path.normpath(os.path.join(here, "..", "..", "..", "shared", "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("llmc_dir")
    parser.add_argument("--data-dir", default=default_data)
    args = parser.parse_args()
    text_path = os.path.join(args.data_dir, "tinyshakespeare.txt")
    if not os.path.exists(text_path):
        sys.exit("llmc_tokens.py: %s is missing (give --data-dir)" % text_path)
    encoding = gpt2_encoding(os.path.join(args.data_dir, "gpt2"))
    text = open(text_path, encoding="utf-8").read()
    eot = 50256
    tokens = []
    # llm.c's script treats each blank-line-separated section as a document.
    sections = text.split("\n\n")
    for i, section in enumerate(sections):
        tokens.append(eot)
        last = i == len(sections) - 1
        tokens.extend(encoding.encode_ordinary(section if last else section + "\n\n"))
    out = os.path.join(args.llmc_dir, "dev", "data", "tinyshakespeare")
    write_tokens(os.path.join(out, "tiny_shakespeare_val.bin"), tokens[:VAL_TOKENS])
    write_tokens(os.path.join(out, "tiny_shakespeare_train.bin"), tokens[VAL_TOKENS:])


if __name__ == "__main__":
    main()
