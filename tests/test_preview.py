"""``deckbuild preview``: a real server, a real browser engine (Qt WebEngine) and real Anki.

One preview process serves a small corpus for the whole module. The page is driven in
Chromium through ``tests/webengine/drive_page.py``; the HTML it serves is compared with
what Anki renders after importing the package ``deckbuild build`` writes.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from deckbuild.notetypes import MATH_FONT
from tests.conftest import REPO, import_package, run_cli

pytest.importorskip("PyQt6.QtWebEngineWidgets")

CARDS = """\
deck: Preview
type: qa
tags: [demo]
cards:
  - id: pv-qa
    q: What is the derivative of $x^2$?
    a: |
      It is $2x$.

      The first draft.
  - id: pv-probe
    type: probe
    q: Why centre the data?
    a: So the mean is zero.
    follow_up: What does it change for PCA?
    follow_up_a: The first component then follows variance, not the mean.
  - id: pv-fact
    type: fact
    q: The value of $\\sum_{k=1}^{4} k$?
    a: "10"
    why: One plus two plus three plus four.
  - id: pv-code
    type: code
    q: What does this print?
    code: |
      print(1 + 1)
"""
EPOCH = "1700000000"  # SOURCE_DATE_EPOCH for the preview and the builds: the same package manifest
KEYS = ["pv-qa/0", "pv-probe/0", "pv-probe/1", "pv-fact/0", "pv-code/0"]
BROKEN_LINE = 8  # "It is $2x$." in CARDS, 1-based; the formula starts at column 13


def _lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


class Preview:
    """A ``deckbuild preview`` process on a free port."""

    def __init__(self, root: Path):
        command = [sys.executable, "-m", "deckbuild", "preview", str(root / "cards"), "--port", "0", "--cache-dir", str(root / "cache")]
        env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
        self.process = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: queue.Queue = queue.Queue()
        threading.Thread(target=_lines, args=(self.process.stdout, self.out), daemon=True).start()
        line = self.out.get(timeout=120)
        match = re.search(r"serving (http://127\.0\.0\.1:(\d+)/)", line or "")
        assert match, (line, self.process.stderr.read() if self.process.poll() is not None else "")
        self.url, self.port = match[1], int(match[2])

    def stop(self) -> tuple[int, str, str]:
        """Send Ctrl-C (SIGINT); return the exit status, the rest of stdout and stderr."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=15)
        rest = []
        while (line := self.out.get(timeout=5)) is not None:
            rest.append(line)
        return code, "".join(rest), self.process.stderr.read()


class Page:
    """The preview page in Qt WebEngine; :meth:`js` evaluates an expression there."""

    def __init__(self, url: str):
        driver = REPO / "tests" / "webengine" / "drive_page.py"
        self.process = subprocess.Popen([sys.executable, str(driver), url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.out: queue.Queue = queue.Queue()
        threading.Thread(target=_lines, args=(self.process.stdout, self.out), daemon=True).start()
        assert self._next(120) == {"ready": True}

    def _next(self, timeout: float):
        while True:
            line = self.out.get(timeout=timeout)
            assert line is not None, "the browser quit"
            if line.startswith("{"):
                return json.loads(line)

    def js(self, expression: str):
        self.process.stdin.write(json.dumps(expression) + "\n")
        self.process.stdin.flush()
        return self._next(30)["result"]

    def wait(self, expression: str, timeout: float) -> float:
        """Poll ``expression`` until it is true; return the seconds it took (fail after ``timeout``)."""
        started = time.perf_counter()
        while not self.js(expression):
            if time.perf_counter() - started > timeout:
                pytest.fail(f"not true within {timeout} s: {expression}")
            time.sleep(0.03)
        return time.perf_counter() - started

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("preview")
    (root / "cards").mkdir()
    (root / "cards" / "a.yaml").write_text(CARDS, encoding="utf-8")
    preview = Preview(root)
    yield root, preview
    if preview.process.poll() is None:
        preview.stop()


def _state(preview: Preview) -> dict:
    with urllib.request.urlopen(preview.url + "api/state", timeout=30) as response:
        return json.load(response)


def test_each_side_is_what_anki_shows_after_importing_the_built_package(served, tmp_path, collection):
    root, preview = served
    state = _state(preview)
    shown = {(c["id"], c["ord"]): c for c in state["cards"]}
    assert run_cli("build", root / "cards", "--out", tmp_path / "dist", "--no-run", "--cache-dir", tmp_path / "cache", "--quiet") == 0
    import_package(collection, tmp_path / "dist" / "preview.apkg")
    notetypes = set()
    for cid in collection.find_cards(""):
        card = collection.get_card(cid)
        mine = shown.pop((card.note()["Id"], card.ord))
        css = state["css"][mine["notetype"]]  # the page puts it in a <style> before each side, as Anki does
        assert f"<style>{css}</style>{mine['question']}" == card.question()
        assert f"<style>{css}</style>{mine['answer']}" == card.answer()
        assert mine["notetype"] == card.note_type()["name"]
        notetypes.add(mine["notetype"])
    assert shown == {}
    assert notetypes == {"deckbuild Q&A", "deckbuild Probe", "deckbuild Fact", "deckbuild Code"}


def test_media_is_served_from_the_builds_media_only(served, tmp_path, monkeypatch):
    root, preview = served
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    assert run_cli("build", root / "cards", "--out", tmp_path / "dist", "--no-run", "--quiet") == 0
    with zipfile.ZipFile(tmp_path / "dist" / "preview.apkg") as package:
        names = sorted(json.loads(package.read("media")).values())  # the manifest and the fonts
    assert MATH_FONT.name in names and any(n.startswith("_deckbuild-manifest-") for n in names)

    def status(path: str) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", preview.port, timeout=30)
        connection.request("GET", path)  # sent as written: nothing normalises the dots
        code = connection.getresponse().status
        connection.close()
        return code

    for name in names:
        assert status(f"/media/{name}") == 200, name
    with urllib.request.urlopen(f"{preview.url}media/{MATH_FONT.name}", timeout=30) as response:
        assert response.read() == MATH_FONT.data
    for path in (
        "/media/../collection.anki2",
        "/media/..%2Fcollection.anki2",
        "/media/../../../../etc/passwd",
        "/media/%2e%2e/%2e%2e/etc/passwd",
        "/media//etc/passwd",
        "/media/%2Fetc%2Fpasswd",
        f"/media/{root}/cards/a.yaml",
        "/../etc/passwd",
        "/media/",
        "/media/..",
    ):
        assert status(path) == 404, path


def test_page_in_chromium_lists_cards_switches_modes_and_updates_live(served):
    root, preview = served
    source = root / "cards" / "a.yaml"
    page = Page(preview.url)
    try:
        page.wait("document.querySelectorAll('.card-item').length === 5", 30)
        assert page.js("Array.from(document.querySelectorAll('.card-item')).map(e => e.dataset.key)") == KEYS
        # Search by text, by tag, by id.
        search = "(q => { const s = document.getElementById('search'); s.value = q; s.dispatchEvent(new Event('input')); return Array.from(document.querySelectorAll('.card-item')).map(e => e.dataset.key); })"
        assert page.js(f"{search}('centre')") == ["pv-probe/0", "pv-probe/1"]
        assert page.js(f"{search}('variance')") == ["pv-probe/1"]
        assert page.js(f"{search}('demo')") == KEYS
        assert page.js(f"{search}('pv-fact')") == ["pv-fact/0"]
        assert page.js("document.querySelector('.card-item.selected').dataset.key") == "pv-fact/0"  # the first match is shown
        assert page.js(f"{search}('')") == KEYS

        page.js("document.querySelector('[data-key=\"pv-qa/0\"]').click()")
        front, back = "document.getElementById('front').contentDocument", "document.getElementById('back').contentDocument"
        page.wait(f"{back}.body.textContent.includes('The first draft.')", 10)
        assert page.js(f"{front}.querySelectorAll('math').length") == 1
        # The shipped math font, declared in the note type CSS, loads from the build's media.
        page.wait(f"Array.from({front}.fonts).some(f => f.family.includes('Latin Modern Math') && f.status === 'loaded')", 10)
        assert page.js(f"{front}.body.className") == "card card1"
        assert page.js(f"getComputedStyle({front}.body).fontSize") == "20px"  # the note type CSS applies
        assert page.js("getComputedStyle(document.body).fontSize") == "14px"  # and does not leak into the page

        page.js("document.getElementById('night').click()")
        page.wait(f"{back}.body.classList.contains('nightMode')", 10)
        assert page.js(f"{back}.body.className") == "card card1 nightMode night_mode"
        assert page.js(f"getComputedStyle({back}.body).backgroundColor") == "rgb(31, 31, 31)"
        page.js("document.getElementById('phone').click()")
        page.wait(f"{front}.body.classList.contains('mobile')", 10)
        assert page.js(f"{front}.body.className") == "card card1 mobile android nightMode night_mode"
        assert page.js("document.getElementById('front').getBoundingClientRect().width") == 360
        assert page.js(f"getComputedStyle({front}.body).fontSize") == "17px"
        page.js("document.querySelector('[data-key=\"pv-probe/1\"]').click()")
        page.wait(f"{front}.body.className === 'card card2 mobile android nightMode night_mode'", 10)
        assert "What does it change for PCA?" in page.js(f"{front}.body.textContent")
        page.js("document.querySelector('[data-key=\"pv-qa/0\"]').click()")

        # A save shows within 2 s.
        source.write_text(CARDS.replace("The first draft.", "The second draft."), encoding="utf-8")
        assert page.wait(f"{back}.body.textContent.includes('The second draft.')", 2.0) < 2.0

        # A broken formula: its diagnostic in the page, the last good cards still there.
        lines = CARDS.replace("The first draft.", "The second draft.").split("\n")
        assert lines[BROKEN_LINE - 1] == "      It is $2x$."
        lines[BROKEN_LINE - 1] = "      It is $\\frac{2x}{$."
        source.write_text("\n".join(lines), encoding="utf-8")
        page.wait("!document.getElementById('diagnostics').hidden", 5)
        shown = page.js("document.getElementById('diagnostics').textContent")
        assert re.fullmatch(rf".*a\.yaml:{BROKEN_LINE}:13: error: bad LaTeX in \$\\frac\{{2x\}}\{{\$: .*", shown), shown
        assert page.js("document.querySelectorAll('.card-item').length") == 5
        assert page.js(f"{back}.body.textContent.includes('The second draft.')")

        # Fixed: the error is gone.
        source.write_text(CARDS, encoding="utf-8")
        page.wait("document.getElementById('diagnostics').hidden", 5)
        page.wait(f"{back}.body.textContent.includes('The first draft.')", 5)
    finally:
        page.close()


def test_code_cards_are_not_run_by_the_preview(served):
    _, preview = served
    (code,) = [c for c in _state(preview)["cards"] if c["id"] == "pv-code"]
    assert code["not_run"] is True
    assert "<pre" not in code["answer"].split('class="deckbuild-baked"')[1]


def test_ctrl_c_stops_cleanly(served):
    _, preview = served
    code, out, err = preview.stop()
    assert code == 0, err
    assert out.strip().endswith("deckbuild preview: stopped")
    assert "Traceback" not in err and "ERROR" not in err, err


def test_a_port_in_use_is_one_clear_error(project, capsys):
    cards = project({"a.yaml": textwrap.dedent(CARDS)})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run_cli("preview", cards, "--port", port) == 1
    err = capsys.readouterr().err
    assert err == f"deckbuild: preview: error: port {port} on 127.0.0.1 is in use; choose another with --port\n"


def test_without_the_extra_the_error_names_it(project, capsys, monkeypatch):
    cards = project({"a.yaml": CARDS})
    monkeypatch.setitem(sys.modules, "watchfiles", None)  # import watchfiles raises ImportError
    assert run_cli("preview", cards) == 1
    assert capsys.readouterr().err == "deckbuild: preview needs the 'preview' extra (watchfiles missing): pip install 'deckbuild[preview]'\n"
