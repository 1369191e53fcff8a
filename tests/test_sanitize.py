"""No card, build cache or kept note store can put a script into a deck: Anki runs the
scripts a field holds each time its card is shown, with ``pycmd`` in reach."""

from __future__ import annotations

import json
import sqlite3

import pytest

from deckbuild import sanitize
from deckbuild.load import load
from deckbuild.render import render
from tests.conftest import REPO, import_package, poison_cache, run_cli

HOSTILE = [
    # (what the card's answer holds, column of the error on line 6, the error's message)
    ("Fine. <script>document.title = 'ran'</script>", 13,
     "<script> is not HTML a card may hold: to show it as text, write it in backticks or as &lt;script&gt;"),
    ('<div onclick="pycmd(\'deckbuild:run\')">press</div>', 12,
     "the attribute 'onclick' of <div> is not allowed in a card: Anki runs a card's event handlers and scripts each time it is shown"),
    ("See [the paper](javascript:alert(1)).", 23,
     "a link in a card may use only http:, https:, mailto: or a media file, not 'javascript:'"),
    ('<iframe src="https://example.org"></iframe>', 7,
     "<iframe> is not HTML a card may hold: to show it as text, write it in backticks or as &lt;iframe&gt;"),
    ('<span style="position: fixed; inset: 0">over everything</span>', 20,
     "a card's style attribute may set only --indent, display, math-depth, padding-left, padding-right, text-align, not 'position'"),
    ("The model emits <unk> for it.", 23,
     "<unk> is not HTML a card may hold: to show it as text, write it in backticks or as &lt;unk&gt;"),
    ('<span style="text-align:center;position:fixed">x</span>', 38,
     "a card's style attribute may set only --indent, display, math-depth, padding-left, padding-right, text-align, not 'position'"),
    ('<p style="background-image: url(https://example.org/a.png)">x</p>', 17,
     "a card's style attribute may set only --indent, display, math-depth, padding-left, padding-right, text-align, not 'background-image'"),
    ('<svg onload="alert(1)"><circle r="4"/></svg>', 7,
     "<svg> is not HTML a card may hold: to show it as text, write it in backticks or as &lt;svg&gt;"),
    ('Code <code class="lang mathjax_process">\\(x\\)</code>.', 30,
     "the class 'mathjax_process' is MathJax's own (it tells Anki's MathJax where to read TeX): a card may not set it"),
    ('A <!--><b onclick="x()">b</b>-->', 17,  # HTML5 (nh3, Anki) ends the comment at once
     "the attribute 'onclick' of <b> is not allowed in a card: Anki runs a card's event handlers and scripts each time it is shown"),
    ('A <!-- x --!><b onclick="x()">b</b>-->', 23,  # and at --!>
     "the attribute 'onclick' of <b> is not allowed in a card: Anki runs a card's event handlers and scripts each time it is shown"),
    ("x " + "<span>" * 300 + "deep" + "</span>" * 300, 9,
     f"HTML nested deeper than {sanitize.MAX_DEPTH} elements is not HTML a card may hold"),
]


@pytest.mark.parametrize("answer, column, message", HOSTILE, ids=["script", "handler", "js-link", "iframe", "style", "unknown", "style-mixed", "style-url", "svg", "mathjax-class", "comment-end", "comment-bang-end", "too-deep"])
def test_html_that_anki_would_run_or_hide_is_a_located_error_and_nothing_is_written(answer, column, message, project, tmp_path, capsys):
    cards = project({"deck.yaml": f"deck: D\ncards:\n  - id: one\n    q: What is shown?\n    a: |\n      {answer}\n"})
    assert run_cli("build", cards, "--out", tmp_path / "dist", "--quiet") == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert errors == [f"{cards / 'deck.yaml'}:6:{column}: error: {message} (docs/format.md lists the HTML a card may hold)"]
    assert not (tmp_path / "dist").exists()


def test_the_html_a_card_author_may_write_reaches_anki_as_written(project, tmp_path, collection):
    answer = (
        "Press <kbd>Ctrl</kbd>+<kbd>C</kbd>; H<sub>2</sub>O, x<sup>2</sup>, <mark>marked</mark>, "
        '<abbr title="Kullback-Leibler">KL</abbr>, [a paper](https://arxiv.org/abs/1706.03762).\n\n'
        "<details><summary>More</summary>Hidden until opened.</details>\n\n"
        "<details open><summary>Open</summary>Shown.</details>\n"
    )
    cards = project({"deck.yaml": "deck: D\ncards:\n  - id: one\n    q: What is shown?\n    a: |\n"
                     + "".join(f"      {line}\n" for line in answer.splitlines())})
    assert run_cli("build", cards, "--out", tmp_path / "dist", "--quiet") == 0
    import_package(collection, tmp_path / "dist" / "d.apkg")
    (nid,) = collection.find_notes("")
    field = collection.get_note(nid)["Answer"]
    for kept in ("<kbd>Ctrl</kbd>", "H<sub>2</sub>O", "x<sup>2</sup>", "<mark>marked</mark>",
                 '<abbr title="Kullback-Leibler">KL</abbr>', '<a href="https://arxiv.org/abs/1706.03762">a paper</a>',
                 "<details><summary>More</summary>Hidden until opened.</details>", '<details open="">'):
        assert kept in field


@pytest.mark.parametrize("engine", ["temml", "latex2mathml"])
def test_the_allowlist_keeps_everything_deckbuild_renders_for_the_corpus(engine, corpus_build):
    """Every field of every shipped card, as the renderer makes it (Markdown, Pygments and
    each math engine's MathML), loses nothing to the sanitizer: it only re-spells it."""
    root, _ = corpus_build
    cards = load([REPO / "cards"]).cards
    rendered, problems = render(cards, None if engine != "temml" else _cache(root), engine)
    assert problems == []
    fields = [getattr(r, name) for r in rendered for name in
              ("question", "answer", "topic", "why", "follow_up", "follow_up_answer", "code_html")]
    assert sum("<math" in f for f in fields) > 500 and sum("codehilite" in f for f in fields) > 40
    assert [f[:200] for f in fields if sanitize.first_removed(f) is not None] == []
    assert all(sanitize.is_clean(sanitize.clean(f)) for f in fields)  # a fixed point, as kept stores are checked


def _cache(root):
    from deckbuild.cache import Cache

    return Cache(root / "cache")


def test_the_corpus_baked_output_loses_nothing_to_the_sanitizer(corpus_build):
    """Every snippet's baked output (stdout, stderr, exception, figures, timing line), as
    the output cache holds it before it is cleaned into a note."""
    root, _ = corpus_build
    db = sqlite3.connect(root / "cache" / "cache.sqlite")
    outputs = [json.loads(value)[0] for (value,) in db.execute("select value from entries where ns = 'output'")]
    db.close()
    assert len(outputs) == 44 and sum("db-figures" in o for o in outputs) >= 8
    assert [o[:200] for o in outputs if sanitize.first_removed(o) is not None] == []


def test_a_crafted_render_or_output_cache_cannot_put_a_script_into_a_deck(project, tmp_path, collection, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    cards = project({"a.yaml": (
        "deck: D\ncards:\n  - id: plain\n    type: fact\n    q: What is $2 + 2$?\n    a: '**4**'\n"
        "  - id: snippet\n    type: code\n    q: What does this print?\n    code: |\n      print(6 * 7)\n"
    )})
    cache = tmp_path / "cache"
    assert run_cli("build", cards, "--out", tmp_path / "d1", "--cache-dir", cache, "--quiet") == 0
    forged = {"render": 0, "output": 0}

    def forge(ns, key, value):
        if ns in forged:
            new = value.replace("<p>", "<p><script>forged()</script><img src=x onerror=forged()>SEEN ")
            new = new.replace("<pre", "<pre onmouseover=forged()").replace("42", "SEEN42")
            forged[ns] += new != value
            return new
        return value

    poison_cache(cache / "cache.sqlite", forge)
    assert forged["render"] >= 2 and forged["output"] >= 1
    assert run_cli("build", cards, "--out", tmp_path / "d2", "--cache-dir", cache, "--quiet") == 0
    import_package(collection, tmp_path / "d2" / "d.apkg")
    notes = {collection.get_note(n)["Id"]: dict(collection.get_note(n).items()) for n in collection.find_notes("")}
    # the forged values were read (their text is there: the cache was not simply missed) and lost their scripts
    assert "SEEN <strong>4</strong>" in notes["plain"]["Answer"] and "SEEN42" in notes["snippet"]["Output"]
    assert not [v for note in notes.values() for v in note.values() if "forged" in v]


@pytest.mark.parametrize("html, expected", [
    ("<p>a \\(x\\) b</p>", f"<p>a \\{sanitize.NO_MATH}(x\\{sanitize.NO_MATH}) b</p>"),
    ("<p>\\[x\\]</p>", f"<p>\\{sanitize.NO_MATH}[x\\{sanitize.NO_MATH}]</p>"),
    ("<pre><code>re.sub(r'\\(', '')</code></pre>", "<pre><code>re.sub(r'\\(', '')</code></pre>"),
    ("<p><code>\\(</code> then \\(</p>", f"<p><code>\\(</code> then \\{sanitize.NO_MATH}(</p>"),
    ("<pre><code>a</code>\\(</pre>\\(", f"<pre><code>a</code>\\(</pre>\\{sanitize.NO_MATH}("),
    ('<p title="\\(x\\)">t</p>', '<p title="\\(x\\)">t</p>'),
    ("<p>\\\\ and \\$ and \\alpha</p>", "<p>\\\\ and \\$ and \\alpha</p>"),
    # a span where the HTML parser reads MathML would end the <math> element: an <mrow> instead
    ("<math>\\(</math>", f"<math>\\{sanitize.NO_MATH_IN_MATHML}(</math>"),
    ("<math><mrow>a\\)</mrow><mi>\\(</mi></math>", f"<math><mrow>a\\{sanitize.NO_MATH_IN_MATHML})</mrow><mi>\\{sanitize.NO_MATH}(</mi></math>"),
    ("<math><mi><b>\\(</b></mi></math>", f"<math><mi><b>\\{sanitize.NO_MATH}(</b></mi></math>"),
    ("<math><annotation>\\(</annotation></math><br>\\(", f"<math><annotation>\\(</annotation></math><br>\\{sanitize.NO_MATH}("),
    ("<p><code>a<br>b</code> \\(</p>", f"<p><code>a<br>b</code> \\{sanitize.NO_MATH}(</p>"),  # a void element inside code
], ids=["inline", "display", "code-block", "code-span", "nested", "attribute", "other-escapes",
        "in-mathml", "in-mathml-token", "in-html-in-mathml", "annotation-then-void", "void-in-code"])
def test_tex_delimiters_in_a_fields_text_are_kept_from_anki_mathjax(html, expected):
    """Anki's MathJax would typeset ``\\(…\\)`` in a field's text (tests/test_mathml_fallback.py
    shows its ``\\href`` link); MathJax skips code and attributes, which stay as written."""
    assert sanitize.clean(html) == expected
    assert sanitize.is_clean(expected)


@pytest.mark.parametrize("html, expected", [
    ('<code class="x  mathjax_process">a</code><p class="tex2jax_ignore">b</p><i class="MathJax_Preview y">c</i>',
     '<code class="x">a</code><p>b</p><i class="y">c</i>'),
    ("a\ud800b", "a\ufffdb"),  # a lone surrogate (a crafted cache's JSON can hold one)
    ("<b>" * (sanitize.MAX_DEPTH + 1) + "\\(", "&lt;b&gt;" * (sanitize.MAX_DEPTH + 1) + "\\" + sanitize.NO_MATH + "("),
    ("<b>" * sanitize.MAX_DEPTH + "x", "<b>" * sanitize.MAX_DEPTH + "x" + "</b>" * sanitize.MAX_DEPTH),
    ("<p>" + "<br>" * 1000 + "</p>", "<p>" + "<br>" * 1000 + "</p>"),
    ('<b title="t">' * 300, '&lt;b title="t"&gt;' * 300),  # kept as text, its quotes as they are
    ("<i>a</i>" * 300, "<i>a</i>" * 300),  # many elements, none inside another
    ("<i>a</i>" + "<b>" * 256 + "x", "<i>a</i>" + "<b>" * 256 + "x" + "</b>" * 256),  # a closed element is no deeper
    ("<b>" * 200 + "<i></i>" + "<b>" * 57 + "\\(", "&lt;b&gt;" * 200 + "&lt;i&gt;&lt;/i&gt;" + "&lt;b&gt;" * 57 + "\\" + sanitize.NO_MATH + "("),
    ('<b class="a mathjax_process b">x</b>', '<b class="a b">x</b>'),
], ids=["mathjax-classes", "surrogate", "too-deep-is-text", "deep-enough", "void-elements", "too-deep-quotes", "many-shallow", "deep-enough-after-a-sibling", "too-deep-after-a-sibling", "classes-kept-around"])
def test_what_clean_changes_besides_the_allowlist(html, expected):
    """MathJax's classes go, a field nested past nh3's fair time is kept as text, and clean
    returns instead of raising on text UTF-8 cannot hold."""
    assert sanitize.clean(html) == expected
    assert sanitize.is_clean(expected)


LINK = "a link in a card may use only http:, https:, mailto: or a media file, not '{}'"


@pytest.mark.parametrize("html, needle", [
    ('<a href="JavaScript:alert(1)">x</a>', "JavaScript:"),
    ('<a href="java&#9;script:alert(1)">x</a>', "javascript:"),  # a browser drops the tab
    ('<img src="javascript:alert(1)">', "javascript:"),
    ('<img src="vbscript:x" alt="y">', "vbscript:"),
    ('<a href="data:text/html,x">x</a>', "data:"),
], ids=["upper-case", "tab-in-scheme", "img-src", "other-scheme", "data"])
def test_a_refused_link_is_named_by_its_scheme_as_a_browser_reads_it(html, needle):
    assert sanitize.first_removed(html) == (needle, LINK.format(needle))
    assert "script" not in sanitize.clean(html) and "data:" not in sanitize.clean(html)
