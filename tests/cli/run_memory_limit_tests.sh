#!/bin/sh
# Suites "cli" and "faults": the tlm program refuses a model or batch far
# beyond the machine's memory with the library's estimate, at once, instead
# of running into the OOM killer (issue #21, finding 4).
#   run_memory_limit_tests.sh TLM_PROGRAM
# Each refusal: exit status 1, one line on stderr with "needs ... the limit
# is ...". Every command runs under `timeout 60` so that a regression that
# starts allocating fails rather than hangs; nothing asserts on time.
set -u
case $1 in
    /*) tlm=$1 ;;
    *) tlm=$(pwd)/$1 ;;
esac
. "$(dirname "$0")/checks.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/tlm-memory-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
# Every run of the program under `timeout 60` (bad runs "$tlm").
printf '#!/bin/sh\nexec timeout 60 "%s" "$@"\n' "$tlm" > timed-tlm
chmod +x timed-tlm
tlm=$work/timed-tlm

# 600 lines of short sentences: enough tokens for a context of 1024.
write_corpus corpus.txt 600 8 5 "the cat sat on a mat and the dog ran to the park"

# A refusal: `bad`'s status and one line, and the message's parts.
refused() { # description pattern arguments...
    description=$1
    pattern=$2
    shift 2
    bad 1 "$description" "$@"
    if grep -q "$pattern" bad.err; then
        pass "$description: the message has the estimate"
    else
        fail "$description: the message lacks '$pattern'"
        sed 's/^/#   /' bad.err
    fi
}

refused "train --dim 65536 --layers 96 under the default limit" \
    "^tlm train: tlm_model_create: needs [0-9.]* TiB (weights [0-9.]* TiB, gradients [0-9.]* TiB.*), the limit is " \
    train --data corpus.txt --dim 65536 --layers 96 --threads 1 -o big.tlm
refused "train --context 1024 --batch 65536 under the default limit" \
    "^tlm train: tlm_trainer_create: needs [0-9.]* TiB (weights .*, gradients .*, optimizer .*, activations [0-9.]* TiB.*), the limit is " \
    train --data corpus.txt --context 1024 --batch 65536 --threads 1 -o big.tlm
check "nothing was written" test ! -e big.tlm
refused "train --memory-limit 1M" \
    "needs .* the limit is 1.0 MiB (tlm_context_params.memory_limit)" \
    train --data corpus.txt --layers 2 --dim 32 --context 32 \
    --batch 8 --steps 3 --threads 1 --memory-limit 1M -o small.tlm

tiny="--layers 2 --dim 32 --context 32 --batch 8 --steps 3 --threads 1"
check "train --memory-limit 64M trains" \
    "$tlm" train --data corpus.txt $tiny --memory-limit 64M -o small.tlm
check "train --memory-limit none trains" \
    "$tlm" train --data corpus.txt $tiny --memory-limit none -o small.tlm
refused "generate --memory-limit 1K" \
    "^tlm generate: tlm_session_create: needs .*KV caches and buffers .*the limit is 1.0 KiB" \
    generate small.tlm -n 5 --memory-limit 1K
refused "eval --memory-limit 10K" \
    "^tlm eval: tlm_session_create: needs .*the limit is 10.0 KiB" \
    eval small.tlm --data corpus.txt --memory-limit 10K
check "generate --memory-limit 1G generates" \
    "$tlm" generate small.tlm -n 5 --memory-limit 1G
for value in 0 -1 1X 1KX " 8G" 5.5G "" 99999999999999999999 20000000000T; do
    bad 2 "--memory-limit '$value' is a usage error" \
        train --data corpus.txt $tiny --memory-limit "$value"
done
check "tlm train --help lists --memory-limit" sh -c "'$tlm' train --help | grep -q -- --memory-limit"

finish_checks
