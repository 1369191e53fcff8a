"""The build pipeline: load → validate → render → execute → package.

Like mkdocs' ``build()``, it first gathers all data and only then touches the output: no
package is written unless every card loaded, validated, rendered and ran. Problems from
every stage are collected and reported together, sorted by location, and the build then
fails once with :class:`~deckbuild.errors.BuildFailed`.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from deckbuild.cache import Cache
from deckbuild.errors import BuildFailed, Diagnostic, PackageError, Severity
from deckbuild.execute import ExecuteStats, execute
from deckbuild.load import load
from deckbuild.model import BuildReport, Kind
from deckbuild.package import plan_packages, write_packages
from deckbuild.render import render
from deckbuild.validate import validate

#: Files of deckbuild itself whose change must reach users' collections (templates, CSS).
_OWN_FILES = tuple(Path(__file__).parent / name for name in ("notetypes.py", "templates/card.css", "templates/mathml-fallback.js"))


@dataclass(frozen=True)
class BuildOptions:
    """What to build and how.

    ``out_dir`` ``None`` means check only: no package is written (the build cache still is).
    ``cache_dir`` ``None`` means no cache: parse, render and run everything.
    ``run_code`` ``False`` skips running snippets (a check that only validates and renders).
    ``timestamp`` (seconds since the epoch) overrides the notes' modification time.
    ``guid_namespace`` is the project's GUID namespace (``None``: derived from each card's
    top-level deck, see :func:`deckbuild.package.card_namespace`).
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


@dataclass(frozen=True)
class BuildResult:
    """A finished build: its counts, the warnings it printed, and the packages written."""

    report: BuildReport
    diagnostics: list[Diagnostic]
    packages: list[Path]


def build_timestamp(newest_source_mtime: int) -> int:
    """Return the modification time for every note, card and note type, in epoch seconds.

    ``SOURCE_DATE_EPOCH`` wins (reproducible-builds.org convention). Otherwise the newest
    mtime of the sources and of deckbuild's own templates: it grows when a source changes,
    and Anki's importer only updates notes whose modification time is newer than its own.
    Raises :class:`~deckbuild.errors.PackageError` for a malformed ``SOURCE_DATE_EPOCH``.
    """
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            return int(epoch)
        except ValueError:
            raise PackageError(f"SOURCE_DATE_EPOCH must be whole seconds, not '{epoch}'") from None
    own = max(int(p.stat().st_mtime) for p in _OWN_FILES)
    return max(newest_source_mtime, own)


def build(options: BuildOptions) -> BuildResult:
    """Run the pipeline; write packages to ``options.out_dir`` unless it is ``None``.

    Raises :class:`BuildFailed` with every diagnostic if any error was found (or any
    warning under ``strict``), and :class:`PackageError` if an output cannot be written;
    in both cases no existing package is changed.
    """
    started = time.perf_counter()
    cache = Cache(options.cache_dir) if options.cache_dir is not None else None
    try:
        # First gather all data: nothing is written until every card has loaded, rendered and run.
        loaded = load(options.sources, cache)
        problems = loaded.problems + validate(loaded.cards)
        rendered, render_problems = render(loaded.cards, cache)
        problems += render_problems
        stats = ExecuteStats()
        outputs = {}
        if options.run_code:
            outputs, run_problems, stats = execute(
                loaded.cards, cache=cache, python=options.python, progress=options.progress
            )
            problems += run_problems
    finally:
        if cache is not None:
            cache.close()
    problems.sort(key=lambda d: (d.location is None, d.location or 0))
    report = BuildReport(
        decks=len({c.deck for c in loaded.cards}),
        notes=len(loaded.cards),
        cards=sum(2 if c.kind is Kind.PROBE and c.follow_up else 1 for c in loaded.cards),
        formulas=sum(r.formulas for r in rendered),
        snippets_run=stats.run,
        snippets_cached=stats.cached,
        snippets_failed=stats.failed,
        seconds=time.perf_counter() - started,
    )
    if any(d.severity is Severity.ERROR or options.strict for d in problems):
        raise BuildFailed(problems, report)

    written: list[Path] = []
    if options.out_dir is not None and rendered:
        timestamp = options.timestamp if options.timestamp is not None else build_timestamp(loaded.newest_mtime)
        written = write_packages(plan_packages(rendered), outputs, options.out_dir, timestamp, namespace=options.guid_namespace)
    report = replace(report, packages=tuple(p.name for p in written), seconds=time.perf_counter() - started)
    return BuildResult(report, problems, written)
