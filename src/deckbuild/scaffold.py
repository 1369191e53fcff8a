"""``deckbuild init``: write a minimal project that builds as it is.

The project is a config (``deckbuild.toml`` with a fresh random GUID namespace), one YAML
and one Markdown card file (with math and a code card) and a ``.gitignore``. Existing
files are never overwritten.
"""

from __future__ import annotations

import uuid
from importlib import resources
from pathlib import Path

from deckbuild.errors import Location, SourceError

#: Template file → where it goes in the new project.
FILES = {
    "deckbuild.toml": "deckbuild.toml",
    "cards/basics.yaml": "cards/basics.yaml",
    "cards/more.md": "cards/more.md",
    "gitignore": ".gitignore",
}


def init_project(folder: Path) -> list[Path]:
    """Write a new project into ``folder`` (created if missing); return the files written.

    Raises :class:`~deckbuild.errors.SourceError` naming the first file that already
    exists (then nothing is written) or that cannot be written.
    """
    targets = {template: folder / name for template, name in FILES.items()}
    for target in targets.values():
        if target.exists():
            raise SourceError("already exists; deckbuild init writes only into a new project", Location(target))
    templates = resources.files("deckbuild").joinpath("templates/project")
    namespace = str(uuid.uuid4())
    written: list[Path] = []
    try:
        for template, target in targets.items():
            text = templates.joinpath(template).read_text(encoding="utf-8")
            if template == "deckbuild.toml":
                text = text.replace("{namespace}", namespace)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "x", encoding="utf-8") as handle:
                handle.write(text)
            written.append(target)
    except OSError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        raise SourceError(f"cannot write: {exc.strerror or exc}", Location(Path(exc.filename or folder))) from None
    return written
