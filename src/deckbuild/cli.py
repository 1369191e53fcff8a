"""The ``deckbuild`` command line: ``build``, ``check``, ``preview`` and ``init`` (argparse, no framework).

``build`` and ``check`` take the same flags, except the two about the output folder
(``--out``, ``--prune``); both read the project config (:mod:`deckbuild.config`) and use
the build cache. ``check`` writes no package. ``preview`` takes the sources, ``--config``,
``--cache-dir`` and ``--python`` the same way, and serves the cards (:mod:`deckbuild.preview`).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from deckbuild import __version__, interrupts
from deckbuild.build import BuildOptions, BuildResult, build
from deckbuild.config import load_project
from deckbuild.errors import BuildFailed, DeckbuildError, PackageError, Severity
from deckbuild.latex import DEFAULT_ENGINE, ENGINES
from deckbuild.package import remove_packages, stale_packages
from deckbuild.scaffold import init_project


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(prog="deckbuild", description="Compile flashcard sources into Anki packages.")
    parser.add_argument("--version", action="version", version=f"deckbuild {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    subs: dict[str, argparse.ArgumentParser] = {}
    for name, text in (
        ("build", "build .apkg packages from card sources"),
        ("check", "validate, render and run the sources; write no package"),
        ("preview", "serve every card as Anki shows it, updated live on save"),
    ):
        sub = subs[name] = commands.add_parser(name, help=text, description=text)
        sub.add_argument("sources", nargs="*", type=Path, help="files or folders (default: the config's sources, or cards/)")
        sub.add_argument("--config", type=Path, help="project config (default: the nearest deckbuild.toml or pyproject.toml)")
        sub.add_argument("--python", help="interpreter that runs code cards (default: this one)")
        sub.add_argument("--cache-dir", type=Path, help="build cache folder (default: .deckbuild-cache beside the config)")
        sub.add_argument(
            "--math", choices=ENGINES, help="TeX to MathML engine (default: the config's, or temml; latex2mathml is pure Python)"
        )
        if name == "preview":
            sub.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000; 0: any free port)")
            sub.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1, this machine only)")
            sub.add_argument("--run", action="store_true", help="run code cards whose output the build cache does not hold")
            continue
        sub.add_argument("--strict", action="store_true", default=None, help="treat warnings as errors")
        sub.add_argument("--no-run", action="store_true", help="do not run code cards (their Output stays empty)")
        sub.add_argument("--no-cache", action="store_true", help="ignore the build cache: parse, render and run everything")
        sub.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no report")
        if name == "build":
            sub.add_argument("--out", type=Path, help="output folder (default: dist/ beside the config)")
            sub.add_argument("--prune", action="store_true", help="delete deckbuild packages in the output folder that this build no longer makes")
    sub = subs["init"] = commands.add_parser("init", help="start a new project", description="write a minimal project that builds as it is")
    sub.add_argument("folder", nargs="?", type=Path, default=Path("."), help="where to create it (default: here)")
    return parser, subs


def _report(result: BuildResult, out_dir: Path | None) -> str:
    r = result.report
    lines = []
    if out_dir is not None and r.up_to_date:
        lines.append(f"nothing changed since the last build; nothing written to {out_dir}/")
        lines.append(f"{r.decks} decks, {r.notes} notes, {r.cards} cards, {r.formulas} formulas; {r.seconds:.1f} s")
        return "\n".join(lines)
    if out_dir is not None:
        if r.packages:
            unchanged = f" ({len(r.unchanged_packages)} unchanged)" if r.unchanged_packages else ""
            names = ", ".join(r.packages[:10]) + (f", and {len(r.packages) - 10} more" if len(r.packages) > 10 else "")
            lines.append(f"wrote {len(r.packages)} package(s) to {out_dir}/: {names}{unchanged}")
            lines.append(f"{r.changed_notes} note(s) new or changed")
        else:
            lines.append(f"nothing changed since the last build; nothing written to {out_dir}/")
        if r.removed:
            lines.append(f"{r.removed_cards} card(s) removed since the last build (notes {', '.join(r.removed)})")
    lines.append(
        f"{r.decks} decks, {r.notes} notes, {r.cards} cards, {r.formulas} formulas, "
        f"snippets: {r.snippets_run} run, {r.snippets_cached} cached, {r.snippets_failed} failed; {r.seconds:.1f} s"
    )
    return "\n".join(lines)


def _options(args: argparse.Namespace) -> BuildOptions:
    """Merge the command line over the project config; raise DeckbuildError for bad values."""
    project = load_project(list(args.sources), args.config)
    if args.command == "preview":
        return BuildOptions(
            sources=project.sources,
            cache_dir=args.cache_dir or project.cache_dir,
            python=args.python or project.python or sys.executable,
            progress=False,
            guid_namespace=project.guid_namespace,
            math=args.math or project.math or DEFAULT_ENGINE,
            cached_output_only=not args.run,
        )
    building = args.command == "build"
    out = args.out if building and args.out is not None else project.out
    if building and (out.is_file() or out.suffix == ".apkg"):
        raise PackageError(f"--out takes a folder, and {out} is a file name; the package names come from the deck names")
    cache = None if args.no_cache else (args.cache_dir or project.cache_dir)
    return BuildOptions(
        sources=project.sources,
        out_dir=out if building else None,
        strict=args.strict if args.strict is not None else project.strict,
        cache_dir=cache,
        run_code=not args.no_run,
        python=args.python or project.python or sys.executable,
        progress=False if args.quiet else None,
        guid_namespace=project.guid_namespace,
        math=args.math or project.math or DEFAULT_ENGINE,
    )


def _init(folder: Path) -> int:
    try:
        written = init_project(folder)
    except DeckbuildError as error:
        print(error, file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    where = "" if folder == Path(".") else f" in {folder}"
    print(f"next: run 'deckbuild build'{where}, then import dist/*.apkg into Anki (File > Import)")
    return 0


def _preview(args: argparse.Namespace) -> int:
    from deckbuild import preview

    missing = preview.missing_extra()
    if missing:
        print(f"deckbuild: {missing}", file=sys.stderr)
        return 1
    try:
        options = _options(args)
        project = load_project(list(args.sources), args.config)
        watch = (*options.sources, *((project.config,) if project.config else ()))
        preview.serve(options, watch, host=args.host, port=args.port)
    except DeckbuildError as error:
        print(f"deckbuild: preview: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("deckbuild preview: stopped", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 problems found, 2 usage,
    130 after Ctrl-C / SIGINT, 143 after SIGTERM).

    SIGINT and SIGTERM both unwind the build like an exception: worker processes are
    stopped, temporary files removed, and the previous packages stay as they were; one
    line ``deckbuild: interrupted ...`` is printed, never a traceback.
    """
    try:
        with interrupts.raising():
            return _main(argv)
    except KeyboardInterrupt as interrupt:
        signum = interrupt.signum if isinstance(interrupt, interrupts.Interrupted) else signal.SIGINT
        print(f"deckbuild: interrupted ({signal.Signals(signum).name}); previous packages unchanged", file=sys.stderr)
        return 128 + signum


def _main(argv: list[str] | None) -> int:
    parser, subs = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        subs[args.command].error(f"unrecognized arguments: {' '.join(extra)}")  # exits 2 with that command's usage
    if args.command == "init":
        return _init(args.folder)
    if args.command == "preview":
        return _preview(args)
    try:
        options = _options(args)
        result = build(options)
        stale = stale_packages(options.out_dir, result.packages) if options.out_dir is not None else []
        if stale and args.prune:
            remove_packages(stale)
    except BuildFailed as failed:
        for diagnostic in failed.diagnostics:
            print(diagnostic, file=sys.stderr)
        if failed.report is not None and not args.quiet:
            print(_report(BuildResult(failed.report, [], []), None), file=sys.stderr)
        errors = sum(d.severity is Severity.ERROR for d in failed.diagnostics)
        warnings = len(failed.diagnostics) - errors
        print(f"deckbuild: {args.command} failed: {errors} error(s), {warnings} warning(s); nothing written", file=sys.stderr)
        return 1
    except DeckbuildError as error:
        print(error, file=sys.stderr)
        print(f"deckbuild: {args.command} failed; nothing written", file=sys.stderr)
        return 1
    for diagnostic in result.diagnostics:
        print(diagnostic, file=sys.stderr)
    if not args.quiet:
        print(_report(result, options.out_dir))
    for path in stale:
        verb = "removed" if args.prune else "left"
        note = "" if args.prune else " (this build no longer makes it; --prune deletes it)"
        print(f"{path}: {verb} stale package{note}", file=sys.stdout if args.prune else sys.stderr)
    return 0
