"""Stage 5: write Anki packages (``.apkg``) with genanki. The only module that writes output.

- GUIDs derive from the project's GUID namespace and the card ``id`` (genanki's default
  hashes every field, so an edit would make a duplicate note); deck IDs from the deck name;
  note type IDs are fixed.
- Reproducible: the same notes and ``timestamp`` give byte-identical files. genanki's own
  ``write_to_file`` stamps the zip entry with the temporary database file's mtime, so the
  zip is written here with the entry time taken from ``timestamp``.
- Atomic: every package is first written to a temporary file in the output folder; only
  when all of them are written are they renamed over the old ones, so a failed build
  never leaves a half-written ``.apkg`` or a mix of old and new packages.
- Parallel: a large build writes the all-decks package and the per-collection packages
  (the same notes twice) in two processes.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import json
import multiprocessing
import os
import re
import sqlite3
import tempfile
import time
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import genanki

from deckbuild.errors import PackageError
from deckbuild.model import CodeOutput, Kind, Media, RenderedCard
from deckbuild.notetypes import NOTE_TYPES

GUID_NAMESPACE = "deckbuild"  # deck IDs; and the shipped corpus pins it as its GUID namespace


@dataclass(frozen=True)
class PackagePlan:
    """One ``.apkg`` to write: its file name (no folder) and the cards that go into it."""

    filename: str
    cards: tuple[RenderedCard, ...]


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


def deck_id(name: str) -> int:
    """Return a stable Anki deck ID for a deck path (in genanki's recommended 2**30..2**31 range)."""
    digest = hashlib.sha256(f"{GUID_NAMESPACE}:deck:{name}".encode()).digest()
    return (1 << 30) + int.from_bytes(digest[:4], "big") % (1 << 30)


def slug(name: str) -> str:
    """Return a file-name slug for a deck name: lowercase, ``-`` between words."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "deck"


def plan_packages(cards: list[RenderedCard]) -> list[PackagePlan]:
    """Plan one package with every deck plus one per top-level collection.

    A collection is a deck path's first two components (``Top::Collection``); with a single
    top deck the all-decks package is named after it, otherwise ``all.apkg``.
    """
    tops = sorted({c.card.deck.split("::")[0] for c in cards})
    everything = PackagePlan(f"{slug(tops[0])}.apkg" if len(tops) == 1 else "all.apkg", tuple(cards))
    collections: dict[str, list[RenderedCard]] = {}
    for card in cards:
        parts = card.card.deck.split("::")
        if len(parts) > 1:
            collections.setdefault("::".join(parts[:2]), []).append(card)
    plans = [everything]
    for name, members in sorted(collections.items()):
        plans.append(PackagePlan(f"{slug(name)}.apkg", tuple(members)))
    return plans


def _fields(rendered: RenderedCard, output: CodeOutput | None) -> list[str]:
    card = rendered.card
    source = html.escape(", ".join(card.source))
    if card.kind is Kind.QA:
        return [card.id, rendered.question, rendered.answer, rendered.topic, source]
    if card.kind is Kind.FACT:
        return [card.id, rendered.question, rendered.answer, rendered.why, source]
    if card.kind is Kind.PROBE:
        return [card.id, rendered.question, rendered.answer, rendered.follow_up, rendered.follow_up_answer, source]
    code = html.escape(card.code.value if card.code else "", quote=False)
    baked = output.html if output else ""
    return [card.id, rendered.question, code, rendered.code_html, baked, rendered.answer, source]


def build_package(cards: tuple[RenderedCard, ...], outputs: dict[str, CodeOutput], namespace: str | None = None) -> genanki.Package:
    """Return the genanki package for ``cards``, with every parent deck present.

    ``namespace`` is the configured GUID namespace (``None``: the default, see :func:`card_namespace`).
    """
    decks: dict[str, genanki.Deck] = {}
    for rendered in cards:
        parts = rendered.card.deck.split("::")
        for depth in range(1, len(parts) + 1):
            name = "::".join(parts[:depth])
            if name not in decks:
                decks[name] = genanki.Deck(deck_id(name), name)
    models = {kind: spec.genanki_model() for kind, spec in NOTE_TYPES.items()}
    for rendered in cards:
        card = rendered.card
        note = genanki.Note(
            model=models[card.kind],
            fields=_fields(rendered, outputs.get(card.id)),
            tags=list(card.tags),
            guid=note_guid(card.id, card_namespace(card.deck, namespace)),
        )
        decks[card.deck].add_note(note)
    return genanki.Package([decks[name] for name in sorted(decks)])


PARALLEL_NOTES = 4000  # notes in a build before a second writer process pays for itself


def package_media(cards: tuple[RenderedCard, ...], outputs: dict[str, CodeOutput], shared: tuple[Media, ...] = ()) -> list[Media]:
    """Return the media one package carries: ``shared`` (every package's, e.g. the math font),
    then each card's and each code output's files, in card order, each name once.
    """
    found: dict[str, Media] = {m.name: m for m in shared}
    for rendered in cards:
        output = outputs.get(rendered.card.id)
        for media in (*rendered.media, *(output.media if output else ())):
            found.setdefault(media.name, media)
    return list(found.values())


def write_packages(
    plans: list[PackagePlan],
    outputs: dict[str, CodeOutput],
    out_dir: Path,
    timestamp: int,
    media: tuple[Media, ...] = (),
    namespace: str | None = None,
) -> list[Path]:
    """Write every planned package into ``out_dir``; return their paths.

    ``media`` goes into every package, besides the files its own cards reference (see
    :func:`package_media`); ``namespace`` is the configured GUID namespace. All or nothing: raises :class:`PackageError` if any package
    cannot be written, and then no file in ``out_dir`` has changed.
    """
    global _PENDING
    groups = [plans[:1], plans[1:]] if len(plans) > 1 else [plans]
    notes = sum(len(plan.cards) for plan in plans)
    temps: list[tuple[str, Path]] = []
    try:
        _PENDING = (groups, outputs, out_dir, timestamp, media, namespace)
        if notes >= PARALLEL_NOTES and len(groups) == 2 and "fork" in multiprocessing.get_all_start_methods():
            with multiprocessing.get_context("fork").Pool(2) as pool:
                results = pool.map(_write_group, range(len(groups)))
        else:
            results = [_write_group(i) for i in range(len(groups))]
        for written, _ in results:
            temps += written
        for _, error in results:
            if error is not None:
                raise error
        for name, temp in temps:
            try:
                os.replace(temp, out_dir / name)
            except OSError as exc:
                raise PackageError(f"cannot write {out_dir / name}: {exc.strerror or exc}") from None
    except BaseException:
        for _, temp in temps:
            temp.unlink(missing_ok=True)
        raise
    finally:
        _PENDING = None
    return [out_dir / plan.filename for plan in plans]


_PENDING = None  # what _write_group works on; set by write_packages, inherited across fork


def _write_group(index: int) -> tuple[list[tuple[str, Path]], PackageError | None]:
    """Write one group of planned packages to temporary files.

    Returns (name, temp path) for each file written, and the error that stopped the group
    (``None`` if none did), so the caller can remove every temporary file either way.
    """
    groups, outputs, out_dir, timestamp, media, namespace = _PENDING
    written: list[tuple[str, Path]] = []
    try:
        for plan in groups[index]:
            package = build_package(plan.cards, outputs, namespace)
            files = package_media(plan.cards, outputs, media)
            written.append((plan.filename, write_package(package, out_dir / plan.filename, timestamp, files)))
    except PackageError as error:
        return written, error
    return written, None


def write_package(package: genanki.Package, path: Path, timestamp: int, media: list[Media] | tuple[Media, ...] = ()) -> Path:
    """Write ``package`` reproducibly to a temporary file beside ``path``; return its path.

    The caller renames it to ``path`` (see :func:`write_packages`). ``timestamp`` (seconds
    since the epoch) becomes every note's, card's and note type's modification time and the
    zip entries' date. ``media`` become the package's media files: zip entries ``0``, ``1``,
    ... and the ``media`` map from those numbers to names (Anki's legacy package layout,
    which every client imports). Raises :class:`PackageError` if the folder cannot be written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_db = tempfile.mkstemp(suffix=".anki2")
        os.close(handle)
        try:
            connection = sqlite3.connect(temp_db)
            try:
                package.write_to_db(connection.cursor(), timestamp, itertools.count(timestamp * 1000))
                connection.commit()
            finally:
                connection.close()
            database = Path(temp_db).read_bytes()
        finally:
            os.unlink(temp_db)
        handle, temp_zip = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(handle)
        try:
            date = time.gmtime(max(timestamp, 315532800))[:6]  # zip dates start in 1980
            # Level 1: a tenth of the default level's time, and the file stays about 4x smaller than stored.
            with zipfile.ZipFile(temp_zip, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
                index = json.dumps({str(i): m.name for i, m in enumerate(media)}).encode()
                entries = [("collection.anki2", database), *((str(i), m.data) for i, m in enumerate(media)), ("media", index)]
                for name, data in entries:
                    info = zipfile.ZipInfo(name, date_time=date)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info._compresslevel = 1  # writestr(ZipInfo) ignores the archive's level before Python 3.13
                    info.external_attr = 0o644 << 16
                    archive.writestr(info, data)
            os.chmod(temp_zip, 0o644)
            return Path(temp_zip)
        except BaseException:
            Path(temp_zip).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise PackageError(f"cannot write {path}: {exc.strerror or exc}") from None


def is_deckbuild_package(path: Path) -> bool:
    """Return whether ``path`` is an ``.apkg`` whose collection holds a deckbuild note type.

    Reads the zip's ``collection.anki2`` (the legacy schema genanki writes) and looks for
    the fixed note type IDs; anything unreadable counts as "not ours".
    """
    ids = {str(spec.id) for spec in NOTE_TYPES.values()}
    try:
        with zipfile.ZipFile(path) as archive:
            database = archive.read("collection.anki2")
        handle, temp = tempfile.mkstemp(suffix=".anki2")
        try:
            os.write(handle, database)
            os.close(handle)
            connection = sqlite3.connect(temp)
            try:
                (models,) = connection.execute("select models from col").fetchone()
            finally:
                connection.close()
        finally:
            os.unlink(temp)
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
