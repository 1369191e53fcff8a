"""The add-on's hooks with stand-in cards: which cards get the code block and
output box, and that only the reviewer's bottom bar starts an action (the real
attacks run in real Anki in tests/e2e)."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

import aqt  # noqa: E402,F401 - a test dependency: an import error must fail, not skip
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aqt.reviewer import Reviewer, ReviewerBottomBar  # noqa: E402

from addon import gui, policy  # noqa: E402

CODE_TYPE = {"id": 1738400004, "name": "deckbuild Code", "flds": [{"name": "Code"}, {"name": "Output"}]}
QA_TYPE = {"id": 1738400001, "name": "deckbuild Q&A", "flds": [{"name": "Question"}]}


class FakeNote(dict):
    id = 7

    def __init__(self, notetype, **fields):
        super().__init__(fields)
        self._notetype = notetype

    def note_type(self):
        return self._notetype


class FakeCard:
    id = 99

    def __init__(self, note):
        self._note = note

    def note(self):
        return self._note

    def note_type(self):
        return self._note.note_type()


def reviewer_showing(card):
    reviewer = Reviewer.__new__(Reviewer)  # no main window needed for these tests
    reviewer.card = card
    reviewer.web = object()
    return reviewer


CODE_CARD = FakeCard(FakeNote(CODE_TYPE, Id="c1", Code="print(&quot;hi&quot;)\n", CodeHtml="<pre>print(&quot;hi&quot;)\n</pre>"))
QA_CARD = FakeCard(FakeNote(QA_TYPE, Id="q1", Question="?"))
CARD_HTML = '<div class="deckbuild-code"><pre>print(&quot;hi&quot;)\n</pre></div>'


@pytest.mark.parametrize("kind", ["reviewQuestion", "reviewAnswer", "previewQuestion", "previewAnswer"])
def test_code_cards_get_the_code_block_and_output_box_but_no_control(kind):
    html = gui.on_card_will_show(CARD_HTML, CODE_CARD, kind)
    assert '<pre class="deckbuild-shown codehilite">' in html and 'class="deckbuild-output"' in html
    assert "pycmd" not in html and "<button" not in html
    assert gui._displayed[CODE_CARD.id] == 'print("hi")\n'


def test_the_shown_block_takes_the_colours_of_the_code_html_in_place_and_says_where_to_run(monkeypatch):
    monkeypatch.setattr(gui, "_displayed", {})
    styled = '<pre><span class="k">print</span>(&quot;hi&quot;)\n</pre>'
    card = FakeCard(FakeNote(CODE_TYPE, Id="c1", Code="print(&quot;hi&quot;)\n", CodeHtml=styled))
    for kind, where in (("reviewQuestion", "the bar below"), ("previewAnswer", "the buttons below")):
        html = gui.on_card_will_show(f'<div class="deckbuild-code">{styled}</div>', card, kind)
        assert '<span class="k">print</span>' in html and 'class="deckbuild-mismatch"' not in html and "deckbuild-added\"" not in html
        assert f"Run code in {where};" in html


def test_a_code_note_without_a_code_html_field_gets_its_block_added(monkeypatch):
    monkeypatch.setattr(gui, "_displayed", {})
    card = FakeCard(FakeNote(CODE_TYPE, Id="c1", Code="print(1)\n"))
    html = gui.on_card_will_show("<p>q</p>", card, "reviewQuestion")
    assert html.startswith('<p>q</p><div class="deckbuild-code deckbuild-added">') and gui._displayed[card.id] == "print(1)\n"


def test_the_cards_remembered_are_the_last_256_shown(monkeypatch):
    # what a gesture may run is what its card last showed; a card shown again counts as new
    monkeypatch.setattr(gui, "_displayed", {})
    cards = [FakeCard(FakeNote(CODE_TYPE, Id=f"c{i}", Code=f"print({i})\n", CodeHtml="")) for i in range(300)]
    for i, card in enumerate(cards):
        card.id = i
    for card in cards[:256]:
        gui.on_card_will_show("<p>q</p>", card, "reviewQuestion")
    gui.on_card_will_show("<p>q</p>", cards[0], "reviewQuestion")  # shown again: now the newest
    for card in cards[256:]:
        gui.on_card_will_show("<p>q</p>", card, "reviewQuestion")
    assert len(gui._displayed) == gui.DISPLAYED_KEPT == 256
    assert 0 in gui._displayed and not any(i in gui._displayed for i in range(1, 45))
    assert gui._displayed[299] == "print(299)\n"


@pytest.mark.parametrize(
    "card, kind",
    [(QA_CARD, "reviewQuestion"), (CODE_CARD, "clayoutQuestion"), (CODE_CARD, "editorQuestion"),
     # a note type of someone else's with a Code field of its own is not a code card
     (FakeCard(FakeNote({"id": 5, "name": "Programming", "flds": [{"name": "Code"}]}, Code="rm -rf ~")), "reviewQuestion")],
)
def test_other_cards_and_screens_are_left_alone(card, kind):
    assert gui.on_card_will_show("<p>card</p>", card, kind) == "<p>card</p>"


class Scheduler:
    def __init__(self):
        self.calls = []

    def single_shot(self, ms, func, requires_collection=True):
        self.calls.append(func)


@pytest.fixture
def scheduled(monkeypatch):
    scheduler = Scheduler()
    monkeypatch.setattr(gui, "mw", type("FakeMw", (), {"progress": scheduler})())
    return scheduler.calls


MESSAGES = ["deckbuild:run", "deckbuild:scratchpad", "deckbuild:run:import os; os.remove('x')", "deckbuild:x"]


@pytest.mark.parametrize("message", MESSAGES)
@pytest.mark.parametrize("context", [reviewer_showing(CODE_CARD), object(), None], ids=["reviewer", "other", "none"])
def test_no_message_from_a_card_or_another_screen_starts_anything(scheduled, message, context):
    assert gui.on_js_message((False, None), message, context) == (True, None)
    assert scheduled == []


def test_other_messages_pass_through(scheduled):
    assert gui.on_js_message((False, None), "ans", reviewer_showing(CODE_CARD)) == (False, None)
    assert gui.on_js_message((False, None), "ans", ReviewerBottomBar(reviewer_showing(CODE_CARD))) == (False, None)
    assert scheduled == []


@pytest.mark.parametrize("message, action", [("deckbuild:run", "run"), ("deckbuild:scratchpad", "scratchpad")])
def test_the_bottom_bar_starts_the_action_on_the_shown_card(scheduled, monkeypatch, message, action):
    starts = []
    monkeypatch.setattr(gui, "start", lambda *args: starts.append(args))
    reviewer = reviewer_showing(CODE_CARD)
    assert gui.on_js_message((False, None), message, ReviewerBottomBar(reviewer)) == (True, None)
    [later] = scheduled
    later()
    assert starts == [(action, CODE_CARD, reviewer.web)]


class FakeWeb:
    def __init__(self):
        self.js = []

    def eval(self, js):
        self.js.append(js)


@pytest.mark.parametrize("displayed", [None, 'print("something else")\n'])
def test_a_note_changed_since_display_runs_nothing(monkeypatch, displayed):
    monkeypatch.setattr(gui, "_displayed", {} if displayed is None else {CODE_CARD.id: displayed})
    monkeypatch.setattr(gui, "run_in_background", lambda *a, **k: pytest.fail("ran"))
    monkeypatch.setattr(gui, "confirm", lambda *a, **k: pytest.fail("asked"))
    web = FakeWeb()
    gui.start("run", CODE_CARD, web)
    [js] = web.js
    from addon import core

    changed = core.message_html("This note changed since the card was shown: nothing ran. Show the card again to run it.", "error")
    assert js == core.show_output_js(99, changed) and 'class="deckbuild-error"' in changed
    gui.start("run", CODE_CARD, None)  # a previewer closed meanwhile: nothing, and no error
    assert web.js == [js]


def test_the_dialog_names_a_note_by_its_id_field_or_else_by_its_note_id(monkeypatch):
    decks = types.SimpleNamespace(name=lambda deck_id: {5: "Home", 6: "Filtered"}[deck_id])
    monkeypatch.setattr(gui, "mw", types.SimpleNamespace(col=types.SimpleNamespace(decks=decks)))
    for fields, label in (({"Id": "c1"}, "c1"), ({"Id": ""}, "7"), ({}, "7")):
        note = FakeNote(CODE_TYPE, Code="x", **fields)
        note.mid = 1738400004
        card = FakeCard(note)
        card.did, card.odid = 6, 5
        assert gui._origin(card, note) == policy.Origin(notetype_id=1738400004, deck_id=5, deck_name="Home", note_id=7, note_label=label)
        card.odid = 0  # not in a filtered deck
        assert gui._origin(card, note).deck_name == "Filtered"


# --- the confirmation dialog, a real Qt dialog (offscreen) ---------------------------------

@pytest.fixture(scope="module")
def confirm_dialog():
    """A new ConfirmDialog for a deck whose name holds markup, shown offscreen."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from aqt.qt import QApplication

    app = QApplication.instance() or QApplication(["deckbuild-tests"])
    origin = policy.Origin(notetype_id=1738400004, deck_id=5, deck_name="<b>Shared</b>::<i>Deck</i>", note_id=7, note_label="<a href='x'>c1</a>")
    conf, _ = policy.check_config(None)

    def make():
        dialog = gui.ConfirmDialog("print('hi')\n", origin, conf, None)
        dialog.show()
        app.processEvents()
        return dialog

    return make


@pytest.mark.parametrize("key", ["Return", "Enter", "Escape"])
def test_a_stray_key_in_the_confirmation_cancels_it(confirm_dialog, key):
    # Run is never the default button: Enter, pressed on any widget of the dialog, cancels.
    from aqt.qt import QDialog, Qt
    from PyQt6.QtTest import QTest

    for name in ("code_view", "trust_check", None):
        dialog = confirm_dialog()
        QTest.keyClick(getattr(dialog, name) if name else dialog, getattr(Qt.Key, f"Key_{key}"))
        assert not dialog.isVisible() and dialog.result() == QDialog.DialogCode.Rejected, (key, name)


def test_only_a_click_on_run_accepts_the_confirmation(confirm_dialog):
    from aqt.qt import QDialog, Qt
    from PyQt6.QtTest import QTest

    dialog = confirm_dialog()
    QTest.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
    assert dialog.result() == QDialog.DialogCode.Accepted
    dialog = confirm_dialog()
    QTest.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert dialog.result() == QDialog.DialogCode.Rejected


def test_the_confirmation_shows_deck_and_note_names_as_text_never_as_markup(confirm_dialog):
    # A shared deck names itself: its name must not format, hide or link anything in the question.
    from aqt.qt import Qt

    dialog = confirm_dialog()
    assert dialog.label.textFormat() == Qt.TextFormat.PlainText
    assert "<b>Shared</b>::<i>Deck</i>" in dialog.label.text() and "<a href='x'>c1</a>" in dialog.label.text()
    assert dialog.label.openExternalLinks() is False
    assert "<b>Shared</b>::<i>Deck</i>" in dialog.trust_check.text()  # a check box never renders markup


def _answer_the_dialog(tick: bool, button: str) -> list[str]:
    """Once the confirmation is up, tick "Trust deck" or not and click a button; returns the
    dialogs seen (none if nothing asked)."""
    from aqt.qt import QApplication, Qt, QTimer
    from PyQt6.QtTest import QTest

    seen: list[str] = []

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        if dialog is None:
            QTimer.singleShot(10, answer)
            return
        seen.append(dialog.objectName())
        dialog.trust_check.setChecked(tick)
        QTest.mouseClick(getattr(dialog, f"{button}_button"), Qt.MouseButton.LeftButton)

    QTimer.singleShot(0, answer)
    return seen


def test_a_deck_is_trusted_only_when_the_box_is_ticked_and_run_clicked(confirm_dialog, collection, monkeypatch):
    # confirm() with a real collection's config and a real modal dialog: Run alone trusts
    # nothing (the next card asks again), Run with the box ticked trusts this deck only.
    from aqt.qt import QWidget

    window = QWidget()
    window.col = collection
    monkeypatch.setattr(gui, "mw", window)
    conf, _ = policy.check_config(None)
    here = policy.Origin(notetype_id=1738400004, deck_id=5, deck_name="Shared", note_id=7, note_label="c1")
    other = policy.Origin(notetype_id=1738400004, deck_id=6, deck_name="Other", note_id=8, note_label="c2")

    seen = _answer_the_dialog(tick=False, button="run")
    assert gui.confirm("print(1)\n", here, conf) is True and seen == ["deckbuild-confirm"]
    assert policy.trusted_keys(collection.get_config(policy.TRUST_CONFIG_KEY, None)) == frozenset()

    seen = _answer_the_dialog(tick=True, button="cancel")
    assert gui.confirm("print(1)\n", here, conf) is False and seen == ["deckbuild-confirm"]
    assert policy.trusted_keys(collection.get_config(policy.TRUST_CONFIG_KEY, None)) == frozenset()

    seen = _answer_the_dialog(tick=True, button="run")
    assert gui.confirm("print(1)\n", here, conf) is True and seen == ["deckbuild-confirm"]
    assert policy.trusted_keys(collection.get_config(policy.TRUST_CONFIG_KEY, None)) == {here.trust_key}
    third = policy.Origin(notetype_id=1738400004, deck_id=9, deck_name="Third", note_id=9, note_label="c3")
    _answer_the_dialog(tick=True, button="run")  # trusting another deck keeps the first
    assert gui.confirm("print(1)\n", third, conf) is True
    assert policy.trusted_keys(collection.get_config(policy.TRUST_CONFIG_KEY, None)) == {here.trust_key, third.trust_key}

    with monkeypatch.context() as m:  # trusted: no dialog
        m.setattr(gui.ConfirmDialog, "exec", lambda self: pytest.fail("a trusted deck was asked again"))
        assert gui.confirm("print(1)\n", here, conf) is True
    seen = _answer_the_dialog(tick=False, button="cancel")
    assert gui.confirm("print(1)\n", other, conf) is False and seen == ["deckbuild-confirm"]  # another deck still asks


CODE_DECK = """
    deck: Shared
    type: code
    cards:
      - id: c1
        q: What does it print?
        code: |
          print("from the card")
    """


def test_start_runs_the_shown_code_only_after_run_and_names_the_cards_home_deck(confirm_dialog, collection, project, tmp_path, monkeypatch):
    # gui.start on a real card of a real collection, moved into a filtered deck: the dialog
    # names the card's own deck and note, Cancel runs nothing, Run runs the code the card
    # showed, and the trust a tick stores is for the home deck, never the filtered one
    # (which holds whatever a search pulls in).
    from aqt.qt import QApplication, Qt, QTimer, QWidget
    from PyQt6.QtTest import QTest

    from tests.conftest import import_package, run_cli

    assert run_cli("build", project({"shared.yaml": CODE_DECK}), "--out", tmp_path / "dist", "--quiet", "--no-run") == 0
    import_package(collection, tmp_path / "dist" / "shared.apkg")
    home = collection.decks.id_for_name("Shared")
    filtered = collection.decks.new_filtered("Pulled in")
    deck = collection.decks.get(filtered)
    deck["terms"] = [["deck:Shared", 100, 0]]
    collection.decks.save(deck)
    collection.sched.rebuild_filtered_deck(filtered)
    (cid,) = collection.find_cards("")
    card = collection.get_card(cid)
    assert (card.did, card.odid) == (filtered, home)
    window = QWidget()
    window.col = collection
    asked = []  # the add-on's config, with a mistake whose notice each run shows
    window.addonManager = types.SimpleNamespace(getConfig=lambda name: asked.append(name) or {"timeout_seconds": "soon", "max_output_bytes": "lots"})
    monkeypatch.setattr(gui, "mw", window)
    ran, shown, runs = [], [], []
    monkeypatch.setattr(gui, "run_in_background", lambda code, conf, on_done, parent: (ran.append(code), runs.append((conf, on_done, parent))))
    monkeypatch.setattr(gui, "_show", lambda web, card_id, html: shown.append((web, card_id, html)))
    conf, problems = policy.check_config({"timeout_seconds": "soon", "max_output_bytes": "lots"})
    notices = "".join(gui.core.message_html(p) for p in problems)
    web = object()
    gui.on_card_will_show(card.question(), card, "reviewQuestion")

    def answer(tick: bool, button: str, seen: list) -> None:
        dialog = QApplication.activeModalWidget()
        if dialog is None:
            QTimer.singleShot(10, lambda: answer(tick, button, seen))
            return
        seen.append(dialog.label.text() + "\n" + dialog.code_view.toPlainText())
        assert dialog.parent() is window  # the dialog belongs to Anki's main window
        dialog.trust_check.setChecked(tick)
        QTest.mouseClick(getattr(dialog, f"{button}_button"), Qt.MouseButton.LeftButton)

    seen: list[str] = []
    QTimer.singleShot(0, lambda: answer(True, "cancel", seen))
    gui.start(policy.RUN, card, web)
    assert ran == [] and shown[-1] == (web, cid, notices + gui.core.message_html("Cancelled: nothing ran.", "meta"))
    assert len(problems) == 2 and "timeout_seconds" in notices and asked == [gui.ADDON]
    note = card.note()
    assert seen and seen[0].startswith(f"Run the code of note \u201cc1\u201d (note id {note.id}) from deck \u201cShared\u201d?")
    assert seen[0].endswith('\nprint("from the card")\n')  # the dialog shows the code that would run

    QTimer.singleShot(0, lambda: answer(True, "run", seen))
    gui.start(policy.RUN, card, web)
    assert ran == ['print("from the card")\n'] and len(seen) == 2
    assert shown[-1] == (web, cid, notices + gui.core.message_html("Running\u2026", "meta"))
    [(run_conf, on_done, parent)] = runs
    assert run_conf == conf and parent is window
    on_done("<p>the output</p>")  # the result goes to the same card, after the notices
    assert shown[-1] == (web, cid, notices + "<p>the output</p>")
    key = policy.Origin(notetype_id=note.mid, deck_id=home, deck_name="Shared", note_id=note.id, note_label="c1").trust_key
    assert policy.trusted_keys(collection.get_config(policy.TRUST_CONFIG_KEY, None)) == {key}

    pads = []  # the scratchpad opens on the same code and origin, and asks nothing
    monkeypatch.setattr(gui, "open_scratchpad", lambda origin, code: pads.append((origin.trust_key, origin.note_label, code)))
    gui.start(policy.SCRATCHPAD, card, web)
    assert pads == [(key, "c1", 'print("from the card")\n')] and len(seen) == 2 and len(ran) == 1

    note["Code"] = 'print("edited")\n'  # the note changed after the card was shown: nothing runs
    collection.update_note(note)
    card = collection.get_card(cid)
    for action in (policy.RUN, policy.SCRATCHPAD):
        gui.start(action, card, web)
        assert "This note changed since the card was shown: nothing ran." in shown[-1][2]
    assert len(ran) == 1 and len(pads) == 1 and len(seen) == 2


class _NowOp:
    """aqt's QueryOp as gui.run_in_background uses it, run at once on this thread: the
    scheduling is Anki's; what the op, success and failure do is the add-on's."""

    def __init__(self, parent, op, success):
        self.op, self.success, self.fail = op, success, None

    def failure(self, fail):
        self.fail = fail
        return self

    def without_collection(self):
        return self

    def run_in_background(self):
        try:
            out = self.op(None)
        except Exception as exc:  # noqa: BLE001 - QueryOp hands every error to failure
            self.fail(exc)
            return
        self.success(out)


def test_a_run_shows_its_result_or_says_why_it_could_not_run(monkeypatch, tmp_path):
    import html

    from addon import core
    from addon.session import Session
    from deckbuild import runner  # what build.py vendors into the add-on

    ops = []
    monkeypatch.setattr(gui, "QueryOp", lambda parent, op, success: ops.append(parent) or _NowOp(parent, op, success))
    missing = str(tmp_path / "no-python")
    found = [None]  # what the look-up on PATH finds
    monkeypatch.setattr(gui, "_session", Session(runner.Worker, find_python=lambda: found[0]))
    done: list[str] = []
    window = object()

    def run(code: str, config: dict) -> str:
        conf, problems = policy.check_config(config)
        assert problems == []
        gui.run_in_background(code, conf, done.append, parent=window)
        assert ops[-1] is window  # the op's window is the one given
        return done[-1]

    def could_not_run(out: str, where: str) -> None:
        start = f'<div class="deckbuild-error">Could not run the snippet with {html.escape(where)}: '
        end = html.escape(". Check \"python\" in the add-on's config.") + "</div>"
        assert out.startswith(start) and out.endswith(end), out

    try:
        out = run("print(6 * 7)", {"python": sys.executable})
        assert ">42\n<" in out and html.escape(sys.executable) in out
        out = run("print('x' * 5000)\nwhile True:\n    pass", {"python": sys.executable, "timeout_seconds": 0.5, "max_output_bytes": 1000})
        assert "Timed out after 0.5 s" in out and "Output truncated at 1000 bytes" in out  # the run's own settings
        assert run("print(1)", {}) == f'<div class="deckbuild-error">{html.escape(core.NO_PYTHON_TEXT)}</div>'  # none set, none found
        could_not_run(run("print(1)", {"python": missing}), missing)
        found[0] = missing
        could_not_run(run("print(1)", {}), "the interpreter found on PATH")
    finally:
        gui._session.shutdown()
