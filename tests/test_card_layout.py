"""Every card of the shipped corpus, both sides, in Chromium (Qt WebEngine) with the package's CSS and media:
nothing past a 360 px phone screen outside a scroll box, no code line hidden at 360 or 1000 px,
and every text at least 4.5:1 contrast (WCAG 2 AA) by day and at night."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from anki.collection import Collection

from tests.conftest import import_package

pytest.importorskip("PyQt6.QtWebEngineWidgets")

from tests.webengine.pages import HERE, card_sides, run_pages, write_pages  # noqa: E402

LAYOUT = (HERE / "layout.js").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def corpus_collection(corpus_build, tmp_path_factory):
    """The shipped corpus built (snippets run) and imported into a real Anki collection."""
    _, result = corpus_build
    root = tmp_path_factory.mktemp("layout")
    biggest = max(result.packages, key=lambda p: Path(p).stat().st_size)
    (root / "anki").mkdir()
    col = Collection(str(root / "anki" / "collection.anki2"))
    import_package(col, biggest)
    yield col
    col.close()


def _problems(results: list) -> str:
    """All problems, one per line ("" if none)."""
    assert all("error" not in r for r in results), results
    return "\n".join(json.dumps(p, ensure_ascii=False) for r in results for p in r["problems"])


def test_every_card_fits_a_phone_with_readable_contrast(corpus_collection):
    sides = card_sides(corpus_collection)
    assert len(sides) == 2 * len(corpus_collection.find_cards(""))
    pages = write_pages(corpus_collection, sides, "card mobile android", stem="phone")
    results = run_pages(pages, LAYOUT, width=360)
    assert sum(r["frames"] for r in results) == len(sides)
    problems = _problems(results)
    assert problems == "", f"{problems.count(chr(10)) + 1} problems:\n{problems}"


def test_no_code_line_is_hidden_on_a_desktop(corpus_collection):
    sides = card_sides(corpus_collection, '"note:deckbuild Code"')
    assert sides
    pages = write_pages(corpus_collection, sides, "card", stem="desktop")
    script = 'window.DB_MODES = [["card"]];\n' + LAYOUT
    results = run_pages(pages, script, width=1000, height=800)
    problems = _problems(results)
    assert problems == "", f"{problems.count(chr(10)) + 1} problems:\n{problems}"
