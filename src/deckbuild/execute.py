"""Stage 4: run every code card's snippet and bake what it printed into the note.

Phones run no add-ons, so the output a learner sees on AnkiDroid or AnkiMobile is the one
made here. Snippets run in one warm worker (:mod:`deckbuild.runner`): torch is imported once
per build, not once per snippet. Outputs are cached by a hash of the snippet and everything
that can change what it prints (Python, torch and numpy versions, the runner's version, the
output cap), so an unchanged snippet never runs twice.
"""

from __future__ import annotations

import base64
import binascii
import html
import platform
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata

from tqdm import tqdm

from deckbuild.cache import Cache, content_key
from deckbuild.errors import Diagnostic, Location, Severity
from deckbuild.model import DEFAULT_TIMEOUT, Card, CodeOutput, Kind, Media
from deckbuild.runner import RUNNER_VERSION, Figure, RunResult, Worker, WorkerError

MAX_OUTPUT_BYTES = 65536
#: Figure limits per snippet (see runner.py, "Figures"): count, pixels a side, bytes in all.
MAX_FIGURES, MAX_FIGURE_SIDE, MAX_FIGURE_BYTES = 20, 4000, 8 << 20


@dataclass(frozen=True)
class ExecuteStats:
    """How many snippets ran, came from the cache, and failed."""

    run: int = 0
    cached: int = 0
    failed: int = 0


_VERSIONS_SCRIPT = (
    "import platform\nfrom importlib import metadata\n"
    "def v(n):\n    try:\n        return metadata.version(n)\n    except Exception:\n        return 'absent'\n"
    "print(platform.python_version(), v('torch'), v('numpy'), v('matplotlib'))"
)


@lru_cache(maxsize=None)
def interpreter_versions(python: str) -> tuple[str, ...]:
    """Return (Python, torch, numpy, matplotlib) versions of ``python``, from package metadata.

    The build's own interpreter answers in-process; another one is asked in a short
    subprocess (no torch import). An interpreter that cannot answer gives ``("unknown",)``.
    """
    if python == sys.executable:
        return (platform.python_version(), *(_own_version(n) for n in ("torch", "numpy", "matplotlib")))
    try:
        done = subprocess.run([python, "-c", _VERSIONS_SCRIPT], capture_output=True, text=True, timeout=30)
        return tuple(done.stdout.split()) if done.returncode == 0 else ("unknown",)
    except (OSError, subprocess.SubprocessError):
        return ("unknown",)


def _own_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def cache_key(code: str, python: str, expect_error: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> str:
    """Return the cache key (hex SHA-256) of a snippet run by interpreter ``python``.

    It covers everything that can change what the snippet prints or whether that output is
    accepted: the code, ``expect_error``, ``timeout`` (seconds: a run near its limit may
    pass under one and time out under another), the interpreter's path and its Python,
    torch, numpy and matplotlib versions, the runner's version, the output and figure caps. Each snippet runs
    in a fresh process (see :mod:`deckbuild.runner`), so no other card changes its output.
    """
    versions = interpreter_versions(python)
    return content_key(code, str(expect_error), repr(float(timeout)), python, *versions, RUNNER_VERSION, *map(str, (MAX_OUTPUT_BYTES, MAX_FIGURES, MAX_FIGURE_SIDE, MAX_FIGURE_BYTES)))


FIGURE_SUFFIX = {"svg": ".svg", "png": ".png"}


def figure_media(card_id: str, figures: tuple[Figure, ...]) -> tuple[tuple[Media, Media, Figure], ...]:
    """Return (day media, night media, figure) for each figure a card's snippet drew.

    Names come from :meth:`Media.from_bytes` (content-hashed, hinted with the card id).
    """
    out = []
    for index, figure in enumerate(figures, 1):
        suffix = FIGURE_SUFFIX[figure.format]
        day = Media.from_bytes(figure.day, f"{card_id}-figure-{index}", suffix)
        night = Media.from_bytes(figure.night, f"{card_id}-figure-{index}-night", suffix)
        out.append((day, night, figure))
    return tuple(out)


def figures_html(figures: tuple[tuple[Media, Media, Figure], ...]) -> str:
    """Return the ``<img>`` pair of each figure: the day one, and the night one that the
    note type's CSS shows instead under ``.nightMode`` (Anki's night-mode class).

    ``width``/``height`` are CSS px; the CSS scales images down to the card width.
    """
    if not figures:
        return ""
    images = []
    for day, night, figure in figures:
        size = f'width="{figure.width}" height="{figure.height}"'
        alt = html.escape(figure.alt)
        images.append(f'<img class="db-figure db-day" src="{day.name}" alt="{alt}" {size}>')
        images.append(f'<img class="db-figure db-night" src="{night.name}" alt="{alt}" {size}>')
    return f'<div class="db-figures">{"".join(images)}</div>'


def output_html(result: RunResult, figures: tuple[tuple[Media, Media, Figure], ...] = ()) -> str:
    """Render a run's stdout, its figures (see :func:`figure_media`), stderr and exception
    as separate blocks.

    No path, timing or host name goes into the note: notes sync to other devices and the
    same sources must give the same package.
    """
    parts = []
    if result.stdout:
        parts.append(f'<pre class="stdout">{html.escape(result.stdout)}</pre>')
    if figures:
        parts.append(figures_html(figures))
    if result.stderr:
        parts.append(f'<pre class="stderr">{html.escape(result.stderr)}</pre>')
    if result.error:
        parts.append(f'<pre class="exception">{html.escape(result.error)}</pre>')
    if result.timed_out:
        parts.append('<pre class="exception">Timed out.</pre>')
    if not parts:
        parts.append('<pre class="stdout">(no output)</pre>')
    meta = f"Python {result.python}" + (f" · torch {result.torch}" if result.torch else "")
    return f'<div class="db-run">{"".join(parts)}<div class="db-run-meta">{html.escape(meta)}</div></div>'


def raised(error: str) -> tuple[str, str]:
    """Return the class name and the message of the exception a formatted traceback ends with.

    The class is only a fallback (a result without ``error_types``, e.g. a worker crash):
    ``expect_error`` is matched against the class and bases the worker sends.

    The exception's line follows the last ``File "..."`` frame and its indented source and
    caret lines (Python's traceback format); a traceback without frames (``WorkerCrash: ...``)
    is that line itself. Names are as Python prints them: ``RuntimeError``,
    ``torch.OutOfMemoryError``. The message may span several lines.
    """
    lines = error.strip("\n").split("\n")
    start = 0
    for i, line in enumerate(lines):
        if line.startswith("  File "):
            start = i + 1
            while start < len(lines) and lines[start].startswith("    "):
                start += 1
    head, _, rest = "\n".join(lines[start:]).partition(":")
    return head.strip(), rest.strip()


def _cache_value(output: CodeOutput) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Return ``output`` as inert cache data: the HTML, and each medium's name and base64 bytes."""
    return output.html, tuple((m.name, base64.b64encode(m.data).decode("ascii")) for m in output.media)


def _from_cache(card_id: str, value: tuple[str, tuple[tuple[str, str], ...]]) -> CodeOutput | None:
    """Return the cached output, or ``None`` if ``value`` is not a sound one.

    A medium must decode from base64, its name must be the one :meth:`Media.from_bytes`
    gives its bytes, and the HTML must reference it.
    """
    html_text, stored = value
    media = []
    for name, encoded in stored:
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return None
        stem, dot, suffix = name.rpartition(".")
        medium = Media.from_bytes(data, stem.rsplit("-", 1)[0], f"{dot}{suffix}")
        if medium.name != name or f'src="{name}"' not in html_text:
            return None
        media.append(medium)
    return CodeOutput(card_id, html_text, cached=True, media=tuple(media))


def _problem(card: Card, result: RunResult) -> str | None:
    """Return what is wrong with a run of ``card``'s snippet, or ``None``."""
    if result.timed_out:
        return f"code card '{card.id}' timed out after {card.timeout:g} s"
    summary = result.error.strip().splitlines()[-1] if result.error and result.error.strip() else "an exception"
    if result.error and card.expect_error is None:
        return f"code card '{card.id}' raised {summary}"
    if card.expect_error is not None:
        name, _, text = card.expect_error.partition(":")
        text = text.strip()
        wanted = f"{name}" + (f" with '{text}' in its message" if text else "")
        if not result.error:
            return f"code card '{card.id}' expects {wanted} but ran without an error"
        got, message = raised(result.error)
        if not _is_a(result.error_types or (got,), name) or text not in message:
            return f"code card '{card.id}' expects {wanted} but raised {summary}"
    if result.truncated:
        return f"code card '{card.id}' printed more than {MAX_OUTPUT_BYTES // 1024} KiB; a note should show all of its output"
    return None


def _is_a(types: tuple[str, ...], name: str) -> bool:
    """True if ``name`` is one of ``types`` (an exception's class and bases, as the worker
    sends them), by full name or by its last dotted part (``OutOfMemoryError`` names
    ``torch.OutOfMemoryError``)."""
    return any(t == name or t.endswith("." + name) for t in types)


def _error_location(card: Card, result: RunResult) -> Location:
    """The source line of the snippet line that raised, else the snippet's first line."""
    assert card.code is not None
    start = card.code.location
    offset = result.error_line - 1 if result.error_line and card.code.block else 0
    return Location(start.path, start.line + offset)


def execute(
    cards: list[Card],
    *,
    cache: Cache | None,
    python: str = sys.executable,
    progress: bool | None = None,
    run: bool = True,
) -> tuple[dict[str, CodeOutput], list[Diagnostic], ExecuteStats]:
    """Run the snippet of every code card in ``cards``.

    ``cache`` keeps outputs between builds (``None``: run everything); ``progress`` shows a
    progress bar (``None``: only on a terminal); ``run`` ``False`` takes outputs from the
    cache only and runs nothing (a snippet not in the cache gets no output; the preview).
    Returns outputs by card id, problems (a snippet that raised, timed out, or printed
    nothing) and counts.
    """
    code_cards = [c for c in cards if c.kind is Kind.CODE and c.code is not None]
    outputs: dict[str, CodeOutput] = {}
    problems: list[Diagnostic] = []
    to_run: list[tuple[Card, str]] = []
    cached = 0
    keys = {card.id: cache_key(card.code.value, python, card.expect_error, card.timeout) for card in code_cards}
    hits = cache.get_many("output", keys.values(), tuple[str, tuple[tuple[str, str], ...]]) if cache else {}
    for card in code_cards:
        key = keys[card.id]
        hit = _from_cache(card.id, hits[key]) if key in hits else None
        if hit is not None:
            outputs[card.id] = hit
            cached += 1
        elif run:
            to_run.append((card, key))
    failed = 0
    if to_run:
        try:
            limits = dict(max_figures=MAX_FIGURES, max_figure_side=MAX_FIGURE_SIDE, max_figure_bytes=MAX_FIGURE_BYTES)
            with Worker(python, max_output_bytes=MAX_OUTPUT_BYTES, **limits) as worker:
                for card, key in tqdm(to_run, desc="running snippets", unit="snippet", disable=None if progress is None else not progress, file=sys.stderr):
                    result = worker.run(card.code.value, timeout=card.timeout)
                    problem = _problem(card, result)
                    if problem:
                        failed += 1
                        problems.append(Diagnostic(_error_location(card, result), Severity.ERROR, problem))
                        continue
                    figures = figure_media(card.id, result.figures)
                    media = tuple(m for day, night, _ in figures for m in (day, night))
                    output = CodeOutput(card.id, output_html(result, figures), seconds=result.seconds, media=media)
                    outputs[card.id] = output
                    if not (result.stdout or result.stderr or result.error or figures):
                        problems.append(Diagnostic(card.code.location, Severity.WARNING, f"code card '{card.id}' printed nothing"))
                    elif cache:  # only accepted, warning-free outputs are cached
                        cache.put_many("output", {key: _cache_value(output)})
        except WorkerError as exc:
            problems.append(Diagnostic(None, Severity.ERROR, f"cannot run code cards with {python}: {exc}"))
            failed = len(to_run)
    return outputs, problems, ExecuteStats(run=len(to_run), cached=cached, failed=failed)
