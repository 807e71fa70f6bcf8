#!/bin/sh
# Runs an aarch64 Linux program on another architecture with qemu's user
# mode emulation, against Debian's arm64 cross libraries (libc6-arm64-cross)
# and arm64 packages (libcmocka0:arm64). The exe_wrapper of
# cross/aarch64-linux-gnu.ini. Correctness only: qemu says nothing of speed.
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu
export LD_LIBRARY_PATH=/usr/lib/aarch64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
exec qemu-aarch64 "$@"
