"""The Anki-free half of the add-on: which notes are ours, how to get a snippet
back from its field, what the card and the bottom bar show, and the HTML of a
result. What may run is decided in policy.py.

Nothing here imports aqt, so it is tested without Anki. Python 3.9 syntax
(the oldest Python that the supported Anki versions bundle).
"""

from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any, Mapping, Sequence

from .policy import Settings

CODE_NOTETYPE_ID = 1738400004
CODE_NOTETYPE_NAME = "deckbuild Code"

# card_will_show kinds that get the output box: reviewer and previewer only.
CARD_KINDS = ("reviewQuestion", "reviewAnswer", "previewQuestion", "previewAnswer")

# The keys that start a run or open the scratchpad (Qt shortcuts: real key
# presses, which a card's script cannot make).
RUN_KEY = "x"
SCRATCHPAD_KEY = "Shift+X"

NO_PYTHON_TEXT = (
    "No Python with torch was found, so this snippet cannot run here. "
    "Set \"python\" in Tools \u2192 Add-ons \u2192 deckbuild \u2192 Config to an "
    "interpreter that has torch, for example the project's "
    ".venv/bin/python (on Windows .venv\\Scripts\\python.exe)."
)


def is_code_notetype(notetype: Mapping[str, Any] | None) -> bool:
    """Tell whether an Anki note type dict is deckbuild's code note type.

    True for the fixed id 1738400004, or (Anki may give an imported note type
    a new id) a name starting with "deckbuild Code" with fields Code and Output.
    """
    if not notetype:
        return False
    if notetype.get("id") == CODE_NOTETYPE_ID:
        return True
    name = notetype.get("name")
    fields = {f.get("name") for f in notetype.get("flds", ()) if isinstance(f, Mapping)}
    return (
        isinstance(name, str)
        and name.startswith(CODE_NOTETYPE_NAME)
        and {"Code", "Output"} <= fields
    )


_BREAK = re.compile(r"<br\s*/?>|</div>\s*<div[^>]*>|</p>\s*<p[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")


def code_from_field(field_html: str) -> str:
    """Return the Python snippet stored in a note's `Code` field.

    deckbuild writes the snippet HTML-escaped with its newlines as they are;
    Anki's editor writes line breaks as <br> or <div>. So: those breaks become
    newlines, other tags are dropped, entities are unescaped, and nothing else
    changes (tabs, non-breaking spaces, leading and trailing blank lines stay),
    so the add-on runs the bytes the build ran.
    """
    text = _BREAK.sub("\n", field_html)
    return html.unescape(_TAG.sub("", text))


# ---------------------------------------------------------------------------
# What the card shows

_CSS = """
.deckbuild-shown { padding: .6em .8em; border-radius: 6px;
  overflow-x: auto; line-height: 1.35; text-align: left; font-size: .85em; white-space: pre;
  font-family: ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", monospace; margin: .4em 0; }
.deckbuild-mismatch { color: #c62828; font-size: .8em; text-align: left; margin: .3em 0; }
.nightMode .deckbuild-mismatch { color: #ff8a80; }
.deckbuild-hint { font-size: .75em; opacity: .7; text-align: left; margin: .2em 0; }
.deckbuild-output { text-align: left; margin: .4em 0 .8em; font-size: .85em; }
.deckbuild-output[hidden] { display: none; }
.deckbuild-output pre { margin: .2em 0 .5em; padding: .4em .6em; white-space: pre-wrap;
  word-break: break-word; border-left: 3px solid #5a8f29; background: rgba(127,127,127,.08);
  font-family: ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", monospace; }
.deckbuild-output .deckbuild-label { font-size: .8em; font-weight: bold; opacity: .75;
  text-transform: uppercase; letter-spacing: .05em; }
.deckbuild-output pre.deckbuild-stderr { border-left-color: #c77c02; }
.deckbuild-output pre.deckbuild-error { border-left-color: #c62828; }
.deckbuild-output .deckbuild-error { color: #c62828; white-space: pre-wrap; }
.nightMode .deckbuild-output .deckbuild-error { color: #ff8a80; }
.deckbuild-output .deckbuild-notice { color: #c77c02; font-weight: bold; margin: .3em 0; }
.deckbuild-output .deckbuild-meta { font-size: .8em; opacity: .7; }
.deckbuild-output .deckbuild-figure { display: block; max-width: 100%; height: auto; margin: .3em 0; }
.deckbuild-output .deckbuild-night { display: none; }
.nightMode .deckbuild-output .deckbuild-day { display: none; }
.nightMode .deckbuild-output .deckbuild-night { display: block; }
"""

# Moves the hint and the output box right under the snippet; without a
# .deckbuild-code block they stay at the end. Cosmetic only: nothing here
# starts a run.
_PLACE_JS = """
(function () {
  var hint = document.querySelector('.deckbuild-hint');
  var out = document.querySelector('.deckbuild-output');
  var code = document.querySelector('.deckbuild-code');
  if (hint && out && code && code.parentNode) {
    code.parentNode.insertBefore(out, code.nextSibling);
    code.parentNode.insertBefore(hint, out);
  }
})();
"""

MISMATCH_TEXT = (
    "This note's highlighted copy of the code (field CodeHtml) differs from its "
    "Code field. Shown here is the Code field: it is exactly what Run executes."
)


@dataclass(frozen=True)
class ShownCode:
    """A code card as the add-on shows it.

    text: the card's HTML with the add-on's code block in place of the
    CodeHtml field (or appended when the template does not show that field);
    code: the snippet Run executes, which is exactly the block's text
    (textContent), character for character; agrees: CodeHtml's text equals
    the Code field (up to the leading and trailing newlines Pygments strips),
    so the block keeps the build's colours; otherwise it is plain and says so.
    """

    text: str
    code: str
    agrees: bool


def show_code(card_text: str, code_html_field: str, code_field: str) -> ShownCode:
    """Put the code that Run executes into a code card's HTML.

    Both what is shown and what runs come from the Code field
    (code_from_field). The CodeHtml field only lends its colours, and only if
    its text is that same code; its markup is never shown as it is, so a
    hidden span, a script or a different program in it shows nothing and
    runs nothing. Every occurrence of the CodeHtml field in card_text is
    replaced by the block; if there is none, the block is appended.
    """
    code = code_from_field(code_field)
    runs = _styled_runs(code_html_field)
    joined = "".join(text for text, _ in runs)
    agrees = joined.strip("\n") == code.strip("\n") and bool(code.strip("\n"))
    block = code_block_html(code, runs if agrees else None)
    if not agrees:
        block = f'<div class="deckbuild-mismatch">{html.escape(MISMATCH_TEXT, quote=False)}</div>' + block
    if code_html_field.strip() and code_html_field in card_text:
        text = card_text.replace(code_html_field, block)
    else:
        text = card_text + f'<div class="deckbuild-code deckbuild-added">{block}</div>'
    return ShownCode(text, code, agrees)


def code_block_html(code: str, runs: Sequence[tuple[str, str]] | None = None) -> str:
    """Return a <pre> whose text is exactly code.

    runs: (text, span attributes) pieces whose texts joined equal code up to
    leading and trailing newlines; they colour the block (the "codehilite"
    class lets the note type's day and night code colours apply). The newline right
    after <pre> is doubled because HTML drops the first one.
    """
    lead = code[: len(code) - len(code.lstrip("\n"))]
    body = code.strip("\n")
    trail = code[len(lead) + len(body):] if body else ""
    if runs is None or not body:
        inner = html.escape(code, quote=False)
    else:
        joined = "".join(text for text, _ in runs)
        parts, skip, left = [], len(joined) - len(joined.lstrip("\n")), len(body)
        for text, style in runs:
            cut = min(skip, len(text))
            skip -= cut
            piece = text[cut:][:left]
            left -= len(piece)
            if piece:
                escaped = html.escape(piece, quote=False)
                parts.append(f"<span {style}>{escaped}</span>" if style else escaped)
        inner = html.escape(lead, quote=False) + "".join(parts) + html.escape(trail, quote=False)
    return f'<pre class="deckbuild-shown codehilite">\n{inner}</pre>'


_COLOR = re.compile(r"(?:^|;)\s*color\s*:\s*(#[0-9a-fA-F]{3}(?:[0-9a-fA-F]{3})?)\s*(?=;|$)")
_BOLD = re.compile(r"(?:^|;)\s*font-weight\s*:\s*bold\s*(?=;|$)")
_ITALIC = re.compile(r"(?:^|;)\s*font-style\s*:\s*italic\s*(?=;|$)")
_TOKEN = re.compile(r"[a-z][a-z0-9]{0,3}")  # Pygments' short token classes: k, nf, s2, cpf
_VOID = {"br", "img", "hr", "wbr", "input", "meta", "link", "source", "area", "base", "col", "embed", "param", "track"}


class _Runs(HTMLParser):
    """Text of an HTML fragment in pieces, each with the span attributes of
    its innermost styled element: its Pygments token class (deckbuild's
    CodeHtml: the note type CSS colours it by day and at night), or the
    colour, bold and italic of an inline style (older builds). Nothing else
    is kept."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.runs: list[tuple[str, str]] = []
        self._stack: list[str] = [""]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            return
        values = dict(attrs)
        style = values.get("style") or ""
        token = values.get("class") or ""
        kept = []
        color = _COLOR.search(style)
        if color:
            kept.append(f"color:{color.group(1)}")
        if _BOLD.search(style):
            kept.append("font-weight:bold")
        if _ITALIC.search(style):
            kept.append("font-style:italic")
        if _TOKEN.fullmatch(token):
            self._stack.append(f'class="{token}"')
        else:
            self._stack.append(f'style="{";".join(kept)}"' if kept else self._stack[-1])

    def handle_endtag(self, tag: str) -> None:
        if tag not in _VOID and len(self._stack) > 1:
            self._stack.pop()

    def handle_data(self, data: str) -> None:
        self.runs.append((data, self._stack[-1]))


def _styled_runs(fragment: str) -> list[tuple[str, str]]:
    parser = _Runs()
    parser.feed(fragment)
    parser.close()
    return parser.runs


def card_controls_html(card_id: int, where: str) -> str:
    """Return the empty output box for one card, a line saying how to run
    the snippet (where: "the bar below" or "the buttons below"), their style
    and the script that places them under the snippet.

    The card gets no button: a button inside the card could be clicked by
    the card's own script. The output box only shows where a result will
    appear; the add-on writes into it after a real gesture.
    """
    hint = (
        f"\u25b6 Run this code: press {RUN_KEY.upper()} or Run code in {where}; "
        f"{SCRATCHPAD_KEY} opens the scratchpad."
    )
    return (
        f"<style>{_CSS}</style>"
        f'<div class="deckbuild-hint">{html.escape(hint)}</div>'
        f'<div class="deckbuild-output" data-card="{int(card_id)}" hidden></div>'
        f"<script>{_PLACE_JS}</script>"
    )


def bottom_bar_js(show: bool) -> str:
    """Return the JS for the reviewer's bottom bar that shows (show=True) or
    hides the Run code and Scratchpad buttons beside Anki's Edit button.

    The bottom bar is Anki's own web view: a card's script cannot reach it,
    so a click there is the user's. Its buttons send "deckbuild:run" and
    "deckbuild:scratchpad".
    """
    buttons = [
        ("deckbuild-run", "\u25b6 Run code", f"Shortcut key: {RUN_KEY.upper()}", "deckbuild:run"),
        ("deckbuild-scratchpad", "Scratchpad", f"Shortcut key: {SCRATCHPAD_KEY}", "deckbuild:scratchpad"),
    ]
    return (
        "(function () {"
        f"var specs = {json.dumps(buttons)}; var show = {json.dumps(bool(show))};"
        "var cell = document.querySelector('#innertable td.stat') || document.body;"
        "specs.forEach(function (s) {"
        "  var b = document.getElementById(s[0]);"
        "  if (!b) { b = document.createElement('button'); b.id = s[0]; b.textContent = s[1];"
        "    b.title = s[2]; b.style.marginLeft = '4px';"
        "    b.addEventListener('click', (function (msg) { return function () { pycmd(msg); }; })(s[3]));"
        "    cell.appendChild(b); }"
        "  b.style.display = show ? '' : 'none';"
        "});"
        "})();"
    )


@dataclass(frozen=True)
class Section:
    """One labelled block of a run's result: kind is stdout, stderr, error, or
    figures (whose text is the <img> HTML of figures_html, not plain text)."""

    kind: str
    label: str
    text: str


def result_sections(result: Any) -> list[Section]:
    """Split a runner RunResult into its stdout, stderr and exception blocks
    (empty ones left out)."""
    sections = []
    if result.stdout:
        sections.append(Section("stdout", "stdout", result.stdout))
    if result.stderr:
        sections.append(Section("stderr", "stderr", result.stderr))
    if result.error:
        label = "Exception"
        if result.error_line:
            label += f" (line {result.error_line})"
        sections.append(Section("error", label, result.error))
    return sections


_MIME = {"svg": "image/svg+xml", "png": "image/png"}


def figures_html(result: Any) -> str:
    """Return the figures of a RunResult as ``<img>`` tags with data: URLs, a day and a
    night variant each (the CSS shows the night one under Anki's ``.nightMode``).

    Nothing is written to the collection's media folder: a Run changes no file.
    """
    parts = []
    for figure in getattr(result, "figures", ()) or ():
        mime = _MIME.get(figure.format)
        if mime is None:
            continue
        size = f'width="{int(figure.width)}" height="{int(figure.height)}"'
        alt = html.escape(figure.alt)
        for variant, data in (("day", figure.day), ("night", figure.night)):
            url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
            parts.append(f'<img class="deckbuild-figure deckbuild-{variant}" src="{url}" alt="{alt}" {size}>')
    return "".join(parts)


_OTHER_VARIANT = {
    night: re.compile(f'<img class="deckbuild-figure deckbuild-{"day" if night else "night"}" [^>]*>')
    for night in (False, True)
}


def one_variant(inner_html: str, night: bool) -> str:
    """Keep only the day (or night) figures of result_html's output, for a widget
    without CSS ``display`` (the scratchpad's QTextBrowser)."""
    return _OTHER_VARIANT[night].sub("", inner_html)


def result_notices(result: Any, settings: Settings) -> list[str]:
    """Return the warnings to show above a result: timeout, truncation."""
    notices = []
    if result.timed_out:
        notices.append(
            f"Timed out after {settings.timeout_seconds:g} s: the worker was stopped, "
            "and the next Run starts a fresh one."
        )
    if result.truncated:
        notices.append(
            f"Output truncated at {settings.max_output_bytes} bytes "
            "(max_output_bytes)."
        )
    return notices


def result_meta(result: Any, interpreter: str) -> str:
    """Return the line naming the elapsed time (seconds), interpreter and torch."""
    torch = f"torch {result.torch}" if result.torch else "no torch"
    version = f"Python {result.python}" if result.python else "Python"
    where = f"{version} ({interpreter})" if interpreter and interpreter != result.python else version
    return f"ran in {result.seconds:.3f} s \u00b7 {where} \u00b7 {torch}"


def result_html(result: Any, settings: Settings, interpreter: str) -> str:
    """Return the HTML for the card's .deckbuild-output box after a run: notices,
    stdout, the figures (see figures_html), stderr, the exception, the meta line."""
    parts = [
        f'<div class="deckbuild-notice">{html.escape(n)}</div>'
        for n in result_notices(result, settings)
    ]
    sections = result_sections(result)
    figures = figures_html(result)
    if figures:  # right after stdout
        sections.insert(int(bool(sections) and sections[0].kind == "stdout"), Section("figures", "Figures", figures))
    for s in sections:
        parts.append(f'<div class="deckbuild-label">{html.escape(s.label)}</div>')
        if s.kind == "figures":
            parts.append(f"<div>{s.text}</div>")
        else:
            parts.append(f'<pre class="deckbuild-{s.kind}">{html.escape(s.text)}</pre>')
    if not sections and not result.timed_out:
        parts.append('<div class="deckbuild-label">No output</div>')
    meta = html.escape(result_meta(result, interpreter))
    parts.append(f'<div class="deckbuild-meta">{meta}</div>')
    return "".join(parts)


def message_html(text: str, kind: str = "notice") -> str:
    """Return the HTML for a plain message in the output box (kind: notice,
    error or meta)."""
    return f'<div class="deckbuild-{kind}">{html.escape(text)}</div>'


def show_output_js(card_id: int, inner_html: str) -> str:
    """Return the JS that puts inner_html into the output box of card_id,
    if that card is still on screen."""
    selector = json.dumps(f'.deckbuild-output[data-card="{int(card_id)}"]')
    return (
        "(function () {"
        f"var el = document.querySelector({selector});"
        f"if (el) {{ el.innerHTML = {json.dumps(inner_html)}; el.hidden = false; }}"
        "})();"
    )
