#!/bin/sh
# Installs the build into a temporary root and builds examples/consumer.c
# against it the way a user would: only through pkg-config, once linked to
# the shared library and once to the static one, then runs both.
# MPI is opt-in: with no-mpi (any build configured without -Dmpi=enabled)
# the installed libtlm.so needs nothing beyond libc, libm, libpthread and
# the dynamic loader, tlm.pc never mentions MPI and `tlm --version` says
# "mpi: no"; with mpi, tlm.pc's static link line carries MPI and the
# program says "mpi: yes".
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

# Static: the same flags with --static (which adds Libs.private) and the
# linker told to take libtlm from its archive.
static_libs=$(pkg-config --libs --static tlm | sed 's/-ltlm/-Wl,-Bstatic -ltlm -Wl,-Bdynamic/')
# shellcheck disable=SC2086
$compiler -o "$root/consumer_static" "$consumer" $cflags $static_libs
if readelf -d "$root/consumer_static" | grep -q 'NEEDED.*libtlm'; then
    echo "install: consumer_static still needs libtlm.so"; exit 1
fi
env -u LD_LIBRARY_PATH "$root/consumer_static"

# MPI strictly opt-in (issue #20): what the default build installs has no
# trace of MPI, whatever is installed on the machine.
library=$(find "$libdir" -maxdepth 1 -type f -name 'libtlm.so.*' | head -n 1)
[ -n "$library" ] || { echo "install: no libtlm.so.* in $libdir"; exit 1; }
needed=$(readelf -d "$library" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
program=$(find "$root" -name 'tlm' -type f -perm -u+x | head -n 1)
version_out=$(LD_LIBRARY_PATH=$libdir "$program" --version) \
    || { echo "install: the installed tlm --version failed"; exit 1; }
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
        || { echo "install: pkg-config --static --libs tlm lacks -lmpi: $static_libs"; exit 1; }
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

echo "install: pkg-config --modversion tlm = $got; consumer linked shared and static, both ran;" \
    "MPI: $mpi (libtlm.so needs: $(echo "$needed" | tr '\n' ' '))"
