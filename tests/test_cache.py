"""The build cache is inert data: a crafted or corrupt cache file never runs code and never changes a build."""

from __future__ import annotations

import json
import pickle
import re
import sqlite3

import pytest

from tests.conftest import import_package, poison_cache, run_cli

CARDS = {
    "a.yaml": """
        deck: Top::Sub
        cards:
          - id: plain
            type: fact
            q: What is $2 + 2$?
            a: "**4**"
          - id: snippet
            type: code
            q: What does this print?
            code: |
              print(6 * 7)
        """,
}


class _Payload:
    """Unpickling this writes ``marker``: what a pickle-based cache would execute."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


@pytest.mark.parametrize(
    "payload",
    [
        "pickle",  # would run code under pickle.loads
        "wrong-type",  # valid JSON of the wrong shape
        "wrong-record",  # a record with an extra field
        "bad-enum",  # a card whose kind is no kind
        "bad-tag",  # a card whose tags hold a number (lists of text are checked by type alone)
        "not-json",
        "nan",
        "deep",  # nesting deeper than the JSON parser's recursion limit
    ],
)
def test_a_crafted_cache_never_runs_code_and_never_changes_the_build(payload, project, tmp_path, collection, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # both builds stamp their notes alike
    cards = project(CARDS)
    cache = tmp_path / "cache"
    assert run_cli("build", cards, "--out", tmp_path / "d1", "--cache-dir", cache, "--quiet") == 0
    marker = tmp_path / "marker"
    good = {}

    def value_for(ns, key, value):
        good[key] = value
        if payload == "pickle":
            return pickle.dumps(_Payload(marker))
        if payload == "wrong-type":
            return "123" if ns == "output" else '{"html": 1}'
        if payload == "wrong-record":
            return good[key].replace('"expect_error":null', '"expect_error":null,"extra":1') if ns == "load" else "[1]"
        if payload == "bad-enum":
            return good[key].replace('"kind":"fact"', '"kind":"exec"') if ns == "load" else '["<p>x</p>", "1"]'
        if payload == "bad-tag":
            return good[key].replace('"id":"plain"', '"id":"plain","tags":["ok",7]') if ns == "load" else "[true]"
        if payload == "not-json":
            return b"\x80\x04not json"
        if payload == "nan":
            return "NaN"
        return "[" * 100_000 + "]" * 100_000

    namespaces = poison_cache(cache / "cache.sqlite", value_for)
    assert namespaces == {"load", "render", "output", "history"}  # every kind of cached value was poisoned
    assert run_cli("build", cards, "--out", tmp_path / "d2", "--cache-dir", cache, "--quiet") == 0
    assert not marker.exists()
    first = {p.name: p.read_bytes() for p in (tmp_path / "d1").iterdir()}
    assert {p.name: p.read_bytes() for p in (tmp_path / "d2").iterdir()} == first
    import_package(collection, tmp_path / "d2" / "top.apkg")
    fields = " ".join(v for n in collection.find_notes("") for _, v in collection.get_note(n).items())
    assert "<strong>4</strong>" in fields and "42" in fields


def test_the_cache_stores_no_pickle(project, tmp_path):
    cards = project(CARDS)
    cache = tmp_path / "cache"
    assert run_cli("build", cards, "--out", tmp_path / "d", "--cache-dir", cache, "--quiet") == 0
    db = sqlite3.connect(cache / "cache.sqlite")
    values = [v for (v,) in db.execute("select value from entries")]
    db.close()
    assert len(values) >= 4  # parsed file, two rendered texts or more, the code, the output
    import json

    for value in values:
        json.loads(value)  # every value is plain JSON text


def test_a_cached_output_is_not_reused_when_the_timeout_changes(project, tmp_path, capsys):
    card = "deck: D\ntype: code\ncards:\n  - id: slow\n    q: Q?\n    timeout: {t}\n    code: |\n      import time\n      time.sleep(0.6)\n      print('done')\n"
    cards = project({"a.yaml": card.format(t=30)})
    cache = tmp_path / "cache"
    assert run_cli("build", cards, "--out", tmp_path / "d", "--cache-dir", cache, "--quiet") == 0
    (cards / "a.yaml").write_text(card.format(t=0.2))
    assert run_cli("build", cards, "--out", tmp_path / "d", "--cache-dir", cache, "--quiet") == 1
    assert capsys.readouterr().err.splitlines()[0] == f"{cards}/a.yaml:8: error: code card 'slow' timed out after 0.2 s"


def test_one_card_cannot_change_another_cards_output(project, tmp_path, collection):
    """Issue 11: a name set on builtins, a signal handler or a patched print used to reach the
    next card, and the output cache then kept serving the leaked output after the fix."""
    leaky = (
        "deck: D\ntype: code\ncards:\n"
        "  - id: a-leaky\n    q: Q?\n    code: |\n"
        "      import builtins, signal\n      builtins.answer = 'LEAKED'\n"
        "      _print = builtins.print\n      builtins.print = lambda *a, **k: _print('PATCHED', *a, **k)\n"
        "      signal.signal(signal.SIGALRM, lambda *a: _print('ALARM'))\n      signal.setitimer(signal.ITIMER_REAL, 0.2)\n"
        "      _print('leaky ran')\n"
        "  - id: b-victim\n    q: Q?\n    code: |\n"
        "      import builtins, time\n      time.sleep(0.4)\n      print(getattr(builtins, 'answer', 'clean'))\n"
    )
    cards = project({"a.yaml": leaky})
    assert run_cli("build", cards, "--out", tmp_path / "d", "--cache-dir", tmp_path / "cache", "--quiet") == 0
    import_package(collection, tmp_path / "d" / "d.apkg")
    outputs = {collection.get_note(n)["ID"] if "ID" in collection.get_note(n) else collection.get_note(n).fields[0]: collection.get_note(n)["Output"] for n in collection.find_notes("")}
    assert '<pre class="stdout">clean\n</pre>' in outputs["b-victim"]
    assert "ALARM" not in outputs["b-victim"] and "PATCHED" not in outputs["b-victim"]


MATH = {
    "a.yaml": """
        deck: Top
        type: fact
        cards:
          - id: one
            q: What is $x^2$ at $x = 3$?
            a: "$9$"
          - id: two
            q: What is $y$?
            a: Two.
        """,
}


def _history(cache_file, edit):
    """Rewrite the note lines of every kept build record with ``edit(fields) -> fields``
    (``fields``: card id, digest, time, cards, kind, deck, reuse, formulas; see history._Stored)."""

    def value_for(ns, key, value):
        if ns != "history":
            return value
        stored = json.loads(value)
        stored["notes"] = "".join(" ".join(edit(line.split(" "))) + "\n" for line in stored["notes"].splitlines())
        return json.dumps(stored)

    poison_cache(cache_file, value_for)


def test_a_warm_build_counts_the_formulas_of_the_notes_it_reuses(project, tmp_path, capsys):
    cards = project(MATH)
    cache = tmp_path / "cache"
    assert run_cli("build", cards, "--out", tmp_path / "d", "--cache-dir", cache) == 0
    assert "2 notes, 2 cards, 4 formulas" in capsys.readouterr().out
    (cards / "a.yaml").write_text((cards / "a.yaml").read_text().replace("a: Two.", "a: Still two."))
    assert run_cli("build", cards, "--out", tmp_path / "d", "--cache-dir", cache) == 0  # "one" is reused
    assert "2 notes, 2 cards, 4 formulas" in capsys.readouterr().out


@pytest.mark.parametrize("field, name", [(3, "cards"), (7, "formulas")])
def test_a_build_record_with_a_negative_count_is_not_read(field, name, project, tmp_path, capsys):
    # A record edited to hold a negative number of cards or formulas counts as no record: the
    # next build reports what it built, never a count taken from the crafted record.
    cards = project(MATH)
    cache = tmp_path / "cache"
    assert run_cli("build", cards, "--out", tmp_path / "d", "--cache-dir", cache) == 0
    capsys.readouterr()
    _history(cache / "cache.sqlite", lambda f: [*f[:field], "-5", *f[field + 1:]])
    source = (cards / "a.yaml").read_text()
    (cards / "a.yaml").write_text(source[: source.index("  - id: two")])  # "two" removed, "one" unchanged
    assert run_cli("build", cards, "--out", tmp_path / "d", "--cache-dir", cache) == 0
    report = capsys.readouterr().out
    assert "1 notes, 1 cards, 3 formulas" in report and not re.search(r"(^|[ ,(])-[0-9]", report, re.M), name
