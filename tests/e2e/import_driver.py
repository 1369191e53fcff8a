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
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Generator

sys.path.insert(0, str(Path(__file__).parent))
from harness import Js, Results, Sleep, click, open_dialogs, prepare_base, record_stderr, run_anki, wait_js, wait_py  # noqa: E402
from harness import top_level as window  # noqa: E402

WATCHDOG_SECONDS = 400


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
    from aqt.import_export.import_dialog import ImportDialog
    from aqt.import_export.importing import import_file
    from aqt.qt import QApplication

    results_file = Results(Path(args.results))
    results, log = results_file.data, results_file.log

    def import_dialog() -> Any:
        found = [w for w in QApplication.topLevelWidgets() if isinstance(w, ImportDialog) and w.isVisible()]
        return found[0] if found else None

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
        yield from wait_js(f"!!({IMPORT_BUTTON}) && !({IMPORT_BUTTON}).disabled", 60, web=dialog.web)
        yield Js(f"({IMPORT_BUTTON}).click(); true", dialog.web)
        # The import ran once Anki's page shows its log's overview ("N notes found in file"); before
        # that it says "Gathering data...", and closing the dialog then interrupts the import.
        yield from wait_js(f"!({IMPORT_BUTTON}) && document.body.innerText.includes('found in file')", 120, web=dialog.web)
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

    def offered(version: str, name: str) -> Generator[Any, Any, Any]:
        """Rebuild with ``version``, import it, and return the after-import dialog once it is
        shown (what it shows goes into the results as ``{name}_offer``)."""
        yield Sleep(1.1)  # the rebuild comes after the last change (Anki compares whole seconds)
        yield from gui_import(build(version), name)
        dialog = yield from wait_py(lambda: window("deckbuild-after-import"), 30)
        results[f"{name}_offer"] = offer_shown()
        return dialog

    def script() -> Generator[Any, Any, None]:
        mw = aqt.mw
        record_stderr(results_file)
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

        # --- v2: `gone` removed, `tagged` changed, `mover` moved, `probe` lost its follow-up
        dialog = yield from offered("v2", "v2")
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
        dialog = yield from offered("v3", "v3")
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

        # --- The same build again with the offer on: `keep3` is listed; "Not now" touches nothing
        mw.addonManager.writeConfig(package, dict(mw.addonManager.getConfig(package), offer_after_import=True))
        dialog = yield from offered("v4", "not_now")
        click(dialog.cancel_button)
        yield from wait_py(lambda: window("deckbuild-after-import") is None, 10)
        yield Sleep(0.5)
        results["after_not_now"] = state()
        log("not now")

        # --- Once more: "Leave them as they are" and Apply touches nothing either
        dialog = yield from offered("v4", "leave")
        click(dialog.leave_radio)
        results["leave_offer"]["chosen"] = dialog.choices()
        click(dialog.apply_button)
        yield from wait_py(lambda: window("deckbuild-after-import") is None, 10)
        yield Sleep(1.0)
        results["after_leave"] = state()
        log("left as they are")

        yield Sleep(0.5)
        results["open_dialogs"] = open_dialogs()

    run_anki(base, results_file, script, WATCHDOG_SECONDS)

if __name__ == "__main__":
    main()
