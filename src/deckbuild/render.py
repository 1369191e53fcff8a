"""Stage 3: render each card's text fields to HTML.

Markdown → HTML with Python-Markdown (tables, fenced code, sane lists), math → MathML through
:mod:`deckbuild.mathext`, and code → Pygments HTML with inline styles. Inline styles survive
every Anki client (desktop, AnkiDroid, AnkiMobile), and each code block sets its own
foreground and background colours, so it stays readable in night mode.

Pure functions of the cards: nothing here reads or writes files.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from markdown import Markdown
from markdown.extensions.codehilite import CodeHiliteExtension
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer
from pygments.styles import get_style_by_name

from deckbuild.errors import Diagnostic, Severity
from deckbuild.mathext import MathExtension
from deckbuild.model import Card, RenderedCard, Text

PYGMENTS_STYLE = "friendly"
_STYLE = get_style_by_name(PYGMENTS_STYLE)
#: Explicit colours on every code block: readable whatever the card's (night-mode) colours are.
CODE_BLOCK_STYLE = (
    f"background: {_STYLE.background_color}; color: #1f2328; padding: 0.6em 0.8em; "
    "border-radius: 6px; overflow-x: auto; line-height: 1.35; text-align: left; font-size: 0.85em"
)


@dataclass(frozen=True)
class RenderedText:
    """HTML of one Markdown text; ``problems`` are ``(offset, formula, message)`` per bad formula."""

    html: str
    formulas: int
    problems: tuple[tuple[int, str, str], ...]


class MarkdownRenderer:
    """A configured Python-Markdown converter. Not thread-safe: one per thread or process."""

    def __init__(self) -> None:
        self._math = MathExtension()
        self._md = Markdown(
            extensions=[
                self._math,
                "fenced_code",
                "tables",
                "sane_lists",
                CodeHiliteExtension(
                    noclasses=True,
                    pygments_style=PYGMENTS_STYLE,
                    guess_lang=False,
                    prestyles=CODE_BLOCK_STYLE,
                ),
            ],
            output_format="html",
        )

    def convert(self, source: str) -> RenderedText:
        """Render Markdown ``source`` to HTML (CommonMark-like, as Python-Markdown reads it)."""
        self._md.reset()
        self._math.log.reset(source)
        html = self._md.convert(source)
        log = self._math.log
        return RenderedText(html, log.formulas, tuple(log.problems))


_renderer: MarkdownRenderer | None = None


@lru_cache(maxsize=65536)
def render_markdown(source: str) -> RenderedText:
    """Render one Markdown text, memoised by its content (many cards share short texts)."""
    global _renderer
    if _renderer is None:
        _renderer = MarkdownRenderer()
    return _renderer.convert(source)


def highlight_code(code: str) -> str:
    """Return ``code`` (Python source) as highlighted HTML with inline styles."""
    formatter = HtmlFormatter(noclasses=True, style=PYGMENTS_STYLE, prestyles=CODE_BLOCK_STYLE, nobackground=False)
    return highlight(code, PythonLexer(), formatter)


def render_card(card: Card) -> tuple[RenderedCard, list[Diagnostic]]:
    """Render every text field of ``card``; bad formulas become located diagnostics."""
    problems: list[Diagnostic] = []
    formulas = 0

    def field(text: Text | None) -> str:
        nonlocal formulas
        if text is None:
            return ""
        rendered = render_markdown(text.value)
        formulas += rendered.formulas
        for offset, formula, message in rendered.problems:
            location = text.location_of(offset) if offset >= 0 else text.location
            problems.append(Diagnostic(location, Severity.ERROR, f"bad LaTeX in {formula}: {message}"))
        return rendered.html

    rendered = RenderedCard(
        card=card,
        question=field(card.q),
        answer=field(card.a),
        topic=field(card.topic),
        why=field(card.why),
        follow_up=field(card.follow_up),
        follow_up_answer=field(card.follow_up_a),
        code_html=highlight_code(card.code.value) if card.code else "",
        formulas=formulas,
    )
    return rendered, problems


def render(cards: list[Card]) -> tuple[list[RenderedCard], list[Diagnostic]]:
    """Render all cards; returns the rendered cards and every LaTeX problem found."""
    out: list[RenderedCard] = []
    problems: list[Diagnostic] = []
    for card in cards:
        rendered, card_problems = render_card(card)
        out.append(rendered)
        problems += card_problems
    return out, problems
