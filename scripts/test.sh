#!/bin/sh
# The README's second command, and what CI runs: every test suite.
#  1. gcc release build with the default options (so no MPI: MPI is
#     opt-in), warnings as errors: -O3 and -DNDEBUG as
#     `--buildtype=release` compiles (so a release build stays
#     warning-free: gcc's -Wmaybe-uninitialized, -Wformat-truncation and
#     the like depend on the optimizer's inlining, NDEBUG on what assert()
#     used), plus -g for valgrind's stacks and the ABI check; all suites
#     (api, headers, abi against the baseline, install: also that
#     libtlm.so and tlm.pc have no trace of MPI, docs), then the test
#     programs again under valgrind memcheck (the tests that fail there
#     once more with --track-origins=yes, for the log);
#  1b. a small gcc -O2 build (debugoptimized, asserts on) with
#     -Dmpi=enabled that builds and runs only suites mpi (2 ranks under
#     mpirun) and install (tlm.pc carries MPI);
#  2. clang build with AddressSanitizer + UndefinedBehaviorSanitizer,
#     warnings as errors, asserts on: the test programs again, and the
#     Python binding with the sanitizer runtime preloaded; built without
#     MPI (-Dmpi=disabled: OpenMPI's allocations and shared memory make
#     ASan and TSan report what is not tlm's), which also tests that build;
#  3. clang fuzz build (libFuzzer + ASan + UBSan): suite fuzz, each target
#     for 10 s, two at a time;
#  4. clang build with ThreadSanitizer: suite faults (the shared-model
#     thread test and the other cheap fault tests; not the slow ones);
#  5. on x86-64: an aarch64 cross build (Debian's cross gcc) of the library
#     and of what suites kernels and api run, which run under qemu-aarch64,
#     so the NEON kernels are tested too (tests that start threads are left
#     out: qemu-user hangs there), and the NEON templates' one-translation-
#     unit check. The other test programs, the same C on either
#     architecture, are compiled with -Werror by steps 1 and 2.
# Build trees live in build-test/. Exits non-zero if anything failed.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

start=$(date +%s)
sh scripts/install-deps.sh test || exit 1

failed=0
failed_steps=0
# Logs of an earlier run must not stand in for a run that did not happen.
rm -f build-test/*.testlog.json
step() { # with the elapsed seconds, to see where CI's time goes
    echo
    echo "=== [$(($(date +%s) - start))s] $*"
}

configure() { # DIR [meson setup options...]
    dir=$1
    shift
    if [ -f "$dir/build.ninja" ]; then
        meson setup --reconfigure "$dir" "$@" > "$dir.setup.log" 2>&1
    else
        mkdir -p "$(dirname "$dir")"
        meson setup "$dir" "$@" > "$dir.setup.log" 2>&1
    fi || { cat "$dir.setup.log"; return 1; }
}

run_tests() { # like run, for meson test: its failures are in its log
    description=$1
    shift
    step "$description"
    if ! "$@"; then
        echo "FAILED: $description"
        failed=1
    fi
}

build_for_suites() { # DIR SUITE... [--no-suite SUITE...]: only what they run
    dir=$1
    shift
    targets=$(python3 scripts/suite-targets.py "$dir" "$@") || return 1
    # shellcheck disable=SC2086
    ninja -C "$dir" $targets
}

run() { # describe, then command; records failure and continues
    description=$1
    shift
    step "$description"
    if ! "$@"; then
        echo "FAILED: $description"
        failed=1
        failed_steps=$((failed_steps + 1))
    fi
}

gcc_dir=build-test/gcc-release
mpi_dir=build-test/gcc-mpi
san_dir=build-test/clang-sanitize
fuzz_dir=build-test/fuzz
tsan_dir=build-test/clang-tsan

# What --buildtype=release compiles with (-O3 -DNDEBUG) and -g, which
# changes neither the code nor any warning. Spelled as its three options:
# meson 1.0 drops -Ddebug=true given with --buildtype=release, and ignores
# a b_ndebug given to --reconfigure a tree made without it (hence also a
# tree of its own, not the debugoptimized build-test/gcc of older runs).
# lib/ has three assert()s (workspace sizes and formats in
# lib/kernels/*_parallel.c); steps 1b, 2, 4 and 5 keep them.
step "configure: gcc release (-O3 -g -DNDEBUG), -Werror, docs, ABI check"
if CC=gcc CXX=g++ configure "$gcc_dir" -Doptimization=3 -Ddebug=true \
        -Db_ndebug=true -Dwerror=true -Ddocs=true -Dabi_check=enabled; then
    run "build: gcc release" meson compile -C "$gcc_dir"
    run_tests "test: gcc, all suites" \
        meson test -C "$gcc_dir" --no-rebuild --print-errorlogs
    cp "$gcc_dir/meson-logs/testlog.json" build-test/gcc.testlog.json 2>/dev/null
    step "test: gcc, test programs under valgrind"
    if ! meson test -C "$gcc_dir" --no-rebuild --print-errorlogs --setup valgrind; then
        echo "FAILED: test: gcc, test programs under valgrind"
        failed=1
        # The setup runs memcheck without --track-origins (about 6%
        # faster): a report says that a value was uninitialised, not where
        # it came from. The failed tests again with it, for the log (their
        # failures are counted from the first run).
        valgrind_failed=$(python3 scripts/summarize-tests.py --failed-names \
            "$gcc_dir/meson-logs/testlog-valgrind.json")
        if [ -n "$valgrind_failed" ]; then
            step "rerun: the tests that failed under valgrind, with --track-origins=yes"
            # shellcheck disable=SC2086
            meson test -C "$gcc_dir" --no-rebuild --print-errorlogs \
                --setup valgrind_origins $valgrind_failed
        fi
    fi
    cp "$gcc_dir/meson-logs/testlog-valgrind.json" build-test/valgrind.testlog.json 2>/dev/null
else
    echo "FAILED: configure gcc"
    failed=1
    failed_steps=$((failed_steps + 1))
fi

# MPI is opt-in (-Dmpi=enabled), so the default build above has none; this
# build exists for suite mpi and builds only what suites mpi and install
# need (install-deps.sh test installs libopenmpi-dev and openmpi-bin).
step "configure: gcc, -Werror, -Dmpi=enabled (suites mpi and install only)"
if CC=gcc CXX=g++ configure "$mpi_dir" --buildtype=debugoptimized \
        -Dwerror=true -Dmpi=enabled -Ddocs=false -Dabi_check=disabled \
        -Dfuzz=disabled -Dopenblas=disabled; then
    run "build: gcc + MPI, suites mpi and install" \
        build_for_suites "$mpi_dir" mpi install
    run_tests "test: gcc + MPI, suites mpi and install" \
        meson test -C "$mpi_dir" --no-rebuild --print-errorlogs --suite mpi --suite install
    cp "$mpi_dir/meson-logs/testlog.json" build-test/mpi.testlog.json 2>/dev/null
else
    echo "FAILED: configure gcc + MPI"
    failed=1
    failed_steps=$((failed_steps + 1))
fi

step "configure: clang, -Werror, ASan + UBSan"
if CC=clang CXX=clang++ configure "$san_dir" --buildtype=debugoptimized \
        -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
        -Dabi_check=disabled -Dmpi=disabled -Dfuzz=disabled; then
    run "build: clang + sanitizers" meson compile -C "$san_dir"
    run_tests "test: clang + ASan + UBSan" \
        meson test -C "$san_dir" --no-rebuild --print-errorlogs
    cp "$san_dir/meson-logs/testlog.json" build-test/sanitize.testlog.json 2>/dev/null
else
    echo "FAILED: configure clang"
    failed=1
    failed_steps=$((failed_steps + 1))
fi

step "configure: clang, libFuzzer + ASan + UBSan"
if CC=clang CXX=clang++ configure "$fuzz_dir" --buildtype=debugoptimized \
        -Dwerror=true -Dfuzz=enabled -Dfuzz_seconds=10 -Dabi_check=disabled -Dmpi=disabled \
        -Dexamples=false; then
    run "build: clang fuzz targets" build_for_suites "$fuzz_dir" fuzz
    run_tests "test: fuzz (each target for a bounded time)" \
        meson test -C "$fuzz_dir" --no-rebuild --print-errorlogs --suite fuzz
    cp "$fuzz_dir/meson-logs/testlog.json" build-test/fuzz.testlog.json 2>/dev/null
    grep -h 'stat::number_of_executed_units' "$fuzz_dir/meson-logs/testlog.txt"
else
    echo "FAILED: configure fuzz"
    failed=1
    failed_steps=$((failed_steps + 1))
fi

step "configure: clang, -Werror, ThreadSanitizer"
if CC=clang CXX=clang++ configure "$tsan_dir" --buildtype=debugoptimized \
        -Dwerror=true -Db_sanitize=thread -Db_lundef=false \
        -Dabi_check=disabled -Dmpi=disabled -Dfuzz=disabled -Dexamples=false; then
    run "build: clang + TSan, suite faults" \
        build_for_suites "$tsan_dir" faults --no-suite slow
    run_tests "test: clang + TSan, suite faults" \
        env TSAN_OPTIONS=halt_on_error=1 meson test -C "$tsan_dir" \
        --no-rebuild --print-errorlogs --suite faults --no-suite slow
    cp "$tsan_dir/meson-logs/testlog.json" build-test/tsan.testlog.json 2>/dev/null
else
    echo "FAILED: configure tsan"
    failed=1
    failed_steps=$((failed_steps + 1))
fi

logs="build-test/gcc.testlog.json build-test/valgrind.testlog.json
  build-test/mpi.testlog.json
  build-test/sanitize.testlog.json build-test/fuzz.testlog.json
  build-test/tsan.testlog.json"

if [ "$(uname -m)" = x86_64 ]; then
    arm_dir=build-test/aarch64
    logs="$logs build-test/aarch64.testlog.json"
    # meson 1.0 has no @DIRNAME@ in machine files: the cross file takes the
    # source tree's absolute path (for its exe_wrapper) from this one.
    mkdir -p build-test
    printf "[constants]\nsource_root = '%s'\n" "$top" > build-test/source-root.ini
    step "configure: aarch64 cross build (NEON), tests under qemu"
    if configure "$arm_dir" --buildtype=debugoptimized -Dwerror=true \
            --cross-file build-test/source-root.ini \
            --cross-file cross/aarch64-linux-gnu.ini \
            -Ddocs=false -Dabi_check=disabled -Dmpi=disabled -Dexamples=false; then
        run "build: aarch64, suites kernels and api" \
            build_for_suites "$arm_dir" kernels api --no-suite threads
        # A build check of the NEON templates with no test of its own.
        run "build: aarch64, NEON templates in one translation unit" \
            ninja -C "$arm_dir" tests/kernels/libtemplates_one_tu.a
        # TLM_THREADS=1: contexts and sessions default to one thread, so
        # no test outside suite `threads` starts a worker under qemu.
        run_tests "test: aarch64 under qemu, kernels and api suites" \
            env TLM_THREADS=1 \
            meson test -C "$arm_dir" --no-rebuild --print-errorlogs \
            --suite kernels --suite api --no-suite threads
        cp "$arm_dir/meson-logs/testlog.json" build-test/aarch64.testlog.json 2>/dev/null
    else
        echo "FAILED: configure aarch64"
        failed=1
        failed_steps=$((failed_steps + 1))
    fi
fi

step "summary"
# shellcheck disable=SC2086
python3 scripts/summarize-tests.py --failed-steps "$failed_steps" $logs || failed=1
exit $failed
