"""Build dist/deckbuild.ankiaddon: the add-on folder's contents plus the
vendored runner, zipped without a top-level folder (what Anki's "Install from
file" expects).

Standard library only. Usage: python addon/build.py [--out PATH]
The zip is reproducible: sorted entries with a fixed timestamp
(SOURCE_DATE_EPOCH if set).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import zipfile
from pathlib import Path

ADDON_DIR = Path(__file__).resolve().parent
ROOT = ADDON_DIR.parent
RUNNER_DIR = ROOT / "src" / "deckbuild"
DEFAULT_OUT = ROOT / "dist" / "deckbuild.ankiaddon"

VENDORED = ("runner.py", "_worker.py")  # runner.py is required, _worker.py optional
NOT_SHIPPED = {"build.py"}


class BuildError(Exception):
    """The package cannot be built (a required file is missing or unfit)."""


def addon_files(addon_dir: Path = ADDON_DIR) -> dict[str, Path]:
    """Return {name in the zip: source file} for the add-on's own files:
    everything in addon_dir except build.py, caches and hidden files."""
    files = {}
    for path in sorted(addon_dir.rglob("*")):
        rel = path.relative_to(addon_dir)
        if not path.is_file() or any(p.startswith(".") or p == "__pycache__" for p in rel.parts):
            continue
        if path.suffix in (".pyc", ".pyo") or rel.as_posix() in NOT_SHIPPED:
            continue
        files[rel.as_posix()] = path
    return files


_ABSOLUTE_IMPORT = re.compile(r"^\s*(from|import)\s+deckbuild\b", re.MULTILINE)


def vendored_files(runner_dir: Path = RUNNER_DIR) -> dict[str, Path]:
    """Return {name in the zip: source file} for the runner copied from the
    compiler. Raises BuildError if runner.py is missing or imports the
    deckbuild package (it must be self-contained to work inside Anki)."""
    files = {}
    for name in VENDORED:
        path = runner_dir / name
        if path.is_file():
            if _ABSOLUTE_IMPORT.search(path.read_text(encoding="utf-8")):
                raise BuildError(f"{path} imports the deckbuild package; it cannot be vendored")
            files[name] = path
    if "runner.py" not in files:
        raise BuildError(f"{runner_dir / 'runner.py'} not found: the add-on needs the runner")
    return files


def build(out: Path = DEFAULT_OUT, addon_dir: Path = ADDON_DIR, runner_dir: Path = RUNNER_DIR) -> Path:
    """Write the .ankiaddon zip to out and return its path. Raises BuildError."""
    files = addon_files(addon_dir)
    vendored = vendored_files(runner_dir)
    clash = files.keys() & vendored.keys()
    if clash:
        raise BuildError(f"addon/ must not contain its own {', '.join(sorted(clash))}")
    files.update(vendored)
    for required in ("__init__.py", "manifest.json", "config.json", "config.md"):
        if required not in files:
            raise BuildError(f"addon/{required} is missing")

    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))  # 1980-01-01
    stamp = time.gmtime(max(epoch, 315532800))[:6]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, files[name].read_bytes())
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the .ankiaddon to write")
    args = parser.parse_args(argv)
    try:
        path = build(args.out)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
