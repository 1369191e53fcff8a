"""Drive a real, headless Anki through re-imports of a deckbuild package, in its own process.

Run by tests/e2e/test_import_e2e.py (never imported by pytest):

    python import_driver.py --base DIR --addon PKG.ankiaddon --project DIR --results OUT.json

The project folder holds ``versions/v1/`` … ``v4/``: each step copies one to
``cards/`` and builds it with the deckbuild CLI (same project, same
build cache, as a user's rebuild loop), then imports ``dist/imp.apkg`` the way a
user does: File → Import's code path (``import_file``), a real click on the
import page's Import button, then closing Anki's import dialog. The user's own
actions in Anki (answering a card, tagging a note, adding a Basic note) go
through Anki's collection API; the add-on's dialog is answered with real Qt
mouse clicks. Every observation is read back from Anki's collection and
windows into the results JSON; the test makes the assertions. A watchdog ends
the process if a step hangs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Generator

sys.path.insert(0, str(Path(__file__).parent))
from anki_driver import prepare_base  # noqa: E402

WATCHDOG_SECONDS = 400


class Sleep:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class Js:
    def __init__(self, expr: str, web: Any) -> None:
        self.expr = expr
        self.web = web


IMPORT_BUTTON = "[...document.querySelectorAll('button')].find(b => b.textContent.trim() === 'Import')"


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("base", "addon", "project", "results"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()
    base, project = Path(args.base), Path(args.project)
    package = prepare_base(base, Path(args.addon), {"python": "", "offer_after_import": True})

    import aqt
    from anki.scheduler.v3 import CardAnswer
    from aqt import gui_hooks
    from aqt.import_export.import_dialog import ImportDialog
    from aqt.import_export.importing import import_file
    from aqt.qt import QApplication, QTimer, Qt
    from PyQt6.QtTest import QTest

    results: dict[str, Any] = {"steps": [], "stderr": ""}
    results_path = Path(args.results)

    def save() -> None:
        results_path.write_text(json.dumps(results, indent=2), encoding="utf-8")

    def log(step: str) -> None:
        results["steps"].append(step)
        save()

    def finish(error: str | None = None) -> None:
        results["error"] = error
        results["done"] = True
        save()
        QTimer.singleShot(0, aqt.mw.unloadProfileAndExit)

    def watchdog() -> None:
        results["error"] = f"watchdog: no finish after {WATCHDOG_SECONDS} s (last step: {results['steps'][-1:]})"
        save()
        os._exit(3)

    def click(widget: Any) -> None:
        QTest.mouseClick(widget, Qt.MouseButton.LeftButton)

    def window(name: str) -> Any:
        for widget in QApplication.topLevelWidgets():
            if widget.objectName() == name and widget.isVisible():
                return widget
        return None

    def import_dialog() -> Any:
        found = [w for w in QApplication.topLevelWidgets() if isinstance(w, ImportDialog) and w.isVisible()]
        return found[0] if found else None

    def wait_py(probe, timeout: float) -> Generator[Any, Any, Any]:
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{probe} still false after {timeout} s")
            yield Sleep(0.05)

    def wait_js(expr: str, web: Any, timeout: float) -> Generator[Any, Any, Any]:
        deadline = time.monotonic() + timeout
        while True:
            value = yield Js(expr, web)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expr!r} still {value!r} after {timeout} s")
            yield Sleep(0.1)

    def build(version: str) -> Path:
        """Rebuild the project with sources ``version``, as the user's `deckbuild build` would."""
        shutil.rmtree(project / "cards", ignore_errors=True)
        shutil.copytree(project / "versions" / version, project / "cards")
        proc = subprocess.run(
            [sys.executable, "-m", "deckbuild", "build", "cards", "--out", "dist", "--quiet"],
            cwd=project, capture_output=True, text=True, timeout=300,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"build {version} failed:\n{proc.stdout}\n{proc.stderr}")
        return project / "dist" / "imp.apkg"

    def gui_import(path: Path, name: str) -> Generator[Any, Any, None]:
        """Import as a user does: the import page's Import button, then close Anki's import dialog."""
        mw = aqt.mw
        mod_before = mw.col.db.scalar("select max(mod) from notes") or 0
        import_file(mw, str(path))
        dialog = yield from wait_py(import_dialog, 30)
        yield from wait_js(f"!!({IMPORT_BUTTON}) && !({IMPORT_BUTTON}).disabled", dialog.web, 60)
        yield Js(f"({IMPORT_BUTTON}).click(); true", dialog.web)
        # The import ran once Anki's page shows its log (the Import button is gone).
        yield from wait_js(f"!({IMPORT_BUTTON}) && document.body.innerText.length > 0", dialog.web, 120)
        results.setdefault("import_logs", {})[name] = (yield Js("document.body.innerText", dialog.web))[:2000]
        yield Sleep(0.5)
        dialog.close()
        yield from wait_py(lambda: import_dialog() is None, 10)
        results.setdefault("mod_moved", {})[name] = (mw.col.db.scalar("select max(mod) from notes") or 0) > mod_before

    def state() -> dict[str, Any]:
        """What Anki holds: every note of the imported decks, by its Id field (Basic notes by Front)."""
        col = aqt.mw.col
        notes: dict[str, Any] = {}
        for nid in col.find_notes('"deck:Imp"'):
            note = col.get_note(nid)
            key = note["Id"] if "Id" in note else f"basic:{note['Front']}"
            cards = note.cards()
            notes[key] = {
                "tags": sorted(note.tags),
                "decks": sorted({col.decks.name(c.did) for c in cards}),
                "cards": len(cards),
                "suspended": [c.queue == -1 for c in cards],
                "revlog": sum(col.db.scalar("select count() from revlog where cid = ?", c.id) for c in cards),
                "fields": dict(note.items()),
            }
        return notes

    def offer_shown() -> dict[str, Any]:
        dialog = window("deckbuild-after-import")
        tables = {}
        from aqt.qt import QLabel, QRadioButton, QTableWidget

        for table in dialog.findChildren(QTableWidget):
            tables[table.objectName()] = [
                [table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())
            ]
        return {
            "title": dialog.windowTitle(),
            "tables": tables,
            "labels": [w.text() for w in dialog.findChildren(QLabel)],
            "radios": {w.objectName(): w.text() for w in dialog.findChildren(QRadioButton)},
        }

    def script() -> Generator[Any, Any, None]:
        mw = aqt.mw
        original_write = mw.errorHandler.write

        def record(data: str) -> None:
            results["stderr"] += data
            original_write(data)

        mw.errorHandler.write = record
        col = mw.col
        col.set_config("newSpread", 0)

        # --- v1: the first import; nothing is left over, so no offer
        yield from gui_import(build("v1"), "v1")
        yield Sleep(1.0)
        results["v1_offer"] = window("deckbuild-after-import") is not None
        results["after_v1"] = state()
        log("imported v1")

        # --- The user studies and tags in Anki, and adds a note of their own to the deck
        keep_card = col.get_card(col.find_cards("Id:keep")[0])
        keep_card.start_timer()
        col.sched.answer_card(col.sched.build_answer(
            card=keep_card, states=col._backend.get_scheduling_states(keep_card.id), rating=CardAnswer.GOOD))
        tagged = col.get_note(col.find_notes("Id:tagged")[0])
        tagged.tags += ["leech", "marked", "my::own"]
        col.update_note(tagged)
        basic = col.new_note(col.models.by_name("Basic"))
        basic["Front"], basic["Back"] = "my own note", "in a deckbuild deck"
        col.add_note(basic, col.decks.id("Imp::Main"))
        results["before_v2"] = state()
        log("user edits")
        yield Sleep(1.1)  # the rebuild comes after the edits (Anki compares whole seconds)

        # --- v2: `gone` removed, `tagged` changed, `mover` moved, `probe` lost its follow-up
        yield from gui_import(build("v2"), "v2")
        dialog = yield from wait_py(lambda: window("deckbuild-after-import"), 30)
        results["v2_offer"] = offer_shown()
        results["v2_tags_before_apply"] = state()["tagged"]["tags"]
        click(dialog.delete_radio)
        results["v2_offer"]["chosen"] = dialog.choices()
        dialog.grab().save(str(project / "after-import.png"))
        click(dialog.apply_button)
        yield from wait_py(lambda: not col.find_notes("Id:gone"), 30)
        yield from wait_py(lambda: len(col.find_cards("Id:probe")) == 1, 30)
        yield Sleep(0.5)
        results["after_v2"] = state()
        log("imported v2, deleted")

        # --- v3: `keep2` removed; the user chooses suspend and tag
        yield Sleep(1.1)
        yield from gui_import(build("v3"), "v3")
        dialog = yield from wait_py(lambda: window("deckbuild-after-import"), 30)
        results["v3_offer"] = offer_shown()
        click(dialog.suspend_radio)
        click(dialog.apply_button)
        yield from wait_py(lambda: "deckbuild::removed" in col.get_note(col.find_notes("Id:keep2")[0]).tags, 30)
        yield Sleep(0.5)
        results["after_v3"] = state()
        log("imported v3, suspended")

        # --- v4 with the offer turned off: `keep3` removed, nothing is asked
        mw.addonManager.writeConfig(package, dict(mw.addonManager.getConfig(package), offer_after_import=False))
        yield Sleep(1.1)
        yield from gui_import(build("v4"), "v4")
        seen = False
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            seen = seen or window("deckbuild-after-import") is not None
            yield Sleep(0.1)
        results["v4_offer"] = seen
        results["after_v4"] = state()
        log("imported v4, offer off")

        yield Sleep(0.5)
        results["open_dialogs"] = [
            w.objectName() or type(w).__name__
            for w in QApplication.topLevelWidgets()
            if w.isVisible() and w is not mw and w.isWindow() and w.inherits("QDialog")
        ]

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
            command.web.evalWithCallback(command.expr, lambda v: step(gen, v))
        else:
            finish(f"bad command {command!r}")

    def on_profile_open() -> None:
        QTimer.singleShot(WATCHDOG_SECONDS * 1000, watchdog)
        gen = script()
        QTimer.singleShot(1500, lambda: step(gen))

    gui_hooks.profile_did_open.append(on_profile_open)
    log("starting anki")
    aqt._run(argv=["anki", "-b", str(base), "-p", "User 1"])
    results["exited"] = True
    save()


if __name__ == "__main__":
    main()
