#!/bin/sh
# Suites "cli" and "faults": `tlm import` on files that are not what they
# claim (issue #21, finding 9; docs/format-safetensors.md):
#   - a text file read as safetensors is "not a safetensors file", with
#     exit 1, one line on stderr and nothing written;
#   - a tlm safetensors export with a NaN weight is refused, naming the
#     tensor and the element; --allow-nonfinite imports it;
#   - the same file with its header length one byte short is refused
#     (every tensor would shift by a byte).
#   run_import_strictness.sh TLM_PROGRAM FIXTURES_DIR
# Prints one line per check; exits 1 if any failed. Uses python3 to patch
# the files.
set -u
case $1 in
    /*) tlm=$1 ;;
    *) tlm=$(pwd)/$1 ;;
esac
case $2 in
    /*) fixtures=$2 ;;
    *) fixtures=$(pwd)/$2 ;;
esac
. "$(dirname "$0")/checks.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/tlm-import-strict.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

printf 'hello world, this is a small text file\n' > small.txt
for format in safetensors hf; do
    bad 1 "import --format $format of a text file" import small.txt --format "$format" -o out.tlm
    check "  ... says it is not a safetensors file" \
        grep -qF "'small.txt' is not a safetensors file (" bad.err
    check "  ... and writes nothing" test ! -e out.tlm
done

cp "$fixtures/gpt_learned_layernorm_gelu_prenorm.safetensors" good.safetensors
python3 - <<'PY'
import json, struct
data = bytearray(open("good.safetensors", "rb").read())
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
name = "decoder.layers.0.ffn.up_proj.weight"
begin = header[name]["data_offsets"][0]
cols = header[name]["shape"][1]
at = 8 + n + begin + 4 * (2 * cols + 3)   # element [2, 3]
nan = bytearray(data)
nan[at:at + 4] = struct.pack("<I", 0x7fc00000)
open("nan.safetensors", "wb").write(nan)
open("nan_index.txt", "w").write("element %d [2, 3]" % (2 * cols + 3))
# The header length one byte short: valid only if the header ends in a
# space, which the writer pads with; else make it so.
assert data[8 + n - 1] == 0x20, "the fixture's header is not padded"
short = bytearray(data)
short[:8] = struct.pack("<Q", n - 1)
open("short.safetensors", "wb").write(short)
PY
bad 1 "import of a NaN weight" import nan.safetensors -o nan.tlm
check "  ... names the tensor and the element" \
    grep -qF "tensor 'decoder.layers.0.ffn.up_proj.weight' has NaN at $(cat nan_index.txt)" bad.err
check "  ... and writes nothing" test ! -e nan.tlm
check "import --allow-nonfinite imports it" "$tlm" import nan.safetensors --allow-nonfinite -o nan.tlm
check "import of the good file" "$tlm" import good.safetensors -o good.tlm
bad 1 "import with the header length one byte short" import short.safetensors -o short.tlm
check "  ... says which bytes belong to no tensor" grep -q "belongs to no tensor" bad.err

finish_checks
