"""A Python-Markdown extension that finds TeX math while Markdown is parsed.

Math is found by inline processors (Python-Markdown's extension API), not by regex over
rendered HTML: code spans (priority 190) are stashed before these run (priority 183-187),
so ``$`` inside code is never math, and the escape processor (180) has not yet seen the
backslashes of ``\\(`` and ``\\[``. Each formula goes into the HTML stash as a placeholder, so
no later processor (emphasis on ``a_i b_i``, say) can touch it; :func:`fill_formulas` replaces
the placeholders with MathML once the math engine has converted a whole batch of formulas
(:func:`deckbuild.latex.convert_many`).

Delimiters: ``$…$`` and ``\\(…\\)`` inline, ``$$…$$`` and ``\\[…\\]`` display; ``\\$`` is a
literal dollar. A single ``$`` follows pandoc's ``tex_math_dollars`` rule: the opening ``$``
must have a non-space character right after it, the closing one a non-space character
right before it and no digit right after it, so ``costs $5 and $10`` stays text.
A delimiter that opens math but never closes (``$$``, ``\\(``, ``\\[``, or ``$`` followed by a
letter, ``\\`` or ``{``) is reported as a problem instead of being left as text.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from markdown import Markdown
from markdown.extensions import Extension
from markdown.inlinepatterns import InlineProcessor
from markdown.preprocessors import Preprocessor

from deckbuild.latex import LatexProblem

_DISPLAY_DOLLARS = r"(?<!\\)\$\$((?:[^$\\]|\\.)+?)\$\$"
_DISPLAY_BRACKETS = r"\\\[(.+?)\\\]"
_INLINE_PARENS = r"\\\((.+?)\\\)"
_INLINE_DOLLAR = r"(?<![\\$])\$(?![\s$])((?:[^$\\]|\\.)+?)(?<!\s)\$(?!\d)"
# Delimiters left over once every formula is stashed: an opening that never closed.
# A single '$' counts only where it opens like math (a letter, '\\' or '{' after it): '$5' is money.
_UNTERMINATED = r"(?<!\\)(\$\$|\\\(|\\\[|\$(?=[A-Za-z\\{]))"


@dataclass(frozen=True)
class Formula:
    """One formula found in Markdown: ``source`` as written (with delimiters), ``tex`` inside
    them, ``display`` for ``$$``/``\\[``, and ``offset`` where ``source`` starts in the Markdown
    (0-based, -1 if it could not be found)."""

    offset: int
    source: str
    tex: str
    display: bool


@dataclass
class MathLog:
    """What the extension saw in the last conversion.

    ``formulas`` lists each formula in order (its HTML is a placeholder until
    :func:`fill_formulas` puts the engine's MathML in); ``problems`` lists
    ``(offset, source, message)`` for delimiters that never close.
    """

    formulas: list[Formula] = field(default_factory=list)
    problems: list[tuple[int, str, str]] = field(default_factory=list)
    source: str = ""

    def reset(self, source: str) -> None:
        self.formulas = []
        self.problems = []
        self.source = source


_PLACEHOLDER = '<math data-db-formula="{}"></math>'
_PLACEHOLDER_RE = re.compile(r'<math data-db-formula="(\d+)"></math>')


def fill_formulas(
    html_text: str, formulas: Sequence[Formula], converted: Mapping[tuple[str, bool], str | LatexProblem]
) -> tuple[str, list[tuple[int, str, str]]]:
    """Put each formula's MathML (``converted[(tex, display)]``) where its placeholder is.

    Returns the HTML and ``(offset, source, message)`` for each formula the engine refused;
    such a formula is shown as its source in a ``math-error`` span.
    """
    problems: list[tuple[int, str, str]] = []

    def one(match: re.Match) -> str:
        index = int(match.group(1))
        if index >= len(formulas):  # not a placeholder of ours: raw HTML that looks like one
            return match.group(0)
        formula = formulas[index]
        result = converted[(formula.tex, formula.display)]
        if isinstance(result, LatexProblem):
            problems.append((formula.offset, formula.source, str(result)))
            return '<span class="math-error">' + html.escape(formula.source, quote=False) + "</span>"
        return result

    return _PLACEHOLDER_RE.sub(one, html_text), problems


_PIPE = "\ue000"  # stands for a '|' inside math on a table row until the math processor reads it
_INLINE_ANY = re.compile(f"{_INLINE_DOLLAR}|{_INLINE_PARENS}")


class _TablePipes(Preprocessor):
    """Keep a ``|`` inside inline math (``$|x|$``, ``$p(a \\mid b)$`` written with ``|``) out of
    the tables extension, which splits a row at every ``|`` outside code spans.

    On a line that also has a ``|`` outside math (a table row), the ``|`` inside each inline
    formula becomes a private-use character that :class:`_MathProcessor` turns back.
    """

    def run(self, lines: list[str]) -> list[str]:
        out = []
        for line in lines:
            spans = [m.span() for m in _INLINE_ANY.finditer(line) if "|" in m.group(0)]
            outside = _INLINE_ANY.sub("", line)
            if spans and "|" in outside:
                for start, end in reversed(spans):
                    line = line[:start] + line[start:end].replace("|", _PIPE) + line[end:]
            out.append(line)
        return out


class _MathProcessor(InlineProcessor):
    def __init__(self, pattern: str, md: Markdown, log: MathLog, display: bool):
        super().__init__(pattern, md)
        self.log = log
        self.display = display

    def handleMatch(self, m, data):  # noqa: N802 - Python-Markdown's API name
        tex = next(g for g in m.groups() if g is not None).replace(_PIPE, "|")
        written = m.group(0).replace(_PIPE, "|")
        # The engine converts every formula of a build in one batch later; keep a placeholder.
        # It starts with <math>, which Python-Markdown counts as block-level, so a paragraph
        # holding only a formula is not wrapped in <p>.
        placeholder = _PLACEHOLDER.format(len(self.log.formulas))
        self.log.formulas.append(Formula(self.log.source.find(written), written, tex, self.display))
        if self.display:
            placeholder = f'<div class="math-display">{placeholder}</div>'
        return self.md.htmlStash.store(placeholder), m.start(0), m.end(0)


class _UnterminatedProcessor(InlineProcessor):
    def __init__(self, pattern: str, md: Markdown, log: MathLog):
        super().__init__(pattern, md)
        self.log = log

    def handleMatch(self, m, data):  # noqa: N802
        opening = m.group(1)
        rest = data[m.end() : m.end() + 20].split("\n")[0].rstrip()
        self.log.problems.append((self.log.source.find(opening + rest), opening + rest, f"'{opening}' is never closed"))
        return self.md.htmlStash.store(html.escape(opening, quote=False)), m.start(0), m.end(0)


class _DollarProcessor(InlineProcessor):
    def handleMatch(self, m, data):  # noqa: N802
        return self.md.htmlStash.store("$"), m.start(0), m.end(0)


class MathExtension(Extension):
    """Register the math processors; ``log`` collects counts and problems per conversion."""

    def __init__(self, **kwargs):
        self.log = MathLog()
        super().__init__(**kwargs)

    def extendMarkdown(self, md: Markdown) -> None:  # noqa: N802
        md.preprocessors.register(_TablePipes(md), "math-table-pipes", 25)
        md.inlinePatterns.register(_DollarProcessor(r"\\\$", md), "math-dollar-escape", 183)
        md.inlinePatterns.register(_MathProcessor(_DISPLAY_DOLLARS, md, self.log, True), "math-display-dollars", 187)
        md.inlinePatterns.register(_MathProcessor(_DISPLAY_BRACKETS, md, self.log, True), "math-display-brackets", 186.5)
        md.inlinePatterns.register(_MathProcessor(_INLINE_PARENS, md, self.log, False), "math-inline-parens", 186)
        md.inlinePatterns.register(_MathProcessor(_INLINE_DOLLAR, md, self.log, False), "math-inline-dollar", 185)
        md.inlinePatterns.register(_UnterminatedProcessor(_UNTERMINATED, md, self.log), "math-unterminated", 184)

