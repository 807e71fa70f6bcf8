#!/bin/sh
# Checks what libtlm.so exports:
#   check_exports.sh LIBRARY.so SOVERSION API_TEST_DIR
# - every defined dynamic symbol starts with tlm_ (everything else hidden);
# - the soname is libtlm.so.SOVERSION;
# - every exported function is exercised by a bad-argument test
#   (API_TEST_DIR/test_bad_args*.c), so no public function ships without a
#   NULL/invalid-argument case.
set -u
library=$1
soversion=$2
api_tests=$3
failed=0

symbols=$(nm -D --defined-only "$library" | awk '{print $3}' | sort)
count=$(printf '%s\n' "$symbols" | grep -c .)
if [ "$count" -eq 0 ]; then
    echo "check_exports: $library exports nothing"
    exit 1
fi
# The names the bad-argument tests mention, found in one pass (a grep per
# symbol took over 30 s on a loaded machine: process start-up, not work).
used=$(cat "$api_tests"/test_bad_args*.c |
       grep -owF "$(printf '%s\n' "$symbols")" | sort -u)
for symbol in $symbols; do
    case $symbol in
        tlm_*) ;;
        *) echo "check_exports: exported symbol without tlm_ prefix: $symbol"
           failed=1 ;;
    esac
    case "
$used
" in
        *"
$symbol
"*) ;;
        *) echo "check_exports: $symbol has no case in $api_tests/test_bad_args*.c"
           failed=1 ;;
    esac
done

soname=$(readelf -d "$library" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
if [ "$soname" != "libtlm.so.$soversion" ]; then
    echo "check_exports: soname is '$soname', expected libtlm.so.$soversion"
    failed=1
fi

if [ $failed -eq 0 ]; then
    echo "check_exports: $count tlm_ symbols, soname $soname"
fi
exit $failed
