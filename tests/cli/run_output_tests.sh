#!/bin/sh
# Suites "cli" and "faults": where and how the tlm program writes files
# (issue #21, findings 1, 2 and 6).
#   run_output_tests.sh TLM_PROGRAM
# - Inputs are never outputs: every command refuses an output that is the
#   same file as one of its inputs (same path, another spelling, a hard or
#   symbolic link) or as another output, with status 2 and one line
#   naming both; the input is left as it was.
# - Only regular files are replaced: a directory, a socket or a link to
#   /dev/full as an output is refused, naming what it is.
# - Write errors are never lost: a write that fails (here: a file size
#   limit, ulimit -f, with SIGXFSZ ignored so that write() returns EFBIG)
#   makes the command fail, and the file it would have replaced keeps its
#   old contents (SVGs and the training log are written to a temporary
#   file renamed into place); output to a full standard output fails.
# Needs no root: /dev/full is only reached through a link or a shell
# redirection, which never replace it, even on a build without the checks.
# Prints one line per check; exits 1 if any failed.
set -u
case $1 in
    /*) tlm=$1 ;;
    *) tlm=$(pwd)/$1 ;;
esac
. "$(dirname "$0")/checks.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/tlm-output-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

write_corpus d.txt 300 8 7 "the cat sat on a mat and the dog ran to the park while birds sang"
small="--layers 1 --heads 2 --dim 16 --context 16 --batch 4 --threads 1"
check "train a small model with a log" "$tlm" train --data d.txt $small --steps 4 \
    --eval-every 2 -o m.tlm --log log.jsonl
check "export it as safetensors" "$tlm" export m.tlm --safetensors m.safetensors

# The same refusal for every command: status 2, one line naming the output
# and the input, and the input unchanged (compared with a copy).
same() { # description input-to-compare arguments...
    description=$1
    input=$2
    shift 2
    cp "$input" before.copy
    bad 2 "$description" "$@"
    if grep -q "same file" bad.err && cmp -s "$input" before.copy; then
        pass "$description: says so, '$input' unchanged"
    else
        fail "$description: message or '$input' changed"
        sed 's/^/#   /' bad.err
    fi
}
ln d.txt hard.txt
ln -s m.tlm link.tlm
same "train --data d.txt -o d.txt" d.txt train --data d.txt -o d.txt $small --steps 2
same "train --data d.txt --log d.txt" d.txt train --data d.txt --log d.txt $small --steps 2
same "train -o a hard link of --data" d.txt train --data d.txt -o ./hard.txt $small --steps 2
same "train --init m.tlm -o m.tlm" m.tlm train --data d.txt --init m.tlm -o m.tlm --steps 2
same "train --resume m.tlm --log m.tlm" m.tlm train --data d.txt --resume m.tlm --log m.tlm --steps 8
same "export m.tlm --safetensors m.tlm" m.tlm export m.tlm --safetensors m.tlm
same "export m.tlm --format tlm -o a link to it" m.tlm export m.tlm --format tlm -o link.tlm
same "import S --out S" m.safetensors import m.safetensors --out m.safetensors
same "import --tokenizer-from m.tlm -o m.tlm" m.tlm import m.safetensors --tokenizer-from m.tlm -o m.tlm
same "quantize m.tlm -o ./m.tlm" m.tlm quantize m.tlm --to int8 -o ./m.tlm
same "plot L -o L" log.jsonl plot log.jsonl -o log.jsonl
same "attention m.tlm -o m.tlm" m.tlm attention m.tlm --prompt "the cat" -o m.tlm
bad 2 "train --log X -o X" train --data d.txt --log X -o X $small --steps 2
if grep -q "outputs 'X' (-o) and 'X' (--log) are the same file" bad.err && [ ! -e X ]; then
    pass "train --log X -o X: says so, writes nothing"
else
    fail "train --log X -o X: message or a file written"
    sed 's/^/#   /' bad.err
fi
# Continuing a checkpoint into itself is the normal use of --resume.
check "train --resume m.tlm -o m.tlm is allowed" "$tlm" train --data d.txt --resume m.tlm \
    -o m.tlm --steps 6 --threads 1 --log log.jsonl
lines=$(wc -l < log.jsonl)
if [ "$lines" -eq 6 ]; then
    pass "--resume appends to the log (6 lines)"
else
    fail "--resume appends to the log: $lines lines, wanted 6"
fi

# Only regular files are replaced.
refused() { # description what-the-message-says path-that-must-stay arguments...
    description=$1
    kind=$2
    keep=$3
    shift 3
    ls -ld "$keep" > kind.before
    bad 1 "$description" "$@"
    ls -ld "$keep" > kind.after
    if grep -q "$kind" bad.err && cmp -s kind.before kind.after; then
        pass "$description: says '$kind', '$keep' left as it was"
    else
        fail "$description: message or '$keep' changed"
        sed 's/^/#   /' bad.err kind.before kind.after
    fi
}
mkdir folder
ln -s /dev/full full.svg
python3 -c "import socket; s = socket.socket(socket.AF_UNIX); s.bind('sock')"
refused "plot -o a directory" "a directory" folder plot log.jsonl -o folder
refused "plot -o a socket" "a socket" sock plot log.jsonl -o sock
refused "plot -o a link to /dev/full" "character device" full.svg plot log.jsonl -o full.svg
refused "attention -o a link to /dev/full" "character device" full.svg \
    attention m.tlm --prompt "the cat" -o full.svg
refused "train --log a link to /dev/full" "character device" full.svg \
    train --data d.txt $small --steps 2 -o m2.tlm --log full.svg
refused "export -o a link to /dev/full" "character device" full.svg \
    export m.tlm --format tlm -o full.svg
refused "export --tokenizer-out a link to /dev/full" "character device" full.svg \
    export m.tlm --format llama2c -o x.bin --tokenizer-out full.svg
[ ! -e x.bin ] && pass "nothing exported when --tokenizer-out is refused" ||
    fail "a model was exported although --tokenizer-out was refused"
[ ! -e m2.tlm ] && pass "nothing trained when the log is refused" ||
    fail "a model was written although the log was refused"

# export stages --tokenizer-out under a name nobody uses, and removes only
# that: a file of the user's beside it stays (it used to be the fixed
# name '<file>.partial', removed when the export failed).
echo "the user's" > tok.bin.partial
bad 1 "export --tokenizer-out of a model without a SentencePiece tokenizer" \
    export m.tlm --format llama2c -o never.bin --tokenizer-out tok.bin
if [ "$(cat tok.bin.partial)" = "the user's" ] && [ -z "$(ls | grep '^tok\.bin\.tmp-')" ]; then
    pass "a failed export leaves tok.bin.partial as it was and no staged file"
else
    fail "a failed export removed or changed tok.bin.partial, or left a staged file"
fi

# Symbolic links are written through; permissions are kept.
echo old > target.svg
chmod 640 target.svg
ln -s target.svg pointer.svg
check "plot -o a link" "$tlm" plot log.jsonl -o pointer.svg
if [ -L pointer.svg ] && grep -q "<svg" target.svg &&
   [ "$(ls -l target.svg | cut -c1-10)" = "-rw-r-----" ]; then
    pass "the link stays, its target is the SVG, mode 0640 kept"
else
    fail "plot -o a link: $(ls -l pointer.svg target.svg)"
fi

# Write errors: a file size limit makes write() fail (EFBIG); the old file
# must keep its contents and no temporary file may stay.
limited() { # description file-to-keep arguments...
    description=$1
    keep=$2
    shift 2
    echo "old contents" > "$keep"
    (ulimit -f 2; trap '' XFSZ; exec "$tlm" "$@") > limited.out 2> limited.err
    status=$?
    if [ "$status" -ne 0 ] && [ "$(cat "$keep")" = "old contents" ] &&
       grep -q "writing '$keep' failed" limited.err &&
       [ -z "$(ls | grep '\.tmp-')" ]; then
        pass "$description: status $status, '$keep' kept, no temporary left"
    else
        fail "$description: status $status, '$keep' now $(wc -c < "$keep") bytes"
        sed 's/^/#   /' limited.err
        ls | sed 's/^/#   /'
    fi
}
limited "plot over a file that cannot be written" old.svg plot log.jsonl -o old.svg
limited "attention over a file that cannot be written" old.svg \
    attention m.tlm --prompt "the cat sat on the mat" -o old.svg
limited "train --log over a file that cannot be written" old.jsonl \
    train --data d.txt $small --steps 300 --eval-every 300 -o m3.tlm --log old.jsonl

# The standard output: a command whose output cannot be written fails.
"$tlm" version > /dev/full 2> full.err
status=$?
if [ "$status" -eq 1 ] && grep -q "standard output" full.err; then
    pass "version > /dev/full: status 1, says so"
else
    fail "version > /dev/full: status $status"
    sed 's/^/#   /' full.err
fi
"$tlm" info m.tlm > /dev/full 2> full.err
status=$?
[ "$status" -eq 1 ] && pass "info > /dev/full: status 1" ||
    fail "info > /dev/full: status $status"

finish_checks
