"""Note identity and note times in built packages: GUIDs from the GUID namespace, note times
that follow every part of a note's content, and the note record kept per output folder.

Each test builds a small project and reads what the package holds (its ``collection.anki2``)
or imports it into a real Anki collection. Added after the mutation run (docs/testing.md):
each one fails under a mutant the earlier tests let through.
"""

from __future__ import annotations

import json
import sqlite3
import zipfile
from pathlib import Path

import pytest

from deckbuild.package import note_guid
from tests.conftest import import_package, package_manifest, run_cli, write_files

CARDS = """
    deck: Top::Sub
    type: qa
    tags: [one]
    cards:
      - id: first
        q: What is first?
        a: This.
      - id: second
        q: What is second?
        a: That.
    """


def _notes_in(package: Path, tmp_path: Path) -> dict[str, tuple[str, int, str]]:
    """Card id → (GUID, modification time, tags) of every note in ``package``'s collection."""
    database = tmp_path / f"{package.name}.anki2"
    with zipfile.ZipFile(package) as archive:
        database.write_bytes(archive.read("collection.anki2"))
    db = sqlite3.connect(database)
    try:
        rows = db.execute("select flds, guid, mod, tags from notes").fetchall()
    finally:
        db.close()
    database.unlink()
    return {flds.split("\x1f")[0]: (guid, mod, tags.strip()) for flds, guid, mod, tags in rows}


def _build(root: Path, *extra: str) -> int:
    return run_cli("build", root / "cards", "--quiet", *extra)


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """The builds' clock (epoch seconds), set by the test: ``clock[0] += 60`` is a minute later."""
    now = [1_700_000_000.0]
    monkeypatch.setattr("time.time", lambda: now[0])
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    return now


def _edit_source(root: Path, old: str, new: str) -> None:
    path = root / "cards" / "a.yaml"
    path.write_text(path.read_text().replace(old, new))


def test_guids_come_from_the_configured_namespace_and_follow_a_change_of_it(tmp_path, collection):
    write_files(tmp_path, {"cards/a.yaml": CARDS})
    assert _build(tmp_path) == 0  # no deckbuild.toml: the namespace is the top-level deck's
    package = tmp_path / "dist" / "top.apkg"
    default = {cid: guid for cid, (guid, _, _) in _notes_in(package, tmp_path).items()}
    assert default == {cid: note_guid(cid, "deck:Top") for cid in ("first", "second")}

    write_files(tmp_path, {"deckbuild.toml": 'sources = ["cards"]\nguid_namespace = "ns-7f3a"\n'})
    assert _build(tmp_path) == 0  # same cards, same cache: only the namespace changed
    for name in ("top.apkg", "top-sub.apkg"):
        guids = {cid: guid for cid, (guid, _, _) in _notes_in(tmp_path / "dist" / name, tmp_path).items()}
        assert guids == {cid: note_guid(cid, "ns-7f3a") for cid in ("first", "second")}, name
        # The manifest names the same GUIDs: the add-on's clean-up of removed notes matches by them.
        assert {n["id"]: n["guid"] for n in package_manifest(tmp_path / "dist" / name)["notes"]} == guids, name
    import_package(collection, package)
    assert sorted(collection.get_note(n).guid for n in collection.find_notes("")) == sorted(
        note_guid(cid, "ns-7f3a") for cid in ("first", "second")
    )


@pytest.mark.parametrize(
    "edit",
    [
        ("tags: [one]", "tags: [two]"),  # tags only
        ("deck: Top::Sub", "deck: Top::Other"),  # deck only
        ("type: qa", "type: fact"),  # note type only: a Q&A card without a topic has a fact's fields
    ],
    ids=["tags", "deck", "type"],
)
def test_a_note_whose_tags_deck_or_type_alone_change_gets_a_newer_time(edit, tmp_path, clock):
    write_files(tmp_path, {"cards/a.yaml": CARDS})
    assert _build(tmp_path) == 0
    before = _notes_in(tmp_path / "dist" / "top.apkg", tmp_path)
    assert {mod for _, mod, _ in before.values()} == {1_700_000_000}
    clock[0] += 60
    _edit_source(tmp_path, *edit)
    assert _build(tmp_path) == 0
    after = _notes_in(tmp_path / "dist" / "top.apkg", tmp_path)
    assert {cid: mod for cid, (_, mod, _) in after.items()} == {"first": 1_700_000_060, "second": 1_700_000_060}


def test_a_tag_edit_alone_reaches_the_collection(tmp_path, collection, clock):
    write_files(tmp_path, {"cards/a.yaml": CARDS})
    assert _build(tmp_path) == 0
    import_package(collection, tmp_path / "dist" / "top.apkg")
    clock[0] += 60
    _edit_source(tmp_path, "tags: [one]", "tags: [two]")
    assert _build(tmp_path) == 0
    log = import_package(collection, tmp_path / "dist" / "top.apkg")
    assert len(log.updated) == 2
    assert {tuple(collection.get_note(n).tags) for n in collection.find_notes("")} == {("two",)}


def test_two_output_folders_sharing_one_cache_keep_a_record_each(tmp_path, capsys):
    write_files(tmp_path, {"cards/a.yaml": CARDS})
    a, b = tmp_path / "dist-a", tmp_path / "dist-b"
    for out in (a, b):
        assert _build(tmp_path, "--out", str(out)) == 0
        assert sorted(p.name for p in out.glob("*.apkg")) == ["top-sub.apkg", "top.apkg"]
    path = tmp_path / "cards" / "a.yaml"
    path.write_text(path.read_text().replace("tags: [one]", "tags: [two]").split("  - id: second")[0])
    capsys.readouterr()
    for out in (a, b):  # each folder's last build had both cards: each build reports the removal
        assert run_cli("build", tmp_path / "cards", "--out", out) == 0
        assert "1 card(s) removed since the last build (notes second)" in capsys.readouterr().out, out.name
        assert {cid: tags for cid, (_, _, tags) in _notes_in(out / "top.apkg", tmp_path).items()} == {"first": "two"}


CODE = """
    deck: Code
    type: code
    cards:
      - id: prints
        q: What does this print?
        code: |
          print(6 * 7)
    """


def test_a_code_card_edited_only_in_its_code_is_rendered_and_run_again(tmp_path, collection):
    write_files(tmp_path, {"cards/a.yaml": CODE})
    assert _build(tmp_path) == 0
    path = tmp_path / "cards" / "a.yaml"
    path.write_text(path.read_text().replace("print(6 * 7)", "print(6 * 9)"))
    assert _build(tmp_path) == 0
    import_package(collection, tmp_path / "dist" / "code.apkg")
    (nid,) = collection.find_notes("")
    note = collection.get_note(nid)
    assert "6 * 9" in note["Code"] and "54" in note["Output"] and "42" not in note["Output"]


def test_deck_ids_are_the_pinned_hash_of_the_deck_path_and_each_card_sits_in_its_own_deck(tmp_path):
    write_files(tmp_path, {"cards/a.yaml": CARDS, "cards/b.yaml": CARDS.replace("Top::Sub", "Top::Other").replace("id: ", "id: b-")})
    assert _build(tmp_path) == 0
    database = tmp_path / "top.anki2"
    with zipfile.ZipFile(tmp_path / "dist" / "top.apkg") as archive:
        database.write_bytes(archive.read("collection.anki2"))
    db = sqlite3.connect(database)
    try:
        decks = {deck["name"]: int(did) for did, deck in json.loads(db.execute("select decks from col").fetchone()[0]).items()}
        placed = dict(db.execute("select substr(n.flds, 1, instr(n.flds, char(31)) - 1), c.did from cards c join notes n on c.nid = n.id"))
    finally:
        db.close()
    # The ids every build and every version has given these decks (sha256 of "deckbuild:deck:<path>", in 2**30..2**31).
    assert {name: did for name, did in decks.items() if name != "Default"} == {
        "Top": 1353005615, "Top::Sub": 2011368713, "Top::Other": decks["Top::Other"],
    }
    assert 2**30 <= decks["Top::Other"] < 2**31 and len(set(decks.values())) == len(decks)
    assert placed == {"first": 2011368713, "second": 2011368713, "b-first": decks["Top::Other"], "b-second": decks["Top::Other"]}
