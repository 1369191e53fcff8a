"""The two source forms, and reproducible packages."""

from __future__ import annotations

import os
import stat
import time
import zipfile
from pathlib import Path

import pytest

from tests.conftest import import_package, run_cli

YAML_FORM = """
    deck: Top::Sub
    type: fact
    tags: [t1]
    cards:
      - id: rank
        source: [fact-01, fact-02]
        tags: [topic::tensors]
        q: |
          What is the rank of a tensor with shape $(3, 4, 5)$?
        a: |
          **3**
        why: |
          Rank counts axes:

          $$\\operatorname{rank} = \\operatorname{len}(\\text{shape})$$
    """

MARKDOWN_FORM = """
    ---
    deck: Top::Sub
    type: fact
    tags: [t1]
    ---

    ## What is the rank of a tensor with shape $(3, 4, 5)$?
    id: rank
    source: [fact-01, fact-02]
    tags: [topic::tensors]

    **3**

    ### Why

    Rank counts axes:

    $$\\operatorname{rank} = \\operatorname{len}(\\text{shape})$$
    """


def _fields_of_only_note(col):
    (nid,) = col.find_notes("")
    note = col.get_note(nid)
    return note.note_type()["name"], list(note.items()), sorted(note.tags), note.guid


def test_markdown_and_yaml_give_identical_notes(project, tmp_path, collection):
    from anki.collection import Collection

    yaml_cards = project({"a.yaml": YAML_FORM})
    assert run_cli("build", yaml_cards, "--out", tmp_path / "y", "--quiet") == 0
    import_package(collection, tmp_path / "y" / "top.apkg")

    md_dir = tmp_path / "md"
    md_dir.mkdir()
    (md_dir / "a.md").write_text(MARKDOWN_FORM.replace("\n    ", "\n").lstrip())
    assert run_cli("build", md_dir, "--out", tmp_path / "m", "--quiet") == 0
    other = Collection(str(tmp_path / "other.anki2"))
    try:
        import_package(other, tmp_path / "m" / "top.apkg")
        assert _fields_of_only_note(other) == _fields_of_only_note(collection)
    finally:
        other.close()
    name, fields, tags, _ = _fields_of_only_note(collection)
    assert fields[3][1].startswith("<p>Rank counts axes:</p>\n<div class=\"math-display\"><math")


def test_same_sources_and_epoch_give_identical_bytes(project, tmp_path, monkeypatch):
    cards = project({"a.yaml": YAML_FORM})
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert run_cli("build", cards, "--out", tmp_path / "one", "--cache-dir", tmp_path / "c1", "--quiet") == 0
    # Another checkout: file times far apart (a day later), another cache, another clock.
    later = (cards / "a.yaml").stat().st_mtime + 86400
    os.utime(cards / "a.yaml", (later, later))
    monkeypatch.setattr("time.time", lambda: later + 3600.0)
    assert run_cli("build", cards, "--out", tmp_path / "two", "--cache-dir", tmp_path / "c2", "--quiet") == 0
    first = sorted((tmp_path / "one").iterdir())
    assert [p.name for p in first] == ["top-sub.apkg", "top.apkg"]
    for path in first:
        assert path.read_bytes() == (tmp_path / "two" / path.name).read_bytes()
    # Every zip entry carries the epoch's UTC time as its date (even seconds: zip keeps two-second steps).
    with zipfile.ZipFile(first[0]) as archive:
        assert {info.date_time for info in archive.infolist()} == {time.gmtime(1700000000)[:6]}
        assert {info.external_attr >> 16 for info in archive.infolist()} == {0o644}  # rw-r--r-- whatever the umask
    assert {stat.S_IMODE(path.stat().st_mode) for path in first} == {0o644}  # the package file too, not mkstemp's 0600


def test_an_epoch_before_1980_dates_the_zip_entries_at_the_start_of_zip_time(project, tmp_path, monkeypatch):
    cards = project({"a.yaml": YAML_FORM})
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")  # 1970: before the first date a zip entry can hold
    assert run_cli("build", cards, "--out", tmp_path / "d", "--no-cache", "--quiet") == 0
    with zipfile.ZipFile(tmp_path / "d" / "top.apkg") as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_unwritable_output_leaves_nothing_half_written(project, tmp_path, capsys):
    cards = project({"a.yaml": YAML_FORM})
    out = tmp_path / "ro"
    assert run_cli("build", cards, "--out", out, "--quiet") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (cards / "a.yaml").write_text((cards / "a.yaml").read_text().replace("**3**", "**three**"))
    out.chmod(0o555)
    try:
        if os.access(out, os.W_OK):  # root ignores permissions: make the target a folder instead
            out.chmod(0o755)
            (out / "top.apkg").unlink()
            (out / "top.apkg").mkdir()
            before["top.apkg"] = None
        status = run_cli("build", cards, "--out", out, "--quiet")
    finally:
        out.chmod(0o755)
    err = capsys.readouterr().err
    assert status == 1
    assert "error: cannot write" in err and "Traceback" not in err
    after = {p.name: (None if p.is_dir() else p.read_bytes()) for p in out.iterdir()}
    assert after == before  # every previous package intact, the folder still in the way, no temporary file


def test_build_while_the_previous_package_is_open(project, tmp_path):
    cards = project({"a.yaml": YAML_FORM})
    out = tmp_path / "dist"
    assert run_cli("build", cards, "--out", out, "--quiet") == 0
    old_bytes = (out / "top.apkg").read_bytes()
    with open(out / "top.apkg", "rb") as reader:  # e.g. Anki importing it right now
        (cards / "a.yaml").write_text((cards / "a.yaml").read_text().replace("**3**", "**three**"))
        assert run_cli("build", cards, "--out", out, "--quiet") == 0
        assert reader.read() == old_bytes  # the reader still sees the whole previous package
    assert (out / "top.apkg").read_bytes() != old_bytes
    with zipfile.ZipFile(out / "top.apkg") as archive:
        assert archive.testzip() is None


def test_a_corrupt_cache_costs_time_not_correctness(project, tmp_path, collection):
    cards = project({"a.yaml": YAML_FORM})
    cache = tmp_path / "cache"
    assert run_cli("build", cards, "--out", tmp_path / "d1", "--cache-dir", cache, "--quiet") == 0
    (cache / "cache.sqlite").write_bytes(b"this is not a database" * 100)
    assert run_cli("build", cards, "--out", tmp_path / "d2", "--cache-dir", cache, "--quiet") == 0
    import_package(collection, tmp_path / "d2" / "top.apkg")
    (nid,) = collection.find_notes("")
    assert "<strong>3</strong>" in collection.get_note(nid)["Answer"]


def test_warm_build_sees_edits(project, tmp_path, collection):
    # That a warm build parses and renders nothing unchanged: tests/test_regressions.py.
    cards = project({"a.yaml": YAML_FORM})
    cache = tmp_path / "cache"
    for answer in ("**3**", "**three**"):
        text = (cards / "a.yaml").read_text()
        (cards / "a.yaml").write_text(text.replace("**3**", answer))
        assert run_cli("build", cards, "--out", tmp_path / "d", "--cache-dir", cache, "--quiet") == 0
    import_package(collection, tmp_path / "d" / "top.apkg")
    (nid,) = collection.find_notes("")
    assert collection.get_note(nid)["Answer"] == "<p><strong>three</strong></p>"


@pytest.mark.parametrize("failing_package", ["top.apkg", "top-sub.apkg"])  # the first and the second written
@pytest.mark.parametrize("step", ["write", "reserve", "zip", "database"])  # the package writer; its temporary file; zipping or writing its database
def test_a_failed_writer_leaves_no_temporary_files(step, failing_package, project, tmp_path, monkeypatch, capsys):
    import deckbuild.package as package
    from deckbuild.errors import PackageError

    cards = project({"a.yaml": YAML_FORM})
    out = tmp_path / "dist"
    assert run_cli("build", cards, "--out", out, "--quiet") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (cards / "a.yaml").write_text((cards / "a.yaml").read_text().replace("**3**", "**three**"))

    real_write, real_mkstemp = package.write_package, package.tempfile.mkstemp

    def failing_write(pkg, path, timestamp, *media):
        if path.name.startswith(f".{failing_package}."):
            raise PackageError(f"cannot write {path}: disk full")
        return real_write(pkg, path, timestamp, *media)

    def failing_mkstemp(*args, prefix="", **kwargs):
        if prefix == f".{failing_package}.":
            raise OSError(28, "disk full")
        return real_mkstemp(*args, prefix=prefix, **kwargs)

    real_copy = package.shutil.copyfileobj

    def failing_copy(source, sink, *args):
        if Path(str(getattr(source, "name", ""))).name.startswith(f".{failing_package}."):
            raise OSError(28, "disk full")
        return real_copy(source, sink, *args)

    real_connect = package.sqlite3.connect

    def failing_connect(path, *args, **kwargs):
        if Path(str(path)).name.startswith(f".{failing_package}."):
            raise package.sqlite3.OperationalError("disk full")
        return real_connect(path, *args, **kwargs)

    if step == "database":
        monkeypatch.setattr(package.sqlite3, "connect", failing_connect)
    elif step == "write":
        monkeypatch.setattr(package, "write_package", failing_write)
    elif step == "reserve":
        monkeypatch.setattr(package.tempfile, "mkstemp", failing_mkstemp)
    else:
        monkeypatch.setattr(package.shutil, "copyfileobj", failing_copy)
    assert run_cli("build", cards, "--out", out, "--quiet") == 1
    assert capsys.readouterr().err.splitlines()[0] == f"error: cannot write {out}/{failing_package}: disk full"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temp files, old packages intact


def test_temporary_files_are_made_beside_the_packages_never_in_the_system_temp_folder(project, tmp_path, monkeypatch):
    # A temporary file is renamed over its package, which is atomic only within one file system.
    import tempfile

    cards = project({"a.yaml": YAML_FORM})
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-folder"))
    assert run_cli("build", cards, "--out", tmp_path / "dist", "--no-cache", "--quiet") == 0
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == ["top-sub.apkg", "top.apkg"]
