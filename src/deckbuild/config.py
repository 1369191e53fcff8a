"""The project configuration: ``deckbuild.toml``, or ``[tool.deckbuild]`` in ``pyproject.toml``.

A project is the folder that holds its config. Every relative path in the config, and
every default (sources ``cards/``, output ``dist/``, cache ``.deckbuild-cache/``), is taken
relative to that folder, never to the folder the command happens to run in. Without a
config the project folder is the parent of the first source folder (or the folder of the
first source file), so ``deckbuild build ~/deck/cards`` run from anywhere keeps its cache in
``~/deck/.deckbuild-cache`` and writes ``~/deck/dist``.

The config is data only: it is parsed with the standard TOML reader and never executed.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from deckbuild.errors import Location, SourceError
from deckbuild.latex import ENGINES

CONFIG_NAME = "deckbuild.toml"
#: Keys the config accepts, with the TOML type each must have.
KEYS: dict[str, type] = {
    "sources": list,
    "out": str,
    "cache_dir": str,
    "guid_namespace": str,
    "math": str,
    "python": str,
    "strict": bool,
}
MATH_ENGINES = ENGINES


@dataclass(frozen=True)
class Project:
    """A project's settings with every path resolved against its folder.

    ``config`` is the file they came from (``None`` without one); ``guid_namespace`` is
    ``None`` when the config does not set it (see :func:`deckbuild.package.note_guid` for
    the default); ``math`` and ``python`` are ``None`` for "the built-in default".
    """

    root: Path
    config: Path | None
    sources: tuple[Path, ...]
    out: Path
    cache_dir: Path
    guid_namespace: str | None = None
    math: str | None = None
    python: str | None = None
    strict: bool = False


def find_config(start: Path) -> Path | None:
    """Return the nearest ``deckbuild.toml``, or ``pyproject.toml`` with ``[tool.deckbuild]``,
    in ``start`` or its parents (the way ruff and black find theirs); ``None`` if there is none.
    """
    folder = start.resolve()
    if not folder.is_dir():
        folder = folder.parent
    for candidate in (folder, *folder.parents):
        own = candidate / CONFIG_NAME
        if own.is_file():
            return own
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file() and re.search(r"(?m)^\s*\[tool\.deckbuild\]", _read(pyproject)):
            return pyproject
    return None


def load_project(sources: list[Path], config: Path | None = None, cwd: Path | None = None) -> Project:
    """Return the project for a command line's ``sources`` (possibly empty) and ``--config``.

    The config is looked for from the first source, or from ``cwd`` when no source is
    given. Sources on the command line replace the config's ``sources``. Raises
    :class:`~deckbuild.errors.SourceError` (located in the config file) for TOML syntax
    errors, unknown keys and values of the wrong type.
    """
    cwd = cwd or Path.cwd()
    path = config if config is not None else find_config(sources[0] if sources else cwd)
    settings: dict[str, object] = {}
    if path is not None:
        settings = _settings(path)
        root = path.resolve().parent
    elif sources:
        first = sources[0].resolve()
        root = first.parent
    else:
        root = cwd.resolve()
    configured = tuple(root / s for s in settings.get("sources", ["cards"]))  # type: ignore[union-attr]
    return Project(
        root=root,
        config=path,
        sources=tuple(sources) or configured,
        out=root / str(settings.get("out", "dist")),
        cache_dir=root / str(settings.get("cache_dir", ".deckbuild-cache")),
        guid_namespace=settings.get("guid_namespace"),  # type: ignore[arg-type]
        math=settings.get("math"),  # type: ignore[arg-type]
        python=settings.get("python"),  # type: ignore[arg-type]
        strict=bool(settings.get("strict", False)),
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read config: {getattr(exc, 'strerror', None) or exc}", Location(path)) from None


def _settings(path: Path) -> dict[str, object]:
    """Parse and check one config file; return its deckbuild settings."""
    text = _read(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = re.search(r"\(at line (\d+), column (\d+)\)", message)
        location = Location(path, int(where[1]), int(where[2])) if where else Location(path)
        reason = re.sub(r" *\(at .*\)$", "", message)
        raise SourceError(f"bad TOML: {reason}", location) from None
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("deckbuild", {})
        if not isinstance(data, dict):
            raise SourceError("[tool.deckbuild] must be a table", _key_location(path, text, "deckbuild"))
    for key, value in data.items():
        if key not in KEYS:
            known = ", ".join(KEYS)
            raise SourceError(f"unknown config key '{key}' (known: {known})", _key_location(path, text, key))
        if not isinstance(value, KEYS[key]) or (key == "sources" and not all(isinstance(s, str) for s in value)):
            kind = {list: "a list of folder names", str: "a string", bool: "true or false"}[KEYS[key]]
            raise SourceError(f"config key '{key}' must be {kind}", _key_location(path, text, key))
    if "math" in data and data["math"] not in MATH_ENGINES:
        raise SourceError(f"config key 'math' must be one of {', '.join(MATH_ENGINES)}", _key_location(path, text, "math"))
    if "guid_namespace" in data and not str(data["guid_namespace"]).strip():
        raise SourceError("config key 'guid_namespace' must not be empty", _key_location(path, text, "guid_namespace"))
    return data


def _key_location(path: Path, text: str, key: str) -> Location:
    """Return where ``key =`` is written in ``text`` (TOML readers give no positions)."""
    for number, line in enumerate(text.split("\n"), 1):
        match = re.match(rf"\s*({re.escape(key)}|\"{re.escape(key)}\")\s*=", line)
        if match:
            return Location(path, number, match.start(1) + 1)
    return Location(path)
