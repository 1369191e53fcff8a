"""The build cache: rendered fields and snippet outputs, keyed by content hash, in one SQLite file.

A warm rebuild of an unchanged corpus parses, renders and runs nothing. The cache is an
optimisation only: a missing, unreadable or corrupt cache costs time, never a wrong build,
and errors are never cached (a failing card is re-checked on every build). Values are
pickled (the file is the user's own build output, like ``__pycache__``).
"""

from __future__ import annotations

import hashlib
import pickle
import sqlite3
from pathlib import Path
from typing import Any, Iterable

FORMAT = "1"  # bump when what is stored changes shape


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


class Cache:
    """A namespaced key → value store in ``folder/cache.sqlite``.

    Opening, reading or writing problems (read-only folder, corrupt file) make the cache
    behave as empty; they never raise.
    """

    def __init__(self, folder: Path):
        self.path = folder / "cache.sqlite"
        self._db: sqlite3.Connection | None = None
        self._broken = False

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

    def get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, Any]:
        """Return the cached values of those ``keys`` that are present."""
        db = self._connect()
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Any] = {}
        if db is None or not wanted:
            return found
        try:
            for start in range(0, len(wanted), 900):  # SQLite's bound-parameter limit
                chunk = wanted[start : start + 900]
                rows = db.execute(
                    f"select key, value from entries where ns = ? and key in ({','.join('?' * len(chunk))})",
                    [namespace, *chunk],
                )
                for key, value in rows:
                    found[key] = pickle.loads(value)
        except (sqlite3.Error, pickle.UnpicklingError, ValueError, TypeError, AttributeError, EOFError, ImportError):
            return {}
        return found

    def put_many(self, namespace: str, items: dict[str, Any]) -> None:
        """Store ``items`` (key → picklable value)."""
        db = self._connect()
        if db is None or not items:
            return
        try:
            with db:
                db.executemany(
                    "insert or replace into entries values (?, ?, ?)",
                    [(namespace, key, pickle.dumps(value, protocol=5)) for key, value in items.items()],
                )
        except sqlite3.Error:
            pass

    def close(self) -> None:
        """Close the database file."""
        if self._db is not None:
            self._db.close()
            self._db = None
