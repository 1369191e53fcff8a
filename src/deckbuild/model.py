"""Typed records that the build stages pass to each other (Anki pylib style, not dicts).

load → :class:`Card`; render → :class:`RenderedCard`; execute → :class:`CodeOutput`;
package reads all three. Every record is frozen: stages never edit what they receive.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import ClassVar
from enum import Enum

from deckbuild.errors import Location


class Kind(str, Enum):
    """The kind of a card; each kind has its own note type (see ``notetypes.py``)."""

    QA = "qa"
    FACT = "fact"
    PROBE = "probe"
    CODE = "code"


#: Text keys each kind accepts, and which of them are required.
TEXT_KEYS: dict[Kind, tuple[str, ...]] = {
    Kind.QA: ("q", "a", "topic"),
    Kind.FACT: ("q", "a", "why"),
    Kind.PROBE: ("q", "a", "follow_up", "follow_up_a"),
    Kind.CODE: ("q", "code", "a"),
}
REQUIRED_KEYS: dict[Kind, tuple[str, ...]] = {
    Kind.QA: ("q", "a"),
    Kind.FACT: ("q", "a"),
    Kind.PROBE: ("q", "a"),
    Kind.CODE: ("q", "code"),
}
#: Keys every card accepts besides its text keys; ``timeout``/``expect_error`` are code-only.
COMMON_KEYS = ("id", "type", "source", "tags")
CODE_KEYS = ("timeout", "expect_error")

DEFAULT_TIMEOUT = 10.0  # seconds a snippet may run
MIN_TIMEOUT, MAX_TIMEOUT = 0.1, 600.0  # the range a card's ``timeout`` may take (seconds)
MAX_ID_LENGTH = 100  # characters of a card id
MAX_TEXT_LENGTH = 20_000  # characters of one text field or snippet (a card shows one idea)


@dataclass(frozen=True)
class Text:
    """A text field as written, with the location of its first line.

    ``block`` is true when line *k* of ``value`` is exactly ``location.line + k`` in the
    file, every line starting at column ``location.col`` (YAML block scalars, single-line
    YAML scalars, Markdown bodies and headings), so errors inside the text can name their
    line and column. ``shifts`` lists ``(offset, columns)`` in increasing ``offset``: from
    character ``offset`` of ``value`` on, the file has the text ``columns`` further right
    (a one-line quoted YAML scalar: its opening quote, and each escape written with more
    characters than it gives, such as ``''`` or ``\\u00e9``).
    """

    value: str
    location: Location
    block: bool = True
    shifts: tuple[tuple[int, int], ...] = ()

    CACHED_AS_LIST: ClassVar[bool] = True  # the build cache stores [value, location, block, shifts]

    def location_of(self, offset: int) -> Location:
        """Return the location of character ``offset`` (0-based) of ``value``."""
        if not self.block:
            return self.location
        before = self.value[:offset]
        line = before.count("\n")
        col = offset - (before.rfind("\n") + 1) + 1 + sum(columns for at, columns in self.shifts if at <= offset)
        return Location(self.location.path, self.location.line + line, self.location.col + col - 1)


@dataclass(frozen=True)
class Card:
    """One card source: a note to be, with where it was written.

    ``deck`` is the Anki deck path (``A::B``); ``tags`` are the file's tags then the card's,
    without duplicates; ``source`` the inventory ids it cites; ``timeout`` is in seconds;
    ``expect_error`` (code cards) is ``None``, or the exception the snippet must raise: a
    class name (``RuntimeError``), optionally followed by ``: text`` that its message must contain.
    """

    id: str
    kind: Kind
    deck: str
    location: Location
    q: Text
    a: Text | None = None
    topic: Text | None = None
    why: Text | None = None
    follow_up: Text | None = None
    follow_up_a: Text | None = None
    code: Text | None = None
    tags: tuple[str, ...] = ()
    source: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    expect_error: str | None = None

    def texts(self) -> tuple[Text, ...]:
        """Return the Markdown text fields that are present (not the code)."""
        return tuple(t for t in (self.q, self.a, self.topic, self.why, self.follow_up, self.follow_up_a) if t is not None)

    def card_count(self) -> int:
        """Return how many Anki cards the note makes: 2 for a probe with a follow-up, else 1."""
        return 2 if self.kind is Kind.PROBE and self.follow_up else 1


@dataclass(frozen=True)
class Media:
    """One file for a package's media: its name in Anki's media folder and its bytes.

    Anki's media folder is flat and shared by every deck of a collection, so names are
    content-hashed (:meth:`from_bytes`): two different files never share a name, and the
    same bytes used twice are stored once. Anki's "Check Media" deletes unreferenced files
    except those whose names start with ``_`` (the math font, manifests), and sync carries
    those to AnkiWeb, AnkiDroid and AnkiMobile. Build names only through :meth:`from_bytes`.
    """

    name: str
    data: bytes

    @classmethod
    def from_bytes(cls, data: bytes, stem: str, suffix: str, keep: bool = False) -> "Media":
        """Return the media record for ``data``, named ``[_]stem-<sha256 16 hex>suffix``.

        ``stem`` is a readable hint (reduced to ``[A-Za-z0-9-]``, at most 40 characters);
        ``suffix`` the file extension with its dot (``".png"``); ``keep`` prefixes ``_`` so
        Anki keeps the file even when no field references it (a font used only by CSS).
        """
        hint = re.sub(r"[^A-Za-z0-9-]+", "-", stem).strip("-")[:40] or "file"
        digest = hashlib.sha256(data).hexdigest()[:16]
        return cls(f"{'_' if keep else ''}{hint}-{digest}{suffix.lower()}", data)


@dataclass(frozen=True)
class ImageRef:
    """An image a card's text references: ``src`` as written in ``![alt](src)`` (a path
    relative to the card's file, ``location.path``), and where it is written."""

    src: str
    location: Location


@dataclass(frozen=True)
class RenderedCard:
    """A card's text fields as HTML (Markdown rendered, math as MathML, code highlighted).

    Absent fields are ``""``. ``code_html`` is the highlighted snippet; ``formulas`` counts
    the formulas converted; ``images`` the images its texts reference, each ``src`` once,
    whose ``<img src>`` holds a placeholder until ``render.attach_images`` gives it the
    name of its file in ``media``, the files its fields reference, in order.
    """

    card: Card
    question: str
    answer: str = ""
    topic: str = ""
    why: str = ""
    follow_up: str = ""
    follow_up_answer: str = ""
    code_html: str = ""
    formulas: int = 0
    media: tuple[Media, ...] = ()
    images: tuple[ImageRef, ...] = ()


@dataclass(frozen=True)
class CodeOutput:
    """What a code card's snippet printed, ready for the note's ``Output`` field.

    ``html`` keeps stdout, stderr and the exception apart (``<pre class="stdout">`` ...);
    ``cached`` tells whether it came from the output cache instead of a run; ``seconds`` is
    the run's wall time; ``media`` the files ``html`` references (figures), in order.
    """

    card_id: str
    html: str
    cached: bool = False
    seconds: float = 0.0
    media: tuple[Media, ...] = ()


@dataclass(frozen=True)
class BuildReport:
    """Counts for the report printed after a build; ``seconds`` is wall time.

    ``packages`` are the files written, ``unchanged_packages`` those left as they were
    (nothing in them changed); ``changed_notes`` counts notes whose modification time moved;
    ``removed`` lists the card ids of notes the previous build into the same folder had and
    this one has not, which made ``removed_cards`` Anki cards. ``up_to_date``: nothing
    changed since the last build into the same folder, so nothing was done (the counts
    are that build's).
    """

    decks: int = 0
    notes: int = 0
    cards: int = 0
    formulas: int = 0
    snippets_run: int = 0
    snippets_cached: int = 0
    snippets_failed: int = 0
    packages: tuple[str, ...] = field(default_factory=tuple)
    unchanged_packages: tuple[str, ...] = field(default_factory=tuple)
    changed_notes: int = 0
    removed: tuple[str, ...] = field(default_factory=tuple)
    removed_cards: int = 0
    up_to_date: bool = False
    seconds: float = 0.0


@dataclass(frozen=True)
class Stamps:
    """Modification times (epoch seconds) for one build's packages (see ``history.py``).

    ``notes``: card id → the note's (and its cards') time; ``notetypes``: note type id →
    time; ``built``: package file name → the package's build time (its manifest's
    ``built``, its decks' and collection's time).
    """

    notes: dict[str, int]
    notetypes: dict[int, int]
    built: dict[str, int]
