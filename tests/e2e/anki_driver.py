"""Drive a real, headless Anki through deckbuild's add-on, in its own process.

Run by tests/e2e/test_addon_e2e.py (never imported by pytest):

    python anki_driver.py --base DIR --apkg DECK --addon PKG.ankiaddon \
        --python PY --results OUT.json --screenshot OUT.png

It creates the profile (so no first-run dialog blocks), installs the add-on
package into the base folder's addons21 like "Install from file" does, starts
Anki, imports the deck, shows the code card in the reviewer and clicks the
card's buttons through the page's JavaScript. Every observation goes into the
results JSON; the test makes the assertions. A watchdog ends the process if a
step hangs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
import zipfile
from pathlib import Path
from typing import Any, Generator

WATCHDOG_SECONDS = 240


def prepare_base(base: Path, addon_zip: Path, config: dict[str, Any]) -> str:
    """Create the profile and install the add-on; return the add-on's folder name."""
    from aqt.profiles import ProfileManager

    pm = ProfileManager(ProfileManager.get_created_base_folder(str(base)))
    pm.setupMeta()
    pm.setLang("en_US")
    pm.profiles()  # creates "User 1"

    with zipfile.ZipFile(addon_zip) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        folder = base / "addons21" / manifest["package"]
        folder.mkdir(parents=True)
        zf.extractall(folder)
    meta = {"name": manifest["name"], "min_point_version": manifest.get("min_point_version", 0), "config": config}
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return manifest["package"]


class Sleep:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class Js:
    """Evaluate an expression in a webview (default: the reviewer's); the step
    gets its value."""

    def __init__(self, expr: str, web: Any = None) -> None:
        self.expr = expr
        self.web = web


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("base", "apkg", "addon", "python", "results", "screenshot", "scratchpad_screenshot", "marker"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()

    base = Path(args.base)
    package = prepare_base(
        base,
        Path(args.addon),
        {"python": args.python, "timeout_seconds": 60, "max_output_bytes": 100000, "ask_before_running": True},
    )

    import aqt
    from anki.collection import ImportAnkiPackageOptions, ImportAnkiPackageRequest
    from aqt import gui_hooks
    from aqt.qt import QApplication, QMessageBox, QTimer

    results: dict[str, Any] = {"steps": [], "stderr": ""}
    results_path = Path(args.results)

    def save() -> None:
        results_path.write_text(json.dumps(results, indent=2), encoding="utf-8")

    def log(step: str, **data: Any) -> None:
        results["steps"].append(step)
        results.update(data)
        save()

    def finish(error: str | None = None) -> None:
        results["error"] = error
        results["done"] = True
        save()
        mw = aqt.mw
        QTimer.singleShot(0, mw.unloadProfileAndExit)

    def watchdog() -> None:
        results["error"] = f"watchdog: no finish after {WATCHDOG_SECONDS} s (last step: {results['steps'][-1:]})"
        save()
        os._exit(3)

    def modal_box(name: str) -> Any:
        widget = QApplication.activeModalWidget()
        if isinstance(widget, QMessageBox) and widget.objectName() == name:
            return widget
        return None

    def top_level(name: str) -> Any:
        for widget in QApplication.topLevelWidgets():
            if widget.objectName() == name and widget.isVisible():
                return widget
        return None

    def script() -> Generator[Any, Any, None]:
        mw = aqt.mw
        # Record what Anki's error handler sees: anything written to stderr
        # in Anki's process becomes an error popup for the user.
        original_write = mw.errorHandler.write

        def record(data: str) -> None:
            results["stderr"] += data
            original_write(data)

        mw.errorHandler.write = record
        mw.resize(1000, 860)

        col = mw.col
        col.import_anki_package(
            ImportAnkiPackageRequest(package_path=args.apkg, options=ImportAnkiPackageOptions())
        )
        [card_id] = col.find_cards("mid:1738400004")
        card = col.get_card(card_id)
        code_before = card.note()["Code"]
        col.decks.select(card.did)
        mw.moveToState("review")
        log("imported", card_id=card_id)

        output = "document.querySelector('.deckbuild-output')"
        yield from wait_js("document.querySelector('.deckbuild-run') !== null", 60)
        results["card_html_has_button"] = True
        log("reviewer shows the Run button")

        # A shared deck's JavaScript may call pycmd with code: it must run nothing.
        marker = json.dumps(args.marker)
        yield Js(
            "pycmd('deckbuild:run:import pathlib; pathlib.Path(%s).write_text(\"pwned\")');"
            "pycmd('deckbuild:run\\nopen(%s, \"w\").write(\"pwned\")');"
            "pycmd('deckbuild:scratchpad:print(1)'); true" % (marker, marker)
        )
        yield Sleep(2.0)
        hidden = yield Js(output + ".hidden")
        log(
            "sent pycmd messages carrying code",
            evil_marker_exists=Path(args.marker).exists(),
            evil_output_hidden=hidden,
            evil_dialog=modal_box("deckbuild-confirm") is not None or top_level("deckbuild-scratchpad") is not None,
        )

        # First Run: confirmation, then a cold worker (starts Python, imports torch).
        start = time.perf_counter()
        yield Js("document.querySelector('.deckbuild-run').click(); true")
        box = yield from wait_py(lambda: modal_box("deckbuild-confirm"), 30)
        results["confirm_text"] = box.text()
        box.button(QMessageBox.StandardButton.Yes).click()
        log("confirmed the first run")
        text = yield from wait_js(output + ".innerText", 180, lambda t: t and "ran in" in t)
        log("first run (cold)", cold_seconds=time.perf_counter() - start, cold_text=text)
        results["cold_html"] = yield Js(output + ".innerHTML")

        # Second Run, on the answer side: the worker is warm.
        mw.reviewer._showAnswer()
        yield from wait_js("document.querySelector('.deckbuild-baked') !== null && " + output + " !== null", 30)
        answer_hidden = yield Js(output + ".hidden")
        start = time.perf_counter()
        yield Js("document.querySelector('.deckbuild-run').click(); true")
        text = yield from wait_js(output + ".innerText", 60, lambda t: t and "ran in" in t)
        log(
            "second run (warm)",
            warm_seconds=time.perf_counter() - start,
            warm_text=text,
            answer_output_hidden_before_run=answer_hidden,
            confirm_asked_again=modal_box("deckbuild-confirm") is not None,
        )
        results["baked_text"] = yield Js("document.querySelector('.deckbuild-baked').innerText")
        yield Sleep(0.5)
        mw.grab().save(args.screenshot)
        log("screenshot")

        # The scratchpad: edit, run, and the note stays as it was.
        yield Js("document.querySelector('.deckbuild-scratchpad').click(); true")
        pad = yield from wait_py(lambda: top_level("deckbuild-scratchpad"), 30)
        results["scratchpad_code"] = pad.editor.toPlainText()
        pad.editor.setPlainText("import torch\nprint('edited', torch.tensor([6]) * 7)\n")
        pad.run_button.click()
        pad_text = yield from wait_py(lambda: "ran in" in pad.output.toPlainText() and pad.output.toPlainText(), 60)
        note = col.get_note(card.nid)
        pad.grab().save(args.scratchpad_screenshot)
        log("scratchpad", scratchpad_output=pad_text, note_code_unchanged=note["Code"] == code_before)
        pad.close()

        # The idle check stops the warm worker.
        addon = sys.modules[f"{package}.gui"]
        worker_pid = addon.session()._worker.pid
        addon.IDLE_SECONDS = 0
        addon._close_if_idle()
        yield from wait_py(lambda: addon.session()._worker is None and not Path(f"/proc/{worker_pid}").exists(), 30)
        log("idle shutdown", idle_worker_was_alive=worker_pid is not None, idle_worker_gone=True)
        addon.IDLE_SECONDS = 15 * 60

        # The browser's previewer gets the button too, and runs in its own webview.
        browser = aqt.dialogs.open("Browser", mw, search=(f"cid:{card_id}",))

        def open_previewer() -> Any:
            # The preview button does nothing until the editor has loaded the note.
            if browser._previewer is None and browser.table.has_current() and getattr(browser.editor, "note", None):
                browser.onTogglePreview()
            return browser._previewer

        previewer = yield from wait_py(open_previewer, 60)
        web = previewer._web
        yield from wait_js("document.querySelector('.deckbuild-run') !== null", 30, web=web)
        yield Js("document.querySelector('.deckbuild-run').click(); true", web=web)
        text = yield from wait_js(output + ".innerText", 180, lambda t: t and "ran in" in t, web=web)
        log("previewer run", previewer_text=text)
        previewer.close()
        browser.close()

        # A configured interpreter that does not exist: the card says so.
        config = mw.addonManager.getConfig(package)
        mw.addonManager.writeConfig(package, dict(config, python=str(base / "no-such-python")))
        yield Js(output + ".innerHTML = ''; document.querySelector('.deckbuild-run').click(); true")
        text = yield from wait_js(output + ".innerText", 60, lambda t: t and "Running" not in t)
        log("missing interpreter", missing_python_text=text)

        # No interpreter configured and none with torch on PATH: the card says how to set one.
        os.environ["PATH"] = str(base / "empty-path")
        mw.addonManager.writeConfig(package, dict(config, python=""))
        yield Js(output + ".innerHTML = ''; document.querySelector('.deckbuild-run').click(); true")
        text = yield from wait_js(output + ".innerText", 60, lambda t: t and "Running" not in t)
        log("no interpreter", no_python_text=text)

        yield Sleep(0.5)  # let the error handler's 100 ms timer fire, if anything was written
        dialogs = [
            w.objectName() or type(w).__name__
            for w in QApplication.topLevelWidgets()
            if w.isVisible() and w is not mw and w.isWindow() and w.inherits("QDialog")
        ]
        log("checked for error dialogs", open_dialogs=dialogs)

    # --- a tiny scheduler: the script yields Sleep / Js, helpers poll ------

    def wait_js(expr: str, timeout: float, ok=lambda v: bool(v), web: Any = None) -> Generator[Any, Any, Any]:
        deadline = time.monotonic() + timeout
        while True:
            value = yield Js(expr, web)
            if ok(value):
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expr!r} still {value!r} after {timeout} s")
            yield Sleep(0.02)

    def wait_py(probe, timeout: float) -> Generator[Any, Any, Any]:
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{probe} still false after {timeout} s")
            yield Sleep(0.02)

    def step(gen: Generator[Any, Any, None], value: Any = None) -> None:
        try:
            command = gen.send(value)
        except StopIteration:
            finish()
            return
        except Exception:
            finish(traceback.format_exc())
            return
        if isinstance(command, Sleep):
            QTimer.singleShot(int(command.seconds * 1000), lambda: step(gen))
        elif isinstance(command, Js):
            web = command.web or aqt.mw.reviewer.web
            web.evalWithCallback(command.expr, lambda v: step(gen, v))
        else:
            finish(f"bad command {command!r}")

    def on_profile_open() -> None:
        QTimer.singleShot(WATCHDOG_SECONDS * 1000, watchdog)
        gen = script()
        QTimer.singleShot(1500, lambda: step(gen))  # let the main window settle

    gui_hooks.profile_did_open.append(on_profile_open)
    log("starting anki")
    aqt._run(argv=["anki", "-b", str(base), "-p", "User 1"])
    results["exited"] = True
    save()


if __name__ == "__main__":
    main()
