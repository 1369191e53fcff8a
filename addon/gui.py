"""The Anki-facing layer: only wiring. Hooks give code cards the add-on's code
block and output box, the reviewer's bottom bar and the previewer get Run code
and Scratchpad controls, Qt shortcuts do the same, and the confirmation and
scratchpad dialogs live here. What may run is decided in policy.py, what is
shown in core.py; both are tested without Anki.

A run starts only from a gesture in Anki's own UI: a click in the bottom bar
(a web view card scripts cannot reach), a click on a Qt button, or a Qt
shortcut (a real key press). Messages from a card's web view never start
anything.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from aqt import gui_hooks, mw
from aqt.operations import QueryOp
from aqt.qt import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFontDatabase,
    QHBoxLayout,
    QKeySequence,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QShortcut,
    QSplitter,
    Qt,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)
from aqt.reviewer import ReviewerBottomBar
from aqt.utils import showWarning

from . import core, import_gui, policy
from .session import NoPythonError, Session

ADDON = __name__.split(".")[0]
IDLE_SECONDS = 15 * 60  # close the warm worker after this long without a run
IDLE_CHECK_MS = 60 * 1000

_session: Optional[Session] = None
_dialogs: list[QDialog] = []
# card id -> the snippet its code block showed when it was last rendered
_displayed: dict[int, str] = {}
DISPLAYED_KEPT = 256  # cards remembered (the reviewer and previewers show one each)


def setup() -> None:
    """Register the hooks. Called once by __init__.py inside Anki."""
    gui_hooks.card_will_show.append(on_card_will_show)
    gui_hooks.webview_did_receive_js_message.append(on_js_message)
    gui_hooks.state_shortcuts_will_change.append(on_state_shortcuts)
    gui_hooks.reviewer_did_show_question.append(_update_bottom_bar)
    gui_hooks.reviewer_did_show_answer.append(_update_bottom_bar)
    gui_hooks.previewer_did_init.append(on_previewer_did_init)
    gui_hooks.profile_will_close.append(shutdown)
    mw.addonManager.setConfigUpdatedAction(ADDON, on_config_saved)
    mw.progress.timer(IDLE_CHECK_MS, _close_if_idle, True, False, parent=mw)
    import_gui.setup()


def session() -> Session:
    """Return the add-on's Session, creating it on first use."""
    global _session
    if _session is None:
        _session = Session()
    return _session


def settings() -> tuple[policy.Settings, list[str]]:
    """Return the current config, checked, and its problems (re-read on every run)."""
    return policy.check_config(mw.addonManager.getConfig(ADDON))


def on_config_saved(config: Any) -> None:
    """Config editor saved: say at once which values will fall back to their
    defaults (each run says it again in the card)."""
    _, problems = policy.check_config(config)
    if problems:
        showWarning("\n\n".join(problems), title="deckbuild: config", textFormat="plain")


def shutdown() -> None:
    """Stop the worker process (profile closing), without waiting for a run."""
    if _session is not None:
        _session.shutdown()


def _close_if_idle() -> None:
    """Close the worker off the UI thread if it has been idle long enough."""
    if _session is not None and not _session.running:
        idle = _session
        mw.taskman.run_in_background(lambda: idle.close_if_idle(IDLE_SECONDS))


# ---------------------------------------------------------------------------
# The card


def _code_note(card: Any) -> Any:
    """Return the card's note if it is a deckbuild code note, else None."""
    try:
        note = card.note() if card is not None else None
        if note is not None and core.is_code_notetype(note.note_type()) and "Code" in note:
            return note
    except Exception:
        pass
    return None


def on_card_will_show(text: str, card: Any, kind: str) -> str:
    """card_will_show hook: show a code card's snippet from its Code field, and
    add the output box and a line saying how to run it."""
    if kind not in core.CARD_KINDS:
        return text
    note = _code_note(card)
    if note is None:
        return text
    shown = core.show_code(text, note["CodeHtml"] if "CodeHtml" in note else "", note["Code"])
    _displayed.pop(card.id, None)
    _displayed[card.id] = shown.code
    while len(_displayed) > DISPLAYED_KEPT:
        del _displayed[next(iter(_displayed))]
    where = "the bar below" if kind.startswith("review") else "the buttons below"
    return shown.text + core.card_controls_html(card.id, where)


def on_js_message(handled: tuple[bool, Any], message: str, context: Any) -> tuple[bool, Any]:
    """webview_did_receive_js_message hook.

    Only the reviewer's bottom bar may start an action, with exactly
    "deckbuild:run" or "deckbuild:scratchpad". Every other deckbuild message,
    from the card or anywhere else, is swallowed and does nothing.
    """
    if not policy.is_ours(message):
        return handled
    action = policy.action_for_message(message, isinstance(context, ReviewerBottomBar))
    if action is not None:
        reviewer = context.reviewer
        _later(action, lambda: (reviewer.card, reviewer.web))
    return (True, None)


def on_state_shortcuts(state: str, shortcuts: list) -> None:
    """state_shortcuts_will_change hook: X runs, Shift+X opens the scratchpad."""
    if state != "review":
        return
    reviewer = mw.reviewer
    shortcuts.append((core.RUN_KEY, lambda: _later(policy.RUN, lambda: (reviewer.card, reviewer.web))))
    shortcuts.append((core.SCRATCHPAD_KEY, lambda: _later(policy.SCRATCHPAD, lambda: (reviewer.card, reviewer.web))))


def _later(action: str, target: Callable[[], tuple[Any, Any]]) -> None:
    """Start action on the (card, web view) on screen at the gesture, from the
    event loop: the key press or click that asked for it has returned by then."""
    card, web = target()
    mw.progress.single_shot(0, lambda: start(action, card, web), False)


def _update_bottom_bar(card: Any) -> None:
    """Show the bottom bar's Run code / Scratchpad buttons for code cards only."""
    mw.reviewer.bottom.web.eval(core.bottom_bar_js(_code_note(card) is not None))


def on_previewer_did_init(previewer: Any) -> None:
    """previewer_did_init hook: add Run code and Scratchpad buttons (Qt
    widgets) once the previewer has built its button box."""

    def add() -> None:
        bbox = getattr(previewer, "bbox", None)
        if bbox is None:
            return
        for name, label, key, action in (
            ("deckbuild-previewer-run", "\u25b6 Run code", core.RUN_KEY, policy.RUN),
            ("deckbuild-previewer-scratchpad", "Scratchpad", core.SCRATCHPAD_KEY, policy.SCRATCHPAD),
        ):
            button = bbox.addButton(label, QDialogButtonBox.ButtonRole.ActionRole)
            button.setObjectName(name)
            button.setAutoDefault(False)
            button.setShortcut(QKeySequence(key))
            button.setToolTip(f"Shortcut key: {key}")
            button.clicked.connect(
                lambda _=False, a=action: _later(a, lambda: (previewer.card(), getattr(previewer, "_web", None)))
            )

    mw.progress.single_shot(0, add, False)


def _origin(card: Any, note: Any) -> policy.Origin:
    deck_id = card.odid or card.did
    return policy.Origin(
        notetype_id=note.mid,
        deck_id=deck_id,
        deck_name=mw.col.decks.name(deck_id),
        note_id=note.id,
        note_label=note["Id"] if "Id" in note and note["Id"] else str(note.id),
    )


def start(action: str, card: Any, web: Any) -> None:
    """Run the shown code card's snippet, or open it in the scratchpad.

    Called only from a gesture in Anki's UI. The snippet is the one the
    card's code block showed (core.show_code); if the note changed since,
    nothing runs and the card says why.
    """
    note = _code_note(card)
    if note is None or web is None:
        return
    code = _displayed.get(card.id)
    if code is None or code != core.code_from_field(note["Code"]):
        _show(web, card.id, core.message_html(
            "This note changed since the card was shown: nothing ran. Show the card again to run it.", "error"))
        return
    origin = _origin(card, note)
    if action == policy.SCRATCHPAD:
        open_scratchpad(origin, code)
        return
    conf, problems = settings()
    notices = "".join(core.message_html(p) for p in problems)
    if not confirm(code, origin, conf):
        _show(web, card.id, notices + core.message_html("Cancelled: nothing ran.", "meta"))
        return
    _show(web, card.id, notices + core.message_html("Running\u2026", "meta"))
    run_in_background(code, conf, on_done=lambda html: _show(web, card.id, notices + html), parent=mw)


def _show(web: Any, card_id: int, inner_html: str) -> None:
    """Put HTML into the card's output box, if the webview still exists."""
    try:
        web.eval(core.show_output_js(card_id, inner_html))
    except RuntimeError:  # the previewer was closed meanwhile
        pass


def run_in_background(
    code: str,
    conf: policy.Settings,
    on_done: Callable[[str], None],
    parent: QWidget,
) -> None:
    """Run code in the warm worker off the UI thread, then call on_done(html)
    on the main thread with the result, or with a message if it could not run.
    Never raises and never shows Anki's error dialog."""
    sess = session()

    def op(_col: Any) -> tuple[Any, str]:
        python = sess.interpreter(conf.python)
        return sess.run(code, python, conf.timeout_seconds, conf.max_output_bytes), python

    def success(out: tuple[Any, str]) -> None:
        result, python = out
        on_done(core.result_html(result, conf, python))

    def failure(exc: Exception) -> None:
        if isinstance(exc, NoPythonError):
            on_done(core.message_html(core.NO_PYTHON_TEXT, "error"))
        else:
            where = conf.python or "the interpreter found on PATH"
            on_done(
                core.message_html(
                    f"Could not run the snippet with {where}: {exc}. "
                    "Check \"python\" in the add-on's config.",
                    "error",
                )
            )

    QueryOp(parent=parent, op=op, success=success).failure(failure).without_collection().run_in_background()


# ---------------------------------------------------------------------------
# The confirmation


class ConfirmDialog(QDialog):
    """Asks before code from an untrusted deck runs: shows the exact code,
    names the deck and the note, and offers to trust the deck."""

    def __init__(self, code: str, origin: policy.Origin, conf: policy.Settings, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("deckbuild-confirm")
        self.setWindowTitle("deckbuild: run this code?")
        self.resize(700, 520)
        where = conf.python or "a Python with torch found on your PATH"
        self.label = QLabel(
            f"Run the code of note \u201c{origin.note_label}\u201d (note id {origin.note_id}) "
            f"from deck \u201c{origin.deck_name}\u201d?\n\n"
            "It runs on your computer with your permissions: it can read, change and "
            f"delete your files. It runs in {where}. Only run code from decks you trust."
        )
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.code_view = QPlainTextEdit()
        self.code_view.setObjectName("deckbuild-confirm-code")
        self.code_view.setReadOnly(True)
        self.code_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.code_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.code_view.setPlainText(code)
        self.trust_check = QCheckBox(
            f"Trust deck \u201c{origin.deck_name}\u201d: run its code cards without asking again"
        )
        self.trust_check.setObjectName("deckbuild-trust")
        buttons = QDialogButtonBox()
        self.run_button = buttons.addButton("Run", QDialogButtonBox.ButtonRole.AcceptRole)
        self.run_button.setObjectName("deckbuild-confirm-run")
        self.cancel_button = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.cancel_button.setObjectName("deckbuild-confirm-cancel")
        self.run_button.setAutoDefault(False)
        self.cancel_button.setDefault(True)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        layout.addWidget(self.code_view, 1)
        layout.addWidget(self.trust_check)
        layout.addWidget(buttons)


def confirm(code: str, origin: policy.Origin, conf: policy.Settings) -> bool:
    """Return True if code from origin may run now: asking is off, the deck is
    trusted, or the user clicked Run in the confirmation. Ticking "Trust deck"
    stores the trust in the collection's config, so it lasts across sessions
    (and syncs with the collection)."""
    trusted = policy.trusted_keys(mw.col.get_config(policy.TRUST_CONFIG_KEY, None))
    if not policy.must_ask(conf, trusted, origin):
        return True
    dialog = ConfirmDialog(code, origin, conf, mw)
    accepted = dialog.exec() == QDialog.DialogCode.Accepted
    trust = dialog.trust_check.isChecked()
    dialog.deleteLater()
    if not accepted:
        return False
    if trust:
        stored = mw.col.get_config(policy.TRUST_CONFIG_KEY, None)
        mw.col.set_config(policy.TRUST_CONFIG_KEY, policy.with_trust(stored, origin))
    return True


# ---------------------------------------------------------------------------
# The scratchpad


class Scratchpad(QDialog):
    """A window with an editable copy of a card's snippet, a Run button and the
    output. Edits stay in the window: the note is never changed."""

    def __init__(self, origin: policy.Origin, code: str, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("deckbuild-scratchpad")
        self.setWindowTitle(f"deckbuild scratchpad \u2014 {origin.note_label}")
        self._origin = origin
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.resize(760, 620)
        self._original = code

        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.editor = QPlainTextEdit(code)
        self.editor.setFont(mono)
        self.editor.setTabStopDistance(4 * self.editor.fontMetrics().horizontalAdvance(" "))
        self.output = QTextBrowser()
        self.output.setFont(mono)
        self.output.setPlaceholderText("Press Run (Ctrl+Enter) to run the code above.")

        self.run_button = QPushButton("\u25b6 Run")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.run)
        reset = QPushButton("Reset to the card's code")
        reset.clicked.connect(lambda: self.editor.setPlainText(self._original))
        self.status = QLabel("Edits here never change the note.")
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            QShortcut(QKeySequence(keys), self, activated=self.run)

        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(reset)
        buttons.addWidget(self.status, 1)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.editor)
        split.addWidget(self.output)
        split.setSizes([360, 220])
        layout = QVBoxLayout(self)
        layout.addWidget(split, 1)
        layout.addLayout(buttons)

    def run(self) -> None:
        """Run the code in the editor and show the result below it."""
        conf, problems = settings()
        # toPlainText() would turn non-breaking spaces into spaces; the raw
        # text keeps them, with Qt's paragraph separators for newlines.
        code = self.editor.document().toRawText().replace("\u2029", "\n").replace("\u2028", "\n")
        if not self.run_button.isEnabled() or not confirm(code, self._origin, conf):
            return
        self.run_button.setEnabled(False)
        self.status.setText("Running\u2026")
        notices = "".join(core.message_html(p) for p in problems)
        run_in_background(code, conf, on_done=lambda html: self._done(notices + html), parent=self)

    def _done(self, html: str) -> None:
        try:
            self.output.setHtml(_qt_html(html))
            self.run_button.setEnabled(True)
            self.status.setText("Edits here never change the note.")
        except RuntimeError:  # closed while running
            pass


def _qt_html(card_html: str) -> str:
    """Give the card's result HTML the few inline styles QTextBrowser honours,
    and only the figures for Anki's current theme."""
    from aqt.theme import theme_manager

    return (
        core.one_variant(card_html, theme_manager.night_mode).replace('class="deckbuild-stderr"', 'style="color:#c77c02"')
        .replace('class="deckbuild-error"', 'style="color:#c62828"')
        .replace('class="deckbuild-notice"', 'style="color:#c77c02; font-weight:bold"')
        .replace('class="deckbuild-label"', 'style="font-weight:bold"')
        .replace('class="deckbuild-meta"', 'style="color:gray"')
    )


def open_scratchpad(origin: policy.Origin, code: str) -> Scratchpad:
    """Open a scratchpad on a copy of code from origin's note; returns the
    (non-modal) dialog. Running edited code asks like Run does (same deck trust)."""
    dialog = Scratchpad(origin, code, mw)
    _dialogs.append(dialog)
    dialog.destroyed.connect(lambda *_: _dialogs.remove(dialog) if dialog in _dialogs else None)
    dialog.show()
    return dialog
