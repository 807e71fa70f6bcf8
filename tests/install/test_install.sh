#!/bin/sh
# Installs the build into a temporary root and builds examples/consumer.c
# against it the way a user would: through pkg-config (tlm.pc for the
# shared library, tlm-static.pc for the static one) and through CMake
# (find_package(tlm CONFIG), tlm::tlm and tlm::tlm_static), then runs them
# all; the installed `tlm --version` runs with no LD_LIBRARY_PATH.
# MPI is opt-in: with no-mpi (any build configured without -Dmpi=enabled)
# the installed libtlm.so needs nothing beyond libc, libm, libpthread and
# the dynamic loader, tlm.pc never mentions MPI and `tlm --version` says
# "mpi: no"; with mpi, tlm.pc's static link line carries MPI and the
# program says "mpi: yes". With TLM_INSTALL_DOCS=yes in the environment
# (a -Ddocs=true build) the HTML reference must be installed too.
#   test_install.sh BUILD_DIR CONSUMER.c VERSION CC mpi|no-mpi [CXX CONSUMER.cpp]
set -eu
build=$1
consumer=$2
version=$3
compiler=$4
mpi=$5

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

meson install -C "$build" --no-rebuild --quiet --destdir "$root" > "$root.log" 2>&1 \
    || { cat "$root.log"; rm -f "$root.log"; echo "install: meson install failed"; exit 1; }
rm -f "$root.log"

pcfile=$(find "$root" -name tlm.pc | head -n 1)
[ -n "$pcfile" ] || { echo "install: no tlm.pc installed"; exit 1; }
PKG_CONFIG_PATH=$(dirname "$pcfile")
PKG_CONFIG_SYSROOT_DIR=$root
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR

got=$(pkg-config --modversion tlm)
[ "$got" = "$version" ] || { echo "install: pkg-config says $got, expected $version"; exit 1; }
[ -f "$(find "$root" -name tlm.h | head -n 1)" ] || { echo "install: no tlm.h"; exit 1; }
[ -n "$(find "$root" -name 'tlm' -type f -perm -u+x | head -n 1)" ] \
    || { echo "install: the tlm program was not installed"; exit 1; }

cflags=$(pkg-config --cflags tlm)
libs=$(pkg-config --libs tlm)
libdir=$(pkg-config --variable=libdir tlm)
case $libdir in  # pkgconf applies the sysroot to variables, pkg-config not
    "$root"*) ;;
    *) libdir=$root$libdir ;;
esac

# Shared: the default of a plain `pkg-config --libs`.
# shellcheck disable=SC2086
$compiler -o "$root/consumer_shared" "$consumer" $cflags $libs
LD_LIBRARY_PATH=$libdir "$root/consumer_shared"
readelf -d "$root/consumer_shared" | grep -q 'NEEDED.*libtlm\.so' \
    || { echo "install: consumer_shared does not use libtlm.so"; exit 1; }

# Static: tlm-static.pc alone, with --static as a user would write it
# (tlm.pc's -ltlm would take libtlm.so, installed next to libtlm.a).
static_cflags=$(pkg-config --cflags --static tlm-static) \
    || { echo "install: no tlm-static.pc"; exit 1; }
static_libs=$(pkg-config --libs --static tlm-static)
# shellcheck disable=SC2086
$compiler -o "$root/consumer_static" "$consumer" $static_cflags $static_libs
if readelf -d "$root/consumer_static" | grep -q 'NEEDED.*libtlm'; then
    echo "install: consumer_static (pkg-config --static --libs tlm-static:" \
         "$static_libs) still needs libtlm.so"; exit 1
fi
env -u LD_LIBRARY_PATH "$root/consumer_static"

# CMake (issue #20): find_package(tlm CONFIG) from the installed prefix,
# a consumer linked to tlm::tlm (shared) and one to tlm::tlm_static; both
# run with no LD_LIBRARY_PATH (CMake's build run path names libdir).
command -v cmake > /dev/null \
    || { echo "install: cmake not found (scripts/install-deps.sh test installs it)"; exit 1; }
prefix=$(pkg-config --variable=prefix tlm)
case $prefix in
    "$root"*) ;;
    *) prefix=$root$prefix ;;
esac
cmake_project=$(cd "$(dirname "$0")" && pwd)/cmake_consumer
cmake_source=$(cd "$(dirname "$consumer")" && pwd)/$(basename "$consumer")
# The compiler is the last word of CC (the first may be a launcher: ccache).
if ! { cmake -S "$cmake_project" -B "$root/cmake_build" -DCMAKE_PREFIX_PATH="$prefix" \
           -DCMAKE_C_COMPILER="${compiler##* }" -DCONSUMER_SOURCE="$cmake_source" \
           -DCMAKE_BUILD_TYPE=Release > "$root/cmake.log" 2>&1 &&
       cmake --build "$root/cmake_build" >> "$root/cmake.log" 2>&1; }; then
    cat "$root/cmake.log"; echo "install: the CMake consumer failed"; exit 1
fi
readelf -d "$root/cmake_build/consumer_shared" | grep -q 'NEEDED.*libtlm\.so' \
    || { echo "install: CMake's consumer_shared (tlm::tlm) does not use libtlm.so"; exit 1; }
if readelf -d "$root/cmake_build/consumer_static" | grep -q 'NEEDED.*libtlm'; then
    echo "install: CMake's consumer_static (tlm::tlm_static) needs libtlm.so"; exit 1
fi
env -u LD_LIBRARY_PATH "$root/cmake_build/consumer_shared" \
    || { echo "install: CMake's consumer_shared failed"; exit 1; }
env -u LD_LIBRARY_PATH "$root/cmake_build/consumer_static" \
    || { echo "install: CMake's consumer_static failed"; exit 1; }

# MPI strictly opt-in (issue #20): what the default build installs has no
# trace of MPI, whatever is installed on the machine.
library=$(find "$libdir" -maxdepth 1 -type f -name 'libtlm.so.*' | head -n 1)
[ -n "$library" ] || { echo "install: no libtlm.so.* in $libdir"; exit 1; }
needed=$(readelf -d "$library" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
program=$(find "$root" -name 'tlm' -type f -perm -u+x | head -n 1)
[ -n "$(find "$root" -path '*/man1/tlm.1' -type f | head -n 1)" ] \
    || { echo "install: the tlm(1) man page was not installed"; exit 1; }
# A build with -Ddocs=true (TLM_INSTALL_DOCS=yes, set by meson) installs
# its HTML reference (docs/meson.build): the main page (README.md), the API
# of tlm.h and tlm.hpp, and the guides as pages, linked from the main page.
docs=none
if [ "${TLM_INSTALL_DOCS:-no}" = yes ]; then
    html=$(find "$root" -path '*/doc/tlm/html/index.html' -type f | head -n 1)
    [ -n "$html" ] || { echo "install: -Ddocs=true but no <datadir>/doc/tlm/html/index.html"; exit 1; }
    html=$(dirname "$html")
    for page in tlm_8h.html tlm_8hpp.html tutorial.html building.html pages.html; do
        [ -f "$html/$page" ] \
            || { echo "install: the HTML reference in $html has no $page"; exit 1; }
    done
    grep -q 'href="building.html' "$html/index.html" \
        || { echo "install: the reference's main page does not link to building.html"; exit 1; }
    docs="$html ($(find "$html" -name '*.html' | wc -l) HTML files)"
fi
# The installed program finds libtlm by its run path from any prefix.
version_out=$(env -u LD_LIBRARY_PATH "$program" --version) \
    || { echo "install: the installed tlm --version failed with no LD_LIBRARY_PATH"; exit 1; }
if [ "$mpi" = no-mpi ]; then
    for lib in $needed; do
        case $lib in
            libc.so.* | libm.so.* | libpthread.so.* | ld-linux*) ;;
            *) echo "install: libtlm.so without -Dmpi=enabled needs $lib" \
                   "(only libc, libm, libpthread expected)"; exit 1 ;;
        esac
    done
    if grep -n -i 'mpi' "$pcfile"; then
        echo "install: tlm.pc of a build without -Dmpi=enabled mentions MPI"; exit 1
    fi
    case $version_out in
        *"library $version)"*"mpi: no"*) ;;
        *) echo "install: tlm --version should say library $version and mpi: no:"
           echo "$version_out"; exit 1 ;;
    esac
else
    echo "$needed" | grep -q 'libmpi' \
        || { echo "install: libtlm.so of an MPI build does not need libmpi"; exit 1; }
    echo "$static_libs" | grep -q -- '-lmpi' \
        || { echo "install: pkg-config --static --libs tlm-static lacks -lmpi: $static_libs"; exit 1; }
    case $version_out in
        *"library $version+mpi)"*"mpi: yes"*) ;;
        *) echo "install: tlm --version of an MPI build should say $version+mpi and mpi: yes:"
           echo "$version_out"; exit 1 ;;
    esac
fi

# C++ (issue #20): tlm.hpp is installed beside tlm.h and a C++17 consumer
# builds from pkg-config's flags alone. Arguments 6 and 7: the C++ compiler
# ("" when there is none) and the consumer's source.
cxx=${6:-}
if [ -n "$cxx" ]; then
    [ -f "$(find "$root" -name tlm.hpp | head -n 1)" ] || { echo "install: no tlm.hpp"; exit 1; }
    # shellcheck disable=SC2086
    $cxx -std=c++17 -Wall -Wextra -Wpedantic -Werror -o "$root/consumer_cpp" "$7" $cflags $libs
    LD_LIBRARY_PATH=$libdir "$root/consumer_cpp"
fi

echo "install: pkg-config --modversion tlm = $got; consumer linked shared and static" \
    "with pkg-config and with CMake, and a C++17 one with tlm.hpp, all ran; installed tlm ran with no LD_LIBRARY_PATH;" \
    "MPI: $mpi (libtlm.so needs: $(echo "$needed" | tr '\n' ' ')); HTML reference: $docs"
