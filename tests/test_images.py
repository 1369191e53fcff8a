"""Images in card text: read by the loader, packaged under content-hashed names, imported by real Anki."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import import_package, run_cli


def _png(colour: str, size=(8, 6)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), "green").save(out, format="JPEG")
    return out.getvalue()


SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'

TWO_DECKS = {
    "a/cards.yaml": """
        deck: Pics::A
        cards:
          - id: red-box
            q: |
              Which colour is the box? ![a red box](img/plot.png)
            a: Red, as in ![the same red box](img/plot.png) and ![a square](img/square.svg).
        """,
    "a/img/plot.png": _png("red"),
    "a/img/square.svg": SVG,
    "b/cards.md": """
        ---
        deck: Pics::B
        ---

        ## Which colour is this box? ![a blue box](plot.png)
        id: blue-box

        Blue. ![a photo](photo.jpeg)
        """,
    "b/plot.png": _png("blue"),
    "b/photo.jpeg": _jpeg(),
}


def test_images_reach_a_real_collection_under_hashed_names(project, tmp_path, collection):
    cards = project(TWO_DECKS)
    assert run_cli("build", cards, "--out", tmp_path / "dist", "--quiet") == 0
    import_package(collection, tmp_path / "dist" / "pics.apkg")

    folder = Path(collection.media.dir())
    stored = {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.startswith("_")}  # not the fonts and manifest every package has
    # Two files named plot.png with different bytes: two media files; the one used twice: once.
    assert len(stored) == 4
    plots = sorted(name for name in stored if name.startswith("plot-"))
    assert len(plots) == 2 and {stored[p] for p in plots} == {_png("red"), _png("blue")}
    assert any(re.fullmatch(r"square-[0-9a-f]{16}\.svg", n) for n in stored)
    assert any(re.fullmatch(r"photo-[0-9a-f]{16}\.jpeg", n) for n in stored)

    fields = "".join(collection.get_note(nid).joined_fields() for nid in collection.find_notes(""))
    sources = re.findall(r'<img [^>]*src="([^"]+)"', fields)
    assert len(sources) == 5
    assert set(sources) == set(stored)  # every <img> names a packaged file, and every file is used
    assert 'alt="a red box"' in fields and 'alt="a blue box"' in fields
    red = collection.get_note(collection.find_notes("Id:red-box")[0])
    assert stored[re.search(r'src="([^"]+)"', red["Question"]).group(1)] == _png("red")


def test_editing_an_image_changes_its_name_and_the_note(project, tmp_path, collection):
    cards = project(TWO_DECKS)
    assert run_cli("build", cards, "--out", tmp_path / "dist", "--quiet") == 0
    first = tmp_path / "first.apkg"
    first.write_bytes((tmp_path / "dist" / "pics.apkg").read_bytes())
    (cards / "a/img/plot.png").write_bytes(_png("orange"))  # only the image changes
    assert run_cli("build", cards, "--out", tmp_path / "dist", "--quiet") == 0
    assert (tmp_path / "dist" / "pics.apkg").read_bytes() != first.read_bytes()

    import_package(collection, first)
    import_package(collection, tmp_path / "dist" / "pics.apkg")
    red = collection.get_note(collection.find_notes("Id:red-box")[0])
    name = re.search(r'src="([^"]+)"', red["Question"]).group(1)
    assert (Path(collection.media.dir()) / name).read_bytes() == _png("orange")


@pytest.mark.parametrize(
    "src, files, message",
    [
        ("img/missing.png", {}, "no such file"),
        ("../outside.png", {}, "outside the source folder cards/ (images must live with the cards)"),
        ("img/link.png", {}, "outside the source folder cards/ (images must live with the cards)"),
        ("img/text.png", {"img/text.png": b"just some text\n"}, "not a PNG image (its bytes are of no image type)"),
        ("img/photo.png", {"img/photo.png": _jpeg()}, "not a PNG image: its bytes are JPEG"),
        ("img/fake.svg", {"img/fake.svg": b"<html><body/></html>"}, "not an SVG image (its root element is <html>)"),
        ("img/cut.png", {"img/cut.png": _png("red", (64, 64))[:60]}, None),
        ("img/pic.bmp", {}, "unsupported type '.bmp' (use PNG, JPEG, GIF, WebP or SVG)"),
        ("https://example.org/a.png", {}, "a URL; cards must work offline, so save the image beside the card and write a relative path"),
        ("/etc/a.png", {}, "write a path relative to the card file"),
    ],
)
def test_bad_images_are_one_located_error_each(project, tmp_path, capsys, src, files, message):
    (tmp_path / "outside.png").write_bytes(_png("red"))
    cards = project({"deck.yaml": f"deck: Pics\ncards:\n  - id: pic\n    q: What is shown?\n    a: |\n      See ![it]({src}).\n", **files})
    (cards / "img").mkdir(exist_ok=True)
    os.symlink(tmp_path / "outside.png", cards / "img" / "link.png")
    assert run_cli("build", cards, "--out", tmp_path / "dist", "--quiet") == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert len(errors) == 1
    prefix = f"{cards / 'deck.yaml'}:6:11: error: image '{src}': "
    assert errors[0].startswith(prefix)
    if message is not None:
        assert errors[0] == prefix + message
    else:
        assert errors[0].startswith(prefix + "a damaged PNG file")
    assert not (tmp_path / "dist").exists()


def test_raw_html_img_is_an_error(project, tmp_path, capsys):
    cards = project({"deck.yaml": 'deck: Pics\ncards:\n  - id: pic\n    q: What is shown?\n    a: |\n      See <img src="a.png">.\n'})
    assert run_cli("build", cards, "--out", tmp_path / "dist", "--quiet") == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        f"{cards / 'deck.yaml'}:6:11: error: a raw HTML <img> is not packaged with the deck: write the image as ![alt](path)"
    )
