"""Changes Anki's importer will not carry out are warned about, and the warnings say true things.

Each case builds v1, imports it into a real collection, changes one card, rebuilds (the
warning must name the card and what Anki will do), imports v2 and checks that Anki did
exactly what the warning said.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import import_package, run_cli, write_files

V1 = """
    deck: Top::{deck}
    type: {kind}
    cards:
      - id: card-one
        q: Question one?
        a: Answer one.
{extra}
    """
FOLLOW = "        follow_up: And then?\n        follow_up_a: Then this."


def _build(tmp_path: Path, capsys, deck="A", kind="probe", extra=FOLLOW) -> list[str]:
    write_files(tmp_path / "cards", {"a.yaml": V1.format(deck=deck, kind=kind, extra=extra)})
    capsys.readouterr()
    assert run_cli("build", tmp_path / "cards", "--quiet") == 0
    return [line for line in capsys.readouterr().err.splitlines() if ": warning: " in line]


def _where(tmp_path: Path) -> str:
    return f"{tmp_path}/cards/a.yaml:4:5: warning: card 'card-one'"


def test_moved_card_is_warned_and_anki_leaves_it_in_the_old_deck(tmp_path, capsys, collection):
    assert _build(tmp_path, capsys) == []
    import_package(collection, tmp_path / "dist" / "top.apkg")
    warnings = _build(tmp_path, capsys, deck="B")
    assert warnings == [
        f"{_where(tmp_path)} moved from deck 'Top::A' to 'Top::B': Anki's import updates the note but leaves its cards in "
        "the old deck; move them in Anki's browser (Change Deck), or accept the deckbuild add-on's offer after import"
    ]
    import_package(collection, tmp_path / "dist" / "top.apkg")
    decks = {collection.decks.name(collection.get_card(c).did) for c in collection.find_cards("")}
    assert decks == {"Top::A"}
    assert _build(tmp_path, capsys, deck="B") == []  # said once, for the build that made the change


def test_changed_type_is_warned_and_anki_skips_the_note(tmp_path, capsys, collection):
    _build(tmp_path, capsys, kind="qa", extra="")
    import_package(collection, tmp_path / "dist" / "top.apkg")
    warnings = _build(tmp_path, capsys, kind="fact", extra="        why: Because.")
    assert warnings == [
        f"{_where(tmp_path)} changed its type from qa to fact: Anki's import skips a note whose note type changed (it keeps "
        "the old note); to change the type, give the card a new id and delete the old note in Anki"
    ]
    import_package(collection, tmp_path / "dist" / "top.apkg")
    (note_id,) = collection.find_notes("")
    assert collection.get_note(note_id).note_type()["name"].endswith("Q&A")


def test_dropped_follow_up_is_warned_and_anki_keeps_an_empty_card(tmp_path, capsys, collection):
    _build(tmp_path, capsys)
    import_package(collection, tmp_path / "dist" / "top.apkg")
    assert len(collection.find_cards("")) == 2
    warnings = _build(tmp_path, capsys, extra="")
    assert warnings == [
        f"{_where(tmp_path)} lost its follow-up: Anki's import never deletes cards, so the follow-up card stays with an "
        "empty front; remove it in Anki with Tools > Empty Cards, or accept the deckbuild add-on's offer after import"
    ]
    import_package(collection, tmp_path / "dist" / "top.apkg")
    assert len(collection.find_cards("")) == 2
    report = collection.get_empty_cards()
    assert sum(len(note.card_ids) for note in report.notes) == 1


def test_strict_check_fails_on_a_move_and_writes_nothing(tmp_path, capsys):
    _build(tmp_path, capsys)
    before = (tmp_path / "dist" / "top.apkg").read_bytes()
    write_files(tmp_path / "cards", {"a.yaml": V1.format(deck="B", kind="probe", extra=FOLLOW)})
    assert run_cli("build", tmp_path / "cards", "--quiet", "--strict") == 1
    assert (tmp_path / "dist" / "top.apkg").read_bytes() == before
