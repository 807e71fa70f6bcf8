#!/usr/bin/env python3
"""Tests of docs/doxygen_markdown.py, the filter through which Doxygen reads
the guides (suite docs):

    test_doxygen_markdown.py SOURCE_ROOT

Small guides in a temporary source tree check each rewrite; the real
guides check that every line stays on its line and that fenced code is
never changed."""
import os
import sys
import tempfile
import unittest

SOURCE_ROOT = os.path.realpath(sys.argv.pop(1)) if len(sys.argv) > 1 else None
sys.path.insert(0, os.path.join(SOURCE_ROOT or ".", "docs"))
import doxygen_markdown as dm  # noqa: E402

HEADER = """\
typedef struct tlm_thing tlm_thing;
TLM_API int tlm_thing_create(tlm_thing **out,
                             int32_t size);
TLM_API void tlm_thing_free(tlm_thing *thing);
static int tlm_not_api(void);
"""


class Tree:
    """A source tree with include/tlm.h, README.md and docs/*.md."""

    def __init__(self, guides):
        self.dir = tempfile.TemporaryDirectory()
        self.root = self.dir.name
        os.makedirs(os.path.join(self.root, "docs"))
        os.makedirs(os.path.join(self.root, "include"))
        with open(os.path.join(self.root, "include", "tlm.h"), "w", encoding="utf-8") as f:
            f.write(HEADER)
        for name, text in guides.items():
            with open(os.path.join(self.root, name), "w", encoding="utf-8") as f:
                f.write(text)

    def filtered(self, name):
        return dm.Guide(os.path.join(self.root, name), self.root).for_doxygen().split("\n")


class SlugTest(unittest.TestCase):
    def test_github_anchors(self):
        cases = {
            "1. Build and run the demo": "1-build-and-run-the-demo",
            "`tlm quantize`": "tlm-quantize",
            "Inputs: how much tlm reads, and what it accepts":
                "inputs-how-much-tlm-reads-and-what-it-accepts",
            "Products with quantized weights (lib/kernels/weights*)":
                "products-with-quantized-weights-libkernelsweights",
            "After 0.2.0: additions (ecosystem, issue #20)":
                "after-020-additions-ecosystem-issue-20",
            "tlm_model_config and `n_kv_heads`": "tlm_model_config-and-n_kv_heads",
            "See [the format](format.md)": "see-the-format",
            "Two  spaces": "two--spaces",
        }
        for heading, slug in cases.items():
            self.assertEqual(dm.github_slug(heading), slug, heading)

    def test_repeated_headings_are_numbered(self):
        lines = ["# T", "## Notes", "```", "## not a heading", "```", "## Notes", "## Notes"]
        self.assertEqual(dm.heading_slugs(lines),
                         {0: "t", 1: "notes", 5: "notes-1", 6: "notes-2"})


class FilterTest(unittest.TestCase):
    def setUp(self):
        self.tree = Tree({
            "README.md": "# tlm\n\nSee [the guide](docs/guide.md), "
                         "[its notes](docs/guide.md#notes-on-tlm_thing) and "
                         "[LICENSE](LICENSE).\n\n## Layout\n",
            "docs/guide.md": "# The guide\n\n"
                             "Back to [the README](../README.md#layout), "
                             "[below](#notes-on-tlm_thing), [a site](https://example.org/x.md), "
                             "[the example](../examples/demo.c) and "
                             "[`demo.c`](../examples/demo.c).\n\n"
                             "## Notes on `tlm_thing`\n\n"
                             "`tlm_thing_create` and `tlm_thing_create()` and `tlm_not_api` and "
                             "[`tlm_thing_free`](https://example.org).\n\n"
                             "```c\n[kept](#as-is) `tlm_thing_free` 'x': `y\n```\n",
        })
        self.addCleanup(self.tree.dir.cleanup)

    def test_headings_get_page_labels(self):
        readme = self.tree.filtered("README.md")
        guide = self.tree.filtered("docs/guide.md")
        self.assertEqual(readme[0], "# tlm")  # the main page is "index" already
        self.assertEqual(readme[4], "## Layout {#index_layout}")
        self.assertEqual(guide[0], "# The guide {#guide}")
        self.assertEqual(guide[4], "## Notes on tlm_thing {#guide_notes-on-tlm_thing}")

    def test_links(self):
        readme = self.tree.filtered("README.md")
        self.assertEqual(readme[2], "See [the guide](#guide), "
                                    "[its notes](#guide_notes-on-tlm_thing) and `LICENSE`.")
        guide = self.tree.filtered("docs/guide.md")
        self.assertEqual(guide[2], "Back to [the README](#index_layout), "
                                   "[below](#guide_notes-on-tlm_thing), "
                                   "[a site](https://example.org/x.md), "
                                   "the example (`examples/demo.c`) and "
                                   "`demo.c` (`examples/demo.c`).")

    def test_api_names_link_to_their_documentation(self):
        line = self.tree.filtered("docs/guide.md")[6]
        self.assertEqual(line, '<code>@ref tlm_thing_create "tlm_thing_create"</code> and '
                               "`tlm_thing_create()` and `tlm_not_api` and "
                               "[`tlm_thing_free`](https://example.org).")

    def test_code_blocks_are_untouched(self):
        guide = self.tree.filtered("docs/guide.md")
        self.assertEqual(guide[8:11], ["```c", "[kept](#as-is) `tlm_thing_free` 'x': `y", "```"])
        tree = Tree({"docs/g.md": "# G\n\nText:\n\n    run --x `tlm_thing_free`\n"
                                  "    [a](#b)\n\n    more --y\n\n- item\n\n    in the --item\n"})
        self.addCleanup(tree.dir.cleanup)
        self.assertEqual(tree.filtered("docs/g.md"),
                         ["# G {#g}", "", "Text:", "", "    run --x `tlm_thing_free`",
                          "    [a](#b)", "", "    more --y", "", "- item", "",
                          "    in the \\--item", ""])


class CodeSpanTest(unittest.TestCase):
    def inline(self, text):
        tree = Tree({"docs/g.md": "# G\n"})
        self.addCleanup(tree.dir.cleanup)
        return dm.Guide(os.path.join(tree.root, "docs", "g.md"), tree.root).inline(text)

    def test_single_quote_gets_two_backticks(self):
        self.assertEqual(self.inline("a `cannot open 'm.tlm': x` b `it's` c"),
                         "a ``cannot open 'm.tlm': x`` b ``it's`` c")

    def test_span_over_three_lines_is_joined(self):
        text = "a `one\n  two\n  three` b `c`\nd"
        self.assertEqual(self.inline(text),
                         "a `one two three` b `c`\n  <span></span>\n  <span></span>\nd")

    def test_span_over_two_lines_stays(self):
        self.assertEqual(self.inline("a `one\ntwo` b"), "a `one\ntwo` b")

    def test_spaces_at_the_ends_are_kept(self):
        self.assertEqual(self.inline("(` world`, ` 42 `, `x`)"),
                         "(`\u00a0world`, `42`, `x`)")

    def test_escaped_bar_in_a_table(self):
        self.assertEqual(self.inline("| `--tokenizer KIND\\|PATH` | x |"),
                         "| `--tokenizer KIND`<code>\\|</code>`PATH` | x |")
        self.assertEqual(self.inline("not a table `a\\|b`"), "not a table `a\\|b`")

    def test_dashes_in_prose(self):
        self.assertEqual(self.inline("**bench --runq DIR** `--x` a -- b\n| --- | --- |"),
                         "**bench \\--runq DIR** `--x` a \\-- b\n| --- | --- |")

    def test_bold_code(self):
        self.assertEqual(self.inline("- **`config`** (required), **plain**"),
                         "- <b>`config`</b> (required), **plain**")


@unittest.skipUnless(SOURCE_ROOT, "needs the source root")
class RealGuidesTest(unittest.TestCase):
    def test_lines_and_fences_kept(self):
        guides = ["README.md"] + sorted(
            os.path.join("docs", name) for name in os.listdir(os.path.join(SOURCE_ROOT, "docs"))
            if name.endswith(".md"))
        for name in guides:
            with open(os.path.join(SOURCE_ROOT, name), encoding="utf-8") as f:
                lines = f.read().split("\n")
            out = dm.Guide(os.path.join(SOURCE_ROOT, name), SOURCE_ROOT).for_doxygen().split("\n")
            self.assertEqual(len(out), len(lines), name)
            fence = None
            for number, (before, after) in enumerate(zip(lines, out), 1):
                opening = dm.FENCE.match(before)
                if fence or opening:
                    self.assertEqual(after, before, f"{name}:{number}")
                if fence:
                    if dm.closes_fence(before, fence):
                        fence = None
                elif opening:
                    fence = opening.group(1)


if __name__ == "__main__":
    unittest.main(verbosity=1)
