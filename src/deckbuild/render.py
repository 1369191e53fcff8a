"""Stage 3: render each card's text fields to HTML.

Markdown → HTML with Python-Markdown (tables, fenced code, sane lists), math → MathML through
:mod:`deckbuild.mathext` and the math engine, and code → Pygments HTML with CSS classes. The
note type CSS (:func:`code_css`) colours those classes with a light style, and with a dark one
under Anki's night-mode classes (``.nightMode``, ``.night_mode``), both chosen so every token
has at least 4.5:1 contrast with the code background (WCAG 2 AA). Each code line is its own
block carrying its indentation, so a line too long for a phone wraps under its own indent.

Pure functions of the cards: files are touched only through the optional build cache.
"""

from __future__ import annotations

import html as html_lib
import multiprocessing
import os
import re
import threading
from concurrent.futures import InvalidStateError, ProcessPoolExecutor
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

from markdown import Markdown
from markdown.extensions import Extension
from markdown.extensions.codehilite import CodeHiliteExtension
from markdown.treeprocessors import Treeprocessor
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from deckbuild import interrupts, sanitize
from deckbuild.cache import Cache, code_version, content_key
from deckbuild.errors import Diagnostic, Severity
from deckbuild.latex import DEFAULT_ENGINE, convert_many, engine
from deckbuild.mathext import Formula, MathExtension, fill_formulas
from deckbuild.model import Card, ImageRef, Media, RenderedCard, Text

#: Pygments styles for day and night; their lowest token contrast on their own background is
#: 5.1:1 (xcode) and 6.2:1 (github-dark), above WCAG AA's 4.5:1.
LIGHT_STYLE = "xcode"
DARK_STYLE = "github-dark"
NIGHT_MODE = (".nightMode", ".night_mode")  # Anki desktop / AnkiDroid and AnkiMobile
_TAGS = re.compile(r"<[^>]*>")


class CodeFormatter(HtmlFormatter):
    """Pygments' HTML formatter with CSS classes, each line wrapped in ``<span class="db-line">``
    whose ``--indent`` (in ``ch``) is the line's leading spaces: the card CSS indents a wrapped
    line's continuation by that much (a hanging indent), so indentation stays readable."""

    def __init__(self, **options) -> None:
        super().__init__(**{"cssclass": "codehilite", **options})

    def wrap(self, source):
        return super().wrap(self._lines(source))

    @staticmethod
    def _lines(source):
        for is_line, text in source:
            if is_line:
                plain = html_lib.unescape(_TAGS.sub("", text))
                indent = len(plain) - len(plain.lstrip(" "))
                text = f'<span class="db-line" style="--indent:{indent}ch">{text}</span>'
            yield is_line, text


def code_css() -> str:
    """Return the CSS for highlighted code: :data:`LIGHT_STYLE` by default, :data:`DARK_STYLE`
    under :data:`NIGHT_MODE` (rules for ``.codehilite`` and its token classes)."""
    parts = []
    for style, prefixes in ((LIGHT_STYLE, [".codehilite"]), (DARK_STYLE, [f"{n} .codehilite" for n in NIGHT_MODE])):
        formatter = HtmlFormatter(style=style)
        parts.append(formatter.get_background_style_defs(prefixes) + formatter.get_token_style_defs(prefixes))
    light, dark = ("\n".join(p) for p in parts)
    return f"/* Pygments: {LIGHT_STYLE} by day, {DARK_STYLE} at night. */\n{light}\n{dark}\n"


@dataclass(frozen=True)
class RenderedText:
    """HTML of one Markdown text; ``problems`` are ``(offset, formula, message)`` per bad formula.

    ``images`` are ``(offset, src)`` per image, ``offset`` being where its ``![`` starts in the
    source (0-based, -1 if not found); in ``html`` each ``src`` is :func:`image_placeholder`.
    ``markup_problems`` are ``(offset, message)`` for other mistakes (a raw HTML ``<img>``).
    """

    html: str
    formulas: int
    problems: tuple[tuple[int, str, str], ...]
    images: tuple[tuple[int, str], ...] = ()
    markup_problems: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class ParsedText:
    """One Markdown text as HTML whose formulas are still placeholders (see :mod:`deckbuild.mathext`);
    ``problems`` are the math delimiters that never closed; ``images`` and ``markup_problems``
    as in :class:`RenderedText`."""

    html: str
    formulas: tuple[Formula, ...]
    problems: tuple[tuple[int, str, str], ...]
    images: tuple[tuple[int, str], ...] = ()
    markup_problems: tuple[tuple[int, str], ...] = ()


def image_placeholder(src: str) -> str:
    """Return what stands in an ``<img src>`` until the image's media name is known.

    Like Python-Markdown's own placeholders it is framed by STX/ETX, which no card text
    contains; the digest keeps it to characters that need no escaping in an attribute.
    """
    return f"\x02dbimg:{content_key('image', src)[:24]}\x03"


_IMAGE_PLACEHOLDER = re.compile("\x02dbimg:([0-9a-f]+)\x03")  # as a URL: see first_removed's use


class _ImageCollector(Treeprocessor):
    """Record every ``<img>`` Markdown made and put a placeholder in its ``src``.

    Raw HTML ``<img>`` tags are never seen here (Python-Markdown stashes raw HTML);
    :meth:`MarkdownRenderer.convert` reports them instead.
    """

    def __init__(self, md: Markdown):
        super().__init__(md)
        self.found: list[tuple[int, str]] = []
        self.source = ""

    def run(self, root):
        start = 0
        for element in root.iter("img"):
            src = element.get("src", "")
            offset = self.source.find(src, start) if src else -1
            start = offset + len(src) if offset >= 0 else start
            opening = self.source.rfind("![", 0, offset) if offset >= 0 else -1
            self.found.append((opening if opening >= 0 else offset, src))
            element.set("src", image_placeholder(src))
        return None


class _ImageExtension(Extension):
    def extendMarkdown(self, md: Markdown) -> None:  # noqa: N802 - Python-Markdown's API name
        self.collector = _ImageCollector(md)
        md.treeprocessors.register(self.collector, "deckbuild-images", 15)  # after inline (20)


class MarkdownRenderer:
    """A configured Python-Markdown converter. Not thread-safe: one per thread or process."""

    def __init__(self) -> None:
        self._math = MathExtension()
        self._images = _ImageExtension()
        self._md = Markdown(
            extensions=[
                self._math,
                self._images,
                "fenced_code",
                "tables",
                "sane_lists",
                CodeHiliteExtension(guess_lang=False, pygments_formatter=CodeFormatter),
            ],
            output_format="html",
        )

    def convert(self, source: str) -> ParsedText:
        """Render Markdown ``source`` to HTML (CommonMark-like, as Python-Markdown reads it)."""
        self._md.reset()
        self._math.log.reset(source)
        collector = self._images.collector
        collector.found, collector.source = [], source
        html = self._md.convert(source)
        log = self._math.log
        markup = []
        if any("<img" in str(block).lower() for block in self._md.htmlStash.rawHtmlBlocks):
            markup.append((source.lower().find("<img"), "a raw HTML <img> is not packaged with the deck: write the image as ![alt](path)"))
        elif (removed := sanitize.first_removed(_IMAGE_PLACEHOLDER.sub(r"dbimg-\1", html))) is not None:
            needle, message = removed
            markup.append((source.lower().find(needle.lower()), f"{message} (docs/format.md lists the HTML a card may hold)"))
        return ParsedText(html, tuple(log.formulas), tuple(log.problems), tuple(collector.found), tuple(markup))


_renderer: MarkdownRenderer | None = None


def parse_markdown(source: str) -> ParsedText:
    """Render one Markdown text with this process's converter, leaving its formulas as placeholders."""
    global _renderer
    if _renderer is None:
        _renderer = MarkdownRenderer()
    return _renderer.convert(source)


def render_markdown(source: str, math: str = DEFAULT_ENGINE) -> RenderedText:
    """Render one Markdown text, its formulas converted by the math engine ``math``."""
    return _render_all([source], math)[0]


def highlight_code(code: str) -> str:
    """Return ``code`` (Python source) as highlighted HTML (``<div class="codehilite">``, token classes)."""
    return highlight(code, PythonLexer(), CodeFormatter())


#: Everything that changes rendered HTML: the libraries and deckbuild's renderer code
#: (the math engine's own version is added per build: see :func:`render`).
RENDER_VERSION = content_key(
    *(f"{name}={metadata.version(name)}" for name in ("markdown", "pygments")),
    code_version("render.py", "mathext.py", "latex.py", "sanitize.py"),
)
PARALLEL_THRESHOLD = 2000  # texts to render before a second process pays for its start-up


def _parse_all(texts: list[str]) -> list[ParsedText]:
    """Parse ``texts``, on every core when there are many (each process has its own converter)."""
    workers = min(os.cpu_count() or 1, 4)
    if len(texts) < PARALLEL_THRESHOLD or workers < 2:
        return [parse_markdown(t) for t in texts]
    try:
        context = multiprocessing.get_context("fork")
    except ValueError:  # no fork (Windows, macOS default): one process
        return [parse_markdown(t) for t in texts]
    # The workers ignore SIGINT, so Ctrl-C reaches only this process, which then kills them
    # (they write nothing) and drops the pending chunks: an interrupt never hangs the pool.
    others = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=interrupts.in_worker)
    try:
        with interrupts.deferred():  # map() submits every chunk (and forks the workers) at once
            results = pool.map(parse_markdown, texts, chunksize=max(1, len(texts) // (workers * 8)))
        out = list(results)
    except BaseException:
        # Python 3.11's pool thread, finding its workers killed, sets an error on futures the
        # interrupted map() has already cancelled and prints InvalidStateError; that thread
        # ends within the shutdown below, and only that error is silenced meanwhile.
        previous = threading.excepthook
        threading.excepthook = lambda args: None if issubclass(args.exc_type, InvalidStateError) else previous(args)
        try:
            for worker in set(multiprocessing.active_children()) - others:
                worker.kill()
            pool.shutdown(wait=True, cancel_futures=True)
        finally:
            threading.excepthook = previous
        raise
    pool.shutdown(wait=True)
    return out


def _render_all(texts: list[str], math: str) -> list[RenderedText]:
    """Render ``texts``: Markdown first (in parallel), then every distinct formula in one engine batch.

    The math engine runs only in this process, so a forked Markdown worker never touches V8.
    """
    parsed = _parse_all(texts)
    wanted = list(dict.fromkeys((f.tex, f.display) for p in parsed for f in p.formulas))
    converted = dict(zip(wanted, convert_many(wanted, math)))
    out = []
    for text in parsed:
        html, problems = fill_formulas(text.html, text.formulas, converted)
        all_problems = sorted([*text.problems, *problems], key=lambda p: p[0])
        out.append(RenderedText(html, len(text.formulas) - len(problems), tuple(all_problems), text.images, text.markup_problems))
    return out


def render(
    cards: list[Card], cache: Cache | None = None, math: str = DEFAULT_ENGINE
) -> tuple[list[RenderedCard], list[Diagnostic]]:
    """Render all cards; returns the rendered cards and every LaTeX problem found.

    ``math`` names the math engine (:data:`deckbuild.latex.ENGINES`). ``cache`` (optional)
    supplies and keeps renders by content hash (the key includes the engine and its version);
    renders with problems are never cached.
    """
    texts = list(dict.fromkeys(t.value for c in cards for t in c.texts()))
    codes = list(dict.fromkeys(c.code.value for c in cards if c.code is not None))
    math_version = engine(math).version()
    keys = {t: content_key(RENDER_VERSION, math_version, "md", t) for t in texts}
    code_keys = {c: content_key(RENDER_VERSION, "code", c) for c in codes}
    hits = cache.get_many("render", keys.values(), tuple[str, int, tuple[tuple[int, str], ...]]) if cache else {}
    code_hits = cache.get_many("render", code_keys.values(), str) if cache else {}

    done: dict[str, RenderedText] = {}
    for text, key in keys.items():
        if key in hits:
            html, formulas, images = hits[key]
            done[text] = RenderedText(html, formulas, (), images)
    misses = [t for t in texts if t not in done]
    fresh = dict(zip(misses, _render_all(misses, math)))
    done.update(fresh)
    highlighted = {c: code_hits[k] for c, k in code_keys.items() if k in code_hits}
    new_code = {c: highlight_code(c) for c in codes if c not in highlighted}
    highlighted.update(new_code)
    if cache:
        store = {keys[t]: (r.html, r.formulas, r.images) for t, r in fresh.items() if not (r.problems or r.markup_problems)}
        store.update({code_keys[c]: h for c, h in new_code.items()})
        cache.put_many("render", store)

    out: list[RenderedCard] = []
    problems: list[Diagnostic] = []
    for card in cards:
        rendered, card_problems = _assemble(card, done, highlighted)
        out.append(rendered)
        problems += card_problems
    return out, problems


def _assemble(card: Card, done: dict[str, RenderedText], highlighted: dict[str, str]):
    """Build one card's :class:`RenderedCard` from rendered texts; locate its bad formulas."""
    problems: list[Diagnostic] = []
    images: dict[str, ImageRef] = {}
    formulas = 0

    def field(text: Text | None) -> str:
        nonlocal formulas
        if text is None:
            return ""
        rendered = done[text.value]
        formulas += rendered.formulas
        for offset, formula, message in rendered.problems:
            location = text.location_of(offset) if offset >= 0 else text.location
            problems.append(Diagnostic(location, Severity.ERROR, f"bad LaTeX in {formula}: {message}"))
        for offset, message in rendered.markup_problems:
            location = text.location_of(offset) if offset >= 0 else text.location
            problems.append(Diagnostic(location, Severity.ERROR, message))
        for offset, src in rendered.images:
            images.setdefault(src, ImageRef(src, text.location_of(offset) if offset >= 0 else text.location))
        return rendered.html

    rendered = RenderedCard(
        card=card,
        question=field(card.q),
        answer=field(card.a),
        topic=field(card.topic),
        why=field(card.why),
        follow_up=field(card.follow_up),
        follow_up_answer=field(card.follow_up_a),
        code_html=highlighted[card.code.value] if card.code else "",
        formulas=formulas,
        images=tuple(images.values()),
    )
    return rendered, problems


_IMAGE_FIELDS = ("question", "answer", "topic", "why", "follow_up", "follow_up_answer")


def attach_images(cards: list[RenderedCard], media: dict[tuple[Path, str], Media]) -> list[RenderedCard]:
    """Put each image's media name into the ``src`` its placeholder holds, and the media
    into ``RenderedCard.media`` (in order, each once).

    ``media`` maps (card file, ``src`` as written) to the image's :class:`Media`, as
    :func:`deckbuild.load.load_images` returns it; images missing from it keep their
    placeholder (the build has already failed on them).
    """
    out = []
    for rendered in cards:
        found = [(ref, media[(ref.location.path, ref.src)]) for ref in rendered.images if (ref.location.path, ref.src) in media]
        if not found:
            out.append(rendered)
            continue
        changes = {}
        for name in _IMAGE_FIELDS:
            value = getattr(rendered, name)
            for ref, medium in found:
                value = value.replace(image_placeholder(ref.src), medium.name)
            changes[name] = value
        files = tuple({m.name: m for _, m in found}.values())
        out.append(replace(rendered, media=rendered.media + files, **changes))
    return out
