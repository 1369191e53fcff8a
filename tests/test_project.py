"""Projects: ``deckbuild init``, the config file, GUID namespaces and the CLI around them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import genanki
import pytest

from deckbuild.config import load_project
from deckbuild.package import note_guid
from tests.conftest import REPO, import_package, run_cli, write_files

ONE_CARD = """
    deck: {deck}
    cards:
      - id: softmax
        q: {q}
        a: "1"
    """


def test_init_builds_and_imports_into_real_anki(tmp_path: Path, collection, capsys):
    assert run_cli("init", tmp_path / "mine") == 0
    capsys.readouterr()
    os.chdir(tmp_path / "mine")
    assert run_cli("build", "--quiet") == 0
    packages = sorted(p.name for p in (tmp_path / "mine" / "dist").iterdir())
    assert packages == ["my-deck-basics.apkg", "my-deck-markdown.apkg", "my-deck.apkg"]
    assert (tmp_path / "mine" / ".deckbuild-cache").is_dir()
    import_package(collection, tmp_path / "mine" / "dist" / "my-deck.apkg")
    assert len(collection.find_notes("")) == 4
    code = collection.get_note(collection.find_notes("softmax-in-torch")[0])
    assert "tensor([0.0900, 0.2450, 0.6650])" in code["Output"]
    assert (tmp_path / "mine" / ".gitignore").read_text().split() == ["dist/", ".deckbuild-cache/"]


def test_init_never_overwrites(tmp_path: Path, capsys):
    write_files(tmp_path, {"cards/more.md": "mine\n"})
    assert run_cli("init", tmp_path) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        f"{tmp_path}/cards/more.md: error: already exists; deckbuild init writes only into a new project"
    )
    assert not (tmp_path / "deckbuild.toml").exists()
    assert (tmp_path / "cards" / "more.md").read_text() == "mine\n"


def test_two_initialised_projects_with_the_same_card_id_are_two_notes(tmp_path: Path, collection, capsys):
    for name in ("one", "two"):
        assert run_cli("init", tmp_path / name) == 0
        assert run_cli("build", tmp_path / name / "cards", "--quiet", "--no-run") == 0
        import_package(collection, tmp_path / name / "dist" / "my-deck.apkg")
    assert len(collection.find_notes("Id:softmax-sums-to-one")) == 2


def test_default_namespace_keeps_projects_with_different_top_decks_apart(tmp_path: Path, collection):
    for name in ("Alpha", "Beta"):
        write_files(tmp_path / name, {"cards/a.yaml": ONE_CARD.format(deck=name, q=f"{name}?")})
        assert run_cli("build", tmp_path / name / "cards", "--quiet") == 0
        import_package(collection, tmp_path / name / "dist" / f"{name.lower()}.apkg")
    fronts = sorted(collection.get_note(n)["Question"] for n in collection.find_notes("Id:softmax"))
    assert fronts == ["<p>Alpha?</p>", "<p>Beta?</p>"]


def test_the_shipped_corpus_keeps_its_pinned_namespace():
    project = load_project([REPO / "cards"])
    assert project.config == REPO / "deckbuild.toml"
    assert project.guid_namespace == "deckbuild"
    # The GUID every shipped note has had since the first release.
    assert note_guid("kf-tensor-rank-from-shape", project.guid_namespace) == "pm-R`G{mc("
    assert genanki.guid_for("deckbuild", "kf-tensor-rank-from-shape") == "pm-R`G{mc("


def test_outputs_and_cache_live_beside_the_project_not_the_current_folder(tmp_path: Path):
    write_files(tmp_path / "deck", {"cards/a.yaml": ONE_CARD.format(deck="D", q="Q?")})
    (tmp_path / "elsewhere").mkdir()
    os.chdir(tmp_path / "elsewhere")
    assert run_cli("build", tmp_path / "deck" / "cards", "--quiet") == 0
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert (tmp_path / "deck" / "dist" / "d.apkg").is_file()
    assert (tmp_path / "deck" / ".deckbuild-cache" / "cache.sqlite").is_file()


def test_config_sets_sources_output_and_cache(tmp_path: Path):
    write_files(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "x"\n\n[tool.deckbuild]\nsources = ["notes"]\nout = "build/decks"\ncache_dir = "build/cache"\n',
            "notes/a.yaml": ONE_CARD.format(deck="D", q="Q?"),
            "notes/sub/keep.txt": "not a card",
        },
    )
    os.chdir(tmp_path / "notes" / "sub")
    assert run_cli("build", "--quiet") == 0
    assert (tmp_path / "build" / "decks" / "d.apkg").is_file()
    assert (tmp_path / "build" / "cache" / "cache.sqlite").is_file()


@pytest.mark.parametrize(
    "text, expected",
    [
        ('sources = ["cards"]\noutt = "x"\n', "deckbuild.toml:2:1: error: unknown config key 'outt' (known: sources, out, cache_dir, guid_namespace, math, python, strict)"),
        ('out = 3\n', "deckbuild.toml:1:1: error: config key 'out' must be a string"),
        ('sources = "cards"\n', "deckbuild.toml:1:1: error: config key 'sources' must be a list of folder names"),
        ('math = "mathjax"\n', "deckbuild.toml:1:1: error: config key 'math' must be one of temml, latex2mathml"),
        ('guid_namespace = " "\n', "deckbuild.toml:1:1: error: config key 'guid_namespace' must not be empty"),
        ('out = "dist\n', "deckbuild.toml:1:12: error: bad TOML: Illegal character '\\n'"),
    ],
)
def test_config_errors_are_located(tmp_path: Path, capsys, text, expected):
    write_files(tmp_path, {"deckbuild.toml": text, "cards/a.yaml": ONE_CARD.format(deck="D", q="Q?")})
    assert run_cli("build", "--quiet") == 1
    assert capsys.readouterr().err.splitlines()[0] == f"{tmp_path}/{expected}"
    assert not (tmp_path / "dist").exists()


def test_out_naming_a_file_is_an_error(tmp_path: Path, capsys):
    write_files(tmp_path, {"cards/a.yaml": ONE_CARD.format(deck="D", q="Q?")})
    assert run_cli("build", "cards", "--out", "mine.apkg") == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        "error: --out takes a folder, and mine.apkg is a file name; the package names come from the deck names"
    )
    assert not (tmp_path / "mine.apkg").exists()


def test_stale_packages_are_reported_and_pruned_but_foreign_ones_never(tmp_path: Path, capsys):
    two = ONE_CARD.format(deck="Top::Two", q="Q2?").replace("softmax", "other")
    write_files(tmp_path, {"cards/a.yaml": ONE_CARD.format(deck="Top::One", q="Q?"), "cards/b.yaml": two})
    assert run_cli("build", "cards", "--quiet") == 0
    (tmp_path / "dist" / "mine.apkg").write_bytes(b"PK not deckbuild's")
    (tmp_path / "cards" / "b.yaml").unlink()
    capsys.readouterr()
    assert run_cli("build", "cards", "--quiet") == 0
    stale = tmp_path / "dist" / "top-two.apkg"
    assert capsys.readouterr().err.splitlines() == [f"{stale}: left stale package (this build no longer makes it; --prune deletes it)"]
    assert stale.exists()
    assert run_cli("build", "cards", "--quiet", "--prune") == 0
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == ["mine.apkg", "top-one.apkg", "top.apkg"]
    # Reading the packages' collections (in memory) leaves no file behind in the working folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == [".deckbuild-cache", "cards", "dist"]


def test_a_stale_package_that_cannot_be_removed_is_a_clear_error(tmp_path: Path, capsys, monkeypatch):
    two = ONE_CARD.format(deck="Top::Two", q="Q2?").replace("softmax", "other")
    write_files(tmp_path, {"cards/a.yaml": ONE_CARD.format(deck="Top::One", q="Q?"), "cards/b.yaml": two})
    assert run_cli("build", "cards", "--quiet") == 0
    (tmp_path / "cards" / "b.yaml").unlink()
    stale = tmp_path / "dist" / "top-two.apkg"
    real = Path.unlink

    def unlink(path, missing_ok=False):
        if path == stale:
            raise PermissionError(13, "Permission denied")
        return real(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    capsys.readouterr()
    assert run_cli("build", "cards", "--quiet", "--prune") == 1
    err = capsys.readouterr().err
    assert f"error: cannot remove {stale}: Permission denied" in err.splitlines() and "Traceback" not in err
    assert stale.exists()


def test_unknown_flag_shows_the_subcommand_usage(capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli("check", "--outt", "x")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: deckbuild check ")
    assert "deckbuild check: error: unrecognized arguments: --outt\n" in err


def test_check_takes_builds_flags_and_uses_the_cache(tmp_path: Path, capsys):
    code = """
        deck: D
        type: code
        cards:
          - id: c
            q: What prints?
            code: print(6 * 7)
        """
    write_files(tmp_path, {"cards/a.yaml": code})
    assert run_cli("check", "cards", "--cache-dir", "c") == 0
    assert "snippets: 1 run, 0 cached" in capsys.readouterr().out
    assert run_cli("check", "cards", "--cache-dir", "c") == 0
    assert "snippets: 0 run, 1 cached" in capsys.readouterr().out
    assert run_cli("check", "cards", "--cache-dir", "c", "--no-cache") == 0
    assert "snippets: 1 run, 0 cached" in capsys.readouterr().out
    assert run_cli("check", "cards", "--no-run") == 0
    assert "snippets: 0 run, 0 cached" in capsys.readouterr().out
    assert not (tmp_path / "dist").exists()
    shutil.rmtree(tmp_path / "c")
