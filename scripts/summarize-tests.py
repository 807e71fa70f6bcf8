#!/usr/bin/env python3
"""Sums up meson test logs (testlog*.json): one line per run, the CMocka
test cases behind them, and a closing "N passed, N failed" line. A step of
scripts/test.sh that failed outside the tests (a build, a configuration)
counts as one failure each (--failed-steps).

    summarize-tests.py --failed-names LOG
prints instead the names of the tests that failed in one log, one a line,
as `meson test NAME...` takes them (scripts/test.sh reruns them)."""
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


def failed_names(path):
    """The tests of one log that did not pass or skip, as meson test names
    them ("tlm:kernels / gemm" is test gemm), each once."""
    names = []
    with open(path, encoding="utf-8") as log:
        for line in log:
            if not line.strip():
                continue
            entry = json.loads(line)
            if entry.get("result") in ("OK", "EXPECTEDFAIL", "SKIP"):
                continue
            name = entry["name"].split(" / ", 1)[-1]
            if name not in names:
                names.append(name)
    return names


def main(argv):
    if len(argv) == 2 and argv[0] == "--failed-names":
        for name in failed_names(argv[1]):
            print(name)
        return 0
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
