#!/usr/bin/env python3
"""Writes tests/tokenizer/gpt2_ids.txt: the token ids GPT-2's tokenizer gives
a corpus of texts, as computed by OpenAI's tiktoken built from the two local
vocabulary files (no network), with Hugging Face's GPT2TokenizerFast on the
same files as a second opinion. The fixture is what tests/tokenizer/
test_gpt2_tokenizer.c compares tlm's TLM_TOKENIZER_GPT2 against.

    /work/venv/bin/python tests/reference/make_gpt2_tokenizer_fixture.py \
        --data ../shared/data --out tests/tokenizer/gpt2_ids.txt

Texts that are not valid UTF-8 follow docs/tokenizer.md's rule: each byte
that does not start a valid UTF-8 character is one character of no class.
tiktoken only encodes str, so their reference is GPT-2's pattern applied by
Python's `regex` module to the text decoded with errors="surrogateescape"
(a lone surrogate is neither a letter, a number nor a space), each piece
encoded back to its bytes and given to tiktoken's encode_single_piece. That
reference is checked to equal tiktoken's own encode_ordinary on every valid
text, so it is the same tokenizer.

Nothing from the vocabulary is written to the fixture. The Shakespeare
texts are stored as (offset, length) in the shared tinyshakespeare.txt,
which the test reads from the shared data directory like the vocabulary.
"""
import argparse
import os
import sys

import regex
import tiktoken
import tiktoken.load

PATTERN = (r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"""
           r"""|\s+(?!\S)|\s+""")

# The corpus: (name, bytes). Names are for the report only.
CORPUS = [
    ("empty", b""),
    ("hello", b"Hello world"),
    ("contractions", "I'm sure it's fine, isn't it? We've said we'll go; they'd know you're right.".encode()),
    ("contractions upper", b"IT'S DONE. I'M HERE, WE'RE OK, THEY'LL SEE, I'D, WE'VE, DON'T"),
    ("contractions mixed", b"It'S it'S 'S 's'S''s'''t 're've'll'm'd'x 'q 'ss"),
    ("apostrophe letters", b"rock 'n' roll, o'clock, y'all, 'tis, ma'am, d'Artagnan, l'homme"),
    ("apostrophe alone", b"' '' ''' 'a ' s 'S 'z' 'RE 'Ll"),
    ("quotes", "\u2018curly\u2019 \u201cquotes\u201d it\u2019s".encode()),
    ("letters digits punctuation", b"abc123def 456 !!! ??? ... --- a1b2c3 3.14159 1,000,000 $100 50% #tag @user"),
    ("punctuation runs", b"Hello!!! What?! (yes) [no] {maybe} <tag/> a+b=c; x->y && z || w ~~~ ```code```"),
    ("numbers", b"0 12 345 6789 01234567890123456789 1e10 -5 +7 0x1F 3/4"),
    ("url", b"https://example.com/path?query=1&x=y#frag user@example.org"),
    ("emoji", "I love \U0001F600 and \U0001F44D\U0001F3FD! \U0001F680\U0001F680".encode()),
    ("emoji zwj", "family \U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466 and \U0001F3F3\uFE0F\u200D\U0001F308 flag \U0001F1EB\U0001F1F7".encode()),
    ("cjk", "\u4eca\u65e5\u306f\u3044\u3044\u5929\u6c17\u3067\u3059\u306d\u3002\u6211\u7231\u5317\u4eac\u5929\u5b89\u95e8\u3002\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8".encode()),
    ("combining marks", "cafe\u0301 nai\u0308ve Z\u0351\u0352a\u0353l\u0354g\u0355o\u0356 a\u0300\u0301\u0302 \u0301alone".encode()),
    ("arabic", "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645! \u0661\u0662\u0663".encode()),
    ("hindi", "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e \u0967\u0968\u0969".encode()),
    ("thai", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a \u0e51\u0e52\u0e53".encode()),
    ("other digits", "\u0660\u0661\u0662 \u06f4\u06f5 \u0966\u0967 \uff11\uff12\uff13 \u2160\u2161 \u00bd \u00b2\u00b3 \u2460".encode()),
    ("spaces before word", b"          word"),
    ("spaces at end", b"word          "),
    ("long spaces", b"a" + b" " * 300 + b"b" + b" " * 1000),
    ("tabs", b"\tindented\n\t\tmore\t\t\n\t"),
    ("newlines", b"line one\n\nline two\n\n\nline three\n"),
    ("newlines before word", b"\n\n\n\nword\n \n word\n  \n  word"),
    ("mixed whitespace", b" \t \n \r\n \x0b\x0c x \t\t y\r\r\n"),
    ("nbsp", "a\u00a0b \u00a0c\u00a0 d\u00a0\u00a0 e \u00a0".encode()),
    ("ideographic space", "\u3000\u3000word\u3000x \u3000 y\u3000".encode()),
    ("unicode spaces", "a\u2000b\u2003c\u2009d\u200ae\u202ff\u205fg\u1680h\u0085i\u2028j\u2029k".encode()),
    ("zero width", "a\u200bb\u200cc\u200dd\ufeffe \u200b x".encode()),
    ("control characters", b"\x00\x01\x02 a\x07b\x1b[0m \x7f c\x1c\x1d\x1e\x1f d \x08"),
    ("c1 controls", "\u0080\u0081\u009f x\u0090y".encode()),
    ("endoftext text", b"before<|endoftext|>after <|endoftext|> <|endoftext|><|endoftext|>"),
    ("mixed scripts", "Hello \u4e16\u754c! \u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440, \u03b3\u03b5\u03b9\u03b1 \u03c3\u03bf\u03c5 \u03ba\u03cc\u03c3\u03bc\u03b5. \u05e9\u05dc\u05d5\u05dd".encode()),
    ("private use and noncharacters", "\ue000\uf8ff \U000F0000 \ufffe\uffff \U0010FFFF".encode()),
    ("math letters", "\U0001D400\U0001D401 \u2102\u211d x\u00b2 \u00aa\u00ba".encode()),
    ("invalid lone bytes", b"abc\xff\xfedef \x80\x81 x\xc0\xafy \xf5\xf6"),
    ("invalid truncated", b"caf\xc3 na\xe2\x82 end\xf0\x9f\x98"),
    ("invalid between letters", b"a\x80b \xffword \x80 \x80\x80\x80 'xs\xff's"),
    ("invalid surrogates", b"\xed\xa0\x80\xed\xbf\xbf text \xef\xbf\xbd"),
    ("invalid overlong", b"\xc0\x80 \xe0\x80\xaf \xf0\x80\x80\xaf \xf4\x90\x80\x80"),
    ("invalid with spaces", b"  \xff  \xfe\n\n\xfd \t\xfc"),
    ("invalid and numbers", b"12\x8034 \xff56 \x9f"),
    ("code", b"def f(x):\n    return x ** 2  # square\n\nif __name__ == '__main__':\n    print(f(3))\n"),
    ("json", b'{"key": [1, 2.5, "three"], "nested": {"a": null}}'),
    ("repeated", b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa " * 5),
    ("long word", b"Pneumonoultramicroscopicsilicovolcanoconiosis " + b"x" * 400),
    ("long punctuation", b"=" * 300 + b"-" * 70),
    ("long digits", b"1234567890" * 40),
]


# Random mixtures of the pieces the rules care about (seeded, so the
# fixture is reproducible): contractions next to letters, every kind of
# whitespace before every kind of character, invalid bytes anywhere.
MIX_POOL = [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2003", "\x0b",
            "\x1c", "\x85", "'s", "'S", "'t", "'re", "'ll", "'d", "'m", "'ve", "'",
            "''", "'x", "a", "Z", "word", "Hello", "the", "\u00e9", "\u00f1",
            "\u4e2d\u6587", "\ud55c", "\u00df", "\u03a9", "\u0438", "1", "42",
            "\u0663", "\u096a", "\u00bd", "\u00b2", "\u216b", "!", "?", "...",
            "\u2014", "-", "_", "@", "#", "$", "%", "&", "*", "(", ")",
            "<|endoftext|>", "\U0001F600", "\U0001F468\u200D\U0001F469", "\u200b",
            "\u0301", "a\u0301", "\ufeff", "\x00", "\x7f", "\u0080", "\U0001D400",
            "\ue000", "\u0640", "\u0651"]
MIX_INVALID = [b"\xff", b"\xfe", b"\x80", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80",
               b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xf0\x9f\x98"]


def random_mixtures(count, seed=20261207):
    import random
    rng = random.Random(seed)
    texts = []
    for i in range(count):
        parts = []
        for _ in range(rng.randint(1, 30)):
            r = rng.random()
            if r < 0.08:
                parts.append(rng.choice(MIX_INVALID))
            elif r < 0.12:
                parts.append(b" " * rng.randint(2, 40))
            else:
                parts.append(rng.choice(MIX_POOL).encode())
        texts.append(("random mixture %d" % i, b"".join(parts)))
    return texts


def make_tiktoken(gpt2_dir):
    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=os.path.join(gpt2_dir, "vocab.bpe"),
        encoder_json_file=os.path.join(gpt2_dir, "encoder.json"))
    return tiktoken.Encoding("gpt2-local", pat_str=PATTERN,
                             mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256})


def reference_ids(enc, data):
    """GPT-2's ids for bytes `data` by the surrogateescape rule."""
    text = data.decode("utf-8", errors="surrogateescape")
    ids = []
    for piece in regex.findall(PATTERN, text):
        ids.extend(enc._encode_single_piece(
            piece.encode("utf-8", errors="surrogateescape")))
    return ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(
        os.path.dirname(__file__), "..", "..", "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(
        os.path.dirname(__file__), "..", "tokenizer", "gpt2_ids.txt"))
    args = ap.parse_args()
    gpt2_dir = os.path.join(args.data, "gpt2")
    enc = make_tiktoken(gpt2_dir)
    from transformers import GPT2TokenizerFast
    # transformers 5 names the files' arguments vocab and merges (older
    # versions: vocab_file, merges_file).
    hf = GPT2TokenizerFast(vocab=os.path.join(gpt2_dir, "encoder.json"),
                           merges=os.path.join(gpt2_dir, "vocab.bpe"))
    if hf("Hello world")["input_ids"] != [15496, 995]:
        sys.exit("GPT2TokenizerFast did not read the vocabulary files")

    cases = [(name, data, None)
             for name, data in CORPUS + random_mixtures(150)]
    with open(os.path.join(args.data, "tinyshakespeare.txt"), "rb") as f:
        shakespeare = f.read()
    for offset, length in ((0, 4096), (500000, 2048), (1000000, 1500)):
        cases.append(("shakespeare %d+%d" % (offset, length),
                      shakespeare[offset:offset + length], (offset, length)))

    problems = 0
    lines = ["# GENERATED by tests/reference/make_gpt2_tokenizer_fixture.py "
             "(tiktoken %s, transformers %s); see tests/reference/README.md."
             % (tiktoken.__version__, __import__("transformers").__version__),
             "# text <hex bytes> | shakespeare <offset> <length>, then "
             "ids <ids...>"]
    for name, data, where in cases:
        ids = reference_ids(enc, data)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None:
            tt = enc.encode_ordinary(text)
            if tt != ids:
                print("REFERENCE MISMATCH (surrogateescape rule vs tiktoken) "
                      "on %r" % name, file=sys.stderr)
                problems += 1
            hf_ids = hf(text)["input_ids"]
            if hf_ids != tt:
                print("tiktoken and Hugging Face disagree on %r:\n  tiktoken "
                      "%s\n  hf       %s" % (name, tt[:40], hf_ids[:40]))
        assert b"".join(enc.decode_single_token_bytes(i) for i in ids) == data
        lines.append("# " + name)
        if where is None:
            lines.append("text " + data.hex())
        else:
            lines.append("shakespeare %d %d" % where)
        lines.append("ids" + "".join(" %d" % i for i in ids))
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s: %d texts" % (args.out, len(cases)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
