"""Refresh the vendored math files under src/deckbuild/vendor/ (``make vendor-temml``, ``make vendor-font``).

- ``temml``: the npm package ``temml`` (version :data:`TEMML_VERSION`, MIT) through ``npm pack``:
  ``dist/temml.min.js``, its stylesheet for Latin Modern (``dist/Temml-Latin-Modern.css``), its
  ``Temml.woff2`` helper font (primes, ``\\mathscr``) and ``LICENSE``.
- ``font``: Latin Modern Math (GUST Font License) from Debian's ``fonts-lmodern`` (``apt-get install
  fonts-lmodern``), converted OTF → WOFF2 with fonttools + brotli (``pip install -e ".[vendor]"``).
  WOFF2 is a lossless container: every table, and so the font's name, is kept as it is, which is
  what the licence asks of a font that is not renamed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parent.parent / "src" / "deckbuild" / "vendor"
TEMML_VERSION = "0.13.5"
LM_MATH_OTF = Path("/usr/share/texmf/fonts/opentype/public/lm-math/latinmodern-math.otf")
LM_MATH_DOCS = Path("/usr/share/texmf/doc/fonts/lm-math")
LM_MATH_TEXTS = ("GUST-FONT-LICENSE.txt", "README-Latin-Modern-Math.txt", "MANIFEST-Latin-Modern-Math.txt")


def vendor_temml() -> None:
    """Fetch ``temml@TEMML_VERSION`` from the npm registry and copy the files deckbuild ships."""
    with tempfile.TemporaryDirectory() as work:
        done = subprocess.run(["npm", "pack", f"temml@{TEMML_VERSION}", "--silent"], cwd=work, check=True, capture_output=True, text=True)
        with tarfile.open(Path(work) / done.stdout.strip().splitlines()[-1]) as archive:
            archive.extractall(work, filter="data")
        package = Path(work) / "package"
        for source, target in (
            ("dist/temml.min.js", "temml.min.js"),
            ("dist/Temml.woff2", "Temml.woff2"),
            ("dist/Temml-Latin-Modern.css", "Temml-Latin-Modern.css"),
            ("LICENSE", "temml-LICENSE"),
        ):
            shutil.copyfile(package / source, VENDOR / target)
    (VENDOR / "temml-VERSION").write_text(TEMML_VERSION + "\n")
    print(f"vendored temml {TEMML_VERSION} into {VENDOR}")


def vendor_font() -> None:
    """Convert Debian's Latin Modern Math OTF to WOFF2 and copy its licence, manifest and readme."""
    from fontTools.ttLib import TTFont

    if not LM_MATH_OTF.exists():
        raise SystemExit(f"{LM_MATH_OTF} is missing: apt-get install fonts-lmodern")
    font = TTFont(LM_MATH_OTF)
    font.flavor = "woff2"
    font.save(VENDOR / "latinmodern-math.woff2")
    for name in LM_MATH_TEXTS:  # the licence, and the manifest and readme it asks to travel with the font
        shutil.copyfile(LM_MATH_DOCS / name, VENDOR / name)
    print(f"vendored {LM_MATH_OTF.name} as latinmodern-math.woff2 into {VENDOR}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("temml", "font"))
    args = parser.parse_args()
    VENDOR.mkdir(parents=True, exist_ok=True)
    vendor_temml() if args.what == "temml" else vendor_font()


if __name__ == "__main__":
    main()
