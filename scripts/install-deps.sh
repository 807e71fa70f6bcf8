#!/bin/sh
# Installs the Debian packages tlm needs, if any are missing.
#   scripts/install-deps.sh build   what building the library and the demo needs
#   scripts/install-deps.sh test    that, plus every test suite's tools
# Runs apt-get as root, or through sudo when not root.
set -eu

build_packages="gcc libc6-dev meson ninja-build pkg-config fortunes fortunes-min"
# libopenblas-dev: the reference of the GEMM benchmark (tests/bench) only.
test_packages="$build_packages g++ libcmocka-dev abigail-tools binutils doxygen
  valgrind clang libclang-rt-dev python3 python3-venv python3-wheel
  python3-numpy libopenblas-dev
  libopenmpi-dev openmpi-bin unicode-data cmake"
# libopenmpi-dev, openmpi-bin: the data-parallel build and its suite "mpi".
# cmake: suite "install" builds a CMake consumer against the installed tlm.
# python3-venv, python3-wheel, python3-numpy: suite "bindings" pip installs
# bindings/python offline into a fresh venv of Debian's python3 (the venv's
# setuptools builds the wheel with Debian's wheel) and runs docs/python.md's
# example, numpy included (tests/python/test_venv_install.sh).
# unicode-data: the Unicode Character Database that
# scripts/gen_unicode_tables.py reads to regenerate lib/text/unicode_tables.c
# (the build uses the committed file).
# cmark-gfm: GitHub's markdown renderer; suite "docs" checks that each guide
# reads the same in the HTML reference as on GitHub (tests/docs/check_rendering.py).
test_packages="$test_packages cmark-gfm"
# On x86-64, the NEON kernels are built with Debian's cross compiler and
# tested under qemu's user-mode emulation (cross/aarch64-linux-gnu.ini),
# with CMocka from the arm64 architecture (added to dpkg below).
if [ "$(dpkg --print-architecture)" = amd64 ]; then
    test_packages="$test_packages gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  qemu-user libcmocka-dev:arm64"
fi

case ${1:-build} in
    build) wanted=$build_packages ;;
    test) wanted=$test_packages ;;
    *) echo "usage: $0 build|test" >&2; exit 2 ;;
esac

missing=""
for package in $wanted; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null \
            | grep -q 'install ok installed'; then
        missing="$missing $package"
    fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing$missing"
if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo > /dev/null 2>&1; then
    as_root="sudo"
else
    echo "install-deps: need root (or sudo) to install:$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
case $missing in
    *:arm64*)
        if ! dpkg --print-foreign-architectures | grep -qx arm64; then
            echo "install-deps: adding the arm64 architecture to dpkg"
            $as_root dpkg --add-architecture arm64
        fi ;;
esac
$as_root apt-get update -q
# shellcheck disable=SC2086
$as_root apt-get install -y -q --no-install-recommends $missing
