#!/usr/bin/env python3
"""Sums up meson test logs (testlog*.json): one line per run, the CMocka
test cases behind them, and a closing "N passed, N failed" line. A step of
scripts/test.sh that failed outside the tests (a build, a configuration)
counts as one failure each (--failed-steps)."""
import json
import re
import sys

CMOCKA_PASSED = re.compile(r"\[  PASSED  \] (\d+) test")
CMOCKA_FAILED = re.compile(r"\[  FAILED  \] (\d+) test")


def summarize(path):
    counts = {"passed": 0, "failed": 0, "skipped": 0, "cases": 0}
    try:
        with open(path, encoding="utf-8") as log:
            lines = [json.loads(line) for line in log if line.strip()]
    except OSError:
        print(f"{path}: missing (that run did not happen)")
        counts["failed"] += 1
        return counts
    for entry in lines:
        result = entry.get("result")
        if result in ("OK", "EXPECTEDFAIL"):
            counts["passed"] += 1
        elif result == "SKIP":
            counts["skipped"] += 1
        else:
            counts["failed"] += 1
        output = entry.get("stdout", "") + entry.get("stderr", "")
        for match in CMOCKA_PASSED.finditer(output):
            counts["cases"] += int(match.group(1))
    print(f"{path}: {counts['passed']} passed, {counts['failed']} failed, "
          f"{counts['skipped']} skipped ({counts['cases']} CMocka cases passed)")
    return counts


def main(argv):
    total = {"passed": 0, "failed": 0, "skipped": 0, "cases": 0}
    paths = list(argv)
    if len(paths) >= 2 and paths[0] == "--failed-steps":
        total["failed"] += int(paths[1])
        if int(paths[1]):
            print(f"steps that failed outside the test runs: {paths[1]}")
        paths = paths[2:]
    for path in paths:
        for key, value in summarize(path).items():
            total[key] += value
    print(f"CMocka test cases passed: {total['cases']}")
    print(f"{total['passed']} passed, {total['failed']} failed, "
          f"{total['skipped']} skipped")
    return 1 if total["failed"] or total["passed"] == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
