"""The card template's MathML → MathJax fallback, run in Chromium (Qt WebEngine, as in Anki desktop)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deckbuild import sanitize
from tests.conftest import REPO, import_package, poison_cache, run_cli

import PyQt6.QtWebEngineWidgets  # noqa: E402,F401 - a test dependency: an import error must fail, not skip

CARD = """
    deck: D
    type: fact
    cards:
      - id: x
        q: |
          Inline $a^2$ here.
        a: |
          Display:

          $$\\frac{1}{2}$$
        why: And \\(b < c\\).
    """


def _page(collection, tmp_path, no_mathml: bool, head: str = "", edit=lambda html: html):
    (cid,) = collection.find_cards("")
    card = collection.get_card(cid)
    head = ("<script>window.deckbuildMathML = false;</script>" if no_mathml else "") + head
    page = tmp_path / ("off.html" if no_mathml else "on.html")
    page.write_text(f"<html><head>{head}<style>{card.note_type()['css']}</style></head><body class='card'>{edit(card.answer())}</body></html>")
    done = subprocess.run([sys.executable, str(REPO / "tests" / "webengine" / "render_card.py"), str(page)], capture_output=True, text=True, timeout=120)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, done.stderr[-2000:]
    return json.loads(lines[-1])


@pytest.fixture
def answer_side(project, tmp_path, collection):
    cards = project({"a.yaml": CARD})
    assert run_cli("build", cards, "--out", tmp_path / "dist", "--quiet") == 0
    import_package(collection, tmp_path / "dist" / "d.apkg")
    return collection


def test_mathml_is_detected_and_kept_where_chromium_lays_it_out(answer_side, tmp_path):
    report = _page(answer_side, tmp_path, no_mathml=False)
    assert report["detected"] is True
    assert report["math"] == 3 and report["tex"] == []


def test_without_mathml_every_formula_becomes_tex_for_mathjax(answer_side, tmp_path):
    report = _page(answer_side, tmp_path, no_mathml=True)
    assert report["math"] == 0
    assert report["tex"] == ["\\(a^2\\)", "\\[\\frac{1}{2}\\]", "\\(b < c\\)"]


def _anki_mathjax() -> str:
    """Anki's own MathJax set-up and build (the reviewer loads these two), from aqt's data."""
    import _aqt

    js = Path(next(iter(_aqt.__path__))) / "data" / "web" / "js"
    return (
        f'<script src="{(js / "mathjax.js").as_uri()}"></script>'
        f'<script>window.MathJax.loader.paths.mathjax = "{(js / "vendor" / "mathjax").as_uri()}";</script>'
        f'<script src="{(js / "vendor" / "mathjax" / "tex-chtml-full.js").as_uri()}"></script>'
    )


LINKS = """
    deck: D
    type: fact
    cards:
      - id: x
        q: What is shown?
        a: |
          Kept $y+1$, and &#92;(\\href{javascript:alert(1)}{one}&#92;) as text, and the code `\\(\\href{javascript:alert(4)}{four}\\)`.

          A math element <math><mrow>&#92;(&#92;</mrow>(\\href{javascript:alert(5)}{five}&#92;</math>) split in two.
        why: The forged $a$, $b$ and $c$.
    """


GUARDS = {
    "both": lambda html: html,
    # each guard alone: a note type whose template a user changed, a build that missed a span
    "the sanitizer's spans": lambda html: html.replace(" mathjax_ignore tex2jax_ignore", ""),
    "the template's classes": lambda html: html.replace(sanitize.NO_MATH, "").replace(sanitize.NO_MATH_IN_MATHML, ""),
}


@pytest.mark.parametrize("guard", GUARDS)
def test_anki_mathjax_makes_no_link_from_a_card_or_a_crafted_cache(project, tmp_path, collection, guard):
    """Anki's MathJax typesets the TeX it finds in a card's text, and its ``\\href`` makes a
    live ``javascript:`` link. Neither the text (an escaped ``\\(``, one split across a
    ``<math>`` element's end), nor a crafted render cache (``data-tex``, MathJax's own
    ``mathjax_process`` class on ``<code>``) may reach it; a plain formula still falls back
    to it, and one whose TeX makes a link past the fallback's check loses the link."""
    cards = project({"a.yaml": LINKS})
    cache = tmp_path / "cache"
    assert run_cli("build", cards, "--out", tmp_path / "d1", "--cache-dir", cache, "--quiet") == 0
    forgeries = {'data-tex="a"': 'data-tex="\\href{javascript:alert(2)}{two}"',
                 'data-tex="b"': 'data-tex="\\def\\g#1{\\h#1}\\g{ref}{javascript:alert(3)}{three}"',
                 'data-tex="c"': 'data-tex="\\DeclarePairedDelimiterX{\\f}[1]{}{}{\\delimsizeref{javascript:alert(6)}{six}}\\f[\\h]{}"',
                 "<code>": '<code class="mathjax_process">'}

    def forge(ns, key, value):  # the stored value is JSON text: replace within it as JSON spells it
        for old, new in forgeries.items():
            value = value.replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1]) if ns == "render" else value
        return value

    poison_cache(cache / "cache.sqlite", forge)
    assert run_cli("build", cards, "--out", tmp_path / "d2", "--cache-dir", cache, "--quiet") == 0
    import_package(collection, tmp_path / "d2" / "d.apkg")
    (nid,) = collection.find_notes("")
    note = collection.get_note(nid)
    assert "alert(2)" in note["Why"] and "alert(6)" in note["Why"]  # the forged cache was read

    report = _page(collection, tmp_path, no_mathml=True, head=_anki_mathjax(), edit=GUARDS[guard])
    assert "error" not in report, report
    assert not [link for link in report["links"] if not link.lower().startswith(("http:", "https:", "_", "#"))], report["links"]
    # MathJax ran and typeset the fallbacks of the plain formula and of the one past the
    # check (its link gone); the two forged ones the check knows stayed MathML
    assert report["typeset"] == 2 and report["tex"][0] == "y+1" and report["math"] == 3, report
    for shown in ("\\(\\href{javascript:alert(1)}{one}\\)", "\\(\\href{javascript:alert(4)}{four}\\)", "(\\href{javascript:alert(5)}{five}\\"):
        assert shown in report["text"], report["text"]  # shown as written
