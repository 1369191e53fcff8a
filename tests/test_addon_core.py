"""The add-on's Anki-free parts: note type check, snippet extraction, the code
block the card shows, and the HTML a run puts into the card."""

from __future__ import annotations

import html
import re
import sys
from html.parser import HTMLParser
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from addon import core  # noqa: E402
from addon.policy import Settings  # noqa: E402
from deckbuild.render import highlight_code  # noqa: E402


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
        ("print(1)", "print(1)"),
        ("print(1)\n", "print(1)\n"),
        ("import torch<br>x = torch.ones(2)<br>print(x &lt; 2)", "import torch\nx = torch.ones(2)\nprint(x < 2)"),
        ("s = &quot;&lt;b&gt;&quot;<br/>print(s &amp; 1)", 's = "<b>"\nprint(s & 1)'),
        ("<div>a = 1</div><div>print(a)</div>", "a = 1\nprint(a)"),
        # the build's bytes stay: tabs, non-breaking spaces, leading and trailing blank lines
        ("\n\nx = 'a\xa0b'\tif 1 else 0\nprint(x)\n\n", "\n\nx = 'a\xa0b'\tif 1 else 0\nprint(x)\n\n"),
        ("for i in range(2):<br>&nbsp; &nbsp; print(i)", "for i in range(2):\n\xa0 \xa0 print(i)"),
    ],
)
def test_code_from_field(field, code):
    assert core.code_from_field(field) == code


class _Text(HTMLParser):
    """What a browser's textContent gives for our <pre> (the first newline
    after <pre> dropped, as HTML parsing does), and the styles or token
    classes inside it."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.pre, self.inside, self.first, self.styles = "", False, False, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "pre" and "deckbuild-shown" in (attrs.get("class") or "").split():
            self.inside, self.first = True, True
        elif self.inside and ("style" in attrs or "class" in attrs):
            self.styles.append(attrs.get("style") or attrs["class"])

    def handle_endtag(self, tag):
        if tag == "pre":
            self.inside = False

    def handle_data(self, data):
        if self.inside:
            if self.first and data.startswith("\n"):
                data = data[1:]
            self.first = False
            self.pre += data


def shown_text(fragment):
    parser = _Text()
    parser.feed(fragment)
    return parser


TEMPLATE = '<div class="db-question">Q?</div><div class="deckbuild-code">{}</div>'
TRICKY = "\n\nimport torch\nx = 'a\xa0b'\t# tab before this comment\nprint(repr(x))\nraise ValueError(x)\n"
STYLE = re.compile(r"(color:#[0-9a-fA-F]{3,6})?(;?font-weight:bold)?(;?font-style:italic)?|[a-z][a-z0-9]{0,3}")


@pytest.mark.parametrize("code", [TRICKY, "print(1)\n", "print(1)", "x = 1\n\n\nprint(x)\n\n"])
def test_show_code_keeps_the_build_colours_and_shows_exactly_the_code(code):
    code_html = highlight_code(code)
    shown = core.show_code(TEMPLATE.format(code_html), code_html, html.escape(code, quote=False))
    assert shown.agrees and shown.code == code
    seen = shown_text(shown.text)
    assert seen.pre == code  # byte for byte, so traceback line N is displayed line N
    assert seen.styles and all(STYLE.fullmatch(s) for s in seen.styles)
    assert code_html not in shown.text and core.MISMATCH_TEXT not in shown.text


def test_show_code_shows_the_code_field_when_codehtml_shows_another_program():
    code = "import os\nos.system('echo payload')\nprint('hello')\n"
    code_html = highlight_code("print('hello')\n")
    shown = core.show_code(TEMPLATE.format(code_html), code_html, html.escape(code))
    assert not shown.agrees and shown.code == code
    assert shown_text(shown.text).pre == code
    assert core.MISMATCH_TEXT in shown.text and code_html not in shown.text


def test_show_code_never_copies_hidden_markup():
    # CodeHtml's text equals the Code field, but part of it is hidden: the
    # add-on's block shows every character, and no style but colours survives.
    code = "print('hello')\nimport os; os.remove('x')\n"
    code_html = (
        "<pre><span style=\"color: #007020\">print</span>('hello')\n"
        "<span style=\"display:none; color: #fff\">import os; os.remove('x')\n</span></pre>"
    )
    shown = core.show_code(TEMPLATE.format(code_html), code_html, html.escape(code))
    assert shown.agrees and shown_text(shown.text).pre == code
    assert "display" not in shown.text


def test_show_code_drops_a_script_in_codehtml():
    code = "print(1)\n"
    code_html = "<pre>print(1)\n</pre><script>pycmd('deckbuild:run')</script>"
    shown = core.show_code(TEMPLATE.format(code_html), code_html, code)
    assert not shown.agrees and "<script" not in shown.text and shown_text(shown.text).pre == code


@pytest.mark.parametrize("code_html", ["", "<pre>print(1)</pre>"])
def test_show_code_appends_the_block_when_the_template_does_not_show_codehtml(code_html):
    shown = core.show_code("<p>custom template</p>", code_html, "print(1)\n")
    assert shown.text.startswith("<p>custom template</p>")
    assert shown_text(shown.text).pre == "print(1)\n"


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
    figures: tuple = ()


SETTINGS = Settings("", 30.0, 100000, True)


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
    html = core.result_html(result, Settings("", 2.0, 10, True), "")
    assert html.startswith(
        '<div class="deckbuild-notice">Timed out after 2 s: the worker was stopped, '
        "and the next Run starts a fresh one.</div>"
        '<div class="deckbuild-notice">Output truncated at 10 bytes (max_output_bytes).</div>'
    )
    assert html.endswith('<div class="deckbuild-meta">ran in 0.012 s · Python 3.11.7 · no torch</div>')


def test_result_html_says_when_there_is_no_output():
    assert '<div class="deckbuild-label">No output</div>' in core.result_html(FakeResult(), SETTINGS, "")


def test_result_html_shows_figures_after_stdout_as_data_urls_day_and_night():
    from deckbuild.runner import Figure

    figure = Figure("svg", b"<svg>day</svg>", b"<svg>night</svg>", "Figure 1: a <b> title", 400, 250)
    result = FakeResult(stdout="hi\n", stderr="warn\n", figures=(figure,))
    html = core.result_html(result, SETTINGS, "")
    day = '<img class="deckbuild-figure deckbuild-day" src="data:image/svg+xml;base64,PHN2Zz5kYXk8L3N2Zz4=" alt="Figure 1: a &lt;b&gt; title" width="400" height="250">'
    night = '<img class="deckbuild-figure deckbuild-night" src="data:image/svg+xml;base64,PHN2Zz5uaWdodDwvc3ZnPg==" alt="Figure 1: a &lt;b&gt; title" width="400" height="250">'
    assert html.index("deckbuild-stdout") < html.index(day) < html.index(night) < html.index("deckbuild-stderr")
    assert core.one_variant(html, night=False).count("<img") == 1 and day in core.one_variant(html, night=False)
    assert night in core.one_variant(html, night=True) and day not in core.one_variant(html, night=True)
    only = core.result_html(FakeResult(figures=(figure,)), SETTINGS, "")
    assert only.startswith('<div class="deckbuild-label">Figures</div>') and "No output" not in only


def test_card_gets_an_output_box_and_no_control():
    html = core.card_controls_html(1234, "the bar below")
    assert '<div class="deckbuild-output" data-card="1234" hidden></div>' in html
    assert "press X or Run code in the bar below" in html
    assert "pycmd" not in html and "<button" not in html and "onclick" not in html


def test_bottom_bar_buttons_send_the_two_actions():
    js = core.bottom_bar_js(True)
    assert '"deckbuild:run"' in js and '"deckbuild:scratchpad"' in js and "var show = true" in js
    assert "var show = false" in core.bottom_bar_js(False)


def test_show_output_js_targets_one_card_and_escapes():
    js = core.show_output_js(42, "<pre>a\"</script>'</pre>")
    assert 'document.querySelector(".deckbuild-output[data-card=\\"42\\"]")' in js
    assert 'el.innerHTML = "<pre>a\\"</script>\'</pre>"' in js


def test_no_python_message_says_how_to_fix_it():
    assert '"python"' in core.NO_PYTHON_TEXT and ".venv/bin/python" in core.NO_PYTHON_TEXT
