"""TeX → MathML: one interface, two engines, one error contract.

:func:`convert_many` turns formulas (TeX without delimiters) into MathML ``<math>`` elements,
or a :class:`LatexProblem` saying in one line why a formula cannot be converted; the renderer
turns that into a located :class:`~deckbuild.errors.LatexError`. Callers never know which
engine answered:

- ``temml`` (default): Temml (npm ``temml``, MIT, vendored in ``vendor/temml.min.js``) run in
  embedded V8 (PyPI ``mini-racer``). It emits MathML Core with the Unicode math letters
  Chromium needs (𝟙, ℝ), operator spacing (``\\log p``), prefix minus and stretchy fences.
  Options: ``throwOnError`` (every problem is an error), no ``trust`` (``\\href``, ``\\url``,
  ``\\html…``, ``\\includegraphics`` are refused), ``maxExpand`` bounds macro expansion, and
  ``wrap: "tex"`` lets an inline formula break after a top-level relation or binary operator
  (as TeX does), so it never makes a phone's page wider than the screen.
- ``latex2mathml`` (PyPI, pure Python): for a Python without V8 wheels. It passes some bad
  input through silently (``\\foo`` becomes ``<mi>\\foo</mi>``, ``{x`` converts), so its input
  and output are checked here instead of trusted.

Every ``<math>`` carries its TeX in a ``data-tex`` attribute: the card template's MathJax
fallback reads it there, and Anki's search (which matches raw field HTML) still finds
``theta`` in ``\\theta``; unlike ``<annotation>`` text, Anki's card browser does not show
attributes, so each formula appears once in its Question/Answer columns.
"""

from __future__ import annotations

import atexit
import hashlib
import html
import json
import os
import re
import xml.etree.ElementTree as ET
from importlib import metadata, resources
from typing import Sequence

ENGINES = ("temml", "latex2mathml")
DEFAULT_ENGINE = "temml"
MATHML_NS = "{http://www.w3.org/1998/Math/MathML}"
_MATH_OPEN_RE = re.compile(r"^<math\b")


class LatexProblem(ValueError):
    """A formula that cannot be converted; ``args[0]`` says why in one line."""


class MathEngine:
    """A TeX → MathML converter. Subclasses implement :meth:`_convert_many`.

    ``name`` is the ``--math`` option's value; :meth:`version` identifies the exact converter
    (it is part of the render cache key).
    """

    name = ""

    def version(self) -> str:
        """Return a string that changes whenever the engine's output may change."""
        raise NotImplementedError

    def _convert_many(self, formulas: Sequence[tuple[str, bool]]) -> list[str | LatexProblem]:
        raise NotImplementedError


class Temml(MathEngine):
    """Temml in V8. The V8 context is created on first use, once per process (a context
    inherited across ``fork`` is never reused: a forked child creates its own)."""

    name = "temml"
    _SCRIPT = """
    function deckbuildConvert(items) {
      return JSON.stringify(items.map(function (item) {
        try {
          return [true, temml.renderToString(item[0], {displayMode: item[1], annotate: false,
            throwOnError: true, trust: false, maxExpand: 1000, wrap: "tex"})];
        } catch (e) {
          var name = (e && e.name) || "Error";
          return [false, name, String((e && e.message) || e), (e && typeof e.position === "number") ? e.position : -1];
        }
      }));
    }
    """

    def __init__(self) -> None:
        self._context = None
        self._pid = 0

    @staticmethod
    def source() -> bytes:
        """Return the vendored ``temml.min.js``."""
        return resources.files("deckbuild").joinpath("vendor/temml.min.js").read_bytes()

    def version(self) -> str:
        vendored = resources.files("deckbuild").joinpath("vendor/temml-VERSION").read_text().strip()
        digest = hashlib.sha256(self.source()).hexdigest()[:16]
        return f"temml={vendored}:{digest};mini-racer={metadata.version('mini-racer')}"

    def _ready(self):
        if self._context is None or self._pid != os.getpid():
            from py_mini_racer import MiniRacer

            context = MiniRacer()
            context.eval(self.source().decode("utf-8"))
            context.eval(self._SCRIPT)
            self._context, self._pid = context, os.getpid()
            # A context still open when the interpreter finalizes (say after an uncaught
            # exception) hangs the exit: close it first, in the process that made it.
            atexit.register(self._close, context, self._pid)
        return self._context

    @staticmethod
    def _close(context, pid: int) -> None:
        if os.getpid() == pid:
            context.close()

    def close(self) -> None:
        """Close this process's V8 context, if one is open (the next conversion opens a new
        one). Call it from the thread that converted: V8 freed from another thread at exit,
        after that thread ended, can crash the process (seen with ``deckbuild preview``)."""
        context, self._context = self._context, None
        if context is not None:
            self._close(context, self._pid)

    def _convert_many(self, formulas):
        if not formulas:
            return []
        # Seconds: generous for Temml (tens of thousands of formulas a second), finite for any input.
        timeout = 10 + 0.01 * len(formulas)
        try:
            answer = self._ready().call("deckbuildConvert", [list(item) for item in formulas], timeout_sec=timeout)
        except Exception as exc:  # a V8 timeout or crash: no formula of this batch converted
            problem = LatexProblem(f"the math engine failed ({type(exc).__name__})")
            return [problem] * len(formulas)
        return [rest[0] if ok else LatexProblem(_temml_message(*rest)) for ok, *rest in json.loads(answer)]


def _temml_message(name: str, message: str, position: int) -> str:
    """One line from a Temml error: its text without the quoted source, and where in the formula."""
    if name != "ParseError":  # an internal error, e.g. a TypeError for a trailing "x^"
        return f"cannot convert (internal {name}: {message.strip()}); look for a missing argument"
    text = re.split(r" at position \d+:| at end of input:", message, maxsplit=1)[0].strip()
    return text if position < 0 else f"{text} (character {position + 1} of the formula)"


class Latex2Mathml(MathEngine):
    """latex2mathml, with the checks it lacks (braces, environments, unknown commands, arity)."""

    name = "latex2mathml"
    # Elements and how many children MathML requires of them (MathML Core §3).
    _ARITY = {"mfrac": 2, "msub": 2, "msup": 2, "msubsup": 3, "mroot": 2, "mover": 2, "munder": 2, "munderover": 3}
    _BEGIN_END_RE = re.compile(r"\\(begin|end)\s*\{([^}]*)\}")
    # Standard LaTeX operator names that latex2mathml 3.81 does not know, as \operatorname.
    _MISSING_OPERATORS = re.compile(r"\\(arg)(?![A-Za-z])")

    def version(self) -> str:
        return f"latex2mathml={metadata.version('latex2mathml')}"

    def _convert_many(self, formulas):
        out: list[str | LatexProblem] = []
        for tex, display in formulas:
            try:
                out.append(self._convert(tex, display))
            except LatexProblem as problem:
                out.append(problem)
        return out

    def _convert(self, tex: str, display: bool) -> str:
        from latex2mathml.converter import convert

        _check_braces(tex)
        self._check_environments(tex)
        try:
            mathml = convert(self._MISSING_OPERATORS.sub(r"\\operatorname{\1}", tex), display="block" if display else "inline")
        except Exception as exc:  # latex2mathml raises bare subclasses of Exception
            detail = str(exc).strip()
            raise LatexProblem(f"cannot convert ({type(exc).__name__}{': ' + detail if detail else ''})") from None
        self._check_output(mathml)
        return mathml

    def _check_environments(self, tex: str) -> None:
        stack: list[str] = []
        for match in self._BEGIN_END_RE.finditer(tex):
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

    def _check_output(self, mathml: str) -> None:
        try:
            root = ET.fromstring(mathml)
        except ET.ParseError as exc:
            if "<mi>&</mi>" in mathml:  # latex2mathml copies a stray alignment '&' through raw
                raise LatexProblem("'&' outside a matrix environment (use pmatrix, bmatrix or cases)") from None
            raise LatexProblem(f"converter produced invalid MathML ({exc})") from None
        for element in root.iter():
            tag = element.tag.removeprefix(MATHML_NS)
            text = (element.text or "").strip()
            if "href" in element.attrib:  # latex2mathml turns \href into a link: no links from cards
                raise LatexProblem("\\href is not allowed")
            if tag in ("mi", "mo", "mn") and text.startswith("\\") and len(text) > 1:
                raise LatexProblem(f"unknown control sequence {text}")
            if tag in self._ARITY and len(element) < self._ARITY[tag]:
                command = {"mfrac": "\\frac", "mroot": "\\sqrt[n]", "msub": "'_'", "msup": "'^'"}.get(tag, tag)
                raise LatexProblem(f"missing argument: {command} needs {self._ARITY[tag]}")


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


_ENGINES: dict[str, MathEngine] = {}


def engine(name: str = DEFAULT_ENGINE) -> MathEngine:
    """Return this process's engine called ``name`` (one of :data:`ENGINES`); raises ``ValueError`` otherwise."""
    if name not in ENGINES:
        raise ValueError(f"unknown math engine '{name}' (choose {' or '.join(ENGINES)})")
    if name not in _ENGINES:
        _ENGINES[name] = Temml() if name == "temml" else Latex2Mathml()
    return _ENGINES[name]


def close_engines() -> None:
    """Close every math engine this process opened (see :meth:`Temml.close`)."""
    for opened in _ENGINES.values():
        if isinstance(opened, Temml):
            opened.close()


def convert_many(formulas: Sequence[tuple[str, bool]], engine_name: str = DEFAULT_ENGINE) -> list[str | LatexProblem]:
    """Convert ``(tex, display)`` pairs in one batch; return, in order, MathML or the problem.

    ``display`` selects display math (``$$…$$``, ``\\[…\\]``: ``display="block"``) or inline.
    Each MathML string is one ``<math>`` element with the TeX in ``data-tex``. A problem is an
    empty formula, or whatever the engine refuses (unknown commands, unbalanced braces,
    missing arguments, untrusted commands, an engine crash); nothing the engine raises escapes.
    """
    chosen = engine(engine_name)
    todo = [(i, item) for i, item in enumerate(formulas) if item[0].strip()]
    out: list[str | LatexProblem] = [LatexProblem("empty formula")] * len(formulas)
    for (i, (tex, _)), result in zip(todo, chosen._convert_many([item for _, item in todo])):
        out[i] = result if isinstance(result, LatexProblem) else _with_tex(result, tex)
    return out


def to_mathml(tex: str, display: bool, engine_name: str = DEFAULT_ENGINE) -> str:
    """Convert one formula (see :func:`convert_many`); raises :class:`LatexProblem`."""
    (result,) = convert_many([(tex, display)], engine_name)
    if isinstance(result, LatexProblem):
        raise result
    return result


def _with_tex(mathml: str, tex: str) -> str:
    if not _MATH_OPEN_RE.match(mathml):  # pragma: no cover - both engines return one <math> element
        raise LatexProblem("unexpected converter output")
    return f'<math data-tex="{html.escape(tex, quote=True)}"{mathml[5:]}'
