#!/usr/bin/env python3
"""Checks that each guide reads the same in the HTML reference as on
GitHub: the words of Doxygen's page (docs/meson.build's reference, through
docs/doxygen_markdown.py) against those of cmark-gfm's rendering of the
markdown (GitHub's own renderer, with its table, autolink and
strikethrough extensions). Markup is not compared, only the text a reader
sees, so markdown that Doxygen 1.9.4 reads its own way without a warning
(a code span it takes for a quotation, a -- it prints as a dash, a
construct GitHub misreads) fails here. Skips (77) without cmark-gfm.

    check_rendering.py DOXYFILE HTML_DIR
"""
import difflib
import html
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_doxygen_pages import doxyfile_input  # noqa: E402

SKIP = 77


def words(markup):
    """The words a reader sees: no scripts, no Doxygen tooltips, inline
    tags removed (so `a<b>c</b>` stays one word), other tags a space."""
    markup = re.sub(r"<(script|style)\b.*?</\1>", " ", markup, flags=re.S)
    markup = re.sub(r'<div class="ttc".*?</div>\s*</div>', " ", markup, flags=re.S)
    markup = re.sub(r"</?(a|span|code|tt|b|strong|em|i|del|s)\b[^>]*>", "", markup)
    markup = re.sub(r"<[^>]*>", " ", markup)
    return html.unescape(markup).replace("\u00a0", " ").split()


def page_file(guide):
    name = os.path.basename(guide)
    return "index.html" if name == "README.md" else name[:-len(".md")] + ".html"


def differences(guide, html_dir, cmark):
    github = subprocess.run(
        [cmark, "--unsafe", "-e", "table", "-e", "autolink", "-e", "strikethrough", guide],
        check=True, capture_output=True, text=True).stdout
    with open(os.path.join(html_dir, page_file(guide)), encoding="utf-8") as f:
        page = f.read()
    match = re.search(r'<div class="header">(.*)<!-- contents -->', page, re.S)
    if not match:
        return [f"{page_file(guide)} has no page contents"]
    ours, theirs = words(github), words(match.group(1))
    found = []
    matcher = difflib.SequenceMatcher(None, ours, theirs, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            found.append(f"GitHub: ...{' '.join(ours[max(0, i1 - 5):i2 + 3])}...\n"
                         f"    Doxygen: ...{' '.join(theirs[max(0, j1 - 5):j2 + 3])}...")
    return found


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    cmark = shutil.which("cmark-gfm")
    if not cmark:
        print("check_rendering: cmark-gfm not found (scripts/install-deps.sh test installs it)")
        return SKIP
    guides = [p for p in doxyfile_input(argv[1]) if p.endswith(".md")]
    if not guides:
        print(f"{argv[1]}: no guide in INPUT")
        return 1
    failed = 0
    for guide in guides:
        found = differences(guide, argv[2], cmark)
        for text in found[:10]:
            print(f"{guide}: reads differently in the HTML reference:\n    {text}")
        failed += bool(found)
    if failed:
        print(f"{failed} of {len(guides)} guides read differently in the reference "
              "(docs/building.md, 'The HTML reference')")
        return 1
    print(f"{len(guides)} guides read the same on GitHub (cmark-gfm) and in the reference")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
