"""The card template's MathML → MathJax fallback, run in Chromium (Qt WebEngine, as in Anki desktop)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, import_package, run_cli

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


def _page(collection, tmp_path, no_mathml: bool):
    (cid,) = collection.find_cards("")
    card = collection.get_card(cid)
    head = "<script>window.deckbuildMathML = false;</script>" if no_mathml else ""
    page = tmp_path / ("off.html" if no_mathml else "on.html")
    page.write_text(f"<html><head>{head}<style>{card.note_type()['css']}</style></head><body class='card'>{card.answer()}</body></html>")
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
