#!/bin/sh
# Records the ABI of the built shared library as the new baseline,
# abi/libtlm.abi. Run it on purpose only:
# - after compatible additions, to make them part of the promise;
# - for an intended break, in the same commit, with the reason in the
#   commit message (and from 1.0 on, a bump of TLM_VERSION_MAJOR).
# The baseline must come from the default gcc build, as the check does.
#   scripts/update-abi.sh [BUILD_DIR]   (default: build-test/gcc, the test build)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build-test/gcc}
meson compile -C "$build" > /dev/null
library=$(find "$build/lib" -maxdepth 1 -type f -name 'libtlm.so.*.*.*' | head -n 1)
[ -n "$library" ] || { echo "update-abi: no libtlm.so in $build/lib" >&2; exit 1; }
abidw --no-corpus-path --no-comp-dir-path --no-show-locs \
    --headers-dir "$top/include" --drop-private-types \
    --suppressions "$top/abi/experimental.suppr" \
    --out-file "$top/abi/libtlm.abi" "$library"
echo "update-abi: wrote abi/libtlm.abi from $library"
