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
shape checked: a record that does not validate counts as no record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deckbuild.cache import Cache

NAMESPACE = "history"
FORMAT = 1


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

    ``notes``: card id → (content digest, modification time, number of cards);
    ``notetypes``: note type id → (digest, modification time); ``packages``: file name →
    :class:`PackageRecord`; ``inputs``: digest of every input of the build (sources,
    deckbuild's code, library versions, options), ``""`` when the build printed warnings.
    """

    notes: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    notetypes: dict[int, tuple[str, int]] = field(default_factory=dict)
    packages: dict[str, PackageRecord] = field(default_factory=dict)
    inputs: str = ""

    def to_json(self) -> dict[str, Any]:
        """Return the record as plain JSON-able values."""
        return {
            "format": FORMAT,
            "notes": {k: list(v) for k, v in self.notes.items()},
            "notetypes": {str(k): list(v) for k, v in self.notetypes.items()},
            "packages": {k: [p.digest, p.built, p.size, p.mtime_ns] for k, p in self.packages.items()},
            "inputs": self.inputs,
        }

    @classmethod
    def from_json(cls, value: Any) -> "Record | None":
        """Return the record stored as ``value``, or ``None`` if any part has the wrong shape."""
        try:
            if not isinstance(value, dict) or value.get("format") != FORMAT or not isinstance(value.get("inputs"), str):
                return None
            notes = {k: (_text(d), _int(m), _int(n)) for k, (d, m, n) in _items(value["notes"])}
            notetypes = {int(k): (_text(d), _int(m)) for k, (d, m) in _items(value["notetypes"])}
            packages = {k: PackageRecord(_text(d), _int(b), _int(s), _int(t)) for k, (d, b, s, t) in _items(value["packages"])}
        except (KeyError, TypeError, ValueError):
            return None
        return cls(notes, notetypes, packages, value["inputs"])


def _items(value: Any) -> list[tuple[str, list]]:
    if not isinstance(value, dict):
        raise TypeError("not an object")
    items = list(value.items())
    if not all(isinstance(k, str) and isinstance(v, list) for k, v in items):
        raise TypeError("not a list")
    return items


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise TypeError("not a whole number")
    return value


def _key(out_dir: Path) -> str:
    return str(out_dir.resolve())


def read(cache: Cache | None, out_dir: Path) -> Record:
    """Return the previous build's record for ``out_dir`` (an empty one if there is none)."""
    if cache is None:
        return Record()
    stored = cache.get_many(NAMESPACE, [_key(out_dir)]).get(_key(out_dir))
    return Record.from_json(stored) or Record()


def write(cache: Cache | None, out_dir: Path, record: Record) -> None:
    """Keep ``record`` as the last build into ``out_dir``."""
    if cache is not None:
        cache.put_many(NAMESPACE, {_key(out_dir): record.to_json()})
