"""Checks that docs/architecture.md names only code that exists.

    python3 check_architecture.py SOURCE_ROOT [DOC]

In every paragraph of the document (fenced code blocks left out), the
backticked items are read in order:
  - `lib/...c` or `lib/...h`: the file must exist; it becomes the current
    file of the paragraph;
  - `name()`: a function that must be defined in the current file or, when
    no file precedes it in the paragraph, anywhere in lib/ (or declared in
    include/tlm.h).
Any other `lib/...` path mentioned in plain text must exist as well. Exits
1 listing every stale reference, 0 otherwise (and says how many
references it checked)."""
import glob
import os
import re
import sys

PATH = re.compile(r"^lib/[\w./-]+\.[ch]$")
FUNCTION = re.compile(r"^([A-Za-z_]\w*)\(\)$")
BARE_PATH = re.compile(r"(?<![\w/])lib/[\w/-]+\.[ch]\b")


def paragraphs(text):
    """Paragraphs (lists of lines) outside fenced code blocks."""
    out, current, fenced = [], [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        if line.strip():
            current.append(line)
        elif current:
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out


def defines(source, name):
    """True when `source` holds a C definition of function `name`."""
    pattern = r"\b%s\s*\([^;{}]*\)\s*\{" % re.escape(name)
    return re.search(pattern, source) is not None


def main():
    root = sys.argv[1]
    doc = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, "docs", "architecture.md")
    with open(doc, encoding="utf-8") as f:
        text = f.read()
    cache = {}

    def source(path):
        if path not in cache:
            with open(os.path.join(root, path), encoding="utf-8") as f:
                cache[path] = f.read()
        return cache[path]

    every_c = sorted(os.path.relpath(p, root)
                     for p in glob.glob(os.path.join(root, "lib", "**", "*.c"), recursive=True))
    header = os.path.join(root, "include", "tlm.h")
    with open(header, encoding="utf-8") as f:
        public = f.read()

    problems, files_checked, functions_checked = [], set(), 0
    for para in paragraphs(text):
        joined = " ".join(para)
        where = para[0][:60]
        for path in BARE_PATH.findall(joined):
            files_checked.add(path)
            if not os.path.isfile(os.path.join(root, path)):
                problems.append("%s: no such file (near \"%s\")" % (path, where))
        current = None
        for item in re.findall(r"`([^`]+)`", joined):
            item = item.strip()
            if PATH.match(item):
                current = item if os.path.isfile(os.path.join(root, item)) else None
                continue
            m = FUNCTION.match(item)
            if not m:
                continue
            name = m.group(1)
            functions_checked += 1
            if current is not None:
                if not defines(source(current), name):
                    problems.append("%s() is not defined in %s (near \"%s\")"
                                    % (name, current, where))
            elif not (re.search(r"\b%s\s*\(" % re.escape(name), public)
                      or any(defines(source(p), name) for p in every_c)):
                problems.append("%s() is defined nowhere in lib/ nor declared in "
                                "include/tlm.h (near \"%s\")" % (name, where))
    for p in problems:
        print("stale reference in %s: %s" % (doc, p))
    if functions_checked < 10 or not files_checked:
        print("%s: only %d function and %d file references found; the format "
              "this check reads has changed?" % (doc, functions_checked, len(files_checked)))
        return 1
    if problems:
        return 1
    print("%s: %d files and %d function references, all present"
          % (doc, len(files_checked), functions_checked))
    return 0


if __name__ == "__main__":
    sys.exit(main())
