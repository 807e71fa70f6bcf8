#!/bin/sh
# Suites "cli" and "faults": what the tlm program reads, and the numbers it
# accepts (issue #21, findings 3 and 10; docs/reliability.md "Inputs").
#   run_input_tests.sh TLM_PROGRAM
# Bounded input: a device (/dev/zero), a FIFO, a file one byte above a
# lowered --max-input-size and a line of standard input above it are
# refused with one line naming the file and what is wrong, as --data of
# train and eval, as plot's log and as generate -i's input; each command
# runs under `timeout 60` so that a reader that never stops fails the check
# instead of hanging the suite (nothing asserts on time). Strict numbers:
# white space before or after, hexadecimal, inf and nan, values that
# underflow to 0 or overflow, --lr 0 and --time-limit 0 are refused with a
# message saying why and what is accepted; the same rules hold for the
# numbers of a training log and for mpirun's process count. Empty values:
# an empty file name, format or name (and an empty MODEL or LOG argument)
# is refused at once with status 2, naming the flag.
set -u
case $1 in
    /*) tlm=$1 ;;
    *) tlm=$(pwd)/$1 ;;
esac
. "$(dirname "$0")/checks.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/tlm-input-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

# A refused command, standard input from a file: the status, one line on
# stderr starting with "tlm", and `pattern` in it (so that a refusal for
# another reason does not pass).
refused_input() { # input status pattern description arguments...
    input=$1
    expected=$2
    pattern=$3
    description=$4
    shift 4
    timeout 60 "$tlm" "$@" < "$input" > refused.out 2> refused.err
    status=$?
    lines=$(wc -l < refused.err)
    if [ "$status" -eq "$expected" ] && [ "$lines" -eq 1 ] && grep -q "^tlm" refused.err &&
        grep -q -- "$pattern" refused.err; then
        pass "$description: status $status, '$pattern'"
    else
        fail "$description: status $status (wanted $expected), $lines lines on stderr, wanted '$pattern'"
        sed 's/^/#   /' refused.err | head -5
    fi
}

# The same with nothing on standard input.
refused() { # status pattern description arguments...
    refused_input /dev/null "$@"
}

write_corpus corpus.txt 200 6 5 "the cat sat on a mat and the dog ran to the park"
size=$(wc -c < corpus.txt)
tiny="--layers 1 --heads 2 --dim 16 --context 16 --batch 2 --threads 1"
check "a tiny model to read with" "$tlm" train --data corpus.txt $tiny --steps 2 \
    --log train.jsonl -o model.tlm
log_size=$(wc -c < train.jsonl)
mkfifo fifo

# --- bounded input: devices, FIFOs, limits (finding 3) ----------------------
refused 1 "character device" "train, /dev/zero as --data" train --data /dev/zero $tiny --steps 1 -o never.tlm
refused 1 "character device" "plot, /dev/zero as the log" plot /dev/zero -o never.svg
refused 1 "character device" "eval, /dev/zero as --data" eval model.tlm --data /dev/zero
refused 1 "character device" "demo, /dev/zero as --corpus" demo --corpus /dev/zero --out-dir never --seconds 1
refused 1 "FIFO" "train, a FIFO as --data" train --data fifo $tiny --steps 1 -o never.tlm
refused 1 "FIFO" "plot, a FIFO as the log" plot fifo -o never.svg
refused 1 "FIFO" "eval, a FIFO as --data" eval model.tlm --data fifo
refused 1 "more than the limit of $((size - 1)) bytes" "train, --data one byte above --max-input-size" \
    train --data corpus.txt --max-input-size $((size - 1)) $tiny --steps 1 -o never.tlm
check "train, --data exactly at --max-input-size" "$tlm" train --data corpus.txt \
    --max-input-size "$size" $tiny --steps 1 -o limit.tlm
refused 1 "more than the limit" "eval, --data one byte above --max-input-size" \
    eval model.tlm --data corpus.txt --max-input-size=$((size - 1))
refused 1 "more than the limit of $((log_size - 1)) bytes" "plot, a log one byte above --max-input-size" \
    plot train.jsonl -o never.svg --max-input-size $((log_size - 1))
check "plot, a log exactly at --max-input-size" "$tlm" plot train.jsonl -o limit.svg \
    --max-input-size "$log_size"
check "--max-input-size takes K, M, G, T suffixes" "$tlm" plot train.jsonl -o suffix.svg \
    --max-input-size 1Mi
printf 'the cat sat on the mat\n' > long_line.txt
refused_input long_line.txt 1 "longer than the limit of 8 bytes" "generate -i, a line above --max-input-size" \
    generate model.tlm -i -n 2 --max-input-size 8
refused_input /dev/zero 1 "NUL byte" "generate -i, /dev/zero as standard input" generate model.tlm -i -n 2
head -c 3000000 /dev/zero | tr '\0' 'a' > no_newline.txt
refused_input no_newline.txt 1 "longer than the limit of 1048576 bytes" \
    "generate -i, a line without end above the default limit" generate model.tlm -i -n 2
refused 2 "white space" "--max-input-size with a space" plot train.jsonl -o x.svg --max-input-size " 1K"
refused 2 "out of range" "--max-input-size 0" plot train.jsonl -o x.svg --max-input-size 0
refused 2 "not a valid value" "--max-input-size 1X" plot train.jsonl -o x.svg --max-input-size 1X
refused 2 "too large" "--max-input-size beyond 2^62" plot train.jsonl -o x.svg --max-input-size 8388608T

# --- strict numbers (finding 10) --------------------------------------------
for value in " 5" "5 " "	5" "5
"; do
    refused 2 "white space" "--steps '$value'" train --data corpus.txt --steps "$value"
done
refused 2 "white space" "--lr ' 3e-4'" train --data corpus.txt --lr " 3e-4"
refused 2 "white space" "--lr '3e-4 '" train --data corpus.txt --lr "3e-4 "
refused 2 "white space" "--seed ' 7'" train --data corpus.txt --seed " 7"
refused 2 "white space" "--temperature ' 0.5'" generate model.tlm --temperature " 0.5"
refused 2 "hexadecimal" "--lr 0x10" train --data corpus.txt --lr 0x10
refused 2 "hexadecimal" "--lr 0x1p-3 (a hexadecimal float in range)" train --data corpus.txt --lr 0x1p-3
refused 2 "hexadecimal" "--dropout 0x0.1p0" train --data corpus.txt --dropout 0x0.1p0
refused 2 "hexadecimal" "--steps 0x10" train --data corpus.txt --steps 0x10
for value in inf -inf nan NaN infinity; do
    refused 2 "not a finite number" "--lr $value" train --data corpus.txt --lr "$value"
done
refused 2 "underflows to 0" "--lr 1e-50" train --data corpus.txt --lr 1e-50
refused 2 "underflows to 0" "--lr 1e-400 (below a double)" train --data corpus.txt --lr 1e-400
refused 2 "underflows to 0" "--time-limit 1e-45" train --data corpus.txt --time-limit 1e-45
refused 2 "too large" "--lr 1e999" train --data corpus.txt --lr 1e999
refused 2 "too large" "--steps 99999999999999999999" train --data corpus.txt --steps 99999999999999999999
refused 2 "too large" "--seed 99999999999999999999" train --data corpus.txt --seed 99999999999999999999
refused 2 "out of range" "--seed -1" train --data corpus.txt --seed -1
refused 2 "out of range" "--steps 0" train --data corpus.txt --steps 0
refused 2 "expected a whole number in 1..2000000000" "--steps 1e3" train --data corpus.txt --steps 1e3
refused 2 "expected a decimal number in 0..10" "--lr 1.5.2" train --data corpus.txt --lr 1.5.2
refused 2 "the value is empty" "--lr ''" train --data corpus.txt --lr ""
refused 2 "trains nothing" "--lr 0" train --data corpus.txt --lr 0
refused 2 "not a time limit" "--time-limit 0" train --data corpus.txt --time-limit 0
refused 2 "white space" "--layer ' 0'" attention model.tlm --prompt the --layer " 0" -o never.svg
check "plain decimals are accepted (3e-3, .5e-2, +2, 1E-3)" "$tlm" train --data corpus.txt $tiny \
    --steps +2 --lr .5e-2 --min-lr 1E-3 --time-limit 600 -o numbers.tlm

# A log's numbers follow JSON: 0x10 is not a step.
printf '{"step":0x10,"loss":1.5}\n' > hex.jsonl
refused 1 "not a training log entry" "plot, a hexadecimal step in the log" plot hex.jsonl -o never.svg
# A NUL byte in a log is damage, not its end (the lines after it were
# silently dropped).
{ head -n 1 train.jsonl; printf '\0\n'; tail -n 1 train.jsonl; } > nul.jsonl
refused 1 "line 2 holds a NUL byte" "plot, a log with a NUL byte" plot nul.jsonl -o never.svg
# mpirun's process count is a number too (tlm built with or without MPI).
refused_env() {
    OMPI_COMM_WORLD_SIZE=$1
    export OMPI_COMM_WORLD_SIZE
    refused 1 "OMPI_COMM_WORLD_SIZE" "$2" train --data corpus.txt $tiny --steps 1 -o never.tlm
    unset OMPI_COMM_WORLD_SIZE
}
refused_env abc "train, OMPI_COMM_WORLD_SIZE=abc"
refused_env " 2" "train, OMPI_COMM_WORLD_SIZE=' 2'"
# --- empty values --------------------------------------------------------------
# An empty file name, format or name is refused at once, naming the flag
# (status 2), instead of failing later without it: `train --out ''` used to
# train for the whole run and then fail in the library with "path is empty".
empty_value() { # flag command arguments... (the flag's empty value last)
    flag=$1
    shift
    refused 2 "$flag: the value is empty" "$1 $flag ''" "$@" ""
}
empty_value --out train --data corpus.txt $tiny --steps 1 --out
empty_value --out train --data corpus.txt $tiny --steps 1 -o
empty_value --data train $tiny --steps 1 -o never.tlm --data
empty_value --log train --data corpus.txt $tiny --steps 1 -o never.tlm --log
empty_value --resume train --data corpus.txt $tiny --steps 1 -o never.tlm --resume
empty_value --init train --data corpus.txt $tiny --steps 1 -o never.tlm --init
empty_value --tokenizer train --data corpus.txt $tiny --steps 1 -o never.tlm --tokenizer
empty_value --arch train --data corpus.txt $tiny --steps 1 -o never.tlm --arch
empty_value --data eval model.tlm --data
empty_value --stop generate model.tlm -n 2 --stop
empty_value --output plot train.jsonl -o
empty_value --output attention model.tlm --prompt the -o
empty_value --prompt attention model.tlm -o never.svg --prompt
empty_value --out export model.tlm --format tlm -o
empty_value --format export model.tlm -o never.tlm --format
empty_value --safetensors export model.tlm --safetensors
empty_value --tokenizer-out export model.tlm --format llama2c -o never.bin --tokenizer-out
empty_value --dtype export model.tlm --format tlm -o never.tlm --dtype
empty_value --out import model.tlm --out
empty_value --format import model.tlm -o never.tlm --format
empty_value --config import model.tlm -o never.tlm --config
empty_value --tokenizer-from import model.tlm -o never.tlm --tokenizer-from
empty_value --to quantize model.tlm -o never.tlm --to
empty_value --out quantize model.tlm --to bf16 -o
empty_value --corpus demo --out-dir never --seconds 1 --corpus
empty_value --out-dir demo --seconds 1 --out-dir
# A --out-dir whose files' names would not fit: refused before anything is
# made (the names used to be cut, and the files written under other names).
long_dir=$(python3 -c 'print("./" * 2044 + "dd")')
refused 2 "--out-dir: the directory's name is 4090 bytes long" "demo, an --out-dir too long for its files" \
    demo --corpus corpus.txt --seconds 1 --out-dir "$long_dir"
[ ! -e dd ] && pass "nothing made for a refused --out-dir" || fail "'dd' was made for a refused --out-dir"
refused 2 "--prompt: the value is empty, and the model's tokenizer" "generate -p '' (a char model: nothing to start from)" \
    generate model.tlm -n 2 -p ""
for command in info generate eval export import quantize attention plot; do
    refused 2 "argument is empty" "$command ''" "$command" ""
done
check "nothing was written by a refused command" sh -c '! ls never* 2> /dev/null | grep -q .'

finish_checks
