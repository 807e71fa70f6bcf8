#!/bin/sh
# Runs one libFuzzer target for a bounded time (suite "fuzz"):
#   run_fuzz.sh TARGET SECONDS SEED_CORPUS WORK_DIR [REGRESSIONS_DIR]
# New inputs go to WORK_DIR (in the build tree), never into the committed
# seed corpus; a crash leaves its input in WORK_DIR as crash-* and fails
# the test. libFuzzer's final statistics (number of executions, ...) go to
# the test log.
set -eu
target=$1
seconds=$2
corpus=$3
work=$4
mkdir -p "$work"
shift 4
exec "$target" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/" "$work" "$corpus" "$@"
