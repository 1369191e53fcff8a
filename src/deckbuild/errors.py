"""One exception family for everything deckbuild reports, each carrying a source location.

Modelled on Anki's ``pylib/anki/errors.py``: a single root, subclasses that mean something.
Stages collect :class:`Diagnostic` records instead of stopping at the first problem, so a
build reports every problem in every file before it fails (mkdocs' ``validate()`` style).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar
from enum import Enum
from pathlib import Path


@dataclass(frozen=True, order=True)
class Location:
    """A place in a source file.

    ``line`` and ``col`` are 1-based; 0 means "unknown" (the whole file, or the whole line).
    """

    path: Path
    line: int = 0
    col: int = 0

    CACHED_AS_LIST: ClassVar[bool] = True  # the build cache stores [path, line, col]: a warm build reads 300,000 of them

    def __str__(self) -> str:
        text = str(self.path)
        if self.line:
            text += f":{self.line}"
            if self.col:
                text += f":{self.col}"
        return text


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in the sources, printed as ``path:line:col: severity: message``."""

    location: Location | None
    severity: Severity
    message: str

    def __str__(self) -> str:
        """One line: control characters, NUL and line breaks (in the path or the message) are
        escaped as ``\\x1b``, ``\\x00``, ``\\n``, so a source cannot forge or hide diagnostics."""
        where = f"{self.location}: " if self.location else ""
        return printable(f"{where}{self.severity.value}: {self.message}")


def printable(text: str) -> str:
    """Return ``text`` with every non-printable character (``str.isprintable``) backslash-escaped."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


class DeckbuildError(Exception):
    """Root of every error deckbuild raises on purpose.

    ``location`` is where in the sources the problem is (``None`` when it has no source
    place, such as an unwritable output folder). ``str(error)`` gives the diagnostic line.
    """

    def __init__(self, message: str, location: Location | None = None):
        super().__init__(message)
        self.message = message
        self.location = location

    def diagnostic(self, severity: Severity = Severity.ERROR) -> Diagnostic:
        """Return this error as a :class:`Diagnostic`."""
        return Diagnostic(self.location, severity, self.message)

    def __str__(self) -> str:
        return str(self.diagnostic())


class SourceError(DeckbuildError):
    """A card source is malformed: YAML syntax, unknown or missing keys, wrong types, bad ids."""


class LatexError(DeckbuildError):
    """A formula cannot be converted to MathML (unbalanced braces, unknown command, ...)."""


class CodeError(DeckbuildError):
    """A code card's snippet raised, timed out, or the interpreter could not run it."""


class PackageError(DeckbuildError):
    """The ``.apkg`` could not be written (output folder not writable, disk full, ...)."""


class BuildFailed(DeckbuildError):
    """Raised once at the end of a stage when any error diagnostic was collected.

    ``diagnostics`` holds every problem found (errors and warnings), sorted by location;
    ``report`` the counts of what was checked (a ``BuildReport``), when known.
    """

    def __init__(self, diagnostics: list[Diagnostic], report: object | None = None):
        errors = sum(d.severity is Severity.ERROR for d in diagnostics)
        super().__init__(f"{errors} error(s)")
        self.diagnostics = diagnostics
        self.report = report
