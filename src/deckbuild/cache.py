"""The build cache: parsed cards, rendered fields and snippet outputs, keyed by content hash, in one SQLite file.

A warm rebuild of an unchanged corpus parses, renders and runs nothing. The cache is an
optimisation only: a missing, unreadable or corrupt cache costs time, never a wrong build,
and errors are never cached (a failing card is re-checked on every build).

The cache file is treated as written by someone else (a repository may ship one): values
are stored as inert JSON, never pickled, and every value read is checked against the
shape its reader asks for (a type such as ``str`` or ``list[Card]``). A value that does not
parse or does not have that shape is a miss, so a cache copied from anywhere is at worst
useless and can never run code. A crafted value of the right shape can change a field's
text, never add a script to it: every field a package gets goes through
:func:`deckbuild.sanitize.clean` (see :func:`deckbuild.package.note_fields`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sqlite3
import types
import typing
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

FORMAT = "3"  # bump when what is stored changes shape (2: JSON instead of pickle; 3: defaults left out)

T = TypeVar("T")


def code_version(*modules: str) -> str:
    """Return a digest of deckbuild's own module files (names relative to the package).

    Part of every cache key, so editing the code that produced a cached value invalidates it.
    """
    here = Path(__file__).parent
    return content_key(FORMAT, *(hashlib.sha256((here / m).read_bytes()).hexdigest() for m in modules))


def content_key(*parts: str) -> str:
    """Return the hex SHA-256 of ``parts`` (joined unambiguously)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def to_json(value: Any) -> Any:
    """Return ``value`` as plain JSON data: dataclasses become objects (without the fields
    that hold their default; a class with ``CACHED_AS_LIST`` true, the list of its fields in
    order), tuples lists, enums and paths their value.

    Raises :class:`TypeError` for anything else (a value that cannot be stored inertly).
    """
    if value is None or type(value) in (str, int, bool):
        return value
    if type(value) is float:
        if not math.isfinite(value):
            raise TypeError("non-finite float")
        return value
    if isinstance(value, Enum):
        return to_json(value.value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if getattr(value, "CACHED_AS_LIST", False):  # small, numerous records: their fields in order
            return [to_json(getattr(value, f.name)) for f in dataclasses.fields(value)]
        # A field at its plain default is left out (the decoder puts the default back):
        # a cached card is a third of the JSON, and decodes that much faster.
        out = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if f.default is dataclasses.MISSING or type(v) is not type(f.default) or v != f.default:
                out[f.name] = to_json(v)
        return out
    raise TypeError(f"cannot store a {type(value).__name__} in the cache")


def from_json(shape: Any, data: Any) -> Any:
    """Return JSON ``data`` as a value of type ``shape``, checking every part of it.

    ``shape`` is a type or type hint: ``str``, ``int``, ``float``, ``bool``, ``None``, a
    :class:`Path`, an :class:`Enum`, ``list[X]``, ``tuple[X, ...]``, ``tuple[X, Y]``,
    ``X | None``, or a frozen dataclass of those. Raises :class:`ValueError` if ``data``
    does not have exactly that shape (an extra field, a missing field that has no default, a wrong type, a bad enum value).
    """
    return _decoder(shape)(data)


def _fail(message: str) -> typing.NoReturn:
    raise ValueError(message)


@lru_cache(maxsize=None)
def _decoder(shape: Any) -> Callable[[Any], Any]:
    """Compile a checker/converter for ``shape`` once (warm builds decode many cards)."""
    if shape is None or shape is type(None):
        return lambda d: d if d is None else _fail("expected null")
    if shape in (str, int, bool):
        return lambda d: d if type(d) is shape else _fail(f"expected {shape.__name__}")
    if shape is float:
        return lambda d: float(d) if type(d) in (int, float) and math.isfinite(d) else _fail("expected a number")
    if shape is Path:
        path = lru_cache(maxsize=4096)(Path)  # every card of a file names the same path
        return lambda d: path(d) if type(d) is str else _fail("expected a path")
    if isinstance(shape, type) and issubclass(shape, Enum):
        return lambda d: shape(d) if type(d) in (str, int) else _fail("expected an enum value")
    origin, args = typing.get_origin(shape), typing.get_args(shape)
    if origin in (typing.Union, types.UnionType):
        options = [_decoder(a) for a in args if a is not type(None)]
        if len(options) == 1 and len(args) == 2:  # X | None, the common case
            only = options[0]
            return lambda d: None if d is None else only(d)

        def union(d: Any) -> Any:
            if d is None and type(None) in args:
                return None
            for option in options:
                try:
                    return option(d)
                except ValueError:
                    pass
            _fail("no alternative fits")

        return union
    if origin is list or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        item = _decoder(args[0])
        make = list if origin is list else tuple
        if args[0] in (str, int, bool):  # tags, sources: checked by type alone, in C
            kind = {args[0]}
            return lambda d: make(d) if type(d) is list and (not d or set(map(type, d)) <= kind) else _fail(f"expected a list of {args[0].__name__}")
        return lambda d: make([item(v) for v in d]) if type(d) is list else _fail("expected a list")
    if origin is tuple:
        items = [_decoder(a) for a in args]
        return lambda d: (
            tuple(f(v) for f, v in zip(items, d)) if type(d) is list and len(d) == len(items) else _fail("expected a fixed list")
        )
    if dataclasses.is_dataclass(shape):
        hints = typing.get_type_hints(shape)
        fields = [(f.name, _decoder(hints[f.name])) for f in dataclasses.fields(shape) if f.init]
        names = {name for name, _ in fields}
        # A field with a plain default may be missing: to_json leaves out fields at their default.
        required = {f.name for f in dataclasses.fields(shape) if f.init and f.default is dataclasses.MISSING}

        if getattr(shape, "CACHED_AS_LIST", False):
            decoders = [f for _, f in fields]
            count = len(decoders)

            def listed(d: Any) -> Any:
                if type(d) is not list or len(d) != count:
                    _fail(f"expected a {shape.__name__} record")
                return shape(*[f(v) for f, v in zip(decoders, d)])

            return listed

        def record(d: Any) -> Any:
            if type(d) is not dict or not required <= d.keys() <= names:
                _fail(f"expected a {shape.__name__} record")
            return shape(**{name: f(d[name]) for name, f in fields if name in d})

        return record
    raise TypeError(f"the cache cannot hold values of type {shape!r}")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


class Cache:
    """A namespaced key → value store in ``folder/cache.sqlite``.

    Values are JSON (see :func:`to_json`); :meth:`get_many` returns only those that have
    the asked shape. Opening, reading or writing problems (read-only folder, corrupt file,
    a table of another shape) make the cache behave as empty; they never raise.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / "cache.sqlite"
        self._db: sqlite3.Connection | None = None
        self._broken = False

    def writable(self) -> bool:
        """Whether the cache opened (its folder exists and holds a working database), so
        files may be kept beside it (the build's note store)."""
        return self._connect() is not None

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is None and not self._broken:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path)
                self._db.execute("create table if not exists entries (ns text, key text, value blob, primary key (ns, key))")
            except (OSError, sqlite3.Error):
                self._broken = True
                self._db = None
        return self._db

    def get_many(self, namespace: str, keys: Iterable[str], shape: type[T] | Any) -> dict[str, T]:
        """Return the cached values of those ``keys`` that are present and have type ``shape``.

        ``shape`` is a type hint understood by :func:`from_json` (``str``, ``list[Card]``,
        ``tuple[str, int]``...). An entry that is not JSON or not of that shape is left
        out, as if it were not cached.
        """
        db = self._connect()
        wanted = list(dict.fromkeys(keys))
        found: dict[str, T] = {}
        if db is None or not wanted:
            return found
        decode = _decoder(shape)
        try:
            for start in range(0, len(wanted), 900):  # SQLite's bound-parameter limit
                chunk = wanted[start : start + 900]
                rows = db.execute(
                    f"select key, value from entries where ns = ? and key in ({','.join('?' * len(chunk))})",
                    [namespace, *chunk],
                )
                for key, value in rows:
                    try:
                        found[key] = decode(json.loads(value, parse_constant=_no_constant))
                    except (ValueError, TypeError, RecursionError):
                        continue  # not JSON, not of this shape: a miss
        except sqlite3.Error:
            return {}
        return found

    def put_many(self, namespace: str, items: dict[str, Any]) -> None:
        """Store ``items`` (key → a value :func:`to_json` accepts); values it refuses are skipped."""
        db = self._connect()
        if db is None or not items:
            return
        rows = []
        for key, value in items.items():
            try:
                rows.append((namespace, key, json.dumps(to_json(value), ensure_ascii=False, separators=(",", ":"))))
            except (TypeError, ValueError):
                continue
        try:
            with db:
                db.executemany("insert or replace into entries values (?, ?, ?)", rows)
        except sqlite3.Error:
            pass

    def close(self) -> None:
        """Close the database file."""
        if self._db is not None:
            self._db.close()
            self._db = None
