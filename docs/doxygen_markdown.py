#!/usr/bin/env python3
"""Doxygen's input filter for the guides (README.md and docs/*.md): the
markdown is written for GitHub, and this makes Doxygen 1.9.4 (Debian 12's)
render it the same way, with working links, changing only what Doxygen
reads (never the files):

    doxygen_markdown.py SOURCE_ROOT FILE.md   (prints FILE.md as Doxygen
                                               should read it)

- Anchors. Doxygen 1.9.4 gives headings no GitHub-style anchors, so
  `[text](#a-heading)` and `[text](guide.md#a-heading)` would lead nowhere.
  Each heading gets the label PAGE_SLUG (`{#PAGE_SLUG}`), where PAGE is the
  file's name without `.md` ("index", the main page's name, for README.md)
  and SLUG the anchor GitHub gives the heading; a page's title gets the
  label PAGE. Doxygen's labels are global, hence PAGE in front.
- Links. A link to a guide, or to a heading of one, becomes `[text](#LABEL)`,
  which Doxygen turns into a reference it checks (an unknown one is a
  warning, so a broken link fails the docs build). A relative link to any
  other file (an example program, LICENSE) becomes its text, in code, with
  the path when the text is not the path: the reference has no copy of
  the file to link to. A code span that is just the name of a function or
  handle of tlm.h links to its documentation (Doxygen links `name()`, not
  a bare `name`).
- What Doxygen 1.9.4 misreads: a code span holding a single quote before a
  non-word character (`'m.tlm': ...`, which it takes for a `quotation'),
  one over more than two lines (it gives up and prints the backticks), one
  that starts or ends with a space (dropped: ` world` is a BPE token), a
  `\\|` in a table cell's code span (kept as a backslash), `code` as the
  first thing in **bold** (left as asterisks), code spans in headings
  (their markup printed in the title: headings lose their backticks), and
  a -- in prose (printed as an en dash).

The output has the file's lines, each at its number (a long code span
joined on its first line leaves an empty <span> on the others), so
Doxygen's warnings name the right line; code blocks, fenced or indented,
pass unchanged.
"""
import os
import re
import sys

HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")
BACKTICKS = re.compile(r"`+")
INDENTED_CODE = re.compile(r"^(?: {4}|\t)")
LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s")
# [text](target) or [text](target "title"); the text may hold code spans.
LINK = re.compile(r"\[((?:[^\[\]`]|`[^`]*`)*)\]\(([^()\s]+)((?:\s+\"[^\"]*\")?)\)")
URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def page_label(path):
    """The label of a guide's page: its name without .md, or "index" (the
    main page) for the README."""
    name = os.path.basename(path)
    return "index" if name == "README.md" else name[:-len(".md")]


def is_guide(path, source_root):
    """A page of the reference: README.md at the top, or docs/*.md."""
    top = os.path.realpath(source_root)
    return (path == os.path.join(top, "README.md")
            or (os.path.dirname(path) == os.path.join(top, "docs")
                and path.endswith(".md")))


def github_slug(heading):
    """The anchor GitHub gives a heading: its text as it reads (no link
    targets, tags or backticks), in lower case, without punctuation, each
    space a hyphen."""
    text = LINK.sub(lambda m: m.group(1), heading)
    text = re.sub(r"<[^>]*>", "", text).replace("`", "").lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def starts_indented_code(line, last_text, in_code):
    """Whether a line after a blank one is (still) an indented code block:
    indented by 4 or more, after code or after a paragraph that is not in
    a list (where the indent could be the list's)."""
    if not INDENTED_CODE.match(line):
        return False
    return in_code or not (LIST_ITEM.match(last_text) or last_text.startswith((" ", "\t")))


def closes_fence(line, fence):
    match = FENCE.match(line)
    return bool(match and match.group(1)[0] == fence[0]
                and len(match.group(1)) >= len(fence))


def heading_slugs(lines):
    """The slug of each heading outside code fences, by line index; a slug
    met again gets -1, -2... as on GitHub."""
    seen = {}
    slugs = {}
    fence = None
    for index, line in enumerate(lines):
        if fence:
            if closes_fence(line, fence):
                fence = None
            continue
        match = FENCE.match(line)
        if match:
            fence = match.group(1)
            continue
        heading = HEADING.match(line)
        if heading:
            slug = github_slug(heading.group(2))
            if slug in seen:
                seen[slug] += 1
                slug = f"{slug}-{seen[slug]}"
            else:
                seen[slug] = 0
            slugs[index] = slug
    return slugs


def code_spans(text):
    """(start, end) of each code span of a block: a run of N backticks to
    the next run of exactly N."""
    spans = []
    pos = 0
    while True:
        opening = BACKTICKS.search(text, pos)
        if not opening:
            return spans
        ticks = opening.group(0)
        closing = re.compile(r"(?<!`)" + ticks + r"(?!`)").search(text, opening.end())
        if not closing:
            pos = opening.end()
            continue
        spans.append((opening.start(), closing.end()))
        pos = closing.end()


def code_span_for_doxygen(span, in_table):
    """A code span written so that Doxygen reads what GitHub reads: with
    two backticks when it holds a single quote, its own leading and
    trailing spaces as no-break spaces, and a table cell's `\\|` as a
    span of its own."""
    ticks = BACKTICKS.match(span).group(0)
    content = span[len(ticks):-len(ticks)]
    if content.startswith(" ") and content.endswith(" ") and content.strip():
        content = content[1:-1]
    # A space that starts or ends the code is part of it (` world`, a
    # BPE token); Doxygen would drop it, not a no-break space.
    stripped = content.strip(" ")
    if stripped:
        head = len(content) - len(content.lstrip(" "))
        tail = len(content) - len(content.rstrip(" "))
        content = "\u00a0" * head + stripped + "\u00a0" * tail
    parts = content.split("\\|") if in_table else [content]
    out = []
    for index, part in enumerate(parts):
        if index:
            out.append("<code>\\|</code>")
        if part:
            delimiter = "``" if ticks == "`" and "'" in part else ticks
            out.append(delimiter + part + delimiter)
    return "".join(out)


def join_long_code_spans(block):
    """Each code span over more than two lines on its first line, with the
    rest of its last line: Doxygen 1.9.4 takes at most one line break in a
    span. The lines it leaves hold an empty <span> to keep their place
    (a blank line would end the paragraph)."""
    while True:
        spans = code_spans(block)
        long_span = next(((start, end) for start, end in spans
                          if block.count("\n", start, end) > 1), None)
        if not long_span:
            return block
        start, end = long_span
        line_end = end
        while True:
            line_end = block.find("\n", line_end)
            inside = next((e for s, e in spans if s <= line_end < e), None)
            if line_end < 0 or inside is None:
                break
            line_end = inside
        if line_end < 0:
            line_end = len(block)
        lines = block[start:end].split("\n")
        joined = " ".join(line.strip() if index else line.rstrip()
                          for index, line in enumerate(lines))
        kept = "".join("\n" + line[:len(line) - len(line.lstrip())] + "<span></span>"
                       for line in lines[1:])
        block = block[:start] + joined + block[end:line_end] + kept + block[line_end:]


def outside_spans(block, spans, pattern):
    """The matches of pattern that start outside every code span."""
    for match in pattern.finditer(block):
        if not any(start <= match.start() < end for start, end in spans):
            yield match


def bold_code(block):
    """**`code` ...** as <b>`code` ...</b>: Doxygen 1.9.4 takes no emphasis
    that starts with a code span."""
    spans = code_spans(block)
    marks = list(outside_spans(block, spans, re.compile(r"\*\*")))
    out = []
    pos = 0
    index = 0
    while index + 1 < len(marks):
        opening, closing = marks[index], marks[index + 1]
        if block[opening.end():opening.end() + 1] != "`":
            index += 1
            continue
        out.append(block[pos:opening.start()] + "<b>")
        out.append(block[opening.end():closing.start()] + "</b>")
        pos = closing.end()
        index += 2
    out.append(block[pos:])
    return "".join(out)


def prose_dashes(block):
    """A -- outside code, links and tags as \\--, which Doxygen prints as
    two hyphens: it would print an en dash, where GitHub prints --."""
    skip = list(code_spans(block))
    skip += [(m.start(), m.end()) for m in LINK.finditer(block)]
    skip += [(m.start(), m.end()) for m in re.finditer(r"<[^<>]*>", block)]
    out = []
    pos = 0
    for match in re.finditer(r"(?<![\w\-!<\\])--(?![\->])", block):
        if not any(start <= match.start() < end for start, end in skip):
            out.append(block[pos:match.start()] + "\\--")
            pos = match.end()
    out.append(block[pos:])
    return "".join(out)


def api_names(source_root):
    """The functions and opaque handles include/tlm.h declares: each is
    documented (the docs build fails otherwise), so a reference to one
    resolves."""
    with open(os.path.join(source_root, "include", "tlm.h"), encoding="utf-8") as f:
        header = f.read()
    functions = re.findall(r"\bTLM_API\b[^;{}]*?\b(tlm_\w+)\s*\(", header)
    handles = re.findall(r"\btypedef struct (tlm_\w+) \1;", header)
    return set(functions) | set(handles)


def code_ref(label, text):
    """A reference to label shown as the code text."""
    return f'<code>@ref {label} "{text}"</code>'


class Guide:
    """One guide, as Doxygen should read it (for_doxygen)."""

    def __init__(self, path, source_root):
        self.path = os.path.realpath(path)
        self.source_root = source_root
        self.label = page_label(self.path)
        self.api = api_names(source_root)

    def link(self, match):
        """A link as Doxygen should read it (see the module's docstring)."""
        text, target = match.group(1), match.group(2)
        if URL_SCHEME.match(target) or target.startswith("/"):
            return match.group(0)
        path, _, anchor = target.partition("#")
        resolved = (os.path.realpath(os.path.join(os.path.dirname(self.path), path))
                    if path else self.path)
        if not path or is_guide(resolved, self.source_root):
            label = page_label(resolved)
            if anchor:
                label = f"{label}_{anchor}"
            # Doxygen would print the backticks of a code span in the text.
            code = re.fullmatch(r"`([^`]+)`", text)
            if code:
                return code_ref(label, code.group(1))
            return f"[{text.replace('`', '')}](#{label})"
        relative = os.path.relpath(resolved, self.source_root)
        if text.strip("`") in (path, relative):
            return text if "`" in text else f"`{text}`"
        return f"{text} (`{relative}`)"

    def inline(self, block):
        """A paragraph (or table, or heading) with its code spans, bold
        code and links written for Doxygen."""
        in_table = block.lstrip().startswith("|")
        out = []
        pos = 0
        for start, end in code_spans(block):
            out.append(block[pos:start])
            out.append(code_span_for_doxygen(block[start:end], in_table))
            pos = end
        out.append(block[pos:])
        block = bold_code(join_long_code_spans("".join(out)))
        spans = code_spans(block)
        out = []
        pos = 0
        for match in outside_spans(block, spans, LINK):
            out.append(block[pos:match.start()])
            out.append(self.link(match))
            pos = match.end()
        out.append(block[pos:])
        return prose_dashes(self.api_links("".join(out)))

    def api_links(self, block):
        """A code span that is just the name of a function or handle of
        tlm.h, outside a link, becomes a reference to its documentation
        (Doxygen links `name()` by itself, but not a bare `name`)."""
        links = [(m.start(), m.end()) for m in LINK.finditer(block)]
        out = []
        pos = 0
        for start, end in code_spans(block):
            name = block[start:end].strip("`")
            if name in self.api and not any(s <= start < e for s, e in links):
                out.append(block[pos:start] + code_ref(name, name))
                pos = end
        out.append(block[pos:])
        return "".join(out)

    def heading(self, line, slug, is_title):
        level, text = HEADING.match(line).groups()
        text = self.inline(text.replace("`", ""))
        if is_title:
            # The README's title is the main page's, already named "index".
            return f"{level} {text}" if self.label == "index" else f"{level} {text} {{#{self.label}}}"
        return f"{level} {text} {{#{self.label}_{slug}}}"

    def for_doxygen(self):
        with open(self.path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        slugs = heading_slugs(lines)
        out = []
        paragraph = []
        fence = None
        indented_code = False
        last_text = ""  # the last line that was not blank

        def flush():
            if paragraph:
                out.extend(self.inline("\n".join(paragraph)).split("\n"))
                paragraph.clear()

        for index, line in enumerate(lines):
            if fence:
                if closes_fence(line, fence):
                    fence = None
                out.append(line)
                continue
            match = FENCE.match(line)
            if match:
                flush()
                fence = match.group(1)
                out.append(line)
            elif index in slugs:
                flush()
                is_title = index == min(slugs) and line.startswith("# ")
                out.append(self.heading(line, slugs[index], is_title))
            elif not line.strip():
                flush()
                out.append(line)
                continue
            elif not paragraph and starts_indented_code(line, last_text, indented_code):
                indented_code = True
                out.append(line)
            elif indented_code and not paragraph and INDENTED_CODE.match(line):
                out.append(line)
            else:
                indented_code = False
                paragraph.append(line)
            last_text = line
        flush()
        return "\n".join(out)


def main(argv):
    if len(argv) != 3:
        print("usage: doxygen_markdown.py SOURCE_ROOT FILE.md", file=sys.stderr)
        return 2
    sys.stdout.write(Guide(argv[2], argv[1]).for_doxygen())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
