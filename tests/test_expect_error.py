"""``expect_error`` names the exception a teaching snippet raises; anything else fails the build."""

from __future__ import annotations

import pytest

from deckbuild.execute import raised
from tests.conftest import run_cli, write_files

CARD = """
    deck: D
    type: code
    cards:
      - id: lesson
        q: What goes wrong?
        expect_error: {expect}
        code: |
          import torch
          x = torch.ones(4, 3)
          {line}
    """
SHAPES = "y = x + torch.arange(4.0)"


@pytest.mark.parametrize(
    "expect, line, message",
    [
        ("NameError", SHAPES, "code card 'lesson' expects NameError but raised RuntimeError: The size of tensor a (3) must match the size of tensor b (4) at non-singleton dimension 1"),
        ("RuntimeError", "y = x + torhc.arange(4.0)", "code card 'lesson' expects RuntimeError but raised NameError: name 'torhc' is not defined"),
        ("RuntimeError", "import torchvisionn", "code card 'lesson' expects RuntimeError but raised ModuleNotFoundError: No module named 'torchvisionn'"),
        ("'RuntimeError: at dimension 0'", SHAPES, "code card 'lesson' expects RuntimeError with 'at dimension 0' in its message but raised RuntimeError: The size of tensor a (3) must match the size of tensor b (4) at non-singleton dimension 1"),
        ("RuntimeError", "y = x + 1", "code card 'lesson' expects RuntimeError but ran without an error"),
    ],
)
def test_a_different_exception_fails_the_build_at_the_card(tmp_path, capsys, expect, line, message):
    root = write_files(tmp_path / "cards", {"a.yaml": CARD.format(expect=expect, line=line)})
    assert run_cli("build", root, "--quiet") == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].endswith(f": error: {message}")
    assert err[0].startswith(f"{root}/a.yaml:")
    assert not (tmp_path / "dist").exists()


@pytest.mark.parametrize("expect", ["RuntimeError", "'RuntimeError: must match the size of tensor b'"])
def test_the_named_exception_is_baked_into_the_note(tmp_path, capsys, expect):
    root = write_files(tmp_path / "cards", {"a.yaml": CARD.format(expect=expect, line=SHAPES)})
    assert run_cli("build", root, "--quiet") == 0
    assert capsys.readouterr().err == ""


def test_true_is_refused_with_the_reason(tmp_path, capsys):
    root = write_files(tmp_path / "cards", {"a.yaml": CARD.format(expect="true", line=SHAPES)})
    assert run_cli("check", root, "--quiet") == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        f"{root}/a.yaml:6:19: error: 'expect_error' names the exception the snippet must raise, "
        "e.g. 'expect_error: RuntimeError' (true would accept any exception, even a typo's NameError)"
    )


def test_raised_reads_the_last_exception_of_a_traceback():
    chained = (
        'Traceback (most recent call last):\n  File "<snippet>", line 2, in <module>\n    1 / 0\n    ~~^~~\n'
        "ZeroDivisionError: division by zero\n\nDuring handling of the above exception, another exception occurred:\n\n"
        'Traceback (most recent call last):\n  File "<snippet>", line 4, in <module>\n    raise torch.OutOfMemoryError("a: b")\n'
        "torch.OutOfMemoryError: a: b\nsecond line\n"
    )
    assert raised(chained) == ("torch.OutOfMemoryError", "a: b\nsecond line")
    assert raised("WorkerCrash: the worker died") == ("WorkerCrash", "the worker died")
    assert raised('  File "<snippet>", line 1\n    print(\n         ^\nSyntaxError: \'(\' was never closed') == (
        "SyntaxError",
        "'(' was never closed",
    )


BASES = """
    deck: D
    type: code
    cards:
      - id: lookup
        q: What goes wrong?
        expect_error: {expect}
        code: |
          table = {{"a": 1}}
          print(table["b"])
    """


@pytest.mark.parametrize("expect", ["KeyError", "LookupError", "Exception", "'LookupError: b'"])
def test_a_base_class_of_the_raised_exception_is_accepted(tmp_path, capsys, expect):
    root = write_files(tmp_path / "cards", {"a.yaml": BASES.format(expect=expect)})
    assert run_cli("build", root, "--quiet") == 0, capsys.readouterr().err
    assert capsys.readouterr().err == ""
    assert len(list((tmp_path / "dist").glob("*.apkg"))) == 1


@pytest.mark.parametrize("expect", ["IndexError", "ValueError", "ArithmeticError"])
def test_a_class_that_is_not_among_its_bases_fails_with_what_was_raised(tmp_path, capsys, expect):
    root = write_files(tmp_path / "cards", {"a.yaml": BASES.format(expect=expect)})
    assert run_cli("build", root, "--quiet") == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{root}/a.yaml:9: error: code card 'lookup' expects {expect} but raised KeyError: 'b'"


def test_the_last_part_of_a_dotted_class_name_is_enough(tmp_path, capsys):
    card = BASES.replace('table = {{"a": 1}}\n          print(table["b"])', 'import torch\n          raise torch.OutOfMemoryError("too big")')
    root = write_files(tmp_path / "cards", {"a.yaml": card.format(expect="OutOfMemoryError")})
    assert run_cli("build", root, "--quiet") == 0, capsys.readouterr().err
    root = write_files(tmp_path / "cards2", {"a.yaml": card.format(expect="MemoryError")})  # not a base, not a suffix
    assert run_cli("build", root, "--quiet") == 1
    assert "expects MemoryError but raised torch.OutOfMemoryError: too big" in capsys.readouterr().err
