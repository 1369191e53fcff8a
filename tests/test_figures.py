"""Figures from code cards: drawn by the snippet worker, baked into the note as media, cached."""

from __future__ import annotations

import re
import sqlite3
import zipfile
from pathlib import Path

import pytest

from deckbuild.build import BuildOptions, build
from deckbuild.errors import BuildFailed
from deckbuild.runner import Worker
from tests.conftest import import_package

DRAW = """
    deck: Plots
    type: code
    cards:
      - id: tanh-plot
        q: Where is tanh steepest?
        code: |
          import numpy as np
          import matplotlib.pyplot as plt
          x = np.linspace(-3, 3, 61)
          plt.plot(x, np.tanh(x), label="tanh")
          plt.plot(x, 1 - np.tanh(x) ** 2, label="derivative")
          plt.title("tanh and its slope")
          plt.legend()
          plt.show()
          print(f"slope at 0: {1 - np.tanh(0.0) ** 2:.1f}")
    """


def _build(cards: Path, out: Path, cache: Path | None) -> tuple[Path, object]:
    result = build(BuildOptions(sources=(cards,), out_dir=out, cache_dir=cache, progress=False))
    return out / "plots.apkg", result.report


def _media(package: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(package) as archive:
        import json

        index = json.loads(archive.read("media"))
        return {name: archive.read(number) for number, name in index.items() if not name.startswith("_")}  # not the fonts and manifest


def _output_field(package: Path, tmp_path: Path) -> str:
    with zipfile.ZipFile(package) as archive:
        (tmp_path / "col.anki2").write_bytes(archive.read("collection.anki2"))
    (flds,) = sqlite3.connect(tmp_path / "col.anki2").execute("select flds from notes").fetchone()
    return flds.split("\x1f")[4]


def test_a_figure_is_baked_as_day_and_night_svg_and_imports(project, tmp_path, collection, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    cards = project({"plots.yaml": DRAW})
    package, report = _build(cards, tmp_path / "dist", None)
    output = _output_field(package, tmp_path)
    assert output.index("slope at 0: 1.0") < output.index('<div class="db-figures">')  # next to stdout
    images = re.findall(r'<img class="db-figure (db-day|db-night)" src="([^"]+)" alt="([^"]*)" width="(\d+)" height="(\d+)">', output)
    assert [i[0] for i in images] == ["db-day", "db-night"]
    assert {i[2] for i in images} == {"Figure 1: tanh and its slope"}
    media = _media(package)
    assert sorted(media) == sorted(i[1] for i in images)
    day, night = (media[i[1]] for i in images)
    assert re.fullmatch(r"tanh-plot-figure-1-[0-9a-f]{16}\.svg", images[0][1])
    for svg in (day, night):
        assert b"<svg" in svg[:500] and b"<dc:date>" not in svg
    assert b"#1f2328" in day and b"#1f2328" not in night and b"#e6edf3" in night

    import_package(collection, package)
    folder = Path(collection.media.dir())
    note = collection.get_note(collection.find_notes("")[0])
    for name in re.findall(r'src="([^"]+)"', note["Output"]):
        assert (folder / name).read_bytes() == media[name]


def test_figures_are_reproducible_cached_and_follow_the_snippet(project, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    cards = project({"plots.yaml": DRAW})
    first, report = _build(cards, tmp_path / "one", tmp_path / "cache")
    assert report.snippets_run == 1
    second, _ = _build(cards, tmp_path / "two", tmp_path / "other-cache")  # cold again: the snippet runs again
    assert first.read_bytes() == second.read_bytes()
    warm, report = _build(cards, tmp_path / "warm", tmp_path / "cache")
    assert (report.snippets_run, report.snippets_cached) == (0, 1)
    assert warm.read_bytes() == first.read_bytes()

    (cards / "plots.yaml").write_text((cards / "plots.yaml").read_text().replace("-3, 3, 61", "-2, 2, 41"))
    changed, report = _build(cards, tmp_path / "changed", tmp_path / "cache")
    assert report.snippets_run == 1
    assert not set(_media(changed)) & set(_media(first))


def test_a_tampered_cached_figure_is_not_used(project, tmp_path, monkeypatch):
    cards = project({"plots.yaml": DRAW})
    first, _ = _build(cards, tmp_path / "one", tmp_path / "cache")
    db = sqlite3.connect(tmp_path / "cache" / "cache.sqlite")
    rows = db.execute("select key, value from entries where ns = 'output'").fetchall()
    assert len(rows) == 1
    key, value = rows[0]
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    assert "tanh-plot-figure-1-" in text  # the figures are cached with the text output
    db.execute("update entries set value = ? where ns = 'output'", (b"not a cached output",))
    db.commit()
    db.close()
    again, report = _build(cards, tmp_path / "two", tmp_path / "cache")
    assert report.snippets_run == 1 and again.read_bytes() != b""
    assert _media(again) == _media(first)


@pytest.mark.parametrize(
    "code, message",
    [
        (
            "import matplotlib.pyplot as plt\nfor i in range(500):\n    plt.figure()\n",
            "code card 'bad-plot' raised FigureError: a code card keeps at most 20 figures; close the ones it should not show (plt.close(fig))",
        ),
        (
            "import matplotlib.pyplot as plt\nplt.figure(figsize=(200, 200))\nplt.plot([0, 1])\n",
            "code card 'bad-plot' raised FigureError: figure 1 is 20000 x 20000 px; at most 4000 px a side are kept (figsize x dpi)",
        ),
    ],
)
def test_too_many_or_too_large_figures_are_one_clean_error(project, tmp_path, code, message):
    body = "".join(f"      {line}\n" for line in code.splitlines())
    cards = project({"bad.yaml": f"deck: Plots\ntype: code\ncards:\n  - id: bad-plot\n    q: Draw?\n    code: |\n{body}"})
    with pytest.raises(BuildFailed) as failed:
        build(BuildOptions(sources=(cards,), out_dir=tmp_path / "dist", cache_dir=None, progress=False))
    errors = [str(d) for d in failed.value.diagnostics]
    assert len(errors) == 1
    assert errors[0].endswith(f": error: {message}")
    assert not (tmp_path / "dist").exists()


def test_the_figure_limits_a_worker_is_given_are_the_ones_its_snippets_meet():
    draw = "import matplotlib.pyplot as plt\n"
    with Worker(preload=(), max_figures=1, max_figure_side=300, max_figure_bytes=3000) as worker:
        two = worker.run(draw + "plt.figure(); plt.figure()\n")
        wide = worker.run(draw + "plt.figure(figsize=(4, 2), dpi=100)\n")
        heavy = worker.run(draw + "plt.figure(figsize=(2, 2), dpi=100); plt.plot(range(50), range(50))\n")
        fits = worker.run(draw + "plt.figure(figsize=(2, 2), dpi=100)\n")
    assert two.error_types[0] == "FigureError" and "a code card keeps at most 1 figures" in two.error
    assert "figure 1 is 400 x 200 px; at most 300 px a side are kept" in wide.error
    assert "the figures take more than 3000 bytes" in heavy.error
    assert fits.error is None and len(fits.figures) == 1


def test_figures_close_to_the_byte_limit_come_back_whole():
    # The default limit is 8 MiB of figure files (day and night together); the frame that
    # carries them is base64, a third larger. Noise does not compress, so two ~3 MB PNGs.
    code = ("import numpy as np, matplotlib.pyplot as plt\n"
            "plt.figure(figsize=(6.5, 6.5))\n"
            "plt.imshow(np.random.default_rng(0).random((1248, 1248, 3)), interpolation='nearest')\n"
            "plt.axis('off')\n")
    with Worker(preload=()) as worker:
        result = worker.run(code, timeout=60)
        after = worker.run("print('still here')")
    assert result.error is None, result.error
    (figure,) = result.figures
    total = len(figure.day) + len(figure.night)
    assert 5_000_000 < total <= 8 << 20, total
    assert figure.format == "png" and figure.day.startswith(b"\x89PNG")
    assert after.stdout == "still here\n"  # the same worker: the frame was not a protocol error


def test_the_worker_closes_figures_and_resets_the_style_between_snippets():
    with Worker() as worker:
        first = worker.run("import matplotlib.pyplot as plt, matplotlib as mpl\nplt.figure(); plt.plot([1, 2])\nmpl.rcParams['lines.linewidth'] = 9\n")
        second = worker.run("import matplotlib.pyplot as plt, matplotlib as mpl\nprint(len(plt.get_fignums()), mpl.rcParams['lines.linewidth'], mpl.get_backend())")
        plain = worker.run("print('no figures')")
    assert len(first.figures) == 1 and first.figures[0].format == "svg"
    assert second.stdout == "0 1.5 agg\n" and second.figures == ()
    assert plain.figures == ()


def test_a_heavy_figure_becomes_png_at_twice_the_css_size():
    code = "import numpy as np, matplotlib.pyplot as plt\nplt.scatter(*np.random.rand(2, 20000), s=1)\n"
    with Worker() as worker:
        result = worker.run(code, timeout=60)
    (figure,) = result.figures
    assert figure.format == "png" and figure.day.startswith(b"\x89PNG") and figure.night != figure.day
    from PIL import Image
    import io

    with Image.open(io.BytesIO(figure.day)) as image:
        assert abs(image.width - 2 * figure.width) <= 2 and abs(image.height - 2 * figure.height) <= 2


@pytest.mark.parametrize("tamper", ["bytes", "html"])
def test_a_cached_figure_with_other_bytes_or_no_reference_is_not_used(project, tmp_path, tamper):
    """A cached entry is used only if each figure's bytes give its content-hashed name and
    the cached HTML references it (a shared or edited cache cannot slip in another image)."""
    import base64
    import json

    cards = project({"plots.yaml": DRAW})
    first, _ = _build(cards, tmp_path / "one", tmp_path / "cache")
    db = sqlite3.connect(tmp_path / "cache" / "cache.sqlite")
    [(value,)] = db.execute("select value from entries where ns = 'output'").fetchall()
    html_text, media = json.loads(value)
    assert len(media) == 2 and all(f'src="{name}"' in html_text for name, _ in media)
    if tamper == "bytes":  # the same name, other (valid) bytes
        media[0][1] = base64.b64encode(b"<svg xmlns='http://www.w3.org/2000/svg'/>").decode("ascii")
    else:  # the right bytes, but the HTML no longer names the night figure
        html_text = html_text.replace(f'src="{media[1][0]}"', 'src="elsewhere.svg"')
    new_value = json.dumps([html_text, media])
    db.execute("update entries set value = ? where ns = 'output'", (new_value.encode() if isinstance(value, bytes) else new_value,))
    db.commit()
    db.close()
    again, report = _build(cards, tmp_path / "two", tmp_path / "cache")
    assert report.snippets_run == 1 and report.snippets_cached == 0  # a miss: the snippet ran again
    assert _media(again) == _media(first)
