"""Rendering: Markdown source → expected HTML, side by side (Python-Markdown's test style)."""

from __future__ import annotations

import re
import pytest

from deckbuild.latex import LatexProblem, to_mathml
from deckbuild.render import code_css, highlight_code, render_markdown

X = '<math data-tex="x"><mi>x</mi></math>'
X_BLOCK = '<math data-tex="x" display="block" class="tml-display" style="display:block math;"><mi>x</mi></math>'


@pytest.mark.parametrize(
    "source, html",
    [
        ("plain *text*", "<p>plain <em>text</em></p>"),
        # A paragraph holding only a formula is unwrapped: Python-Markdown counts <math> as block-level.
        ("$x$", X),
        (r"\(x\)", X),
        ("see $x$.", f"<p>see {X}.</p>"),
        ("$$x$$", f'<div class="math-display">{X_BLOCK}</div>'),
        (r"\[x\]", f'<div class="math-display">{X_BLOCK}</div>'),
        ("costs $5 and $10", "<p>costs $5 and $10</p>"),
        ("$ x$ is not math", "<p>$ x$ is not math</p>"),
        ("$x $ is not math", "<p>$x $ is not math</p>"),
        (r"a literal \$ sign", "<p>a literal $ sign</p>"),
        (r"\$x\$ stays text", "<p>$x$ stays text</p>"),
        ("code `$x$` span", "<p>code <code>$x$</code> span</p>"),
        ("code `\\(x\\)` span", "<p>code <code>\\(x\\)</code> span</p>"),
        ("| a | b |\n|---|---|\n| 1 | 2 |", "<table>\n<thead>\n<tr>\n<th>a</th>\n<th>b</th>\n</tr>\n</thead>\n<tbody>\n<tr>\n<td>1</td>\n<td>2</td>\n</tr>\n</tbody>\n</table>"),
    ],
)
def test_markdown_renders(source, html):
    assert render_markdown(source).html == html


@pytest.mark.parametrize("source, tex", [(r"the norm $\|w\|$ here", r"\|w\|"), (r"a rate of $5\%$", r"5\%"), (r"dollar $a\$b$ inside", r"a\$b")])
def test_formula_may_end_in_an_escaped_character(source, tex):
    rendered = render_markdown(source)
    assert rendered.problems == () and rendered.formulas == 1
    assert f'data-tex="{tex}"' in rendered.html


@pytest.mark.parametrize(
    "source, problem",
    [
        ("open $x never closed", (5, "$x never closed", "'$' is never closed")),
        ("$x$5 is not a closed formula", (0, "$x$5 is not a closed", "'$' is never closed")),
        ("see $$a+b", (4, "$$a+b", "'$$' is never closed")),
        ("see \\(a+b", (4, "\\(a+b", "'\\(' is never closed")),
        ("see \\[a+b", (4, "\\[a+b", "'\\[' is never closed")),
    ],
)
def test_unterminated_math_is_a_problem(source, problem):
    assert render_markdown(source).problems == (problem,)


def test_money_is_not_unterminated_math():
    assert render_markdown("it costs $5, or $ 7, or 3$").problems == ()


def test_underscores_inside_math_are_not_emphasis():
    html = render_markdown("$a_i b_i$ and $c_j$").html
    assert "<em>" not in html
    assert html.count("<math") == 2


def test_math_in_fenced_code_is_left_alone():
    html = render_markdown("```python\nprice = '$x$'\n```").html
    assert "<math" not in html
    assert "&#39;$x$&#39;" in html or "'$x$'" in html


def test_counts_formulas():
    assert render_markdown("$a$, $$b$$ and \\(c\\)").formulas == 3


def test_bad_formula_is_reported_with_its_offset():
    rendered = render_markdown("ok $x$ then $\\nope$")
    assert rendered.problems == ((12, "$\\nope$", "Unsupported function name: \\nope (character 1 of the formula)"),)


def test_latex2mathml_engine_renders_the_same_text():
    rendered = render_markdown("ok $x$ then $\\nope$", math="latex2mathml")
    assert rendered.formulas == 1 and rendered.problems == ((12, "$\\nope$", "unknown control sequence \\nope"),)
    assert '<math data-tex="x" xmlns="http://www.w3.org/1998/Math/MathML" display="inline">' in rendered.html


def test_standard_operator_missing_from_latex2mathml_converts():
    mathml = to_mathml("\\arg\\max_x f", display=False, engine_name="latex2mathml")
    assert "<mo>arg</mo>" in mathml and 'data-tex="\\arg\\max_x f"' in mathml


@pytest.mark.parametrize("engine", ["temml", "latex2mathml"])
def test_mathml_keeps_tex_for_mathjax_fallback_in_an_attribute(engine):
    mathml = to_mathml('a < b "c"', display=False, engine_name=engine)
    assert mathml.startswith('<math data-tex="a &lt; b &quot;c&quot;"') and "<annotation" not in mathml


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="unknown math engine 'mathjax'"):
        to_mathml("x", display=False, engine_name="mathjax")


@pytest.mark.parametrize(
    "tex, message",
    [
        ("\\foo", "unknown control sequence \\foo"),
        ("{x", "unbalanced braces: 1 '{' not closed"),
        ("x}", "unbalanced braces: '}' without a matching '{'"),
        ("\\text{x", "unbalanced braces: 1 '{' not closed"),
        ("\\frac{a}", "missing argument: \\frac needs 2"),
        ("\\begin{pmatrix} 1", "unclosed environment \\begin{pmatrix}"),
        ("\\begin{pmatrix} 1 \\end{bmatrix}", "\\begin{pmatrix} closed by \\end{bmatrix}"),
        ("a & b", "'&' outside a matrix environment (use pmatrix, bmatrix or cases)"),
        ("x^", "cannot convert (MissingSuperScriptOrSubscriptError)"),
        ("  ", "empty formula"),
    ],
)
def test_bad_latex(tex, message):
    with pytest.raises(LatexProblem) as raised:
        to_mathml(tex, display=False, engine_name="latex2mathml")
    assert str(raised.value) == message


def test_code_is_highlighted_with_classes_one_block_per_line_with_its_indent():
    html = highlight_code("def f(x):\n    return x  # done\n")
    assert html.startswith('<div class="codehilite"><pre>') and "style=\"color" not in html
    assert '<span class="db-line" style="--indent:0ch"><span class="k">def</span>' in html
    assert '<span class="db-line" style="--indent:4ch">    <span class="k">return</span>' in html


def test_code_css_has_a_day_and_a_night_style():
    css = code_css()
    assert ".codehilite .k { color: #A90D91 }" in css  # xcode
    assert ".nightMode .codehilite .k, .night_mode .codehilite .k { color: #FF7B72 }" in css  # github-dark


def test_a_pipe_inside_math_stays_in_its_table_cell():
    from deckbuild.render import _render_all

    table = "| quantity | formula |\n|---|---|\n| absolute value | $|x|$ |\n| conditional | \\(p(a | b)\\) |\n\nAnd $|y|$ outside a table."
    (rendered,) = _render_all([table], "temml")
    assert rendered.problems == () and rendered.formulas == 3
    rows = re.findall(r"<tr>(.*?)</tr>", rendered.html, re.S)
    assert [len(re.findall(r"<t[dh]>", row)) for row in rows] == [2, 2, 2]
    assert 'data-tex="|x|"' in rendered.html and 'data-tex="p(a | b)"' in rendered.html and 'data-tex="|y|"' in rendered.html
    assert "\ue000" not in rendered.html


def test_many_texts_are_parsed_in_worker_processes_with_the_same_result(monkeypatch):
    """Past PARALLEL_THRESHOLD texts, Markdown is parsed in forked processes (on a machine
    with at least two cores; two are pretended here so the pool always starts)."""
    import multiprocessing
    import os

    from deckbuild import render

    texts = [f"Text **{i}** with $x_{{{i}}}^2$ and `code {i}`" + (" $\\frac{1}{" if i % 500 == 0 else "")
             for i in range(render.PARALLEL_THRESHOLD + 7)]
    serial = [render.parse_markdown(t) for t in texts]
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    pools = []
    real_pool = render.ProcessPoolExecutor

    def counting_pool(*args, **kwargs):
        pools.append(args[0])
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(render, "ProcessPoolExecutor", counting_pool)
    parallel = render._parse_all(texts)
    assert pools == [2]  # the pool really ran, with two workers
    assert parallel == serial  # same HTML, formulas and problems, in the same order
    assert sum(bool(p.problems) for p in parallel) == 5  # the unclosed formulas came back too
    assert multiprocessing.active_children() == []  # no worker left behind
