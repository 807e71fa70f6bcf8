#!/bin/sh
# Suite "cli": the command line alone learns string reversal
# (issue #20, "What it must show"): scripts/make-reversal-pairs.py writes
# the pairs, tlm train --pairs trains an encoder-decoder model on 90% of
# them and checks the other 10% (strings it never saw) by greedy decoding,
# and tlm generate decodes those sources again by beam search. Both must
# reach >= 99% exact match; the check reads the numbers, so a weaker model
# fails it. docs/seq2seq.md, "From the command line", gives the run.
#   run_reversal_cli.sh TLM_PROGRAM SCRIPTS_DIR
set -u
case $1 in
    /*) tlm=$1 ;;
    *) tlm=$(pwd)/$1 ;;
esac
scripts=$(cd "$2" && pwd)
. "$(dirname "$0")/checks.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/tlm-reversal-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

python3 "$scripts/make-reversal-pairs.py" --pairs 3000 --seed 1 -o reverse.tsv
check "train --pairs on the reversal task" "$tlm" train --pairs reverse.tsv \
    --dim 32 --heads 2 --ffn 64 --steps 300 --batch 32 --lr 6e-3 --min-lr 1e-4 \
    --warmup 30 --weight-decay 0 --threads 1 --seed 1 --log reverse.jsonl \
    -o reverse.tlm
check "its held-out exact match (greedy) is at least 99%" python3 - <<'EOF'
import json
last = [json.loads(l) for l in open("reverse.jsonl")][-1]
print("exact match", last["exact_match"])
assert last["exact_match"] >= 0.99, last
EOF
# The held-out part is the last 10% of the lines.
tail -n 300 reverse.tsv > held_out.tsv
cut -f 1 held_out.tsv > sources.txt
check "tlm generate (beam 4) reverses at least 99% of the held-out sources" sh -c "
    '$tlm' generate reverse.tlm --beam 4 --threads 1 < sources.txt > targets.txt &&
    cut -f 2 held_out.tsv | paste - targets.txt | python3 -c '
import sys
rows = [l.rstrip(\"\\n\").split(\"\\t\") for l in sys.stdin]
right = sum(1 for want, got in rows if want == got)
print(right, \"of\", len(rows))
assert len(rows) == 300 and right >= 0.99 * len(rows), right
'"

finish_checks
