"""Property-based tests: arbitrary input never raises anything but deckbuild's own reports."""

from __future__ import annotations

import string
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deckbuild.errors import Location
from deckbuild.latex import ENGINES, LatexProblem, to_mathml
from deckbuild.model import Card, Kind, Text
from deckbuild.load import load_file
from deckbuild.render import render

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)
latexish = st.text(alphabet=string.ascii_letters + string.digits + "\\{}[]()^_$&+-=*/ ,.|<>!'\n", max_size=80)


@SETTINGS
@given(data=st.binary(max_size=400))
def test_any_bytes_as_a_source_file_gives_diagnostics_not_exceptions(tmp_path, data):
    for suffix in (".yaml", ".md"):
        path = tmp_path / f"cards{suffix}"
        path.write_bytes(data)
        cards, problems = load_file(path)  # whatever the bytes: cards, or located problems, never an exception
        assert cards or problems
        assert all(p.location is not None and p.location.path == path for p in problems)
        assert all("\n" not in p.message and "Traceback" not in p.message for p in problems)


@SETTINGS
@given(fields=st.dictionaries(st.sampled_from(["id", "q", "a", "why", "topic", "tags", "source", "type", "deck", "code", "timeout"]), st.one_of(any_text, st.lists(any_text, max_size=3), st.integers(), st.none()), max_size=8))
def test_arbitrary_card_mappings_load_or_report(tmp_path, fields):
    path = tmp_path / "cards.yaml"
    path.write_text(yaml.safe_dump({"deck": "D", "cards": [fields]}), encoding="utf-8")
    cards, problems = load_file(path)
    assert len(cards) + (1 if problems else 0) >= 1
    for problem in problems:
        assert problem.location is not None and problem.location.path == path


@SETTINGS
@given(q=any_text, a=any_text)
def test_arbitrary_text_in_every_field_renders_or_reports(q, a):
    # Cards are built directly, so every example reaches the renderer (through YAML most would stop at the loader).
    where = Location(Path("cards.yaml"), 3, 5)
    card = Card("x", Kind.FACT, "D", where, q=Text(q, where), a=Text(a, where), why=Text(a + q, where))
    (rendered,), problems = render([card])
    assert rendered.card is card
    for problem in problems:
        assert problem.message.startswith("bad LaTeX in ")
        assert problem.location is not None and problem.location.path == where.path and problem.location.line >= 3


@SETTINGS
@given(tex=latexish, display=st.booleans(), engine=st.sampled_from(ENGINES))
def test_latex_converts_or_raises_latex_problem(tex, display, engine):
    try:
        mathml = to_mathml(tex, display, engine)
    except LatexProblem as problem:
        assert str(problem) and "\n" not in str(problem)
    else:
        assert mathml.startswith("<math data-tex=") and mathml.endswith("</math>")


plain = st.text(alphabet=string.ascii_letters + string.digits + " .,;:!?()-'\"", min_size=1, max_size=120).filter(str.strip)


@SETTINGS
@given(q=plain, a=plain, x=st.sampled_from(["x", "x^2", "\\frac{a}{b}", "\\sum_{i=1}^n x_i", "\\mathbb{E}[X]"]))
def test_valid_cards_always_render_without_problems(tmp_path, q, a, x):
    path = tmp_path / "cards.yaml"
    path.write_text(yaml.safe_dump({"deck": "D", "cards": [{"id": "x", "q": q, "a": f"{a} ${x}$ end"}]}), encoding="utf-8")
    cards, problems = load_file(path)
    assert problems == [] and len(cards) == 1
    (rendered,), render_problems = render(cards)
    assert render_problems == []
    assert rendered.formulas == 1 and "<math" in rendered.answer


@SETTINGS
@given(value=st.lists(st.sampled_from(["-", "*", "+", "1.", "2)", " ", "\t", "\x0b", "a", "b c", "\n", "```", "~~~"]), max_size=16).map("".join))
def test_the_list_warning_matches_a_line_by_line_reading(value):
    """validate's quick pre-check never hides a warning that reading line by line gives."""
    import re

    from deckbuild.validate import _list_without_blank_line

    item, fence = re.compile(r"\s*([-*+]|\d+[.)])\s"), re.compile(r"\s*(`{3,}|~{3,})")
    lines, in_fence, expected = value.split("\n"), False, False
    for i, line in enumerate(lines):
        if fence.match(line):
            in_fence = not in_fence
        elif not in_fence and i and item.match(line):
            above = lines[i - 1]
            if above.strip() and not item.match(above) and not above.startswith((" ", "\t")):
                expected = True
                break
    assert bool(_list_without_blank_line(Text(value, Location(Path("c.md"), 1, 1)))) == expected
