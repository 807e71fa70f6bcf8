#!/usr/bin/env python3
"""README.md and docs/building.md list every build option of
meson_options.txt, each in a table row with its default:
    check_build_options.py SOURCE_ROOT
Exits 1 naming each option a page lacks or gives the wrong default."""
import re
import sys
from pathlib import Path

OPTION = re.compile(
    r"option\(\s*'(?P<name>[^']+)'.*?value:\s*(?P<value>'[^']*'|\w+)", re.S)


def options(text):
    """(name, default as the docs write it) for each option()."""
    found = []
    for match in OPTION.finditer(text):
        value = match.group("value").strip("'")
        found.append((match.group("name"), value if value else "empty"))
    return found


def table_row(page, name):
    """The table row that starts with the option's name, or None."""
    for line in page.splitlines():
        if line.startswith(f"| `{name}` |"):
            return line
    return None


def main(argv):
    root = Path(argv[1])
    wanted = options((root / "meson_options.txt").read_text(encoding="utf-8"))
    if not wanted:
        print("check_build_options: no option() in meson_options.txt")
        return 1
    problems = 0
    for page_name in ("README.md", "docs/building.md"):
        page = (root / page_name).read_text(encoding="utf-8")
        for name, default in wanted:
            row = table_row(page, name)
            if row is None:
                print(f"{page_name}: no table row for build option '{name}'")
                problems += 1
            elif not re.search(rf"\|\s*`?{re.escape(default)}`?\s*\|", row):
                print(f"{page_name}: the row of '{name}' does not give its "
                      f"default '{default}': {row}")
                problems += 1
    if problems == 0:
        print(f"check_build_options: {len(wanted)} options listed with their "
              "defaults in README.md and docs/building.md")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
