"""End to end in real Anki: the add-on on code cards built by deckbuild, and on
the notes a hostile shared deck could hold.

Builds a two-card code deck with the deckbuild CLI and the add-on package with
addon/build.py, then starts headless Anki (aqt from PyPI, Qt offscreen) twice
on one base folder, in subprocesses running anki_driver.py: the first session
attacks and uses the add-on, the second checks that trust lasted. A hard
timeout keeps a hung Anki from wedging pytest. Every assertion is on what the
driver saw Anki show.

The interpreter is staged as ~/deckbuild/.venv/bin/python (HOME is a temporary
folder holding a link to this venv), so no screenshot shows this machine's
folders. Set DECKBUILD_UPDATE_SCREENSHOT=1 to copy the screenshots into
docs/images/.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from harness import anki_env, run_driver

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("anki_driver.py")
IMAGES = ROOT / "docs" / "images"
ANKI_TIMEOUT = 420  # seconds for one Anki session, start to exit
PYTHON = "~/deckbuild/.venv/bin/python"

pytestmark = pytest.mark.skipif(importlib.util.find_spec("aqt") is None, reason="aqt is not installed")

FIDELITY_CODE = '\n\nword = "a\xa0b"\nprint(repr(word), len(word))\nprint("col1\\tcol2".split("\\t"), "x\ty")\nraise ValueError(word)\n'
CARDS = (
    textwrap.dedent(
        """
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
              import matplotlib.pyplot as plt
              plt.bar(range(3), x.sum(dim=0))
              plt.title("column sums")
            a: The column sums of a 2×3 tensor.
          - id: e2e-fidelity
            q: What does this print, and where does it fail?
            expect_error: ValueError
            code: |
        """
    ).lstrip()
    + "".join(f"      {line}\n" if line else "\n" for line in FIDELITY_CODE.rstrip("\n").split("\n"))
)
COLUMN_SUMS = (
    "import torch\nx = torch.arange(6).reshape(2, 3)\nprint(x)\nprint(x.sum(dim=0))\n"
    "import matplotlib.pyplot as plt\nplt.bar(range(3), x.sum(dim=0))\nplt.title(\"column sums\")\n"
)
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


def start_anki(phase: str, tmp: Path, apkg: Path, env: dict) -> dict:
    base = tmp / "anki-base"
    results_path = tmp / f"results-{phase}.json"
    args = [
        sys.executable, str(DRIVER),
        "--phase", phase,
        "--base", str(base),
        "--apkg", str(apkg),
        "--addon", str(tmp / "deckbuild.ankiaddon"),
        "--python", PYTHON,
        "--work", str(tmp / "work"),
        "--results", str(results_path),
    ]
    results = run_driver(args, tmp, env, results_path, tmp / f"anki-{phase}.log", ANKI_TIMEOUT)
    results.update(tmp=str(tmp), leftover=worker_processes(str(base)))
    return results


@pytest.fixture(scope="module")
def sessions(tmp_path_factory) -> tuple[dict, dict]:
    tmp = tmp_path_factory.mktemp("anki-e2e")
    (tmp / "cards").mkdir()
    (tmp / "work").mkdir()
    (tmp / "cards" / "code.yaml").write_text(CARDS, encoding="utf-8")
    run([sys.executable, "-m", "deckbuild", "build", "cards", "--out", "out"], tmp, 300)
    [apkg] = [p for p in sorted((tmp / "out").glob("*.apkg")) if p.name.endswith("-code.apkg")]
    run([sys.executable, str(ROOT / "addon" / "build.py"), "--out", str(tmp / "deckbuild.ankiaddon")], tmp, 60)

    home = tmp / "home"
    (home / "deckbuild").mkdir(parents=True)
    (home / "deckbuild" / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    env = anki_env(home, "deckbuild-e2e")
    first = start_anki("first", tmp, apkg, env)
    second = start_anki("second", tmp, apkg, env)
    if os.environ.get("DECKBUILD_UPDATE_SCREENSHOT"):
        IMAGES.mkdir(parents=True, exist_ok=True)
        for name in ("code-card-run.png", "scratchpad.png"):
            shutil.copyfile(tmp / "work" / name, IMAGES / name)
    return first, second


@pytest.fixture(scope="module")
def session(sessions) -> dict:
    return sessions[0]


# --- What a code card shows ------------------------------------------------


def test_code_card_shows_its_code_and_no_control_inside_the_card(session):
    card = session["legit_card"]
    assert card["shown_code"] == COLUMN_SUMS
    assert card["buttons_in_card"] == 0 and card["pycmd_in_card"] is False
    assert "press X or Run code in the bar below" in card["hint"]
    assert card["bar_run_visible"] is True  # the trigger is in Anki's bottom bar
    assert card["output"] == "<hidden>"


# --- Attacks: no card script starts a run or opens a dialog ----------------


@pytest.mark.parametrize("phase", ["attack_confirmation_on", "attack_after_trust", "attack_confirmation_off"])
def test_a_card_script_with_every_message_click_and_key_runs_nothing(session, phase):
    seen = session[phase]
    assert seen["attack_rounds"] >= 10  # the hostile script really ran, again and again
    assert seen["message_count"] >= 10 * 6  # and Anki really received its messages
    assert {kind for kind, _ in seen["messages_received"]} == {"Reviewer"}
    assert seen["windows"] == []  # no confirmation, no scratchpad, no other dialog
    assert seen["marker_exists"] is False
    assert seen["output"] == "<hidden>"
    expected_runs = "" if phase == "attack_confirmation_on" else "ran\n"  # the one run the user asked for
    assert seen["ran_log"] == expected_runs


def test_a_planted_timer_clicks_nothing_on_the_next_trusted_card(session):
    seen = session["attack_planted_timer"]
    assert seen["rounds_on_planter"] >= 1 and seen["rounds_on_target"] >= 10  # the timer outlived its card
    assert "planted" in seen["target_shown_code"]
    assert seen["message_count"] >= 10
    assert seen["windows"] == []
    assert seen["marker_exists"] is False
    assert seen["output"] == "<hidden>"


def test_the_previewer_ignores_a_card_script_too(session):
    seen = session["previewer_attack"]
    assert seen["attack_rounds"] >= 10 and seen["message_count"] >= 10
    assert seen["windows"] == [] and seen["marker_exists"] is False
    assert seen["ran_log"] == "ran\nran\n"  # the two runs the user asked for


@pytest.mark.parametrize("name", ["disagree", "hidden"])
def test_a_note_whose_fields_disagree_shows_and_runs_the_code_field(session, name):
    seen = session["disagree"][name]
    assert seen["shown"] == seen["code"]  # every byte that runs is in the code block
    assert seen["visible"].replace("\xa0", " ").strip() == seen["code"].strip()  # and visible (innerText)
    if name == "disagree":
        assert "differs from its Code field" in seen["notice"]
    for line in ("hidden payload ran", "hello") if name == "disagree" else ("hello", "hidden span ran"):
        assert line in seen["output"]


# --- The confirmation ---------------------------------------------------------


def test_confirmation_shows_the_code_and_names_deck_and_note(session):
    cancel = session["cancel"]
    assert "pathlib.Path(" in cancel["dialog_code"] and "hostile snippet ran" in cancel["dialog_code"]
    assert "Shared::Hostile" in cancel["dialog_text"] and "hostile-run-on-display" in cancel["dialog_text"]
    assert "with your permissions" in cancel["dialog_text"] and PYTHON in cancel["dialog_text"]
    assert "Shared::Hostile" in cancel["trust_label"]
    assert session["legit"]["dialog"]["code"] == COLUMN_SUMS
    assert "deckbuild e2e::Code" in session["legit"]["dialog"]["text"]


def test_a_real_cancel_click_runs_nothing(session):
    cancel = session["cancel"]
    assert cancel["marker_exists"] is False and cancel["ran_log"] == ""
    assert "Cancelled: nothing ran." in cancel["output"] and "ran in" not in cancel["output"]


def test_trust_is_remembered_per_deck(session):
    trusted = session["trusted_run"]
    assert trusted["trust_ticked"] is True
    assert "hostile snippet ran" in trusted["output"] and trusted["ran_log"] == "ran\n"
    decks = session["deck_ids"]  # the legit deck was trusted before, in the legitimate path
    assert trusted["stored_trust"] == sorted(f"1738400004:{decks[d]}" for d in ("legit", "hostile"))
    other = session["other_deck"]  # trusting one deck does not trust another
    assert "Shared::Other" in other["dialog_text"]
    assert "Cancelled: nothing ran." in other["output"] and other["ran_log"] == "ran\nran\n"
    # Ticking "run its code cards without asking again" and then Cancel stores no trust.
    assert other["trust_ticked"] is True
    assert other["stored_trust"] == trusted["stored_trust"]


def test_with_asking_off_a_gesture_runs_without_a_dialog(session):
    seen = session["asking_off_gesture"]
    assert seen["windows"] == []
    assert "hostile snippet ran" in seen["output"] and seen["ran_log"] == "ran\nran\n"


def test_trust_lasts_into_the_next_anki_session_and_only_for_that_deck(sessions):
    _, second = sessions
    assert second["trusted_again"]["windows"] == []
    assert EXPECTED_STDOUT in second["trusted_again"]["output"]
    assert "Shared::Other" in second["untrusted_again"]["dialog_text"]
    assert "Cancelled: nothing ran." in second["untrusted_again"]["output"]
    assert second["returncode"] == 0 and second["leftover"] == []


# --- The legitimate path ----------------------------------------------------


def test_a_real_gesture_runs_the_card_and_shows_the_output_cold_and_warm(session):
    legit = session["legit"]
    for key in ("cold", "warm"):
        assert EXPECTED_STDOUT in legit[key]
        assert "Python 3." in legit[key] and "torch 2." in legit[key] and PYTHON in legit[key]
    assert 'class="deckbuild-stdout"' in legit["cold_html"] and "deckbuild-error" not in legit["cold_html"]
    assert legit["windows_after_warm"] == []  # the deck was trusted: no second question


def test_baked_output_stays_on_the_answer_side(session):
    assert session["legit"]["answer_output_hidden_before_run"] is True
    assert EXPECTED_STDOUT in session["legit"]["baked"]


def test_run_draws_the_figure_in_the_card_and_the_baked_one_loads_from_media(session):
    legit = session["legit"]
    html = legit["cold_html"]
    assert html.count('<img class="deckbuild-figure deckbuild-day" src="data:image/svg+xml;base64,') == 1
    assert html.count('<img class="deckbuild-figure deckbuild-night" src="data:image/svg+xml;base64,') == 1
    assert 'alt="Figure 1: column sums"' in html
    assert html.index("deckbuild-stdout") < html.index("deckbuild-figure")  # next to stdout
    assert legit["live_figure_width"] > 100  # Chromium decoded the SVG
    assert legit["baked_figure_width"] > 100  # the packaged figure is in Anki's media folder


def test_second_run_is_warm(session):
    legit = session["legit"]
    print(f"\nfirst Run (cold, key press to output): {legit['cold_seconds']:.2f} s; "
          f"second Run (warm): {legit['warm_seconds']:.3f} s; whole Anki session {session['wall_seconds']:.0f} s")
    # Timings are printed, not asserted (speed targets live in make bench): the warm run's output is checked.
    assert EXPECTED_STDOUT in legit["warm"] and "ran in " in legit["warm"]


def test_scratchpad_runs_edited_code_and_leaves_the_note_alone(session):
    pad = session["scratchpad"]
    assert pad["code"] == COLUMN_SUMS
    assert "edited tensor([42])" in pad["output"]
    assert pad["note_code_unchanged"] is True


def test_previewer_runs_from_its_own_button(session):
    assert EXPECTED_STDOUT in session["previewer"]["output"]
    assert session["previewer"]["shown_code"] == COLUMN_SUMS


def test_idle_check_stops_the_worker(session):
    assert session["idle"] == {"worker_was_alive": True, "worker_gone": True}


# --- Fidelity -------------------------------------------------------------------


def baked(output_field: str, kind: str) -> str:
    match = re.search(rf'<pre class="{kind}">(.*?)</pre>', output_field, re.S)
    return html.unescape(match.group(1))


def test_the_addon_runs_the_bytes_the_build_ran(session):
    fid = session["fidelity"]
    assert fid["shown"] == FIDELITY_CODE  # NBSP, tab, two leading blank lines, on screen
    assert fid["stdout"] == baked(fid["baked_output_field"], "stdout") == "'a\\xa0b' 3\n['col1', 'col2'] x\ty\n"
    assert fid["error"] == baked(fid["baked_output_field"], "exception")
    assert "exception (line 6)" in fid["output"].lower()
    assert fid["shown"].split("\n")[6 - 1] == "raise ValueError(word)"  # line 6 is the displayed line 6
    assert 'File "<snippet>", line 6' in fid["error"]
    assert "'a\\xa0b' 3" in fid["scratchpad_output"]  # the scratchpad keeps the NBSP too


# --- Config and errors --------------------------------------------------------------


def test_an_infinite_timeout_falls_back_with_a_message_naming_the_key(session):
    assert session["config_saved_value"] == "inf"  # Anki's config editor saved it
    warning = session["config_saved_warning"]
    assert 'config "timeout_seconds"' in warning and "(got Infinity)" in warning
    text = session["config_infinity"]
    assert 'config "timeout_seconds"' in text and "(got Infinity)" in text and "using the default 30" in text
    assert EXPECTED_STDOUT in text


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
    png = Path(session["tmp"]) / "work" / name
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_anki_exits_cleanly_and_stops_the_worker(session):
    assert session["returncode"] == 0, session["log"][-3000:]
    assert session.get("exited")
    assert session["leftover"] == []
