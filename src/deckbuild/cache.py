"""The build cache: rendered fields and snippet outputs, keyed by content hash, in one SQLite file.

A warm rebuild of an unchanged corpus renders and runs nothing. The cache is an
optimisation only: a missing, unreadable or corrupt cache costs time, never a wrong build,
and errors are never cached (a failing card is re-checked on every build).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any, Iterable


def content_key(*parts: str) -> str:
    """Return the hex SHA-256 of ``parts`` (joined unambiguously)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


class Cache:
    """A namespaced key → JSON value store in ``folder/cache.sqlite``.

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
                self._db.execute("create table if not exists entries (ns text, key text, value text, primary key (ns, key))")
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
                    found[key] = json.loads(value)
        except (sqlite3.Error, ValueError):
            return {}
        return found

    def put_many(self, namespace: str, items: dict[str, Any]) -> None:
        """Store ``items`` (key → JSON-serialisable value)."""
        db = self._connect()
        if db is None or not items:
            return
        try:
            with db:
                db.executemany(
                    "insert or replace into entries values (?, ?, ?)",
                    [(namespace, key, json.dumps(value)) for key, value in items.items()],
                )
        except sqlite3.Error:
            pass

    def close(self) -> None:
        """Close the database file."""
        if self._db is not None:
            self._db.close()
            self._db = None
