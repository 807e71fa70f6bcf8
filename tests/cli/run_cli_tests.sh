#!/bin/sh
# Suite "cli": the tlm program end to end on a small generated corpus.
#   run_cli_tests.sh TLM_PROGRAM
# train (a tiny model, a few steps) -> generate -> eval -> export -> import
# -> info -> plot -> attention; the SVGs parse as XML and hold the expected
# series and labels; the JSONL log parses with the named fields; --resume
# continues from the saved step; bad inputs give exactly one line on stderr
# and a non-zero status; `tlm demo` runs in a few seconds on a given corpus
# (and on the fortunes when installed); train --init fine-tunes a model on
# a new text with its own tokenizer. Prints one line per check; exits 1
# if any failed. Uses python3 only to parse XML and JSON.
set -u
case $1 in
    /*) tlm=$1 ;;
    *) tlm=$(pwd)/$1 ;;
esac
# The SentencePiece fixtures (tests/tokenizer/sp_bpe.*), found from this
# script's own path before the cd below.
sp_fixtures=$(cd "$(dirname "$0")/../tokenizer" 2> /dev/null && pwd)
. "$(dirname "$0")/checks.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/tlm-cli-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

# A corpus with structure a tiny model can start to learn: 600 lines of
# short sentences from a few words (deterministic), and one line of XML's
# special characters.
write_corpus corpus.txt 600 8 7 "the cat sat on a mat and the dog ran to the park while birds sang"
printf '%s\n' 'the cat & the dog <said> "hi".' >> corpus.txt

tiny="--layers 2 --heads 2 --dim 32 --context 32 --batch 8 --threads 1"

# --- train, with a log, then resume ----------------------------------------
check "train runs" "$tlm" train --data corpus.txt $tiny --steps 30 --eval-every 10 \
    --lr 3e-3 --log train.jsonl --out model.tlm --seed 3
check "train wrote the model" test -s model.tlm
check "the log is JSON lines with the named fields" python3 - <<'EOF'
import json
lines = [json.loads(l) for l in open("train.jsonl")]
assert len(lines) == 30, len(lines)
for i, o in enumerate(lines):
    for k in ("step", "loss", "val_loss", "lr", "grad_norm", "tokens_per_s", "elapsed"):
        assert k in o, (k, o)
    assert o["step"] == i + 1
evals = [o for o in lines if o["val_loss"] is not None]
assert [o["step"] for o in evals] == [10, 20, 30], evals
assert lines[-1]["loss"] < lines[0]["loss"], (lines[0], lines[-1])
EOF
check "resume continues from the saved step" sh -c "
    '$tlm' train --data corpus.txt $tiny --steps 40 --eval-every 10 --lr 3e-3 \
        --log train.jsonl --out model.tlm --resume model.tlm --seed 3 2> resume.err &&
    grep -q 'at step 30' resume.err &&
    python3 -c '
import json
steps = [json.loads(l)[\"step\"] for l in open(\"train.jsonl\")]
assert steps == list(range(1, 41)), steps
'"
# --- train --init: fine-tuning on a new text --------------------------------
# Fixed phrases of the same words: a structure corpus.txt lacks.
python3 - <<'EOF'
phrases = ["the dog sang to the birds", "a cat ran on the mat",
           "birds sat while the park sang"]
state = 11
lines = []
for i in range(600):
    state = (state * 1103515245 + 12345) % 2147483648
    lines.append(phrases[state % len(phrases)] + ".")
open("new.txt", "w").write("\n".join(lines) + "\n")
EOF
check "train --init lowers the loss on a new text" sh -c "
    '$tlm' eval model.tlm --data new.txt > before.txt &&
    '$tlm' train --init model.tlm --data new.txt --steps 20 --lr 3e-3 --batch 8 \
        --threads 1 --log tuned.jsonl --out tuned.tlm 2> tuned.err > /dev/null &&
    grep -q 'fine-tuning .model.tlm. with its char tokenizer' tuned.err &&
    '$tlm' eval tuned.tlm --data new.txt > after.txt &&
    python3 -c '
import json
loss = lambda f: float(open(f).read().split(\"loss: \")[1].split()[0])
before, after = loss(\"before.txt\"), loss(\"after.txt\")
assert after < before - 0.1, (before, after)
steps = [json.loads(l)[\"step\"] for l in open(\"tuned.jsonl\")]
assert steps == list(range(1, 21)), steps
'"
check "train --init keeps the tokenizer" sh -c "
    '$tlm' info tuned.tlm > tuned_info.txt && grep -q '^tokenizer: char' tuned_info.txt &&
    '$tlm' info model.tlm | grep '^vocabulary:' > vocab1.txt &&
    grep '^vocabulary:' tuned_info.txt | cmp - vocab1.txt"
check "train --init accepts architecture options equal to the model's" \
    "$tlm" train --init model.tlm --data new.txt $tiny --steps 2 --out tuned2.tlm
check "train --init trains on shorter sequences with --context" sh -c "
    '$tlm' train --init model.tlm --data new.txt --context 16 --steps 2 --threads 1 \
        --out tuned3.tlm 2> tuned3.err > /dev/null && grep -q 'context 16' tuned3.err &&
    '$tlm' info tuned3.tlm | grep -q '^max_context: 32'"
check "a run started with --init --context resumes with its --context" sh -c "
    '$tlm' train --init model.tlm --data new.txt --context 16 --steps 4 --eval-every 2 \
        --threads 1 --out short.tlm > /dev/null 2>&1 &&
    '$tlm' train --resume short.tlm --data new.txt --context 16 --steps 6 --eval-every 2 \
        --threads 1 --out short.tlm 2> short.err > /dev/null &&
    grep -q 'at step 4, context 16\$' short.err"
check "train --init names every conflicting option" sh -c "
    ! '$tlm' train --init model.tlm --data new.txt --dim 64 --heads 1 --tokenizer byte \
        --out conflict.tlm 2> conflict.err && grep -q -- '--dim 64 (the model.s is 32)' conflict.err &&
    grep -q -- '--heads 1 (the model has 2)' conflict.err &&
    grep -q -- '--tokenizer byte (the model.s is char' conflict.err"

check "--time-limit stops early and still saves" sh -c "
    '$tlm' train --data corpus.txt $tiny --steps 100000 --time-limit 1 --out timed.tlm > timed.out &&
    grep -q 'time limit' timed.out && test -s timed.tlm"

# Bad steps: every step's gradient norm is above --max-grad-norm, so every
# step is skipped; after --max-bad-steps in a row training stops with
# status 1 and leaves the last good checkpoint as it was.
cp model.tlm guarded.tlm
"$tlm" train --data corpus.txt $tiny --steps 60 --eval-every 1 --out guarded.tlm \
    --resume guarded.tlm --max-grad-norm 1e-9 --max-bad-steps 3 \
    --log guarded.jsonl > guarded.out 2> guarded.err
status=$?
if [ "$status" -eq 1 ] &&
    grep -q "stopped after 3 consecutive bad steps (after step 40); the last good checkpoint is 'guarded.tlm' (step 40)" guarded.err &&
    [ "$(grep -c 'step 41 skipped (gradient norm above --max-grad-norm)' guarded.err)" -eq 3 ] &&
    cmp -s model.tlm guarded.tlm &&
    python3 -c '
import json
lines = [json.loads(l) for l in open("guarded.jsonl")]
assert len(lines) == 3 and all(o["skipped"] is True and o["step"] == 40 for o in lines), lines
'; then
    pass "consecutive bad steps stop training and keep the last good checkpoint"
else
    fail "consecutive bad steps stop training and keep the last good checkpoint (status $status)"
    cat guarded.err
fi

# Ctrl-C: the step finishes, a resumable checkpoint is saved, status 130
# and one line saying how to continue. SIGINT is sent until the program
# exits (it may arrive before the handler is installed; --time-limit is
# the safety net).
"$tlm" train --data corpus.txt $tiny --steps 100000 --time-limit 30 --out interrupted.tlm \
    > interrupted.out 2> interrupted.err &
pid=$!
tries=0
while kill -0 "$pid" 2> /dev/null && [ $tries -lt 40 ]; do
    sleep 0.5
    kill -INT "$pid" 2> /dev/null
    tries=$((tries + 1))
done
wait "$pid"
status=$?
if [ "$status" -eq 130 ] && grep -q 'interrupted at step' interrupted.err &&
        [ "$(grep -c 'interrupted' interrupted.err)" -eq 1 ] &&
        grep -q -- '--resume interrupted.tlm' interrupted.err; then
    pass "Ctrl-C saves a checkpoint and exits with status 130"
else
    fail "Ctrl-C saves a checkpoint and exits with status 130 (status $status)"
    sed 's/^/#   /' interrupted.err
fi
check "the interrupted checkpoint resumes" "$tlm" train --data corpus.txt $tiny \
    --steps 100000 --time-limit 1 --resume interrupted.tlm --out interrupted.tlm

# --- generate, eval, info --------------------------------------------------
check "generate streams text after the prompt" sh -c "
    '$tlm' generate model.tlm --prompt 'the ' --tokens 40 --temperature 0.5 --seed 2 > gen.txt &&
    head -c 4 gen.txt | grep -q '^the ' && test \$(wc -c < gen.txt) -gt 5"
check "generate is reproducible with a seed" sh -c "
    '$tlm' generate model.tlm --prompt 'the ' --tokens 40 --temperature 0.5 --seed 2 > gen2.txt &&
    cmp gen.txt gen2.txt"
check "generate --interactive answers each line" sh -c "
    printf 'the\nbirds\n' | '$tlm' generate model.tlm --interactive --tokens 10 > inter.txt &&
    grep -q '^the' inter.txt && grep -q '^birds' inter.txt"
check "generate with the default prompt and filters" "$tlm" generate model.tlm --tokens 20 \
    --top-k 5 --top-p 0.9 --min-p 0.05 --repeat-penalty 1.1 --stop .
check "eval prints loss and perplexity" sh -c "
    '$tlm' eval model.tlm --data corpus.txt > eval.txt &&
    grep -q '^loss: [0-9][0-9.]* nats/token' eval.txt &&
    grep -q '^perplexity: [0-9][0-9.]*\$' eval.txt"
# --- per-token log-probabilities, --threads, <unk>, a continued chat -------
printf 'the cat sat on the mat' > short.txt
check "eval --logprobs: one JSON line per token, summing to eval's loss" sh -c "
    '$tlm' eval model.tlm --data short.txt > short_eval.txt &&
    '$tlm' eval model.tlm --data short.txt --logprobs --top-k 3 > logprobs.jsonl &&
    python3 - <<'EOF'
import json, math
lines = [json.loads(l) for l in open('logprobs.jsonl')]
text = open('short.txt').read()
assert len(lines) == len(text) - 1, len(lines)
for i, o in enumerate(lines):
    assert o['position'] == i + 1 and o['token'] == text[i + 1], o
    assert o['bytes'] == list(text[i + 1].encode()), o
    top = [t['logprob'] for t in o['top']]
    assert len(top) == 3 and top == sorted(top, reverse=True), o
    assert o['logprob'] <= top[0] and (o['rank'] >= 3 or o['top'][o['rank']]['id'] == o['id']), o
    assert sum(math.exp(t) for t in top) <= 1 + 1e-6, o
loss = float([l for l in open('short_eval.txt') if l.startswith('loss:')][0].split()[1])
mean = -sum(o['logprob'] for o in lines) / len(lines)
assert abs(mean - loss) < 1e-4, (mean, loss)
EOF"
bad 2 "eval --top-k without --logprobs is refused" eval model.tlm --data short.txt --top-k 2
check "generate and eval take --threads and give the same output for 1 and 2" sh -c "
    '$tlm' generate model.tlm --prompt 'the ' --tokens 20 --temperature 0 --threads 1 > t1.txt &&
    '$tlm' generate model.tlm --prompt 'the ' --tokens 20 --temperature 0 --threads 2 > t2.txt &&
    cmp t1.txt t2.txt &&
    '$tlm' eval model.tlm --data short.txt --threads 2 > short_eval2.txt &&
    cmp short_eval.txt short_eval2.txt"
printf 'ZZ the Q cat' > unknown.txt
check "text outside a char vocabulary warns with the count" sh -c "
    '$tlm' eval model.tlm --data unknown.txt > /dev/null 2> unk_eval.err &&
    grep -q '^tlm eval: warning: 3 characters of the text are not in the vocabulary and map to <unk>\$' unk_eval.err &&
    '$tlm' generate model.tlm --prompt 'Q the' --tokens 2 > /dev/null 2> unk_gen.err &&
    grep -q '^tlm generate: warning: 1 character of the prompt is not in the vocabulary and maps to <unk>\$' unk_gen.err &&
    '$tlm' eval model.tlm --data short.txt > /dev/null 2> known.err && ! test -s known.err"
check "generate --interactive continues the conversation: turn 2 as from scratch" python3 - "$tlm" <<'EOF'
import subprocess, sys
tlm = sys.argv[1]
def run(args, stdin=None):
    return subprocess.run([tlm] + args, input=stdin, capture_output=True, check=True).stdout
greedy = ['--tokens', '8', '--temperature', '0']
turn1 = run(['generate', 'model.tlm', '-i'] + greedy, b'the\n')
chat = run(['generate', 'model.tlm', '-i'] + greedy, b'the\ncat\n')
# The session held turn 1 as printed (its newline too), then "cat".
prompt = (turn1 + b'cat').decode()
scratch = run(['generate', 'model.tlm', '--prompt', prompt] + greedy)
assert chat == scratch, (chat, scratch)
EOF
check "generate --interactive starts over when the context is full" sh -c "
    printf 'the cat sat on a mat\nthe dog ran to the park\nthe\n' |
        '$tlm' generate model.tlm -i --tokens 20 --temperature 0 > full.txt 2> full.err &&
    grep -q 'the context of 32 positions is full; starting a new conversation' full.err"
check "info shows configuration, tokenizer and memory" sh -c "
    '$tlm' info model.tlm > info.txt && grep -q '^decoder_layers: 2' info.txt &&
    grep -q '^tokenizer: char' info.txt && grep -q '^parameters: ' info.txt &&
    grep -q '^memory, inference: .* session at context 32\$' info.txt &&
    grep -q '^memory, training: .* batch 12, context 32 ' info.txt"
check "info estimates a training step at a given batch and context" sh -c "
    '$tlm' info model.tlm --batch 2 --context 16 | grep -q '^memory, training: .* batch 2, context 16 '"

# A vocabulary with a C1 control (U+0085), a lone byte that is not UTF-8
# and a printable non-ASCII character: info escapes the first two.
python3 -c '
import sys
text = (b"ab\xc2\x85cd\xffe \xc3\xa9t\xc3\xa9 " * 400)
open("odd.txt", "wb").write(text)
'
check "info escapes control and invalid bytes in the vocabulary" sh -c "
    '$tlm' train --data odd.txt $tiny --steps 1 --out odd.tlm > /dev/null 2>&1 &&
    '$tlm' info odd.tlm > odd_info.txt &&
    grep -q '\"\\\\u0085\"' odd_info.txt && grep -q '\"\\\\xff\"' odd_info.txt &&
    grep -q '\"é\"' odd_info.txt &&
    ! LC_ALL=C grep -q \"$(printf '\\302\\205')\" odd_info.txt"

# --- export and import -----------------------------------------------------
check "export writes safetensors" "$tlm" export model.tlm --safetensors model.safetensors
check "import with the tokenizer" "$tlm" import model.safetensors --out imported.tlm \
    --tokenizer-from model.tlm
check "import without a tokenizer" "$tlm" import model.safetensors --out notok.tlm
check "the imported model generates the same text" sh -c "
    '$tlm' generate imported.tlm --prompt 'the ' --tokens 40 --temperature 0.5 --seed 2 > gen3.txt &&
    cmp gen.txt gen3.txt"
check "the imported model has the same info (but the file's size: no optimizer state)" sh -c "
    '$tlm' info imported.tlm | grep -v '^model:\\|^file size:' > info2.txt &&
    grep -v '^model:\\|^file size:' info.txt | cmp - info2.txt"

# Other programs' formats: a Hugging Face GPT-2 directory and llm.c
# checkpoints, back to .tlm with the tokenizer: float32 round trips are
# bit-exact, so the text generated is the same.
check "export --format hf writes a directory" sh -c "
    '$tlm' export model.tlm --format hf -o hf_model > /dev/null &&
    test -s hf_model/model.safetensors && test -s hf_model/config.json"
check "export --format llmc writes float32 and bfloat16 checkpoints" sh -c "
    '$tlm' export model.tlm --format llmc -o model.bin > /dev/null &&
    '$tlm' export model.tlm --format llmc --dtype bf16 -o model_bf16.bin > /dev/null &&
    test -s model.bin && test -s model_bf16.bin"
for source in hf_model hf_model/model.safetensors model.bin; do
    check "import $source generates the same text" sh -c "
        '$tlm' import $source -o from_format.tlm --tokenizer-from model.tlm > /dev/null &&
        '$tlm' generate from_format.tlm --prompt 'the ' --tokens 40 --temperature 0.5 --seed 2 > gen4.txt &&
        cmp gen.txt gen4.txt"
done
check "import --config reads the named config.json" sh -c "
    cp hf_model/config.json other-config.json &&
    '$tlm' import hf_model/model.safetensors --format hf --config other-config.json -o c.tlm > /dev/null"
check "import of a bfloat16 llm.c checkpoint" sh -c "
    '$tlm' import model_bf16.bin -o bf16.tlm | grep -q 'no tokenizer'"

# GPT-2's tokenizer files attached on import: a model of 259 ids (a byte
# tokenizer's) and a GPT-2 vocabulary of 259 ids (the 256 bytes in GPT-2's
# alphabet, merges "h e" and " t", <|endoftext|>) written beside its
# Hugging Face export, or named by --tokenizer.
check "import attaches GPT-2's tokenizer files beside the weights" sh -c "
    '$tlm' train --data corpus.txt --tokenizer byte --layers 1 --heads 1 --dim 16 \
        --context 16 --batch 2 --steps 1 --threads 1 --out byte.tlm > /dev/null 2>&1 &&
    '$tlm' export byte.tlm --format hf -o gpt2_dir > /dev/null &&
    '$tlm' export byte.tlm --format llmc -o byte.bin > /dev/null &&
    python3 -c '
import json
printable = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
alphabet, n = {}, 0
for b in range(256):
    if b in printable:
        alphabet[b] = chr(b)
    else:
        alphabet[b] = chr(256 + n)
        n += 1
encoder = {alphabet[b]: b for b in range(256)}
encoder[\"he\"] = 256
encoder[alphabet[32] + \"t\"] = 257
encoder[\"<|endoftext|>\"] = 258
json.dump(encoder, open(\"gpt2_dir/encoder.json\", \"w\", encoding=\"utf-8\"))
open(\"gpt2_dir/vocab.bpe\", \"w\", encoding=\"utf-8\").write(\"#version: 0.2\\nh e\\n\" + alphabet[32] + \" t\\n\")
' &&
    '$tlm' import gpt2_dir -o gpt2_a.tlm | grep -q 'tokenizer from gpt2_dir)\$' &&
    '$tlm' info gpt2_a.tlm | grep -q '^tokenizer: gpt2, 259 ids (2 BPE merges)' &&
    '$tlm' import gpt2_dir/model.safetensors -o gpt2_b.tlm | grep -q 'tokenizer from gpt2_dir)\$' &&
    '$tlm' import byte.bin --tokenizer gpt2_dir -o gpt2_c.tlm | grep -q 'tokenizer from gpt2_dir)\$' &&
    '$tlm' info gpt2_c.tlm | grep -q '^tokenizer: gpt2' &&
    '$tlm' generate gpt2_c.tlm --prompt ' the' --tokens 3 > /dev/null"
check "import --tokenizer-from wins over the files beside the weights" sh -c "
    '$tlm' import gpt2_dir -o gpt2_d.tlm --tokenizer-from byte.tlm | grep -q 'tokenizer from byte.tlm)\$' &&
    '$tlm' info gpt2_d.tlm | grep -q '^tokenizer: byte'"
# A .tlm beside GPT-2's files keeps its own tokenizer (char: the files' 259
# ids would not even fit its vocabulary), and the closing line says so.
check "import of a .tlm keeps its own tokenizer" sh -c "
    cp model.tlm gpt2_dir/own.tlm &&
    '$tlm' import gpt2_dir/own.tlm -o own_copy.tlm | grep -q 'its own tokenizer)\$' &&
    '$tlm' info own_copy.tlm | grep -q '^tokenizer: char'"

# --- Llama-shaped models, grouped-query attention, a given tokenizer --------
# --arch llama with 2 query heads over 1 key/value head (multi-query), the
# tokenizer read from GPT-2's files (used as it is, not learned).
check "train --arch llama --kv-heads with a tokenizer file" sh -c "
    '$tlm' train --data corpus.txt --arch llama --layers 2 --heads 2 --kv-heads 1 \
        --dim 32 --context 32 --batch 4 --threads 1 --steps 3 --eval-every 3 \
        --tokenizer gpt2_dir --out llama.tlm > /dev/null 2> llama.err &&
    grep -q '2 heads over 1 kv heads' llama.err"
check "info shows kv heads, the KV cache per position and llama's parts" sh -c "
    '$tlm' info llama.tlm > llama_info.txt &&
    grep -q '^n_kv_heads: 1 (grouped-query attention: 2 query heads per key/value head)\$' llama_info.txt &&
    grep -q '^kv_cache: 256 bytes per position (keys and values of 2 layers x 1 heads x 16)\$' llama_info.txt &&
    grep -q '^position: rotary' llama_info.txt && grep -q '^norm: rms (pre-norm)' llama_info.txt &&
    grep -q '^activation: swiglu' llama_info.txt && grep -q '^bias: no' llama_info.txt &&
    grep -q '^tied_output: no' llama_info.txt && grep -q '^tokenizer: gpt2, 259 ids' llama_info.txt"
check "info of a multi-head model names no kv heads" sh -c "
    '$tlm' info model.tlm > mha_info.txt && ! grep -q '^n_kv_heads' mha_info.txt &&
    grep -q '^kv_cache: 512 bytes per position (keys and values of 2 layers x 2 heads x 16)\$' mha_info.txt"
check "a grouped-query model generates and draws attention" sh -c "
    '$tlm' generate llama.tlm --prompt 'the ' --tokens 8 --seed 1 > /dev/null &&
    '$tlm' attention llama.tlm --prompt 'the cat' --layer 1 -o llama_attn.svg &&
    test -s llama_attn.svg"
check "train --init refuses another --kv-heads or --arch" sh -c "
    ! '$tlm' train --init llama.tlm --data corpus.txt --kv-heads 2 --arch gpt \
        2> kv_conflict.err &&
    grep -q -- '--kv-heads 2 (the model has 1)' kv_conflict.err &&
    grep -q -- '--arch gpt (the model' kv_conflict.err"

# Llama-family files: a llama2.c checkpoint (legacy layout, written here
# with struct from the format's description; 259 ids like byte.tlm's
# tokenizer, unshared classifier), read, written back, and sent through a
# Hugging Face Llama directory; every step generates the same text.
python3 - <<'EOF'
import random, struct
random.seed(5)
dim, hidden, layers, heads, kv, vocab, seq = 16, 24, 1, 2, 2, 259, 16
hd = dim // heads
count = (vocab * dim + layers * dim + layers * dim * dim + 2 * layers * kv * hd * dim
         + layers * dim * dim + layers * dim + 3 * layers * hidden * dim + dim
         + 2 * seq * (hd // 2) + vocab * dim)
with open("llama.bin", "wb") as f:
    f.write(struct.pack("<7i", dim, hidden, layers, heads, kv, -vocab, seq))
    f.write(struct.pack("<%df" % count, *[random.uniform(-1, 1) for _ in range(count)]))
# A llama2.c tokenizer.bin of 3 tokens: another model's size.
with open("tokenizer3.bin", "wb") as f:
    f.write(struct.pack("<i", 5))
    for piece in (b"<unk>", b"<s>", b"</s>"):
        f.write(struct.pack("<fi", 0.0, len(piece)) + piece)
EOF
check "import of a llama2.c checkpoint, export back, import again: the same text" sh -c "
    '$tlm' import llama.bin -o llama.tlm --tokenizer-from byte.tlm > /dev/null &&
    '$tlm' export llama.tlm --format llama2c -o llama2.bin > /dev/null &&
    '$tlm' import llama2.bin --format llama2c -o llama2.tlm --tokenizer-from byte.tlm > /dev/null &&
    '$tlm' export llama2.tlm --format llama2c -o llama3.bin > /dev/null &&
    cmp llama2.bin llama3.bin &&
    '$tlm' generate llama.tlm --prompt 'the ' --tokens 20 --temperature 0 > gen_l1.txt &&
    '$tlm' generate llama2.tlm --prompt 'the ' --tokens 20 --temperature 0 > gen_l2.txt &&
    cmp gen_l1.txt gen_l2.txt"
check "a Hugging Face Llama export imports to the same text" sh -c "
    '$tlm' export llama.tlm --format hf -o llama_hf > /dev/null &&
    grep -q '\"model_type\":\"llama\"' llama_hf/config.json &&
    '$tlm' import llama_hf -o llama_hf.tlm --tokenizer-from byte.tlm > /dev/null &&
    '$tlm' generate llama_hf.tlm --prompt 'the ' --tokens 20 --temperature 0 > gen_l3.txt &&
    cmp gen_l1.txt gen_l3.txt"
check "a tokenizer.bin of another size beside a llama2.c file is a note, not attached" sh -c "
    mkdir -p l2c && cp llama.bin l2c/model.bin && cp tokenizer3.bin l2c/tokenizer.bin &&
    '$tlm' import l2c/model.bin -o l2c.tlm > l2c.out 2> l2c.err &&
    grep -q 'no tokenizer)\$' l2c.out && test \$(wc -l < l2c.err) -eq 1 &&
    grep -q 'note: l2c/tokenizer.bin not attached' l2c.err"
# White space only: the CLI's llama2.c sniffing (for a tokenizer.bin
# beside it) read one byte past its 28-byte buffer (seen by ASan).
check "a file of 40 spaces beside a tokenizer.bin is refused cleanly" sh -c "
    mkdir -p blank && printf '%40s' '' > blank/model.bin && cp tokenizer3.bin blank/tokenizer.bin &&
    '$tlm' import blank/model.bin -o blank.tlm 2> blank.err; test \$? -eq 1 &&
    grep -q 'not a model file tlm knows' blank.err && test ! -e blank.tlm"
check "export --format llama2c refuses a GPT-2, naming the field, writing nothing" sh -c "
    ! '$tlm' export model.tlm --format llama2c -o refused.bin 2> refused.err &&
    grep -q 'position' refused.err && test ! -e refused.bin"
check "export --tokenizer-out is for --format llama2c" sh -c "
    '$tlm' export llama.tlm --format hf -o never_dir --tokenizer-out t.bin 2> /dev/null;
    test \$? -eq 2 && test ! -e never_dir"
check "a truncated llama2.c file is refused naming both sizes" sh -c "
    head -c 1000 llama.bin > l2c_short.bin &&
    ! '$tlm' import l2c_short.bin --format llama2c -o l2c_short.tlm 2> l2c_short.err &&
    grep -q '1000 bytes' l2c_short.err && grep -q 'needs exactly' l2c_short.err && test ! -e l2c_short.tlm"
# With a SentencePiece tokenizer (the sp fixture, 1000 ids): a llama2.c
# file (GQA, shared classifier) beside its tokenizer.bin imports with it
# attached; --tokenizer-out writes that tokenizer.bin again byte for byte;
# the Hugging Face export carries tokenizer.model, which import attaches.
python3 - <<'EOF'
import random, struct
random.seed(7)
dim, hidden, layers, heads, kv, vocab, seq = 16, 24, 1, 4, 2, 1000, 32
hd = dim // heads
count = (vocab * dim + layers * dim + layers * dim * dim + 2 * layers * kv * hd * dim
         + layers * dim * dim + layers * dim + 3 * layers * hidden * dim + dim
         + 2 * seq * (hd // 2))
import os
os.makedirs("spl", exist_ok=True)
with open("spl/model.bin", "wb") as f:
    f.write(struct.pack("<7i", dim, hidden, layers, heads, kv, vocab, seq))
    f.write(struct.pack("<%df" % count, *[random.uniform(-1, 1) for _ in range(count)]))
EOF
check "a tokenizer.bin of the model's size beside a llama2.c file is attached" sh -c "
    cp '$sp_fixtures/sp_bpe.bin' spl/tokenizer.bin &&
    '$tlm' import spl/model.bin -o spl.tlm | grep -q 'tokenizer from spl/tokenizer.bin)\$' &&
    '$tlm' info spl.tlm | grep -q '^tokenizer: sentencepiece, 1000 ids'"
check "import MODEL.bin --tokenizer tokenizer.bin, then generate (the issue's stories15M steps)" sh -c "
    cp spl/model.bin spl_alone.bin &&
    '$tlm' import spl_alone.bin --tokenizer spl/tokenizer.bin -o spl_named.tlm |
        grep -q 'tokenizer from spl/tokenizer.bin)\$' &&
    '$tlm' generate spl_named.tlm --prompt 'Once upon a time' --tokens 10 --temperature 0 > spl_named.txt &&
    '$tlm' generate spl.tlm --prompt 'Once upon a time' --tokens 10 --temperature 0 > spl_auto.txt &&
    cmp spl_named.txt spl_auto.txt && grep -q '^Once upon a time' spl_named.txt"
check "export --format llama2c --tokenizer-out writes the tokenizer.bin back" sh -c "
    '$tlm' export spl.tlm --format llama2c -o spl_out.bin --tokenizer-out spl_tok.bin > /dev/null &&
    cmp spl_tok.bin spl/tokenizer.bin && test \$(wc -c < spl_out.bin) -eq \$(wc -c < spl/model.bin)"
check "the HF Llama export carries tokenizer.model, and import attaches it" sh -c "
    '$tlm' export spl.tlm --format hf -o spl_hf > /dev/null && test -s spl_hf/tokenizer.model &&
    grep -q '\"bos_token_id\":1' spl_hf/config.json &&
    '$tlm' import spl_hf -o spl_hf.tlm | grep -q 'tokenizer from spl_hf/tokenizer.model)\$' &&
    '$tlm' generate spl.tlm --prompt 'the cat' --tokens 12 --temperature 0 > spl_gen1.txt &&
    '$tlm' generate spl_hf.tlm --prompt 'the cat' --tokens 12 --temperature 0 > spl_gen2.txt &&
    cmp spl_gen1.txt spl_gen2.txt"
# Without a prompt (or with an empty one) a SentencePiece model starts from
# BOS alone, as llama2.c's run.c does, and its text loses the leading space
# of its first piece; before, the prompt was the text of id 0 (" ⁇ ").
check "generate without a prompt starts a SentencePiece model from BOS alone" sh -c "
    '$tlm' generate spl.tlm --tokens 8 --temperature 0 > spl_bos1.txt &&
    '$tlm' generate spl.tlm --prompt '' --tokens 8 --temperature 0 > spl_bos2.txt &&
    cmp spl_bos1.txt spl_bos2.txt && test \$(wc -c < spl_bos1.txt) -gt 1 &&
    ! grep -q '^ ' spl_bos1.txt && ! grep -q '⁇' spl_bos1.txt"
check "attention of a SentencePiece prompt labels its BOS" sh -c "
    '$tlm' attention spl.tlm --prompt 'the cat' -o spl_attn.svg > /dev/null &&
    grep -q '>&lt;bos&gt;</text>' spl_attn.svg && ! grep -q '>#1</text>' spl_attn.svg"
check "an imported llama2.c model with its SentencePiece tokenizer evaluates and fine-tunes" sh -c "
    printf 'the cat sat on the mat. the dog ran to the cat.\\n%.0s' \$(seq 40) > spl_text.txt &&
    '$tlm' eval spl.tlm --data spl_text.txt > spl_eval.txt && grep -q 'perplexity' spl_eval.txt &&
    '$tlm' train --init spl.tlm --data spl_text.txt --steps 2 --context 16 --batch 2 \
        --eval-every 2 --threads 1 --out spl_tuned.tlm > /dev/null 2>&1 &&
    '$tlm' info spl_tuned.tlm | grep -q '^n_kv_heads: 2' &&
    '$tlm' generate spl_tuned.tlm --prompt 'the cat' --tokens 8 --temperature 0 > /dev/null"
check "--tokenizer-out of a tokenizer that is not SentencePiece writes nothing" sh -c "
    ! '$tlm' export llama.tlm --format llama2c -o no_model.bin --tokenizer-out no_tok.bin 2> no_tok.err &&
    grep -q 'not a SentencePiece' no_tok.err && test ! -e no_model.bin && test ! -e no_tok.bin"
# A GPT-shaped model with a SentencePiece tokenizer: the tokenizer could
# be written but the model cannot; the tokenizer.bin was left behind.
check "--tokenizer-out with a model llama2.c refuses writes no tokenizer.bin" sh -c "
    '$tlm' train --data corpus.txt --tokenizer '$sp_fixtures/sp_bpe.model' --layers 1 --heads 2 \
        --dim 16 --context 16 --steps 1 --batch 2 --threads 1 -o gpt_sp.tlm > /dev/null 2>&1 &&
    ! '$tlm' export gpt_sp.tlm --format llama2c -o gpt_sp.bin --tokenizer-out gpt_sp_tok.bin 2> gpt_sp.err &&
    grep -q 'position' gpt_sp.err && test ! -e gpt_sp.bin && test ! -e gpt_sp_tok.bin &&
    test -z \"\$(ls | grep gpt_sp_tok)\""
check "an explicit --tokenizer of another size is an error, nothing written" sh -c "
    ! '$tlm' import llama.bin -o wrong.tlm --tokenizer spl/tokenizer.bin 2> wrong.err &&
    grep -q '1000 ids' wrong.err && test ! -e wrong.tlm"
# A SentencePiece encoding can be longer than its text (an invalid byte
# becomes U+FFFD's three byte-fallback ids): training must make room.
python3 -c "import sys; sys.stdout.buffer.write((b'\\xff\\xfe' * 50 + b' the cat sat\\n') * 20)" > sp_long.txt
check "train --tokenizer tokenizer.model on text that encodes to more ids than bytes" sh -c "
    '$tlm' train --data sp_long.txt --arch llama --tokenizer '$sp_fixtures/sp_bpe.model' \
        --steps 2 --context 16 --batch 2 --dim 32 --layers 1 --heads 2 -o sp_long.tlm > /dev/null &&
    '$tlm' info sp_long.tlm | grep -q '^tokenizer: sentencepiece, 1000 ids (pieces merged by score)'"
check "generate and eval take SentencePiece text that encodes to more ids than bytes" sh -c "
    '$tlm' generate sp_long.tlm --prompt \"\$(printf '\\377\\376\\377\\376\\377')\" --tokens 3 \
        --temperature 0 > sp_long_gen.txt &&
    test \$(wc -c < sp_long_gen.txt) -gt 5 && '$tlm' eval sp_long.tlm --data sp_long.txt > /dev/null"
check "import and export help list llama2c" sh -c "
    '$tlm' import --help | grep -q llama2c && '$tlm' export --help | grep -q llama2c &&
    '$tlm' export --help | grep -q tokenizer-out"

# --- plot --------------------------------------------------------------------
check "plot writes an SVG" "$tlm" plot train.jsonl -o loss.svg
check "the loss SVG parses and holds both series, axes, legend, title" python3 - <<'EOF'
import xml.etree.ElementTree as E
ns = "{http://www.w3.org/2000/svg}"
root = E.parse("loss.svg").getroot()
ids = {e.get("id") for e in root.iter()}
for i in ("train-loss", "validation-loss", "x-axis", "y-axis", "legend", "title", "x-label", "y-label"):
    assert i in ids, i
train = [e for e in root.iter(ns + "polyline") if e.get("id") == "train-loss"][0]
assert len(train.get("points").split()) == 40
texts = " ".join(t.text or "" for t in root.iter(ns + "text"))
for word in ("train loss", "validation loss", "step", "loss"):
    assert word in texts, word
EOF
head -n 5 train.jsonl | sed 's/"val_loss":[^,]*/"val_loss":null/' > train_only.jsonl
check "plot handles a log with only train points" sh -c "
    '$tlm' plot train_only.jsonl -o train_only.svg && python3 -c '
import xml.etree.ElementTree as E
r = E.parse(\"train_only.svg\").getroot()
ids = {e.get(\"id\") for e in r.iter()}
assert \"train-loss\" in ids and \"validation-loss\" not in ids
'"

# --- attention ---------------------------------------------------------------
check "attention writes an SVG" "$tlm" attention model.tlm --prompt 'the cat & <dog>' --layer 1 -o attn.svg
check "the attention SVG parses, one grid per head, token labels escaped" python3 - <<'EOF'
import xml.etree.ElementTree as E
ns = "{http://www.w3.org/2000/svg}"
root = E.parse("attn.svg").getroot()
heads = [g for g in root.iter(ns + "g") if (g.get("id") or "").startswith("head-")]
assert len(heads) == 2, len(heads)
n = len("the cat & <dog>")
for g in heads:
    cells = [r for r in g.iter(ns + "rect") if r.find(ns + "title") is not None]
    assert len(cells) == n * n, len(cells)
    labels = [t.text for t in g.iter(ns + "text") if t.get("class") == "token"]
    assert len(labels) == 2 * n
    for ch in ("&", "<", ">", "t", "\u2423"):
        assert ch in labels, ch
    # causal: the first query row sees only itself
    first = [float(r.find(ns + "title").text) for r in cells[:n]]
    assert abs(first[0] - 1.0) < 1e-3 and max(first[1:]) == 0.0, first
EOF

# --- demo, quick mode ----------------------------------------------------------
head -n 300 corpus.txt > small.txt
check "demo runs on a given corpus in a few seconds" sh -c "
    '$tlm' demo --corpus small.txt --seconds 3 --out-dir demo_out --threads 1 > demo.txt &&
    test -s demo_out/model.tlm && test -s demo_out/train.jsonl && test -s demo_out/loss.svg &&
    grep -q 'temperature 0.2' demo.txt && grep -q 'temperature 0.8' demo.txt &&
    grep -q 'temperature 1.5' demo.txt &&
    python3 -c 'import xml.etree.ElementTree as E; E.parse(\"demo_out/loss.svg\")'"
if [ -d /usr/share/games/fortunes ]; then
    check "demo runs on the fortunes corpus" sh -c "
        '$tlm' demo --seconds 3 --out-dir demo_fortunes --threads 1 > demo2.txt &&
        grep -q 'corpus: /usr/share/games/fortunes' demo2.txt && test -s demo_fortunes/loss.svg"
else
    echo "ok - demo on the fortunes corpus # SKIP /usr/share/games/fortunes is absent"
fi

# --- bad inputs: exactly one line on stderr, a non-zero status ---------------
printf 'this is not a model' > corrupt.tlm
head -c 100 model.tlm > truncated.tlm
mkdir -p a_directory
bad 1 "train, missing data file" train --data missing.txt
bad 1 "train, a directory as data" train --data a_directory
bad 2 "train, bad number" train --data corpus.txt --steps 12abc
bad 2 "train, number out of range" train --data corpus.txt --lr -1
bad 2 "train, negative --max-grad-norm" train --data corpus.txt --max-grad-norm -1
bad 2 "train, zero --max-bad-steps" train --data corpus.txt --max-bad-steps 0
bad 2 "train, unknown flag" train --data corpus.txt --frobnicate
bad 2 "train, missing required flag" train
bad 2 "train, flag without its value" train --data
bad 2 "train, bad tokenizer" train --data corpus.txt --tokenizer bpe:12
bad 2 "train, encoder layers" train --data corpus.txt --encoder-layers 1
bad 1 "train, context too long for the text" train --data small.txt --context 30000 --steps 1
bad 2 "train --init, a conflicting architecture option" train --init model.tlm --data new.txt --layers 3
bad 2 "train --init, context beyond the model's" train --init model.tlm --data new.txt --context 33
bad 2 "train --resume, context beyond the model's" train --resume short.tlm --data new.txt --context 33
bad 2 "train --init with --resume" train --init model.tlm --resume model.tlm --data new.txt
bad 1 "train --init, a model without tokenizer" train --init notok.tlm --data new.txt
bad 1 "train --init, missing model" train --init missing.tlm --data new.txt
bad 1 "generate, corrupt model file" generate corrupt.tlm
bad 1 "generate, truncated model file" generate truncated.tlm
bad 1 "generate, missing model" generate missing.tlm
bad 1 "generate, a directory as model" generate a_directory
bad 2 "generate, bad temperature" generate model.tlm --temperature hot
bad 2 "generate, missing model argument" generate
bad 2 "eval, missing required flag" eval model.tlm
bad 1 "eval, missing data file" eval model.tlm --data missing.txt
bad 1 "info, corrupt model file" info corrupt.tlm
bad 2 "info, context beyond the model's" info model.tlm --context 33
bad 2 "export, missing required flag" export model.tlm
bad 1 "import, not a model file" import corpus.txt --out x.tlm
bad 2 "export, unknown format" export model.tlm --format onnx -o x
bad 2 "export, unknown dtype" export model.tlm --format hf --dtype f64 -o x
bad 2 "export, --safetensors with another format" export model.tlm --safetensors x --format hf
bad 1 "export, llm.c in float16" export model.tlm --format llmc --dtype f16 -o x.bin
bad 2 "import, unknown format" import model.bin --format onnx -o x.tlm
bad 1 "import, a .tlm read as llm.c" import model.tlm --format llmc -o x.tlm
bad 1 "import, a directory without a model" import a_directory -o x.tlm
bad 1 "import, a tokenizer that does not fit the model" import model.bin --tokenizer gpt2_dir -o x.tlm
bad 1 "plot, missing log" plot missing.jsonl -o x.svg
bad 1 "plot, not a log" plot corpus.txt -o x.svg
bad 1 "attention, layer out of range" attention model.tlm --prompt the --layer 9 -o x.svg
bad 2 "attention, missing prompt" attention model.tlm -o x.svg
bad 2 "generate, an empty prompt for a tokenizer without BOS" generate model.tlm --prompt 
bad 1 "demo, missing corpus" demo --corpus missing.txt --seconds 1
bad 2 "unknown command" frobnicate
bad 2 "train, --kv-heads not dividing --heads" train --data corpus.txt --heads 4 --kv-heads 3
bad 2 "train, unknown --arch" train --data corpus.txt --arch gpt3
bad 1 "train, a --tokenizer file that is missing" train --data corpus.txt --tokenizer missing.model --steps 1
bad 1 "train, a --tokenizer that is a unigram SentencePiece model" train --data corpus.txt --tokenizer "$sp_fixtures/sp_unigram.model" --steps 1 -o never.tlm
bad 1 "import, a --tokenizer that is a unigram SentencePiece model" import llama.bin -o never.tlm --tokenizer "$sp_fixtures/sp_unigram.model"
check "nothing written for the refused tokenizers" test ! -e never.tlm
for command in train generate eval info export import plot attention demo version; do
    check "$command --help" sh -c "'$tlm' $command --help | grep -q '^usage: tlm $command'"
done

finish_checks
