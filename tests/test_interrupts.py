"""SIGINT and SIGTERM at controlled points of a real build (a subprocess): the build ends
promptly with one line and 128 + signal, the previous packages stay byte for byte, and no
temporary file, worker folder or process is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from corpus import write_corpus  # noqa: E402

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads child processes from /proc")

CARDS = 4100  # above the parallel render (2000 texts) and parallel writer (4000 notes) thresholds


def _children(pid: int) -> set[int]:
    try:
        return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        return set()


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for child in _children(todo.pop()) - found:
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
    except OSError:
        return ""


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _build(cards: Path, out: Path, tmp: Path, cache: Path, stderr=subprocess.PIPE) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONFAULTHANDLER": "1"}
    env.pop("SOURCE_DATE_EPOCH", None)
    args = [sys.executable, "-m", "deckbuild", "build", str(cards), "--out", str(out), "--quiet", "--cache-dir", str(cache)]
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A 4100-card project built once (the previous packages), then edited."""
    root = tmp_path_factory.mktemp("big")
    cards = root / "cards"
    write_corpus(cards, CARDS)
    (cards / "code.yaml").write_text(
        "deck: Bench::Code\ntype: code\ncards:\n  - id: slow\n    q: Q?\n    timeout: 60\n    code: |\n      import time\n      time.sleep(float(open('/dev/null').read() or 0))\n      print('done')\n"
    )
    out = root / "dist"
    tmp = root / "tmp"
    tmp.mkdir()
    first = _build(cards, out, tmp, root / "cache0")
    assert first.wait(timeout=600) == 0, first.stderr.read()
    path = cards / "part-000.yaml"
    path.write_text(path.read_text().replace("Card 0:", "Card zero:"))
    return cards, out, tmp


def _stage_reached(stage: str, proc: subprocess.Popen, out: Path, tmp: Path) -> bool:
    if stage == "render":  # the render pool's workers are running
        return len(_children(proc.pid)) >= 2 and not any(tmp.glob("deckbuild-worker-*"))
    if stage == "run":  # the snippet worker is starting
        return any(tmp.glob("deckbuild-worker-*"))
    if stage == "snippet":  # the snippet runs: in a process the worker forked (its own process group)
        return any(_children(worker) for worker in _children(proc.pid))
    return any(p.name.endswith(".tmp") for p in out.iterdir())  # "write": temporary packages exist


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("stage", ["render", "run", "snippet", "write"])
def test_an_interrupt_leaves_the_previous_packages_and_nothing_else(big, stage, signum, tmp_path):
    cards, out, _ = big
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    before = _tree(out)
    cache = tmp_path / "cache"
    if stage in ("run", "snippet"):  # make the snippet sleep long enough to be interrupted
        (cards / "code.yaml").write_text((cards / "code.yaml").read_text().replace("or 0", "or 30"))
    elif stage == "write":  # a warm cache: straight to the writers, with the snippet cached
        pass
    try:
        errors = open(tmp_path / "stderr", "w+")
        proc = _build(cards, out, tmp, cache, errors)
        seen: set[int] = set()
        deadline = time.monotonic() + 300
        while not _stage_reached(stage, proc, out, tmp):
            seen |= _descendants(proc.pid)
            assert proc.poll() is None, f"build ended before the {stage} stage: {(tmp_path / 'stderr').read_text()}"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        seen |= _descendants(proc.pid)
        os.kill(proc.pid, signum)
        sent = time.monotonic()
        try:
            status = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # show where it hangs (PYTHONFAULTHANDLER dumps on SIGABRT)
            os.kill(proc.pid, signal.SIGABRT)
            time.sleep(2)
            pytest.fail(f"the build hung after {signal.Signals(signum).name}:\n{(tmp_path / 'stderr').read_text()}")
        took = time.monotonic() - sent
    finally:
        if stage in ("run", "snippet"):
            (cards / "code.yaml").write_text((cards / "code.yaml").read_text().replace("or 30", "or 0"))
    stderr = (tmp_path / "stderr").read_text()
    assert status == 128 + signum, stderr
    assert stderr == f"deckbuild: interrupted ({signal.Signals(signum).name}); previous packages unchanged\n"
    assert took < 10, f"took {took:.1f} s to stop"
    assert _tree(out) == before  # byte for byte, and no temporary file
    assert list(tmp.iterdir()) == []  # no tmp*.anki2, no deckbuild-worker-* folder
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in seen) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = {pid: _cmdline(pid) for pid in seen if _alive(pid)}
    assert left == {}
