"""What HTML a note may hold: an allowlist enforced by nh3 (the Python binding of ammonia).

Anki runs the scripts a field holds each time the card is shown, on every client, and
lets them call ``pycmd`` (docs/addon.md). A card, a build cache or a kept note store may be
written by someone else, so no field a build writes may carry a script, an event handler
attribute (``onerror=``), a ``javascript:`` URL or an element that loads a document
(``<iframe>``, ``<object>``). The allowlist is the HTML that deckbuild's own renderers make
(Python-Markdown, Pygments, the math engines' MathML, the baked output), plus the inline
and block HTML a card author may fairly write (``<kbd>``, ``<sub>``, ``<details>`` ...).

Two uses: :func:`first_removed` tells the card author what would be dropped (an error at
its place in the card, :mod:`deckbuild.render`); :func:`clean` is applied to every field
written into a package (:func:`deckbuild.package.note_fields`) and :func:`is_clean` checks
every note a kept store lends, so a crafted cache cannot put a script into a deck either.
"""

from __future__ import annotations

import collections
import re
from html.parser import HTMLParser

import nh3

_HTML_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del",
    "details", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5",
    "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp",
    "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "tr", "u", "ul", "var",
}
# MathML Core's elements (https://w3c.github.io/mathml-core/#mathml-elements-and-attributes),
# without <maction> and <annotation-xml>, which can hold HTML of their own.
_MATHML_TAGS = {
    "math", "annotation", "menclose", "merror", "mfrac", "mi", "mmultiscripts", "mn", "mo",
    "mover", "mpadded", "mphantom", "mprescripts", "mroot", "mrow", "ms", "mspace", "msqrt",
    "mstyle", "msub", "msubsup", "msup", "mtable", "mtd", "mtext", "mtr", "munder",
    "munderover", "none", "semantics",
}
TAGS = frozenset(_HTML_TAGS | _MATHML_TAGS)
_MATHML_ATTRIBUTES = {
    "accent", "accentunder", "columnalign", "columnlines", "columnspan", "depth", "display",
    "displaystyle", "encoding", "fence", "form", "frame", "height", "largeop", "linethickness",
    "lspace", "mathbackground", "mathcolor", "mathsize", "mathvariant", "maxsize", "minsize",
    "movablelimits", "notation", "rowalign", "rowlines", "rowspan", "rspace", "scriptlevel",
    "separator", "stretchy", "symmetric", "voffset", "width",
}
#: Attributes kept, by tag (``"*"``: on every tag); ``data-*`` attributes are kept too.
ATTRIBUTES = {
    "*": frozenset({"class", "style", "title", "lang", "dir"}),
    "a": frozenset({"href"}),
    "img": frozenset({"src", "alt", "width", "height"}),
    "ol": frozenset({"start", "type"}),
    "li": frozenset({"value"}),
    "td": frozenset({"align", "colspan", "rowspan"}),
    "th": frozenset({"align", "colspan", "rowspan", "scope"}),
    "col": frozenset({"span"}),
    "colgroup": frozenset({"span"}),
    "details": frozenset({"open"}),
    **{tag: frozenset(_MATHML_ATTRIBUTES) for tag in _MATHML_TAGS},
    "math": frozenset(_MATHML_ATTRIBUTES | {"xmlns"}),
}
#: CSS properties kept in ``style`` attributes: the ones deckbuild writes (the code lines'
#: ``--indent``, Temml's display, script depth and table padding) and table alignment.
STYLE_PROPERTIES = frozenset({"--indent", "display", "math-depth", "padding-left", "padding-right", "text-align"})
#: URL schemes kept in ``href`` and ``src``; a relative URL (a media file's name) is kept.
URL_SCHEMES = frozenset({"http", "https", "mailto"})

_CLEANER = nh3.Cleaner(
    tags=set(TAGS),
    clean_content_tags={"script", "style"},
    attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
    generic_attribute_prefixes={"data-"},
    url_schemes=set(URL_SCHEMES),
    filter_style_properties=set(STYLE_PROPERTIES),
    link_rel=None,
    strip_comments=True,
)


# nh3's output quotes every attribute value with ``"``, so a tag ends at the first ``>``
# outside quotes; the text between tags holds no ``<``.
_TAG = re.compile(r'(<(?:[^>"]|"[^"]*")*>)')
_TAG_NAME = re.compile(r"</?([A-Za-z][^\s/>]*)")
# Anki's MathJax typesets \(…\) and \[…\] in a field's text, and never looks inside these.
_MATHJAX_SKIPS = frozenset({"code", "pre", "annotation"})
_MATHJAX_DELIMITER = re.compile(r"\\(?=[()\[\]])")
#: What :func:`clean` puts between a backslash and the bracket after it in a field's text.
#: MathJax (3, as Anki and AnkiDroid run it) finds math only within one run of text, so the
#: empty element keeps ``\(`` as text, and the text shown and searched is unchanged.
NO_MATH = '<span class="db-nomath"></span>'


def _keep_delimiters_as_text(html: str) -> str:
    parts = _TAG.split(html)
    skipped = 0  # open <code>, <pre> and <annotation> elements
    for i, part in enumerate(parts):
        if i % 2:
            name = _TAG_NAME.match(part)
            if name and name.group(1).lower() in _MATHJAX_SKIPS:  # nh3 never writes them as <x/>
                skipped = max(0, skipped + (-1 if part.startswith("</") else 1))
        elif not skipped and "\\" in part:
            parts[i] = _MATHJAX_DELIMITER.sub(lambda m: "\\" + NO_MATH, part)
    return "".join(parts)


def clean(html: str) -> str:
    """Return ``html`` with everything outside the allowlist removed (a script and its text,
    an ``on...`` attribute, a ``javascript:`` URL, an unknown element's tags, comments), and
    with every TeX delimiter in its text (``\\(``, ``\\)``, ``\\[``, ``\\]`` outside
    ``<code>``, ``<pre>`` and ``<annotation>``) kept from Anki's MathJax by :data:`NO_MATH`:
    MathJax would otherwise typeset it, and its ``\\href{javascript:…}`` makes a live link.

    The result is a fixed point: ``clean(clean(x)) == clean(x)``. Raises nothing.
    """
    out = _CLEANER.clean(html)
    return _keep_delimiters_as_text(out) if "\\" in out else out


def is_clean(html: str) -> bool:
    """Return whether :func:`clean` leaves ``html`` exactly as it is (true of every field
    deckbuild writes, since each went through it)."""
    return clean(html) == html


class _StartTags(HTMLParser):
    """Every start tag of an HTML fragment, as ``(tag, attribute, value)`` items in order
    (``(tag, "", "")`` for the tag itself), parsed by the standard library."""

    def __init__(self, html: str):
        super().__init__()
        self.items: list[tuple[str, str, str]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.items.append((tag, "", ""))
        for name, value in attrs:
            if name == "style":  # nh3 rewrites a style in its own spacing: compare its properties
                for declaration in (value or "").split(";"):
                    prop = declaration.split(":", 1)[0].strip().lower()
                    if prop:
                        self.items.append((tag, "style", prop))
            else:
                self.items.append((tag, name, value or ""))

    handle_startendtag = handle_starttag


def first_removed(html: str) -> tuple[str, str] | None:
    """Return what :func:`clean` would remove first from ``html``, as ``(needle, message)``:
    ``needle`` is text to look for in the card's source (``"<script"``, ``"onerror"``, a URL
    scheme) and ``message`` says what it is and what to write instead. ``None`` if nothing
    would be removed but comments (which Anki never shows).
    """
    kept = collections.Counter(_StartTags(clean(html)).items)
    for item in _StartTags(html).items:
        if kept[item] > 0:
            kept[item] -= 1
            continue
        tag, name, value = item
        if not name:
            return f"<{tag}", f"<{tag}> is not HTML a card may hold: to show it as text, write it in backticks or as &lt;{tag}&gt;"
        if name == "style":
            allowed = ", ".join(sorted(STYLE_PROPERTIES))
            return value, f"a card's style attribute may set only {allowed}, not '{value}'"
        if name in ("href", "src"):
            scheme = re.match(r"\s*([A-Za-z][A-Za-z0-9+.-]*):", value)
            shown = scheme.group(1) + ":" if scheme else value
            return shown, f"a link in a card may use only {', '.join(s + ':' for s in sorted(URL_SCHEMES))} or a media file, not '{shown}'"
        return name, f"the attribute '{name}' of <{tag}> is not allowed in a card: Anki runs a card's event handlers and scripts each time it is shown"
    return None
