"""The build pipeline: load → validate → render → execute → package.

Like mkdocs' ``build()``, it first gathers all data and only then touches the output: no
package is written unless every card loaded, validated, rendered and ran. Problems from
every stage are collected and reported together, sorted by location, and the build then
fails once with :class:`~deckbuild.errors.BuildFailed`.
"""

from __future__ import annotations

import gc
import hashlib
import os
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

from deckbuild import history
from deckbuild.cache import Cache, content_key
from deckbuild.errors import BuildFailed, Diagnostic, PackageError, Severity
from deckbuild.execute import ExecuteStats, execute, interpreter_versions
from deckbuild.history import NoteRecord, PackageRecord, Record, next_mod
from deckbuild.latex import DEFAULT_ENGINE, engine
from deckbuild.load import fingerprint, load, load_images
from deckbuild.model import BuildReport, Card, CodeOutput, Media, Stamps
from deckbuild.notetypes import FONTS, NOTE_TYPES
from deckbuild.package import (
    PACKAGE_VERSION, NoteStore, PackagePlan, kept_store, note_digest, note_fields, package_digest, plan_packages, remove_temporaries, write_packages,
)
from deckbuild.render import RENDER_VERSION, attach_images, render
from deckbuild.validate import validate


@dataclass(frozen=True)
class BuildOptions:
    """What to build and how.

    ``out_dir`` ``None`` means check only: no package is written (the build cache still is).
    ``cache_dir`` ``None`` means no cache: parse, render and run everything.
    ``run_code`` ``False`` skips running snippets (a check that only validates and renders);
    ``cached_output_only`` bakes the outputs the output cache holds and runs nothing (the preview).
    ``timestamp`` (seconds since the epoch) overrides :func:`build_timestamp`.
    ``guid_namespace`` is the project's GUID namespace (``None``: derived from each card's
    top-level deck, see :func:`deckbuild.package.card_namespace`).
    ``math`` names the TeX → MathML engine: ``"temml"`` (default) or ``"latex2mathml"``.
    """

    sources: tuple[Path, ...] = (Path("cards"),)
    out_dir: Path | None = Path("dist")
    strict: bool = False
    cache_dir: Path | None = Path(".deckbuild-cache")
    run_code: bool = True
    python: str = sys.executable
    progress: bool | None = None
    timestamp: int | None = None
    guid_namespace: str | None = None
    math: str = DEFAULT_ENGINE
    cached_output_only: bool = False


@dataclass(frozen=True)
class BuildResult:
    """A finished build: its counts, the warnings it printed, and every package it makes
    (``packages``: written now, or unchanged since the last build and left as they were)."""

    report: BuildReport
    diagnostics: list[Diagnostic]
    packages: list[Path]


def build_timestamp() -> int:
    """Return the build's base time in epoch seconds: what new and changed notes get.

    ``SOURCE_DATE_EPOCH`` wins (reproducible-builds.org convention), else the clock (source
    file mtimes are never used: touching a file changes nothing). ``history.py`` raises it
    past the previous build's time where content changed. Raises
    :class:`~deckbuild.errors.PackageError` for a malformed ``SOURCE_DATE_EPOCH``.
    """
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            value = int(epoch)
        except ValueError:
            value = -1
        if value < 0:
            raise PackageError(f"SOURCE_DATE_EPOCH must be whole seconds since 1970, not '{epoch}'")
        return value
    return int(time.time())


def build(options: BuildOptions) -> BuildResult:
    """Run the pipeline; write packages to ``options.out_dir`` unless it is ``None``.

    Raises :class:`BuildFailed` with every diagnostic if any error was found (or any
    warning under ``strict``), and :class:`PackageError` if an output cannot be written;
    in both cases no existing package is changed.
    """
    started = time.perf_counter()
    cache = Cache(options.cache_dir) if options.cache_dir is not None else None
    try:
        previous, inputs = Record(), ""
        if options.out_dir is not None and cache is not None:
            # Nothing changed since the last build into this folder: nothing to do at all.
            previous, inputs = history.read(cache, options.out_dir), _inputs(options)
            if inputs and previous.inputs == inputs and all(_untouched(options.out_dir / n, p) for n, p in previous.packages.items()):
                report = BuildReport(*previous.counts, up_to_date=True, seconds=time.perf_counter() - started)
                return BuildResult(report, [], [options.out_dir / name for name in previous.packages])

        # First gather all data: nothing is written until every card has loaded, rendered and run
        # (the notes are rendered in batches into a temporary store, dropped if anything failed).
        with _collector_paused():
            loaded = load(options.sources, cache)
        problems = loaded.problems + validate(loaded.cards)
        stats = ExecuteStats()
        outputs = {}
        if options.run_code:
            outputs, run_problems, stats = execute(
                loaded.cards, cache=cache, python=options.python, progress=options.progress, run=not options.cached_output_only
            )
            problems += run_problems
        writing = options.out_dir is not None and bool(loaded.cards)
        base = (options.timestamp if options.timestamp is not None else build_timestamp()) if writing else 0
        notetypes = {spec.id: next_mod(previous.notetypes.get(spec.id), spec.digest(), base) for spec in NOTE_TYPES.values()}
        folder = cache.folder if cache is not None and cache.writable() else None
        kept = kept_store(folder, previous.store) if folder is not None else None
        opened = NoteStore(options.out_dir, notetypes, base * 1000, options.guid_namespace, folder, kept) if writing else nullcontext()
        with opened as store:
            notes = _render_notes(loaded.cards, outputs, cache, store, previous, base, options.math, options.sources, options.guid_namespace)
            problems += notes.problems + import_rule_warnings(loaded.cards, previous)
            problems.sort(key=lambda d: (d.location is None, d.location or 0))
            report = BuildReport(
                decks=len({c.deck for c in loaded.cards}),
                notes=len(loaded.cards),
                cards=sum(c.card_count() for c in loaded.cards),
                formulas=notes.formulas,
                snippets_run=stats.run,
                snippets_cached=stats.cached,
                snippets_failed=stats.failed,
                seconds=time.perf_counter() - started,
            )
            if any(d.severity is Severity.ERROR or options.strict for d in problems):
                raise BuildFailed(problems, report)
            made: list[Path] = []
            if store is not None:
                inputs = "" if problems else inputs  # warnings are printed again by the next build
                report, made = _package(loaded.cards, notes, store, notetypes, options.out_dir, cache, previous, inputs, base, report, FONTS, kept, folder)
    finally:
        remove_temporaries()  # whatever an error or an interrupt left of this build's temporary files
        gc.unfreeze()  # the cards _collector_paused set aside are ordinary objects again
        if cache is not None:
            cache.close()
    report = replace(report, seconds=time.perf_counter() - started)
    return BuildResult(report, problems, made)


@contextmanager
def _collector_paused():
    """Pause Python's cyclic garbage collector while the cards load, then set them aside.

    Loading makes a few objects per card (100,000 cards: half a million) and no reference
    cycles, yet each collection walks every object made so far: at 100k cards that was a
    third of the load stage. The loaded objects are then frozen (``gc.freeze``, Python
    docs: "Freeze all the objects tracked by gc") so the collections of later stages skip
    them; :func:`build` unfreezes them when it ends.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


RENDER_BATCH = 4000  # cards rendered at a time: memory holds one batch of HTML, not the corpus's


@dataclass(frozen=True)
class _Notes:
    """What rendering every note gave: LaTeX problems, the formula count, and per card id
    the note's record for the next build (content digest, time, reuse key, formulas) and
    its media files (if any)."""

    problems: list[Diagnostic]
    formulas: int
    records: dict[str, NoteRecord]
    media: dict[str, tuple[Media, ...]]


def _reuse_key(card: Card, salt: str) -> str:
    """Return the digest of everything a note's fields are made from, ``""`` for a code card
    (its output has inputs of its own). ``salt`` covers the renderer, the math engine, the
    packager and the GUID namespace (:func:`_render_notes`)."""
    if card.code is not None:
        return ""
    texts = (card.q, card.a, card.topic, card.why, card.follow_up, card.follow_up_a)
    parts = (salt, card.id, card.kind.value, card.deck, card.tags, card.source, *(t and t.value for t in texts))
    return hashlib.sha256(repr(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _render_notes(
    cards: list[Card], outputs: dict[str, CodeOutput], cache: Cache | None, store: NoteStore | None, previous: Record, base: int, math: str,
    sources: tuple[Path, ...] = (), namespace: str | None = None,
) -> _Notes:
    """Render ``cards`` batch by batch, with the images they show (read from under ``sources``);
    stamp each note against the previous build and add it to ``store`` (if any).

    A note whose reuse key (:func:`_reuse_key`) equals the previous build's, and that
    had no media, is not rendered again: its rows are taken from the previous build's
    store (:meth:`NoteStore.reuse`) with its digest, time and formula count.
    """
    result = _Notes([], 0, {}, {})
    formulas = 0
    salt = content_key(RENDER_VERSION, engine(math).version(), PACKAGE_VERSION, str(namespace))
    keys = {card.id: _reuse_key(card, salt) for card in cards} if store is not None else {}
    fresh = cards
    if store is not None:
        store.number(cards)
        fresh = []
        for card in cards:
            before = previous.notes.get(card.id)
            if before is not None and before.reuse and before.reuse == keys[card.id] and store.reuse(card):
                result.records[card.id] = before
                formulas += before.formulas
            else:
                fresh.append(card)
    for start in range(0, len(fresh), RENDER_BATCH):
        rendered, problems = render(fresh[start : start + RENDER_BATCH], cache, math)
        images = load_images((ref for r in rendered for ref in r.images), sources)
        rendered = attach_images(rendered, images.media)
        result.problems.extend(problems + images.problems)
        for note in rendered:
            formulas += note.formulas
            if store is None:
                continue
            card, output = note.card, outputs.get(note.card.id)
            fields = note_fields(note, output)
            digest = note_digest(card, fields)
            before = previous.notes.get(card.id)
            mod = next_mod((before.digest, before.mod) if before else None, digest, base)
            files = (*note.media, *(output.media if output else ()))
            if files:
                result.media[card.id] = files
            reuse = "" if files else keys[card.id]
            result.records[card.id] = NoteRecord(digest, mod, card.card_count(), card.kind.value, card.deck, reuse, note.formulas)
            store.add(card, fields, mod)
    return replace(result, formulas=formulas)


def _package(
    cards: list[Card],
    notes: _Notes,
    store: NoteStore,
    notetypes: dict[int, int],
    out_dir: Path,
    cache: Cache | None,
    previous: Record,
    inputs: str,
    base: int,
    report: BuildReport,
    shared: tuple[Media, ...] = (),
    kept: Path | None = None,
    folder: Path | None = None,
) -> tuple[BuildReport, list[Path]]:
    """Write the packages whose content changed since the previous build, and keep the new
    record (``inputs``: see :func:`_inputs`) and the note store in ``folder`` (the cache's,
    ``None`` if it cannot be written) for the next build to reuse; ``kept`` is the previous
    store, removed once replaced. Returns the report
    completed with what changed, and the paths of every package this build makes
    (written or unchanged)."""
    plans = plan_packages(cards)
    mods = {cid: n.mod for cid, n in notes.records.items()}
    stamps = Stamps(mods, notetypes, {})
    package_digests = {plan.filename: package_digest(plan, stamps, shared, store.namespace) for plan in plans}
    built: dict[str, int] = {}
    to_write: list[PackagePlan] = []
    for plan in plans:
        before = previous.packages.get(plan.filename)
        digest = package_digests[plan.filename]
        built[plan.filename] = next_mod((before.digest, before.built) if before else None, digest, base)
        if before is None or before.digest != digest or not _untouched(out_dir / plan.filename, before):
            to_write.append(plan)
    written = write_packages(to_write, store, out_dir, built, notes.media, shared) if to_write else []

    packages = {}
    for plan in plans:
        path = out_dir / plan.filename
        if path in written:
            stat = path.stat()
            packages[plan.filename] = PackageRecord(package_digests[plan.filename], built[plan.filename], stat.st_size, stat.st_mtime_ns)
        else:
            packages[plan.filename] = previous.packages[plan.filename]
    token = store.keep(folder) if folder is not None else ""
    record = Record(
        notes=notes.records,
        notetypes={spec.id: (spec.digest(), notetypes[spec.id]) for spec in NOTE_TYPES.values()},
        packages=packages,
        inputs=inputs,
        counts=(report.decks, report.notes, report.cards, report.formulas),
        store=token,
    )
    history.write(cache, out_dir, record)
    if kept is not None:
        kept.unlink(missing_ok=True)
    removed = tuple(cid for cid in previous.notes if cid not in notes.records)
    report = replace(
        report,
        packages=tuple(p.name for p in written),
        unchanged_packages=tuple(p.filename for p in plans if p not in to_write),
        changed_notes=sum(1 for cid, mod in mods.items() if cid not in previous.notes or previous.notes[cid].mod != mod),
        removed=removed,
        removed_cards=sum(previous.notes[cid].cards for cid in removed),
    )
    return report, [out_dir / plan.filename for plan in plans]


def import_rule_warnings(cards: list[Card], previous: history.Record) -> list[Diagnostic]:
    """Warn about changes since the last build that Anki's ``.apkg`` import will not carry out.

    Anki matches notes by GUID and then (rules of its importer): skips a note whose note
    type differs from the collection's copy, updates a moved note's fields but leaves its
    cards in their old deck, and never deletes a card, so a dropped follow-up card stays,
    with an empty front. Each warning names the card and the fix. ``previous`` is the last
    build's record for the same output folder (empty: nothing to compare, no warning).
    """
    warnings: list[Diagnostic] = []
    for card in cards:
        before = previous.notes.get(card.id)
        if before is None:
            continue
        count, kind, deck = before.cards, before.kind, before.deck
        if kind != card.kind.value:
            warnings.append(Diagnostic(card.location, Severity.WARNING, (
                f"card '{card.id}' changed its type from {kind} to {card.kind.value}: Anki's import skips a note whose "
                "note type changed (it keeps the old note); to change the type, give the card a new id and delete the old note in Anki"
            )))
        if deck != card.deck:
            warnings.append(Diagnostic(card.location, Severity.WARNING, (
                f"card '{card.id}' moved from deck '{deck}' to '{card.deck}': Anki's import updates the note but leaves its "
                "cards in the old deck; move them in Anki's browser (Change Deck), or accept the deckbuild add-on's offer after import"
            )))
        if count > card.card_count():
            warnings.append(Diagnostic(card.location, Severity.WARNING, (
                f"card '{card.id}' lost its follow-up: Anki's import never deletes cards, so the follow-up card stays with an "
                "empty front; remove it in Anki with Tools > Empty Cards, or accept the deckbuild add-on's offer after import"
            )))
    return warnings


def _inputs(options: BuildOptions) -> str:
    """Return a digest of everything a build's packages depend on, ``""`` if it cannot be known.

    The source files (paths and bytes), deckbuild's own files (code, templates, CSS) and
    note types, the versions of the libraries that render and package, the snippets' interpreter, the
    options and ``SOURCE_DATE_EPOCH``. When it equals the last build's, the packages the
    last build wrote are still right.
    """
    sources = fingerprint(options.sources)
    if sources is None:
        return ""
    here = Path(__file__).parent
    own = [f"{p.relative_to(here)}:{hashlib.sha256(p.read_bytes()).hexdigest()}" for p in sorted(here.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    interpreter = interpreter_versions(options.python) if options.run_code else ("no-run",)
    settings = (options.strict, options.run_code, options.cached_output_only, options.python, options.guid_namespace, options.timestamp, os.environ.get("SOURCE_DATE_EPOCH"))
    math = engine(options.math).version()  # the engine's own version (mini-racer's too)
    notetypes = [spec.digest() for spec in NOTE_TYPES.values()]
    return content_key(sources, RENDER_VERSION, math, metadata.version("genanki"), *own, *notetypes, *interpreter, repr(settings))


def _untouched(path: Path, record: PackageRecord) -> bool:
    """Whether the file at ``path`` is still the one the previous build wrote."""
    try:
        stat = path.stat()
    except OSError:
        return False
    return stat.st_size == record.size and stat.st_mtime_ns == record.mtime_ns
