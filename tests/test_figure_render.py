"""A figure card and an image card as Anki shows them, laid out by Chromium (Qt WebEngine):
on a desktop and at phone width, in day and night mode.

Set DECKBUILD_UPDATE_SCREENSHOT=1 to copy the screenshots into docs/images/.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import REPO, import_package, run_cli

pytest.importorskip("PyQt6.QtWebEngineWidgets")

CARDS = {
    "figures.yaml": """
        deck: Demo::Figures
        type: code
        cards:
          - id: demo-softmax-temperature
            q: |
              How does the temperature $T$ reshape $\\mathrm{softmax}(z / T)$?
            code: |
              import torch
              import matplotlib.pyplot as plt

              z = torch.tensor([3.0, 2.0, 1.0, 0.5, -1.0])
              for t in (0.5, 1.0, 2.0, 5.0):
                  p = torch.softmax(z / t, dim=0)
                  plt.plot(p, marker="o", label=f"T = {t}")
                  print(f"T={t}: top p = {p[0].item():.3f}")
              plt.xlabel("class"); plt.ylabel("probability"); plt.legend()
              plt.title("softmax(z / T)")
            a: |
              Lower $T$ sharpens the distribution, higher $T$ flattens it; the ranking stays.
        """,
    "images.md": """
        ---
        deck: Demo::Figures
        ---

        ## What colour is the wide box? ![a wide orange box](img/wide.png)
        id: demo-wide-image

        Orange.
        """,
}
WIDE = (1600, 200)  # px: wider than any phone


def _wide_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", WIDE, "#db6d12").save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """Build, import into a real collection, and write each card's answer side as a page
    next to the collection's media, in day and night mode."""
    from anki.collection import Collection

    tmp = tmp_path_factory.mktemp("figure-render")
    cards = tmp / "cards"
    (cards / "img").mkdir(parents=True)
    for name, text in CARDS.items():
        import textwrap

        (cards / name).write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    (cards / "img" / "wide.png").write_bytes(_wide_png())
    assert run_cli("build", cards, "--out", tmp / "dist", "--cache-dir", tmp / "cache", "--quiet") == 0
    (tmp / "anki").mkdir()
    col = Collection(str(tmp / "anki" / "collection.anki2"))
    try:
        import_package(col, tmp / "dist" / "demo.apkg")
        media = Path(col.media.dir())
        out = {}
        for cid in col.find_cards(""):
            card = col.get_card(cid)
            note = card.note()
            for mode in ("day", "night"):
                classes = "card nightMode" if mode == "night" else "card"
                page = media / f"{note['Id']}-{mode}.html"
                page.write_text(
                    f"<html><head><meta charset='utf-8'><style>{card.note_type()['css']}</style></head>"
                    f"<body class='{classes}'>{card.answer()}</body></html>",
                    encoding="utf-8",
                )
                out[(note["Id"], mode)] = page
    finally:
        col.close()
    return tmp, out


def _render(width: int, pages: list[Path], shots: Path | None = None) -> list[dict]:
    args = [sys.executable, str(REPO / "tests" / "webengine" / "figure_card.py"), str(width), *map(str, pages)]
    if shots is not None:
        args += ["--shots", str(shots)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=180)
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == len(pages), done.stderr[-3000:]
    return reports


@pytest.mark.parametrize("width", [800, 380])  # a desktop window, a phone in portrait (CSS px)
def test_figures_and_images_load_fit_the_width_and_follow_night_mode(pages, width):
    tmp, paths = pages
    keys = sorted(paths)
    shots = tmp / f"shots-{width}"
    shots.mkdir(exist_ok=True)
    reports = dict(zip(keys, _render(width, [paths[k] for k in keys], shots)))
    for (card_id, mode), report in reports.items():
        shown = [i for i in report["images"] if i["shown"]]
        assert shown, (card_id, mode)
        for image in shown:
            assert image["loaded"], image  # the file is in the collection's media under that name
            assert 0 < image["width"] <= report["viewport"], image  # never wider than the card
        if card_id == "demo-softmax-temperature":
            classes = sorted(i["cls"] for i in report["images"])
            assert classes == ["db-figure db-day", "db-figure db-night"]
            assert [i["cls"] for i in shown] == [f"db-figure db-{mode}"]
        else:
            (image,) = shown
            assert image["width"] < WIDE[0]  # scaled down to the card width
    if os.environ.get("DECKBUILD_UPDATE_SCREENSHOT"):
        target = REPO / "docs" / "images"
        for mode in ("day", "night"):
            shutil.copyfile(shots / f"demo-softmax-temperature-{mode}.png", target / f"figure-card-{'desktop' if width == 800 else 'phone'}-{mode}.png")
