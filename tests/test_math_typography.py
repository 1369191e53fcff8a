"""Math typography measured in Chromium (Qt WebEngine) on the MathML a built package shows in Anki:
operator spacing, the unary minus, stretchy brackets, limits, symbols, and the shipped math font."""

from __future__ import annotations

import pytest

from tests.conftest import import_package, run_cli

pytest.importorskip("PyQt6.QtWebEngineWidgets")

from tests.webengine.pages import card_sides, run_pages, write_pages  # noqa: E402

FORMULAS = {
    "log": r"$\log p$",
    "unary": r"$f(-3)$",
    "binary": r"$a - 3$",
    "pmatrix": r"$$\begin{pmatrix} 1 \\ 2 \\ 3 \end{pmatrix}$$",
    "sum": r"$$\sum_{i=1}^{n} x_i$$",
    "sim": r"$x \sim p$",
}

# Positions in em of the formula's font size; {name: measurement}.
MEASURE = """
var out = {};
function rect(el) { return el.getBoundingClientRect(); }
function find(root, tag, text) {
  return Array.from(root.querySelectorAll(tag)).find(function (e) { return e.textContent === text; });
}
document.querySelectorAll(".db-frame").forEach(function (frame) {
  var name = frame.dataset.card.split(" ")[0];
  if (!frame.dataset.card.endsWith(" a")) return;
  var math = frame.querySelector(".db-answer math");
  var em = parseFloat(getComputedStyle(math).fontSize);
  var m = {};
  if (name === "log") m.gap = (rect(find(math, "mi", "p")).left - rect(find(math, "mi", "log")).right) / em;
  if (name === "unary" || name === "binary") {
    var minus = find(math, "mo", "\\u2212");
    var left = name === "unary" ? find(math, "mo", "(") : find(math, "mi", "a");  // what precedes the minus
    m.before = (rect(minus).left - rect(left).right) / em;
    m.after = (rect(find(math, "mn", "3")).left - rect(minus).right) / em;
  }
  if (name === "pmatrix") m.ratio = rect(find(math, "mo", "(")).height / rect(find(math, "mn", "1")).height;
  if (name === "sum") {
    var sum = rect(find(math, "mo", "\\u2211")), top = rect(find(math, "mi", "n"));
    m.above = sum.top - top.bottom;
    m.centred = Math.abs((top.left + top.right) / 2 - (sum.left + sum.right) / 2) / em;
  }
  if (name === "sim") m.operator = Array.from(math.querySelectorAll("mo")).map(function (e) { return e.textContent; });
  out[name] = m;
});
out.fonts = Array.from(document.fonts).filter(function (f) { return f.status === "loaded"; }).map(function (f) { return f.family.replace(/"/g, ""); });
return out;
"""


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    from anki.collection import Collection

    root = tmp_path_factory.mktemp("typography")
    cards = root / "cards"
    cards.mkdir()
    body = "".join(f"  - id: {name}\n    q: '{name}'\n    a: |\n      {tex}\n" for name, tex in FORMULAS.items())
    (cards / "math.yaml").write_text(f"deck: Math\ntype: fact\ncards:\n{body}", encoding="utf-8")
    assert run_cli("build", cards, "--out", root / "dist", "--cache-dir", root / "cache", "--quiet") == 0
    (root / "anki").mkdir()
    col = Collection(str(root / "anki" / "collection.anki2"))
    try:
        import_package(col, root / "dist" / "math.apkg")
        pages = write_pages(col, card_sides(col), "card", stem="typography")
        (result,) = run_pages(pages, MEASURE, width=800)
    finally:
        col.close()
    assert "error" not in result, result
    return result


def test_the_shipped_math_font_is_used(measured):
    assert "Latin Modern Math" in measured["fonts"]


def test_function_names_are_spaced_from_their_argument(measured):
    assert measured["log"]["gap"] >= 0.12  # a thin space (1/6 em) in TeX; 0 when glued ("logp")


def test_unary_minus_is_not_spaced_like_subtraction(measured):
    unary, binary = measured["unary"], measured["binary"]
    assert unary["before"] < 0.1 and unary["after"] < 0.1
    assert binary["before"] > 0.15 and binary["after"] > 0.15


def test_matrix_brackets_stretch(measured):
    assert measured["pmatrix"]["ratio"] > 2


def test_display_sum_has_its_limits_above_and_below(measured):
    assert measured["sum"]["above"] >= 0 and measured["sum"]["centred"] < 0.2


def test_sim_is_the_tilde_operator(measured):
    assert measured["sim"]["operator"] == ["\u223c"]
