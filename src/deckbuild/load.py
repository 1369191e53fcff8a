"""Stage 1: read card sources (YAML and Markdown) into :class:`~deckbuild.model.Card` records.

Only this module reads source files. Both source forms are reduced to the same list of
``(key, value, location)`` entries and go through one validator, so a card written in
Markdown and the same card written in YAML give identical records. Every problem is
collected as a :class:`~deckbuild.errors.Diagnostic`; nothing here raises on bad input.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import unquote
from xml.etree import ElementTree

import yaml
from markdown.extensions.fenced_code import FencedBlockPreprocessor
from PIL import Image, UnidentifiedImageError

from deckbuild.cache import Cache, code_version, content_key
from deckbuild.errors import Diagnostic, Location, Severity
from deckbuild.model import (
    CODE_KEYS,
    COMMON_KEYS,
    DEFAULT_TIMEOUT,
    MAX_ID_LENGTH,
    MAX_TEXT_LENGTH,
    MAX_TIMEOUT,
    MIN_TIMEOUT,
    REQUIRED_KEYS,
    TEXT_KEYS,
    Card,
    ImageRef,
    Kind,
    Media,
    Text,
)

SOURCE_SUFFIXES = (".yaml", ".yml", ".md")
SKIPPED_NAMES = {"README.md"}
ID_RE = re.compile(r"[a-z0-9][a-z0-9-]*")
FILE_KEYS = ("deck", "type", "tags", "cards")
META_LINE_RE = re.compile(r"^([a-z_]+):(\s|$)")
#: Python-Markdown's own fenced-code rule (a fence of 3+ backticks or tildes at the start of
#: a line, closed by the very same fence), so the loader and the renderer agree on what is code.
FENCED_BLOCK_RE = FencedBlockPreprocessor.FENCED_BLOCK_RE


class _Null:
    """YAML's null (an empty value, ``~``, ``null``): no text, whatever the key."""

    def __repr__(self) -> str:
        return "null"


NULL = _Null()


@dataclass(frozen=True)
class Value:
    """A raw value from a source file and where it stands.

    ``value`` is a ``str`` for scalars (the text as written), a ``list`` of :class:`Value`
    for sequences, :data:`NULL` for YAML's null, or ``None`` for a mapping (which no card
    key accepts). ``block`` and ``shifts`` are as in :class:`~deckbuild.model.Text`.
    """

    value: Any
    location: Location
    block: bool = False
    shifts: tuple[tuple[int, int], ...] = ()


Entry = tuple[str, Value, Location]  # key, value, location of the key


def discover(paths: Iterable[Path]) -> tuple[list[Path], list[Diagnostic]]:
    """Return the card source files under ``paths`` in a stable order.

    A folder is searched recursively for ``*.yaml``, ``*.yml`` and ``*.md`` files, skipping
    hidden entries and ``README.md``; symlinked folders are not followed (so a link loop
    is harmless), and a symlinked file must resolve inside the folder searched: one that
    leads outside is an error and is never read. A folder without sources, or a missing
    path, is an error.
    """
    files: list[Path] = []
    problems: list[Diagnostic] = []
    for path in paths:
        if path.is_dir():
            found, before = [], len(problems)
            for p in _tree(path):
                if p.suffix not in SOURCE_SUFFIXES or p.name in SKIPPED_NAMES or not p.is_file():
                    continue
                if not _inside(p, path):
                    problems.append(_error(Location(p), f"a symlink to a file outside {path.name}/: card files must live in the source folder"))
                    continue
                found.append(p)
            if not found and len(problems) == before:
                problems.append(_error(Location(path), "no card sources (*.yaml, *.yml, *.md) in this folder"))
            files += found
        elif path.is_file():
            files.append(path)
        else:
            problems.append(_error(Location(path), "no such file or folder"))
    return list(dict.fromkeys(files)), problems


def _tree(folder: Path) -> list[Path]:
    """Return the files and folders below ``folder``, sorted, without hidden entries and
    without descending into symlinked folders (``Path.rglob`` does not follow them)."""
    return sorted(p for p in folder.rglob("*") if not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path``, its symlinks resolved, lies in ``folder`` (resolved too)."""
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        return False


@dataclass(frozen=True)
class Loaded:
    """The result of loading: cards in file order, every problem found, and the files read.

    ``newest_mtime`` is the latest modification time of those files (whole seconds since
    the epoch, 0 without files): it only grows when a source changes.
    """

    cards: list[Card]
    problems: list[Diagnostic]
    files: list[Path]
    newest_mtime: int


LOADER_VERSION = code_version("load.py", "model.py", "errors.py")


def load(paths: Iterable[Path], cache: Cache | None = None) -> Loaded:
    """Load every card under ``paths`` (files or folders).

    ``cache`` (optional) keeps each file's cards by its path and content hash, so an
    unchanged file is not parsed again; files with problems are never cached.
    Cross-file checks (duplicate ids) are ``validate.py``'s job.
    """
    files, problems = discover(paths)
    data: dict[Path, bytes] = {}
    for path in files:
        try:
            data[path] = path.read_bytes()
        except OSError as exc:
            problems.append(_error(Location(path), f"cannot read file: {exc.strerror}"))
    keys = {path: content_key(LOADER_VERSION, str(path), hashlib.sha256(raw).hexdigest()) for path, raw in data.items()}
    hits = cache.get_many("load", keys.values(), list[Card]) if cache else {}
    fresh: dict[str, list[Card]] = {}
    cards: list[Card] = []
    for path, raw in data.items():
        if hits.get(keys[path]) and all(c.location.path == path for c in hits[keys[path]]):
            file_cards = hits[keys[path]]
        else:
            file_cards, file_problems = parse_file(path, raw)
            problems += file_problems
            if not file_problems:
                fresh[keys[path]] = file_cards
        cards += file_cards
    if cache:
        cache.put_many("load", fresh)
    newest = 0
    for path in data:
        try:
            newest = max(newest, int(path.stat().st_mtime))
        except OSError:
            pass
    return Loaded(cards, problems, files, newest)


def fingerprint(paths: Iterable[Path]) -> str | None:
    """Return a hex digest of which source files are under ``paths`` and of their bytes,
    and of the image files cards there may show (see :func:`load_images`).

    Cheap next to :func:`load` (nothing is parsed): a rebuild compares it with the last
    build's to know that nothing changed. ``None`` if a path is missing or a file unreadable.
    """
    paths = list(paths)
    files, problems = discover(paths)
    if problems:
        return None
    roots = dict.fromkeys(p if p.is_dir() else p.parent for p in paths)
    images = sorted({p for root in roots for p in _tree(root) if p.suffix.lower() in IMAGE_FORMATS and p.is_file() and _inside(p, root)})
    parts = []
    for path in [*files, *images]:
        try:
            parts.append(f"{path}\0{hashlib.sha256(path.read_bytes()).hexdigest()}")
        except OSError:
            return None
    return content_key(LOADER_VERSION, *parts)


# --- Images -----------------------------------------------------------------------------

#: Image types a card may show (every Anki client displays them), by file extension,
#: with Pillow's name for the raster formats.
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".gif": "GIF", ".webp": "WEBP", ".svg": "SVG"}
MAX_IMAGE_BYTES = 10 << 20
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:|^//")


@dataclass(frozen=True)
class LoadedImages:
    """The images cards reference: media by (card file, ``src`` as written), and every problem."""

    media: dict[tuple[Path, str], Media]
    problems: list[Diagnostic]


def load_images(refs: Iterable[ImageRef], sources: Iterable[Path]) -> LoadedImages:
    """Read the image file of each reference, relative to its card's file.

    ``sources`` are the files and folders the cards were loaded from: an image must lie
    inside the source folder of its card (for a file, the folder holding it), after
    resolving symlinks. Each problem is an error at the reference: a URL (cards must work
    offline, and Anki syncs media files, not links), an absolute path, a path outside the
    source folder, a missing or unreadable file, a file over 10 MiB, an extension other
    than .png, .jpg/.jpeg, .gif, .webp, .svg, or bytes that are not of that type.
    """
    roots = [(p if p.is_dir() else p.parent).resolve() for p in sources]
    media: dict[tuple[Path, str], Media] = {}
    problems: list[Diagnostic] = []
    for ref in refs:
        key = (ref.location.path, ref.src)
        if key in media:
            continue
        try:
            media[key] = _read_image(ref, roots)
        except _ImageProblem as problem:
            problems.append(_error(ref.location, f"image '{ref.src}': {problem}"))
    return LoadedImages(media, problems)


class _ImageProblem(Exception):
    """Why an image reference cannot be packaged."""


def _read_image(ref: ImageRef, roots: list[Path]) -> Media:
    """Return the media for one image reference; raise _ImageProblem."""
    if _SCHEME_RE.match(ref.src):
        raise _ImageProblem("a URL; cards must work offline, so save the image beside the card and write a relative path")
    relative = Path(unquote(ref.src))
    if not ref.src or relative.is_absolute():
        raise _ImageProblem("write a path relative to the card file")
    card_file = ref.location.path.resolve()
    root = max((r for r in roots if card_file.is_relative_to(r)), key=lambda r: len(r.parts), default=card_file.parent)
    path = (card_file.parent / relative).resolve()
    if not path.is_relative_to(root):
        raise _ImageProblem(f"outside the source folder {root.name}/ (images must live with the cards)")
    suffix = path.suffix.lower()
    if suffix not in IMAGE_FORMATS:
        raise _ImageProblem(f"unsupported type '{suffix or path.name}' (use PNG, JPEG, GIF, WebP or SVG)")
    try:
        info = path.stat()
        if not path.is_file():
            raise _ImageProblem("not a file")
        if info.st_size > MAX_IMAGE_BYTES:
            raise _ImageProblem(f"{info.st_size} bytes; at most {MAX_IMAGE_BYTES >> 20} MiB")
        data = path.read_bytes()
    except FileNotFoundError:
        raise _ImageProblem("no such file") from None
    except OSError as exc:
        raise _ImageProblem(f"cannot read the file: {exc.strerror or exc}") from None
    _check_image(data, IMAGE_FORMATS[suffix])
    return Media.from_bytes(data, path.stem, suffix)


def _check_image(data: bytes, expected: str) -> None:
    """Raise _ImageProblem unless ``data`` is an image of Pillow format ``expected`` (or SVG)."""
    if expected == "SVG":
        try:
            for _, element in ElementTree.iterparse(io.BytesIO(data), events=("start",)):
                if element.tag.rsplit("}", 1)[-1] != "svg":
                    raise _ImageProblem(f"not an SVG image (its root element is <{element.tag.rsplit('}', 1)[-1]}>)")
                return
        except ElementTree.ParseError as exc:
            raise _ImageProblem(f"not an SVG image (not well-formed XML: {exc})") from None
        raise _ImageProblem("not an SVG image (empty)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about odd but readable files
        try:
            image = Image.open(io.BytesIO(data))
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            raise _ImageProblem(f"not a {expected} image (its bytes are of no image type)") from None
        with image:
            if image.format != expected:
                raise _ImageProblem(f"not a {expected} image: its bytes are {image.format}")
            try:
                image.verify()
            except (OSError, SyntaxError, ValueError) as exc:
                raise _ImageProblem(f"a damaged {expected} file ({exc})") from None


def load_file(path: Path) -> tuple[list[Card], list[Diagnostic]]:
    """Load one YAML or Markdown card file; see :func:`load`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [], [_error(Location(path), f"cannot read file: {exc.strerror}")]
    return parse_file(path, data)


def parse_file(path: Path, data: bytes) -> tuple[list[Card], list[Diagnostic]]:
    """Parse the bytes of card file ``path`` (YAML, or Markdown by its ``.md`` suffix)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return [], [_error(Location(path, line, col), f"file is not UTF-8 (byte 0x{data[exc.start]:02x})")]
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")  # YAML and Markdown line breaks
    if not text.strip():
        return [], [_error(Location(path, 1), "file is empty")]
    if path.suffix == ".md" and (bad := _NON_PRINTABLE.search(text)):  # what YAML's reader refuses, in Markdown too
        before = text[: bad.start()]
        where = Location(path, before.count("\n") + 1, bad.start() - (before.rfind("\n") + 1) + 1)
        return [], [_error(where, f"character U+{ord(bad.group()):04X} is not allowed in a card file (a control character): delete it")]
    try:
        if path.suffix == ".md":
            header, entries_per_card, problems = _parse_markdown(path, text)
        else:
            header, entries_per_card, problems = _parse_yaml(path, text)
        if header is None:
            return [], problems
        return _build_cards(path, header, entries_per_card, problems)
    except RecursionError:
        return [], [_error(Location(path, 1), "the YAML is nested too deeply")]


_NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE  # YAML 1.1's "printable" set, negated
_REFERENCE_RE = re.compile(r"(^|[\s\[{,:?-])[*&][^\s,\[\]{}]", re.MULTILINE)


def _first_reference(text: str):
    """Return ``(mark, message)`` for the first YAML alias in ``text``, else the first anchor
    on a list or mapping, else ``None``. (An anchor on a scalar is :func:`_scalar_problem`'s.)"""
    anchor = None
    try:
        for event in yaml.parse(text, Loader=_FAST_LOADER):
            if isinstance(event, yaml.AliasEvent):
                return event.start_mark, "YAML aliases ('*name') are not allowed in card files; write the value out"
            if anchor is None and isinstance(event, yaml.CollectionStartEvent) and event.anchor is not None:
                anchor = event.start_mark, "YAML anchors ('&name') are not allowed in card files; delete it"
    except (yaml.YAMLError, RecursionError):
        pass  # reported by the real parse
    return anchor


# --- YAML -------------------------------------------------------------------------------


def _parse_yaml(path: Path, text: str, line_offset: int = 0):
    """Parse a YAML card file into its header entries and the entries of each card."""
    problems: list[Diagnostic] = []
    root = _compose(path, text, line_offset, problems)
    if root is None:
        if not problems:  # a stream without a document: only comments
            problems.append(_error(Location(path, 1), "file holds no cards, only comments"))
        return None, [], problems
    if not isinstance(root, yaml.MappingNode):
        problems.append(_error(_loc(path, root, line_offset), "expected a mapping with 'deck' and 'cards' at the top"))
        return None, [], problems
    header = _mapping_entries(path, root, line_offset, problems)
    cards_entry = next((e for e in header if e[0] == "cards"), None)
    entries_per_card: list[tuple[Location, list[Entry], bool]] = []
    if cards_entry is not None:
        node = cards_entry[1]
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            problems.append(_error(cards_entry[2], "'cards' must be a non-empty list of cards"))
        else:
            for item in node.value:
                if not isinstance(item, yaml.MappingNode):
                    problems.append(_error(_loc(path, item, line_offset), "each card must be a mapping of keys to values"))
                    continue
                before = len(problems)
                entries = _mapping_entries(path, item, line_offset, problems)
                entries_per_card.append((_loc(path, item, line_offset), entries, len(problems) == before))
    header = [(k, v, loc) for k, v, loc in header if k != "cards"]
    if cards_entry is None:
        problems.append(_error(Location(path, 1), "missing key 'cards' (the list of cards)"))
    lines = text.split("\n")
    header_entries = [(k, _to_value(path, v, line_offset, lines, problems), loc) for k, v, loc in header]
    cards = []
    for loc, entries, clean in entries_per_card:
        before = len(problems)
        converted = [(k, _to_value(path, v, line_offset, lines, problems), kloc) for k, v, kloc in entries]
        cards.append((loc, converted, clean and len(problems) == before))
    return header_entries, cards, problems


_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose(path: Path, text: str, line_offset: int, problems: list[Diagnostic]):
    """Compose a YAML document into a node tree, recording syntax errors.

    libyaml (``CSafeLoader``) parses about ten times faster; on a syntax error the pure
    Python loader parses again, because its messages say more than libyaml's, and
    :func:`_yaml_problem` turns the common ones into what to do about them. Aliases are
    refused before composing: they can expand exponentially ("billion laughs"), and no
    card file needs one (nor an anchor).
    """
    reference = _first_reference(text) if _REFERENCE_RE.search(text) else None
    if reference is not None:
        mark, message = reference
        problems.append(_error(Location(path, mark.line + 1 + line_offset, mark.column + 1), message))
        return None
    try:
        return yaml.compose(text, Loader=_FAST_LOADER)
    except yaml.YAMLError:
        pass
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark, message = _yaml_problem(exc, text.split("\n"))
        loc = Location(path, mark.line + 1 + line_offset, mark.column + 1) if mark else Location(path)
        problems.append(_error(loc, f"YAML syntax error: {message}"))
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        line, col = before.count("\n") + 1 + line_offset, exc.position - (before.rfind("\n") + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        problems.append(_error(Location(path, line, col), f"character U+{code:04X} is not allowed in YAML (a control character): delete it"))
    except yaml.YAMLError as exc:
        problems.append(_error(Location(path), f"YAML error: {' '.join(str(exc).split())}"))
    return None


#: What a value starting with one of YAML's indicator characters is read as.
_INDICATORS = {
    "*": "an alias (a reference to an '&' anchor)",
    "&": "an anchor",
    "!": "a tag",
    "[": "a list",
    "{": "a mapping",
    ">": "a folded block",
    "|": "a literal block",
    "@": "reserved",
    "`": "reserved",
    "%": "a directive",
    "?": "a complex key",
}
_QUOTE_HINT = "put the whole value in single quotes, or write it as a '|' block on the lines below"


def _yaml_problem(exc: yaml.MarkedYAMLError, lines: list[str]):
    """Return ``(mark, message)`` for a PyYAML syntax error: where it really is and what to do.

    PyYAML reports some errors at the token after the real one (an unquoted text line is
    blamed on the next line): those are moved to the line that caused them. Unrecognised
    errors keep PyYAML's own words.
    """
    problem, context = exc.problem or "", exc.context or ""
    mark = exc.problem_mark or exc.context_mark
    raw = " ".join(part for part in (context, problem) if part)

    def value_at(m):
        """The mark at the start of the value on mark ``m``'s line (after ``key:`` or ``-``), and its text."""
        line = lines[m.line] if m and m.line < len(lines) else ""
        match = re.match(r"\s*(?:-\s+)?(?:[^\s:#][^:#]*:\s+)?(.*)$", line)
        if not m or not match:
            return m, ""
        return yaml.Mark(m.name, m.index, m.line, match.start(1), m.buffer, m.pointer), match.group(1)

    if "found character '\\t'" in problem or "found character '\t'" in problem:
        return mark, "a tab character: YAML indents with spaces only (and a tab cannot start a value)"
    if "while scanning a quoted scalar" in context:
        return exc.context_mark, "this quoted value is never closed (a closing quote is missing)"
    if "while scanning a simple key" in context and "could not find expected ':'" in problem:
        return exc.context_mark, (
            "this line is neither 'key: value' nor part of a text block: "
            "to write text over several lines, start the value with '|' and indent the lines below it"
        )
    if "mapping values are not allowed here" in problem:
        return mark, f"': ' inside an unquoted value starts a new key: {_QUOTE_HINT}"
    for candidate in (mark, exc.context_mark):
        start, text = value_at(candidate)
        if text[:1] in _INDICATORS and (
            "alias" in context or "block scalar" in context or "cannot start any token" in problem or "expected <block end>" in problem
        ):
            where = start if "expected <block end>" not in problem else mark
            return where, f"a value starting with '{text[0]}' is read as YAML syntax ({_INDICATORS[text[0]]}): {_QUOTE_HINT}"
    if "expected <block end>" in problem:
        return mark, "this line's indentation does not match the keys above it (YAML nests by indentation: align the card's keys with spaces)"
    return mark, raw


def _loc(path: Path, node: yaml.Node, line_offset: int) -> Location:
    return Location(path, node.start_mark.line + 1 + line_offset, node.start_mark.column + 1)


def _mapping_entries(path: Path, node: yaml.MappingNode, line_offset: int, problems: list[Diagnostic]):
    """Return ``(key, node, location)`` for each key of a mapping node; flag duplicates."""
    seen: dict[str, Location] = {}
    entries = []
    for key_node, value_node in node.value:
        loc = _loc(path, key_node, line_offset)
        if not isinstance(key_node, yaml.ScalarNode):
            problems.append(_error(loc, "keys must be plain names"))
            continue
        key = key_node.value
        if key in seen:
            problems.append(_error(loc, f"duplicate key '{key}' (first at line {seen[key].line})"))
            continue
        seen[key] = loc
        entries.append((key, value_node, loc))
    return entries


def _to_value(path: Path, node: yaml.Node, line_offset: int, lines: list[str], problems: list[Diagnostic]) -> Value:
    """Turn a node into a :class:`Value`: scalars keep the text as written.

    A block scalar's location is its first content line, at its indentation (read from
    ``lines``, the lines of the YAML text), so that positions inside the text map to the
    file; so do positions in a scalar on one line, plain or quoted (with its escapes). A
    plain or quoted scalar over several lines (YAML folds its line breaks) is located at
    its start. Values YAML silently changed (see :func:`_scalar_problem`) are recorded in ``problems``.
    """
    loc = _loc(path, node, line_offset)
    if isinstance(node, yaml.ScalarNode):
        style = node.style or None  # libyaml gives '' for a plain scalar, PyYAML None
        problem = _scalar_problem(node, lines)
        if problem is not None:
            (line, col), message = problem
            problems.append(_error(Location(path, line + 1 + line_offset, col + 1), message))
            # Render what was written, not the control characters, so no second error follows.
            text = "\n".join(lines[node.start_mark.line : node.end_mark.line + 1])
            return Value(text[node.start_mark.column + 1 :].rsplit('"', 1)[0], loc, False)
        if style in ("|", ">"):
            first = next((line for line in (lines or [])[node.start_mark.line + 1 :] if line.strip()), "")
            loc = Location(path, loc.line + 1, len(first) - len(first.lstrip(" ")) + 1)
            return Value(node.value, loc, style == "|")
        if node.tag == "tag:yaml.org,2002:null" and style is None and node.value in ("", "~", "null", "Null", "NULL"):
            return Value(NULL, loc)
        if node.start_mark.line != node.end_mark.line:
            return Value(node.value, loc)
        if style is None:
            return Value(node.value, loc, True)
        raw = lines[node.start_mark.line][node.start_mark.column + 1 : node.end_mark.column - 1]
        shifts = _quoted_shifts(raw, style, node.value)
        return Value(node.value, loc, shifts is not None, shifts or ())
    if isinstance(node, yaml.SequenceNode):
        return Value([_to_value(path, item, line_offset, lines, problems) for item in node.value], loc)
    return Value(None, loc)


_ESCAPE_RE = {"'": re.compile(r"''"), '"': re.compile(r"\\(x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)")}


def _quoted_shifts(raw: str, style: str, value: str) -> tuple[tuple[int, int], ...] | None:
    """Return the :attr:`~deckbuild.model.Text.shifts` of a one-line YAML scalar quoted
    with ``style`` (``'`` or ``"``) whose text between the quotes is ``raw`` and whose value
    is ``value``: the opening quote, then each escape. ``None`` where ``raw`` does not map
    onto ``value`` character by character (then errors point at the value's start)."""
    if style not in _ESCAPE_RE:
        return None
    shifts, total = [(0, 1)], 0
    for match in _ESCAPE_RE[style].finditer(raw):
        extra = len(match.group(0)) - 1
        shifts.append((match.start() - total + 1, extra))  # the characters after the escaped one
        total += extra
    if len(raw) - total != len(value):
        return None
    return tuple(shifts)


#: What YAML's double-quoted escapes turn a TeX command's first letter into.
_ESCAPES = {
    "0": "a NUL character", "a": "a bell character", "b": "a backspace", "t": "a tab", "n": "a line break",
    "v": "a vertical tab", "f": "a form feed", "r": "a carriage return", "e": "an escape character",
    "N": "a next-line character", "_": "a non-breaking space", "L": "a line separator", "P": "a paragraph separator",
}


_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\(u[dD][89a-fA-F][0-9a-fA-F]{2}|U0000[dD][89a-fA-F][0-9a-fA-F]{2})")


def _scalar_problem(node: yaml.ScalarNode, lines: list[str]) -> tuple[tuple[int, int], str] | None:
    """Return ``((line, col), message)`` (0-based, in ``lines``) if YAML changed a value silently.

    Three traps: a double-quoted string turns ``\\f``, ``\\t``, ``\\b``, ``\\n`` ... into
    control characters (``"$\\frac{1}{2}$"`` becomes a form feed and ``rac``) and ``\\ud800``
    into a lone UTF-16 surrogate (not a character: UTF-8 cannot hold it, Unicode ch. 3 D76),
    and a value starting with ``&`` or ``!`` loses that word to a YAML anchor or tag.
    """
    line, col = node.start_mark.line, node.start_mark.column
    first = lines[line][col : col + 1] if line < len(lines) else ""
    if first in ("&", "!"):
        what = "an anchor" if first == "&" else "a tag"
        return (line, col), f"a value starting with '{first}' loses its first word to YAML ({what}): {_QUOTE_HINT}"
    if node.style != '"':
        return None
    end = node.end_mark
    raw = "\n".join(lines[line : end.line + 1])
    start = col
    if _SURROGATE.search(node.value):  # "\ud83d\ude00" gives two halves, not one emoji: no text holds them
        escape = _SURROGATE_ESCAPE.search(raw, start)
        before = raw[: escape.start()] if escape else raw[:start]
        at = (line + before.count("\n"), len(before) - (before.rfind("\n") + 1))
        return at, (
            "double-quoted YAML turned this escape into half of a UTF-16 surrogate pair, which is not a character: "
            "write the character itself, or one escape for it ('\\U0001F600')"
        )
    for match in re.finditer(r"\\(.)", raw[start:] if raw else ""):
        letter = match.group(1)
        if letter in _ESCAPES:
            before = raw[: start + match.start()]
            at_line = line + before.count("\n")
            at_col = len(before) - (before.rfind("\n") + 1)
            return (at_line, at_col), (
                f"double-quoted YAML turned '\\{letter}' into {_ESCAPES[letter]}: "
                "write TeX in a '|' block or in single quotes, where a backslash stays a backslash"
            )
    return None


# --- Markdown -----------------------------------------------------------------------------


def _parse_markdown(path: Path, text: str):
    """Parse a Markdown card file: YAML front matter, then one card per ``##`` heading."""
    problems: list[Diagnostic] = []
    lines = text.split("\n")
    if lines[0].rstrip() != "---":
        problems.append(_error(Location(path, 1), "a Markdown card file must start with YAML front matter ('---')"))
        return None, [], problems
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() in ("---", "...")), None)
    if end is None:
        problems.append(_error(Location(path, 1), "front matter is not closed by a '---' line"))
        return None, [], problems
    header_text = "\n".join(lines[1:end])
    header: list[Entry] = []
    if header_text.strip():
        root = _compose(path, header_text, 1, problems)
        if root is None:
            return None, [], problems
        if not isinstance(root, yaml.MappingNode):
            problems.append(_error(Location(path, 2), "front matter must be a mapping (deck, type, tags)"))
            return None, [], problems
        header_lines = header_text.split("\n")
        header = [(k, _to_value(path, v, 1, header_lines, problems), loc) for k, v, loc in _mapping_entries(path, root, 1, problems)]
    for key, _, loc in header:
        if key == "cards":
            problems.append(_error(loc, "'cards' is not allowed in front matter: each '## ' heading is a card"))
    header = [e for e in header if e[0] != "cards"]

    sections = _split_headings(lines, end + 1, "## ")
    if sections and sections[0][1] is None:
        first, _, body = sections.pop(0)
        for i, line in enumerate(body):
            if line.strip():
                problems.append(_error(Location(path, first + i + 1), "text before the first '## ' heading"))
                break
    if not sections:
        problems.append(_error(Location(path, end + 2), "no cards: each card starts with a '## ' heading"))
    cards = [_markdown_card(path, start, heading, body, problems) for start, heading, body in sections]
    return header, cards, problems


def _fenced_lines(lines: list[str]) -> set[int]:
    """Return the indexes of the lines inside fenced code blocks (fences included), by
    :data:`FENCED_BLOCK_RE`: what the renderer will show as code."""
    text = "\n".join(lines)
    inside: set[int] = set()
    line = position = 0
    for match in FENCED_BLOCK_RE.finditer(text):
        line += text.count("\n", position, match.start())
        last = line + text.count("\n", match.start(), match.end())
        inside.update(range(line, last + 1))
        line, position = last, match.end()
    return inside


def _split_headings(lines: list[str], start: int, marker: str):
    """Split ``lines[start:]`` at headings starting with ``marker``, outside fenced code.

    Returns ``(index of the heading line or of the first line, heading text after the
    marker or None, body lines)``.
    """
    sections: list[tuple[int, str | None, list[str]]] = [(start, None, [])]
    fenced = _fenced_lines(lines[start:]) if any(line.startswith(("```", "~~~")) for line in lines[start:]) else set()
    for i in range(start, len(lines)):
        line = lines[i]
        if i - start not in fenced and line.startswith(marker):
            sections.append((i, line[len(marker) :], []))
        else:
            sections[-1][2].append(line)
    if not any(line.strip() for line in sections[0][2]):
        sections.pop(0)  # no text before the first heading
    return sections


def _markdown_card(path: Path, index: int, heading: str, body: list[str], problems: list[Diagnostic]):
    """Turn one ``##`` section into card entries (the same shape the YAML form gives).

    Returns ``(location, entries, clean)``; ``clean`` is false if a problem was found here
    (then the card is reported but never built, so an unfenced '### code' never runs);
    ``entries`` is ``None`` when its key lines are not YAML (that error is all it reports).
    """
    before = len(problems)
    card_loc = Location(path, index + 1, 1)
    column = 4 + len(heading) - len(heading.lstrip())
    entries: list[Entry] = [("q", Value(heading.strip(), Location(path, index + 1, column), True), card_loc)]
    meta_start, meta_len = _misplaced_meta(path, index, body, problems)
    if meta_len:
        body = body[:meta_start] + [line.lstrip(" \t") for line in body[meta_start:meta_len]] + body[meta_len:]
        root = _compose(path, "\n".join(body[:meta_len]), index + 1, problems)
        if root is None:  # its problem is reported; the keys it would have given are unknown
            return card_loc, None, False
        if isinstance(root, yaml.MappingNode):
            for key, node, loc in _mapping_entries(path, root, index + 1, problems):
                if key in TEXT_KEYS_ALL - {"topic"}:
                    problems.append(_error(loc, f"'{key}' is a text field: write it as a '### {key}' section"))
                    continue
                entries.append((key, _to_value(path, node, index + 1, body[:meta_len], problems), loc))
    first_body = index + 1 + meta_len
    seen = {key: loc for key, _, loc in entries}
    for start, name, lines in _split_headings(body[meta_len:], 0, "### "):
        line_no = first_body + start + (1 if name is not None else 0) + 1
        key = "a" if name is None else re.sub(r"[\s-]+", "_", name.strip().lower())
        value, line_no = _strip_blank(lines, line_no)
        loc = Location(path, first_body + start + 1, 1)
        if key in seen:
            first = "the text under the heading is the answer" if seen[key].col == 0 else "first"
            problems.append(_error(loc, f"'{key}' is given twice in this card ({first} at line {seen[key].line})"))
            continue
        seen[key] = loc if name is not None else Location(path, line_no)
        if key == "code":
            value, line_no, ok = _fenced_body(value, line_no)
            if not ok:
                problems.append(_error(loc, "a '### code' section must hold one fenced code block"))
        entries.append((key, Value(value, Location(path, line_no, 1), True), loc))
    return card_loc, entries, len(problems) == before


TEXT_KEYS_ALL = {k for keys in TEXT_KEYS.values() for k in keys}
_META_KEYS = {*COMMON_KEYS, *CODE_KEYS, "topic"} - {"q"}
_LOOSE_META_RE = re.compile(r"^([ \t]*)([a-z_]+):(\s|$)")


def _misplaced_meta(path: Path, index: int, body: list[str], problems: list[Diagnostic]) -> tuple[int, int]:
    """Return ``(first, end)`` of the card-key lines below a heading (``(0, 0)``: none).

    They must follow the heading directly and start at the line's first column. A blank
    line in between, or indented keys (which Markdown reads as a code block), are located
    errors that say so; the keys are still read, so no second error follows from them.
    """
    end = 0
    while end < len(body) and META_LINE_RE.match(body[end]):
        end += 1
    if end:
        return 0, end
    first = next((i for i, line in enumerate(body) if line.strip()), len(body))
    end = first
    while end < len(body) and (m := _LOOSE_META_RE.match(body[end])) and m.group(2) in _META_KEYS:
        end += 1
    if end == first:
        return 0, 0
    indent = _LOOSE_META_RE.match(body[first]).group(1)
    key = _LOOSE_META_RE.match(body[first]).group(2)
    where = Location(path, index + 2 + first, len(indent) + 1)
    if first:
        problems.append(_error(where, f"'{key}:' must come right below the '## ' heading: remove the blank line between them"))
    else:
        problems.append(_error(where, f"'{key}:' is indented: write card keys at the start of the line (indented lines are code in Markdown)"))
    return first, end


def _strip_blank(lines: list[str], line_no: int) -> tuple[str, int]:
    """Drop leading and trailing blank lines; return the text and its first line number."""
    while lines and not lines[0].strip():
        lines = lines[1:]
        line_no += 1
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return "\n".join(lines), line_no


def _fenced_body(text: str, line_no: int) -> tuple[str, int, bool]:
    """Return the content of the single fenced block that ``text`` must be (by :data:`FENCED_BLOCK_RE`)."""
    match = FENCED_BLOCK_RE.match(text)  # the first closing fence ends it, as in the renderer
    if not match or text[match.end() :].strip():
        return text, line_no, False
    return match.group("code").removesuffix("\n"), line_no + 1, True


# --- Shared validation of both forms ------------------------------------------------------------


def _build_cards(path: Path, header: list[Entry], entries_per_card, problems: list[Diagnostic]):
    """Check header and card entries and build :class:`Card` records."""
    file_loc = Location(path, 1)
    deck = None
    default_kind = Kind.QA
    file_tags: tuple[str, ...] = ()
    for key, value, loc in header:
        if key == "deck":
            deck = _deck(value, problems)
        elif key == "type":
            default_kind = _kind(value, problems) or default_kind
        elif key == "tags":
            file_tags = _tags(value, problems)
        else:
            problems.append(_error(loc, f"unknown key '{key}' (a file has: {', '.join(FILE_KEYS)})"))
    if not any(k == "deck" for k, _, _ in header):
        problems.append(_error(file_loc, "missing key 'deck' (the Anki deck for these cards, e.g. 'Top::Sub')"))
    cards = []
    for card_loc, entries, clean in entries_per_card:
        if entries is None:
            continue
        card = _card(card_loc, entries, deck, default_kind, file_tags, problems)
        if card is not None and deck is not None and clean:
            cards.append(card)
    return cards, problems


def _card(card_loc: Location, entries: list[Entry], deck, default_kind: Kind, file_tags, problems) -> Card | None:
    """Validate one card's entries; return the card, or ``None`` if it has errors."""
    before = len(problems)
    values = {key: (value, loc) for key, value, loc in entries}
    kind = default_kind
    if "type" in values:
        kind = _kind(values["type"][0], problems) or kind
    card_id = None
    if "id" not in values:
        problems.append(_error(card_loc, "card has no 'id' (a unique name like 'my-card-1')"))
    else:
        id_value = values["id"][0]
        card_id = _scalar(id_value, "id", problems)
        if card_id is not None and len(card_id) > MAX_ID_LENGTH:
            problems.append(_error(id_value.location, f"id '{card_id[:24]}…' is {len(card_id)} characters long; at most {MAX_ID_LENGTH}"))
            card_id = None
        elif card_id is not None and not ID_RE.fullmatch(card_id):
            problems.append(_error(id_value.location, f"bad id '{card_id}': use lowercase letters, digits and '-', starting with a letter or digit"))
            card_id = None
    name = f"card '{card_id}'" if card_id else "card"
    allowed = set(COMMON_KEYS) | set(TEXT_KEYS[kind]) | (set(CODE_KEYS) if kind is Kind.CODE else set())
    for key, value, loc in entries:
        if key not in allowed:
            problems.append(_error(loc, f"unknown key '{key}' for a {kind.value} card (allowed: {', '.join(sorted(allowed))})"))
    for key in REQUIRED_KEYS[kind]:
        if key not in values:
            problems.append(_error(card_loc, f"{name} is missing '{key}'"))
    texts: dict[str, Text] = {}
    for key in TEXT_KEYS[kind]:
        if key in values:
            value, loc = values[key]
            text = _scalar(value, key, problems)
            if text is not None and not text.strip():
                problems.append(_error(value.location, f"'{key}' is empty"))
            elif text is not None and len(text) > MAX_TEXT_LENGTH:
                problems.append(_error(value.location, f"'{key}' is {len(text)} characters long; at most {MAX_TEXT_LENGTH} (split it into several cards)"))
            elif text is not None:
                texts[key] = Text(text, value.location, value.block, value.shifts)
    if kind is Kind.PROBE and (("follow_up" in values) != ("follow_up_a" in values)):
        problems.append(_error(card_loc, f"{name}: 'follow_up' and 'follow_up_a' go together"))
    tags = file_tags + (_tags(values["tags"][0], problems) if "tags" in values else ())
    source = _sources(values["source"][0], problems) if "source" in values else ()
    timeout = DEFAULT_TIMEOUT
    if "timeout" in values and kind is Kind.CODE:
        timeout = _timeout(values["timeout"][0], problems) or timeout
    expect_error = None
    if "expect_error" in values and kind is Kind.CODE:
        expect_error = _expected_error(values["expect_error"][0], problems)
    if len(problems) > before or card_id is None or deck is None:
        return None
    return Card(
        id=card_id,
        kind=kind,
        deck=deck,
        location=card_loc,
        tags=tuple(dict.fromkeys(tags)),
        source=source,
        timeout=timeout,
        expect_error=expect_error,
        **texts,
    )


_NULL_HINT = "got null (YAML reads an empty value, '~' and 'null' as no value; quote a word: 'null')"


def _not_text(value: Value) -> str:
    """Say what a value that should have been text is instead."""
    if value.value is NULL:
        return _NULL_HINT
    return f"not a {'list' if isinstance(value.value, list) else 'mapping'}"


def _scalar(value: Value, key: str, problems) -> str | None:
    if not isinstance(value.value, str):
        problems.append(_error(value.location, f"'{key}' must be text, {_not_text(value)}"))
        return None
    return value.value


def _hidden_character(text: str) -> str | None:
    """Name the first character of ``text`` that a deck name or tag must not hold, or ``None``.

    Those are the control characters (Anki deletes the ASCII ones, U+0000-U+001F and
    U+007F, from deck names and tags: rslib ``normalized_deck_name_component``), and the
    invisible ones (Unicode Cc, Cf, Zl and Zp; the joiners U+200C and U+200D that scripts
    and emoji need are allowed): two names that look the same would be two decks or tags.
    """
    if text.isprintable():
        return None
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cc":
            return f"U+{ord(ch):04X}, a control character" + (" (Anki deletes it)" if ord(ch) < 0x80 else "")
        if category in ("Cf", "Zl", "Zp") and ch not in "\u200c\u200d":
            return f"U+{ord(ch):04X}, an invisible character"
    return None


def _deck(value: Value, problems) -> str | None:
    """Check an Anki deck path and return it NFC-normalised, its components stripped.

    Anki (rslib ``NativeDeckName``) normalises each ``::`` component: NFC, ASCII control
    characters deleted, whitespace and ``:`` trimmed from both ends, an empty one named
    "blank". deckbuild refuses what Anki would change silently (besides NFC and spaces
    around ``::``), and invisible characters: see :func:`_hidden_character`.
    """
    name = _scalar(value, "deck", problems)
    if name is None:
        return None
    parts = name.split("::")
    hidden = _hidden_character(name)
    if hidden:
        problems.append(_error(value.location, f"deck name '{name}' contains {hidden}: delete it"))
        return None
    if not name.strip() or any(not part.strip() for part in parts):
        problems.append(_error(value.location, f"deck name '{name}' has an empty component"))
        return None
    if any(part.strip().startswith(":") or part.strip().endswith(":") for part in parts):
        problems.append(_error(value.location, f"deck name '{name}' has a component that starts or ends with ':' (Anki deletes it): use '::' only between components"))
        return None
    return unicodedata.normalize("NFC", "::".join(part.strip() for part in parts))


def _kind(value: Value, problems) -> Kind | None:
    name = _scalar(value, "type", problems)
    if name is None:
        return None
    try:
        return Kind(name)
    except ValueError:
        choices = ", ".join(k.value for k in Kind)
        problems.append(_error(value.location, f"unknown type '{name}' (expected one of: {choices})"))
        return None


def _list_of_text(value: Value, key: str, problems) -> list[Value]:
    items = value.value if isinstance(value.value, list) else [value]
    good = []
    for item in items:
        if isinstance(item.value, str):
            good.append(item)
        elif item.value is NULL:
            problems.append(_error(item.location, f"each entry of '{key}' must be text, {_NULL_HINT}"))
        else:
            problems.append(_error(item.location, f"each entry of '{key}' must be text"))
    return good


def _tags(value: Value, problems) -> tuple[str, ...]:
    """Check Anki tags: no whitespace (Anki splits tags on spaces), no empty '::' part, no
    control or invisible character (see :func:`_hidden_character`)."""
    tags = []
    for item in _list_of_text(value, "tags", problems):
        tag = item.value
        if not tag or any(c.isspace() for c in tag):
            problems.append(_error(item.location, f"bad tag '{tag}': Anki tags cannot contain spaces (use '-' or '::')"))
        elif hidden := _hidden_character(tag):
            problems.append(_error(item.location, f"bad tag '{tag}': it contains {hidden}"))
        elif any(not part for part in tag.split("::")):
            problems.append(_error(item.location, f"bad tag '{tag}': empty component between '::'"))
        else:
            tags.append(tag)
    return tuple(tags)


def _sources(value: Value, problems) -> tuple[str, ...]:
    sources = []
    for item in _list_of_text(value, "source", problems):
        if not item.value.strip() or any(c.isspace() for c in item.value.strip()):
            problems.append(_error(item.location, f"bad source id '{item.value}': one id per entry, no spaces"))
        else:
            sources.append(item.value.strip())
    return tuple(sources)


def _timeout(value: Value, problems) -> float | None:
    """Read ``timeout``: seconds, from :data:`MIN_TIMEOUT` (0.1) to :data:`MAX_TIMEOUT` (600)."""
    if not isinstance(value.value, str):
        problems.append(_error(value.location, f"'timeout' must be a number of seconds, {_not_text(value)}"))
        return None
    try:
        seconds = float(value.value)
    except ValueError:
        seconds = float("nan")
    if not MIN_TIMEOUT <= seconds <= MAX_TIMEOUT:  # also refuses nan
        problems.append(_error(value.location, f"'timeout' must be a number of seconds from {MIN_TIMEOUT:g} to {MAX_TIMEOUT:g}, not '{value.value}'"))
        return None
    return seconds


_EXPECTED_ERROR_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)(?::\s*(\S.*))?")


def _expected_error(value: Value, problems) -> str | None:
    """Read ``expect_error``: an exception class name, optionally ``Name: text in its message``."""
    if value.value is NULL:
        problems.append(_error(value.location, f"'expect_error' must be text, {_NULL_HINT}"))
        return None
    text = value.value.strip() if isinstance(value.value, str) else None
    if text in ("false", "False", "no", ""):
        return None
    if text in ("true", "True", "yes"):
        problems.append(_error(value.location, (
            "'expect_error' names the exception the snippet must raise, e.g. 'expect_error: RuntimeError' "
            "(true would accept any exception, even a typo's NameError)"
        )))
        return None
    match = _EXPECTED_ERROR_RE.fullmatch(text or "")
    if match is None:
        problems.append(_error(value.location, (
            "'expect_error' must be an exception class name, optionally with text its message contains: "
            "'RuntimeError' or 'RuntimeError: must match the size'"
        )))
        return None
    return text


def _error(location: Location, message: str) -> Diagnostic:
    return Diagnostic(location, Severity.ERROR, message)
