"""Bugs a mutation audit planted that the suite once missed (issue #18): each test fails if one comes back.

Every test asserts an effect a user would see (a package's bytes, a note's fields in a real
collection, a snippet run again or not, a warning printed), not an internal call.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

import deckbuild.execute as execute
import deckbuild.render as render
from deckbuild.runner import find_python
from tests.conftest import REPO, import_package, run_cli, shell_script, write_files

CODE = """
    deck: D
    type: code
    cards:
      - id: c
        q: What prints?
        code: |
          import sys
          print("to stdout")
          print("to stderr", file=sys.stderr)
    """
FACT = """
    deck: D
    cards:
      - id: x
        source: [fact-01, "a<b>&c"]
        q: What is $x$?
        a: An answer.
    """


def _build(root: Path, *flags: str) -> int:
    return run_cli("build", root / "cards", "--quiet", *flags)


def test_source_field_is_html_escaped(tmp_path, collection):
    write_files(tmp_path / "cards", {"a.yaml": FACT})
    assert _build(tmp_path) == 0
    import_package(collection, tmp_path / "dist" / "d.apkg")
    (nid,) = collection.find_notes("")
    assert collection.get_note(nid)["Source"] == "fact-01, a&lt;b&gt;&amp;c"


def test_the_same_question_twice_in_a_deck_is_a_warning(tmp_path, capsys):
    twice = FACT.rstrip() + "\n      - id: y\n        q: What is   $x$?\n        a: Another.\n"
    write_files(tmp_path / "cards", {"a.yaml": twice})
    assert run_cli("check", tmp_path / "cards", "--quiet") == 0
    assert f"{tmp_path}/cards/a.yaml:7:5: warning: same question as card 'x' ({tmp_path}/cards/a.yaml:3:5)" in capsys.readouterr().err
    assert run_cli("check", tmp_path / "cards", "--quiet", "--strict") == 1


def test_stderr_is_baked_into_the_output(tmp_path, collection):
    write_files(tmp_path / "cards", {"a.yaml": CODE})
    assert _build(tmp_path) == 0
    import_package(collection, tmp_path / "dist" / "d.apkg")
    (nid,) = collection.find_notes("")
    output = collection.get_note(nid)["Output"]
    assert '<pre class="stdout">to stdout\n</pre>' in output
    assert '<pre class="stderr">to stderr\n</pre>' in output


def test_build_flags_no_run_and_no_cache_take_effect(tmp_path, capsys, collection):
    write_files(tmp_path / "cards", {"a.yaml": CODE})
    assert run_cli("build", tmp_path / "cards") == 0
    assert "snippets: 1 run, 0 cached" in capsys.readouterr().out
    assert run_cli("build", tmp_path / "cards", "--no-cache") == 0
    assert "snippets: 1 run, 0 cached" in capsys.readouterr().out
    assert run_cli("build", tmp_path / "cards", "--no-run", "--out", tmp_path / "bare") == 0
    assert "snippets: 0 run, 0 cached" in capsys.readouterr().out
    import_package(collection, tmp_path / "bare" / "d.apkg")
    (nid,) = collection.find_notes("")
    assert collection.get_note(nid)["Output"] == ""


def test_a_new_runner_version_or_output_cap_runs_every_snippet_again(tmp_path, monkeypatch, capsys):
    # What the runner makes of a snippet, and how much of it is kept, is part of the output's cache key.
    write_files(tmp_path / "cards", {"a.yaml": CODE})
    changes = [("RUNNER_VERSION", "next"), ("MAX_OUTPUT_BYTES", 65537), ("MAX_FIGURES", 21), ("MAX_FIGURE_SIDE", 4001), ("MAX_FIGURE_BYTES", 9 << 20)]
    for step, (name, value) in enumerate([(None, None), *changes]):
        if name is not None:
            monkeypatch.setattr(execute, name, value)
        capsys.readouterr()
        # A new output folder each time: a folder's "nothing changed" check would stop the build first
        # (it digests deckbuild's own files, where such a change is made in life).
        assert run_cli("build", tmp_path / "cards", "--out", tmp_path / f"dist-{step}") == 0
        assert "snippets: 1 run, 0 cached" in capsys.readouterr().out, name
    assert run_cli("build", tmp_path / "cards", "--out", tmp_path / "other") == 0  # nothing changed: from the cache
    assert "snippets: 0 run, 1 cached" in capsys.readouterr().out


def test_two_interpreters_with_the_same_versions_do_not_share_outputs(tmp_path, capsys):
    # Two interpreter paths, the same Python, torch, numpy and matplotlib: what else they hold
    # (here an environment variable; in life, other packages) can change what a snippet prints.
    write_files(tmp_path / "cards", {"a.yaml": "deck: D\ntype: code\ncards:\n  - id: c\n    q: Q?\n    code: |\n      import os\n      print('flavour', os.environ['FLAVOUR'])\n"})
    for flavour in ("plain", "spiced"):
        python = shell_script(tmp_path / f"python-{flavour}", f'FLAVOUR={flavour} exec {sys.executable} "$@"')
        capsys.readouterr()
        assert run_cli("build", tmp_path / "cards", "--python", python, "--out", tmp_path / flavour) == 0
        assert "snippets: 1 run, 0 cached" in capsys.readouterr().out, flavour
        with zipfile.ZipFile(tmp_path / flavour / "d.apkg") as archive:
            assert f"flavour {flavour}".encode() in archive.read("collection.anki2")


def test_snippet_runs_again_when_the_interpreters_versions_change(tmp_path):
    # One interpreter path whose torch and numpy report other versions between builds, as after an upgrade:
    # a distribution's metadata earlier on sys.path wins over the installed one.
    fake = tmp_path / "meta"
    python = shell_script(tmp_path / "python", f'PYTHONPATH={fake} exec {sys.executable} "$@"')
    write_files(tmp_path / "cards", {"a.yaml": CODE})

    def build_with(versions: dict[str, str], out: str = "dist") -> str:
        for name, version in versions.items():
            for old in fake.glob(f"{name}-*.dist-info"):
                (old / "METADATA").unlink()
                old.rmdir()
            info = fake / f"{name}-{version}.dist-info"
            info.mkdir(parents=True)
            (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        # The build runs in a fresh process (the versions are asked once per process), importing the
        # deckbuild this test imports: under mutmut, the mutated copy in mutants/src, run from mutants/
        # (where the mutated copy finds mutmut's settings).
        own = Path(execute.__file__).resolve().parents[1]
        done = subprocess.run(
            [sys.executable, "-m", "deckbuild", "build", str(tmp_path / "cards"), "--python", str(python), "--out", str(tmp_path / out)],
            capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(own)}, cwd=own.parent,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "snippets: 1 run, 0 cached" in build_with({"torch": "9.9.8", "numpy": "8.8.8"})
    # Another output folder shares the build cache: the same versions take the output from it.
    assert "snippets: 0 run, 1 cached" in build_with({"torch": "9.9.8", "numpy": "8.8.8"}, out="other")
    assert "snippets: 1 run, 0 cached" in build_with({"torch": "9.9.9", "numpy": "8.8.8"})
    assert "snippets: 1 run, 0 cached" in build_with({"torch": "9.9.9", "numpy": "8.8.9"})


def test_renders_are_redone_when_the_renderer_changes(tmp_path, collection, monkeypatch):
    write_files(tmp_path / "cards", {"a.yaml": FACT})
    assert _build(tmp_path) == 0
    real = render._render_all
    monkeypatch.setattr(render, "_render_all", lambda texts, math: [render.RenderedText(r.html + "<em>new renderer</em>", r.formulas, r.problems) for r in real(texts, math)])
    monkeypatch.setattr(render, "RENDER_VERSION", "a new renderer version")
    (tmp_path / "cards" / "a.yaml").touch()
    assert _build(tmp_path, "--out", tmp_path / "again") == 0
    import_package(collection, tmp_path / "again" / "d.apkg")
    (nid,) = collection.find_notes("")
    assert collection.get_note(nid)["Answer"].endswith("<em>new renderer</em>")


def test_a_bad_formula_fails_warm_builds_too(tmp_path, capsys):
    write_files(tmp_path / "cards", {"a.yaml": FACT.replace("$x$", "$\\frac{1}$")})
    for _ in range(2):
        assert _build(tmp_path) == 1
        assert "error: bad LaTeX in $\\frac{1}$" in capsys.readouterr().err
    assert not (tmp_path / "dist").exists()


def test_printing_nothing_is_warned_on_every_build(tmp_path, capsys):
    silent = CODE.replace('print("to stdout")\n          print("to stderr", file=sys.stderr)', "x = 1")
    write_files(tmp_path / "cards", {"a.yaml": silent})
    for _ in range(2):
        assert run_cli("build", tmp_path / "cards") == 0
        captured = capsys.readouterr()
        assert "warning: code card 'c' printed nothing" in captured.err
        assert "snippets: 1 run, 0 cached" in captured.out


def test_warm_build_parses_and_renders_nothing_but_sees_an_edit(tmp_path, monkeypatch):
    import deckbuild.load as load

    write_files(tmp_path / "cards", {"a.yaml": FACT, "b.yaml": FACT.replace("id: x", "id: z").replace("deck: D", "deck: E")})
    assert _build(tmp_path) == 0
    parsed: list[Path] = []
    rendered: list[str] = []
    real_parse, real_render = load.parse_file, render._render_all
    monkeypatch.setattr(load, "parse_file", lambda path, data: parsed.append(path) or real_parse(path, data))
    monkeypatch.setattr(render, "_render_all", lambda texts, math: rendered.extend(texts) or real_render(texts, math))
    assert _build(tmp_path) == 0
    assert parsed == [] and rendered == []
    (tmp_path / "cards" / "b.yaml").write_text((tmp_path / "cards" / "b.yaml").read_text().replace("An answer.", "A new answer."))
    assert _build(tmp_path) == 0
    assert parsed == [tmp_path / "cards" / "b.yaml"]
    assert rendered == ["A new answer."]


def _venv_without_torch(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    assert subprocess.run([python, "-c", "import torch"], capture_output=True, timeout=60).returncode != 0
    return python


def test_find_python_skips_an_interpreter_without_torch(tmp_path, monkeypatch):
    bare = _venv_without_torch(tmp_path / "bare")
    with_torch = Path(sys.executable)  # this venv (REPO/.venv would miss under mutmut, which runs from mutants/)
    assert find_python([str(bare)]) is None
    assert find_python([str(bare), str(with_torch)]) == str(with_torch)
    # The default candidates, looked up on PATH: python3 has no torch, python has.
    for name, target in (("python3", bare), ("python", with_torch)):  # wrappers: a venv's python must be called by its own path
        shell_script(tmp_path / "bin" / name, f'exec {target} "$@"')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert find_python() == str(tmp_path / "bin" / "python")


@pytest.mark.parametrize("epoch", ["1700000000", "1800000000"])
def test_addon_package_follows_source_date_epoch(tmp_path, monkeypatch, epoch):
    sys.path.insert(0, str(REPO / "addon"))
    try:
        import build as addon_build  # addon/build.py
    finally:
        sys.path.remove(str(REPO / "addon"))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
    with zipfile.ZipFile(addon_build.build(tmp_path / "a.ankiaddon")) as archive:
        dates = {info.date_time for info in archive.infolist()}
    assert dates == {time.gmtime(int(epoch))[:6]}


def test_cache_keys_follow_deckbuilds_own_code(tmp_path, monkeypatch):
    import hashlib

    import deckbuild.cache as cache

    here = Path(cache.__file__).parent
    expected = cache.content_key(cache.FORMAT, *(hashlib.sha256((here / m).read_bytes()).hexdigest() for m in ("render.py", "latex.py")))
    assert cache.code_version("render.py", "latex.py") == expected
    assert cache.code_version("render.py") != cache.code_version("load.py")
    # An edited module gives another version: a copy of the package with one byte changed.
    copy = tmp_path / "deckbuild"
    copy.mkdir()
    for name in ("cache.py", "render.py"):
        (copy / name).write_bytes((here / name).read_bytes())
    (copy / "render.py").write_bytes((here / "render.py").read_bytes() + b"\n# edited\n")
    original = cache.code_version("render.py")
    monkeypatch.setattr(cache, "__file__", str(copy / "cache.py"))
    assert cache.code_version("render.py") != original


def test_prune_never_touches_an_anki_package_that_is_not_deckbuilds(tmp_path, capsys):
    import genanki

    write_files(tmp_path / "cards", {"a.yaml": FACT})
    assert _build(tmp_path) == 0
    deck = genanki.Deck(2059400110, "Someone else's deck")
    deck.add_note(genanki.Note(model=genanki.BASIC_MODEL, fields=["front", "back"]))
    foreign = tmp_path / "dist" / "theirs.apkg"
    genanki.Package(deck).write_to_file(foreign)
    before = foreign.read_bytes()
    assert run_cli("build", tmp_path / "cards", "--quiet", "--prune") == 0
    assert "theirs.apkg" not in capsys.readouterr().err
    assert foreign.read_bytes() == before
