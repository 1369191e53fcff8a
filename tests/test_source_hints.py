"""Source mistakes a newcomer makes, each one located error that says what to do.

YAML's own messages ("expected <block end>, but found '?'") name the parser's state, not
the writer's mistake; these cases pin the message deckbuild gives instead, its line and
column, and that a double-quoted TeX string never reaches a card corrupted.
"""

from __future__ import annotations

import pytest

from tests.conftest import run_cli, write_files

QUOTE = "put the whole value in single quotes, or write it as a '|' block on the lines below"
HEAD = "deck: D\ncards:\n  - id: x\n"
SURROGATE = (
    "double-quoted YAML turned this escape into half of a UTF-16 surrogate pair, which is not a character: "
    "write the character itself, or one escape for it ('\\U0001F600')"
)

CASES = [
    ("double-quoted-frac", HEAD + '    q: "$\\frac{1}{2}$ and $\\theta$"\n    a: b\n',
     "a.yaml:4:10: error: double-quoted YAML turned '\\f' into a form feed: write TeX in a '|' block or in single quotes, where a backslash stays a backslash"),
    ("double-quoted-beta", HEAD + '    q: What is "$x$"?\n    a: "$\\beta$"\n',
     "a.yaml:5:10: error: double-quoted YAML turned '\\b' into a backspace: write TeX in a '|' block or in single quotes, where a backslash stays a backslash"),
    ("double-quoted-nabla-next-line", HEAD + '    q: "first line\n      then $\\nabla f$"\n    a: b\n',
     "a.yaml:5:13: error: double-quoted YAML turned '\\n' into a line break: write TeX in a '|' block or in single quotes, where a backslash stays a backslash"),
    ("lone-surrogate", HEAD + '    q: "x \\ud800 y"\n    a: b\n',
     f"a.yaml:4:11: error: {SURROGATE}"),
    ("surrogate-pair-as-two-escapes", HEAD + '    q: ok\n    a: "\\U0001F600 is fine, \\ud83d\\ude00 is not"\n',
     f"a.yaml:5:29: error: {SURROGATE}"),
    ("md-front-matter-surrogate", {"a.md": '---\ndeck: "D\\udc00"\n---\n\n## Question?\nid: x\n\nAnswer.\n'},
     f"a.md:2:9: error: {SURROGATE}"),
    ("tab-indent", "deck: D\ncards:\n\t- id: x\n",
     "a.yaml:3:1: error: YAML syntax error: a tab character: YAML indents with spaces only (and a tab cannot start a value)"),
    ("alias-star", HEAD + "    q: **3** is it\n    a: b\n",
     f"a.yaml:4:8: error: YAML syntax error: a value starting with '*' is read as YAML syntax (an alias (a reference to an '&' anchor)): {QUOTE}"),
    ("anchor-amp", HEAD + "    q: &x is it\n    a: b\n",
     f"a.yaml:4:8: error: a value starting with '&' loses its first word to YAML (an anchor): {QUOTE}"),
    ("tag-bang", HEAD + "    q: !important fact\n    a: b\n",
     f"a.yaml:4:8: error: a value starting with '!' loses its first word to YAML (a tag): {QUOTE}"),
    ("flow-list", HEAD + "    q: [1, 2] is a list\n    a: b\n",
     f"a.yaml:4:15: error: YAML syntax error: a value starting with '[' is read as YAML syntax (a list): {QUOTE}"),
    ("folded", HEAD + "    q: > 3 is bigger\n    a: b\n",
     f"a.yaml:4:8: error: YAML syntax error: a value starting with '>' is read as YAML syntax (a folded block): {QUOTE}"),
    ("literal", HEAD + "    q: |x| is the absolute value\n    a: b\n",
     f"a.yaml:4:8: error: YAML syntax error: a value starting with '|' is read as YAML syntax (a literal block): {QUOTE}"),
    ("at-sign", HEAD + "    q: '@user'\n    a: @handle\n",
     f"a.yaml:5:8: error: YAML syntax error: a value starting with '@' is read as YAML syntax (reserved): {QUOTE}"),
    ("percent", HEAD + "    q: '%5'\n    a: %5 of them\n",
     f"a.yaml:5:8: error: YAML syntax error: a value starting with '%' is read as YAML syntax (a directive): {QUOTE}"),
    ("colon-in-value", HEAD + "    q: Ratio: 3 to 1\n    a: b\n",
     f"a.yaml:4:13: error: YAML syntax error: ': ' inside an unquoted value starts a new key: {QUOTE}"),
    ("bad-indent", HEAD + "    q: hi\n   a: b\n",
     "a.yaml:5:4: error: YAML syntax error: this line's indentation does not match the keys above it (YAML nests by indentation: align the card's keys with spaces)"),
    ("text-line-not-a-key", HEAD + "    q: hi\n    this is text\n  - id: y\n",
     "a.yaml:5:5: error: YAML syntax error: this line is neither 'key: value' nor part of a text block: to write text over several lines, start the value with '|' and indent the lines below it"),
    ("quote-never-closed", HEAD + '    q: "hi\n    a: b\n',
     "a.yaml:4:8: error: YAML syntax error: this quoted value is never closed (a closing quote is missing)"),
    ("nul-byte", HEAD + "    q: a\x00b\n    a: b\n",
     "a.yaml:4:9: error: character U+0000 is not allowed in YAML (a control character): delete it"),
    ("md-blank-line-after-heading", {"a.md": "---\ndeck: D\n---\n\n## Question?\n\nid: x\n\nAnswer.\n"},
     "a.md:7:1: error: 'id:' must come right below the '## ' heading: remove the blank line between them"),
    ("md-tab-indented-key", {"a.md": "---\ndeck: D\n---\n\n## Question?\n\tid: x\n\nAnswer.\n"},
     "a.md:6:2: error: 'id:' is indented: write card keys at the start of the line (indented lines are code in Markdown)"),
]


@pytest.mark.parametrize("name, source, expected", CASES, ids=[c[0] for c in CASES])
def test_mistake_is_one_located_error_with_the_fix(name, source, expected, tmp_path, capsys):
    files = source if isinstance(source, dict) else {"a.yaml": source}
    root = write_files(tmp_path / "cards", files)
    assert run_cli("build", root, "--quiet") == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("deckbuild: ")]
    assert lines == [f"{root}/{expected}"]
    assert not (tmp_path / "dist").exists()


def test_single_quotes_and_blocks_keep_tex_intact(tmp_path, collection):
    from tests.conftest import import_package

    source = HEAD + "    q: '$\\frac{1}{2}$ and $\\theta$'\n    a: |\n      $\\beta$ and \"$\\nabla$\"\n"
    root = write_files(tmp_path / "cards", {"a.yaml": source})
    assert run_cli("build", root, "--quiet") == 0
    import_package(collection, tmp_path / "dist" / "d.apkg")
    note = collection.get_note(collection.find_notes("")[0])
    assert "\\frac{1}{2}" in note["Question"] and "\\theta" in note["Question"]
    assert not any(ch in note["Question"] + note["Answer"] for ch in "\x08\x0c\t")
