"""The after-import flow inside Anki: only wiring and the dialog. The rules
(which tags to keep, what counts as removed, moved or emptied) are in
imports.py and tested without Anki.

Anki 26.9's .apkg import has no hook of its own: ApkgImporter.do_import(mw,
path) opens the import dialog (a web page that calls the backend's
import_anki_package), and when that import has run, Anki fires
operation_did_execute. So the add-on wraps do_import to read the package's
manifest and snapshot its notes before the import, and acts on the next
operation_did_execute: first it puts back the tags the user had added in
Anki (the importer replaced them), then, once the user closes the import
dialog, it offers in one window what is left to clean up. Anything that goes
wrong here leaves Anki's own import as it was: the add-on then does nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

from aqt import gui_hooks, mw
from aqt.import_export import importing
from aqt.operations import CollectionOp
from aqt.qt import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QRadioButton,
    QScrollArea,
    Qt,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from aqt.utils import tooltip

from . import imports, policy

ADDON = __name__.split(".")[0]


@dataclass(frozen=True)
class Pending:
    """An import about to run: the package's manifest, the package's previous
    manifest in the media folder (None if none) and its notes before."""

    path: str
    manifest: imports.Manifest
    previous: Optional[imports.Manifest]
    before: dict


_pending: Optional[Pending] = None
_dialogs: list = []


def setup() -> None:
    """Wrap Anki's .apkg importer and listen for the end of the import (once)."""
    original = importing.ApkgImporter.do_import
    if getattr(original, "_deckbuild", False):
        return

    def do_import(main_window: Any, path: str) -> None:
        before_import(path)
        original(main_window, path)
        _forget_when_closed(_pending)

    do_import._deckbuild = True  # type: ignore[attr-defined]
    importing.ApkgImporter.do_import = staticmethod(do_import)
    gui_hooks.operation_did_execute.append(on_operation_did_execute)


def before_import(path: str) -> None:
    """Remember a deckbuild package's manifest and its notes' tags before Anki imports it."""
    global _pending
    _pending = None
    try:
        manifest = imports.manifest_from_apkg(path)
        if manifest is None or mw.col is None:
            return
        col = mw.col
        previous = imports.newest_manifest(col.media.dir(), manifest.package, exclude=manifest.name)
        _pending = Pending(path, manifest, previous, imports.snapshot(col, manifest))
    except Exception:  # never stand in the way of Anki's own import
        _pending = None


def _forget_when_closed(pending: Optional[Pending]) -> None:
    """Drop the snapshot if Anki's import dialog closes before the import ran
    (Cancel), so that no later operation is taken for that import."""
    if pending is None:
        return
    from aqt.import_export.import_dialog import ImportDialog

    def forget(*_: Any) -> None:
        global _pending
        if _pending is pending:
            _pending = None

    for widget in mw.app.topLevelWidgets():
        if isinstance(widget, ImportDialog) and widget.isVisible():
            # after the import's own operation_did_execute, queued on the main thread
            widget.finished.connect(lambda *_: mw.progress.single_shot(0, forget, False))


def on_operation_did_execute(changes: Any, handler: Any) -> None:
    """operation_did_execute hook: the first operation after a deckbuild
    package's import started that leaves its manifest in the media folder is
    that import (Anki skips a file whose name exists, so re-importing the same
    version also counts)."""
    global _pending
    if _pending is None or mw.col is None:
        return
    if not os.path.exists(os.path.join(mw.col.media.dir(), _pending.manifest.name)):
        return  # another operation: the import copies the package's manifest into the media folder
    pending, _pending = _pending, None
    try:
        after_import(pending)
    except Exception:
        pass


def after_import(pending: Pending) -> None:
    """Put back the tags added in Anki, then offer the clean-up."""
    col = mw.col
    notes = imports.read_notes(col, pending.manifest.notetypes)
    updates = imports.tag_updates(pending.before, notes, pending.manifest, pending.previous)
    back = imports.returned(pending.before, pending.manifest)
    if updates or back:
        CollectionOp(parent=mw, op=lambda c: imports.restore_tags(c, updates, back)).success(
            lambda _: _offer_later(pending.manifest)
        ).run_in_background()
    else:
        _offer_later(pending.manifest)


def _offer_later(manifest: imports.Manifest) -> None:
    """Offer the clean-up once Anki's import dialog is closed (its log comes first)."""
    conf, _ = policy.check_config(mw.addonManager.getConfig(ADDON))
    if not conf.offer_after_import:
        return
    col = mw.col
    leftovers = imports.find_leftovers(
        manifest, imports.read_notes(col, manifest.notetypes), imports.read_cards(col, manifest.notetypes)
    )
    if not leftovers:
        return
    from aqt.import_export.import_dialog import ImportDialog

    shown = [w for w in mw.app.topLevelWidgets() if isinstance(w, ImportDialog) and w.isVisible()]
    if shown:
        fired: list = []

        def on_closed(*_: Any) -> None:
            if not fired:
                fired.append(True)
                mw.progress.single_shot(0, lambda: offer(manifest.package, leftovers), False)

        shown[0].finished.connect(on_closed)
    else:
        mw.progress.single_shot(0, lambda: offer(manifest.package, leftovers), False)


def offer(package: str, leftovers: imports.Leftovers) -> "AfterImportDialog":
    """Open the after-import dialog (non-modal); Apply carries out the choices in one undo step."""
    dialog = AfterImportDialog(package, leftovers, mw)

    def on_accept() -> None:
        choice, move, empty = dialog.choices()
        CollectionOp(parent=mw, op=lambda c: imports.apply(c, leftovers, choice, move, empty)).success(
            lambda _: tooltip("deckbuild: clean-up done (Edit \u2192 Undo takes it back).", parent=mw)
        ).run_in_background()

    dialog.accepted.connect(on_accept)
    _dialogs.append(dialog)
    dialog.finished.connect(lambda *_: _dialogs.remove(dialog) if dialog in _dialogs else None)
    dialog.show()
    return dialog


def _table(name: str, headers: list[str], rows: list[list[str]]) -> QTableWidget:
    table = QTableWidget(len(rows), len(headers))
    table.setObjectName(name)
    table.setHorizontalHeaderLabels(headers)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            table.setItem(r, c, QTableWidgetItem(text))
    table.resizeColumnsToContents()
    table.horizontalHeader().setStretchLastSection(True)
    table.setMaximumHeight(table.horizontalHeader().sizeHint().height() + 8
                           + sum(table.rowHeight(r) for r in range(min(len(rows), 8))))
    return table


def _label(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


class AfterImportDialog(QDialog):
    """One window for what an import of a deckbuild package left behind:
    notes no longer in the package (delete, or suspend and tag, or leave),
    cards in another deck than the sources say (move) and emptied follow-up
    cards (delete)."""

    def __init__(self, package: str, leftovers: imports.Leftovers, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("deckbuild-after-import")
        self.setWindowTitle(f"deckbuild: after importing \u201c{package}\u201d")
        self.resize(760, 560)
        self.leftovers = leftovers
        body = QWidget()
        layout = QVBoxLayout(body)
        self.choice_group = QButtonGroup(self)
        self.delete_radio = self.suspend_radio = self.leave_radio = None
        self.move_check = self.empty_check = None
        if leftovers.removed:
            n = len(leftovers.removed)
            layout.addWidget(_label(
                (f"{n} deckbuild notes in the decks of this package are" if n != 1 else
                 "1 deckbuild note in the decks of this package is")
                + " no longer in it (removed from the sources, or the id changed). Anki's import never deletes notes:"
            ))
            layout.addWidget(_table("deckbuild-removed-list", ["Deck", "Card id", "Front"],
                                    [[i.deck, i.card_id, i.front] for i in leftovers.removed]))
            self.delete_radio = QRadioButton("Delete them")
            self.suspend_radio = QRadioButton(f"Suspend their cards and tag the notes {imports.REMOVED_TAG}")
            self.leave_radio = QRadioButton("Leave them as they are")
            layout.addWidget(_label(
                "Deleting removes these notes and their cards with their scheduling: their review history is "
                "lost to them (Anki keeps the past reviews only in its statistics, and a card that comes back "
                "starts as new). Edit \u2192 Undo takes it back right after. Suspended notes stay findable in "
                f"the browser with tag:{imports.REMOVED_TAG}."
            ))
            for name, radio in (("delete", self.delete_radio), ("suspend", self.suspend_radio), ("leave", self.leave_radio)):
                radio.setObjectName(f"deckbuild-removed-{name}")
                self.choice_group.addButton(radio)
                layout.addWidget(radio)
            self.suspend_radio.setChecked(True)
        if leftovers.moved:
            n = sum(len(i.card_ids) for i in leftovers.moved)
            layout.addWidget(_label(
                (f"{n} cards" if n != 1 else "1 card") + " moved to another deck in the sources; Anki's import left "
                + ("them where they were:" if n != 1 else "it where it was:")
            ))
            layout.addWidget(_table("deckbuild-moved-list", ["Deck now", "Deck in the sources", "Card id", "Front"],
                                    [[i.deck, i.to_deck, i.card_id, i.front] for i in leftovers.moved]))
            self.move_check = QCheckBox("Move them to the deck the sources name (their review history stays).")
            self.move_check.setObjectName("deckbuild-move")
            self.move_check.setChecked(True)
            layout.addWidget(self.move_check)
        if leftovers.emptied:
            n = sum(len(i.card_ids) for i in leftovers.emptied)
            layout.addWidget(_label(
                (f"{n} follow-up cards lost their question in the sources and now show" if n != 1 else
                 "1 follow-up card lost its question in the sources and now shows") + " an empty front:"
            ))
            layout.addWidget(_table("deckbuild-emptied-list", ["Deck", "Card id", "Front of the note"],
                                    [[i.deck, i.card_id, i.front] for i in leftovers.emptied]))
            self.empty_check = QCheckBox(
                "Delete these cards, and their review history with them (the notes keep their other cards)."
            )
            self.empty_check.setObjectName("deckbuild-delete-emptied")
            self.empty_check.setChecked(True)
            layout.addWidget(self.empty_check)
        layout.addWidget(_label(
            "Notes of other note types are never touched. To stop this offer, set "
            "\"offer_after_import\" to false in the add-on's config."
        ))
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        buttons = QDialogButtonBox()
        self.apply_button = buttons.addButton("Apply", QDialogButtonBox.ButtonRole.AcceptRole)
        self.apply_button.setObjectName("deckbuild-after-import-apply")
        self.cancel_button = buttons.addButton("Not now", QDialogButtonBox.ButtonRole.RejectRole)
        self.cancel_button.setObjectName("deckbuild-after-import-cancel")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        outer = QVBoxLayout(self)
        outer.addWidget(scroll, 1)
        outer.addWidget(buttons)

    def choices(self) -> tuple[str, bool, bool]:
        """Return (imports.DELETE | SUSPEND | LEAVE, move the moved cards, delete the emptied cards)."""
        choice = imports.LEAVE
        if self.delete_radio is not None and self.delete_radio.isChecked():
            choice = imports.DELETE
        elif self.suspend_radio is not None and self.suspend_radio.isChecked():
            choice = imports.SUSPEND
        move = bool(self.move_check is not None and self.move_check.isChecked())
        empty = bool(self.empty_check is not None and self.empty_check.isChecked())
        return choice, move, empty
