# The check helpers of the tests/cli scripts (sourced, not run):
#   . "$(dirname "$0")/checks.sh"   (before the script cd's away)
# Each check prints one line, "ok N - what" or "not ok N - what" followed
# by the output that explains it; finish_checks prints the count and
# fails when a check did. bad needs $tlm, the program under test.
failures=0
checks=0

pass() { checks=$((checks + 1)); echo "ok $checks - $1"; }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "not ok $checks - $1"; }

check() { # description command...
    description=$1
    shift
    if "$@" > check.out 2> check.err; then
        pass "$description"
    else
        fail "$description"
        sed 's/^/#   /' check.out check.err
    fi
}

# A refused tlm command: the expected exit status and exactly one line on
# stderr, starting with "tlm".
bad() { # expected-status description arguments...
    expected=$1
    description=$2
    shift 2
    "$tlm" "$@" > bad.out 2> bad.err
    status=$?
    lines=$(wc -l < bad.err)
    if [ "$status" -eq "$expected" ] && [ "$lines" -eq 1 ] && grep -q "^tlm" bad.err; then
        pass "$description: status $status, one line"
    else
        fail "$description: status $status (wanted $expected), $lines lines on stderr"
        sed 's/^/#   /' bad.err
    fi
}

finish_checks() {
    echo "$checks checks, $failures failed"
    [ "$failures" -eq 0 ]
}

# A deterministic text to train on: LINES lines of WORDS_PER_LINE words
# drawn from WORDS by a linear congruential generator started at SEED,
# each line ending in ".". Enough structure for a tiny model to learn.
write_corpus() { # file lines words-per-line seed "words..."
    python3 - "$@" <<'PY'
import sys
path, n_lines, per_line, state, words = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5].split()
lines = []
for i in range(n_lines):
    line = []
    for j in range(per_line):
        state = (state * 1103515245 + 12345) % 2147483648
        line.append(words[state % len(words)])
    lines.append(" ".join(line) + ".")
open(path, "w").write("\n".join(lines) + "\n")
PY
}
