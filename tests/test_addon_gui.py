"""The add-on's hooks with stand-in cards: which cards get the button, and which
bridge messages lead to a run (the code always comes from the shown note)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("aqt")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aqt.reviewer import Reviewer  # noqa: E402

from addon import gui  # noqa: E402

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


CODE_CARD = FakeCard(FakeNote(CODE_TYPE, Id="c1", Code="print(&quot;hi&quot;)"))
QA_CARD = FakeCard(FakeNote(QA_TYPE, Id="q1", Question="?"))


@pytest.mark.parametrize("kind", ["reviewQuestion", "reviewAnswer", "previewQuestion", "previewAnswer"])
def test_code_cards_get_the_controls(kind):
    html = gui.on_card_will_show("<p>card</p>", CODE_CARD, kind)
    assert html.startswith("<p>card</p>") and 'class="deckbuild-run"' in html


@pytest.mark.parametrize(
    "card, kind",
    [(QA_CARD, "reviewQuestion"), (CODE_CARD, "clayoutQuestion"), (CODE_CARD, "editorQuestion")],
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


@pytest.mark.parametrize(
    "message, context",
    [
        ("deckbuild:run:import os; os.remove('x')", reviewer_showing(CODE_CARD)),
        ("deckbuild:run", reviewer_showing(QA_CARD)),  # not a code note
        ("deckbuild:run", reviewer_showing(None)),  # nothing on screen
        ("deckbuild:run", object()),  # another screen (deck browser, editor...)
    ],
)
def test_messages_that_run_nothing(scheduled, message, context):
    assert gui.on_js_message((False, None), message, context) == (True, None)
    assert scheduled == []


def test_other_messages_pass_through(scheduled):
    assert gui.on_js_message((False, None), "ans", reviewer_showing(CODE_CARD)) == (False, None)
    assert scheduled == []


def test_run_uses_the_code_of_the_shown_note(scheduled, monkeypatch):
    runs = []
    monkeypatch.setattr(gui, "_run_on_card", lambda web, card_id, code: runs.append((card_id, code)))
    assert gui.on_js_message((False, None), "deckbuild:run", reviewer_showing(CODE_CARD)) == (True, None)
    [later] = scheduled
    later()
    assert runs == [(99, 'print("hi")\n')]
