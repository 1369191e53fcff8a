"""Drive a real, headless Anki through deckbuild's add-on, in its own process.

Run by tests/e2e/test_addon_e2e.py (never imported by pytest):

    python anki_driver.py --phase first|second --base DIR --apkg DECK \
        --addon PKG.ankiaddon --python PY --work DIR \
        --results OUT.json

Phase "first" creates the profile (so no first-run dialog blocks), installs
the add-on package into the base folder's addons21 like "Install from file"
does, starts Anki, imports the deck built by deckbuild, and adds the notes a
hostile shared deck could hold (their scripts call pycmd with every deckbuild
message, click and focus every element, dispatch key events and plant timers).
Phase "second" starts Anki again on the same base folder: trust given in the
first session must still hold.

The user's gestures are real: Qt key presses (QTest) for the shortcuts, Qt
mouse clicks (QTest) on the dialogs' and the previewer's buttons, and clicks
in the reviewer's bottom bar (Anki's own web view). Every observation comes
from what Anki shows (the card's DOM, the open windows, the files a snippet
wrote) and goes into the results JSON; the test makes the assertions. A
watchdog ends the process if a step hangs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Generator

sys.path.insert(0, str(Path(__file__).parent))
from harness import (  # noqa: E402
    Js, Results, Sleep, click, open_dialogs, prepare_base, record_stderr, run_anki, top_level, wait_js, wait_py,
)

WATCHDOG_SECONDS = 300
ATTACK_SECONDS = 2.5  # how long each hostile card stays on screen

HOSTILE_DECK = "Shared::Hostile"
OTHER_DECK = "Shared::Other"

# What a hostile card's script does, over and over: every deckbuild message
# through both bridge functions, a click and focus on every element, and
# synthetic key presses of the add-on's shortcut keys.
ATTACK_JS = r"""
(function () {
  var messages = ["deckbuild:run", "deckbuild:scratchpad", "deckbuild:run:import pathlib; pathlib.Path('%(marker)s').write_text('pwned')",
                  "deckbuild:run\nopen('%(marker)s', 'w').write('pwned')", "deckbuild:scratchpad:print(1)", "deckbuild:exec"];
  function attack() {
    messages.forEach(function (m) {
      try { pycmd(m); } catch (e) {}
      try { bridgeCommand(m); } catch (e) {}
    });
    document.querySelectorAll('*').forEach(function (el) {
      try { el.focus(); el.click(); el.dispatchEvent(new MouseEvent('mousedown', {bubbles: true})); } catch (e) {}
    });
    [["x", "KeyX", false], ["X", "KeyX", true], ["Enter", "Enter", false]].forEach(function (k) {
      ["keydown", "keypress", "keyup"].forEach(function (type) {
        var ev = {key: k[0], code: k[1], shiftKey: k[2], bubbles: true};
        document.dispatchEvent(new KeyboardEvent(type, ev));
        if (document.activeElement) document.activeElement.dispatchEvent(new KeyboardEvent(type, ev));
      });
    });
    window.%(counter)s = (window.%(counter)s || 0) + 1;
  }
  %(start)s
})();
"""


def attack_script(marker: str, counter: str, start: str) -> str:
    return "<script>" + ATTACK_JS % {"marker": marker, "counter": counter, "start": start} + "</script>"


def installed_package(base: Path) -> str:
    [folder] = [p for p in (base / "addons21").iterdir() if (p / "manifest.json").exists()]
    return folder.name


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("phase", "base", "apkg", "addon", "python", "work", "results"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()

    base = Path(args.base)
    work = Path(args.work)
    config = {"python": args.python, "timeout_seconds": 60, "max_output_bytes": 100000, "ask_before_running": True}
    if args.phase == "first":
        package = prepare_base(base, Path(args.addon), config)
    else:
        package = installed_package(base)

    import aqt
    from anki.collection import ImportAnkiPackageOptions, ImportAnkiPackageRequest
    from aqt import gui_hooks
    from aqt.qt import QApplication, QTimer, Qt
    from PyQt6.QtTest import QTest

    results_file = Results(Path(args.results), messages=[])
    results, log = results_file.data, results_file.log

    # Every bridge message Anki receives, with the kind of web view it came from.
    def spy(handled: Any, message: str, context: Any) -> Any:
        if message.startswith("deckbuild:"):
            results["messages"].append([type(context).__name__, message])
        return handled

    gui_hooks.webview_did_receive_js_message.append(spy)

    def deckbuild_windows() -> list[str]:
        """Names of the add-on's windows on screen, and any modal dialog."""
        names = [
            w.objectName()
            for w in QApplication.topLevelWidgets()
            if w.isVisible() and w.objectName().startswith("deckbuild-")
        ]
        modal = QApplication.activeModalWidget()
        if modal is not None:
            names.append(f"modal:{modal.objectName() or type(modal).__name__}")
        return sorted(set(names))

    def confirm_dialog() -> Any:
        widget = QApplication.activeModalWidget()
        return widget if widget is not None and widget.objectName() == "deckbuild-confirm" else None

    def press(key: Any, shift: bool = False) -> Generator[Any, Any, None]:
        """A real key press on the focused widget of Anki's main window, once
        that window is active (Qt only fires its shortcuts then)."""
        mw = aqt.mw
        mw.activateWindow()
        mw.web.setFocus()
        yield from wait_py(lambda: QApplication.activeWindow() is mw, 10)
        target = QApplication.focusWidget() or mw
        modifier = Qt.KeyboardModifier.ShiftModifier if shift else Qt.KeyboardModifier.NoModifier
        QTest.keyClick(target, key, modifier)

    def script() -> Generator[Any, Any, None]:
        mw = aqt.mw
        record_stderr(results_file)
        mw.resize(1000, 860)
        col = mw.col
        addon = sys.modules[f"{package}.gui"]
        output = "document.querySelector('.deckbuild-output')"
        shown_code = "document.querySelector('.deckbuild-shown') && document.querySelector('.deckbuild-shown').textContent"
        shown_visible = "document.querySelector('.deckbuild-shown') && document.querySelector('.deckbuild-shown').innerText"

        def show(card_id: int, answer: bool = False) -> Generator[Any, Any, None]:
            """Put a card on the reviewer's screen, as Anki's queue would."""
            card = col.get_card(card_id)
            card.start_timer()
            mw.reviewer.card = card
            mw.reviewer._showQuestion()
            if answer:
                mw.reviewer._showAnswer()
            yield from wait_js(f"document.getElementById('qa') && document.getElementById('qa').innerHTML.length > 0", 30)
            yield Sleep(0.3)

        def output_text(web: Any = None) -> Generator[Any, Any, Any]:
            return (yield Js(f"{output} ? ({output}.hidden ? '<hidden>' : {output}.innerText) : '<no output box>'", web))

        def watch(seconds: float) -> Generator[Any, Any, list[str]]:
            """Watch for the add-on's windows for seconds; close any that opens."""
            seen: set[str] = set()
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                now = deckbuild_windows()
                seen.update(now)
                for widget in QApplication.topLevelWidgets():
                    if widget.isVisible() and widget.objectName().startswith("deckbuild-"):
                        widget.close()
                yield Sleep(0.05)
            return sorted(seen)

        def run_by_key() -> Generator[Any, Any, Any]:
            yield from press(Qt.Key.Key_X)
            yield Sleep(0.3)
            return confirm_dialog()

        def wait_output(web: Any = None, timeout: float = 90) -> Generator[Any, Any, str]:
            return (yield from wait_js(output + ".innerText", timeout, lambda t: t and ("ran in" in t or "nothing ran" in t or "Could not" in t or "No Python" in t), web=web))

        if args.phase == "second":
            yield from second_session(col, show, output_text, watch, wait_output, shown_code)
            return

        col.import_anki_package(ImportAnkiPackageRequest(package_path=args.apkg, options=ImportAnkiPackageOptions()))
        ids = {col.get_note(col.get_card(c).nid)["Id"]: c for c in col.find_cards("mid:1738400004")}
        legit, fidelity = ids["e2e-column-sums"], ids["e2e-fidelity"]
        legit_card = col.get_card(legit)
        code_type = legit_card.note().note_type()
        legit_code_before = legit_card.note()["Code"]

        # The hostile shared deck: notes as a deck's author could write them.
        hostile_deck = col.decks.id(HOSTILE_DECK)
        other_deck = col.decks.id(OTHER_DECK)
        marker = work / "pwned"
        ran_log = work / "hostile-ran.log"

        def add_code_note(deck_id: int, note_id: str, question: str, code: str, code_html: str) -> int:
            note = col.new_note(code_type)
            import html as html_module

            note["Id"], note["Question"] = note_id, question
            note["Code"], note["CodeHtml"] = html_module.escape(code, quote=False), code_html
            col.add_note(note, deck_id)
            return note.card_ids()[0]

        def pre(code: str) -> str:
            import html as html_module

            return f"<pre>{html_module.escape(code, quote=False)}</pre>"

        hostile_code = (
            f"import pathlib\nwith open({str(ran_log)!r}, 'a') as f:\n    f.write('ran\\n')\n"
            f"pathlib.Path({str(marker)!r}).write_text('pwned')\nprint('hostile snippet ran')\n"
        )
        # Attacks for ATTACK_SECONDS, then stops (so the next phase starts clean).
        bounded = "attack(); var n = 0, t = setInterval(function () { attack(); if (++n > 40) clearInterval(t); }, 50);"
        hostile = add_code_note(
            hostile_deck, "hostile-run-on-display",
            "What does this print?" + attack_script(str(marker), "__deckbuildAttacks", bounded),
            hostile_code, pre(hostile_code),
        )
        other = add_code_note(other_deck, "other-untrusted", "Another deck's card.", hostile_code, pre(hostile_code))
        planted_marker = work / "planted"
        planted_code = f"import pathlib\npathlib.Path({str(planted_marker)!r}).write_text('clicked')\nprint('planted')\n"
        target = add_code_note(col.get_card(legit).did, "trusted-target", "A trusted card.", planted_code, pre(planted_code))
        basic = col.models.by_name("Basic")
        planter = col.new_note(basic)
        planter["Front"] = "A plain question." + attack_script(
            str(planted_marker), "__deckbuildPlanted", "attack(); window.__deckbuildTimer = setInterval(attack, 50);"
        )
        planter["Back"] = "A plain answer."
        col.add_note(planter, hostile_deck)
        planter_card = planter.card_ids()[0]
        disagree_code = "print('hidden payload ran')\nprint('hello')\n"
        disagree = add_code_note(
            hostile_deck, "disagreeing-fields", "What does this print?", disagree_code, pre("print('hello')\n")
        )
        hidden_code = "print('hello')\nprint('hidden span ran')\n"
        hidden = add_code_note(
            hostile_deck, "hidden-span", "What does this print?", hidden_code,
            "<pre>print('hello')\n<span style=\"display:none\">print('hidden span ran')\n</span></pre>",
        )
        col.decks.select(legit_card.did)
        mw.moveToState("review")
        yield from wait_js("document.getElementById('qa') !== null", 60)
        log("set up", card_ids=dict(legit=legit, fidelity=fidelity, hostile=hostile, other=other, target=target,
                                    planter=planter_card, disagree=disagree, hidden=hidden),
            deck_ids=dict(legit=legit_card.did, hostile=hostile_deck, other=other_deck))

        # --- What a code card looks like: the code block, no control inside the card
        yield from show(legit)
        results["legit_card"] = {
            "shown_code": (yield Js(shown_code)),
            "buttons_in_card": (yield Js("document.querySelectorAll('#qa button, #qa [onclick]').length")),
            "pycmd_in_card": (yield Js("document.getElementById('qa').innerHTML.indexOf('pycmd') >= 0")),
            "hint": (yield Js("document.querySelector('.deckbuild-hint') && document.querySelector('.deckbuild-hint').innerText")),
            "bar_run_visible": (yield Js("(function(){var b=document.getElementById('deckbuild-run');return !!b && b.offsetParent !== null;})()", mw.reviewer.bottom.web)),
            "output": (yield from output_text()),
        }
        log("legit card shown")

        # --- The legitimate path: real key press, confirmation, trust; cold then warm
        start = time.perf_counter()
        dialog = yield from run_by_key()
        dialog = dialog or (yield from wait_py(confirm_dialog, 10))
        legit_dialog = {"code": dialog.code_view.toPlainText(), "text": dialog.label.text()}
        click(dialog.trust_check)
        click(dialog.run_button)
        cold = yield from wait_output()
        cold_seconds = time.perf_counter() - start
        cold_html = yield Js(output + ".innerHTML")
        figure = "(function () { var i = document.querySelector('%s'); return i ? i.naturalWidth : -1; })()"
        live_figure_width = yield from wait_js(figure % ".deckbuild-output img.deckbuild-day", 10, lambda w: w != 0)
        # Answer side, Run in the bottom bar (Anki's own web view): warm, no question asked.
        mw.reviewer._showAnswer()
        yield from wait_js("document.querySelector('.deckbuild-baked') !== null && " + output + " !== null", 30)
        answer_hidden = yield Js(output + ".hidden")
        start = time.perf_counter()
        yield Js("document.getElementById('deckbuild-run').click(); true", mw.reviewer.bottom.web)
        warm = yield from wait_output(timeout=60)
        warm_seconds = time.perf_counter() - start
        results["legit"] = {
            "dialog": legit_dialog,
            "cold": cold, "cold_seconds": cold_seconds, "cold_html": cold_html,
            "warm": warm, "warm_seconds": warm_seconds, "answer_output_hidden_before_run": answer_hidden,
            "windows_after_warm": deckbuild_windows(),
            "baked": (yield Js("document.querySelector('.deckbuild-baked').innerText")),
            "live_figure_width": live_figure_width,
            "baked_figure_width": (yield from wait_js(figure % ".deckbuild-baked img.db-day", 10, lambda w: w != 0)),
        }
        yield Sleep(0.5)
        mw.grab().save(str(work / "code-card-run.png"))
        log("legit runs")

        # --- Attack 1: confirmation on, nothing trusted
        def attack(card_id: int, name: str, counter: str = "__deckbuildAttacks") -> Generator[Any, Any, None]:
            before = len(results["messages"])
            yield from show(card_id)
            seen = yield from watch(ATTACK_SECONDS)
            results[name] = {
                "attack_rounds": (yield Js(f"window.{counter} || 0")),
                "messages_received": results["messages"][before:][:20],
                "message_count": len(results["messages"]) - before,
                "windows": seen,
                "marker_exists": marker.exists(),
                "ran_log": ran_log.read_text() if ran_log.exists() else "",
                "output": (yield from output_text()),
            }
            log(name)

        yield from attack(hostile, "attack_confirmation_on")

        # --- A real gesture on that card: the confirmation, and a real Cancel click
        dialog = yield from run_by_key()
        dialog = dialog or (yield from wait_py(confirm_dialog, 10))
        results["cancel"] = {
            "dialog_code": dialog.code_view.toPlainText(),
            "dialog_text": dialog.label.text(),
            "trust_label": dialog.trust_check.text(),
        }
        click(dialog.cancel_button)
        yield from wait_py(lambda: confirm_dialog() is None, 10)
        text = yield from wait_output()
        yield Sleep(1.0)
        results["cancel"].update(output=text, marker_exists=marker.exists(), ran_log=ran_log.read_text() if ran_log.exists() else "")
        log("cancelled")

        # --- The user trusts the hostile deck (real clicks): the gesture runs it once
        yield from show(hostile)
        dialog = yield from run_by_key()
        dialog = dialog or (yield from wait_py(confirm_dialog, 10))
        click(dialog.trust_check)
        trust_ticked = dialog.trust_check.isChecked()
        click(dialog.run_button)
        text = yield from wait_output()
        results["trusted_run"] = {
            "trust_ticked": trust_ticked,
            "output": text,
            "ran_log": ran_log.read_text() if ran_log.exists() else "",
            "stored_trust": col.get_config(addon.policy.TRUST_CONFIG_KEY, None),
        }
        marker.unlink(missing_ok=True)
        log("trusted the hostile deck")

        # --- Attack 2: after trust was given
        yield from attack(hostile, "attack_after_trust")

        # --- Attack 3: confirmation off
        conf = mw.addonManager.getConfig(package)
        mw.addonManager.writeConfig(package, dict(conf, ask_before_running=False))
        yield from attack(hostile, "attack_confirmation_off")
        # With asking off, the user's key press runs an untrusted deck's card at once.
        yield from show(other)
        yield from press(Qt.Key.Key_X)
        seen = yield from watch(0.5)
        text = yield from wait_output()
        results["asking_off_gesture"] = {"windows": seen, "output": text, "ran_log": ran_log.read_text()}
        marker.unlink(missing_ok=True)
        mw.addonManager.writeConfig(package, dict(conf, ask_before_running=True))

        # --- Another deck was not trusted: it still asks (and Cancel runs nothing)
        yield from show(other)
        dialog = yield from run_by_key()
        dialog = dialog or (yield from wait_py(confirm_dialog, 10))
        results["other_deck"] = {"dialog_text": dialog.label.text()}
        click(dialog.trust_check)  # "don't ask again" ticked, then Cancel: no trust is stored
        results["other_deck"]["trust_ticked"] = dialog.trust_check.isChecked()
        click(dialog.cancel_button)
        text = yield from wait_output()
        results["other_deck"].update(output=text, ran_log=ran_log.read_text() if ran_log.exists() else "",
                                     stored_trust=col.get_config(addon.policy.TRUST_CONFIG_KEY, None))
        log("another deck asks")

        # --- Attack 4: a plain card plants a timer that clicks on the next, trusted code card
        yield from show(planter_card)
        yield Sleep(0.5)
        planted_before = yield Js("window.__deckbuildPlanted || 0")
        before = len(results["messages"])
        yield from show(target)
        seen = yield from watch(ATTACK_SECONDS)
        results["attack_planted_timer"] = {
            "rounds_on_planter": planted_before,
            "rounds_on_target": (yield Js("window.__deckbuildPlanted || 0")) - planted_before,
            "target_shown_code": (yield Js(shown_code)),
            "message_count": len(results["messages"]) - before,
            "windows": seen,
            "marker_exists": planted_marker.exists(),
            "output": (yield from output_text()),
        }
        yield Js("clearInterval(window.__deckbuildTimer); true")
        log("planted timer")

        # --- Disagreeing fields: the card shows the Code field, and runs that
        results["disagree"] = {}
        for name, card_id, code in (("disagree", disagree, disagree_code), ("hidden", hidden, hidden_code)):
            yield from show(card_id)
            shown, visible = (yield Js(shown_code)), (yield Js(shown_visible))
            notice = yield Js("document.querySelector('.deckbuild-mismatch') && document.querySelector('.deckbuild-mismatch').innerText")
            yield from press(Qt.Key.Key_X)  # the hostile deck is trusted now: no dialog
            text = yield from wait_output()
            results["disagree"][name] = {"code": code, "shown": shown, "visible": visible, "notice": notice, "output": text}
        log("disagreeing fields")

        # --- Fidelity: NBSP, tab and leading blank lines; the traceback names the displayed line
        yield from show(fidelity)
        shown = yield Js(shown_code)
        yield from press(Qt.Key.Key_X)
        text = yield from wait_output()
        results["fidelity"] = {
            "shown": shown,
            "stdout": (yield Js("document.querySelector('.deckbuild-output pre.deckbuild-stdout').textContent")),
            "error": (yield Js("document.querySelector('.deckbuild-output pre.deckbuild-error').textContent")),
            "output": text,
            "baked_output_field": col.get_card(fidelity).note()["Output"],
        }
        # The scratchpad, opened by its shortcut, runs the same bytes unedited.
        yield from press(Qt.Key.Key_X, shift=True)
        pad = yield from wait_py(lambda: top_level("deckbuild-scratchpad"), 30)
        click(pad.run_button)
        pad_text = yield from wait_py(lambda: "ran in" in pad.output.toPlainText() and pad.output.toPlainText(), 60)
        results["fidelity"]["scratchpad_output"] = pad_text
        pad.close()
        log("fidelity")

        # --- The scratchpad from the bottom bar: edit, run, the note stays as it was
        yield from show(legit)
        yield Js("document.getElementById('deckbuild-scratchpad').click(); true", mw.reviewer.bottom.web)
        pad = yield from wait_py(lambda: top_level("deckbuild-scratchpad"), 30)
        pad_code = pad.editor.toPlainText()
        pad.editor.setPlainText("import torch\nprint('edited', torch.tensor([6]) * 7)\n")
        click(pad.run_button)
        pad_text = yield from wait_py(lambda: "ran in" in pad.output.toPlainText() and pad.output.toPlainText(), 60)
        pad.grab().save(str(work / "scratchpad.png"))
        results["scratchpad"] = {
            "code": pad_code,
            "output": pad_text,
            "note_code_unchanged": col.get_card(legit).note()["Code"] == legit_code_before,
        }
        pad.close()
        log("scratchpad")

        # --- The idle check stops the warm worker.
        worker_pid = addon.session()._worker.pid
        addon.IDLE_SECONDS = 0
        addon._close_if_idle()
        gone = yield from wait_py(
            lambda: addon.session()._worker is None and not Path(f"/proc/{worker_pid}").exists(), 30
        )
        results["idle"] = {"worker_was_alive": bool(worker_pid), "worker_gone": bool(gone)}
        addon.IDLE_SECONDS = 15 * 60
        log("idle shutdown")

        # --- The browser's previewer: Qt buttons under the card; a hostile card's script there does nothing
        browser = aqt.dialogs.open("Browser", mw, search=(f"cid:{legit}",))

        def open_previewer() -> Any:
            # The preview button does nothing until the editor has loaded the note.
            if browser._previewer is None and browser.table.has_current() and getattr(browser.editor, "note", None):
                browser.onTogglePreview()
            return browser._previewer

        previewer = yield from wait_py(open_previewer, 60)
        web = previewer._web
        yield from wait_js("document.querySelector('.deckbuild-shown') !== null", 30, web=web)
        run_button = yield from wait_py(lambda: previewer.findChild(aqt.qt.QPushButton, "deckbuild-previewer-run"), 10)
        click(run_button)
        text = yield from wait_output(web=web)
        results["previewer"] = {"output": text, "shown_code": (yield Js(shown_code, web))}
        browser.search_for(f"cid:{hostile}")
        yield from wait_js("document.querySelector('.deckbuild-shown') && document.querySelector('.deckbuild-shown').textContent.indexOf('pwned') >= 0", 30, web=web)
        before = len(results["messages"])
        seen = yield from watch(ATTACK_SECONDS)
        results["previewer_attack"] = {
            "attack_rounds": (yield Js("window.__deckbuildAttacks || 0", web)),
            "message_count": len(results["messages"]) - before,
            "windows": seen,
            "marker_exists": marker.exists(),
            "ran_log": ran_log.read_text() if ran_log.exists() else "",
        }
        previewer.close()
        browser.close()
        log("previewer")

        # --- Config: Infinity typed into Anki's config editor is saved, the add-on
        # warns at once, and the card names the key when it falls back to the default
        addons_dialog = aqt.dialogs.open("AddonsDialog", mw.addonManager)
        editor = aqt.addons.ConfigEditor(addons_dialog, package, mw.addonManager.getConfig(package))
        editor.form.editor.setPlainText(json.dumps(dict(conf, timeout_seconds=float("inf")), indent=4))
        save_button = editor.form.buttonBox.button(aqt.qt.QDialogButtonBox.StandardButton.Ok)
        QTimer.singleShot(0, lambda: click(save_button))  # the warning's own event loop runs outside this step
        warning = yield from wait_py(
            lambda: (w := QApplication.activeModalWidget()) is not None and w.windowTitle() == "deckbuild: config" and w, 10
        )
        results["config_saved_warning"] = warning.text()
        click(warning.buttons()[0])
        yield from wait_py(lambda: not warning.isVisible(), 10)
        yield from wait_py(lambda: not editor.isVisible(), 10)
        results["config_saved_value"] = repr(mw.addonManager.getConfig(package)["timeout_seconds"])
        addons_dialog.close()
        yield from show(legit)
        yield from press(Qt.Key.Key_X)
        results["config_infinity"] = yield from wait_output()
        log("infinite timeout")

        # --- A configured interpreter that does not exist: the card says so.
        mw.addonManager.writeConfig(package, dict(conf, python=str(base / "no-such-python")))
        yield from show(legit)
        yield from press(Qt.Key.Key_X)
        results["missing_python_text"] = yield from wait_output(timeout=60)
        log("missing interpreter")

        # --- No interpreter configured and none with torch on PATH: the card says how to set one.
        path = os.environ["PATH"]
        os.environ["PATH"] = str(base / "empty-path")
        mw.addonManager.writeConfig(package, dict(conf, python=""))
        yield from show(legit)
        yield from press(Qt.Key.Key_X)
        results["no_python_text"] = yield from wait_output(timeout=60)
        os.environ["PATH"] = path
        mw.addonManager.writeConfig(package, conf)
        log("no interpreter")

        yield Sleep(0.5)  # let the error handler's 100 ms timer fire, if anything was written
        results["open_dialogs"] = open_dialogs()
        log("checked for error dialogs")

    def second_session(col: Any, show: Callable, output_text: Callable, watch: Callable, wait_output: Callable, shown_code: str) -> Generator[Any, Any, None]:
        """A new Anki session: trust given before still holds; other decks still ask."""
        mw = aqt.mw
        ids = {col.get_note(col.get_card(c).nid)["Id"]: c for c in col.find_cards("mid:1738400004")}
        col.decks.select(col.get_card(ids["e2e-column-sums"]).did)
        mw.moveToState("review")
        yield from wait_js("document.getElementById('qa') !== null", 60)
        yield from show(ids["e2e-column-sums"])
        yield from press(Qt.Key.Key_X)
        seen = yield from watch(0.5)
        text = yield from wait_output()
        results["trusted_again"] = {"windows": seen, "output": text}
        yield from show(ids["other-untrusted"])
        yield from press(Qt.Key.Key_X)
        dialog = yield from wait_py(confirm_dialog, 10)
        results["untrusted_again"] = {"dialog_text": dialog.label.text()}
        click(dialog.cancel_button)
        results["untrusted_again"]["output"] = yield from wait_output()
        log("second session")

    run_anki(base, results_file, script, WATCHDOG_SECONDS)

if __name__ == "__main__":
    main()
