"""Every kind of bad input: its exact message with path:line, exit 1, and dist/ left as it was."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import run_cli, write_files

GOOD = """
    deck: D
    cards:
      - id: good
        q: Q?
        a: A.
    """

# (name, files, expected stderr lines; "{root}" is the cards folder)
CASES = [
    ("yaml-syntax", {"a.yaml": "deck: D\ncards:\n  - id: x\n    q: [unclosed\n"},
     ["{root}/a.yaml:5:1: error: YAML syntax error: while parsing a flow sequence expected ',' or ']', but got '<stream end>'"]),
    ("yaml-tab-indent", {"a.yaml": "deck: D\ncards:\n\t- id: x\n"},
     ["{root}/a.yaml:3:1: error: YAML syntax error: a tab character: YAML indents with spaces only (and a tab cannot start a value)"]),
    ("top-is-list", {"a.yaml": "- id: x\n"},
     ["{root}/a.yaml:1:1: error: expected a mapping with 'deck' and 'cards' at the top"]),
    ("missing-deck", {"a.yaml": "cards:\n  - id: x\n    q: Q\n    a: A\n"},
     ["{root}/a.yaml:1: error: missing key 'deck' (the Anki deck for these cards, e.g. 'Top::Sub')"]),
    ("missing-cards", {"a.yaml": "deck: D\n"},
     ["{root}/a.yaml:1: error: missing key 'cards' (the list of cards)"]),
    ("cards-not-list", {"a.yaml": "deck: D\ncards: nope\n"},
     ["{root}/a.yaml:2:1: error: 'cards' must be a non-empty list of cards"]),
    ("cards-empty", {"a.yaml": "deck: D\ncards: []\n"},
     ["{root}/a.yaml:2:1: error: 'cards' must be a non-empty list of cards"]),
    ("card-not-mapping", {"a.yaml": "deck: D\ncards:\n  - just text\n"},
     ["{root}/a.yaml:3:5: error: each card must be a mapping of keys to values"]),
    ("unknown-file-key", {"a.yaml": "deck: D\ndek: E\ncards:\n  - {id: x, q: Q, a: A}\n"},
     ["{root}/a.yaml:2:1: error: unknown key 'dek' (a file has: deck, type, tags, cards)"]),
    ("unknown-card-key", {"a.yaml": "deck: D\ncards:\n  - id: x\n    q: Q\n    a: A\n    why: W\n"},
     ["{root}/a.yaml:6:5: error: unknown key 'why' for a qa card (allowed: a, id, q, source, tags, topic, type)"]),
    ("missing-answer", {"a.yaml": "deck: D\ncards:\n  - id: x\n    q: Q\n"},
     ["{root}/a.yaml:3:5: error: card 'x' is missing 'a'"]),
    ("missing-id", {"a.yaml": "deck: D\ncards:\n  - q: Q\n    a: A\n"},
     ["{root}/a.yaml:3:5: error: card has no 'id' (a unique name like 'my-card-1')"]),
    ("bad-id", {"a.yaml": "deck: D\ncards:\n  - id: Bad_Id\n    q: Q\n    a: A\n"},
     ["{root}/a.yaml:3:9: error: bad id 'Bad_Id': use lowercase letters, digits and '-', starting with a letter or digit"]),
    ("empty-answer", {"a.yaml": "deck: D\ncards:\n  - id: x\n    q: Q\n    a: ''\n"},
     ["{root}/a.yaml:5:8: error: 'a' is empty"]),
    ("answer-is-list", {"a.yaml": "deck: D\ncards:\n  - id: x\n    q: Q\n    a: [1, 2]\n"},
     ["{root}/a.yaml:5:8: error: 'a' must be text, not a list"]),
    ("answer-is-mapping", {"a.yaml": "deck: D\ncards:\n  - id: x\n    q: Q\n    a: {k: v}\n"},
     ["{root}/a.yaml:5:8: error: 'a' must be text, not a mapping"]),
    ("duplicate-key", {"a.yaml": "deck: D\ncards:\n  - id: x\n    q: Q\n    q: R\n    a: A\n"},
     ["{root}/a.yaml:5:5: error: duplicate key 'q' (first at line 4)"]),
    ("unknown-type", {"a.yaml": "deck: D\ntype: cloze\ncards:\n  - {id: x, q: Q, a: A}\n"},
     ["{root}/a.yaml:2:7: error: unknown type 'cloze' (expected one of: qa, fact, probe, code)"]),
    ("tag-with-space", {"a.yaml": "deck: D\ntags: [two words]\ncards:\n  - {id: x, q: Q, a: A}\n"},
     ["{root}/a.yaml:2:8: error: bad tag 'two words': Anki tags cannot contain spaces (use '-' or '::')"]),
    ("tag-empty-component", {"a.yaml": "deck: D\ncards:\n  - id: x\n    tags: ['a::::b']\n    q: Q\n    a: A\n"},
     ["{root}/a.yaml:4:12: error: bad tag 'a::::b': empty component between '::'"]),
    ("deck-empty-component", {"a.yaml": "deck: 'A::::B'\ncards:\n  - {id: x, q: Q, a: A}\n"},
     ["{root}/a.yaml:1:7: error: deck name 'A::::B' has an empty component"]),
    ("follow-up-alone", {"a.yaml": "deck: D\ntype: probe\ncards:\n  - id: x\n    q: Q\n    a: A\n    follow_up: F\n"},
     ["{root}/a.yaml:4:5: error: card 'x': 'follow_up' and 'follow_up_a' go together"]),
    ("bad-timeout", {"a.yaml": "deck: D\ntype: code\ncards:\n  - id: x\n    q: Q\n    code: print(1)\n    timeout: soon\n"},
     ["{root}/a.yaml:7:14: error: 'timeout' must be a number of seconds from 0.1 to 600, not 'soon'"]),
    ("bad-expect-error", {"a.yaml": "deck: D\ntype: code\ncards:\n  - id: x\n    q: Q\n    code: print(1)\n    expect_error: 3 things\n"},
     ["{root}/a.yaml:7:19: error: 'expect_error' must be an exception class name, optionally with text its message contains: 'RuntimeError' or 'RuntimeError: must match the size'"]),
    ("empty-file", {"a.yaml": "\n  \n"},
     ["{root}/a.yaml:1: error: file is empty"]),
    ("not-utf8", {"a.yaml": b"deck: D\ncards:\n  - {id: x, q: caf\xe9, a: A}\n"},
     ["{root}/a.yaml:3:19: error: file is not UTF-8 (byte 0xe9)"]),
    ("duplicate-id-across-files", {"a.yaml": "deck: D\ncards:\n  - {id: x, q: Q, a: A}\n", "b/c.yaml": "deck: D\ncards:\n  - {id: x, q: R, a: B}\n"},
     ["{root}/b/c.yaml:3:5: error: duplicate id 'x' (first used at {root}/a.yaml:3:5)"]),
    ("markdown-no-front-matter", {"a.md": "## Q\nid: x\n\nA\n"},
     ["{root}/a.md:1: error: a Markdown card file must start with YAML front matter ('---')"]),
    ("markdown-unclosed-front-matter", {"a.md": "---\ndeck: D\n## Q\n"},
     ["{root}/a.md:1: error: front matter is not closed by a '---' line"]),
    ("markdown-text-before-heading", {"a.md": "---\ndeck: D\n---\nstray text\n## Q\nid: x\n\nA\n"},
     ["{root}/a.md:4: error: text before the first '## ' heading"]),
    ("markdown-text-key-in-meta", {"a.md": "---\ndeck: D\n---\n## Q\nid: x\na: no\n\nA\n"},
     ["{root}/a.md:6:1: error: 'a' is a text field: write it as a '### a' section"]),
    ("yaml-only-comments", {"a.yaml": "# deck: D\n# cards: []\n"},  # issue 18, bug 3: was accepted silently
     ["{root}/a.yaml:1: error: file holds no cards, only comments"]),
    ("decks-equal-in-anki", {"a.yaml": "deck: ML::Key Facts\ncards:\n  - {id: x, q: Q, a: A}\n", "b.yaml": "deck: ml::Key Facts\ncards:\n  - {id: y, q: R, a: B}\n"},
     ["{root}/b.yaml:3:5: error: deck 'ml' differs only in case from deck 'ML' (at {root}/a.yaml:3:5); Anki treats them as one deck"]),
    ("yaml-billion-laughs", {"a.yaml": "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\ndeck: D\ncards:\n  - {id: x, q: Q, a: *g}\n"},
     ["{root}/a.yaml:2:8: error: YAML aliases ('*name') are not allowed in card files; write the value out"]),
    ("yaml-deep-nesting", {"a.yaml": "deck: D\ncards:\n  - {id: x, q: Q, a: " + "[" * 3000 + "]" * 3000 + "}\n"},
     ["{root}/a.yaml:1: error: the YAML is nested too deeply"]),
    ("control-characters-escaped", {"a.yaml": "deck: D\ncards:\n  - {id: x, q: Q, a: A, \"\\e[2J\\0evil\": 1}\n"},
     ["{root}/a.yaml:3:25: error: unknown key '\\x1b[2J\\x00evil' for a qa card (allowed: a, id, q, source, tags, topic, type)"]),
    ("markdown-code-not-fenced", {"a.md": "---\ndeck: D\ntype: code\n---\n## Q\nid: x\n\n### code\nprint(1)\n"},
     ["{root}/a.md:8:1: error: a '### code' section must hold one fenced code block"]),
    # Deck names and tags: what Anki would delete (ASCII control characters, ':' at a component's end), and the invisible.
    ("deck-control-character", {"a.yaml": 'deck: "A\\x7fB"\ncards:\n  - {id: x, q: Q, a: A}\n'},
     ["{root}/a.yaml:1:7: error: deck name 'A\\x7fB' contains U+007F, a control character (Anki deletes it): delete it"]),
    ("deck-tab", {"a.yaml": "deck: A\tB\ncards:\n  - {id: x, q: Q, a: A}\n"},
     ["{root}/a.yaml:1:7: error: deck name 'A\\tB' contains U+0009, a control character (Anki deletes it): delete it"]),
    ("deck-c1-control", {"a.yaml": 'deck: "A\\x9bB"\ncards:\n  - {id: x, q: Q, a: A}\n'},
     ["{root}/a.yaml:1:7: error: deck name 'A\\x9bB' contains U+009B, a control character: delete it"]),
    ("deck-invisible", {"a.yaml": 'deck: "ML::Key\\u200bFacts"\ncards:\n  - {id: x, q: Q, a: A}\n'},
     ["{root}/a.yaml:1:7: error: deck name 'ML::Key\\u200bFacts' contains U+200B, an invisible character: delete it"]),
    ("deck-colon-at-component-end", {"a.yaml": "deck: 'A:::B'\ncards:\n  - {id: x, q: Q, a: A}\n"},
     ["{root}/a.yaml:1:7: error: deck name 'A:::B' has a component that starts or ends with ':' (Anki deletes it): use '::' only between components"]),
    ("markdown-deck-tab", {"a.md": "---\ndeck: A\tB\n---\n## Q\nid: x\n\nA\n"},
     ["{root}/a.md:2:7: error: deck name 'A\\tB' contains U+0009, a control character (Anki deletes it): delete it"]),
    ("tag-control-character", {"a.yaml": 'deck: D\ncards:\n  - {id: x, q: Q, a: A, tags: ["a\\x07b"]}\n'},
     ["{root}/a.yaml:3:32: error: bad tag 'a\\x07b': it contains U+0007, a control character (Anki deletes it)"]),
    # null: an empty value, ~ and null are no text (libyaml marks plain scalars with style '', which hid them)
    ("deck-null", {"a.yaml": "deck: null\ncards:\n  - {id: x, q: Q, a: A}\n"},
     ["{root}/a.yaml:1:7: error: 'deck' must be text, got null (YAML reads an empty value, '~' and 'null' as no value; quote a word: 'null')"]),
    ("deck-empty-value", {"a.yaml": "deck:\ncards:\n  - {id: x, q: Q, a: A}\n"},
     ["{root}/a.yaml:1:6: error: 'deck' must be text, got null (YAML reads an empty value, '~' and 'null' as no value; quote a word: 'null')"]),
    ("front-null", {"a.yaml": "deck: D\ncards:\n  - {id: x, q: null, a: A}\n"},
     ["{root}/a.yaml:3:16: error: 'q' must be text, got null (YAML reads an empty value, '~' and 'null' as no value; quote a word: 'null')"]),
    ("answer-tilde", {"a.yaml": "deck: D\ncards:\n  - id: x\n    q: Q\n    a: ~\n"},
     ["{root}/a.yaml:5:8: error: 'a' must be text, got null (YAML reads an empty value, '~' and 'null' as no value; quote a word: 'null')"]),
    ("tag-null", {"a.yaml": "deck: D\ncards:\n  - {id: x, q: Q, a: A, tags: [null]}\n"},
     ["{root}/a.yaml:3:32: error: each entry of 'tags' must be text, got null (YAML reads an empty value, '~' and 'null' as no value; quote a word: 'null')"]),
    ("markdown-id-empty", {"a.md": "---\ndeck: D\n---\n## Q\nid:\n\nA\n"},
     ["{root}/a.md:5:4: error: 'id' must be text, got null (YAML reads an empty value, '~' and 'null' as no value; quote a word: 'null')"]),
    ("expect-error-null", {"a.yaml": "deck: D\ntype: code\ncards:\n  - id: x\n    q: Q\n    code: print(1)\n    expect_error: null\n"},
     ["{root}/a.yaml:7:19: error: 'expect_error' must be text, got null (YAML reads an empty value, '~' and 'null' as no value; quote a word: 'null')"]),
    ("timeout-null", {"a.yaml": "deck: D\ntype: code\ncards:\n  - id: x\n    q: Q\n    code: print(1)\n    timeout:\n"},
     ["{root}/a.yaml:7:13: error: 'timeout' must be a number of seconds, got null (YAML reads an empty value, '~' and 'null' as no value; quote a word: 'null')"]),
    # timeout: seconds from 0.1 to 600
    *((f"timeout-{name}", {"a.yaml": f"deck: D\ntype: code\ncards:\n  - id: x\n    q: Q\n    code: print(1)\n    timeout: {value}\n"},
       [f"{{root}}/a.yaml:7:14: error: 'timeout' must be a number of seconds from 0.1 to 600, not '{value}'"])
      for name, value in [("huge", "1e26"), ("inf", ".inf"), ("nan", ".nan"), ("negative", "-1"), ("zero", "0"),
                          ("bool", "true"), ("tiny", "1e-9"), ("a-day", "86400")]),
    # Formulas are located in one-line YAML scalars, plain or quoted, and in Markdown headings;
    # over several lines (YAML folds them) at the value's start.
    ("formula-in-plain-scalar", {"a.yaml": "deck: D\ncards:\n  - id: x\n    q: Q\n    a: see the $\\foo$ here\n"},
     ["{root}/a.yaml:5:16: error: bad LaTeX in $\\foo$: Unsupported function name: \\foo (character 1 of the formula)"]),
    ("formula-in-single-quotes", {"a.yaml": "deck: D\ncards:\n  - id: x\n    q: Q\n    a: 'it''s the $\\foo$ here'\n"},
     ["{root}/a.yaml:5:19: error: bad LaTeX in $\\foo$: Unsupported function name: \\foo (character 1 of the formula)"]),
    ("formula-in-double-quotes", {"a.yaml": 'deck: D\ncards:\n  - id: x\n    q: Q\n    a: "\\u00e9 \\"x\\" $\\\\foo$ here"\n'},
     ["{root}/a.yaml:5:22: error: bad LaTeX in $\\foo$: Unsupported function name: \\foo (character 1 of the formula)"]),
    ("formula-in-flow-mapping", {"a.yaml": "deck: D\ncards:\n  - {id: x, q: 'Q: $\\foo$', a: A}\n"},
     ["{root}/a.yaml:3:20: error: bad LaTeX in $\\foo$: Unsupported function name: \\foo (character 1 of the formula)"]),
    ("formula-in-folded-plain", {"a.yaml": "deck: D\ncards:\n  - id: x\n    q: Q\n    a: see the\n      more $\\foo$ here\n"},
     ["{root}/a.yaml:5:8: error: bad LaTeX in $\\foo$: Unsupported function name: \\foo (character 1 of the formula)"]),
    ("formula-in-markdown-heading", {"a.md": "---\ndeck: D\n---\n##   What is $\\foo$?\nid: x\n\nA\n"},
     ["{root}/a.md:4:14: error: bad LaTeX in $\\foo$: Unsupported function name: \\foo (character 1 of the formula)"]),
    ("formula-in-crlf-file", {"a.yaml": b"\xef\xbb\xbfdeck: D\r\ncards:\r\n  - id: x\r\n    q: Q $\\foo$\r\n    a: A\r\n"},
     ["{root}/a.yaml:4:10: error: bad LaTeX in $\\foo$: Unsupported function name: \\foo (character 1 of the formula)"]),
    # Markdown fences as Python-Markdown reads them: closed by the very same fence, and nothing after it
    ("markdown-code-fence-closed-by-a-shorter-one", {"a.md": "---\ndeck: D\ntype: code\n---\n## Q\nid: x\n\n### code\n````\nprint(1)\n```\n"},
     ["{root}/a.md:8:1: error: a '### code' section must hold one fenced code block"]),
    ("markdown-code-text-after-the-fence", {"a.md": "---\ndeck: D\ntype: code\n---\n## Q\nid: x\n\n### code\n```\nprint(1)\n```\nprint(2)\n```\n"},
     ["{root}/a.md:8:1: error: a '### code' section must hold one fenced code block"]),
    # Markdown front matter and card keys: no aliases or anchors, no control characters, no section twice
    ("markdown-front-matter-alias", {"a.md": "---\ndeck: &d D\ntags: [*d]\n---\n## Q\nid: x\n\nA\n"},
     ["{root}/a.md:3:8: error: YAML aliases ('*name') are not allowed in card files; write the value out"]),
    ("markdown-front-matter-anchor", {"a.md": "---\ndeck: D\ntags: &t [a]\n---\n## Q\nid: x\n\nA\n"},
     ["{root}/a.md:3:7: error: YAML anchors ('&name') are not allowed in card files; delete it"]),
    ("markdown-card-key-alias", {"a.md": "---\ndeck: D\n---\n## Q\nid: &i x\ntags: [*i]\n\nA\n"},
     ["{root}/a.md:6:8: error: YAML aliases ('*name') are not allowed in card files; write the value out"]),
    ("yaml-anchor-on-a-list", {"a.yaml": "deck: D\ntags: &t [a]\ncards:\n  - {id: x, q: Q, a: A}\n"},
     ["{root}/a.yaml:2:7: error: YAML anchors ('&name') are not allowed in card files; delete it"]),
    ("markdown-nul", {"a.md": "---\ndeck: D\n---\n## Q\nid: x\n\nA\x00B\n"},
     ["{root}/a.md:7:2: error: character U+0000 is not allowed in a card file (a control character): delete it"]),
    ("markdown-section-twice", {"a.md": "---\ndeck: D\ntype: fact\n---\n## Q\nid: x\n\nA\n### why\nB\n### Why\nC\n"},
     ["{root}/a.md:11:1: error: 'why' is given twice in this card (first at line 9)"]),
    ("markdown-answer-twice", {"a.md": "---\ndeck: D\n---\n## Q\nid: x\n\nA\n### a\nB\n"},
     ["{root}/a.md:8:1: error: 'a' is given twice in this card (the text under the heading is the answer at line 7)"]),
    ("markdown-card-keys-not-yaml", {"a.md": "---\ndeck: D\n---\n## Q\nid: [x\n\nA\n"},
     ["{root}/a.md:5:7: error: YAML syntax error: while parsing a flow sequence expected ',' or ']', but got '<stream end>'"]),
    ("markdown-front-matter-nested-too-deeply", {"a.md": "---\ndeck: D\ntags: " + "[" * 3000 + "]" * 3000 + "\n---\n## Q\nid: x\n\nA\n"},
     ["{root}/a.md:1: error: the YAML is nested too deeply"]),
    # Sizes: an id of at most 100 characters, a text of at most 20,000 (a 1 MB line must not take seconds)
    ("id-too-long", {"a.yaml": "deck: D\ncards:\n  - {id: " + "a" * 10_000 + ", q: Q, a: A}\n"},
     ["{root}/a.yaml:3:10: error: id 'aaaaaaaaaaaaaaaaaaaaaaaa…' is 10000 characters long; at most 100"]),
    ("text-too-long", {"a.md": "---\ndeck: D\n---\n## Q\nid: x\n\n" + "$a" * 500_000 + "\n"},
     ["{root}/a.md:7:1: error: 'a' is 1000000 characters long; at most 20000 (split it into several cards)"]),
    ("id-with-path-separators", {"a.yaml": "deck: D\ncards:\n  - {id: ../../etc/x, q: Q, a: A}\n"},
     ["{root}/a.yaml:3:10: error: bad id '../../etc/x': use lowercase letters, digits and '-', starting with a letter or digit"]),
    ("yaml-two-documents", {"a.yaml": "deck: D\ncards:\n  - {id: x, q: Q, a: A}\n---\ndeck: E\n"},
     ["{root}/a.yaml:4:1: error: YAML syntax error: expected a single document in the stream but found another document"]),
    ("yaml-python-tag", {"a.yaml": "deck: D\ncards:\n  - id: x\n    q: !!python/object/apply:os.system ['echo hi']\n    a: A\n"},
     ["{root}/a.yaml:4:8: error: 'q' must be text, not a list"]),
]


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def previous_dist(tmp_path_factory) -> Path:
    """A dist/ folder holding a good earlier build, which a failed build must not touch."""
    root = tmp_path_factory.mktemp("previous")
    cards = write_files(root / "cards", {"good.yaml": GOOD})
    assert run_cli("build", cards, "--out", root / "dist", "--quiet") == 0
    return root / "dist"


@pytest.mark.parametrize("name, files, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_reported_exactly(name, files, expected, tmp_path, capsys, previous_dist):
    root = write_files(tmp_path / "cards", files)
    before = _tree_digest(previous_dist)
    status = run_cli("build", root, "--out", previous_dist, "--quiet", "--cache-dir", tmp_path / "cache")
    err = capsys.readouterr().err
    assert status == 1
    lines = [line for line in err.splitlines() if not line.startswith("deckbuild: ")]
    assert lines == [e.replace("{root}", str(root)) for e in expected]
    assert "Traceback" not in err
    assert _tree_digest(previous_dist) == before


# The bad-TeX suite every math engine passes: (name, card text with the formula on line 6 or 7,
# "line:col" of the formula, the formula as written, and each engine's message).
LATEX_CASES = [
    ("unknown-command", "    a: |\n      first line\n      see $\\foo + 1$ here\n", "7:11", "$\\foo + 1$",
     {"temml": "Unsupported function name: \\foo (character 1 of the formula)", "latex2mathml": "unknown control sequence \\foo"}),
    ("unbalanced", "    a: |\n      $x^{2$\n", "6:7", "$x^{2$",
     {"temml": "Expected '}', got 'EOF' (character 5 of the formula)", "latex2mathml": "unbalanced braces: 1 '{' not closed"}),
    ("missing-argument", "    a: |\n      $$\\frac{a}$$\n", "6:7", "$$\\frac{a}$$",
     {"temml": "Unexpected end of input in a macro argument, expected '}' (character 9 of the formula)",
      "latex2mathml": "missing argument: \\frac needs 2"}),
    ("unclosed-environment", "    a: |\n      \\[\\begin{pmatrix} 1 & 2 \\]\n", "6:7", "\\[\\begin{pmatrix} 1 & 2 \\]",
     {"temml": "Expected & or \\\\ or \\cr or \\end (character 23 of the formula)", "latex2mathml": "unclosed environment \\begin{pmatrix}"}),
    ("unclosed-text", "    a: |\n      \\(\\text{x\\)\n", "6:7", "\\(\\text{x\\)",
     {"temml": "Unexpected end of input in a macro argument, expected '}' (character 8 of the formula)",
      "latex2mathml": "unbalanced braces: 1 '{' not closed"}),
    # Temml throws an internal TypeError without a position here: still reported at the formula.
    ("dangling-superscript", "    a: |\n      $x^$ and more\n", "6:7", "$x^$",
     {"temml": "cannot convert (internal TypeError: Cannot read properties of null (reading 'type')); look for a missing argument",
      "latex2mathml": "cannot convert (MissingSuperScriptOrSubscriptError)"}),
    ("stray-ampersand", "    a: |\n      say $a & b$\n", "6:11", "$a & b$",
     {"temml": "Expected 'EOF', got '&' (character 3 of the formula)",
      "latex2mathml": "'&' outside a matrix environment (use pmatrix, bmatrix or cases)"}),
    ("link", "    a: |\n      $\\href{https://example.org}{x}$\n", "6:7", "$\\href{https://example.org}{x}$",
     {"temml": "Unsupported function name: \\href (character 1 of the formula)", "latex2mathml": "\\href is not allowed"}),
    ("endless-macro", "    a: |\n      $\\def\\a{\\a\\a}\\a$\n", "6:7", "$\\def\\a{\\a\\a}\\a$",
     {"temml": "Too many expansions: infinite loop or need to increase maxExpand setting",
      "latex2mathml": "cannot convert (RecursionError: Maximum macro expansion depth (100) exceeded)"}),
]


@pytest.mark.parametrize("engine", ["temml", "latex2mathml"])
@pytest.mark.parametrize("name, text, where, formula, messages", LATEX_CASES, ids=[c[0] for c in LATEX_CASES])
def test_bad_latex_is_reported_at_the_formula(engine, name, text, where, formula, messages, tmp_path, capsys, previous_dist):
    root = write_files(tmp_path / "cards", {"a.yaml": "deck: D\ncards:\n  - id: x\n    q: Q\n" + text})
    before = _tree_digest(previous_dist)
    status = run_cli("build", root, "--out", previous_dist, "--quiet", "--math", engine, "--cache-dir", tmp_path / "cache")
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    lines = [line for line in err.splitlines() if not line.startswith("deckbuild: ")]
    assert lines == [f"{root}/a.yaml:{where}: error: bad LaTeX in {formula}: {messages[engine]}"]
    assert _tree_digest(previous_dist) == before


def test_every_problem_in_every_file_is_reported(tmp_path, capsys):
    root = write_files(
        tmp_path / "cards",
        {
            "a.yaml": "deck: D\ncards:\n  - id: x\n    q: Q\n  - id: y\n    q: $\\foo$\n    a: A\n",
            "b.yaml": "deck: 'A::'\ncards:\n  - {id: z, q: Q, a: A}\n",
        },
    )
    assert run_cli("check", root, "--quiet") == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{root}/a.yaml:3:5: error: card 'x' is missing 'a'",
        f"{root}/a.yaml:6:8: error: bad LaTeX in $\\foo$: Unsupported function name: \\foo (character 1 of the formula)",
        f"{root}/b.yaml:1:7: error: deck name 'A::' has an empty component",
        "deckbuild: check failed: 3 error(s), 0 warning(s); nothing written",
    ]


def test_folder_without_sources(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert run_cli("check", tmp_path / "empty") == 1
    assert capsys.readouterr().err.splitlines()[0] == f"{tmp_path}/empty: error: no card sources (*.yaml, *.yml, *.md) in this folder"


def test_missing_path(tmp_path, capsys):
    assert run_cli("check", tmp_path / "nope") == 1
    assert capsys.readouterr().err.splitlines()[0] == f"{tmp_path}/nope: error: no such file or folder"


def test_warnings_fail_only_under_strict(tmp_path, capsys):
    root = write_files(tmp_path / "cards", {"a.yaml": "deck: D\ncards:\n  - {id: x, q: Q, a: A, tags: [Math]}\n  - {id: y, q: R, a: B, tags: [math]}\n"})
    assert run_cli("check", root, "--quiet") == 0
    warning = f"{root}/a.yaml:4:5: warning: tag 'math' differs only in case from 'Math' (at {root}/a.yaml:3:5); Anki merges them"
    assert capsys.readouterr().err.splitlines() == [warning]
    assert run_cli("check", root, "--quiet", "--strict") == 1
    assert capsys.readouterr().err.splitlines()[0] == warning


def test_code_that_raises_loops_or_floods_is_reported(tmp_path, capsys, previous_dist):
    root = write_files(
        tmp_path / "cards",
        {
            "a.yaml": """
                deck: D
                type: code
                cards:
                  - id: raises
                    q: Q
                    code: |
                      x = 1
                      y = 0
                      print(x / y)
                  - id: loops
                    q: Q
                    timeout: 1
                    code: |
                      while True:
                          pass
                  - id: floods
                    q: Q
                    code: |
                      print("x" * 5_000_000)
                  - id: expected
                    q: Q
                    expect_error: ValueError
                    code: |
                      print("fine")
                """,
        },
    )
    before = _tree_digest(previous_dist)
    status = run_cli("build", root, "--out", previous_dist, "--quiet", "--cache-dir", tmp_path / "cache")
    err = capsys.readouterr().err.splitlines()
    assert status == 1
    assert err == [
        f"{root}/a.yaml:9: error: code card 'raises' raised ZeroDivisionError: division by zero",
        f"{root}/a.yaml:14: error: code card 'loops' timed out after 1 s",
        f"{root}/a.yaml:19: error: code card 'floods' printed more than 64 KiB; a note should show all of its output",
        f"{root}/a.yaml:24: error: code card 'expected' expects ValueError but ran without an error",
        "deckbuild: build failed: 4 error(s), 0 warning(s); nothing written",
    ]
    assert _tree_digest(previous_dist) == before


def test_list_under_a_paragraph_line_is_a_warning(tmp_path, capsys):
    root = write_files(tmp_path / "cards", {"a.yaml": "deck: D\ncards:\n  - id: x\n    q: Q\n    a: |\n      Uses:\n      - one\n      - two\n"})
    assert run_cli("check", root, "--quiet", "--strict") == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        f"{root}/a.yaml:7:7: warning: this list follows a paragraph line without a blank line, "
        "so Python-Markdown renders it as text; add a blank line before it"
    )


def test_cached_output_is_judged_again_when_expect_error_changes(tmp_path, capsys):
    card = "deck: D\ntype: code\ncards:\n  - id: x\n    q: Q\n    expect_error: {flag}\n    code: |\n      raise ValueError('taught')\n"
    root = write_files(tmp_path / "cards", {"a.yaml": card.format(flag="ValueError")})
    cache = tmp_path / "cache"
    assert run_cli("build", root, "--out", tmp_path / "dist", "--cache-dir", cache, "--quiet") == 0
    (root / "a.yaml").write_text(card.format(flag="false"))
    assert run_cli("build", root, "--out", tmp_path / "dist", "--cache-dir", cache, "--quiet") == 1
    assert capsys.readouterr().err.splitlines()[0] == f"{root}/a.yaml:8: error: code card 'x' raised ValueError: taught"


def test_an_unfenced_code_section_is_reported_and_never_run(tmp_path, capsys):
    """Issue 18, bug 2: the card was reported, yet still built and its text executed."""
    marker = tmp_path / "ran"
    root = write_files(tmp_path / "cards", {"a.md": f"---\ndeck: D\ntype: code\n---\n## Q\nid: x\n\n### code\nopen({str(marker)!r}, 'w')\n"})
    assert run_cli("build", root, "--out", tmp_path / "dist", "--quiet", "--strict") == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{root}/a.md:8:1: error: a '### code' section must hold one fenced code block",
        "deckbuild: build failed: 1 error(s), 0 warning(s); nothing written",
    ]
    assert not marker.exists()
    assert not (tmp_path / "dist").exists()


def test_the_config_chooses_the_math_engine_and_the_command_line_wins(tmp_path, capsys):
    write_files(tmp_path, {"deckbuild.toml": 'math = "latex2mathml"\n', "cards/a.yaml": "deck: D\ncards:\n  - {id: x, q: Q, a: $\\foo$}\n"})
    assert run_cli("check", tmp_path / "cards", "--no-run", "--quiet") == 1
    assert "unknown control sequence \\foo" in capsys.readouterr().err
    assert run_cli("check", tmp_path / "cards", "--no-run", "--quiet", "--math", "temml") == 1
    assert "Unsupported function name: \\foo" in capsys.readouterr().err


def test_symlinks_never_lead_outside_the_source_folder(tmp_path, capsys, previous_dist, monkeypatch):
    """Issue 11: a card file or image linked to a file outside is an error and is never read;
    linked folders (and so link loops) are not followed."""
    outside = write_files(tmp_path / "outside", {"o.yaml": "deck: D\ncards:\n  - {id: outside, q: Q, a: A}\n"})
    root = write_files(tmp_path / "cards", {"a.yaml": "deck: D\ncards:\n  - {id: x, q: 'Q ![i](i.png)', a: A}\n"})
    (root / "link.yaml").symlink_to(outside / "o.yaml")
    (root / "i.png").symlink_to("/etc/passwd")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    read: list[Path] = []
    real_read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: read.append(self.resolve()) or real_read(self))
    before = _tree_digest(previous_dist)
    status = run_cli("build", root, "--out", previous_dist, "--quiet", "--cache-dir", tmp_path / "cache")
    assert status == 1
    assert capsys.readouterr().err.splitlines()[:-1] == [
        f"{root}/a.yaml:3:19: error: image 'i.png': outside the source folder cards/ (images must live with the cards)",
        f"{root}/link.yaml: error: a symlink to a file outside cards/: card files must live in the source folder",
    ]
    assert (root / "a.yaml").resolve() in read
    assert [path for path in read if path.is_relative_to(outside.resolve()) or path == Path("/etc/passwd").resolve()] == []
    assert _tree_digest(previous_dist) == before


def test_linked_folders_and_link_loops_are_not_followed(tmp_path):
    from deckbuild.load import discover, fingerprint

    outside = write_files(tmp_path / "outside", {"o.yaml": GOOD, "o.png": b"\x89PNG"})
    root = write_files(tmp_path / "cards", {"good.yaml": GOOD})
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    assert discover([root]) == ([root / "good.yaml"], [])
    before = fingerprint([root])
    (outside / "o.png").write_bytes(b"\x89PNG changed")
    assert fingerprint([root]) == before  # nothing outside is read, not even to hash it


MD = "---\ndeck: D\n---\n"


def test_markdown_fences_are_read_as_python_markdown_reads_them(tmp_path):
    """Issue 11: a fence of four backticks holding three, a tilde fence holding backticks,
    an unclosed fence (which Python-Markdown shows as text) and CRLF line breaks."""
    from deckbuild.load import load
    from deckbuild.render import render

    root = write_files(tmp_path / "cards", {
        "a.md": MD + "## Q1\nid: one\n\n````\n```\n## not a card\n```\n````\n\n## Q2\nid: two\n\n~~~\n```\n## nor this\n~~~\n\n"
                     "## Q3\nid: three\n\n```python\nunclosed = True\n\n## Q4\nid: four\n\nD\n",
        "b.md": "---\ndeck: D\ntype: code\n---\n## C1\nid: code-four\n\n### code\n````python\nprint('```')\n````\n\n"
                "## C2\nid: code-tilde\n\n### code\n~~~\nprint('~~~ and ```')\n~~~\n",
        "c.md": b"---\r\ndeck: D\r\ntype: code\r\n---\r\n## C3\r\nid: code-crlf\r\n\r\n### code\r\n```\r\nprint(1)\r\n```\r\n",
    })
    loaded = load([root])
    assert loaded.problems == []
    cards = {card.id: card for card in loaded.cards}
    assert list(cards) == ["one", "two", "three", "four", "code-four", "code-tilde", "code-crlf"]
    assert cards["one"].a.value == "````\n```\n## not a card\n```\n````"
    assert cards["two"].a.value == "~~~\n```\n## nor this\n~~~"
    assert cards["three"].a.value == "```python\nunclosed = True"
    assert [cards[i].code.value for i in ("code-four", "code-tilde", "code-crlf")] == ["print('```')", "print('~~~ and ```')", "print(1)"]
    rendered, problems = render([cards["one"], cards["two"]])
    assert problems == []
    assert all("<pre" in r.answer and "## n" in r.answer for r in rendered)
