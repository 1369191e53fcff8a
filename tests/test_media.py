"""Package media: content-hashed names, one copy per name, imported by real Anki."""

from __future__ import annotations

from pathlib import Path

from deckbuild.errors import Location
from deckbuild.model import Card, CodeOutput, Kind, Media, RenderedCard, Text
from deckbuild.notetypes import NOTE_TYPES
from deckbuild.package import NoteStore, note_fields, plan_packages, write_packages
from tests.conftest import import_package


def _card(card_id: str, media: tuple[Media, ...], kind: Kind = Kind.QA) -> RenderedCard:
    where = Location(Path("cards/x.yaml"), 1, 1)
    code = Text("print(1)", where) if kind is Kind.CODE else None
    card = Card(card_id, kind, "Media::Test", where, q=Text("q", where), a=Text("a", where), code=code)
    question = "".join(f'<img src="{m.name}">' for m in media) or "q"
    return RenderedCard(card, question=question, answer="a", media=media)


def test_names_are_content_hashed_and_kept_prefix_is_optional():
    one = Media.from_bytes(b"one", "plot", ".PNG")
    other = Media.from_bytes(b"two", "plot", ".png")
    assert one.name != other.name and one.name.startswith("plot-") and one.name.endswith(".png")
    assert Media.from_bytes(b"one", "plot", ".png") == one
    assert Media.from_bytes(b"font", "Latin Modern/Math", ".woff2", keep=True).name.startswith("_Latin-Modern-Math-")


def test_media_reach_a_real_collection_once_per_name(tmp_path: Path, collection):
    same = Media.from_bytes(b"\x89PNG same bytes", "plot", ".png")
    other = Media.from_bytes(b"\x89PNG other bytes", "plot", ".png")
    figure = Media.from_bytes(b"<svg/>", "figure", ".svg")
    font = Media.from_bytes(b"wOF2 font", "font", ".woff2", keep=True)
    cards = [_card("a", (same,)), _card("b", (same, other), Kind.CODE)]
    outputs = {"b": CodeOutput("b", f'<img src="{figure.name}">', media=(figure,))}
    plans = plan_packages([r.card for r in cards])
    t = 1_700_000_000
    media = {r.card.id: (*r.media, *(outputs[r.card.id].media if r.card.id in outputs else ())) for r in cards}
    with NoteStore(tmp_path / "out", {s.id: t for s in NOTE_TYPES.values()}, t * 1000) as store:
        for r in cards:
            store.add(r.card, note_fields(r, outputs.get(r.card.id)), t)
        paths = write_packages(plans, store, tmp_path / "out", {p.filename: t for p in plans}, media, shared=(font,))

    # Anki imports the files that a note references, and those whose names start with "_".
    import_package(collection, paths[0])
    folder = Path(collection.media.dir())
    stored = sorted(p.name for p in folder.iterdir() if not p.name.startswith("_deckbuild-manifest-"))
    assert stored == sorted({same.name, other.name, figure.name, font.name})
    for media in (same, other, figure, font):
        assert (folder / media.name).read_bytes() == media.data
