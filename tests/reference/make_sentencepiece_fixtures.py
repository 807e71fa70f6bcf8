#!/usr/bin/env python3
"""Writes the SentencePiece fixtures of tests/tokenizer/ with the
sentencepiece library (no network):

- sp_bpe.model: a BPE model with byte fallback (1000 pieces) trained on the
  repository's docs/*.md and tests/examples/corpus.txt with llama2.c's
  trainer options (identity normalizer, remove_extra_whitespaces false,
  split_digits, allow_whitespace_only_pieces, add_dummy_prefix,
  byte_fallback, unk_surface " \\u2047 ");
- sp_bpe.bin: the same model in llama2.c's tokenizer.bin form, written here
  following llama2.c's tokenizer.py layout (int32 max_token_length, then per
  piece float32 score, int32 length, bytes; U+2581 written as ' ';
  ids 1 and 2 as "\\n<s>\\n" and "\\n</s>\\n");
- sp_nofallback.model: a small BPE model without byte fallback (unknown
  characters become one <unk> per run);
- sp_unigram.model: a tiny unigram model, which tlm refuses;
- sp_ids.txt: for every text, sentencepiece's ids under each BPE model and
  its decode of those ids (written only when it differs from the text).

    /work/venv/bin/python tests/reference/make_sentencepiece_fixtures.py \\
        --data ../shared/data --out tests/tokenizer

Texts are stored as hex, or as (offset, length) in the shared
tinyshakespeare.txt, which the test reads from the shared data directory.
"""
import argparse
import glob
import os
import struct
import sys
import tempfile

import sentencepiece as spm

SPACE = "\u2581"

TEXTS = [
    ("empty", b""),
    ("hello", b"Hello world"),
    ("one space", b" "),
    ("only spaces", b"     "),
    ("leading spaces", b"   leading"),
    ("trailing spaces", b"trailing   "),
    ("double spaces", b"a  b   c    d"),
    ("spaces everywhere", b" a b  c   "),
    ("digits", b"0 12 345 6789 2026-12-07 3.14159 1,000,000 x86_64"),
    ("punctuation", b"Hello!!! What?! (yes) [no] {maybe} <tag/> a+b=c; x->y && z || w ~~~ ```code```"),
    ("emoji", "I love \U0001F600 and \U0001F44D\U0001F3FD! \U0001F680\U0001F680".encode()),
    ("emoji zwj", "family \U0001F468\u200D\U0001F469\u200D\U0001F467 flag \U0001F1EB\U0001F1F7".encode()),
    ("cjk", "\u4eca\u65e5\u306f\u3044\u3044\u5929\u6c17\u3067\u3059\u306d\u3002\u6211\u7231\u5317\u4eac\u3002\ud55c\uad6d\uc5b4".encode()),
    ("combining marks", "cafe\u0301 nai\u0308ve Z\u0351\u0352a\u0353l\u0354g\u0355o a\u0300\u0301\u0302 \u0301alone".encode()),
    ("accents", "\u00e9t\u00e9 na\u00efve r\u00e9sum\u00e9 \u00dcber Stra\u00dfe".encode()),
    ("newlines tabs", b"line one\nline two\r\n\tindented\n\n\t\tmore\t\n"),
    ("space mark in text", ("a" + SPACE + "b " + SPACE + SPACE).encode()),
    ("replacement char", "x\ufffdy".encode()),
    ("nul", b"a\x00b\x00\x00 c"),
    ("control chars", b"\x01\x02\x1b[0m\x7f"),
    ("invalid lone continuation", b"ab\x80cd\xbf"),
    ("invalid truncated", b"x\xe2\x82 y\xf0\x9f\x98"),
    ("invalid lead bytes", b"\xff\xfe\xc0\xc1\xf5\xf8 z"),
    ("invalid overlong", b"\xc0\x80 \xe0\x80\x80 \xf0\x80\x80\x80"),
    ("invalid surrogate", b"\xed\xa0\x80\xed\xbf\xbf"),
    ("invalid above max", b"\xf4\x90\x80\x80"),
    ("invalid mixed", "ok \u00e9".encode() + b"\xc3(" + "\u4e2d".encode() + b"\xe4\xb8"),
    ("code", b"int main(void) {\n    return tlm_tokenizer_encode(tok, text, n, ids, cap, &n_ids);\n}\n"),
    ("markdown", b"## Heading\n\n- item `code` **bold** _it_ [link](http://x.y/z?a=1&b=2)\n"),
    ("long spaces", b"a" + b" " * 300 + b"b" + b" " * 1000),
    ("long run", b"e" * 2000),
    ("long digits", b"1234567890" * 100),
    ("long word", b"supercalifragilisticexpialidocious" * 30),
]

# Passages of tiny shakespeare: (offset, length).
SHAKESPEARE = [(0, 1000), (100000, 4000), (500000, 3000), (1000000, 8000)]


def write_llama2c(sp, path):
    """llama2.c's tokenizer.py export, written here."""
    tokens, scores = [], []
    for i in range(sp.get_piece_size()):
        t = sp.id_to_piece(i)
        if i == sp.bos_id():
            t = "\n<s>\n"
        elif i == sp.eos_id():
            t = "\n</s>\n"
        tokens.append(t.replace(SPACE, " ").encode("utf-8"))
        scores.append(sp.get_score(i))
    with open(path, "wb") as f:
        f.write(struct.pack("<I", max(len(t) for t in tokens)))
        for b, s in zip(tokens, scores):
            f.write(struct.pack("<fI", s, len(b)))
            f.write(b)


def train(corpus, prefix, **options):
    spm.SentencePieceTrainer.train(
        input=corpus, model_prefix=prefix, input_format="text",
        num_threads=1, minloglevel=2, max_sentence_length=100000,
        **options)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(args.data, "tinyshakespeare.txt"), "rb") as f:
        shakespeare = f.read()

    out_dir = os.path.abspath(args.out)
    cwd = os.getcwd()
    # Relative names: the model records its training input and prefix, and
    # a temporary directory's name would make every run's files differ.
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        corpus, small = "docs.txt", "corpus.txt"
        examples = os.path.join(root, "tests", "examples", "corpus.txt")
        with open(small, "wb") as out, open(examples, "rb") as f:
            out.write(f.read())
        with open(corpus, "wb") as out:
            for name in sorted(glob.glob(os.path.join(root, "docs", "*.md"))) + [examples]:
                with open(name, "rb") as f:
                    out.write(f.read())
        llama2c_options = dict(
            model_type="bpe", character_coverage=1.0, split_digits=True,
            allow_whitespace_only_pieces=True, byte_fallback=True,
            unk_surface=" \u2047 ", normalization_rule_name="identity",
            remove_extra_whitespaces=False, add_dummy_prefix=True)
        train(corpus, "bpe", vocab_size=1000, **llama2c_options)
        nofallback = dict(llama2c_options, byte_fallback=False)
        train(small, "nofallback", vocab_size=200, **nofallback)
        train(small, "unigram", vocab_size=60, model_type="unigram",
              normalization_rule_name="identity")
        for name in ("bpe", "nofallback", "unigram"):
            with open(name + ".model", "rb") as f:
                data = f.read()
            with open(os.path.join(out_dir, "sp_%s.model" % name), "wb") as f:
                f.write(data)
        os.chdir(cwd)

    models = {name: spm.SentencePieceProcessor(
        model_file=os.path.join(args.out, "sp_%s.model" % name))
        for name in ("bpe", "nofallback")}
    write_llama2c(models["bpe"], os.path.join(args.out, "sp_bpe.bin"))

    lines = ["# GENERATED by tests/reference/make_sentencepiece_fixtures.py "
             "(sentencepiece %s); see tests/reference/README.md." % spm.__version__,
             "# text <hex> | shakespeare <offset> <length>; then per model:",
             "# <model> ids <ids...>, and <model>-decoded <hex of sentencepiece's decode>",
             "#  when that decode is not the text itself"]
    entries = [(name, "text " + data.hex(), data) for name, data in TEXTS]
    entries += [("shakespeare %d+%d" % (o, n), "shakespeare %d %d" % (o, n),
                 shakespeare[o:o + n]) for o, n in SHAKESPEARE]
    for name, line, data in entries:
        lines.append("# " + name)
        lines.append(line)
        for model_name, sp in models.items():
            ids = sp.encode(data)
            lines.append("%s ids %s" % (model_name, " ".join(map(str, ids))))
            decoded = sp.decode(ids).encode("utf-8")
            if decoded != data:
                lines.append("%s-decoded %s" % (model_name, decoded.hex()))
    with open(os.path.join(args.out, "sp_ids.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %d texts" % len(entries), file=sys.stderr)


if __name__ == "__main__":
    main()
