#!/usr/bin/env python3
"""Checks that every guide is a page of the HTML reference: each *.md of a
directory (docs/) is in the INPUT of the Doxyfile that meson configured
from docs/Doxyfile.in (the list of guides in docs/meson.build), and every
markdown file INPUT names exists. Exits 1 and names each one missing.

    check_doxygen_pages.py DOXYFILE DOCS_DIR
"""
import os
import shlex
import sys


def doxyfile_input(path):
    """The files of the INPUT setting (one line, as Doxyfile.in writes it)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            name, _, value = line.partition("=")
            if name.strip() == "INPUT":
                return [os.path.realpath(p) for p in shlex.split(value)]
    return []


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    doxyfile, docs_dir = argv[1], argv[2]
    listed = doxyfile_input(doxyfile)
    if not listed:
        print(f"{doxyfile}: no INPUT setting")
        return 1
    problems = []
    for name in sorted(os.listdir(docs_dir)):
        path = os.path.realpath(os.path.join(docs_dir, name))
        if name.endswith(".md") and path not in listed:
            problems.append(f"{os.path.join(docs_dir, name)} is not a page of the HTML "
                            "reference: add it to the guides in docs/meson.build")
    for path in listed:
        if path.endswith(".md") and not os.path.isfile(path):
            problems.append(f"{doxyfile} lists {path}, which does not exist")
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"{sum(p.endswith('.md') for p in listed)} guides are pages of the reference, "
          f"every *.md of {docs_dir} among them")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
