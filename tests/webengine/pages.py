"""Helpers for tests that look at cards in Qt WebEngine: card sides as Anki renders them, batched
into pages in the collection's media folder (so the package's fonts load), measured by run_pages.py."""

from __future__ import annotations

import html
import json
import subprocess
import sys
from pathlib import Path

from anki.collection import Collection

HERE = Path(__file__).resolve().parent


def card_sides(col: Collection, search: str = "") -> list[tuple[str, str, str]]:
    """Return ``(label, side HTML, note type CSS)`` for the question and answer of every card found,
    as Anki's own template renderer makes them (label: ``"<Id field> card<ord+1> q|a"``)."""
    sides = []
    for cid in sorted(col.find_cards(search)):
        card = col.get_card(cid)
        output = card.render_output()
        name = f"{card.note()['Id']} card{card.ord + 1}"
        css = card.note_type()["css"]
        sides += [(f"{name} q", output.question_text, css), (f"{name} a", output.answer_text, css)]
    return sides


def write_pages(col: Collection, sides: list[tuple[str, str, str]], classes: str, per_page: int = 80, stem: str = "page") -> list[Path]:
    """Write ``sides`` into HTML pages of ``per_page`` sides each, each side in a
    ``<div class="db-frame {classes}">`` (the classes Anki puts on the card's body)."""
    folder = Path(col.media.dir())
    pages = []
    for start in range(0, len(sides), per_page):
        batch = sides[start : start + per_page]
        styles = "\n".join(dict.fromkeys(css for _, _, css in batch))
        frames = "\n".join(f'<div class="db-frame {classes}" data-card="{html.escape(name)}">{body}</div>' for name, body, _ in batch)
        page = folder / f"{stem}-{start // per_page:03d}.html"
        page.write_text(
            '<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
            f"<style>html {{ scrollbar-width: none; }} body {{ margin: 0; }}\n{styles}</style></head><body>{frames}</body></html>",
            encoding="utf-8",
        )
        pages.append(page)
    return pages


def run_pages(pages: list[Path], script: str, width: int, height: int = 640, timeout: float = 600) -> list:
    """Load each page at ``width`` x ``height`` CSS px in Qt WebEngine and return what ``script`` returned on each."""
    jobs = pages[0].parent / f"jobs-{width}.json"
    jobs.write_text(json.dumps({"script": script, "pages": [{"path": str(p), "width": width, "height": height} for p in pages]}))
    done = subprocess.run([sys.executable, str(HERE / "run_pages.py"), str(jobs)], capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert lines, done.stderr[-3000:]
    return json.loads(lines[-1])
