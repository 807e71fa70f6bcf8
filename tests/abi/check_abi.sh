#!/bin/sh
# Compares a built libtlm.so with the recorded ABI baseline.
#   check_abi.sh BASELINE.abi LIBRARY.so HEADERS_DIR
# Passes when the ABI is unchanged or only grew (new functions, new enum
# values); fails when anything a program compiled against the baseline
# relies on was removed or changed. abidiff's exit status is a bit set:
# 1 error, 2 usage error, 4 some ABI change, 8 an incompatible change.
set -u
baseline=$1
library=$2
headers=$3

if [ ! -f "$baseline" ]; then
    echo "check_abi: no baseline at $baseline (record one with"
    echo "scripts/update-abi.sh)"
    exit 1
fi

# abidiff reads the types from DWARF: without it (a build without -g, such
# as --buildtype=release) it compares symbol names only, and would call a
# changed struct or signature "identical". Skipped (77) rather than passed;
# -Ddebug=true gives a release build the debug info the check needs.
if ! readelf -S "$library" | grep -q '\.debug_info'; then
    echo "check_abi: $library has no debug info (configure with"
    echo "-Ddebug=true): only symbol names could be compared; skipped"
    exit 77
fi

# The experimental calls are outside the promise (abi/experimental.suppr,
# next to the baseline).
suppressions=$(dirname "$baseline")/experimental.suppr
report=$(abidiff --headers-dir2 "$headers" --drop-private-types \
    --suppressions "$suppressions" "$baseline" "$library" 2>&1)
status=$?

if [ $((status & 3)) -ne 0 ]; then
    echo "check_abi: abidiff could not compare (status $status):"
    echo "$report"
    exit 1
fi
if [ $((status & 8)) -ne 0 ]; then
    echo "check_abi: INCOMPATIBLE ABI change against $baseline:"
    echo "$report"
    echo
    echo "If this break is intended (allowed while the version is 0.x; from"
    echo "1.0 on it also needs a soname bump), regenerate the baseline with"
    echo "scripts/update-abi.sh and give the reason in the commit message."
    exit 1
fi
if [ $((status & 4)) -ne 0 ]; then
    echo "check_abi: compatible ABI additions (record them with"
    echo "scripts/update-abi.sh when they are final):"
    echo "$report"
else
    echo "check_abi: ABI identical to $baseline"
fi
exit 0
