"""addon/build.py: the .ankiaddon package Anki's "Install from file" takes."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from addon import build  # noqa: E402

EXPECTED = [
    "__init__.py",
    "_worker.py",
    "config.json",
    "config.md",
    "core.py",
    "gui.py",
    "import_gui.py",
    "imports.py",
    "manifest.json",
    "policy.py",
    "runner.py",
    "session.py",
]


def test_package_is_the_folder_contents_plus_the_vendored_runner(tmp_path):
    addon_copy = tmp_path / "addon"
    shutil.copytree(ROOT / "addon", addon_copy, ignore=shutil.ignore_patterns("__pycache__"))
    (addon_copy / "__pycache__").mkdir()
    (addon_copy / "__pycache__" / "core.cpython-311.pyc").write_bytes(b"junk")
    (addon_copy / ".DS_Store").write_bytes(b"junk")

    out = build.build(tmp_path / "dist" / "deckbuild.ankiaddon", addon_dir=addon_copy)

    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == EXPECTED
        assert zf.read("runner.py") == (ROOT / "src/deckbuild/runner.py").read_bytes()
        assert zf.read("_worker.py") == (ROOT / "src/deckbuild/_worker.py").read_bytes()


def test_build_is_reproducible(tmp_path):
    first = build.build(tmp_path / "a.ankiaddon").read_bytes()
    second = build.build(tmp_path / "b.ankiaddon").read_bytes()
    assert first == second


def test_script_writes_dist_file(tmp_path):
    out = tmp_path / "deckbuild.ankiaddon"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "addon" / "build.py"), "--out", str(out)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"wrote {out}\n"
    assert zipfile.is_zipfile(out)


def test_missing_runner_is_an_error(tmp_path):
    with pytest.raises(build.BuildError, match="runner.py not found"):
        build.build(tmp_path / "x.ankiaddon", runner_dir=tmp_path)


def test_runner_that_imports_deckbuild_cannot_be_vendored(tmp_path):
    (tmp_path / "runner.py").write_text("from deckbuild.model import Card\n")
    with pytest.raises(build.BuildError, match="imports the deckbuild package"):
        build.build(tmp_path / "x.ankiaddon", runner_dir=tmp_path)


def test_manifest_passes_ankis_own_check(tmp_path):
    from aqt.addons import AddonManager

    class Stub:
        _manifest_schema = AddonManager._manifest_schema

    with zipfile.ZipFile(build.build(tmp_path / "deckbuild.ankiaddon")) as zf:
        manifest = AddonManager.readManifestFile(Stub(), zf)
    assert manifest == json.loads((ROOT / "addon" / "manifest.json").read_text())
    assert manifest["package"] == "deckbuild_addon"


def test_installed_package_runs_code_with_its_vendored_runner(tmp_path):
    with zipfile.ZipFile(build.build(tmp_path / "deckbuild.ankiaddon")) as zf:
        zf.extractall(tmp_path / "addons21" / "deckbuild_addon")
    sys.path.insert(0, str(tmp_path / "addons21"))
    try:
        session_module = importlib.import_module("deckbuild_addon.session")
        session = session_module.Session()
        try:
            result = session.run("print(sum(range(5)))\n", sys.executable, 120, 1000)
            vendored = Path(sys.modules["deckbuild_addon.runner"].__file__)
        finally:
            session.close()
    finally:
        sys.path.remove(str(tmp_path / "addons21"))
        for name in [m for m in sys.modules if m.startswith("deckbuild_addon")]:
            del sys.modules[name]
    assert result.ok and result.stdout == "10\n"
    assert vendored == tmp_path / "addons21" / "deckbuild_addon" / "runner.py"
