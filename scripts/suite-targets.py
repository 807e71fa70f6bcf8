#!/usr/bin/env python3
"""Prints the build outputs the tests of some suites need, relative to the
build directory, so that scripts/test.sh can build only those:
    ninja -C DIR $(scripts/suite-targets.py DIR SUITE... [--no-suite SUITE...])
"""
import json
import os
import subprocess
import sys


def introspect(build_dir, what):
    out = subprocess.run(["meson", "introspect", what, build_dir],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main(argv):
    build_dir, wanted, unwanted = argv[1], set(), set()
    into = wanted
    for arg in argv[2:]:
        if arg == "--no-suite":
            into = unwanted
        else:
            into.add(arg)
    outputs = {}
    for target in introspect(build_dir, "--targets"):
        outputs[target["id"]] = target["filename"]
    needed = set()
    for test in introspect(build_dir, "--tests"):
        suites = {suite.split(":")[-1] for suite in test["suite"]}
        if suites & wanted and not suites & unwanted:
            for target_id in test["depends"]:
                for path in outputs.get(target_id, []):
                    needed.add(os.path.relpath(path, os.path.abspath(build_dir)))
    if not needed:
        print(f"suite-targets: no test of {sorted(wanted)} in {build_dir}",
              file=sys.stderr)
        return 1
    print("\n".join(sorted(needed)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
