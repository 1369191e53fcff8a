"""After a deckbuild package is imported: keep the tags the user added in Anki,
and find what Anki's importer leaves behind (notes removed from the sources,
cards left in an old deck, follow-up cards left with an empty front).

Anki's ``.apkg`` importer (rslib ``import_export/package/apkg/import``) matches
notes by GUID, replaces an updated note's fields *and tags* with the package's,
leaves an updated note's cards in their old deck, and never deletes a note or
a card. Every deckbuild package carries a manifest in its media
(docs/format.md, "The package manifest"): the notes it holds (GUID, card id,
deck, note type, the tags deckbuild gave it, card count) and the decks it owns.
This module reads manifests, snapshots the package's notes before an import,
and after it computes the tags to put back and the leftovers to offer.

Nothing here imports aqt or anki: the pure functions take and return frozen
dataclasses, and the few that touch a collection take an ``anki`` Collection
as an argument (tests/test_addon_imports.py runs them on real collections).
Python 3.9 syntax (the oldest Python that the supported Anki versions bundle).

A manifest is written by whoever made the package, so it is checked before use
and only ever narrows what is touched: only notes of deckbuild's own note
types (fixed ids) are considered, whatever the manifest claims, and nothing is
deleted, moved or suspended without the user's choice in the add-on's dialog.
"""

from __future__ import annotations

import html
import json
import os
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

MANIFEST_PREFIX = "_deckbuild-manifest-"  # package.py: "_" + MANIFEST_STEM + "-"
MANIFEST_SUFFIX = ".json"
MANIFEST_FORMAT = 1
MAX_MANIFEST_BYTES = 64 * 1024 * 1024  # a manifest of a million notes is about 200 MB; 64 MB is ~300k notes
MAX_MEDIA_MAP_BYTES = 64 * 1024 * 1024
# deckbuild's note types (src/deckbuild/notetypes.py: fixed ids, never reused).
DECKBUILD_NOTETYPE_IDS = frozenset({1738400001, 1738400002, 1738400003, 1738400004})
REMOVED_TAG = "deckbuild::removed"
FRONT_WORDS = 8

# The choices the dialog offers for notes removed from the sources.
DELETE = "delete"
SUSPEND = "suspend"
LEAVE = "leave"


class ManifestError(ValueError):
    """A manifest that cannot be used: not JSON, an unknown format, or a wrong shape."""


@dataclass(frozen=True)
class ManifestNote:
    """One note of a package: its GUID, card id (the note's Id field), deck
    path ("A::B"), note type id, the tags deckbuild gave it and how many cards
    it makes (1 or more)."""

    guid: str
    card_id: str
    deck: str
    notetype: int
    tags: tuple[str, ...]
    cards: int


@dataclass(frozen=True)
class Manifest:
    """A package's manifest (docs/format.md). ``name`` is its media file name;
    ``built`` epoch seconds; ``roots`` the deck paths the package owns whole;
    ``notetypes`` the deckbuild note type ids it names (only deckbuild's own
    fixed ids are kept); ``notes`` in source order."""

    name: str
    package: str
    built: int
    roots: tuple[str, ...]
    notetypes: frozenset[int]
    notes: tuple[ManifestNote, ...]

    def by_guid(self) -> dict[str, ManifestNote]:
        """Return {GUID: note}."""
        return {note.guid: note for note in self.notes}

    def owns(self, deck: str) -> bool:
        """True if deck (a path, "A::B") is one of the roots or under one.
        Anki compares deck names case-insensitively, and so does this."""
        folded = deck.casefold()
        return any(folded == r.casefold() or folded.startswith(r.casefold() + "::") for r in self.roots)


def is_manifest_name(name: str) -> bool:
    """True for a media file name deckbuild gives a manifest."""
    return name.startswith(MANIFEST_PREFIX) and name.endswith(MANIFEST_SUFFIX) and "/" not in name


def parse_manifest(data: bytes, name: str) -> Manifest:
    """Parse a manifest's bytes (UTF-8 JSON). Raises ManifestError if it is not
    JSON, its ``format`` is not 1, or a key has the wrong type; unknown keys are
    ignored (docs/format.md)."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{name}: larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ManifestError(f"{name}: not UTF-8 JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"{name}: not a format {MANIFEST_FORMAT} manifest")
    package, built, roots = doc.get("package"), doc.get("built"), doc.get("roots")
    if not isinstance(package, str) or not _is_int(built) or not _strings(roots):
        raise ManifestError(f"{name}: 'package', 'built' or 'roots' has the wrong type")
    types = doc.get("notetypes")
    if not isinstance(types, list) or not all(isinstance(t, dict) and _is_int(t.get("id")) for t in types):
        raise ManifestError(f"{name}: 'notetypes' has the wrong shape")
    notes = doc.get("notes")
    if not isinstance(notes, list):
        raise ManifestError(f"{name}: 'notes' is not a list")
    parsed = []
    for entry in notes:
        if not (
            isinstance(entry, dict)
            and all(isinstance(entry.get(k), str) for k in ("guid", "id", "deck"))
            and _is_int(entry.get("notetype"))
            and _strings(entry.get("tags"))
            and _is_int(entry.get("cards"))
            and entry["cards"] >= 1
        ):
            raise ManifestError(f"{name}: a 'notes' entry has the wrong shape")
        parsed.append(ManifestNote(entry["guid"], entry["id"], entry["deck"], entry["notetype"],
                                   tuple(entry["tags"]), entry["cards"]))
    return Manifest(
        name=name,
        package=package,
        built=built,
        roots=tuple(roots),
        notetypes=frozenset(t["id"] for t in types) & DECKBUILD_NOTETYPE_IDS,
        notes=tuple(parsed),
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def manifest_from_apkg(path: str | os.PathLike[str]) -> Manifest | None:
    """Return the manifest inside an ``.apkg`` (a zip whose ``media`` entry maps
    entry numbers to media names), or None if the file is not a deckbuild
    package: no manifest, a media map that is not JSON (Anki's newer package
    formats), or a damaged file. Never raises for a bad file; reads at most
    MAX_MANIFEST_BYTES of the manifest."""
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("media")
            if info.file_size > MAX_MEDIA_MAP_BYTES:
                return None
            media = json.loads(zf.read(info).decode("utf-8"))
            if not isinstance(media, dict):
                return None
            found = sorted((name, entry) for entry, name in media.items()
                           if isinstance(name, str) and is_manifest_name(name))
            if not found:
                return None
            name, entry = found[0]
            member = zf.getinfo(str(entry))
            if member.file_size > MAX_MANIFEST_BYTES:
                return None
            return parse_manifest(zf.read(member), name)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, RuntimeError):
        return None


def newest_manifest(media_dir: str | os.PathLike[str], package: str, exclude: str = "") -> Manifest | None:
    """Return the newest manifest (greatest ``built``, then name) of ``package``
    in a collection's media folder, leaving out the file named ``exclude``;
    None if there is none. Unreadable or damaged manifests are skipped."""
    best: Manifest | None = None
    try:
        names = [e.name for e in os.scandir(media_dir) if is_manifest_name(e.name) and e.name != exclude]
    except OSError:
        return None
    for name in names:
        path = Path(media_dir) / name
        try:
            if path.stat().st_size > MAX_MANIFEST_BYTES:
                continue
            found = parse_manifest(path.read_bytes(), name)
        except (OSError, ManifestError):
            continue
        if found.package == package and (best is None or (found.built, found.name) > (best.built, best.name)):
            best = found
    return best


# ---------------------------------------------------------------------------
# What the collection holds


@dataclass(frozen=True)
class NoteState:
    """A note as the collection holds it: note id, GUID, note type id, tags,
    modification time (epoch seconds), the first words of its front and its
    card id (deckbuild's first field, Id)."""

    id: int
    guid: str
    notetype_id: int
    tags: tuple[str, ...]
    mod: int
    front: str
    card_id: str = ""


@dataclass(frozen=True)
class CardState:
    """A card: card id, note id, template ordinal (0 = first card), its home
    deck's name (the deck it returns to from a filtered deck) and whether it
    is suspended."""

    id: int
    note_id: int
    ord: int
    deck: str
    suspended: bool


class _Text(HTMLParser):
    """The visible text of a field: no tags, no <script>/<style>, and no TeX
    annotation of MathML (the math's own characters stay)."""

    SKIP = {"script", "style", "annotation", "annotation-xml"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in ("br", "div", "p", "li", "tr"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def front_words(field_html: str, words: int = FRONT_WORDS) -> str:
    """Return the first ``words`` words of a field's visible text, with "…" if
    there are more (for listing a note to the user)."""
    parser = _Text()
    try:
        parser.feed(field_html)
        parser.close()
        text = "".join(parser.parts)
    except Exception:  # HTMLParser is lenient; keep a listing working whatever the field holds
        text = html.unescape(field_html)
    split = text.split()
    return " ".join(split[:words]) + (" \u2026" if len(split) > words else "")


def read_notes(col: Any, notetype_ids: Iterable[int] = DECKBUILD_NOTETYPE_IDS) -> list[NoteState]:
    """Return every note of the given note types in an anki Collection ``col``.
    The front is the note type's "Question" field (else its second field)."""
    ids = sorted(int(i) for i in notetype_ids)
    if not ids:
        return []
    fronts: dict[int, int] = {}
    for mid in ids:
        model = col.models.get(mid)
        names = [f["name"] for f in model["flds"]] if model else []
        fronts[mid] = names.index("Question") if "Question" in names else min(1, max(len(names) - 1, 0))
    rows = col.db.all(f"select id, guid, mid, tags, mod, flds from notes where mid in ({','.join(map(str, ids))})")
    notes = []
    for nid, guid, mid, tags, mod, flds in rows:
        fields = flds.split("\x1f")
        index = fronts.get(mid, 0)
        notes.append(NoteState(nid, guid, mid, tuple(tags.split()), mod,
                               front_words(fields[index] if index < len(fields) else ""), fields[0]))
    return notes


def read_cards(col: Any, notetype_ids: Iterable[int] = DECKBUILD_NOTETYPE_IDS) -> list[CardState]:
    """Return every card of the notes of the given note types in ``col``."""
    ids = sorted(int(i) for i in notetype_ids)
    if not ids:
        return []
    decks = {int(d.id): d.name for d in col.decks.all_names_and_ids()}
    rows = col.db.all(
        "select c.id, c.nid, c.ord, c.did, c.odid, c.queue from cards c join notes n on c.nid = n.id "
        f"where n.mid in ({','.join(map(str, ids))})"
    )
    return [CardState(cid, nid, ord_, decks.get(odid or did, ""), queue == -1) for cid, nid, ord_, did, odid, queue in rows]


# ---------------------------------------------------------------------------
# Tags: what the user added in Anki survives a re-import


def _key(tag: str) -> str:
    return tag.casefold()  # Anki's tags are case-insensitive


def merged_tags(
    before: Sequence[str], package: Sequence[str], previous_emitted: Sequence[str] | None
) -> tuple[str, ...]:
    """Return the tags a note should have after a re-import: the package's tags,
    plus every tag it had before that deckbuild did not emit last time (those
    the user added in Anki, ``leech`` and ``marked`` included). A tag deckbuild
    no longer emits is dropped. ``previous_emitted`` None (no earlier manifest
    known) keeps every earlier tag. REMOVED_TAG is dropped: the note is in the
    package again. Case-insensitive, like Anki; package spelling first, then
    the earlier tags in their order, each once."""
    emitted = {_key(t) for t in previous_emitted or ()}
    result: list[str] = []
    seen: set[str] = set()
    for tag in (*package, *(t for t in before if _key(t) not in emitted)):
        if _key(tag) not in seen and _key(tag) != _key(REMOVED_TAG):
            seen.add(_key(tag))
            result.append(tag)
    return tuple(result)


def tag_updates(
    before: Mapping[str, NoteState],
    after: Iterable[NoteState],
    manifest: Manifest,
    previous: Manifest | None,
) -> dict[int, tuple[str, ...]]:
    """Return {note id: tags to set} for the package's notes that the import
    changed (their tags or modification time differ from ``before``, a
    snapshot by GUID taken just before the import) and whose tags are not yet
    :func:`merged_tags`, and notes tagged REMOVED_TAG that the package holds
    again. ``previous`` is the package's manifest from before (None: unknown;
    a note it does not list keeps all its earlier tags). New notes and notes
    the import skipped are left alone."""
    package = manifest.by_guid()
    emitted = previous.by_guid() if previous is not None else {}
    updates = {}
    for note in after:
        entry, old = package.get(note.guid), before.get(note.guid)
        if entry is None or old is None or note.notetype_id not in manifest.notetypes:
            continue
        was_removed = _key(REMOVED_TAG) in {_key(t) for t in old.tags}
        if old.mod == note.mod and old.tags == note.tags and not was_removed:
            continue  # the importer did not touch it
        prior = emitted.get(note.guid)
        wanted = merged_tags(old.tags, entry.tags, prior.tags if prior is not None else None)
        if {_key(t) for t in wanted} != {_key(t) for t in note.tags}:
            updates[note.id] = wanted
    return updates


def snapshot(col: Any, manifest: Manifest) -> dict[str, NoteState]:
    """Return {GUID: state} of the collection's notes that ``manifest`` lists
    (taken just before an import)."""
    wanted = manifest.by_guid()
    return {n.guid: n for n in read_notes(col, manifest.notetypes) if n.guid in wanted}


# ---------------------------------------------------------------------------
# Leftovers: what the import did not carry out


@dataclass(frozen=True)
class Item:
    """One line of the after-import dialog: a note, the cards concerned, the
    deck they are in now, the card id (the note's Id, or its GUID when it has
    none), the first words of its front, and for a move the deck to move to."""

    note_id: int
    card_ids: tuple[int, ...]
    deck: str
    card_id: str
    front: str
    to_deck: str = ""


@dataclass(frozen=True)
class Leftovers:
    """What the import left behind: ``removed`` notes (no longer in the
    package), ``moved`` cards (in another deck than the sources say) and
    ``emptied`` cards (follow-ups the sources dropped: their front is empty)."""

    removed: tuple[Item, ...] = ()
    moved: tuple[Item, ...] = ()
    emptied: tuple[Item, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.removed or self.moved or self.emptied)


def find_leftovers(manifest: Manifest, notes: Iterable[NoteState], cards: Iterable[CardState]) -> Leftovers:
    """Compare the collection with the package just imported.

    removed: notes of the manifest's deckbuild note types with a card in one
    of its roots (or their subdecks), whose GUID the package no longer holds,
    and not already tagged REMOVED_TAG. moved: cards of the package's notes
    whose home deck is not the deck the manifest names. emptied: cards of the
    package's notes beyond the note's card count (a probe's follow-up, template
    ordinal 1, when the sources dropped it: Anki keeps it with an empty front).
    Notes of any other note type are never listed.
    """
    package = manifest.by_guid()
    by_note: dict[int, list[CardState]] = {}
    for card in cards:
        by_note.setdefault(card.note_id, []).append(card)
    removed, moved, emptied = [], [], []
    for note in sorted(notes, key=lambda n: n.id):
        own = sorted(by_note.get(note.id, ()), key=lambda c: c.ord)
        if note.notetype_id not in manifest.notetypes or not own:
            continue
        entry = package.get(note.guid)
        if entry is None:
            if any(manifest.owns(c.deck) for c in own) and _key(REMOVED_TAG) not in {_key(t) for t in note.tags}:
                removed.append(Item(note.id, tuple(c.id for c in own), _decks(own), note.card_id or note.guid, note.front))
            continue
        extra = [c for c in own if c.ord >= entry.cards]
        if extra:
            emptied.append(Item(note.id, tuple(c.id for c in extra), _decks(extra), entry.card_id, note.front))
        away = [c for c in own if c.ord < entry.cards and _key(c.deck) != _key(entry.deck)]
        if away:
            moved.append(Item(note.id, tuple(c.id for c in away), _decks(away), entry.card_id, note.front, entry.deck))
    return Leftovers(tuple(removed), tuple(moved), tuple(emptied))


def _decks(cards: Sequence[CardState]) -> str:
    return ", ".join(sorted({c.deck for c in cards}))


# ---------------------------------------------------------------------------
# Acting on the collection (each returns Anki's OpChanges: one undo step)


def returned(before: Mapping[str, NoteState], manifest: Manifest) -> list[int]:
    """Return the ids of notes tagged REMOVED_TAG before the import (see
    :func:`apply`) that the package holds again: their cards are to be
    unsuspended."""
    package = manifest.by_guid()
    return sorted(n.id for n in before.values()
                  if n.guid in package and _key(REMOVED_TAG) in {_key(t) for t in n.tags})


def restore_tags(col: Any, updates: Mapping[int, Sequence[str]], unsuspend_notes: Sequence[int] = ()) -> Any:
    """Set the tags of the notes in ``updates`` ({note id: tags}) and unsuspend
    the cards of the notes in ``unsuspend_notes`` (see :func:`returned`), in
    one undo step, "deckbuild: keep tags added in Anki"."""
    pos = col.add_custom_undo_entry("deckbuild: keep tags added in Anki")
    notes = []
    for nid, tags in updates.items():
        note = col.get_note(nid)
        note.tags = list(tags)
        notes.append(note)
    if notes:
        col.update_notes(notes)
    cards = [cid for nid in unsuspend_notes for cid in col.card_ids_of_note(nid)]
    if cards:
        col.sched.unsuspend_cards(cards)
    return col.merge_undo_entries(pos)


def apply(col: Any, leftovers: Leftovers, removed: str, move: bool, delete_emptied: bool) -> Any:
    """Carry out the user's choices in one undo step, "deckbuild: clean up
    after import": ``removed`` is DELETE (remove the notes: their cards go, and
    with them their scheduling; Anki keeps the revlog rows, which then belong to
    no card), SUSPEND (suspend their
    cards and tag the notes REMOVED_TAG) or LEAVE; ``move`` moves the moved
    cards to the deck the sources name (created if missing); ``delete_emptied``
    deletes the emptied cards (their notes keep their other cards). Raises
    ValueError for another ``removed``."""
    if removed not in (DELETE, SUSPEND, LEAVE):
        raise ValueError(f"unknown choice {removed!r}")
    pos = col.add_custom_undo_entry("deckbuild: clean up after import")
    note_ids = [item.note_id for item in leftovers.removed]
    if note_ids and removed == DELETE:
        col.remove_notes(note_ids)
    elif note_ids and removed == SUSPEND:
        col.sched.suspend_cards([c for item in leftovers.removed for c in item.card_ids])
        col.tags.bulk_add(note_ids, REMOVED_TAG)
    if move:
        targets: dict[str, list[int]] = {}
        for item in leftovers.moved:
            targets.setdefault(item.to_deck, []).extend(item.card_ids)
        for deck, card_ids in sorted(targets.items()):
            col.set_deck(card_ids, col.decks.id(deck))
    if delete_emptied and leftovers.emptied:
        col.remove_cards_and_orphaned_notes([c for item in leftovers.emptied for c in item.card_ids])
    return col.merge_undo_entries(pos)
