"""Built packages imported into a real Anki collection with Anki's own importer."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
import re

from anki.collection import Collection

from deckbuild.package import note_guid
from tests.conftest import import_package, run_cli

FACTS = """
    deck: Study::Facts
    type: fact
    tags: [facts, chapter::one]
    cards:
      - id: tensor-rank
        source: [fact-01, fact-07]
        tags: [topic::tensors]
        q: |
          What is the rank of a tensor with shape $(3, 4, 5)$?
        a: |
          **3**
        why: |
          The rank counts axes: $\\operatorname{len}(\\text{shape}) = 3$.
      - id: softmax-sum
        source: fact-02
        q: What do softmax outputs sum to?
        a: "1"
    """
PROBES = """
    deck: Study::Probes::Hard
    type: probe
    cards:
      - id: relu-kink
        q: Why does ReLU's kink at 0 not break SGD?
        a: Landing exactly on 0 has probability zero.
        follow_up: What derivative do frameworks use at 0?
        follow_up_a: "0"
      - id: no-follow
        q: Plain probe?
        a: Yes.
    """


def _notes_by_id(col: Collection) -> dict[str, object]:
    return {col.get_note(nid)["Id"]: col.get_note(nid) for nid in col.find_notes("")}


def test_notes_fields_tags_decks_and_cards(project, tmp_path, collection):
    cards = project({"facts.yaml": FACTS, "probes.yaml": PROBES})
    assert run_cli("build", cards, "--out", tmp_path / "dist", "--quiet") == 0
    log = import_package(collection, tmp_path / "dist" / "study.apkg")
    assert len(log.new) == 4

    notes = _notes_by_id(collection)
    rank = notes["tensor-rank"]
    assert rank.note_type()["name"] == "deckbuild Fact"
    assert rank.keys() == ["Id", "Question", "Answer", "Why", "Source"]
    assert rank["Answer"] == "<p><strong>3</strong></p>"
    assert rank["Source"] == "fact-01, fact-07"  # as the card browser shows and searches it
    assert notes["softmax-sum"]["Source"] == "fact-02"
    assert sorted(rank.tags) == ["chapter::one", "facts", "topic::tensors"]
    assert rank.guid == note_guid("tensor-rank", "deck:Study")
    # MathML with the TeX kept for the MathJax fallback.
    assert '<math data-tex="(3, 4, 5)">' in rank["Question"] and "<annotation" not in rank["Question"]

    # Decks: the subdeck paths and their parents.
    names = {d.name for d in collection.decks.all_names_and_ids()}
    assert {"Study", "Study::Facts", "Study::Probes", "Study::Probes::Hard"} <= names
    assert len(collection.find_cards('deck:"Study::Facts"')) == 2
    # A probe with a follow-up makes two cards, one without makes one.
    assert len(collection.find_cards('"Id:relu-kink"')) == 2
    assert len(collection.find_cards('"Id:no-follow"')) == 1
    follow = [collection.get_card(c) for c in collection.find_cards('"Id:relu-kink" card:2')]
    assert "What derivative do frameworks use at 0?" in follow[0].question()
    assert "<p>0</p>" in follow[0].answer()

    # One package per collection as well.
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == ["study-facts.apkg", "study-probes.apkg", "study.apkg"]


def test_notes_and_cards_are_dated_at_the_build_in_the_card_browser(project, tmp_path, collection, monkeypatch):
    # Anki's note and card ids are their creation times in milliseconds (the browser's
    # "Created" column); deckbuild numbers them from the build's time, which import keeps.
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    cards = project({"facts.yaml": FACTS, "probes.yaml": PROBES})
    assert run_cli("build", cards, "--out", tmp_path / "dist", "--no-cache", "--quiet") == 0
    import_package(collection, tmp_path / "dist" / "study.apkg")
    ids = [*collection.find_notes(""), *collection.find_cards("")]
    assert len(ids) >= 8 and all(1_700_000_000_000 <= i < 1_700_000_000_000 + 1000 for i in ids), ids


def test_a_code_notes_code_field_is_its_code_as_text_and_no_run_leaves_no_output(project, tmp_path, collection):
    code = """print("it's <b>bold</b> & done")"""
    cards = project({"code.yaml": f"deck: Code\ntype: code\ncards:\n  - id: quotes\n    q: What does this print?\n    code: |\n      {code}\n"})
    assert run_cli("build", cards, "--out", tmp_path / "dist", "--quiet", "--no-run") == 0
    import_package(collection, tmp_path / "dist" / "code.apkg")
    (note,) = _notes_by_id(collection).values()
    # Only what HTML needs escaped: quotes stay as typed, so searching the field for them works.
    assert note["Code"].strip() == """print("it's &lt;b&gt;bold&lt;/b&gt; &amp; done")"""
    assert collection.find_notes('"Code:*it\'s*"') == [note.id]
    assert note["Output"] == ""  # nothing was run


def test_rebuild_after_edit_updates_notes_and_keeps_review_history(project, tmp_path, collection):
    cards = project({"facts.yaml": FACTS})
    dist = tmp_path / "dist"
    assert run_cli("build", cards, "--out", dist, "--quiet") == 0
    import_package(collection, dist / "study.apkg")

    # Study: answer every card once ("Good").
    collection.decks.select(collection.decks.id("Study::Facts"))
    answered = 0
    while (queued := collection.sched.get_queued_cards()).cards:
        top = queued.cards[0]
        card = collection.get_card(top.card.id)
        card.start_timer()
        states = top.states
        collection.sched.answer_card(collection.sched.build_answer(card=card, states=states, rating=3))
        answered += 1
    assert answered == 2
    before = {cid: (collection.get_card(cid).due, collection.get_card(cid).ivl, collection.get_card(cid).type) for cid in collection.find_cards("")}
    revlog_before = collection.db.scalar("select count() from revlog")
    assert revlog_before == 2

    # Edit one card's text, and move time forward as an editor would.
    source = cards / "facts.yaml"
    source.write_text(source.read_text().replace("What do softmax outputs sum to?", "What do the softmax probabilities sum to?"))
    stat = source.stat()
    os.utime(source, (stat.st_atime, stat.st_mtime + 5))
    assert run_cli("build", cards, "--out", dist, "--quiet") == 0

    log = import_package(collection, dist / "study.apkg")  # Anki's default options
    assert len(log.new) == 0
    assert collection.note_count() == 2
    notes = _notes_by_id(collection)
    assert notes["softmax-sum"]["Question"] == "<p>What do the softmax probabilities sum to?</p>"
    after = {cid: (collection.get_card(cid).due, collection.get_card(cid).ivl, collection.get_card(cid).type) for cid in collection.find_cards("")}
    assert after == before
    assert collection.db.scalar("select count() from revlog") == revlog_before


def test_note_types_keep_their_fixed_ids_css_and_templates(project, tmp_path, collection):
    cards = project({"facts.yaml": FACTS})
    dist = tmp_path / "dist"
    assert run_cli("build", cards, "--out", dist, "--quiet") == 0
    import_package(collection, dist / "study.apkg")
    model = collection.models.by_name("deckbuild Fact")
    assert model["id"] == 1738400002
    assert model["sortf"] == 0  # the browser's sort field is the card id
    assert ".db-why" in model["css"]
    assert re.search(r"mspace", model["tmpls"][0]["qfmt"])  # the MathML support probe


def test_card_browser_shows_each_formula_once_and_search_finds_the_tex(project, tmp_path, collection):
    cards = project(
        {
            "m.yaml": """
            deck: Browse
            type: qa
            cards:
              - id: norm
                topic: Matrices
                q: For $\\theta \\in \\mathbb{R}^n$, what is $\\|\\theta\\|_2$?
                a: $\\sqrt{\\sum_i \\theta_i^2}$
            """
        }
    )
    assert run_cli("build", cards, "--out", tmp_path / "dist", "--quiet") == 0
    import_package(collection, tmp_path / "dist" / "browse.apkg")
    # Anki's search matches the field's HTML, where the TeX is kept (data-tex) for the MathJax fallback.
    assert len(collection.find_notes("theta")) == 1 and len(collection.find_notes("mathbb")) == 1
    # The browser's Question and Answer columns, as Anki's own table builds them.
    collection.set_browser_card_columns(["question", "answer"])
    (cid,) = collection.find_cards("")
    cells, *_ = collection.browser_row_for_id(cid)
    question, answer = (text for text, *_ in cells)
    assert question == "Matrices For θ∈ℝn, what is ‖θ‖2?"
    assert answer == "∑iθi2"


def test_every_package_carries_the_math_fonts_its_css_names(project, tmp_path, collection):
    from deckbuild.notetypes import FONTS, MATH_FONT

    cards = project({"a.yaml": "deck: Top::One\ncards:\n  - {id: a, q: '$x$', a: A}\n", "b.yaml": "deck: Top::Two\ncards:\n  - {id: b, q: Q, a: A}\n"})
    assert run_cli("build", cards, "--out", tmp_path / "dist", "--quiet") == 0
    packages = sorted((tmp_path / "dist").glob("*.apkg"))
    assert len(packages) == 3
    for package in packages:
        with zipfile.ZipFile(package) as archive:
            names = json.loads(archive.read("media")).values()
            assert {f.name for f in FONTS} <= set(names)
    import_package(collection, packages[-1])
    folder = Path(collection.media.dir())
    assert (folder / MATH_FONT.name).read_bytes()[:4] == b"wOF2" and MATH_FONT.name.startswith("_latinmodern-math-")
    css = collection.get_card(collection.find_cards("")[0]).note_type()["css"]
    assert f"src: url('{MATH_FONT.name}') format('woff2')" in css and 'font-family: "Latin Modern Math", math' in css
