"""The Anki-facing layer: hooks that add the Run button to code cards, the
bridge handler that runs a card's own snippet off the UI thread, and the
scratchpad dialog. Everything that can be done without Anki lives in core.py
and session.py.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from aqt import gui_hooks, mw
from aqt.browser.previewer import Previewer
from aqt.operations import QueryOp
from aqt.qt import (
    QCheckBox,
    QDialog,
    QFontDatabase,
    QHBoxLayout,
    QKeySequence,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QShortcut,
    QSplitter,
    Qt,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)
from aqt.reviewer import Reviewer

from . import core
from .session import NoPythonError, Session

ADDON = __name__.split(".")[0]
IDLE_SECONDS = 15 * 60  # close the warm worker after this long without a run
IDLE_CHECK_MS = 60 * 1000

_session: Optional[Session] = None
_confirmed = False  # the user said yes to running code in this Anki session
_dialogs: list[QDialog] = []


def setup() -> None:
    """Register the hooks. Called once by __init__.py inside Anki."""
    gui_hooks.card_will_show.append(on_card_will_show)
    gui_hooks.webview_did_receive_js_message.append(on_js_message)
    gui_hooks.profile_will_close.append(shutdown)
    mw.progress.timer(IDLE_CHECK_MS, _close_if_idle, True, False, parent=mw)


def session() -> Session:
    """Return the add-on's Session, creating it on first use."""
    global _session
    if _session is None:
        _session = Session()
    return _session


def settings() -> core.Settings:
    """Return the current config as Settings (re-read on every run)."""
    return core.settings_from_config(mw.addonManager.getConfig(ADDON))


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


def on_card_will_show(text: str, card: Any, kind: str) -> str:
    """card_will_show hook: append the Run controls to deckbuild code cards."""
    if kind not in core.CARD_KINDS:
        return text
    try:
        if not core.is_code_notetype(card.note_type()):
            return text
    except Exception:
        return text
    return text + core.card_controls_html(card.id)


def _shown_card(context: Any) -> Any:
    """Return the card on screen in a reviewer or previewer, else None."""
    if isinstance(context, Reviewer):
        return context.card
    if isinstance(context, Previewer):
        return context.card()
    return None


def _webview(context: Any) -> Any:
    """Return the webview of a reviewer (web) or previewer (_web)."""
    return getattr(context, "web", None) or getattr(context, "_web", None)


def on_js_message(handled: tuple[bool, Any], message: str, context: Any) -> tuple[bool, Any]:
    """webview_did_receive_js_message hook: handle deckbuild's two actions.

    The message only names the action. The code is read from the note of the
    card on screen, and only if that note is a deckbuild code note. Any other
    deckbuild message (one carrying code, say) is swallowed and runs nothing.
    """
    action = core.action_for_message(message)
    if action is None:
        return handled
    if action == "ignore":
        return (True, None)
    card = _shown_card(context)
    web = _webview(context)
    try:
        note = card.note() if card is not None else None
        ours = note is not None and core.is_code_notetype(note.note_type()) and "Code" in note
    except Exception:
        ours = False
    if not ours or web is None:
        return (True, None)
    code = core.code_from_field(note["Code"])
    title = note["Id"] if "Id" in note else str(note.id)
    # Return to the webview first; dialogs and runs start from the event loop.
    if action == "run":
        mw.progress.single_shot(0, lambda: _run_on_card(web, card.id, code), False)
    else:
        mw.progress.single_shot(0, lambda: open_scratchpad(title, code), False)
    return (True, None)


def _show(web: Any, card_id: int, inner_html: str) -> None:
    """Put HTML into the card's output box, if the webview still exists."""
    try:
        web.eval(core.show_output_js(card_id, inner_html))
    except RuntimeError:  # the previewer was closed meanwhile
        pass


def _run_on_card(web: Any, card_id: int, code: str) -> None:
    """Confirm if needed, then run code and show the result in the card."""
    conf = settings()
    if not confirm(code, conf):
        return
    _show(web, card_id, core.message_html("Running\u2026", "meta"))
    run_in_background(
        code,
        conf,
        on_done=lambda html: _show(web, card_id, html),
        parent=mw,
    )


def run_in_background(
    code: str,
    conf: core.Settings,
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


def confirm(code: str, conf: core.Settings) -> bool:
    """Ask once per session before running code, unless the user opted out.

    Returns True to go ahead. "Don't ask again" writes ask_before_running=false
    into the add-on's config.
    """
    global _confirmed
    if _confirmed or not conf.ask_before_running:
        return True
    box = QMessageBox(mw)
    box.setObjectName("deckbuild-confirm")
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("deckbuild: run this code?")
    where = conf.python or "a Python with torch found on your PATH"
    box.setText(
        "This card's code runs on your computer with your permissions: "
        "it can read, change and delete your files.\n\n"
        f"It runs in {where}. Only run code from decks you trust."
    )
    box.setDetailedText(core.preview(code, 40))
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    check = QCheckBox("Don't ask again")
    box.setCheckBox(check)
    box.exec()
    if box.clickedButton() is not box.button(QMessageBox.StandardButton.Yes):
        return False
    _confirmed = True
    if check.isChecked():
        config = mw.addonManager.getConfig(ADDON) or {}
        config["ask_before_running"] = False
        mw.addonManager.writeConfig(ADDON, config)
    return True


# ---------------------------------------------------------------------------
# The scratchpad


class Scratchpad(QDialog):
    """A window with an editable copy of a card's snippet, a Run button and the
    output. Edits stay in the window: the note is never changed."""

    def __init__(self, title: str, code: str, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("deckbuild-scratchpad")
        self.setWindowTitle(f"deckbuild scratchpad \u2014 {title}")
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
        conf = settings()
        code = self.editor.toPlainText()
        if not self.run_button.isEnabled() or not confirm(code, conf):
            return
        self.run_button.setEnabled(False)
        self.status.setText("Running\u2026")
        run_in_background(code, conf, on_done=self._done, parent=self)

    def _done(self, html: str) -> None:
        try:
            self.output.setHtml(_qt_html(html))
            self.run_button.setEnabled(True)
            self.status.setText("Edits here never change the note.")
        except RuntimeError:  # closed while running
            pass


def _qt_html(card_html: str) -> str:
    """Give the card's result HTML the few inline styles QTextBrowser honours."""
    return (
        card_html.replace('class="deckbuild-stderr"', 'style="color:#c77c02"')
        .replace('class="deckbuild-error"', 'style="color:#c62828"')
        .replace('class="deckbuild-notice"', 'style="color:#c77c02; font-weight:bold"')
        .replace('class="deckbuild-label"', 'style="font-weight:bold"')
        .replace('class="deckbuild-meta"', 'style="color:gray"')
    )


def open_scratchpad(title: str, code: str) -> Scratchpad:
    """Open a scratchpad on a copy of code; returns the (non-modal) dialog."""
    dialog = Scratchpad(title, code, mw)
    _dialogs.append(dialog)
    dialog.destroyed.connect(lambda *_: _dialogs.remove(dialog) if dialog in _dialogs else None)
    dialog.show()
    return dialog
