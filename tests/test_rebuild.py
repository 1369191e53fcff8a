"""The rebuild loop: edit, rebuild, re-import, with real Anki collections.

Only notes whose content changed get a newer modification time, so Anki's importer
("update if newer") updates exactly those; unchanged packages are not written again; each
package carries a manifest of its notes; removed cards are reported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import sys
import shutil
import sqlite3
import tempfile
import zipfile
from pathlib import Path

import pytest

import deckbuild
import deckbuild.build as build_module
import deckbuild.notetypes as notetypes
from deckbuild.package import note_guid
from tests.conftest import import_package, package_manifest, run_cli

FACTS = """
    deck: Loop::Facts
    type: fact
    tags: [facts]
    cards:
      - id: one
        tags: [topic::a]
        q: What is one?
        a: "1"
      - id: two
        q: What is two?
        a: "2"
      - id: three
        q: What is three?
        a: "3"
    """
PROBES = """
    deck: Loop::Probes
    type: probe
    cards:
      - id: deep
        q: Why?
        a: Because.
        follow_up: And then?
        follow_up_a: Then this.
    """


def _build(cards: Path, out: Path, *extra) -> int:
    return run_cli("build", cards, "--out", out, "--cache-dir", out.parent / "cache", *extra)


def _notes(col) -> dict[str, object]:
    return {col.get_note(nid)["Id"]: col.get_note(nid) for nid in col.find_notes("")}


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def _notes_answer_line(cards: Path) -> str:
    (line,) = [line.strip() for line in (cards / "facts.yaml").read_text().splitlines() if line.strip().startswith('a: "2')]
    return line


def _notetype(col, name: str) -> dict:
    col.models._clear_cache()  # the Python side caches note types; an import goes around it
    return col.models.by_name(name)


def _package_names(package: Path, column: str) -> dict[int, str]:
    """The decks or note types (``column`` "decks" or "models") in a package's own
    collection, id: name (genanki writes schema 11, whose ``col`` row holds them as JSON)."""
    with zipfile.ZipFile(package) as archive, tempfile.TemporaryDirectory() as tmp:
        database = Path(archive.extract("collection.anki2", tmp))
        with contextlib.closing(sqlite3.connect(database)) as db:
            (found,) = db.execute(f"select {column} from col").fetchone()
    return {int(item["id"]): item["name"] for item in json.loads(found).values()}


def test_round_trip_source_edit_arrives_anki_edit_survives_only_edited_note_moves(project, tmp_path, collection, monkeypatch):
    clock = [1_700_000_000.0]
    monkeypatch.setattr("time.time", lambda: clock[0])
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    cards = project({"facts.yaml": FACTS, "probes.yaml": PROBES})
    dist = tmp_path / "dist"
    assert _build(cards, dist, "--quiet") == 0
    import_package(collection, dist / "loop.apkg")

    # In Anki, the user fixes note "two"; in the sources, card "one" is edited.
    two = _notes(collection)["two"]
    two["Answer"] = "2 (fixed in Anki)"
    collection.update_note(two)
    mods = {cid: note.mod for cid, note in _notes(collection).items()}
    clock[0] += 60
    _edit(cards / "facts.yaml", "What is one?", "What is the number one?")
    assert _build(cards, dist, "--quiet") == 0
    log = import_package(collection, dist / "loop.apkg")

    notes = _notes(collection)
    assert notes["one"]["Question"] == "<p>What is the number one?</p>"
    assert notes["two"]["Answer"] == "2 (fixed in Anki)"
    assert len(log.updated) == 1 and len(log.new) == 0
    moved = {cid for cid, note in notes.items() if note.mod != mods[cid]}
    assert moved == {"one"}
    assert notes["one"].mod == 1_700_000_060


@pytest.mark.parametrize("epoch", [None, "1700000000"])
def test_an_edit_in_the_same_second_as_the_last_build_reaches_the_collection(epoch, project, tmp_path, collection, monkeypatch):
    monkeypatch.setattr("time.time", lambda: 1_700_000_000.5)  # every build in the very same second
    if epoch:
        monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
    else:
        monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    cards = project({"facts.yaml": FACTS})
    dist = tmp_path / "dist"
    assert _build(cards, dist, "--quiet") == 0
    import_package(collection, dist / "loop.apkg")
    for answer in ("2, edited", "2, edited twice"):
        _edit(cards / "facts.yaml", _notes_answer_line(cards), f'a: "{answer}"')
        assert _build(cards, dist, "--quiet") == 0
        log = import_package(collection, dist / "loop.apkg")
        assert len(log.updated) == 1
        assert _notes(collection)["two"]["Answer"] == f"<p>{answer}</p>"


def test_a_template_change_reaches_the_collection_and_an_unchanged_note_type_keeps_its_time(project, tmp_path, collection, monkeypatch):
    clock = [1_700_000_000.0]
    monkeypatch.setattr("time.time", lambda: clock[0])
    cards = project({"facts.yaml": FACTS, "probes.yaml": PROBES})
    dist = tmp_path / "dist"
    assert _build(cards, dist, "--quiet") == 0
    import_package(collection, dist / "loop.apkg")
    fact, probe = _notetype(collection, "deckbuild Fact"), _notetype(collection, "deckbuild Probe")

    clock[0] += 1
    changed = notetypes.FACT.templates[0][2].replace('<div class="db-answer">', '<div class="db-answer db-new">')
    monkeypatch.setattr(notetypes, "FACT", notetypes.NoteTypeSpec(fact["id"], "deckbuild Fact", notetypes.FACT.fields, ((notetypes.FACT.templates[0][0], notetypes.FACT.templates[0][1], changed),)))
    monkeypatch.setitem(notetypes.NOTE_TYPES, notetypes.Kind.FACT, notetypes.FACT)
    assert _build(cards, dist, "--quiet") == 0
    import_package(collection, dist / "loop.apkg")
    assert "db-new" in _notetype(collection, "deckbuild Fact")["tmpls"][0]["afmt"]
    assert _notetype(collection, "deckbuild Fact")["mod"] > fact["mod"]
    assert _notetype(collection, "deckbuild Probe")["mod"] == probe["mod"]

    clock[0] += 1
    monkeypatch.setattr(notetypes, "CSS", notetypes.CSS + "\n.db-new { color: red; }\n")
    assert _build(cards, dist, "--quiet") == 0
    import_package(collection, dist / "loop.apkg")
    assert ".db-new { color: red; }" in _notetype(collection, "deckbuild Probe")["css"]


def test_an_unchanged_rebuild_reads_no_card_and_an_edit_is_seen(project, tmp_path, monkeypatch):
    # The no-op rebuild compares one digest of the inputs with the last build's: with nothing
    # changed it loads no card at all (make bench: 0.85 s for 100k cards).
    cards = project({"facts.yaml": FACTS})
    options = build_module.BuildOptions(sources=(cards,), out_dir=tmp_path / "dist", cache_dir=tmp_path / "cache")
    assert not build_module.build(options).report.up_to_date

    def no_loading(*args, **kwargs):
        raise AssertionError("an unchanged rebuild loaded the cards")

    real_load = build_module.load
    monkeypatch.setattr(build_module, "load", no_loading)
    again = build_module.build(options)
    assert again.report.up_to_date and again.report.notes == 3
    monkeypatch.setattr(build_module, "load", real_load)
    _edit(cards / "facts.yaml", "What is two?", "What is 2?")
    assert not build_module.build(options).report.up_to_date


@pytest.mark.parametrize("changed", ["build.py", "templates/card.css", "vendor/LICENSE-a-new-file"])
def test_a_change_to_any_of_deckbuilds_own_files_rebuilds(project, tmp_path, monkeypatch, changed):
    # As after an upgrade of deckbuild: its code, templates, CSS and vendored files are all
    # inputs of the packages, so "nothing changed" must not hold. The build reads its own
    # files from where build.py lies: here a copy of the package.
    copy = tmp_path / "pkg" / "deckbuild"
    shutil.copytree(Path(build_module.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(build_module, "__file__", str(copy / "build.py"))
    cards = project({"facts.yaml": FACTS})
    options = build_module.BuildOptions(sources=(cards,), out_dir=tmp_path / "dist", cache_dir=tmp_path / "cache")
    build_module.build(options)
    assert build_module.build(options).report.up_to_date
    target = copy / changed
    assert target.exists() or changed.endswith("new-file")
    with open(target, "a", encoding="utf-8") as f:
        f.write("\n")
    assert not build_module.build(options).report.up_to_date


@pytest.mark.parametrize("change", ["SOURCE_DATE_EPOCH", "timestamp", "strict", "run_code", "python", "guid_namespace", "math"])
def test_a_changed_option_or_source_date_epoch_is_never_up_to_date(project, tmp_path, monkeypatch, change):
    # Each of these changes what the packages hold (times, GUIDs, MathML, baked output) or
    # whether the build may pass, so "nothing changed" must not hold across it.
    cards = project({"facts.yaml": FACTS})
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    options = build_module.BuildOptions(sources=(cards,), out_dir=tmp_path / "dist", cache_dir=tmp_path / "cache")
    build_module.build(options)
    assert build_module.build(options).report.up_to_date
    if change == "SOURCE_DATE_EPOCH":
        monkeypatch.setenv("SOURCE_DATE_EPOCH", "1800000000")
    else:
        other = {"timestamp": 1750000000, "strict": True, "run_code": False, "python": str(tmp_path / "python"),
                 "guid_namespace": "another namespace", "math": "latex2mathml"}[change]
        if change == "python":
            os.symlink(sys.executable, other)
        options = dataclasses.replace(options, **{change: other})
    assert not build_module.build(options).report.up_to_date


@pytest.mark.parametrize("library", ["math engine", "genanki"])
def test_a_new_version_of_the_renderer_or_packager_is_never_up_to_date(project, tmp_path, monkeypatch, library):
    # As after `pip install -U latex2mathml` (or mini-racer, or genanki): the packages' bytes
    # may change with no change to the cards or to deckbuild.
    cards = project({"facts.yaml": FACTS})
    options = build_module.BuildOptions(sources=(cards,), out_dir=tmp_path / "dist", cache_dir=tmp_path / "cache", math="latex2mathml")
    build_module.build(options)
    assert build_module.build(options).report.up_to_date
    if library == "genanki":
        real_version = build_module.metadata.version
        monkeypatch.setattr(build_module.metadata, "version", lambda name: "99.0" if name == "genanki" else real_version(name))
    else:
        real_engine = build_module.engine

        class Upgraded:
            def __init__(self, inner):
                self.inner = inner

            def __getattr__(self, name):
                return getattr(self.inner, name)

            def version(self):
                return self.inner.version() + " upgraded"

        monkeypatch.setattr(build_module, "engine", lambda name: Upgraded(real_engine(name)))
    assert not build_module.build(options).report.up_to_date


def test_sources_whose_digest_cannot_be_taken_are_always_built(project, tmp_path, monkeypatch, collection):
    # As when an image file beside the cards cannot be read: the build itself can go on (no
    # card shows the image), but "nothing changed" cannot be known, so it is never assumed.
    cards = project({"facts.yaml": FACTS})
    monkeypatch.setattr(build_module, "fingerprint", lambda paths: None)
    options = build_module.BuildOptions(sources=(cards,), out_dir=tmp_path / "dist", cache_dir=tmp_path / "cache")
    build_module.build(options)
    _edit(cards / "facts.yaml", "What is two?", "What is 2?")
    assert not build_module.build(options).report.up_to_date
    import_package(collection, tmp_path / "dist" / "loop.apkg")
    assert "What is 2?" in _notes(collection)["two"]["Question"]


def test_touching_a_file_changes_nothing_and_an_edit_rewrites_only_its_packages(project, tmp_path, capsys):
    cards = project({"facts.yaml": FACTS, "probes.yaml": PROBES})
    dist = tmp_path / "dist"
    assert _build(cards, dist) == 0
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in dist.iterdir()}
    assert sorted(before) == ["loop-facts.apkg", "loop-probes.apkg", "loop.apkg"]
    capsys.readouterr()

    later = (cards / "facts.yaml").stat().st_mtime + 3600
    os.utime(cards / "facts.yaml", (later, later))
    assert _build(cards, dist) == 0
    assert "nothing changed since the last build; nothing written to" in capsys.readouterr().out
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in dist.iterdir()} == before

    _edit(cards / "probes.yaml", "Because.", "Because of this.")
    assert _build(cards, dist) == 0
    out = capsys.readouterr().out
    assert "wrote 2 package(s)" in out and "loop.apkg, loop-probes.apkg (1 unchanged)" in out
    assert "1 note(s) new or changed" in out
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in dist.iterdir()}
    assert after["loop-facts.apkg"] == before["loop-facts.apkg"]
    assert after["loop-probes.apkg"][1] != before["loop-probes.apkg"][1]

    # A package deleted or replaced by hand is written again.
    (dist / "loop-facts.apkg").unlink()
    assert _build(cards, dist) == 0
    assert "wrote 1 package(s) to" in capsys.readouterr().out
    assert (dist / "loop-facts.apkg").read_bytes() == before["loop-facts.apkg"][1]


def test_every_package_carries_a_manifest_that_anki_keeps(project, tmp_path, collection, monkeypatch):
    clock = [1_700_000_000.0]
    monkeypatch.setattr("time.time", lambda: clock[0])
    cards = project({"facts.yaml": FACTS, "probes.yaml": PROBES})
    dist = tmp_path / "dist"
    assert _build(cards, dist, "--quiet") == 0
    first = package_manifest(dist / "loop-facts.apkg")
    assert first["format"] == 1 and first["package"] == "loop-facts" and first["built"] == 1_700_000_000
    assert first["generator"] == f"deckbuild {deckbuild.__version__}"
    assert first["roots"] == ["Loop::Facts"]
    # Each deck is listed with its id in the package (Anki gives an imported deck an id of its own).
    packaged = sorted((name, deck) for deck, name in _package_names(dist / "loop-facts.apkg", "decks").items() if name != "Default")
    assert first["decks"] == [{"name": name, "id": deck} for name, deck in packaged] and len(packaged) == 2
    # ... and all of deckbuild's note types with their fixed ids (docs/format.md), the ones
    # this package uses included exactly as the package holds them.
    listed = {t["id"]: t["name"] for t in first["notetypes"]}
    assert listed == {1738400001: "deckbuild Q&A", 1738400002: "deckbuild Fact", 1738400003: "deckbuild Probe", 1738400004: "deckbuild Code"}
    assert _package_names(dist / "loop-facts.apkg", "models").items() <= listed.items()
    assert first["notes"][0] == {
        "guid": note_guid("one", "deck:Loop"),
        "id": "one",
        "deck": "Loop::Facts",
        "notetype": notetypes.FACT.id,
        "tags": ["facts", "topic::a"],
        "cards": 1,
    }
    assert [n["id"] for n in first["notes"]] == ["one", "two", "three"]
    everything = package_manifest(dist / "loop.apkg")
    assert everything["roots"] == ["Loop"] and {n["id"]: n["cards"] for n in everything["notes"]}["deep"] == 2

    # Anki keeps the manifest in the media folder, though no note references it.
    import_package(collection, dist / "loop-facts.apkg")
    media = Path(collection.media.dir())
    (name,) = [p.name for p in media.iterdir() if p.name.startswith("_deckbuild-manifest-loop-facts-")]
    assert re.fullmatch(r"_deckbuild-manifest-loop-facts-[0-9a-f]{16}\.json", name)  # docs/format.md; the add-on reads *.json
    assert json.loads((media / name).read_text()) == first

    # A removed card: the next manifest lacks it and is newer, even in the same second.
    _edit(cards / "facts.yaml", "  - id: three\n    q: What is three?\n    a: \"3\"\n", "")
    assert _build(cards, dist, "--quiet") == 0
    second = package_manifest(dist / "loop-facts.apkg")
    assert [n["id"] for n in second["notes"]] == ["one", "two"] and second["built"] == first["built"] + 1
    import_package(collection, dist / "loop-facts.apkg")
    found = sorted(p.name for p in media.iterdir() if p.name.startswith("_deckbuild-manifest-loop-facts-"))
    newest = max((json.loads((media / n).read_text()) for n in found), key=lambda m: m["built"])
    assert len(found) == 2 and newest == second


def test_the_report_lists_cards_removed_since_the_last_build(project, tmp_path, capsys):
    cards = project({"facts.yaml": FACTS, "probes.yaml": PROBES})
    dist = tmp_path / "dist"
    assert _build(cards, dist) == 0
    (cards / "probes.yaml").unlink()
    _edit(cards / "facts.yaml", "  - id: three\n", "  - id: three-renamed\n")
    capsys.readouterr()
    assert _build(cards, dist) == 0
    out = capsys.readouterr().out
    assert "3 card(s) removed since the last build (notes three, deep)" in out
    assert _build(cards, dist) == 0
    assert "removed" not in capsys.readouterr().out


def test_without_a_record_every_note_is_newer_than_any_earlier_build(project, tmp_path, collection, monkeypatch):
    """A fresh clone or a deleted cache: the documented safe rule (every note gets the build time)."""
    clock = [1_700_000_000.0]
    monkeypatch.setattr("time.time", lambda: clock[0])
    cards = project({"facts.yaml": FACTS})
    dist = tmp_path / "dist"
    assert _build(cards, dist, "--quiet") == 0
    import_package(collection, dist / "loop.apkg")
    for _ in range(3):  # three quick edits: each note that changed is one second newer
        _edit(cards / "facts.yaml", "What is two?", "What is two now?")
        assert _build(cards, dist, "--quiet") == 0
        _edit(cards / "facts.yaml", "What is two now?", "What is two?")
        assert _build(cards, dist, "--quiet") == 0
    import_package(collection, dist / "loop.apkg")
    assert _notes(collection)["two"].mod == 1_700_000_006  # ahead of the clock

    clock[0] += 2
    import shutil

    shutil.rmtree(tmp_path / "cache")
    _edit(cards / "facts.yaml", "What is one?", "What is one, in a fresh clone?")
    assert _build(cards, dist, "--quiet") == 0
    import_package(collection, dist / "loop.apkg")
    assert _notes(collection)["one"]["Question"] == "<p>What is one, in a fresh clone?</p>"


def test_warnings_are_printed_again_by_a_rebuild_with_nothing_changed(project, tmp_path, capsys):
    cards = project({"facts.yaml": FACTS.replace('a: "3"', 'a: |\n          Three:\n          - one more than two')})
    dist = tmp_path / "dist"
    for _ in range(2):
        assert _build(cards, dist) == 0
        captured = capsys.readouterr()
        assert "warning: this list follows a paragraph line" in captured.err
    assert "nothing changed since the last build; nothing written to" in captured.out


def test_a_crafted_record_counts_as_no_record(project, tmp_path, collection, monkeypatch):
    import sqlite3

    clock = [1_700_000_000.0]
    monkeypatch.setattr("time.time", lambda: clock[0])
    cards = project({"facts.yaml": FACTS})
    dist = tmp_path / "dist"
    assert _build(cards, dist, "--quiet") == 0
    import_package(collection, dist / "loop.apkg")
    db = sqlite3.connect(tmp_path / "cache" / "cache.sqlite")
    with db:
        (value,) = db.execute("select value from entries where ns = 'history'").fetchone()
        crafted = value.replace('one ', 'one x ', 1)  # a line with seven fields
        assert crafted != value
        db.execute("update entries set value = ? where ns = 'history'", (crafted,))
    db.close()
    clock[0] += 5
    _edit(cards / "facts.yaml", "What is two?", "What is two, again?")
    assert _build(cards, dist, "--quiet") == 0
    import_package(collection, dist / "loop.apkg")
    assert {cid: n.mod for cid, n in _notes(collection).items()} == {"one": 1_700_000_005, "two": 1_700_000_005, "three": 1_700_000_005}


def _snapshot(*folders: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_rebuild_that_reuses_unchanged_notes_writes_the_bytes_a_full_render_writes(project, tmp_path, monkeypatch):
    import shutil

    import deckbuild.build as build_module

    rendered: list[str] = []
    real_render = build_module.render

    def counting(cards, *args, **kwargs):
        rendered.extend(c.id for c in cards)
        return real_render(cards, *args, **kwargs)

    monkeypatch.setattr(build_module, "render", counting)
    clock = [1_700_000_000.0]
    monkeypatch.setattr("time.time", lambda: clock[0])
    cards = project({"facts.yaml": FACTS, "probes.yaml": PROBES})
    dist, cache = tmp_path / "dist", tmp_path / "cache"
    assert _build(cards, dist, "--quiet") == 0
    assert sorted(rendered) == ["deep", "one", "three", "two"]
    (kept,) = cache.glob("notes-*.anki2")
    saved = {folder: tmp_path / f"saved-{folder.name}" for folder in (dist, cache)}
    for folder, copy in saved.items():
        shutil.copytree(folder, copy)

    clock[0] += 60
    _edit(cards / "facts.yaml", "What is two?", "What is two, again?")
    rendered.clear()
    assert _build(cards, dist, "--quiet") == 0
    assert rendered == ["two"]  # the other three notes' rows came from the kept store
    assert not kept.exists() and len(list(cache.glob("notes-*.anki2"))) == 1  # the kept store was replaced
    reused = _snapshot(dist)

    # The same rebuild from the same record, without a kept store to reuse: everything is rendered.
    for folder, copy in saved.items():
        shutil.rmtree(folder)
        shutil.copytree(copy, folder)
    kept.unlink()
    rendered.clear()
    assert _build(cards, dist, "--quiet") == 0
    assert sorted(rendered) == ["deep", "one", "three", "two"]
    assert _snapshot(dist) == reused


@pytest.mark.parametrize(
    "damage", ["garbage", "wrong-deck", "lost-card", "twin-guid", "twin-pair", "split-deck", "symlink", "token-path", "script", "tag-markup", "tex-text"]
)
def test_a_damaged_kept_store_is_not_reused_and_the_rebuild_is_right(damage, project, tmp_path, collection, monkeypatch):
    import sqlite3

    clock = [1_700_000_000.0]
    monkeypatch.setattr("time.time", lambda: clock[0])
    cards = project({"facts.yaml": FACTS, "probes.yaml": PROBES})
    dist, cache = tmp_path / "dist", tmp_path / "cache"
    assert _build(cards, dist, "--quiet") == 0
    (kept,) = cache.glob("notes-*.anki2")
    if damage == "garbage":
        kept.write_bytes(b"not a database" * 100)
    elif damage == "token-path":  # the record names a file outside the cache: it is never opened
        outside = tmp_path / "outside.anki2"
        kept.rename(outside)
        db = sqlite3.connect(cache / "cache.sqlite")
        with db:
            (value,) = db.execute("select value from entries where ns = 'history'").fetchone()
            token = kept.name.removeprefix("notes-").removesuffix(".anki2")
            db.execute("update entries set value = ? where ns = 'history'", (value.replace(token, "../outside"),))
        db.close()
    else:
        if damage == "symlink":  # the kept store's name links to a file elsewhere: it is never opened
            elsewhere = tmp_path / "elsewhere.anki2"
            kept.rename(elsewhere)
            kept.symlink_to(elsewhere)
        db = sqlite3.connect(kept)
        with db:
            if damage == "script":  # only a script (and an event handler) added: the rows are intact otherwise
                db.execute("update notes set flds = replace(flds, '<p>', '<p><script>forged()</script><img src=x onerror=forged()>')")
            elif damage == "tex-text":  # no markup at all, but TeX that Anki's MathJax would make a link of
                db.execute("update notes set flds = 'forged \\(\\href{javascript:forged()}{x}\\)' || substr(flds, instr(flds, char(31)))")
            elif damage == "tag-markup":
                db.execute("update notes set tags = ' <b>forged</b> '")
            elif damage != "split-deck":  # note one's answer: its row must not be lent
                db.execute("update notes set flds = replace(flds, '1', 'forged')")
            if damage == "wrong-deck":
                db.execute("update cards set did = did + 1")
            elif damage == "lost-card":
                db.execute("delete from cards where ord = 1")  # the probe's follow-up card
                db.execute("update cards set did = did + 1 where nid = (select min(id) from notes)")
            elif damage == "twin-guid":
                db.execute("update notes set guid = (select min(guid) from notes)")
            elif damage == "twin-pair":  # two notes share a GUID, the others are intact: neither twin is lent
                one = "(select guid from notes where flds like 'one' || char(31) || '%')"
                db.execute(f"update notes set guid = {one} where flds like 'three' || char(31) || '%'")
                db.execute(f"update notes set flds = 'forged' || flds where guid = {one}")
            elif damage == "split-deck":  # the probe's second card in another deck: the note is not lent
                db.execute("update notes set flds = flds || 'forged' where id in (select nid from cards where ord = 1)")
                db.execute("update cards set did = did + 1 where ord = 1")
        db.close()
    clock[0] += 60
    _edit(cards / "facts.yaml", "What is two?", "What is two, again?")
    assert _build(cards, dist, "--quiet") == 0
    import_package(collection, dist / "loop.apkg")
    notes = _notes(collection)
    assert sorted(notes) == ["deep", "one", "three", "two"]
    assert all("forged" not in field for n in notes.values() for field in [*n.fields, *n.tags]), damage
    assert notes["two"]["Question"].startswith("<p>What is two, again?")
    assert len(collection.find_cards("")) == 5
