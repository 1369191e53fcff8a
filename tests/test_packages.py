"""Package names are unique, and a build replaces every package or none (failures, interrupts)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deckbuild.package import SLUG_BYTES, _short_hash, slug
from tests.conftest import import_package, run_cli


def _deck_file(deck: str, card_id: str) -> str:
    return f"deck: '{deck}'\ncards:\n  - id: {card_id}\n    q: Question {card_id}?\n    a: Answer {card_id}.\n"


def _notes_in(package: Path, tmp_path: Path) -> list[str]:
    """Import ``package`` into a fresh real Anki collection; return its notes' ids, sorted."""
    from anki.collection import Collection

    folder = tmp_path / f"anki-{package.name}"
    folder.mkdir()
    col = Collection(str(folder / "c.anki2"))
    try:
        import_package(col, package)
        return sorted(col.get_note(n)["ID"] if "ID" in col.get_note(n) else col.get_note(n).fields[0] for n in col.find_notes(""))
    finally:
        col.close()


def _tree(folder: Path) -> dict[str, bytes | str]:
    return {p.name: p.read_bytes() if p.is_file() else "folder" for p in sorted(folder.iterdir())}


@pytest.mark.parametrize(
    "decks, names",
    [
        (("X::Real", "X::!!!"), ["x-real.apkg", "x.apkg"]),  # '!!!' has no letters: its slug is the top's
        (("数学::代数", "数学::几何"), ["数学-代数.apkg", "数学-几何.apkg", "数学.apkg"]),
        (("ML::Key Facts", "ML::key-facts"), ["ml-key-facts.apkg", "ml.apkg"]),
        (("CON::A", "CON::B"), ["con-a.apkg", "con-b.apkg", "con-deck.apkg"]),  # Windows cannot create con.apkg
    ],
)
def test_package_names_never_collide(decks, names, project, tmp_path, capsys):
    cards = project({f"{i}.yaml": _deck_file(deck, f"card-{i}") for i, deck in enumerate(decks)})
    out = tmp_path / "out"
    assert run_cli("build", cards, "--out", out, "--quiet") == 0
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 3  # all decks, and one per collection: none overwrote another
    assert set(names) <= set(files)
    everything = out / names[-1]
    assert _notes_in(everything, tmp_path) == ["card-0", "card-1"]
    collections = [out / f for f in files if f != names[-1]]
    assert sorted(n for package in collections for n in _notes_in(package, tmp_path)) == ["card-0", "card-1"]


def test_decks_under_two_top_decks_go_into_all_apkg_and_a_top_deck_has_no_package_of_its_own(project, tmp_path):
    cards = project({"0.yaml": _deck_file("Alpha", "card-0"), "1.yaml": _deck_file("Beta::Gamma", "card-1")})
    out = tmp_path / "out"
    assert run_cli("build", cards, "--out", out, "--quiet") == 0
    # Alpha has no collection (it is a top deck alone); Beta::Gamma is one.
    assert sorted(p.name for p in out.iterdir()) == ["all.apkg", "beta-gamma.apkg"]
    assert _notes_in(out / "all.apkg", tmp_path) == ["card-0", "card-1"]
    assert _notes_in(out / "beta-gamma.apkg", tmp_path) == ["card-1"]


@pytest.mark.parametrize(
    "name, expected",
    [
        ("!!! ???", "deck"),  # nothing to keep
        ("", "deck"),
        ("ML::Key Facts", "ml-key-facts"),
        ("数学::代数", "数学-代数"),
        ("Nul", "nul-deck"),
        ("a" * SLUG_BYTES, "a" * SLUG_BYTES),  # exactly the limit: kept whole
    ],
)
def test_slug_follows_its_documented_rules(name, expected):
    assert slug(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "a" * (SLUG_BYTES + 1),
        "a" * (SLUG_BYTES - 10) + " " + "b" * 20,  # the cut ends on the separator
        "数" * SLUG_BYTES,  # 3-byte characters: the cut falls inside one
        "é" * SLUG_BYTES,  # 2-byte characters
    ],
    ids=["ascii", "separator-at-cut", "cjk", "latin"],
)
def test_a_long_slug_is_cut_to_the_limit_on_a_character_boundary_and_ends_in_a_hash(name):
    result = slug(name)
    assert len(result.encode("utf-8")) <= SLUG_BYTES
    assert result.endswith("-" + _short_hash(name)) and "--" not in result
    head = result[: -len(_short_hash(name)) - 1]
    assert head and "-".join(name.casefold().split()).startswith(head) and not head.endswith("-")
    if name.isascii() and " " not in name:
        assert len(result.encode("utf-8")) == SLUG_BYTES  # nothing shorter than it must be


def test_a_very_long_deck_name_gives_a_file_name_the_file_system_accepts(project, tmp_path):
    cards = project({"a.yaml": _deck_file("Top::" + "Überlange Namen " * 40, "long")})
    out = tmp_path / "out"
    assert run_cli("build", cards, "--out", out, "--quiet") == 0
    (collection,) = [p for p in out.iterdir() if p.name != "top.apkg"]
    assert len(collection.name.encode()) <= 255 and collection.name.startswith("top-überlange-namen-")
    assert _notes_in(collection, tmp_path) == ["long"]


def test_decks_anki_treats_as_one_are_one_error_naming_both(project, tmp_path, capsys):
    cards = project({"a.yaml": _deck_file("ML::Key Facts", "one"), "b.yaml": _deck_file("ml::key facts", "two")})
    out = tmp_path / "out"
    assert run_cli("build", cards, "--out", out, "--quiet") == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{cards}/b.yaml:3:5: error: deck 'ml' differs only in case from deck 'ML' (at {cards}/a.yaml:3:5); Anki treats them as one deck",
        "deckbuild: build failed: 1 error(s), 0 warning(s); nothing written",
    ]
    assert not out.exists()


def test_a_deck_named_like_another_decks_hashed_file_name_is_an_error_naming_both(project, tmp_path, capsys):
    # 'X::Y~' has the slug of 'X::Y', so it takes 'x-y-<its hash>.apkg', which the deck
    # literally named that (sorted before it) already took.
    taker = f"X::Y-{_short_hash('X::Y~')}"
    cards = project({"a.yaml": _deck_file("X::Y", "one"), "b.yaml": _deck_file(taker, "two"), "c.yaml": _deck_file("X::Y~", "three")})
    out = tmp_path / "out"
    assert run_cli("build", cards, "--out", out, "--quiet") == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{cards}/c.yaml:3:5: error: decks '{taker}' (at {cards}/b.yaml:3:5) and 'X::Y~' would both be written to "
        f"{slug(taker)}.apkg; rename one",
        "deckbuild: build failed; nothing written",
    ]
    assert not out.exists()


@pytest.fixture
def built(project, tmp_path):
    """A project with decks Prev::Alpha and Prev::Zeta built once into out/; returns (cards, out, before)."""
    cards = project({"a.yaml": _deck_file("Prev::Alpha", "alpha"), "z.yaml": _deck_file("Prev::Zeta", "zeta")})
    out = tmp_path / "out"
    assert run_cli("build", cards, "--out", out, "--quiet") == 0
    assert sorted(p.name for p in out.iterdir()) == ["prev-alpha.apkg", "prev-zeta.apkg", "prev.apkg"]
    before = _tree(out)
    for name in ("a.yaml", "z.yaml"):
        (cards / name).write_text((cards / name).read_text().replace("Answer", "New answer"))
    return cards, out, before


def test_a_folder_in_the_way_fails_before_any_package_is_replaced(built, capsys):
    cards, out, before = built
    (out / "prev-zeta.apkg").unlink()
    (out / "prev-zeta.apkg").mkdir()
    del before["prev-zeta.apkg"]
    assert run_cli("build", cards, "--out", out, "--quiet") == 1
    assert capsys.readouterr().err.splitlines()[0] == f"error: cannot write {out}/prev-zeta.apkg: a folder is in the way"
    assert _tree(out) == {**before, "prev-zeta.apkg": "folder"}


def _no_hard_links(*args, **kwargs):
    """Stands in for ``os.link`` on a file system without hard links (FAT, some network shares)."""
    raise OSError(1, "Operation not permitted")


def test_a_backup_that_cannot_be_made_names_its_package_and_changes_nothing(built, monkeypatch, capsys):
    # No hard links, and the copy of the first package fails: nothing has been renamed yet.
    import deckbuild.package as package

    cards, out, before = built

    def no_copy(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(package.os, "link", _no_hard_links)
    monkeypatch.setattr(package.shutil, "copy2", no_copy)
    assert run_cli("build", cards, "--out", out, "--quiet") == 1
    assert capsys.readouterr().err.splitlines()[0] == f"error: cannot write {out}/prev.apkg: No space left on device"
    assert _tree(out) == before


@pytest.mark.parametrize("where", ["plain", "no-hard-links", "symlink", "symlink-no-hard-links"])
def test_a_rename_failing_half_way_puts_the_previous_packages_back(where, built, monkeypatch, capsys, tmp_path):
    # "no-hard-links": a file system without them (FAT, some network shares) gets copies as
    # backups; "symlink": a package that is a symbolic link comes back as that same link.
    import deckbuild.package as package

    cards, out, before = built
    if where.endswith("no-hard-links"):
        monkeypatch.setattr(package.os, "link", _no_hard_links)
    if where.startswith("symlink"):
        elsewhere = tmp_path / "elsewhere.apkg"
        os.replace(out / "prev.apkg", elsewhere)
        (out / "prev.apkg").symlink_to(elsewhere)
    real = os.replace
    failed = []

    def replace(src, dst):
        if Path(dst).name == "prev-zeta.apkg" and not failed:  # the last of the three renames
            failed.append(dst)
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(package.os, "replace", replace)
    assert run_cli("build", cards, "--out", out, "--quiet") == 1
    assert failed
    assert capsys.readouterr().err.splitlines()[0] == f"error: cannot write {out}/prev-zeta.apkg: No space left on device"
    assert _tree(out) == before  # prev.apkg and prev-alpha.apkg were renamed, then put back; no temporary file
    if where.startswith("symlink"):
        assert (out / "prev.apkg").is_symlink() and (out / "prev.apkg").readlink() == elsewhere


@pytest.mark.parametrize("raised", [KeyboardInterrupt, RuntimeError])
def test_any_error_or_interrupt_while_a_package_is_written_leaves_no_temporary_file(built, raised, monkeypatch, tmp_path):
    """Issue 18, bug 1: only package-write errors used to remove the first package's temporary file."""
    import deckbuild.package as package

    cards, out, before = built
    real = package.write_package
    parent, calls = os.getpid(), []

    def failing(pkg, path, timestamp, *media):
        if os.getpid() == parent:
            calls.append(path)
            # the first package is written, the second fails
            if len(calls) == 2:
                raise raised("stop")
        return real(pkg, path, timestamp, *media)

    monkeypatch.setattr(package, "write_package", failing)
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    if raised is RuntimeError:
        with pytest.raises(RuntimeError):
            run_cli("build", cards, "--out", out, "--quiet")
    else:
        assert run_cli("build", cards, "--out", out, "--quiet") == (130 if raised is KeyboardInterrupt else 1)
    assert _tree(out) == before
    assert list(tmp.iterdir()) == []


def test_a_build_leaves_only_its_packages_and_one_kept_store(project, tmp_path):
    # The note store is a hidden temporary database: in the cache folder when there is a
    # cache (kept there for the next build), in the output folder with --no-cache (removed).
    # (an output folder whose parents do not exist yet is made with them)
    cards = project({"a.yaml": _deck_file("Only::One", "one")})
    out, bare = tmp_path / "out", tmp_path / "not" / "yet" / "there"
    assert run_cli("build", cards, "--out", out, "--quiet") == 0
    assert run_cli("build", cards, "--out", bare, "--no-cache", "--quiet") == 0
    assert list(_tree(out)) == list(_tree(bare)) == ["only-one.apkg", "only.apkg"]
    stores = [name for name in _tree(tmp_path / ".deckbuild-cache") if "anki2" in name]
    assert len(stores) == 1 and stores[0].startswith("notes-") and stores[0].endswith(".anki2")


def test_a_build_stopped_after_its_notes_are_made_keeps_an_empty_output_folder_the_user_made(project, tmp_path, monkeypatch):
    # A stopped build removes an output folder only if it made it; one that was there stays.
    import deckbuild.package as package

    def failing(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C while the first package is written

    monkeypatch.setattr(package, "write_package", failing)
    cards = project({"a.yaml": _deck_file("Only::One", "one")})
    made, existing = tmp_path / "made", tmp_path / "existing"
    existing.mkdir()
    assert run_cli("build", cards, "--out", made, "--quiet") == 130
    assert run_cli("build", cards, "--out", existing, "--no-cache", "--quiet") == 130
    assert not made.exists() and existing.is_dir() and list(_tree(existing)) == []
    assert [name for name in _tree(tmp_path / ".deckbuild-cache") if name.endswith(".tmp")] == []


def test_an_output_folder_that_cannot_be_made_is_named_with_the_reason(project, tmp_path, capsys):
    cards = project({"a.yaml": _deck_file("Only::One", "one")})
    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / "file" / "out"
    assert run_cli("build", cards, "--out", out, "--quiet") == 1
    assert capsys.readouterr().err.splitlines()[0] == f"error: cannot write {out}: Not a directory"
    assert (tmp_path / "file").read_text() == "not a folder"


def test_a_note_store_used_alone_removes_its_database_and_the_folder_it_made(tmp_path):
    # build() also sweeps its temporary files at the end; the store's own close must do it
    # for any other caller (NoteStore's docstring).
    from deckbuild.notetypes import NOTE_TYPES
    from deckbuild.package import NoteStore

    out = tmp_path / "out"
    with NoteStore(out, {spec.id: 1 for spec in NOTE_TYPES.values()}, 1_700_000_000_000) as store:
        path = store.path
        assert path.parent == out and path.exists()
    assert not path.exists() and not out.exists()


def test_a_store_that_cannot_be_made_in_the_cache_folder_is_made_in_the_output_folder(project, tmp_path, monkeypatch):
    # The cache opened, yet its folder takes no new file (full, or its quota reached): the
    # store is made in the output folder, and moved beside the cache at the end if it can be.
    import deckbuild.package as package
    from deckbuild.errors import PackageError

    real, refused = package._reserve, []

    def reserve(target, suffix):
        if target.parent.name == ".deckbuild-cache":
            refused.append(target)
            raise PackageError(f"cannot write {target}: Disk quota exceeded")
        return real(target, suffix)

    monkeypatch.setattr(package, "_reserve", reserve)
    cards = project({"a.yaml": _deck_file("Only::One", "one")})
    out = tmp_path / "out"
    assert run_cli("build", cards, "--out", out, "--quiet") == 0
    assert refused and list(_tree(out)) == ["only-one.apkg", "only.apkg"]
    assert _notes_in(out / "only.apkg", tmp_path) == ["one"]
