"""addon/imports.py: manifests, the tag rule and the leftovers of an import, alone and on real
Anki collections (packages built by deckbuild, imported with Anki's own importer)."""

from __future__ import annotations

import json
import sys
import time
import zipfile
from pathlib import Path

import pytest

from deckbuild import package
from tests.conftest import import_package, run_cli, write_files

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from addon import imports  # noqa: E402
from addon.imports import CardState, Manifest, ManifestNote, NoteState  # noqa: E402

QA, PROBE = 1738400001, 1738400003


def manifest(*notes: ManifestNote, roots=("Top::A",)) -> Manifest:
    return Manifest("_deckbuild-manifest-top-0.json", "top", 1, roots, frozenset({QA, PROBE}), notes)


def note(nid, guid, tags=(), mid=QA, mod=1, card_id="") -> NoteState:
    return NoteState(nid, guid, mid, tuple(tags), mod, f"front of {guid}", card_id or guid)


def test_the_manifest_prefix_is_the_one_the_packager_writes():
    assert imports.MANIFEST_PREFIX == f"_{package.MANIFEST_STEM}-"
    from deckbuild.notetypes import NOTE_TYPES

    assert imports.DECKBUILD_NOTETYPE_IDS == {spec.id for spec in NOTE_TYPES.values()}


@pytest.mark.parametrize(
    "data",
    [b"not json", b"[]", b'{"format": 2}', json.dumps({"format": 1, "package": 3}).encode(),
     json.dumps({"format": 1, "package": "p", "built": 1, "roots": ["A"], "notetypes": [], "notes": [{"guid": "g"}]}).encode(),
     json.dumps({"format": 1, "package": "p", "built": 1, "roots": ["A"], "notetypes": [],
                 "notes": [{"guid": "g", "id": "i", "deck": "A", "notetype": QA, "tags": [], "cards": 0}]}).encode(),
     b"\xff\xfe"],
)
def test_a_damaged_manifest_is_refused(data):
    with pytest.raises(imports.ManifestError):
        imports.parse_manifest(data, "_deckbuild-manifest-x.json")


def test_a_manifest_cannot_claim_a_note_type_that_is_not_deckbuilds():
    doc = {"format": 1, "package": "p", "built": 1, "roots": ["Default"], "extra": {"ignored": True},
           "notetypes": [{"id": 1}, {"id": QA, "name": "deckbuild Q&A"}], "notes": []}
    found = imports.parse_manifest(json.dumps(doc).encode(), "_deckbuild-manifest-p-1.json")
    assert found.notetypes == {QA}
    assert found.owns("default") and found.owns("Default::Sub") and not found.owns("Defaults")


@pytest.mark.parametrize(
    "before, package_tags, emitted, expected",
    [
        # the user's tags (Anki's own leech and marked, a custom one) stay; a tag deckbuild dropped goes
        (["old", "leech", "marked", "mine"], ["new"], ["old"], ("new", "leech", "marked", "mine")),
        # case-insensitive like Anki: no duplicate, the package's spelling wins
        (["Quiz", "Leech"], ["quiz"], ["quiz"], ("quiz", "Leech")),
        # no earlier manifest known: keep every earlier tag
        (["old", "mine"], ["new"], None, ("new", "old", "mine")),
        # a note that comes back into the package loses deckbuild::removed
        (["deckbuild::removed", "mine"], ["a"], ["a"], ("a", "mine")),
    ],
)
def test_merged_tags(before, package_tags, emitted, expected):
    assert imports.merged_tags(before, package_tags, emitted) == expected


def test_tag_updates_only_touch_notes_the_import_changed():
    new = manifest(ManifestNote("g1", "one", "Top::A", QA, ("new",), 1), ManifestNote("g2", "two", "Top::A", QA, ("t",), 1))
    old = manifest(ManifestNote("g1", "one", "Top::A", QA, ("old",), 1), ManifestNote("g2", "two", "Top::A", QA, ("t",), 1))
    before = {"g1": note(1, "g1", ["old", "leech"]), "g2": note(2, "g2", ["t", "mine"])}
    after = [note(1, "g1", ["new"], mod=2), note(2, "g2", ["t", "mine"]), note(3, "g3", ["x"], mod=5)]
    assert imports.tag_updates(before, after, new, old) == {1: ("new", "leech")}


def test_leftovers_list_removed_moved_and_emptied_and_never_another_note_type():
    basic = 1
    m = manifest(ManifestNote("kept", "kept", "Top::A", QA, (), 1), ManifestNote("moved", "moved", "Top::B", QA, (), 1),
                 ManifestNote("probe", "probe", "Top::A", PROBE, (), 1))
    notes = [note(1, "kept"), note(2, "moved"), note(3, "probe", mid=PROBE), note(4, "gone", card_id="gone-id"),
             note(5, "mine", mid=basic), note(6, "elsewhere"), note(7, "done", ["deckbuild::removed"])]
    cards = [CardState(11, 1, 0, "Top::A", False), CardState(21, 2, 0, "Top::A", False),
             CardState(31, 3, 0, "Top::A", False), CardState(32, 3, 1, "Top::A", False),
             CardState(41, 4, 0, "Top::A::Sub", False), CardState(51, 5, 0, "Top::A", False),
             CardState(61, 6, 0, "Other", False), CardState(71, 7, 0, "Top::A", True)]
    found = imports.find_leftovers(m, notes, cards)
    assert [(i.note_id, i.card_ids, i.deck, i.card_id) for i in found.removed] == [(4, (41,), "Top::A::Sub", "gone-id")]
    assert [(i.note_id, i.card_ids, i.to_deck) for i in found.moved] == [(2, (21,), "Top::B")]
    assert [(i.note_id, i.card_ids) for i in found.emptied] == [(3, (32,))]
    assert not imports.find_leftovers(m, [notes[0], notes[2], notes[4]], [cards[0], cards[2], cards[5]])


def test_front_words_shows_visible_text_only():
    field = ('<div>What is <b>the</b> <math><mi>x</mi><annotation encoding="application/x-tex">\\x</annotation></math>'
             "<script>evil()</script> of a long question with many words?</div>")
    assert imports.front_words(field) == "What is the x of a long question \u2026"


def test_manifest_from_apkg_ignores_what_is_not_a_deckbuild_package(tmp_path):
    (tmp_path / "junk.apkg").write_bytes(b"not a zip")
    with zipfile.ZipFile(tmp_path / "plain.apkg", "w") as zf:
        zf.writestr("media", "{}")
    with zipfile.ZipFile(tmp_path / "new-format.apkg", "w") as zf:
        zf.writestr("media", b"\x28\xb5\x2f\xfd binary")
    for name in ("junk.apkg", "plain.apkg", "new-format.apkg", "missing.apkg"):
        assert imports.manifest_from_apkg(tmp_path / name) is None


# ---------------------------------------------------------------------------
# On real collections

V1 = """
    deck: Top::A
    tags: [file-tag]
    cards:
      - id: keep
        q: Which card stays?
        a: This one.
        tags: [old-tag]
      - id: gone
        q: Which card is removed from the sources?
        a: This one.
      - id: mover
        q: Which card moves?
        a: This one.
      - id: probe
        type: probe
        q: Which probe loses its follow-up?
        a: This one.
        follow_up: And then?
        follow_up_a: Then this.
    """


def v2() -> str:
    text = V1.replace("tags: [old-tag]", "tags: [new-tag]").replace("a: This one.\n        tags", "a: Still this one.\n        tags")
    text = text.replace("      - id: gone\n        q: Which card is removed from the sources?\n        a: This one.\n", "")
    text = text.replace("        follow_up: And then?\n        follow_up_a: Then this.\n", "")
    moved = "      - id: mover\n        q: Which card moves?\n        a: This one.\n"
    return text.replace(moved, "")


def build(tmp_path: Path, sources: dict[str, str]) -> Path:
    for old in (tmp_path / "cards").glob("*.yaml"):
        old.unlink()
    write_files(tmp_path / "cards", sources)
    assert run_cli("build", tmp_path / "cards", "--quiet") == 0
    return tmp_path / "dist" / "top.apkg"


MOVED = """
    deck: Top::B
    cards:
      - id: mover
        q: Which card moves?
        a: This one.
    """


@pytest.fixture
def imported(tmp_path, collection):
    """v1 imported; then a user tags `keep`, adds a Basic note to Top::A; v2 built and imported
    with the add-on's before/after steps around Anki's importer."""
    col = collection
    v1 = build(tmp_path, {"a.yaml": V1})
    import_package(col, v1)
    keep = col.get_note(col.find_notes("Id:keep")[0])
    keep.tags += ["leech", "marked", "my::own"]
    col.update_note(keep)
    basic = col.new_note(col.models.by_name("Basic"))
    basic["Front"], basic["Back"] = "A note of my own", "in a deckbuild deck"
    col.add_note(basic, col.decks.id("Top::A"))

    time.sleep(1.05)  # the rebuild comes later than the edit in Anki (Anki compares whole seconds)
    v2_path = build(tmp_path, {"a.yaml": v2(), "b.yaml": MOVED})
    new = imports.manifest_from_apkg(v2_path)
    assert new is not None and new.package == "top"
    previous = imports.newest_manifest(col.media.dir(), new.package, exclude=new.name)
    assert previous is not None and previous.built < new.built
    before = imports.snapshot(col, new)
    import_package(col, v2_path)
    updates = imports.tag_updates(before, imports.read_notes(col, new.notetypes), new, previous)
    imports.restore_tags(col, updates)
    found = imports.find_leftovers(new, imports.read_notes(col, new.notetypes), imports.read_cards(col, new.notetypes))
    return col, found, basic.id


def tags_of(col, card_id: str) -> set[str]:
    return set(col.get_note(col.find_notes(f"Id:{card_id}")[0]).tags)


def test_user_tags_survive_a_reimport_that_changed_the_note(imported):
    col, _, _ = imported
    keep = col.get_note(col.find_notes("Id:keep")[0])
    assert "Still this one." in keep["Answer"]  # the import did update the note
    assert set(keep.tags) == {"file-tag", "new-tag", "leech", "marked", "my::own"}  # old-tag went: deckbuild dropped it


def test_leftovers_of_a_real_reimport(imported):
    col, found, basic_id = imported
    assert [i.card_id for i in found.removed] == ["gone"]
    assert found.removed[0].front == "Which card is removed from the sources?"
    assert [(i.card_id, i.deck, i.to_deck) for i in found.moved] == [("mover", "Top::A", "Top::B")]
    assert [i.card_id for i in found.emptied] == ["probe"]
    assert basic_id not in {i.note_id for i in (*found.removed, *found.moved, *found.emptied)}


def test_applying_delete_move_and_empty(imported):
    col, found, basic_id = imported
    notes_before = set(col.find_notes(""))
    imports.apply(col, found, imports.DELETE, move=True, delete_emptied=True)
    assert set(col.find_notes("")) == notes_before - {found.removed[0].note_id}
    gone_cards = found.removed[0].card_ids
    assert not col.db.list(f"select id from cards where id in ({','.join(map(str, gone_cards))})")
    assert col.decks.name(col.get_card(found.moved[0].card_ids[0]).did) == "Top::B"
    assert len(col.find_cards("Id:probe")) == 1
    assert col.get_note(basic_id)["Front"] == "A note of my own"
    assert not imports.find_leftovers(
        imports.manifest_from_apkg(Path(col.path).parents[1] / "dist" / "top.apkg"),
        imports.read_notes(col), imports.read_cards(col),
    )
    col.undo()  # one undo step brings everything back
    assert set(col.find_notes("")) == notes_before and len(col.find_cards("Id:probe")) == 2


def test_applying_suspend_and_tag_and_a_later_return(imported, tmp_path):
    col, found, _ = imported
    imports.apply(col, found, imports.SUSPEND, move=False, delete_emptied=False)
    gone = col.get_note(found.removed[0].note_id)
    assert imports.REMOVED_TAG in gone.tags and all(c.queue == -1 for c in gone.cards())
    assert col.decks.name(col.get_card(found.moved[0].card_ids[0]).did) == "Top::A"
    # tagged notes are not offered again
    new = imports.manifest_from_apkg(tmp_path / "dist" / "top.apkg")
    again = imports.find_leftovers(new, imports.read_notes(col), imports.read_cards(col))
    assert not again.removed and again.moved and again.emptied
    # the card comes back into the sources: the tag goes, its cards are unsuspended
    time.sleep(1.05)  # Anki updates a note only from a package note newer (in whole seconds) than its tagging
    v3 = build(tmp_path, {"a.yaml": V1.replace("a: This one.\n      - id: mover", "a: Back again.\n      - id: mover")})
    new = imports.manifest_from_apkg(v3)
    before = imports.snapshot(col, new)
    previous = imports.newest_manifest(col.media.dir(), new.package, exclude=new.name)
    import_package(col, v3)
    assert imports.returned(before, new) == [found.removed[0].note_id]
    imports.restore_tags(col, imports.tag_updates(before, imports.read_notes(col), new, previous), imports.returned(before, new))
    gone = col.get_note(found.removed[0].note_id)
    assert imports.REMOVED_TAG not in gone.tags and all(c.queue != -1 for c in gone.cards())
