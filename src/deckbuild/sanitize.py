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
from html import escape
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



# nh3's output quotes every attribute value with ``"``, so a tag ends at the first ``>``
# outside quotes; the text between tags holds no ``<``.
_TAG = re.compile(r'(<(?:[^>"]|"[^"]*")*>)')
_TAG_NAME = re.compile(r"</?([A-Za-z][^\s/>]*)")
# HTML's void elements: written without an end tag (nh3 writes only the allowlist's).
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"})
# Anki's MathJax typesets \(…\) and \[…\] in a field's text, and never looks inside these.
_MATHJAX_SKIPS = frozenset({"code", "pre", "annotation"})
_MATHJAX_DELIMITER = re.compile(r"\\(?=[()\[\]])")
#: What :func:`clean` puts between a backslash and the bracket after it in a field's text.
#: MathJax (3, as Anki and AnkiDroid run it) finds math only within one run of text, so the
#: empty element keeps ``\(`` as text, and the text shown and searched is unchanged.
NO_MATH = '<span class="db-nomath"></span>'
#: The same, in text that is a MathML element's own child (not within a token element
#: such as ``<mi>``): there an HTML ``<span>`` would end the ``<math>`` element (the HTML
#: parser's rule for foreign content), and the text after it would join the text outside.
NO_MATH_IN_MATHML = "<mrow></mrow>"
# MathML's text integration points (HTML's tree construction): HTML is parsed within them.
_MATHML_TEXT = frozenset({"mi", "mo", "mn", "ms", "mtext"})
# MathJax looks inside an element with one of its "process" classes even where it skips the
# tag (<code>), and skips one with an "ignore" class: neither is the author's to set.
_MATHJAX_CLASS = re.compile(r"(?i)^(?:mathjax|tex2jax)_")


def _keep_delimiters_as_text(html: str) -> str:
    parts = _TAG.split(html)
    stack: list[str] = []  # the open elements, innermost last (nh3 writes every end tag)
    skipped = 0  # how many of them are <code>, <pre> or <annotation>
    for i, part in enumerate(parts):
        if i % 2:
            name = _TAG_NAME.match(part)
            tag = name.group(1).lower() if name else ""
            if not tag or tag in _VOID:
                continue
            if part.startswith("</"):
                if stack and stack[-1] == tag:
                    skipped -= stack.pop() in _MATHJAX_SKIPS
            else:
                stack.append(tag)
                skipped += tag in _MATHJAX_SKIPS
        elif not skipped and "\\" in part:
            mathml = bool(stack) and stack[-1] in _MATHML_TAGS and stack[-1] not in _MATHML_TEXT
            mark = NO_MATH_IN_MATHML if mathml else NO_MATH
            parts[i] = _MATHJAX_DELIMITER.sub(lambda m: "\\" + mark, part)
    return "".join(parts)


def _attribute(tag: str, name: str, value: str) -> str | None:
    if name == "class":
        kept = [c for c in value.split() if not _MATHJAX_CLASS.match(c)]
        return " ".join(kept) if kept else None
    return value


_CLEANER = nh3.Cleaner(
    tags=set(TAGS),
    clean_content_tags={"script", "style"},
    attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
    generic_attribute_prefixes={"data-"},
    url_schemes=set(URL_SCHEMES),
    filter_style_properties=set(STYLE_PROPERTIES),
    link_rel=None,
    strip_comments=True,
    attribute_filter=_attribute,
)


#: The deepest nesting of elements :func:`clean` parses (the corpus's deepest field, a
#: formula's MathML, is 11 deep). nh3's time grows with the square of the depth: 100,000
#: nested ``<div>`` take about two minutes, so deeper HTML is kept as text instead.
MAX_DEPTH = 256
_ANY_TAG = re.compile(r"<(/?)([A-Za-z][^\s/>]*)")


def nesting_depth(html: str) -> int:
    """Return how deep the elements of ``html`` nest, at most: every start tag but a void
    element's (HTML's ``<br>``, ``<img>`` ...) opens one and every end tag closes one, so
    an end tag the author left out (``<p>``, ``<li>``) counts as still open. Linear time."""
    depth = deepest = 0
    for match in _ANY_TAG.finditer(html):
        if match.group(1):
            depth = max(0, depth - 1)
        elif match.group(2).lower() not in _VOID:
            depth += 1
            deepest = max(deepest, depth)
    return deepest


def _too_deep(html: str) -> bool:
    return html.count("<") > MAX_DEPTH and nesting_depth(html) > MAX_DEPTH


def clean(html: str) -> str:
    """Return ``html`` with everything outside the allowlist removed (a script and its text,
    an ``on...`` attribute, a ``javascript:`` URL, an unknown element's tags, comments,
    MathJax's ``mathjax_process`` class and its kin), and with every TeX delimiter in its
    text (``\\(``, ``\\)``, ``\\[``, ``\\]`` outside ``<code>``, ``<pre>`` and
    ``<annotation>``) kept from Anki's MathJax by :data:`NO_MATH` (:data:`NO_MATH_IN_MATHML`
    within MathML): MathJax would otherwise typeset it, and its ``\\href{javascript:…}``
    makes a live link. HTML nested deeper than :data:`MAX_DEPTH` (:func:`nesting_depth`) is
    kept as text, escaped; a lone surrogate (which UTF-8 cannot hold) becomes U+FFFD.

    The result is a fixed point: ``clean(clean(x)) == clean(x)``. Raises nothing.
    """
    html = _SURROGATE.sub("\ufffd", html)
    out = escape(html, quote=False) if _too_deep(html) else _CLEANER.clean(html)
    return _keep_delimiters_as_text(out) if "\\" in out else out


_SURROGATE = re.compile("[\ud800-\udfff]")


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


# Where HTML5 (and so nh3) ends a comment and Python's HTMLParser does not: at once in
# ``<!-->`` and ``<!--->``, and at ``--!>``. Spelt as ``-->`` they end it in both (or, for the
# first two, start none: their comment is empty).
_COMMENT_ENDS = re.compile(r"<!--->|<!-->|--!>")


def first_removed(html: str) -> tuple[str, str] | None:
    """Return what :func:`clean` would remove first from ``html``, as ``(needle, message)``:
    ``needle`` is text to look for in the card's source (``"<script"``, ``"onerror"``, a URL
    scheme) and ``message`` says what it is and what to write instead. ``None`` if nothing
    would be removed but comments (which Anki never shows).
    """
    if _too_deep(html):
        return "<", f"HTML nested deeper than {MAX_DEPTH} elements is not HTML a card may hold"
    kept = collections.Counter(_StartTags(clean(html)).items)
    for item in _StartTags(_COMMENT_ENDS.sub("-->", html)).items:
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
            # a URL's scheme as browsers read it: tabs and newlines within it are dropped (WHATWG URL)
            scheme = re.match(r"\s*([A-Za-z][A-Za-z0-9+.-]*):", re.sub(r"[\t\n\r]", "", value))
            shown = scheme.group(1) + ":" if scheme else value
            return shown, f"a link in a card may use only {', '.join(s + ':' for s in sorted(URL_SCHEMES))} or a media file, not '{shown}'"
        if name == "class":
            mathjax = next(c for c in value.split() if _MATHJAX_CLASS.match(c))
            return mathjax, f"the class '{mathjax}' is MathJax's own (it tells Anki's MathJax where to read TeX): a card may not set it"
        return name, f"the attribute '{name}' of <{tag}> is not allowed in a card: Anki runs a card's event handlers and scripts each time it is shown"
    return None
