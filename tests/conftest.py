"""Shared fixtures: tiny card projects in temp folders, the CLI, and real Anki collections."""

from __future__ import annotations

import json
import os
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
from anki.collection import Collection, ImportAnkiPackageOptions, ImportAnkiPackageRequest

from deckbuild.cli import main

REPO = Path(__file__).resolve().parent.parent
INVENTORY = REPO.parent / "shared" / "inventory"


def write_files(root: Path, files: dict[str, str | bytes]) -> Path:
    """Create ``files`` (relative path → text, dedented, or raw bytes) under ``root``."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
    return root


def run_cli(*args: str | Path) -> int:
    """Run the ``deckbuild`` command line in-process; return its exit status."""
    return main([str(a) for a in args])


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path: Path, monkeypatch):
    """Run every test in its own folder, so default outputs (dist/, .deckbuild-cache/) land there."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def corpus_build(tmp_path_factory):
    """The shipped corpus built once per test run (snippets run for real).

    Returns ``(root, result)``: ``root / "dist"`` holds the packages and ``root / "cache"``
    the build cache; ``result`` is the :class:`~deckbuild.build.BuildResult`. Shared by
    every test that only reads the corpus's packages (about 30 s a build on 2 cores).
    """
    from deckbuild.build import BuildOptions, build

    root = tmp_path_factory.mktemp("corpus")
    result = build(BuildOptions(sources=(REPO / "cards",), out_dir=root / "dist", cache_dir=root / "cache", progress=False))
    return root, result


@pytest.fixture
def project(tmp_path: Path):
    """Return a function that writes card files into ``tmp_path/cards`` and returns that folder."""

    def make(files: dict[str, str | bytes]) -> Path:
        return write_files(tmp_path / "cards", files)

    return make


@pytest.fixture
def collection(tmp_path: Path):
    """A fresh, real Anki collection (closed after the test)."""
    (tmp_path / "anki").mkdir()
    col = Collection(str(tmp_path / "anki" / "collection.anki2"))
    yield col
    col.close()


def import_package(col: Collection, path: Path, **options):
    """Import ``path`` with Anki's own importer (default options unless given); return the log."""
    request = ImportAnkiPackageRequest(package_path=str(path), options=ImportAnkiPackageOptions(**options))
    return col.import_anki_package(request).log


def package_manifest(package: Path) -> dict:
    """The deckbuild manifest (docs/format.md) inside the ``.apkg`` at ``package``, as parsed JSON.

    Raises ValueError if the package's media holds no manifest or more than one.
    """
    with zipfile.ZipFile(package) as archive:
        names = json.loads(archive.read("media"))
        (entry,) = [k for k, name in names.items() if name.startswith("_deckbuild-manifest-")]
        return json.loads(archive.read(entry))


def shell_script(path: Path, body: str) -> Path:
    """Write an executable ``#!/bin/sh`` script at ``path`` (parent folders made); return ``path``.

    Tests use it to wrap an interpreter (a venv's python must be called by its own path, so a
    wrapper ``exec``s it) or to stand in for a broken one. POSIX only.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def pid_alive(pid: int) -> bool:
    """Is process ``pid`` running? A killed child not yet reaped is a zombie: dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():  # a killed child not yet reaped by init is a zombie: dead
        try:
            return stat.read_text().split(") ", 1)[1][0] != "Z"
        except (OSError, IndexError):
            return False
    return True


def wait_dead(pid: int, seconds: float = 5.0) -> bool:
    """Wait up to ``seconds`` for process ``pid`` to end; return whether it did."""
    deadline = time.monotonic() + seconds
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def poison_cache(cache_file: Path, value_for) -> set[str]:
    """Replace every value in a build cache with ``value_for(namespace, key, value)``, as
    someone else's cache might hold; return the namespaces it held."""
    import sqlite3

    db = sqlite3.connect(cache_file)
    with db:
        rows = db.execute("select ns, key, value from entries").fetchall()
        for ns, key, value in rows:
            db.execute("update entries set value = ? where ns = ? and key = ?", (value_for(ns, key, value), ns, key))
    db.close()
    return {ns for ns, _, _ in rows}
