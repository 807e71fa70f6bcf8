#!/bin/sh
# Suite "cli": every model the library builds, from the tlm program
# (issue #20).
#   run_pairs_tests.sh TLM_PROGRAM SCRIPTS_DIR
# The architecture options of tlm train (--position, --norm,
# --norm-placement, --activation, --no-bias, --untied) reach the model
# (tlm info reads them back), bad values are refused naming the accepted
# ones, and --init/--resume refuse those that disagree with their model;
# --pairs files with a line that is not SOURCE<TAB>TARGET, or longer than
# any model's max_context, are refused with FILE:LINE; a short --pairs run logs and prints its exact match, resumes,
# and tlm generate writes one target per source line and refuses the
# options of the other kind of model. Prints one line per check; exits 1
# if any failed. Uses python3 for the reversal pairs and the JSON log.
set -u
case $1 in
    /*) tlm=$1 ;;
    *) tlm=$(pwd)/$1 ;;
esac
scripts=$(cd "$2" && pwd)
. "$(dirname "$0")/checks.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/tlm-pairs-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

write_corpus corpus.txt 200 8 7 "the cat sat on a mat and the dog ran to the park"
tiny="--layers 1 --heads 2 --dim 16 --context 16 --batch 4 --threads 1"

# --- architecture options ---------------------------------------------------
check "train with every architecture option" "$tlm" train --data corpus.txt $tiny \
    --steps 2 --position rotary --norm rms --norm-placement post --activation relu \
    --no-bias --untied -o arch.tlm
check "tlm info shows them" sh -c "
    '$tlm' info arch.tlm > arch.info &&
    grep -qx 'position: rotary' arch.info && grep -qx 'norm: rms (post-norm)' arch.info &&
    grep -qx 'activation: relu' arch.info && grep -qx 'bias: no' arch.info &&
    grep -qx 'tied_output: no' arch.info"
check "the explicit options override --arch llama's" sh -c "
    '$tlm' train --data corpus.txt $tiny --steps 1 --arch llama --position sinusoidal \
        --activation gelu_exact -o llama.tlm && '$tlm' info llama.tlm > llama.info &&
    grep -qx 'position: sinusoidal' llama.info && grep -qx 'norm: rms (pre-norm)' llama.info &&
    grep -qx 'activation: gelu-exact' llama.info && grep -qx 'bias: no' llama.info"
check "--activation takes tlm info's spelling gelu-exact too" "$tlm" train \
    --data corpus.txt $tiny --steps 1 --activation gelu-exact -o gelu.tlm
for option in position norm norm-placement activation; do
    bad 2 "train, unknown --$option" train --data corpus.txt --$option fancy
done
check "an unknown value's message names the flag and the accepted values" sh -c "
    ! '$tlm' train --data corpus.txt --activation swish 2> value.err &&
    grep -q -- \"--activation expects gelu, gelu_exact, relu or swiglu, not 'swish'\" value.err &&
    ! '$tlm' train --data corpus.txt --norm-placement middle 2> value.err &&
    grep -q -- \"--norm-placement expects pre or post, not 'middle'\" value.err"
bad 2 "train --no-bias takes no value" train --data corpus.txt --no-bias=1
check "--init refuses the options that disagree with its model, by name" sh -c "
    ! '$tlm' train --init arch.tlm --data corpus.txt --position learned --norm layer \
        --activation relu --no-bias 2> init.err &&
    grep -q -- '--position learned (the model.s is rotary)' init.err &&
    grep -q -- '--norm layer (the model.s is rms)' init.err &&
    ! grep -q -- '--activation' init.err && ! grep -q -- '--no-bias' init.err &&
    test \$(wc -l < init.err) -eq 1"
check "--resume refuses them too" sh -c "
    ! '$tlm' train --resume llama.tlm --data corpus.txt --steps 3 --untied \
        --norm-placement post -o resumed.tlm 2> resume.err &&
    grep -q -- '--norm-placement post (the model.s is pre)' resume.err &&
    ! grep -q -- '--untied' resume.err && test ! -e resumed.tlm"
check "--init accepts the options that agree" "$tlm" train --init arch.tlm \
    --data corpus.txt --steps 1 --batch 4 --position rotary --untied --no-bias \
    --threads 1 -o init.tlm

# --- pairs files ------------------------------------------------------------
python3 "$scripts/make-reversal-pairs.py" --pairs 300 --seed 5 -o rev.tsv
printf 'abc\tcba\nabd\n' > no_tab.tsv
printf 'abc\tcba\na\tb\tc\n' > two_tabs.tsv
printf 'abc\tcba\n\tx\n' > no_source.tsv
printf 'abc\tcba\nab\tba\nx\t\n' > no_target.tsv
printf 'abc\tcba\nab\rc\tba\n' > inner_cr.tsv
printf '\n\n' > blank.tsv
: > empty.tsv
printf 'abc\tcba\nab\tba\n' > two.tsv
check_refused() { # file line description
    if "$tlm" train --pairs "$1" --steps 1 -o never.tlm 2> pairs.err; then
        fail "--pairs $3: accepted"
    elif [ "$(wc -l < pairs.err)" -eq 1 ] && grep -q "^tlm train: $1:$2: " pairs.err &&
        test ! -e never.tlm; then
        pass "--pairs $3: refused at $1:$2"
    else
        fail "--pairs $3: not one line naming $1:$2"
        sed 's/^/#   /' pairs.err
    fi
}
check_refused no_tab.tsv 2 "a line without TAB"
check_refused two_tabs.tsv 2 "a line with two TABs"
check_refused no_source.tsv 2 "an empty source"
check_refused no_target.tsv 3 "an empty target"
check_refused inner_cr.tsv 2 "a CR inside a line"
python3 - <<'EOF'
# A source longer than the largest max_context (1048576 tokens).
open("huge_line.tsv", "w").write("".join("ab%d\tba%d\n" % (i, i) for i in range(6)) +
                                 "a" * 1100000 + "\tb\n")
EOF
check_refused huge_line.tsv 7 "a line longer than any model's max_context"
bad 1 "train --pairs, only blank lines" train --pairs blank.tsv --steps 1
bad 1 "train --pairs, an empty file" train --pairs empty.tsv --steps 1
bad 1 "train --pairs, too few pairs to hold any out" train --pairs two.tsv --steps 1
bad 2 "train --pairs and --data" train --pairs rev.tsv --data corpus.txt
bad 2 "train without --data or --pairs" train --steps 1
bad 2 "train --pairs --encoder-layers 0" train --pairs rev.tsv --encoder-layers 0
bad 2 "train --data --beam" train --data corpus.txt --beam 2
bad 2 "train --pairs, --context shorter than a pair" train --pairs rev.tsv --context 5
bad 2 "train --pairs, unknown --norm" train --pairs rev.tsv --norm batch
# Windows line ends and blank lines: the same pairs as the Unix file.
python3 - <<'EOF'
lines = open("rev.tsv").read().splitlines()
open("rev_crlf.tsv", "w", newline="").write("\r\n\r\n".join(lines) + "\r\n")
EOF

# --- a short --pairs run ----------------------------------------------------
small="--dim 32 --heads 2 --encoder-layers 1 --layers 1 --batch 16 --threads 1 --lr 5e-3"
check "train --pairs runs, logs and prints its exact match" sh -c "
    '$tlm' train --pairs rev.tsv $small --steps 20 --eval-every 10 --log pairs.jsonl \
        -o pairs.tlm > pairs.out 2> pairs.err &&
    grep -q 'encoder-decoder: 1 + 1 layers' pairs.err &&
    grep -q '300 pairs (270 train, 30 held out)' pairs.err &&
    grep -Eq '^exact match on 30 held-out pairs \(greedy\): [0-9.]+% \([0-9]+ right\)$' pairs.out"
check "the log's last line has exact_match in 0..1, the others none" python3 - <<'EOF'
import json
lines = [json.loads(l) for l in open("pairs.jsonl")]
assert [o["step"] for o in lines] == list(range(1, 21)), lines
assert all("exact_match" not in o for o in lines[:-1]), lines
m = lines[-1]["exact_match"]
assert 0 <= m <= 1, m
out = open("pairs.out").read()
percent = float(out.split("): ")[1].split("%")[0])
assert abs(percent - 100 * m) < 0.01, (percent, m)
EOF
check "a run stopped by --time-limit logs and prints its exact match too" sh -c "
    '$tlm' train --pairs rev.tsv $small --steps 1000000 --time-limit 1 --log timed.jsonl \
        -o timed.tlm > timed.out 2> /dev/null &&
    grep -q '^exact match on 30 held-out pairs' timed.out &&
    tail -n 1 timed.jsonl | grep -q '\"exact_match\":'"
check "a CRLF file with blank lines trains the same as the Unix file" sh -c "
    '$tlm' train --pairs rev_crlf.tsv $small --steps 20 --eval-every 10 -o crlf.tlm \
        > crlf.out 2> /dev/null && cmp pairs.tlm crlf.tlm"
check "train --pairs --resume continues the run" sh -c "
    '$tlm' train --pairs rev.tsv $small --steps 30 --eval-every 10 --resume pairs.tlm \
        -o resumed.tlm --beam 2 > resumed.out 2> resumed.err &&
    grep -q 'at step 20' resumed.err &&
    grep -q 'exact match on 30 held-out pairs (beam search)' resumed.out"
bad 1 "train --data --init of an encoder-decoder model" train --data corpus.txt --init pairs.tlm
bad 1 "train --pairs --init of a decoder-only model" train --pairs rev.tsv --init arch.tlm
check "train --pairs --init refuses another --encoder-layers" sh -c "
    ! '$tlm' train --pairs rev.tsv --init pairs.tlm --encoder-layers 2 2> enc.err &&
    grep -q -- '--encoder-layers 2 (the model has 1)' enc.err"

# --- generate on an encoder-decoder model -----------------------------------
tail -n 5 rev.tsv | cut -f 1 > sources.txt
check "generate writes one target per line of stdin" sh -c "
    '$tlm' generate pairs.tlm < sources.txt > targets.txt &&
    test \$(wc -l < targets.txt) -eq 5 &&
    ! grep -q '[^a-h]' targets.txt"
check "generate --beam 1 and --length-penalty 0 give lines too" sh -c "
    '$tlm' generate pairs.tlm --beam 1 < sources.txt > greedy.txt &&
    '$tlm' generate pairs.tlm --beam 3 --length-penalty 0 < sources.txt > beam.txt &&
    test \$(wc -l < greedy.txt) -eq 5 && test \$(wc -l < beam.txt) -eq 5"
check "generate --prompt decodes one source" sh -c "
    '$tlm' generate pairs.tlm --prompt abcd > one.txt && test \$(wc -l < one.txt) -eq 1"
check "--tokens caps the target" sh -c "
    '$tlm' generate pairs.tlm --prompt abcdefgh --tokens 2 > capped.txt &&
    test \$(tr -d '\n' < capped.txt | wc -c) -le 2"
for option in "--temperature 0.5" "--top-k 3" "--seed 2" "--stop x" "--interactive"; do
    bad 2 "generate $option on an encoder-decoder model" generate pairs.tlm -p abc $option
done
bad 2 "generate, two sampling options on an encoder-decoder model: one line" \
    generate pairs.tlm -p abc --temperature 0.5 --top-p 0.9
bad 2 "generate --beam on a decoder-only model" generate arch.tlm -p the --beam 2
bad 2 "generate --length-penalty on a decoder-only model" generate arch.tlm --length-penalty 1
bad 2 "generate, an empty source" generate pairs.tlm -p ''
bad 2 "generate, a source longer than max_context" generate pairs.tlm -p abcdefghabcdefgh
bad 2 "generate --tokens beyond max_context" generate pairs.tlm -p abc --tokens 100
check "an empty line of stdin stops with its line number" sh -c "
    printf 'abc\n\nabd\n' | '$tlm' generate pairs.tlm > partial.txt 2> partial.err;
    test \$? -eq 2 && test \$(wc -l < partial.txt) -eq 1 &&
    grep -q 'line 2 of standard input: the source is empty' partial.err"

finish_checks
