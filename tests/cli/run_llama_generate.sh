#!/bin/sh
# Suite "cli" (and "golden"): `tlm generate` end to end on the Llama
# fixtures of tests/fixtures/llama (made by
# tests/reference/make_llama_fixtures.py), at temperature 0:
#   - sp_gqa, a transformers LlamaForCausalLM with the SentencePiece
#     tokenizer.model beside its weights, imported by content (the
#     tokenizer attached automatically) and generated from a prompt, must
#     print exactly what transformers' greedy generate() produced, decoded
#     by sentencepiece (expected/sp_gqa_generate.txt; run.c printed the same
#     text from a llama2.c file of these weights);
#   - the same model exported to llama2.c's files (model and tokenizer.bin)
#     and imported again must print the same text;
#   - a model llama2.c cannot hold, exported with --tokenizer-out, writes
#     neither file.
# (The llama2.c fixtures mha/gqa/mqa.bin are checked against run.c's ids
# by test_llama_import through a session: their synthetic tokenizer.bin
# cannot encode a prompt, and `tlm generate` needs one.)
#   run_llama_generate.sh TLM_PROGRAM FIXTURES_DIR
# Prints one line per check; exits 1 if any failed. Uses python3 to
# compare texts.
set -u
case $1 in
    /*) tlm=$1 ;;
    *) tlm=$(pwd)/$1 ;;
esac
case $2 in
    /*) fixtures=$2 ;;
    *) fixtures=$(pwd)/$2 ;;
esac
. "$(dirname "$0")/checks.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/tlm-llama-generate.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
# same_text GOT WANT: GOT is WANT, or WANT and one newline.
same_text() {
    python3 - "$1" "$2" <<'EOF'
import sys
got = open(sys.argv[1], "rb").read()
want = open(sys.argv[2], "rb").read()
if got not in (want, want + b"\n"):
    print(f"got  {got!r}\nwant {want!r}")
    sys.exit(1)
EOF
}

prompt="Once upon a time, the tokenizer"
check "import of the HF directory attaches its tokenizer.model" \
    "$tlm" import "$fixtures/sp_gqa" -o sp_gqa.tlm
check "generate on it" sh -c "
    '$tlm' generate sp_gqa.tlm --prompt '$prompt' --tokens 24 --temperature 0 > sp.txt"
same_text sp.txt "$fixtures/expected/sp_gqa_generate.txt" > check.out 2>&1 &&
    pass "  ... the text of transformers' greedy generate() (and run.c's)" ||
    { fail "  ... the text of transformers' greedy generate() (and run.c's)"; sed 's/^/#   /' check.out; }

# The same model through llama2.c's files: exported with its tokenizer in
# tokenizer.bin form, imported again from the file (the tokenizer given,
# and attached from beside it), the same text (run.c printed it too, from
# the generator's own legacy file of these weights and sp's tokenizer.bin).
mkdir l2c
check "export --format llama2c --tokenizer-out" \
    "$tlm" export sp_gqa.tlm --format llama2c -o l2c/model.bin --tokenizer-out l2c/tokenizer.bin
check "import of the llama2.c file with --tokenizer" \
    "$tlm" import l2c/model.bin --tokenizer l2c/tokenizer.bin -o from_l2c.tlm
check "generate on it: the same text" sh -c "
    '$tlm' generate from_l2c.tlm --prompt '$prompt' --tokens 24 --temperature 0 > sp2.txt &&
    cmp sp.txt sp2.txt"
check "import attaches the tokenizer.bin beside the llama2.c file: the same text" sh -c "
    '$tlm' import l2c/model.bin -o beside.tlm > /dev/null &&
    '$tlm' generate beside.tlm --prompt '$prompt' --tokens 24 --temperature 0 > sp3.txt &&
    cmp sp.txt sp3.txt"

# A model llama2.c cannot hold (learned positions), with a SentencePiece
# tokenizer: --tokenizer-out writes neither file.
python3 -c 'open("text.txt", "w").write("once upon a time there was a tokenizer. " * 40)'
check "a GPT-shaped model with the SentencePiece tokenizer trains a step" \
    "$tlm" train --data text.txt --layers 1 --heads 2 --dim 16 --context 16 --batch 2 \
    --threads 1 --steps 1 --tokenizer "$fixtures/sp_gqa/tokenizer.model" --out gpt_sp.tlm
check "export --format llama2c --tokenizer-out of it fails and writes neither file" sh -c "
    ! '$tlm' export gpt_sp.tlm --format llama2c -o never.bin --tokenizer-out never_tok.bin \
        2> never.err && grep -q position never.err &&
    test ! -e never.bin && test ! -e never_tok.bin"

finish_checks
