"""The ``deckbuild`` command line: ``build`` and ``check`` (argparse, no framework)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deckbuild import __version__
from deckbuild.build import BuildOptions, BuildResult, build
from deckbuild.errors import BuildFailed, DeckbuildError, Severity


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deckbuild", description="Compile flashcard sources into Anki packages.")
    parser.add_argument("--version", action="version", version=f"deckbuild {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("build", "build .apkg packages from card sources"),
        ("check", "validate, render and run the sources; write nothing"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("sources", nargs="*", type=Path, default=[Path("cards")], help="files or folders (default: cards/)")
        sub.add_argument("--strict", action="store_true", help="treat warnings as errors")
        sub.add_argument("--python", default=sys.executable, help="interpreter that runs code cards (default: this one)")
        sub.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no report")
        if name == "build":
            sub.add_argument("--out", type=Path, default=Path("dist"), help="output folder (default: dist/)")
            sub.add_argument("--no-cache", action="store_true", help="run every snippet, ignoring cached outputs")
            sub.add_argument("--cache-dir", type=Path, default=Path(".deckbuild-cache"), help="output cache folder")
        else:
            sub.add_argument("--no-run", action="store_true", help="do not run code cards")
    return parser


def _report(result: BuildResult, out_dir: Path | None) -> str:
    r = result.report
    lines = []
    if out_dir is not None:
        lines.append(f"wrote {len(r.packages)} package(s) to {out_dir}/: {', '.join(r.packages)}")
    lines.append(
        f"{r.decks} decks, {r.notes} notes, {r.cards} cards, {r.formulas} formulas, "
        f"snippets: {r.snippets_run} run, {r.snippets_cached} cached, {r.snippets_failed} failed; {r.seconds:.1f} s"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 problems found, 2 usage)."""
    args = _parser().parse_args(argv)
    building = args.command == "build"
    options = BuildOptions(
        sources=tuple(args.sources),
        out_dir=args.out if building else None,
        strict=args.strict,
        cache_dir=None if building and args.no_cache else (args.cache_dir if building else None),
        run_code=not getattr(args, "no_run", False),
        python=args.python,
        progress=False if args.quiet else None,
    )
    try:
        result = build(options)
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
    except KeyboardInterrupt:
        print("deckbuild: interrupted", file=sys.stderr)
        return 130
    for diagnostic in result.diagnostics:
        print(diagnostic, file=sys.stderr)
    if not args.quiet:
        print(_report(result, options.out_dir))
    return 0
