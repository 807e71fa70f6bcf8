#!/bin/sh
# Runs libFuzzer targets for a bounded time.
#
#   run_fuzz.sh TARGET SECONDS SEED_CORPUS WORK_DIR [REGRESSIONS_DIR]
#       one target (suite "fuzz" runs each this way for fuzz_seconds).
#   run_fuzz.sh --all BUILD_DIR [SECONDS]
#       every target built in BUILD_DIR (a fuzz build: CC=clang, option
#       fuzz enabled), one after another, SECONDS each (default 600: ten
#       minutes), each from its seed corpus tests/fuzz/corpus/<target>/ and
#       its regressions; prints one line per target (executions, covered
#       edges, result) and fails when any target failed. The logs are
#       BUILD_DIR/tests/fuzz/work/<target>.log (docs/reliability.md).
#
# New inputs go to WORK_DIR (in the build tree), never into the committed
# seed corpus; a crash leaves its input in WORK_DIR as crash-* and fails
# the run. libFuzzer's final statistics (number of executions, ...) go to
# the log.
set -eu
if [ "${1:-}" = "--all" ]; then
    build=${2:?usage: run_fuzz.sh --all BUILD_DIR [SECONDS]}
    seconds=${3:-600}
    here=$(cd "$(dirname "$0")" && pwd)
    failed=0
    found=0
    for exe in "$build"/tests/fuzz/fuzz_*; do
        [ -x "$exe" ] && [ -f "$exe" ] || continue
        found=1
        name=${exe##*/fuzz_}
        work="$build/tests/fuzz/work/$name"
        log="$build/tests/fuzz/work/$name.log"
        mkdir -p "$work"
        if ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
           UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
           sh "$0" "$exe" "$seconds" "$here/corpus/$name" "$work" \
               "$here/regressions/$name" > "$log" 2>&1; then
            result=ok
        else
            result="FAILED (see $log)"
            failed=1
        fi
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
        echo "$name: ${runs:-?} executions, ${cov:-cov: ?} edges, $result"
    done
    if [ "$found" = 0 ]; then
        echo "run_fuzz.sh: no fuzz_* targets in $build/tests/fuzz (configure with CC=clang -Dfuzz=enabled)" >&2
        exit 2
    fi
    exit "$failed"
fi
target=$1
seconds=$2
corpus=$3
work=$4
mkdir -p "$work"
shift 4
exec "$target" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/" "$work" "$corpus" "$@"
