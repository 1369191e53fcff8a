"""LaTeX → MathML with latex2mathml, checked instead of trusted.

latex2mathml's exceptions share no base class, and it passes some bad input through
silently (``\\foo`` becomes ``<mi>\\foo</mi>``, ``{x`` and ``\\frac{a}`` convert without a
word). :func:`to_mathml` checks the source and the output and raises :class:`LatexProblem`
with a plain message; the renderer turns that into a located :class:`~deckbuild.errors.LatexError`.

The TeX source is kept in ``<annotation encoding="application/x-tex">`` inside
``<semantics>`` (MathML Core §3.8), which the card template reads to fall back to Anki's
MathJax on clients that cannot lay out MathML.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET

from latex2mathml.converter import convert

MATHML_NS = "{http://www.w3.org/1998/Math/MathML}"
# Elements and how many children MathML requires of them (MathML Core §3).
ARITY = {"mfrac": 2, "msub": 2, "msup": 2, "msubsup": 3, "mroot": 2, "mover": 2, "munder": 2, "munderover": 3}
_BEGIN_END_RE = re.compile(r"\\(begin|end)\s*\{([^}]*)\}")
_MATH_TAG_RE = re.compile(r"^(<math\b[^>]*>)(.*)(</math>)$", re.S)
# Standard LaTeX operator names that latex2mathml 3.81 does not know, as \operatorname.
_MISSING_OPERATORS = re.compile(r"\\(arg)(?![A-Za-z])")


class LatexProblem(ValueError):
    """A formula that cannot be converted; ``args[0]`` says why in one line."""


def to_mathml(tex: str, display: bool) -> str:
    """Convert one formula (without delimiters) to a MathML ``<math>`` element.

    ``display`` selects ``display="block"`` (for ``$$…$$``/``\\[…\\]``) or inline.
    Returns the MathML as a string with the TeX in a ``<semantics>`` annotation.
    Raises :class:`LatexProblem` for unbalanced braces, unclosed or mismatched
    environments, unknown control sequences, missing arguments, or any failure of latex2mathml.
    """
    if not tex.strip():
        raise LatexProblem("empty formula")
    _check_braces(tex)
    _check_environments(tex)
    try:
        mathml = convert(_MISSING_OPERATORS.sub(r"\\operatorname{\1}", tex), display="block" if display else "inline")
    except Exception as exc:  # latex2mathml raises bare subclasses of Exception
        detail = str(exc).strip()
        raise LatexProblem(f"cannot convert ({type(exc).__name__}{': ' + detail if detail else ''})") from None
    _check_output(mathml)
    match = _MATH_TAG_RE.match(mathml)
    if match is None:  # pragma: no cover - latex2mathml always returns one <math> element
        raise LatexProblem("unexpected converter output")
    annotation = f'<annotation encoding="application/x-tex">{html.escape(tex, quote=False)}</annotation>'
    return f"{match.group(1)}<semantics>{match.group(2)}{annotation}</semantics>{match.group(3)}"


def _check_braces(tex: str) -> None:
    depth = 0
    i = 0
    while i < len(tex):
        char = tex[i]
        if char == "\\":
            i += 2  # skip the escaped character: \{ \} \\
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                raise LatexProblem("unbalanced braces: '}' without a matching '{'")
        i += 1
    if depth:
        raise LatexProblem(f"unbalanced braces: {depth} '{{' not closed")


def _check_environments(tex: str) -> None:
    stack: list[str] = []
    for match in _BEGIN_END_RE.finditer(tex):
        kind, name = match.groups()
        if kind == "begin":
            stack.append(name)
        elif not stack:
            raise LatexProblem(f"\\end{{{name}}} without \\begin{{{name}}}")
        elif stack[-1] != name:
            raise LatexProblem(f"\\begin{{{stack[-1]}}} closed by \\end{{{name}}}")
        else:
            stack.pop()
    if stack:
        raise LatexProblem(f"unclosed environment \\begin{{{stack[-1]}}}")


def _check_output(mathml: str) -> None:
    try:
        root = ET.fromstring(mathml)
    except ET.ParseError as exc:
        if "<mi>&</mi>" in mathml:  # latex2mathml copies a stray alignment '&' through raw
            raise LatexProblem("'&' outside a matrix environment (use pmatrix, bmatrix or cases)") from None
        raise LatexProblem(f"converter produced invalid MathML ({exc})") from None
    for element in root.iter():
        tag = element.tag.removeprefix(MATHML_NS)
        text = (element.text or "").strip()
        if tag in ("mi", "mo", "mn") and text.startswith("\\") and len(text) > 1:
            raise LatexProblem(f"unknown control sequence {text}")
        if tag in ARITY and len(element) < ARITY[tag]:
            raise LatexProblem(f"missing argument: {_command_for(tag)} needs {ARITY[tag]}")


def _command_for(tag: str) -> str:
    return {"mfrac": "\\frac", "mroot": "\\sqrt[n]", "msub": "'_'", "msup": "'^'"}.get(tag, tag)
