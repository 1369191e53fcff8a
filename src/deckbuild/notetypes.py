"""deckbuild's note types: fields, card templates and CSS, one note type per card kind.

Note type IDs are fixed (genanki's ``builtin_models.py`` does the same): Anki matches an
imported note type by ID, so a fixed ID lets a rebuilt package update the note type's
templates and CSS instead of creating "deckbuild Q&A-abc12" copies. Field lists are part of
the contract with users' collections: adding a field changes the note type's schema, which
Anki's importer handles by asking for a full sync; rename nothing.

Templates carry no add-on controls: a client without the deckbuild add-on (AnkiDroid,
AnkiMobile) shows every field that matters, including a code card's baked ``Output``.

Fonts: Chromium stretches brackets, radicals and big operators only with an OpenType MATH font,
and Android ships none, so every package carries Latin Modern Math (GUST Font License, shipped
unmodified as WOFF2) and Temml's helper font (primes, ``\\mathscr``) in its media
(:data:`FONTS`). Their names start with ``_`` so Anki's "Check Media" keeps them and sync
carries them; the note type CSS declares them with ``@font-face`` under those content-hashed
names, followed by Temml's own stylesheet (alignment, padding, cancel and accent rules).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

import genanki

from deckbuild.cache import content_key
from deckbuild.model import Kind, Media
from deckbuild.render import code_css

_FILES = resources.files("deckbuild")
#: Media every package carries: the math font and Temml's helper font.
MATH_FONT = Media.from_bytes(_FILES.joinpath("vendor/latinmodern-math.woff2").read_bytes(), "latinmodern-math", ".woff2", keep=True)
TEMML_FONT = Media.from_bytes(_FILES.joinpath("vendor/Temml.woff2").read_bytes(), "temml", ".woff2", keep=True)
FONTS = (MATH_FONT, TEMML_FONT)


def _temml_css() -> str:
    """Temml's stylesheet for Latin Modern, its font URLs pointed at the media names."""
    css = _FILES.joinpath("vendor/Temml-Latin-Modern.css").read_text(encoding="utf-8")
    for url, media in (("url('Temml.woff2')", TEMML_FONT), ("url('./latinmodernmath.woff2')", MATH_FONT)):
        if url not in css:  # a refreshed Temml changed its stylesheet: fail the import, not the cards
            raise RuntimeError(f"vendor/Temml-Latin-Modern.css no longer has {url}")
        css = css.replace(url, f"url('{media.name}') format('woff2')")
    return css.replace("format('woff2') format('woff2')", "format('woff2')")


CSS = "\n".join((_temml_css(), code_css(), _FILES.joinpath("templates/card.css").read_text(encoding="utf-8")))
MATHML_FALLBACK_JS = _FILES.joinpath("templates/mathml-fallback.js").read_text(encoding="utf-8")
_SCRIPT = f"<script>\n{MATHML_FALLBACK_JS}</script>"
_SOURCE = '{{#Source}}<div class="db-source">Source: {{Source}}</div>{{/Source}}'


@dataclass(frozen=True)
class NoteTypeSpec:
    """One note type: its fixed Anki ID (int), name, field names, and templates (name, front, back)."""

    id: int
    name: str
    fields: tuple[str, ...]
    templates: tuple[tuple[str, str, str], ...]

    def digest(self) -> str:
        """Return a hex digest of everything Anki stores for the note type: name, fields, templates, CSS."""
        return content_key(json.dumps([self.id, self.name, self.fields, self.templates, CSS]))

    def genanki_model(self) -> genanki.Model:
        """Return the note type as a ``genanki.Model`` (sort field: ``Id``)."""
        return genanki.Model(
            self.id,
            self.name,
            fields=[{"name": name} for name in self.fields],
            templates=[{"name": name, "qfmt": front, "afmt": back} for name, front, back in self.templates],
            css=CSS,
            sort_field_index=0,
        )


# Anki's MathJax typesets any \(…\) it finds in a card's text, and its \href makes a live
# link; deckbuild's formulas are MathML already. These classes keep MathJax (3, and 2 on old
# clients) out of the card; the MathML fallback typesets its own TeX, which MathJax allows
# within them. A card cannot undo them: the build drops MathJax's classes from fields.
_CARD = '<div class="db-card mathjax_ignore tex2jax_ignore">'


# A line break between blocks: Anki's card browser turns newlines (not </div>) into spaces, so the
# topic and the question read as two words in its Question column.
def _front(body: str) -> str:
    return f"{_CARD}{body}</div>\n{_SCRIPT}"


def _back(body: str) -> str:
    # The script runs again at the end: clients that parse the card as a page (AnkiDroid) run
    # {{FrontSide}}'s copy before the answer's formulas exist. It is idempotent.
    return f'{{{{FrontSide}}}}\n<hr id="answer">\n{_CARD}{body}\n{_SOURCE}</div>\n{_SCRIPT}'


QA = NoteTypeSpec(
    1738400001,
    "deckbuild Q&A",
    ("Id", "Question", "Answer", "Topic", "Source"),
    (
        (
            "Card 1",
            _front('{{#Topic}}<div class="db-topic">{{Topic}}</div>\n{{/Topic}}<div class="db-question">{{Question}}</div>'),
            _back('<div class="db-answer">{{Answer}}</div>'),
        ),
    ),
)
FACT = NoteTypeSpec(
    1738400002,
    "deckbuild Fact",
    ("Id", "Question", "Answer", "Why", "Source"),
    (
        (
            "Card 1",
            _front('<div class="db-question">{{Question}}</div>'),
            _back('<div class="db-answer">{{Answer}}</div>{{#Why}}<div class="db-why">{{Why}}</div>{{/Why}}'),
        ),
    ),
)
PROBE = NoteTypeSpec(
    1738400003,
    "deckbuild Probe",
    ("Id", "Question", "Answer", "FollowUp", "FollowUpAnswer", "Source"),
    (
        (
            "Probe",
            _front('<div class="db-question">{{Question}}</div>'),
            _back('<div class="db-answer">{{Answer}}</div>'),
        ),
        (
            "Follow-up",
            "{{#FollowUp}}"
            + _front('<div class="db-context">{{Question}}</div>\n<div class="db-question">{{FollowUp}}</div>')
            + "{{/FollowUp}}",
            _back('<div class="db-answer">{{FollowUpAnswer}}</div>'),
        ),
    ),
)
CODE = NoteTypeSpec(
    1738400004,
    "deckbuild Code",
    ("Id", "Question", "Code", "CodeHtml", "Output", "Answer", "Source"),
    (
        (
            "Card 1",
            _front('<div class="db-question">{{Question}}</div><div class="deckbuild-code">{{CodeHtml}}</div>'),
            _back(
                '<div class="deckbuild-baked"><div class="db-output-label">Output</div>{{Output}}</div>'
                '{{#Answer}}<div class="db-answer">{{Answer}}</div>{{/Answer}}'
            ),
        ),
    ),
)

NOTE_TYPES: dict[Kind, NoteTypeSpec] = {Kind.QA: QA, Kind.FACT: FACT, Kind.PROBE: PROBE, Kind.CODE: CODE}
