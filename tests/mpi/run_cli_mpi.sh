#!/bin/sh
# tlm train under mpirun, unchanged: run_cli_mpi.sh MPIRUN TLM [mpirun args]
# Two ranks train one model: only rank 0 prints its summary and writes the
# checkpoint and the log, the log has one line per step, and a 2-rank
# resume continues at the saved step. `tlm --version` says it is an MPI
# build.
set -u
mpirun=$1
tlm=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
shift 2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir" || exit 1
python3 - <<'PY'
import random
random.seed(5)
words = "the a cat dog sat on mat and ran far away".split()
text = "\n".join(" ".join(random.choice(words) for _ in range(9)) + "." for _ in range(500))
open("corpus.txt", "w").write(text + "\n")
PY
failures=0
check() { # description command...
    description=$1
    shift
    if "$@"; then echo "ok - $description"; else echo "not ok - $description"; failures=$((failures + 1)); fi
}
tiny="--layers 1 --heads 2 --dim 16 --context 16 --batch 4 --threads 1"
"$mpirun" "$@" "$tlm" train --data corpus.txt $tiny --steps 6 --eval-every 3 \
    --log run.jsonl --out run.tlm > run.out 2> run.err
status=$?
cat run.err
check "tlm train under mpirun -np 2 exits 0" test "$status" -eq 0
check "one summary line (rank 0 only)" test "$(grep -c '^trained to step 6 of 6' run.out)" -eq 1
check "the checkpoint is written" test -s run.tlm
check "no stray temporary files" test -z "$(ls | grep 'tmp-')"
check "one log line per step" test "$(wc -l < run.jsonl)" -eq 6
"$mpirun" "$@" "$tlm" train --data corpus.txt $tiny --steps 8 --eval-every 4 \
    --log run.jsonl --out run.tlm --resume run.tlm > resume.out 2> resume.err
status=$?
check "a 2-rank resume continues at step 6" sh -c \
    "test $status -eq 0 && grep -q 'at step 6' resume.err && test \$(wc -l < run.jsonl) -eq 8"
check "tlm info reads the checkpoint" "$tlm" info run.tlm
# An MPI build says so (MPI is opt-in: -Dmpi=enabled).
"$tlm" --version > version.out
check "tlm --version says the library is +mpi and mpi: yes" sh -c \
    "grep -q '^tlm .* (library [0-9.]*+mpi)\$' version.out && grep -q '^mpi: yes' version.out"
[ "$failures" -eq 0 ]
