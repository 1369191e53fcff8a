"""End to end in real Anki: the add-on's after-import flow over four rebuilds of one project.

import_driver.py starts headless Anki (aqt from PyPI, Qt offscreen) with the add-on
installed, and imports four versions of a small project built by the deckbuild CLI through
Anki's own import dialog:

- v1: the first import (no offer);
- then the user answers `keep`, tags `tagged` with leech, marked and my::own, and adds a Basic
  note to the same deck;
- v2: `gone` removed, `tagged` changed (new text, its deckbuild tag changed), `mover` moved to
  another deck, `probe` lost its follow-up; the user picks "Delete" and Apply;
- v3: `keep2` removed; the user picks "suspend and tag";
- v4: `keep3` removed with offer_after_import off.

Every assertion is on what the driver read back from Anki.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness import anki_env, run_driver

DRIVER = Path(__file__).with_name("import_driver.py")
ROOT = Path(__file__).resolve().parents[2]
ANKI_TIMEOUT = 480

pytestmark = pytest.mark.skipif(importlib.util.find_spec("aqt") is None, reason="aqt is not installed")


def card(card_id: str, question: str, answer: str = "An answer.", extra: str = "") -> str:
    return f"  - id: {card_id}\n    q: {question}\n    a: {answer}\n{extra}"


def main_deck(*cards: str) -> str:
    return "deck: Imp::Main\ntags: [imp]\ncards:\n" + "".join(cards)


KEEP = card("keep", "Which card is answered before the re-import?")
KEEP2 = card("keep2", "Which card is suspended when it leaves?")
KEEP3 = card("keep3", "Which card leaves with the offer turned off?")
GONE = card("gone", "Which card is removed from the sources in version two?")
TAGGED_V1 = card("tagged", "Which card gets tags in Anki?", "Version one.", "    tags: [old-tag]\n")
TAGGED_V2 = card("tagged", "Which card gets tags in Anki?", "Version two.", "    tags: [new-tag]\n")
MOVER = card("mover", "Which card moves to another deck?")
PROBE_V1 = "  - id: probe\n    type: probe\n    q: Which probe loses its follow-up?\n    a: This one.\n" \
           "    follow_up: And what then?\n    follow_up_a: Then this.\n"
PROBE_V2 = "  - id: probe\n    type: probe\n    q: Which probe loses its follow-up?\n    a: This one.\n"
OTHER = "deck: Imp::Other\ncards:\n" + card("other", "Which card lives in the other deck?")
OTHER_WITH_MOVER = OTHER + MOVER

VERSIONS = {
    "v1": {"a.yaml": main_deck(KEEP, KEEP2, KEEP3, GONE, TAGGED_V1, MOVER, PROBE_V1), "b.yaml": OTHER},
    "v2": {"a.yaml": main_deck(KEEP, KEEP2, KEEP3, TAGGED_V2, PROBE_V2), "b.yaml": OTHER_WITH_MOVER},
    "v3": {"a.yaml": main_deck(KEEP, KEEP3, TAGGED_V2, PROBE_V2), "b.yaml": OTHER_WITH_MOVER},
    "v4": {"a.yaml": main_deck(KEEP, TAGGED_V2, PROBE_V2), "b.yaml": OTHER_WITH_MOVER},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("anki-import-e2e")
    project = tmp / "project"
    for version, files in VERSIONS.items():
        for name, text in files.items():
            path = project / "versions" / version / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    proc = subprocess.run([sys.executable, str(ROOT / "addon" / "build.py"), "--out", str(tmp / "deckbuild.ankiaddon")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (tmp / "home").mkdir()
    env = anki_env(tmp / "home", "deckbuild-import-e2e")
    results_path = tmp / "results.json"
    args = [sys.executable, str(DRIVER), "--base", str(tmp / "anki-base"), "--addon", str(tmp / "deckbuild.ankiaddon"),
            "--project", str(project), "--results", str(results_path)]
    results = run_driver(args, tmp, env, results_path, tmp / "anki.log", ANKI_TIMEOUT)
    results.update(project=str(project))
    if os.environ.get("DECKBUILD_UPDATE_SCREENSHOT"):
        import shutil

        shutil.copy(project / "after-import.png", ROOT / "docs" / "images" / "after-import.png")
    return results


def test_the_first_import_offers_nothing(run):
    assert run["v1_offer"] is False
    assert set(run["after_v1"]) == {"keep", "keep2", "keep3", "gone", "tagged", "mover", "probe", "other"}
    assert run["after_v1"]["probe"]["cards"] == 2


def test_the_offer_lists_removed_moved_and_emptied_cards_and_says_what_delete_does(run):
    offer = run["v2_offer"]
    assert offer["title"] == "deckbuild: after importing \u201cimp\u201d"
    assert offer["tables"]["deckbuild-removed-list"] == [["Imp::Main", "gone", "Which card is removed from the sources in \u2026"]]
    assert offer["tables"]["deckbuild-moved-list"] == [["Imp::Main", "Imp::Other", "mover", "Which card moves to another deck?"]]
    assert offer["tables"]["deckbuild-emptied-list"] == [["Imp::Main", "probe", "Which probe loses its follow-up?"]]
    assert offer["radios"] == {"deckbuild-removed-delete": "Delete them",
                               "deckbuild-removed-suspend": "Suspend their cards and tag the notes deckbuild::removed",
                               "deckbuild-removed-leave": "Leave them as they are"}
    assert any("their review history is lost to them" in text for text in offer["labels"])
    assert offer["chosen"] == ["delete", True, True]
    assert "basic:my own note" in run["before_v2"]  # the Basic note was in the same deck, and is not listed


def test_accepting_delete_removes_only_the_removed_note_and_keeps_review_history(run):
    before, after = run["before_v2"], run["after_v2"]
    assert "gone" not in after
    assert set(after) == set(before) - {"gone"}
    assert before["keep"]["revlog"] == 1 and after["keep"]["revlog"] == 1
    assert after["basic:my own note"]["fields"] == {"Front": "my own note", "Back": "in a deckbuild deck"}


def test_user_tags_survive_a_reimport_that_changed_the_note(run):
    before, after = run["before_v2"]["tagged"], run["after_v2"]["tagged"]
    assert set(before["tags"]) == {"imp", "old-tag", "leech", "marked", "my::own"}
    assert "Version two." in after["fields"]["Answer"]  # the import really updated the note
    assert after["tags"] == sorted(["imp", "new-tag", "leech", "marked", "my::own"])  # old-tag: deckbuild dropped it
    assert run["v2_tags_before_apply"] == after["tags"]  # kept by the import itself, not by the offer


def test_a_moved_card_is_moved_and_an_emptied_card_deleted_on_accept(run):
    assert run["before_v2"]["mover"]["decks"] == ["Imp::Main"]
    assert run["after_v2"]["mover"]["decks"] == ["Imp::Other"]
    assert run["before_v2"]["probe"]["cards"] == 2 and run["after_v2"]["probe"]["cards"] == 1


def test_suspend_and_tag_keeps_the_note_suspended_and_tagged(run):
    assert [row[1] for row in run["v3_offer"]["tables"]["deckbuild-removed-list"]] == ["keep2"]
    keep2 = run["after_v3"]["keep2"]
    assert "deckbuild::removed" in keep2["tags"] and keep2["suspended"] == [True]
    assert all(not any(n["suspended"]) for k, n in run["after_v3"].items() if k != "keep2")


def test_with_the_offer_off_nothing_is_asked_and_nothing_touched(run):
    assert run["v4_offer"] is False
    assert "keep3" in run["after_v4"] and run["after_v4"]["keep3"]["suspended"] == [False]
    assert "deckbuild::removed" not in run["after_v4"]["keep3"]["tags"]


@pytest.mark.parametrize("offer, after", [("not_now_offer", "after_not_now"), ("leave_offer", "after_leave")])
def test_not_now_and_leave_them_touch_nothing(run, offer, after):
    assert [row[1] for row in run[offer]["tables"]["deckbuild-removed-list"]] == ["keep3"]
    assert run[after] == run["after_v4"]  # every note, tag, deck, suspension and review as before
    assert "deckbuild::removed" not in run[after]["keep3"]["tags"] and run[after]["keep3"]["suspended"] == [False]
    if offer == "leave_offer":
        assert run[offer]["chosen"] == ["leave", False, False]


def test_anki_shows_no_error_and_exits_cleanly(run):
    assert run["stderr"] == ""
    assert run["open_dialogs"] == []
    assert run["returncode"] == 0
