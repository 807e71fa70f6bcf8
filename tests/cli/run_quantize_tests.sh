#!/bin/sh
# Suite "cli": quantized models through the tlm program.
#   run_quantize_tests.sh TLM_PROGRAM
# tlm quantize to int8, bf16 and back to f32 (sizes, info lines, refusals,
# nothing written on failure); generate, eval and attention on int8 and
# bf16 models, GPT-shaped and Llama-shaped; train --init / --resume on a
# quantized model refused with the way back; a llama2.c version 2 (Q8_0)
# checkpoint imported (written here from a legacy export, in plain Python:
# export.py needs a PyTorch model). Prints one line per check; exits 1 if
# any failed.
set -u
case $1 in
    /*) tlm=$1 ;;
    *) tlm=$(pwd)/$1 ;;
esac
. "$(dirname "$0")/checks.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/tlm-quantize-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

write_corpus corpus.txt 400 8 11 "the cat sat on a mat and the dog ran to the park while birds sang"

# A GPT-shaped model (learned positions, LayerNorm, biases) and a
# Llama-shaped one (rotary, RMSNorm, SwiGLU, grouped-query attention).
check "train a GPT-shaped model" "$tlm" train --data corpus.txt --layers 2 --heads 2 \
    --dim 32 --context 32 --batch 8 --threads 1 --steps 40 --lr 3e-3 --out gpt.tlm
check "train a Llama-shaped model" "$tlm" train --data corpus.txt --arch llama --layers 2 \
    --heads 4 --kv-heads 2 --dim 64 --context 32 --batch 8 --threads 1 --steps 20 \
    --lr 3e-3 --out llama.tlm

for shape in gpt llama; do
    check "$shape: quantize to int8 and bf16, back to f32" sh -c "
        '$tlm' quantize $shape.tlm --to int8 -o ${shape}_int8.tlm > q.out &&
        grep -q '^${shape}_int8.tlm: int8 (groups of 32, float32 scales), [0-9]* bytes\$' q.out &&
        '$tlm' quantize $shape.tlm --to bf16 -o ${shape}_bf16.tlm &&
        '$tlm' quantize ${shape}_int8.tlm --to f32 -o ${shape}_back.tlm"
    check "$shape: info names the weight format, the file size and the session memory" sh -c "
        '$tlm' info ${shape}_int8.tlm > i8.txt && '$tlm' info ${shape}_bf16.tlm > b16.txt &&
        '$tlm' info $shape.tlm > f32.txt && '$tlm' info ${shape}_back.tlm > back.txt &&
        grep -q '^weights: int8 (groups of 32, float32 scales)\$' i8.txt &&
        grep -q '^weights: bf16\$' b16.txt && grep -q '^weights: float32\$' f32.txt &&
        grep -q '^weights: float32\$' back.txt &&
        grep -q \"^file size: .* (\$(wc -c < ${shape}_int8.tlm) bytes)\$\" i8.txt &&
        grep -q '^memory, inference: ' i8.txt &&
        grep -q '^memory, training:  none: quantized weights do not train' b16.txt"
    check "$shape: int8 file smaller than bf16, bf16 smaller than float32" sh -c "
        '$tlm' quantize $shape.tlm --to f32 -o ${shape}_f32.tlm &&
        test \$(wc -c < ${shape}_int8.tlm) -lt \$(wc -c < ${shape}_bf16.tlm) &&
        test \$(wc -c < ${shape}_bf16.tlm) -lt \$(wc -c < ${shape}_f32.tlm)"
    check "$shape: session memory of int8 and bf16 below float32's" python3 - "$tlm" "$shape" <<'EOF'
import subprocess, sys, re
tlm, shape = sys.argv[1], sys.argv[2]
def inference(path):
    out = subprocess.run([tlm, "info", path], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"^memory, inference: .*\((\d+) bytes\)", out, re.M).group(1))
# (int8 against bf16 depends on the size: at these widths the products'
# workspaces weigh as much as the weights)
assert inference(shape + "_int8.tlm") < inference(shape + ".tlm")
assert inference(shape + "_bf16.tlm") < inference(shape + ".tlm")
EOF
    for fmt in int8 bf16; do
        check "$shape $fmt: generate, eval and attention run" sh -c "
            '$tlm' generate ${shape}_$fmt.tlm --prompt 'the ' --tokens 20 --temperature 0 > gen.txt &&
            head -c 4 gen.txt | grep -q '^the ' &&
            '$tlm' eval ${shape}_$fmt.tlm --data corpus.txt | grep -q '^perplexity: [0-9]' &&
            '$tlm' attention ${shape}_$fmt.tlm --prompt 'the cat' --layer 1 -o attn.svg &&
            test -s attn.svg"
    done
    check "$shape: int8 and bf16 perplexity within 1% of float32's" python3 - "$tlm" "$shape" <<'EOF'
import subprocess, sys, re
tlm, shape = sys.argv[1], sys.argv[2]
def ppl(path):
    out = subprocess.run([tlm, "eval", path, "--data", "corpus.txt"], capture_output=True,
                         text=True, check=True).stdout
    return float(re.search(r"^perplexity: ([0-9.]+)$", out, re.M).group(1))
base = ppl(shape + ".tlm")
for fmt in ("int8", "bf16"):
    got = ppl(shape + "_" + fmt + ".tlm")
    assert abs(got / base - 1) < 0.01, (fmt, got, base)
EOF
    check "$shape: train --init and --resume of an int8 model say dequantize first" sh -c "
        ! '$tlm' train --init ${shape}_int8.tlm --data corpus.txt --steps 1 -o never.tlm 2> init.err &&
        test \$(wc -l < init.err) -eq 1 &&
        grep -q \"^tlm train: --init '${shape}_int8.tlm': its weights are int8 .*dequantize first: tlm quantize '${shape}_int8.tlm' --to f32 -o OUT.tlm\" init.err &&
        ! '$tlm' train --resume ${shape}_bf16.tlm --data corpus.txt --steps 1 -o never.tlm 2> resume.err &&
        grep -q 'its weights are bf16 .*dequantize first' resume.err && test ! -e never.tlm"
done
check "export of an int8 model writes its dequantized values (float32 on import)" sh -c "
    '$tlm' export gpt_int8.tlm --safetensors int8.safetensors &&
    '$tlm' import int8.safetensors --tokenizer-from gpt.tlm --out int8_exported.tlm &&
    '$tlm' info int8_exported.tlm | grep -q '^weights: float32\$' &&
    '$tlm' quantize gpt_int8.tlm --to f32 -o gpt_int8_f32.tlm &&
    '$tlm' eval int8_exported.tlm --data corpus.txt > exported.txt &&
    '$tlm' eval gpt_int8_f32.tlm --data corpus.txt > dequantized.txt &&
    cmp exported.txt dequantized.txt"
check "the dequantized model trains again" "$tlm" train --init gpt_back.tlm --data corpus.txt \
    --steps 2 --batch 2 --threads 1 -o tuned.tlm

# --- refusals: nothing written --------------------------------------------
printf 'this is not a model' > corrupt.tlm
bad 2 "quantize, -o naming the input" quantize gpt.tlm --to int8 -o gpt.tlm
ln -s gpt.tlm link.tlm
bad 2 "quantize, -o naming the input through a link" quantize gpt.tlm --to int8 -o link.tlm
bad 2 "quantize, unknown --to" quantize gpt.tlm --to int4 -o never.tlm
bad 2 "quantize, missing --to" quantize gpt.tlm -o never.tlm
bad 2 "quantize, missing -o" quantize gpt.tlm --to int8
bad 1 "quantize, a file that is not a model" quantize corrupt.tlm --to int8 -o never.tlm
bad 1 "quantize, a missing model" quantize missing.tlm --to int8 -o never.tlm
check "nothing written by the refused commands" test ! -e never.tlm
bad 1 "quantize, -o in a missing directory" quantize gpt.tlm --to int8 -o nodir/never.tlm
check "the failed save names the file and leaves nothing" sh -c "
    grep -q 'nodir/never.tlm' bad.err && test ! -e nodir && test -z \"\$(ls | grep '^never')\""
check "the input survives -o naming it" sh -c "'$tlm' info gpt.tlm | grep -q '^weights: float32\$'"
check "quantize --help" sh -c "'$tlm' quantize --help | grep -q '^usage: tlm quantize'"
check "quantize is listed in tlm --help" sh -c "'$tlm' --help | grep -q '^  quantize '"

# --- llama2.c version 2 (Q8_0) --------------------------------------------
# The Llama model exported as llama2.c's legacy float32 file, rewritten
# as export.py's version2_export would write it (groups of 64 and 16).
check "export the Llama model to llama2.c" "$tlm" export llama.tlm --format llama2c -o legacy.bin
check "write llama2.c version 2 files" python3 - <<'EOF'
import array, struct
data = open("legacy.bin", "rb").read()
dim, hidden, layers, heads, kv, vocab, seq = struct.unpack("<7i", data[:28])
shared, vocab = vocab > 0, abs(vocab)
hd = dim // heads
values = array.array("f")
values.frombytes(data[28:])
sizes = [("emb", vocab * dim), ("rms_att", layers * dim), ("wq", layers * dim * dim),
         ("wk", layers * kv * hd * dim), ("wv", layers * kv * hd * dim),
         ("wo", layers * dim * dim), ("rms_ffn", layers * dim), ("w1", layers * hidden * dim),
         ("w2", layers * dim * hidden), ("w3", layers * hidden * dim), ("rms_final", dim),
         ("freq", 2 * seq * (hd // 2)), ("wcls", 0 if shared else vocab * dim)]
t, at = {}, 0
for name, n in sizes:
    t[name] = values[at:at + n]
    at += n
def q80(w, gs):
    q, s = array.array("b"), array.array("f")
    for g in range(0, len(w), gs):
        group = w[g:g + gs]
        scale = max(abs(x) for x in group) / 127.0
        s.append(scale)
        q.extend(int(round(x / scale)) if scale > 0 else 0 for x in group)
    return q.tobytes() + s.tobytes()
for gs, path in ((64, "q80_g64.bin"), (16, "q80_g16.bin")):
    out = bytearray(struct.pack("<Ii7iBi", 0x616b3432, 2, dim, hidden, layers, heads, kv,
                                vocab, seq, int(shared), gs))
    out += bytes(256 - len(out))
    for name in ("rms_att", "rms_ffn", "rms_final"):
        out += t[name].tobytes()
    mats = [("emb", 1)] + [(n, layers) for n in ("wq", "wk", "wv", "wo", "w1", "w2", "w3")]
    if not shared:
        mats.append(("wcls", 1))
    for name, copies in mats:
        each = len(t[name]) // copies
        for c in range(copies):
            out += q80(t[name][c * each:(c + 1) * each], gs)
    open(path, "wb").write(out)
EOF
check "import llama2.c Q8_0 (groups of 64): an int8 model that generates" sh -c "
    '$tlm' import q80_g64.bin --tokenizer-from llama.tlm -o q80_g64.tlm 2> g64.err &&
    test ! -s g64.err &&
    '$tlm' info q80_g64.tlm | grep -q '^weights: int8 (groups of 32, float32 scales)\$' &&
    '$tlm' generate q80_g64.tlm --prompt 'the ' --tokens 10 --temperature 0 > /dev/null"
check "import llama2.c Q8_0 (groups of 16): int8 through float32, with a note saying so" sh -c "
    '$tlm' import q80_g16.bin --tokenizer-from llama.tlm -o q80_g16.tlm 2> g16.err &&
    grep -q '^tlm import: note: .*group size 16.*quantized again to int8' g16.err &&
    '$tlm' info q80_g16.tlm | grep -q '^weights: int8 (groups of 32, float32 scales)\$'"
check "the Q8_0 import's perplexity within 1% of the float32 model's" python3 - "$tlm" <<'EOF'
import subprocess, sys, re
tlm = sys.argv[1]
def ppl(path):
    out = subprocess.run([tlm, "eval", path, "--data", "corpus.txt"], capture_output=True,
                         text=True, check=True).stdout
    return float(re.search(r"^perplexity: ([0-9.]+)$", out, re.M).group(1))
base = ppl("llama.tlm")
for path in ("q80_g64.tlm", "q80_g16.tlm"):
    assert abs(ppl(path) / base - 1) < 0.01, (path, ppl(path), base)
EOF

finish_checks
