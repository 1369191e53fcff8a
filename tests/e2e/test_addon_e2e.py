"""End to end in real Anki: the add-on's Run button on a code card built by deckbuild.

Builds a one-card code deck with the deckbuild CLI and the add-on package with
addon/build.py, then starts headless Anki (aqt from PyPI, Qt offscreen) in a
subprocess running anki_driver.py, which clicks through the card; a hard
timeout keeps a hung Anki from wedging pytest. One Anki session, several
assertions on what the driver recorded.

Set DECKBUILD_UPDATE_SCREENSHOT=1 to copy the screenshot it takes into
docs/images/code-card-run.png.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("anki_driver.py")
SCREENSHOT = ROOT / "docs" / "images" / "code-card-run.png"
ANKI_TIMEOUT = 420  # seconds for the whole Anki session, start to exit

pytestmark = pytest.mark.skipif(importlib.util.find_spec("aqt") is None, reason="aqt is not installed")

CARDS = """
    deck: deckbuild e2e::Code
    type: code
    cards:
      - id: e2e-column-sums
        q: What does this print?
        code: |
          import torch
          x = torch.arange(6).reshape(2, 3)
          print(x)
          print(x.sum(dim=0))
        a: The column sums of a 2×3 tensor.
"""
EXPECTED_STDOUT = "tensor([[0, 1, 2],\n        [3, 4, 5]])\ntensor([3, 5, 7])"


def run(args: list[str], cwd: Path, timeout: float) -> None:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"


def worker_processes(marker: str) -> list[str]:
    """Command lines of live processes mentioning marker (a temp path)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in text and "anki_driver.py" not in text:
            found.append(text)
    return found


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("anki-e2e")
    (tmp / "cards").mkdir()
    (tmp / "cards" / "code.yaml").write_text(textwrap.dedent(CARDS).lstrip(), encoding="utf-8")
    run([sys.executable, "-m", "deckbuild", "build", "cards", "--out", "out"], tmp, 300)
    [apkg] = [p for p in sorted((tmp / "out").glob("*.apkg")) if p.name.endswith("-code.apkg")]
    run([sys.executable, str(ROOT / "addon" / "build.py"), "--out", str(tmp / "deckbuild.ankiaddon")], tmp, 60)

    base = tmp / "anki-base"
    env = dict(os.environ)
    env.update(
        QT_QPA_PLATFORM="offscreen",
        ANKI_SINGLE_INSTANCE_KEY=f"deckbuild-e2e-{os.getpid()}-{time.time_ns()}",
        QTWEBENGINE_CHROMIUM_FLAGS="--disable-gpu --no-sandbox",
        PYTHONUNBUFFERED="1",
    )
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env["QTWEBENGINE_DISABLE_SANDBOX"] = "1"
    env.pop("ANKI_BASE", None)
    args = [
        sys.executable, str(DRIVER),
        "--base", str(base),
        "--apkg", str(apkg),
        "--addon", str(tmp / "deckbuild.ankiaddon"),
        "--python", sys.executable,
        "--results", str(tmp / "results.json"),
        "--screenshot", str(tmp / "code-card-run.png"),
        "--scratchpad_screenshot", str(tmp / "scratchpad.png"),
        "--marker", str(tmp / "pwned"),
    ]
    start = time.monotonic()
    with open(tmp / "anki.log", "w") as log:
        proc = subprocess.Popen(args, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=ANKI_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
    log_text = (tmp / "anki.log").read_text(errors="replace")
    assert (tmp / "results.json").exists(), f"the driver wrote no results:\n{log_text[-5000:]}"
    results = json.loads((tmp / "results.json").read_text())
    results.update(
        returncode=proc.returncode,
        log=log_text,
        wall_seconds=time.monotonic() - start,
        tmp=str(tmp),
        leftover=worker_processes(str(base)),
    )
    assert results.get("error") is None, f"{results['error']}\n--- Anki log:\n{log_text[-5000:]}"
    assert results.get("done"), f"steps: {results['steps']}\n--- Anki log:\n{log_text[-5000:]}"
    if os.environ.get("DECKBUILD_UPDATE_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp / "code-card-run.png", SCREENSHOT)
        shutil.copyfile(tmp / "scratchpad.png", SCREENSHOT.with_name("scratchpad.png"))
    return results


def test_code_card_shows_run_button(session):
    assert session["card_html_has_button"]


def test_pycmd_message_carrying_code_executes_nothing(session):
    assert session["evil_marker_exists"] is False
    assert session["evil_output_hidden"] is True  # nothing ran, nothing was shown
    assert session["evil_dialog"] is False  # no confirmation, no scratchpad


def test_first_run_asks_for_confirmation(session):
    assert "runs on your computer with your permissions" in session["confirm_text"]
    assert session["confirm_asked_again"] is False


def test_run_shows_output_in_the_card(session):
    for key in ("cold_text", "warm_text"):
        text = session[key]
        assert EXPECTED_STDOUT in text
        assert "Python 3." in text and "torch 2." in text and sys.executable in text
    assert 'class="deckbuild-stdout"' in session["cold_html"]
    assert "deckbuild-error" not in session["cold_html"]


def test_baked_output_stays_on_the_answer_side(session):
    assert session["answer_output_hidden_before_run"] is True
    assert EXPECTED_STDOUT in session["baked_text"]


def test_second_run_is_warm(session):
    print(f"\nfirst Run (cold, click to output): {session['cold_seconds']:.2f} s; "
          f"second Run (warm): {session['warm_seconds']:.3f} s; whole Anki session {session['wall_seconds']:.0f} s")
    assert session["warm_seconds"] < 1.0
    ran_in = float(session["warm_text"].split("ran in ")[1].split(" s")[0])
    assert ran_in < 0.1


def test_scratchpad_runs_edited_code_and_leaves_the_note_alone(session):
    assert session["scratchpad_code"].startswith("import torch\nx = torch.arange(6)")
    assert "edited tensor([42])" in session["scratchpad_output"]
    assert session["note_code_unchanged"] is True


def test_idle_check_stops_the_worker(session):
    assert session["idle_worker_was_alive"] and session["idle_worker_gone"]


def test_previewer_card_runs_too(session):
    assert EXPECTED_STDOUT in session["previewer_text"]


def test_missing_interpreter_is_reported_in_the_card(session):
    assert "Could not run the snippet with" in session["missing_python_text"]
    assert "no-such-python" in session["missing_python_text"]
    assert "No Python with torch was found" in session["no_python_text"]
    assert ".venv/bin/python" in session["no_python_text"]


def test_anki_shows_no_error(session):
    assert session["stderr"] == ""
    assert session["open_dialogs"] == []


@pytest.mark.parametrize("name", ["code-card-run.png", "scratchpad.png"])
def test_screenshot_was_taken(session, name):
    png = Path(session["tmp"]) / name
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_anki_exits_cleanly_and_stops_the_worker(session):
    assert session["returncode"] == 0, session["log"][-3000:]
    assert session.get("exited")
    assert session["leftover"] == []
