"""The add-on's Anki-free parts: note type check, snippet extraction, bridge
messages, config, and the HTML a run puts into the card."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from addon import core  # noqa: E402


def notetype(id=1, name="deckbuild Code", fields=("Id", "Question", "Code", "CodeHtml", "Output")):
    return {"id": id, "name": name, "flds": [{"name": f} for f in fields]}


@pytest.mark.parametrize(
    "nt, ours",
    [
        (notetype(id=1738400004, name="renamed by the user"), True),
        (notetype(id=1738400004, name="x", fields=()), True),
        (notetype(id=99, name="deckbuild Code"), True),  # re-id'd on import
        (notetype(id=99, name="deckbuild Code-1a2b3"), True),
        (notetype(id=99, name="deckbuild Code", fields=("Code",)), False),
        (notetype(id=99, name="My deckbuild Code"), False),
        (notetype(id=1738400001, name="deckbuild Q&A", fields=("Id", "Question", "Answer")), False),
        ({}, False),
        (None, False),
    ],
)
def test_is_code_notetype(nt, ours):
    assert core.is_code_notetype(nt) is ours


@pytest.mark.parametrize(
    "field, code",
    [
        ("print(1)", "print(1)\n"),
        ("import torch<br>x = torch.ones(2)<br>print(x &lt; 2)", "import torch\nx = torch.ones(2)\nprint(x < 2)\n"),
        ("s = &quot;&lt;b&gt;&quot;<br/>print(s &amp; 1)", 's = "<b>"\nprint(s & 1)\n'),
        ("for i in range(2):<br>&nbsp; &nbsp; print(i)", "for i in range(2):\n    print(i)\n"),
        ("<div>a = 1</div><div>print(a)</div>", "a = 1\nprint(a)\n"),
        ("x = 1<br><br>print(x)<br>", "x = 1\n\nprint(x)\n"),
    ],
)
def test_code_from_field(field, code):
    assert core.code_from_field(field) == code


@pytest.mark.parametrize(
    "message, action",
    [
        ("deckbuild:run", "run"),
        ("deckbuild:scratchpad", "scratchpad"),
        ("deckbuild:run:import os; os.system('rm -rf ~')", "ignore"),
        ("deckbuild:run\nprint(1)", "ignore"),
        ("deckbuild:run ", "ignore"),
        ("deckbuild:exec", "ignore"),
        ("ans", None),
        ("ease3", None),
        ("run", None),
    ],
)
def test_action_for_message_accepts_only_the_two_bare_names(message, action):
    assert core.action_for_message(message) == action


def test_settings_defaults_match_config_json():
    import json

    shipped = json.loads((Path(core.__file__).parent / "config.json").read_text())
    assert shipped == core.DEFAULT_CONFIG
    assert core.settings_from_config(None) == core.Settings("", 30.0, 100000, True)


def test_settings_replace_bad_values_with_defaults():
    conf = {"python": 3, "timeout_seconds": "5", "max_output_bytes": -1, "ask_before_running": "no"}
    assert core.settings_from_config(conf) == core.Settings("", 30.0, 100000, True)


def test_settings_keep_good_values():
    conf = {"python": " /opt/venv/bin/python ", "timeout_seconds": 2.5, "max_output_bytes": 10, "ask_before_running": False}
    assert core.settings_from_config(conf) == core.Settings("/opt/venv/bin/python", 2.5, 10, False)


@dataclass(frozen=True)
class FakeResult:
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    error_line: int | None = None
    timed_out: bool = False
    truncated: bool = False
    seconds: float = 0.0123
    python: str = "3.11.7"
    torch: str | None = "2.13.0+cpu"


SETTINGS = core.Settings("", 30.0, 100000, True)


def test_result_html_tells_stdout_stderr_and_exception_apart():
    result = FakeResult(
        stdout="tensor([3, 5, 7])\n",
        stderr="careful <here>\n",
        error="Traceback...\nZeroDivisionError: division by zero\n",
        error_line=3,
    )
    assert core.result_html(result, SETTINGS, "/venv/bin/python") == (
        '<div class="deckbuild-label">stdout</div>'
        '<pre class="deckbuild-stdout">tensor([3, 5, 7])\n</pre>'
        '<div class="deckbuild-label">stderr</div>'
        '<pre class="deckbuild-stderr">careful &lt;here&gt;\n</pre>'
        '<div class="deckbuild-label">Exception (line 3)</div>'
        '<pre class="deckbuild-error">Traceback...\nZeroDivisionError: division by zero\n</pre>'
        '<div class="deckbuild-meta">ran in 0.012 s · Python 3.11.7 (/venv/bin/python) · torch 2.13.0+cpu</div>'
    )


def test_result_html_notices_timeout_and_truncation():
    result = FakeResult(stdout="x" * 10, timed_out=True, truncated=True, torch=None)
    html = core.result_html(result, core.Settings("", 2.0, 10, True), "")
    assert html.startswith(
        '<div class="deckbuild-notice">Timed out after 2 s: the worker was stopped, '
        "and the next Run starts a fresh one.</div>"
        '<div class="deckbuild-notice">Output truncated at 10 bytes (max_output_bytes).</div>'
    )
    assert html.endswith('<div class="deckbuild-meta">ran in 0.012 s · Python 3.11.7 · no torch</div>')


def test_result_html_says_when_there_is_no_output():
    assert '<div class="deckbuild-label">No output</div>' in core.result_html(FakeResult(), SETTINGS, "")


def test_card_controls_name_the_action_only():
    html = core.card_controls_html(1234)
    assert "onclick=\"this.blur(); pycmd('deckbuild:run'); return false;\"" in html
    assert "onclick=\"this.blur(); pycmd('deckbuild:scratchpad'); return false;\"" in html
    assert 'class="deckbuild-run"' in html
    assert '<div class="deckbuild-output" data-card="1234" hidden></div>' in html


def test_show_output_js_targets_one_card_and_escapes():
    js = core.show_output_js(42, "<pre>a\"</script>'</pre>")
    assert 'document.querySelector(".deckbuild-output[data-card=\\"42\\"]")' in js
    assert 'el.innerHTML = "<pre>a\\"</script>\'</pre>"' in js


def test_no_python_message_says_how_to_fix_it():
    assert '"python"' in core.NO_PYTHON_TEXT and ".venv/bin/python" in core.NO_PYTHON_TEXT


def test_preview_cuts_long_code():
    assert core.preview("a\nb\nc\n", lines=2) == "a\nb\n… (1 more line)"
    assert core.preview("a\nb\nc\n", lines=1) == "a\n… (2 more lines)"
