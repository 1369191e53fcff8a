"""A Python-Markdown extension that turns TeX math into MathML while Markdown is parsed.

Math is found by inline processors (Python-Markdown's extension API), not by regex over
rendered HTML: code spans (priority 190) are stashed before these run (priority 183-187),
so ``$`` inside code is never math, and the escape processor (180) has not yet seen the
backslashes of ``\\(`` and ``\\[``. Each formula's MathML goes into the HTML stash, so no
later processor (emphasis on ``a_i b_i``, say) can touch it.

Delimiters: ``$…$`` and ``\\(…\\)`` inline, ``$$…$$`` and ``\\[…\\]`` display; ``\\$`` is a
literal dollar. A single ``$`` follows pandoc's ``tex_math_dollars`` rule: the opening ``$``
must have a non-space character right after it, the closing one a non-space character
right before it and no digit right after it, so ``costs $5 and $10`` stays text.
A delimiter that opens math but never closes (``$$``, ``\\(``, ``\\[``, or ``$`` followed by a
letter, ``\\`` or ``{``) is reported as a problem instead of being left as text.
"""

from __future__ import annotations

import html

from dataclasses import dataclass, field

from markdown import Markdown
from markdown.extensions import Extension
from markdown.inlinepatterns import InlineProcessor

from deckbuild.latex import LatexProblem, to_mathml

_DISPLAY_DOLLARS = r"(?<!\\)\$\$((?:[^$\\]|\\.)+?)\$\$"
_DISPLAY_BRACKETS = r"\\\[(.+?)\\\]"
_INLINE_PARENS = r"\\\((.+?)\\\)"
_INLINE_DOLLAR = r"(?<![\\$])\$(?![\s$])((?:[^$\\]|\\.)+?)(?<!\s)\$(?!\d)"
# Delimiters left over once every formula is stashed: an opening that never closed.
# A single '$' counts only where it opens like math (a letter, '\\' or '{' after it): '$5' is money.
_UNTERMINATED = r"(?<!\\)(\$\$|\\\(|\\\[|\$(?=[A-Za-z\\{]))"


@dataclass
class MathLog:
    """What the extension saw in the last conversion.

    ``formulas`` counts converted formulas; ``problems`` lists ``(offset, tex, message)``
    for each formula that failed, ``offset`` being where the formula starts in the
    Markdown source (0-based), or -1 if it could not be found.
    """

    formulas: int = 0
    problems: list[tuple[int, str, str]] = field(default_factory=list)
    source: str = ""

    def reset(self, source: str) -> None:
        self.formulas = 0
        self.problems = []
        self.source = source


class _MathProcessor(InlineProcessor):
    def __init__(self, pattern: str, md: Markdown, log: MathLog, display: bool):
        super().__init__(pattern, md)
        self.log = log
        self.display = display

    def handleMatch(self, m, data):  # noqa: N802 - Python-Markdown's API name
        tex = next(g for g in m.groups() if g is not None)
        try:
            mathml = to_mathml(tex, self.display)
        except LatexProblem as exc:
            self.log.problems.append((self.log.source.find(m.group(0)), m.group(0), str(exc)))
            mathml = '<span class="math-error">' + html.escape(m.group(0), quote=False) + "</span>"
        else:
            self.log.formulas += 1
        if self.display:
            mathml = f'<div class="math-display">{mathml}</div>'
        return self.md.htmlStash.store(mathml), m.start(0), m.end(0)


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
        md.inlinePatterns.register(_DollarProcessor(r"\\\$", md), "math-dollar-escape", 183)
        md.inlinePatterns.register(_MathProcessor(_DISPLAY_DOLLARS, md, self.log, True), "math-display-dollars", 187)
        md.inlinePatterns.register(_MathProcessor(_DISPLAY_BRACKETS, md, self.log, True), "math-display-brackets", 186.5)
        md.inlinePatterns.register(_MathProcessor(_INLINE_PARENS, md, self.log, False), "math-inline-parens", 186)
        md.inlinePatterns.register(_MathProcessor(_INLINE_DOLLAR, md, self.log, False), "math-inline-dollar", 185)
        md.inlinePatterns.register(_UnterminatedProcessor(_UNTERMINATED, md, self.log), "math-unterminated", 184)

