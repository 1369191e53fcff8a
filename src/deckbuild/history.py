"""What the previous build into an output folder gave each note: the rebuild loop's memory.

Anki's importer updates a note, and a note type, only when the package's modification time
is newer than its copy in the collection ("update if newer", the importer's default). So
every modification time deckbuild writes follows one rule (:func:`next_mod`):

- unchanged content keeps the time the previous build gave it: importing again changes
  nothing, and an edit the user made in Anki to that note survives;
- changed content gets ``max(base, previous + 1)``: strictly newer than what the collection
  holds from the last build, even within the same second or under a fixed
  ``SOURCE_DATE_EPOCH``;
- without a record (a fresh clone, ``--no-cache``, a deleted cache, the first build into a
  folder) everything gets ``base``: the build's wall-clock time, or ``SOURCE_DATE_EPOCH``.
  That is the safe side: the clock is past every time an earlier build wrote, so no source
  edit is lost; the cost is that every note is updated once, over any edit made in Anki.

A note's content is its note type, deck, tags and fields; a note type's its name, fields,
templates and CSS (so a change to deckbuild's own templates reaches collections too).
The record is one JSON value in the build cache, per output folder, read back with every
shape checked by the cache: a record that does not fit counts as no record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from deckbuild.cache import Cache

NAMESPACE = "history"
FORMAT = 4  # 2: notes keep their kind and deck (import-rule warnings); 3: notes as lines; 4: reuse keys, formulas, store
READABLE = (3, 4)  # a format-3 record still keeps every note's time; it only gives no note rows to reuse


def next_mod(previous: tuple[str, int] | None, digest: str, base: int) -> int:
    """Return the modification time (epoch seconds) for content ``digest``.

    ``previous`` is (digest, time) from the last build, or ``None``: unchanged content keeps
    its time, changed content gets ``max(base, time + 1)``, new content gets ``base``.
    """
    if previous is None:
        return base
    if previous[0] == digest:
        return previous[1]
    return max(base, previous[1] + 1)


@dataclass(frozen=True)
class PackageRecord:
    """One written package: content digest, build time ``built`` (epoch seconds), and the
    file's size (bytes) and mtime (ns) right after writing, to notice a file changed since."""

    digest: str
    built: int
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class NoteRecord:
    """What the last build gave one note: its content ``digest``, modification time ``mod``
    (epoch seconds), number of Anki ``cards``, ``kind`` and ``deck``; ``reuse``, the digest of
    everything its fields were rendered from (``""``: the note had media or code output, so
    its row is never reused), and the number of ``formulas`` its fields hold."""

    digest: str
    mod: int
    cards: int
    kind: str
    deck: str
    reuse: str = ""
    formulas: int = 0


@dataclass(frozen=True)
class Record:
    """What one successful build into an output folder wrote.

    ``notes``: card id → :class:`NoteRecord`; ``notetypes``: note type id → (digest, modification time); ``packages``: file name →
    :class:`PackageRecord`; ``inputs``: digest of every input of the build (sources,
    deckbuild's code, library versions, options), ``""`` when the build printed warnings;
    ``counts``: the build's decks, notes, cards and formulas, for the report of a build
    that finds nothing changed; ``store``: the name of the kept note store (``package.NoteStore.keep``)
    whose rows a later build may reuse, ``""`` if none.
    """

    notes: dict[str, NoteRecord] = field(default_factory=dict)
    notetypes: dict[int, tuple[str, int]] = field(default_factory=dict)
    packages: dict[str, PackageRecord] = field(default_factory=dict)
    inputs: str = ""
    counts: tuple[int, int, int, int] = (0, 0, 0, 0)
    store: str = ""


@dataclass(frozen=True)
class _Stored:
    """A :class:`Record` as the cache holds it, checked on read by the cache.

    ``notes`` is one line per note, ``<card id> <digest> <time> <cards> <kind> <deck> <reuse> <formulas>``
    (format 3: the first six), ``<deck>`` an index into ``decks``, ``<reuse>`` ``-`` for none: a
    100,000-note record reads in a tenth of a second, where a list of lists takes a second.
    """

    format: int
    notes: str
    decks: tuple[str, ...]
    notetypes: tuple[tuple[int, str, int], ...]
    packages: tuple[tuple[str, PackageRecord], ...]
    inputs: str
    counts: tuple[int, int, int, int]
    store: str = ""


def _key(out_dir: Path) -> str:
    return str(out_dir.resolve())


def read(cache: Cache | None, out_dir: Path) -> Record:
    """Return the previous build's record for ``out_dir`` (an empty one if there is none or it does not parse)."""
    if cache is None:
        return Record()
    stored = cache.get_many(NAMESPACE, [_key(out_dir)], _Stored).get(_key(out_dir))
    if stored is None or stored.format not in READABLE:
        return Record()
    width = 8 if stored.format == 4 else 6
    notes = {}
    try:
        for line in stored.notes.splitlines():
            parts = line.split(" ")
            if len(parts) != width:
                return Record()
            cid, digest, mod, cards, kind, deck, *rest = parts
            reuse, formulas = (rest[0] if rest[0] != "-" else "", int(rest[1])) if rest else ("", 0)
            notes[cid] = NoteRecord(digest, int(mod), int(cards), kind, stored.decks[int(deck)], reuse, formulas)
    except (ValueError, IndexError):  # a number that is none, no such deck
        return Record()
    if any(n.mod < 0 or n.cards < 0 or n.formulas < 0 for n in notes.values()):
        return Record()
    return Record(
        notes=notes,
        notetypes={tid: (digest, mod) for tid, digest, mod in stored.notetypes},
        packages=dict(stored.packages),
        inputs=stored.inputs,
        counts=stored.counts,
        store=stored.store if stored.format == 4 else "",
    )


def write(cache: Cache | None, out_dir: Path, record: Record) -> None:
    """Keep ``record`` as the last build into ``out_dir``."""
    if cache is not None:
        decks: dict[str, int] = {}
        stored = _Stored(
            FORMAT,
            "".join(
                f"{cid} {n.digest} {n.mod} {n.cards} {n.kind} {decks.setdefault(n.deck, len(decks))} {n.reuse or '-'} {n.formulas}\n"
                for cid, n in record.notes.items()
            ),
            tuple(decks),
            tuple((tid, *value) for tid, value in record.notetypes.items()),
            tuple(record.packages.items()),
            record.inputs,
            record.counts,
            record.store,
        )
        cache.put_many(NAMESPACE, {_key(out_dir): stored})
