"""The Anki-free half of the add-on: which notes are ours, how to get a snippet
back from its field, what the card shows, and what the bridge accepts.

Nothing here imports aqt, so it is tested without Anki. Python 3.9 syntax
(the oldest Python that the supported Anki versions bundle).
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

CODE_NOTETYPE_ID = 1738400004
CODE_NOTETYPE_NAME = "deckbuild Code"

# The bridge messages. They only name an action: the code always comes from
# the note of the card on screen, never from the message.
MESSAGE_PREFIX = "deckbuild:"
RUN_MESSAGE = "deckbuild:run"
SCRATCHPAD_MESSAGE = "deckbuild:scratchpad"
ACTIONS = {RUN_MESSAGE: "run", SCRATCHPAD_MESSAGE: "scratchpad"}

# card_will_show kinds that get the buttons: reviewer and previewer only.
CARD_KINDS = ("reviewQuestion", "reviewAnswer", "previewQuestion", "previewAnswer")

DEFAULT_CONFIG: dict[str, Any] = {
    "python": "",
    "timeout_seconds": 30,
    "max_output_bytes": 100000,
    "ask_before_running": True,
}

NO_PYTHON_TEXT = (
    "No Python with torch was found, so this snippet cannot run here. "
    "Set \"python\" in Tools \u2192 Add-ons \u2192 deckbuild \u2192 Config to an "
    "interpreter that has torch, for example the project's "
    ".venv/bin/python (on Windows .venv\\Scripts\\python.exe)."
)


@dataclass(frozen=True)
class Settings:
    """The add-on's config, checked: bad values fall back to the defaults."""

    python: str
    timeout_seconds: float
    max_output_bytes: int
    ask_before_running: bool


def settings_from_config(config: Mapping[str, Any] | None) -> Settings:
    """Return the Settings for an add-on config dict (None = all defaults).

    `timeout_seconds` is in seconds and `max_output_bytes` in bytes; a value
    of the wrong type or out of range is replaced by its default. Never raises.
    """
    config = config or {}

    def number(key: str, low: float, integer: bool) -> Any:
        value = config.get(key, DEFAULT_CONFIG[key])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
            value = DEFAULT_CONFIG[key]
        return int(value) if integer else float(value)

    python = config.get("python", "")
    ask = config.get("ask_before_running", True)
    return Settings(
        python=python.strip() if isinstance(python, str) else "",
        timeout_seconds=number("timeout_seconds", 0.1, integer=False),
        max_output_bytes=number("max_output_bytes", 1, integer=True),
        ask_before_running=ask if isinstance(ask, bool) else True,
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

    The field holds HTML-escaped text: line breaks become newlines, tags are
    dropped, entities are unescaped, and non-breaking spaces (which Anki's
    editor inserts) become spaces.
    """
    text = _BREAK.sub("\n", field_html)
    text = _TAG.sub("", text)
    text = html.unescape(text).replace("\xa0", " ")
    return text.replace("\r\n", "\n").strip("\n") + "\n"


def action_for_message(message: str) -> str | None:
    """Map a webview bridge message to an action.

    Returns "run" or "scratchpad" for exactly those messages, "ignore" for any
    other message with the deckbuild prefix (such as one that carries code),
    and None for messages that are not ours.
    """
    if not message.startswith(MESSAGE_PREFIX):
        return None
    return ACTIONS.get(message, "ignore")


# ---------------------------------------------------------------------------
# What the card shows

_CSS = """
.deckbuild-runbar { margin: .4em 0; text-align: left; }
.deckbuild-runbar button { font-size: .85em; padding: .2em .8em; margin: 0 .4em 0 0;
  cursor: pointer; }
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
"""

# Moves the run bar and the output box right under the highlighted snippet;
# without a .deckbuild-code block (a customised template) they stay at the end.
_PLACE_JS = """
(function () {
  var bar = document.querySelector('.deckbuild-runbar');
  var out = document.querySelector('.deckbuild-output');
  var code = document.querySelector('.deckbuild-code');
  if (bar && out && code && code.parentNode) {
    code.parentNode.insertBefore(out, code.nextSibling);
    code.parentNode.insertBefore(bar, out);
  }
})();
"""


def card_controls_html(card_id: int) -> str:
    """Return the Run / scratchpad buttons, the empty output box, their style
    and the script that places them under the snippet, for one card."""
    return (
        f"<style>{_CSS}</style>"
        '<div class="deckbuild-runbar">'
        '<button type="button" class="deckbuild-run" '
        f"onclick=\"this.blur(); pycmd('{RUN_MESSAGE}'); return false;\">&#9654; Run</button>"
        '<button type="button" class="deckbuild-scratchpad" '
        f"onclick=\"this.blur(); pycmd('{SCRATCHPAD_MESSAGE}'); return false;\">"
        "Open in scratchpad</button></div>"
        f'<div class="deckbuild-output" data-card="{int(card_id)}" hidden></div>'
        f"<script>{_PLACE_JS}</script>"
    )


@dataclass(frozen=True)
class Section:
    """One labelled block of a run's result: kind is stdout, stderr or error."""

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
    """Return the HTML for the card's .deckbuild-output box after a run."""
    parts = [
        f'<div class="deckbuild-notice">{html.escape(n)}</div>'
        for n in result_notices(result, settings)
    ]
    for s in result_sections(result):
        parts.append(f'<div class="deckbuild-label">{html.escape(s.label)}</div>')
        parts.append(f'<pre class="deckbuild-{s.kind}">{html.escape(s.text)}</pre>')
    if not result_sections(result) and not result.timed_out:
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


def preview(code: str, lines: int = 12) -> str:
    """Return the first lines of a snippet, for the confirmation dialog."""
    rows: Sequence[str] = code.splitlines()
    shown = "\n".join(rows[:lines])
    if len(rows) > lines:
        more = len(rows) - lines
        shown += f"\n\u2026 ({more} more line{'s' if more > 1 else ''})"
    return shown
