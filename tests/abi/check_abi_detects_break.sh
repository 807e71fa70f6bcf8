#!/bin/sh
# Self-test of check_abi.sh: a library missing one public function must be
# reported as an incompatible change naming that function.
#   check_abi_detects_break.sh CHECK_ABI.sh BASELINE.abi PROBE.so HEADERS_DIR
set -u
report=$(sh "$1" "$2" "$3" "$4" 2>&1)
status=$?
if [ "$status" -eq 77 ]; then # no debug info: check_abi.sh skipped
    echo "$report"
    exit 77
fi
if [ "$status" -eq 0 ]; then
    echo "check_abi_detects_break: check_abi.sh accepted $3, which lacks"
    echo "tlm_version_string; the ABI check cannot catch a removal"
    exit 1
fi
case $report in
    *INCOMPATIBLE*tlm_version_string*) ;;
    *) echo "check_abi_detects_break: failed for another reason:"
       echo "$report"
       exit 1 ;;
esac
echo "check_abi_detects_break: removal of tlm_version_string was caught"
exit 0
