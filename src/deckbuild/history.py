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
FORMAT = 3  # 2: notes also keep their kind and deck (for the import-rule warnings); 3: notes as lines


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


@dataclass(frozen=True)
class Record:
    """What one successful build into an output folder wrote.

    ``notes``: card id → (content digest, modification time, number of cards, kind, deck);
    ``notetypes``: note type id → (digest, modification time); ``packages``: file name →
    :class:`PackageRecord`; ``inputs``: digest of every input of the build (sources,
    deckbuild's code, library versions, options), ``""`` when the build printed warnings;
    ``counts``: the build's decks, notes, cards and formulas, for the report of a build
    that finds nothing changed.
    """

    notes: dict[str, tuple[str, int, int, str, str]] = field(default_factory=dict)
    notetypes: dict[int, tuple[str, int]] = field(default_factory=dict)
    packages: dict[str, PackageRecord] = field(default_factory=dict)
    inputs: str = ""
    counts: tuple[int, int, int, int] = (0, 0, 0, 0)


@dataclass(frozen=True)
class _Stored:
    """A :class:`Record` as the cache holds it, checked on read by the cache.

    ``notes`` is one line per note, ``<card id> <digest> <time> <cards> <kind> <deck>``,
    ``<deck>`` an index into ``decks``: a 100,000-note record reads in a tenth of a second,
    where a list of lists takes a second.
    """

    format: int
    notes: str
    decks: tuple[str, ...]
    notetypes: tuple[tuple[int, str, int], ...]
    packages: tuple[tuple[str, PackageRecord], ...]
    inputs: str
    counts: tuple[int, int, int, int]


def _key(out_dir: Path) -> str:
    return str(out_dir.resolve())


def read(cache: Cache | None, out_dir: Path) -> Record:
    """Return the previous build's record for ``out_dir`` (an empty one if there is none)."""
    if cache is None:
        return Record()
    stored = cache.get_many(NAMESPACE, [_key(out_dir)], _Stored).get(_key(out_dir))
    if stored is None or stored.format != FORMAT:
        return Record()
    try:
        notes = {
            cid: (digest, int(mod), int(cards), kind, stored.decks[int(deck)])
            for cid, digest, mod, cards, kind, deck in (line.split(" ") for line in stored.notes.splitlines())
        }
    except (ValueError, IndexError):  # a line without six fields, a number that is none, no such deck
        return Record()
    if any(mod < 0 or cards < 0 for _, mod, cards, _, _ in notes.values()):
        return Record()
    return Record(
        notes=notes,
        notetypes={tid: (digest, mod) for tid, digest, mod in stored.notetypes},
        packages=dict(stored.packages),
        inputs=stored.inputs,
        counts=stored.counts,
    )


def write(cache: Cache | None, out_dir: Path, record: Record) -> None:
    """Keep ``record`` as the last build into ``out_dir``."""
    if cache is not None:
        decks: dict[str, int] = {}
        stored = _Stored(
            FORMAT,
            "".join(f"{cid} {digest} {mod} {cards} {kind} {decks.setdefault(deck, len(decks))}\n" for cid, (digest, mod, cards, kind, deck) in record.notes.items()),
            tuple(decks),
            tuple((tid, *value) for tid, value in record.notetypes.items()),
            tuple(record.packages.items()),
            record.inputs,
            record.counts,
        )
        cache.put_many(NAMESPACE, {_key(out_dir): stored})
