#!/bin/sh
# Suite "bindings": the promise of docs/python.md, "Installing": Debian's
# python3 makes a fresh venv (--system-site-packages, for Debian's numpy),
# pip installs bindings/python into it offline (--no-index
# --no-build-isolation: the venv's setuptools builds it), and the worked
# example of docs/python.md runs with the installed package against the
# library just built, found through the dynamic linker's path.
#
#   test_venv_install.sh SOURCE_ROOT LIBRARY CORPUS
#
# Exit 77 (skipped), saying why, without Debian's python3, its venv module
# or numpy, and where TLM_SKIP_BINDINGS says the library cannot be loaded
# into a plain python3 (a sanitizer or cross build).
set -eu
source_root=$1
library=$2
corpus=$3
python=${TLM_VENV_PYTHON:-/usr/bin/python3}

skip() {
    echo "skipped: $*"
    exit 77
}
[ -z "${TLM_SKIP_BINDINGS:-}" ] || skip "$TLM_SKIP_BINDINGS"
[ -x "$python" ] || skip "no $python (Debian's python3)"
"$python" -c 'import numpy' 2> /dev/null ||
    skip "$python cannot import numpy (Debian: python3-numpy)"
"$python" -c 'import wheel' 2> /dev/null ||
    skip "$python cannot import wheel, which setuptools builds wheels with (Debian: python3-wheel)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
if ! "$python" -m venv --system-site-packages "$work/venv" > "$work/venv.log" 2>&1; then
    cat "$work/venv.log"
    skip "$python -m venv fails (Debian: python3-venv)"
fi
venv_python=$work/venv/bin/python

# pip builds in the source directory: build a copy, not the checkout. No
# index, and a proxy that refuses every connection: any download fails.
cp -R "$source_root/bindings/python" "$work/package"
PIP_CONFIG_FILE=/dev/null http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 \
    "$venv_python" -m pip install --no-index --no-build-isolation --no-cache-dir \
    --disable-pip-version-check --quiet "$work/package"

# The example is the python block after the marker line in docs/python.md.
awk '/^<!-- example: tests\/python\/test_venv_install.sh -->$/ { marked = 1; next }
     marked && /^```python$/ { inside = 1; next }
     inside && /^```$/ { exit }
     inside { print }' "$source_root/docs/python.md" > "$work/example.py"
if [ ! -s "$work/example.py" ]; then
    echo "FAILED: no example after the marker in docs/python.md"
    exit 1
fi

# From a directory outside the checkout, so that the installed package is
# the one imported, and with the library found the way an installed one
# is (the dynamic linker's path), not through TLM_LIBRARY.
cp "$corpus" "$work/corpus.txt"
cd "$work"
unset TLM_LIBRARY
LD_LIBRARY_PATH=$(dirname "$library")
export LD_LIBRARY_PATH
"$venv_python" - "$library" "$work/venv" <<'CHECK'
import os
import sys

import tlm

library, venv = sys.argv[1], sys.argv[2]
assert os.path.realpath(tlm.__file__).startswith(os.path.realpath(venv) + os.sep), tlm.__file__
assert os.path.samefile(tlm.library_path(), library), tlm.library_path()
print("tlm %s installed in the venv, libtlm %s from %s"
      % (tlm.__version__, tlm.version(), tlm.library_path()))
CHECK
"$venv_python" example.py corpus.txt
