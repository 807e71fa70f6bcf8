#!/bin/sh
# Records the ABI of the built shared library as the new baseline,
# abi/libtlm.abi. Run it on purpose only:
# - after compatible additions, to make them part of the promise;
# - for an intended break, in the same commit, with the reason in the
#   commit message (and from 1.0 on, a bump of TLM_VERSION_MAJOR).
# The baseline must come from a gcc build with the default options, as
# the check does: in particular without -Dmpi=enabled (MPI is opt-in), so
# that the baseline's list of needed libraries has no MPI; a build that
# links MPI is refused.
#   scripts/update-abi.sh [BUILD_DIR]   (default: build-test/gcc-release,
#   the test build; a debugoptimized one records an equivalent baseline)
# e.g. meson setup build && sh scripts/update-abi.sh build
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build-test/gcc-release}
meson compile -C "$build" > /dev/null
library=$(find "$build/lib" -maxdepth 1 -type f -name 'libtlm.so.*.*.*' | head -n 1)
[ -n "$library" ] || { echo "update-abi: no libtlm.so in $build/lib" >&2; exit 1; }
if readelf -d "$library" | grep -q 'NEEDED.*libmpi'; then
    echo "update-abi: $library links MPI (configured with -Dmpi=enabled);" \
        "record the baseline from a default build" >&2
    exit 1
fi
if ! readelf -S "$library" | grep -q '\.debug_info'; then
    echo "update-abi: $library has no debug info, so abidw would record no" \
        "types; configure with -Ddebug=true" >&2
    exit 1
fi
abidw --no-corpus-path --no-comp-dir-path --no-show-locs \
    --headers-dir "$top/include" --drop-private-types \
    --suppressions "$top/abi/experimental.suppr" \
    --out-file "$top/abi/libtlm.abi" "$library"
echo "update-abi: wrote abi/libtlm.abi from $library"
