"""Stage 5: write Anki packages (``.apkg``) with genanki. The only module that writes output.

- GUIDs derive from the project's GUID namespace and the card ``id`` (genanki's default
  hashes every field, so an edit would make a duplicate note); deck IDs from the deck name;
  note type IDs are fixed.
- Per-note modification times (:class:`~deckbuild.model.Stamps`, decided by ``history.py``):
  genanki gives every note the package's timestamp, so notes and note types here carry
  their own, and an unchanged note keeps its time from build to build.
- Reproducible: the same notes and stamps give byte-identical files. genanki's own
  ``write_to_file`` stamps the zip entry with the temporary database file's mtime, so the
  zip is written here with the entry time taken from the package's build time.
- Each package carries a manifest in its media (:func:`manifest`, format in docs/format.md):
  which decks it owns and which notes it holds, so the add-on can find removed notes.
- Atomic: every package is first written to a temporary file in the output folder; only
  when all of them are written are they renamed over the old ones (and put back if a
  rename fails half-way), so a failed or interrupted build never leaves a half-written
  ``.apkg``, a mix of old and new packages, or a temporary file.
- Written once: every note goes through genanki once, into one temporary database
  (:class:`NoteStore`, fed as the cards are rendered), and each package's database is cut
  from it with SQL and streamed into its zip, so memory does not grow with the corpus.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import json
import os
import re
import secrets
import shutil
import sqlite3
import tempfile
import unicodedata
import time
import warnings
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import genanki
from genanki.apkg_schema import APKG_SCHEMA

from deckbuild import __version__, interrupts, sanitize
from deckbuild.cache import code_version, content_key
from deckbuild.errors import PackageError
from deckbuild.model import Card, CodeOutput, Kind, Media, RenderedCard, Stamps
from deckbuild.notetypes import NOTE_TYPES, NoteTypeSpec

GUID_NAMESPACE = "deckbuild"  # deck IDs; and the shipped corpus pins it as its GUID namespace


@dataclass(frozen=True)
class PackagePlan:
    """One ``.apkg`` to write: its file name (no folder), the cards that go into it, and the
    deck paths it owns whole (``roots``: every deckbuild note in them or their subdecks
    belongs to this package)."""

    filename: str
    cards: tuple[Card, ...]
    roots: tuple[str, ...] = ()


@lru_cache(maxsize=None)
def note_guid(card_id: str, namespace: str) -> str:
    """Return the Anki note GUID (a 10-character string) of a card id in a GUID namespace.

    Anki matches imported notes to existing ones by GUID alone, across every deck of a
    collection, so two projects must never produce the same GUID: the namespace is the
    project's (``guid_namespace`` in its config; see :func:`card_namespace` for the default).
    Stable for the life of the id and the namespace.
    """
    return genanki.guid_for(namespace, card_id)


def card_namespace(deck: str, configured: str | None) -> str:
    """Return the GUID namespace of a card in ``deck``: the configured one, else ``deck:<top deck>``.

    The default ties identity to the top-level deck, so two projects with different top
    decks never share a GUID, and moving the project folder changes nothing.
    """
    return configured if configured is not None else f"deck:{deck.split('::')[0]}"


@lru_cache(maxsize=None)
def deck_id(name: str) -> int:
    """Return a stable Anki deck ID for a deck path (in genanki's recommended 2**30..2**31 range)."""
    digest = hashlib.sha256(f"{GUID_NAMESPACE}:deck:{name}".encode()).digest()
    return (1 << 30) + int.from_bytes(digest[:4], "big") % (1 << 30)


SLUG_BYTES = 120  # a slug's UTF-8 length before it is cut (file names: 255 bytes on common file systems)
#: File names Windows keeps for devices, with any extension (``con.apkg`` cannot be created there).
_WINDOWS_DEVICES = {"con", "prn", "aux", "nul", *(f"{d}{n}" for d in ("com", "lpt") for n in "0123456789¹²³")}


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def slug(name: str) -> str:
    """Return a file-name slug (no extension) for a deck name.

    The name is NFC-normalised and casefolded (Anki compares deck names case-insensitively);
    letters, marks and digits of every script are kept (``数学::代数`` → ``数学-代数``), each
    run of anything else becomes one ``-``, so a slug never holds ``/``, ``.`` or a control
    character. A name with none of them gives ``deck``; a name Windows reserves for a
    device (``con``, ``nul``, ``com1`` ..., whatever the extension) gets ``-deck`` appended.
    A slug longer than :data:`SLUG_BYTES` UTF-8 bytes is cut and ends in a hash of the whole name.
    """
    text = unicodedata.normalize("NFC", name).casefold()
    words = "".join(ch if unicodedata.category(ch)[0] in "LMN" else " " for ch in text).split()
    result = "-".join(words) or "deck"
    if result in _WINDOWS_DEVICES:
        result += "-deck"
    if len(result.encode("utf-8")) > SLUG_BYTES:
        cut = result.encode("utf-8")[: SLUG_BYTES - 9].decode("utf-8", "ignore").rstrip("-")
        result = f"{cut}-{_short_hash(name)}"
    return result


def plan_packages(cards: list[Card]) -> list[PackagePlan]:
    """Plan one package with every deck plus one per top-level collection.

    A collection is a deck path's first two components (``Top::Collection``); with a single
    top deck the all-decks package is named after it, otherwise ``all.apkg``. File names
    are unique: a collection whose slug is already taken (``X::!!!`` beside the all-decks
    ``x.apkg``, ``ML::Key Facts`` beside ``ML::key-facts``) gets a hash of its deck name
    appended. Raises :class:`PackageError`, naming both decks and a card of each, if two
    names still collide.
    """
    tops = sorted({c.deck.split("::")[0] for c in cards})
    everything = tops[0] if len(tops) == 1 else "all"
    collections: dict[str, list[Card]] = {}
    for card in cards:
        parts = card.deck.split("::")
        if len(parts) > 1:
            collections.setdefault("::".join(parts[:2]), []).append(card)
    named = [(everything, tuple(cards), tuple(tops)), *((name, tuple(members), (name,)) for name, members in sorted(collections.items()))]
    taken: dict[str, tuple[str, Card]] = {}
    plans = []
    for deck, members, roots in named:
        filename = f"{slug(deck)}.apkg"
        if filename in taken:
            filename = f"{slug(deck)}-{_short_hash(deck)}.apkg"
        if filename in taken:
            other, card = taken[filename]
            raise PackageError(
                f"decks '{other}' (at {card.location}) and '{deck}' would both be written to {filename}; rename one",
                members[0].location,
            )
        taken[filename] = (deck, members[0])
        plans.append(PackagePlan(filename, members, roots))
    return plans


def note_fields(rendered: RenderedCard, output: CodeOutput | None) -> list[str]:
    """Return the note's field values (HTML) in the order of its note type's fields.

    Every rendered field goes through :func:`deckbuild.sanitize.clean`, whatever made it
    (the renderer, the build cache, a snippet's baked output), so no note carries a script;
    the Id, Code and Source fields are escaped text (``<``, ``>``, ``&``)."""
    card = rendered.card
    source = html.escape(", ".join(card.source))
    clean = sanitize.clean
    if card.kind is Kind.QA:
        return [card.id, clean(rendered.question), clean(rendered.answer), clean(rendered.topic), source]
    if card.kind is Kind.FACT:
        return [card.id, clean(rendered.question), clean(rendered.answer), clean(rendered.why), source]
    if card.kind is Kind.PROBE:
        return [
            card.id, clean(rendered.question), clean(rendered.answer), clean(rendered.follow_up),
            clean(rendered.follow_up_answer), source,
        ]
    code = html.escape(card.code.value if card.code else "", quote=False)
    baked = clean(output.html) if output else ""
    return [card.id, clean(rendered.question), code, clean(rendered.code_html), baked, clean(rendered.answer), source]


def note_digest(card: Card, fields: list[str]) -> str:
    """Return the hex digest of a note's content: note type, deck, tags and ``fields``."""
    return content_key(str(NOTE_TYPES[card.kind].id), card.deck, " ".join(card.tags), *fields)


def _parents(deck: str) -> list[str]:
    """Return ``A``, ``A::B``, ``A::B::C`` for deck ``A::B::C``."""
    parts = deck.split("::")
    return ["::".join(parts[:depth]) for depth in range(1, len(parts) + 1)]


class _Note(genanki.Note):
    """A genanki note with its own modification time (genanki writes the package's)."""

    def __init__(self, mod: int, **kwargs):
        super().__init__(**kwargs)
        self.mod = mod

    def write_to_db(self, cursor, timestamp, deck_id, id_gen):
        super().write_to_db(cursor, self.mod, deck_id, id_gen)


class _Model(genanki.Model):
    """A genanki note type with its own modification time (genanki writes the package's)."""

    def __init__(self, spec: NoteTypeSpec, mod: int):
        model = spec.genanki_model()
        super().__init__(model.model_id, model.name, model.fields, model.templates, model.css, sort_field_index=0)
        self.mod = mod

    def to_json(self, timestamp, deck_id):
        return super().to_json(self.mod, deck_id)


def _inert(flds: object, tags: object) -> bool:
    """Whether a kept store's note row (its ``flds`` and ``tags`` columns) is what a build
    writes: every field one that :func:`deckbuild.sanitize.clean` leaves as it is (true of
    the HTML fields and of the escaped-text ones alike, so a forged ``\\(…\\)`` in plain text
    is caught too), and tags without markup. A crafted store's script is never lent."""
    if not isinstance(flds, str) or not isinstance(tags, str) or "<" in tags:
        return False
    return all(sanitize.is_clean(field) for field in flds.split("\x1f"))


KEPT_STORE = re.compile(r"[0-9a-f]{32}")  # a kept store's token (its file: ``notes-<token>.anki2``)


class NoteStore:
    """Every note of a build, written once by genanki into a temporary database; packages
    are then cut from it with SQL (:func:`write_packages`), so no note is built twice and
    no package is ever held in memory whole.

    The database is a hidden file in ``folder`` (default: the output folder), removed by
    :meth:`close` (use the store as a context manager) unless :meth:`keep` kept it for the
    next build. ``notetype_mods`` gives each note type's time (note type ID → epoch
    seconds); ``first_id`` the first note and card ID (milliseconds since the epoch, as
    Anki's IDs are). ``previous``, the last build's kept store (see :meth:`keep`), lends
    its rows to :meth:`reuse`. It is opened read-only, runs nothing, and its structure is
    checked, so a damaged one only means nothing is reused. A crafted one can, as a crafted
    render cache can, give a note whose source did not change other field text; never
    another GUID, note type, deck or card count, never a script or event handler (a row
    whose HTML :func:`deckbuild.sanitize.clean` would change is not lent), and never code
    that runs.
    Raises :class:`PackageError` if the folder cannot be written.
    """

    def __init__(
        self, out_dir: Path, notetype_mods: dict[int, int], first_id: int, namespace: str | None = None,
        folder: Path | None = None, previous: Path | None = None,
    ):
        self._kept = False
        self._made = None if out_dir.exists() else out_dir  # a failed build leaves no new folder
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PackageError(f"cannot write {out_dir}: {exc.strerror or exc}") from None
        self.models = {kind: _Model(spec, notetype_mods[spec.id]) for kind, spec in NOTE_TYPES.items()}
        self.namespace = namespace
        self.first_id = first_id
        self._next_id = first_id
        self._nids: dict[str, int] = {}
        self._taken: set[int] = set()
        self._reused: list[tuple[int, int]] = []  # (note ID in the previous store, note ID now)
        self._lendable: dict[str, tuple[int, int, int, int]] = {}
        self._db: sqlite3.Connection | None = None
        try:
            self.path = _reserve((folder or out_dir) / "notes", ".anki2.tmp")
        except PackageError:
            if folder is None:
                raise
            self.path = _reserve(out_dir / "notes", ".anki2.tmp")  # the cache folder takes no new file
        try:  # until __enter__ returns, nobody else removes the file (an interrupt may come now)
            self._db = sqlite3.connect(self.path)
            self._db.executescript("pragma journal_mode = off; pragma synchronous = off;" + APKG_SCHEMA)
            # No indexes: the store is written once and read whole (packages are cut into
            # genanki's own schema, indexes and all), and each index made every insert slower.
            for (index,) in self._db.execute("select name from sqlite_master where type = 'index' and sql is not null").fetchall():
                self._db.execute(f'drop index "{index}"')
            self._cursor = self._db.cursor()
            if previous is not None:
                self._attach(previous)
        except BaseException:
            self.close()
            raise

    def _attach(self, previous: Path) -> None:
        """Open the last build's store read-only and list the notes it can lend: GUID →
        (note ID, note type ID, deck ID, number of cards), only notes whose cards all sit in
        one deck, numbered right after their note (as genanki numbers them), and whose fields
        and tags hold no HTML that :func:`deckbuild.sanitize.clean` would change."""
        try:
            self._db.execute("pragma trusted_schema = off")  # its schema's views and triggers run nothing
            self._db.execute("attach database ? as previous", (f"{previous.resolve().as_uri()}?mode=ro",))
            rows = self._db.execute(
                "select n.guid, n.id, n.mid, min(c.did), max(c.did), count(*), min(c.id - n.id), max(c.id - n.id), min(c.ord), max(c.ord), n.flds, n.tags "
                "from previous.notes n join previous.cards c on c.nid = n.id group by n.id"
            ).fetchall()
        except (sqlite3.Error, OSError, ValueError):
            self._detach()
            return
        seen: set[str] = set()
        for guid, nid, mid, did, did_max, count, first, last, ord_min, ord_max, flds, tags in rows:
            if guid in seen:  # two notes with one GUID: lend neither
                self._lendable.pop(guid, None)
                continue
            seen.add(guid)
            if did == did_max and first == 1 and last == count and ord_min == 0 and ord_max == count - 1 and _inert(flds, tags):
                self._lendable[guid] = (nid, mid, did, count)

    def _detach(self) -> None:
        self._lendable.clear()
        try:
            self._db.execute("detach database previous")
        except sqlite3.Error:
            pass

    def number(self, cards: list[Card]) -> None:
        """Give every note of the build its note and card IDs, in card order (as if genanki
        wrote them all in that order), so reused and new notes are numbered alike. A note
        not numbered here gets the next IDs when it is added."""
        for card in cards:
            if card.id not in self._nids:
                self._nids[card.id] = self._next_id
                self._next_id += 1 + card.card_count()

    def _nid(self, card: Card) -> int:
        """The note ID ``card`` was numbered with; fresh IDs for one not numbered, or for a
        second card with the same id (a build that then fails on the duplicate)."""
        nid = self._nids.get(card.id)
        if nid is None or nid in self._taken:
            nid = self._nids[card.id] = self._next_id
            self._next_id += 1 + card.card_count()
        self._taken.add(nid)
        return nid

    def _guid(self, card: Card) -> str:
        return note_guid(card.id, card_namespace(card.deck, self.namespace))

    def add(self, card: Card, fields: list[str], mod: int) -> None:
        """Write one note (and its cards) with modification time ``mod`` (epoch seconds)."""
        note = _Note(mod, model=self.models[card.kind], fields=fields, tags=list(card.tags), guid=self._guid(card))
        nid = self._nid(card)
        note.write_to_db(self._cursor, mod, deck_id(card.deck), iter(range(nid, nid + 1 + card.card_count())))

    def reuse(self, card: Card) -> bool:
        """Take ``card``'s note row and card rows from the last build's store, as they are;
        return ``False`` (nothing taken) if that store has no matching note: the same GUID,
        note type, deck and number of cards. The caller vouches that the note's content is
        unchanged (``build.py`` compares the digest of what its fields are made from)."""
        guid = self._guid(card)
        lent = self._lendable.get(guid)
        if lent is None or lent[1:] != (NOTE_TYPES[card.kind].id, deck_id(card.deck), card.card_count()):
            return False
        self._reused.append((lent[0], self._nid(card)))
        return True

    def finish(self) -> None:
        """Copy the reused rows in (renumbered to this build's IDs) and commit: the store is then complete."""
        if self._reused:
            self._db.execute("create temp table reused (old integer primary key, nid integer)")
            self._db.executemany("insert into temp.reused values (?, ?)", self._reused)
            self._db.execute(
                "insert into main.notes select r.nid, n.guid, n.mid, n.mod, n.usn, n.tags, n.flds, n.sfld, n.csum, n.flags, n.data "
                "from temp.reused r join previous.notes n on n.id = r.old"
            )
            self._db.execute(
                "insert into main.cards select r.nid + (c.id - c.nid), r.nid, c.did, c.ord, c.mod, c.usn, c.type, c.queue, c.due, c.ivl, "
                "c.factor, c.reps, c.lapses, c.left, c.odue, c.odid, c.flags, c.data "
                "from previous.cards c join temp.reused r on c.nid = r.old"
            )
            self._db.execute("drop table temp.reused")
            self._reused.clear()
        self._db.commit()

    def keep(self, folder: Path) -> str:
        """Keep the finished store as ``folder/notes-<token>.anki2`` for the next build to
        reuse; return the token (``""`` if it could not be kept: then nothing is reused)."""
        self.finish()
        self._detach()
        self._db.close()
        self._db = None
        token = secrets.token_hex(16)
        target = folder / f"notes-{token}.anki2"
        try:
            os.replace(self.path, target)
        except OSError:
            return ""
        _RESERVED.discard(self.path)
        self.path = target
        self._kept = True
        return token

    def close(self) -> None:
        """Close and remove the database, unless kept (and remove the output folder, if it made it and it stayed empty)."""
        if self._db is not None:
            self._db.close()
            self._db = None
        if not self._kept:
            self.path.unlink(missing_ok=True)
        if self._made is not None:
            try:
                self._made.rmdir()
            except OSError:
                pass

    def __enter__(self) -> "NoteStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def kept_store(folder: Path, token: str) -> Path | None:
    """Return the path of the kept store ``token`` names in ``folder``, ``None`` if the token
    is malformed (it comes from the cache: never a path of its own) or the file is missing."""
    if not KEPT_STORE.fullmatch(token):
        return None
    path = folder / f"notes-{token}.anki2"
    return path if path.is_file() and not path.is_symlink() else None


def package_media(cards: tuple[Card, ...], media: dict[str, tuple[Media, ...]], shared: tuple[Media, ...] = ()) -> list[Media]:
    """Return the media one package carries: ``shared`` (every package's, e.g. the math font),
    then each card's files (``media``: card id → its fields' and code output's files), in
    card order, each name once.
    """
    found: dict[str, Media] = {m.name: m for m in shared}
    for card in cards:
        for file in media.get(card.id, ()):
            found.setdefault(file.name, file)
    return list(found.values())


MANIFEST_STEM = "deckbuild-manifest"
MANIFEST_FORMAT = 1
PACKAGE_VERSION = code_version("package.py", "notetypes.py", "sanitize.py")


def package_digest(plan: PackagePlan, stamps: Stamps, media: tuple[Media, ...] = (), namespace: str | None = None) -> str:
    """Return a hex digest of what :func:`write_packages` would write for ``plan``.

    It covers the notes (id and time: a note's time changes whenever its content does),
    the note types' times, the shared media, the GUID namespace and this module's code, so an unchanged digest
    means an unchanged package and the file need not be written again.
    """
    parts = [PACKAGE_VERSION, plan.filename, str(namespace), *plan.roots, *(m.name for m in media)]
    parts += [f"{spec.id}:{stamps.notetypes[spec.id]}" for spec in NOTE_TYPES.values()]
    parts += [f"{c.id}:{stamps.notes[c.id]}" for c in plan.cards]
    return content_key(*parts)


def manifest(plan: PackagePlan, built: int, namespace: str | None = None) -> Media:
    """Return the package's manifest: a JSON file in its media, kept by Anki (name starts with ``_``).

    Named ``_deckbuild-manifest-<package slug>-<content hash>.json``; the format is in
    docs/format.md. ``built`` (epoch seconds) grows with every build that changes the package;
    ``namespace`` is the configured GUID namespace, as for :func:`build_package`.
    """
    decks = sorted({name for c in plan.cards for name in _parents(c.deck)})
    document = {
        "format": MANIFEST_FORMAT,
        "generator": f"deckbuild {__version__}",
        "package": plan.filename.removesuffix(".apkg"),
        "built": built,
        "roots": list(plan.roots),
        "decks": [{"name": name, "id": deck_id(name)} for name in decks],
        "notetypes": [{"id": spec.id, "name": spec.name} for spec in NOTE_TYPES.values()],
        "notes": [
            {
                "guid": note_guid(c.id, card_namespace(c.deck, namespace)),
                "id": c.id,
                "deck": c.deck,
                "notetype": NOTE_TYPES[c.kind].id,
                "tags": list(c.tags),
                "cards": c.card_count(),
            }
            for c in plan.cards
        ],
    }
    data = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Media.from_bytes(data, f"{MANIFEST_STEM}-{plan.filename.removesuffix('.apkg')}", ".json", keep=True)


def write_packages(
    plans: list[PackagePlan],
    store: NoteStore,
    out_dir: Path,
    built: dict[str, int],
    media: dict[str, tuple[Media, ...]],
    shared: tuple[Media, ...] = (),
) -> list[Path]:
    """Write every planned package into ``out_dir``, its notes taken from ``store``; return their paths.

    ``built`` gives each package (by file name) its build time (epoch seconds); ``media``
    each card's files and ``shared`` the files every package carries (see
    :func:`package_media`), besides its :func:`manifest`. All or nothing: every target is
    checked before anything is written (a folder in the way is an error), each package is
    written to a temporary file beside its target, and only when all are written are they
    renamed over the old ones; if a rename fails half-way the previous files are put back.
    Raises :class:`PackageError` if any package cannot be written; then, as after an
    interrupt (``KeyboardInterrupt``), no file in ``out_dir`` has changed and no temporary
    file is left.
    """
    targets = [out_dir / plan.filename for plan in plans]
    for target in targets:
        if target.is_dir() and not target.is_symlink():
            raise PackageError(f"cannot write {target}: a folder is in the way")
    store.finish()
    temps: list[Path] = []
    try:
        for plan, target in zip(plans, targets):
            temps.append(_reserve(target, ".tmp"))
            temps.append(_reserve(target, ".anki2.tmp"))
            files = [*package_media(plan.cards, media, shared), manifest(plan, built[plan.filename], store.namespace)]
            try:
                _cut(plan, store, temps[-1], built[plan.filename])
                write_package(temps[-1], temps[-2], built[plan.filename], files)
            except PackageError as error:
                message = error.message.replace(str(temps[-2]), str(target)).replace(str(temps[-1]), str(target))
                raise PackageError(message, error.location) from None
            temps[-1].unlink()
        _replace_all([(temp, target) for temp, target in zip(temps[::2], targets)])
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
    return targets


def _cut(plan: PackagePlan, store: NoteStore, path: Path, built: int) -> None:
    """Write ``plan``'s collection database into ``path``: its decks and note types (by
    genanki), then its notes and cards copied from ``store``'s database."""
    names = sorted({name for card in plan.cards for name in _parents(card.deck)})
    decks = [genanki.Deck(deck_id(name), name) for name in names]
    for kind in dict.fromkeys(card.kind for card in plan.cards):
        decks[0].add_model(store.models[kind])
    holding = sorted({deck_id(card.deck) for card in plan.cards})
    try:
        db = sqlite3.connect(path)
        try:
            db.executescript("pragma journal_mode = off; pragma synchronous = off;")
            genanki.Package(decks).write_to_db(db.cursor(), built, itertools.count(built * 1000))
            db.execute("attach database ? as store", (str(store.path),))
            # IDs start at the package's build time, as genanki numbers them: an unchanged package is byte-identical.
            shift = built * 1000 - store.first_id
            marks = ",".join("?" * len(holding))
            db.execute(
                f"insert into notes select id + ?, guid, mid, mod, usn, tags, flds, sfld, csum, flags, data from store.notes "
                f"where id in (select nid from store.cards where did in ({marks})) order by id",
                [shift, *holding],
            )
            db.execute(
                "insert into cards select id + ?, nid + ?, did, ord, mod, usn, type, queue, due, ivl, factor, reps, lapses, left, odue, odid, flags, data "
                f"from store.cards where did in ({marks}) order by id",
                [shift, shift, *holding],
            )
            db.commit()
            db.execute("detach database store")
        finally:
            db.close()
    except (OSError, sqlite3.Error) as exc:
        raise PackageError(f"cannot write {path}: {exc}") from None


# genanki's field check reads `<math data-tex="a b">` (an attribute value with a space) as an
# invalid tag and warns on every build; the fields are deckbuild's own escaped HTML.
warnings.filterwarnings("ignore", message="Field contained the following invalid HTML tags", module="genanki")

#: Temporary files this process made and has not removed yet; :func:`remove_temporaries` sweeps them.
_RESERVED: set[Path] = set()


def _reserve(target: Path, suffix: str) -> Path:
    """Create an empty hidden file beside ``target`` (``.name.XXXX.tmp``); return its path.

    The file is created and noted in one step that a signal cannot split, so an interrupt
    at any moment leaves it to :func:`remove_temporaries`.
    """
    with interrupts.deferred():  # defers SIGINT/SIGTERM over these few statements
        try:
            handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
        except OSError as exc:
            raise PackageError(f"cannot write {target}: {exc.strerror or exc}") from None
        os.close(handle)
        _RESERVED.add(Path(name))
    return Path(name)


def remove_temporaries() -> None:
    """Remove every temporary file :func:`_reserve` made that is still there (after a failure or an interrupt)."""
    for path in list(_RESERVED):
        try:
            path.unlink(missing_ok=True)
        except OSError:
            continue
        _RESERVED.discard(path)


def _replace_all(pairs: list[tuple[Path, Path]]) -> None:
    """Rename each ``(temp, target)``; if one fails, put every previous target back and raise.

    Each existing target is first hard-linked (or copied) to a hidden backup beside it, so
    a target is never missing, and a failure or interrupt half-way restores the old set.
    """
    done: list[tuple[Path, Path | None]] = []
    target = None  # the one being replaced when something fails: its backup or its rename
    try:
        for temp, target in pairs:
            backup = None
            if os.path.lexists(target):
                backup = target.parent / f".{target.name}.{secrets.token_hex(6)}.old"
                try:
                    os.link(target, backup, follow_symlinks=False)
                except OSError:
                    shutil.copy2(target, backup, follow_symlinks=False)
            done.append((target, backup))
            os.replace(temp, target)
    except BaseException as exc:
        for previous, backup in reversed(done):
            try:
                if backup is not None:
                    os.replace(backup, previous)
                else:
                    previous.unlink(missing_ok=True)
            except OSError:
                pass
        if isinstance(exc, OSError):
            raise PackageError(f"cannot write {target}: {exc.strerror or exc}") from None
        raise
    finally:
        for _, backup in done:
            if backup is not None:
                backup.unlink(missing_ok=True)


def write_package(database: Path, path: Path, timestamp: int, media: list[Media] | tuple[Media, ...] = ()) -> Path:
    """Zip the collection ``database`` and ``media`` reproducibly into the existing file ``path``; return ``path``.

    :func:`write_packages` reserves ``path`` (a hidden temporary file beside the target)
    and renames it; the file is opened without being created, so a file already removed by
    an interrupted build is not written again. The database is streamed from its file, never
    held in memory. ``timestamp`` (seconds since the epoch) is the zip entries' date.
    ``media`` become the package's media files: zip entries ``0``, ``1``, ... and the
    ``media`` map from those numbers to names (Anki's legacy package layout, which every
    client imports). Raises :class:`PackageError` if the file cannot be written.
    """
    date = time.gmtime(max(timestamp, 315532800))[:6]  # zip dates start in 1980

    def entry(name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=date)
        info.compress_type = zipfile.ZIP_DEFLATED
        info._compresslevel = 1  # writestr(ZipInfo) ignores the archive's level before Python 3.13
        info.external_attr = 0o644 << 16
        return info

    try:
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_TRUNC), "wb") as handle:
            # Level 1: a tenth of the default level's time, and the file stays about 4x smaller than stored.
            with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
                with open(database, "rb") as source, archive.open(entry("collection.anki2"), "w", force_zip64=True) as sink:
                    shutil.copyfileobj(source, sink, 1 << 20)
                index = json.dumps({str(i): m.name for i, m in enumerate(media)}).encode()
                for name, data in [*((str(i), m.data) for i, m in enumerate(media)), ("media", index)]:
                    archive.writestr(entry(name), data)
        os.chmod(path, 0o644)
    except OSError as exc:
        raise PackageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def is_deckbuild_package(path: Path) -> bool:
    """Return whether ``path`` is an ``.apkg`` whose collection holds a deckbuild note type.

    Reads the zip's ``collection.anki2`` (the legacy schema genanki writes) and looks for
    the fixed note type IDs; anything unreadable counts as "not ours".
    """
    ids = {str(spec.id) for spec in NOTE_TYPES.values()}
    try:
        with zipfile.ZipFile(path) as archive:
            database = archive.read("collection.anki2")
        connection = sqlite3.connect(":memory:")  # in memory: an interrupt leaves no file in $TMPDIR
        try:
            connection.deserialize(database)
            (models,) = connection.execute("select models from col").fetchone()
        finally:
            connection.close()
        return bool(ids & set(json.loads(models)))
    except (OSError, KeyError, zipfile.BadZipFile, sqlite3.Error, ValueError, TypeError):
        return False


def stale_packages(out_dir: Path, written: list[Path]) -> list[Path]:
    """Return the deckbuild packages in ``out_dir`` that this build did not write.

    They come from decks or collections that no longer exist in the sources. Only files
    that :func:`is_deckbuild_package` recognises are listed, so a user's own ``.apkg`` in
    the folder is never reported or removed.
    """
    keep = {p.name for p in written}
    try:
        candidates = sorted(p for p in out_dir.glob("*.apkg") if p.name not in keep and p.is_file() and not p.is_symlink())
    except OSError:
        return []
    return [p for p in candidates if is_deckbuild_package(p)]


def remove_packages(paths: list[Path]) -> None:
    """Delete ``paths`` (stale packages). Raises :class:`PackageError` naming one that cannot go."""
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise PackageError(f"cannot remove {path}: {exc.strerror or exc}") from None
