#!/bin/sh
# The README's first command: installs what the build needs (the fortunes
# packages too: the demo's corpus), builds tlm in
# build/ (optimised), and runs the main job, `tlm demo`.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

sh scripts/install-deps.sh build
if [ ! -f build/build.ninja ]; then
    meson setup build --buildtype=release -Dtests=false
fi
meson compile -C build
exec build/examples/tlm demo "$@"
