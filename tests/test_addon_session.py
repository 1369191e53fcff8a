"""The add-on's Session: one warm worker, interpreter choice, idle shutdown.

The first tests use a fake Worker; the last ones drive the real runner
(src/deckbuild/runner.py, the file the add-on vendors) through the Session.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from addon.session import NoPythonError, Session  # noqa: E402
from tests.conftest import wait_dead  # noqa: E402


class FakeWorker:
    started: list["FakeWorker"] = []

    def __init__(self, python, *, max_output_bytes):
        self.python = python
        self.max_output_bytes = max_output_bytes
        self.runs = []
        self.closed = False
        FakeWorker.started.append(self)

    def run(self, code, timeout):
        self.runs.append((code, timeout))
        return f"ran {code!r} in {self.python}"

    def close(self):
        self.closed = True


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    FakeWorker.started = []
    return Clock()


def make(clock, found="/found/python"):
    lookups = []

    def find():
        lookups.append(1)
        return found

    return Session(FakeWorker, find, clock), lookups


def test_worker_is_started_once_and_reused(clock):
    session, _ = make(clock)
    assert session.run("a", "/py", 5, 100) == "ran 'a' in /py"
    assert session.run("b", "/py", 7, 100) == "ran 'b' in /py"
    [worker] = FakeWorker.started
    assert worker.runs == [("a", 5), ("b", 7)]
    assert worker.max_output_bytes == 100


def test_changed_interpreter_or_cap_replaces_the_worker(clock):
    session, _ = make(clock)
    session.run("a", "/py", 5, 100)
    session.run("a", "/other", 5, 100)
    session.run("a", "/other", 5, 200)
    first, second, third = FakeWorker.started
    assert (first.closed, second.closed, third.closed) == (True, True, False)
    assert (third.python, third.max_output_bytes) == ("/other", 200)


def test_a_leading_tilde_is_the_home_folder(clock, monkeypatch):
    monkeypatch.setenv("HOME", "/home/you")
    session, _ = make(clock)
    assert session.run("a", "~/deckbuild/.venv/bin/python", 5, 100) == "ran 'a' in /home/you/deckbuild/.venv/bin/python"


def test_empty_python_is_looked_up_once(clock):
    session, lookups = make(clock)
    assert session.run("a", "", 5, 100) == "ran 'a' in /found/python"
    session.run("a", "", 5, 100)
    assert lookups == [1]


def test_no_python_found_raises_and_is_looked_up_again_next_time(clock):
    session, lookups = make(clock, found=None)
    with pytest.raises(NoPythonError):
        session.run("a", "", 5, 100)
    with pytest.raises(NoPythonError):
        session.interpreter("")
    assert lookups == [1, 1]
    assert FakeWorker.started == []


def test_idle_worker_is_closed_and_a_new_one_starts_later(clock):
    session, _ = make(clock)
    session.run("a", "/py", 5, 100)
    clock.now += 59
    assert session.close_if_idle(60) is False
    clock.now += 2
    assert session.close_if_idle(60) is True
    assert FakeWorker.started[0].closed
    assert session.close_if_idle(60) is False  # nothing left to close
    session.run("b", "/py", 5, 100)
    assert len(FakeWorker.started) == 2


def _run_held_open(clock, **worker_attributes):
    """Start session.run("slow") in a thread on a FakeWorker (with ``worker_attributes``) whose
    run waits until the returned gate is set; return (session, gate, thread) once it runs."""
    gate = threading.Event()
    inside = threading.Event()

    class Held(FakeWorker):
        def run(self, code, timeout):
            inside.set()
            gate.wait(5)
            return super().run(code, timeout)

    for name, value in worker_attributes.items():
        setattr(Held, name, value)
    session = Session(Held, lambda: None, clock)
    thread = threading.Thread(target=session.run, args=("slow", "/py", 5, 100))
    thread.start()
    assert inside.wait(5)
    return session, gate, thread


def test_runs_are_serialized_and_idle_check_never_waits(clock):
    session, gate, thread = _run_held_open(clock)
    assert session.running
    clock.now += 10_000
    assert session.close_if_idle(1) is False  # busy: returns at once
    gate.set()
    thread.join(5)
    assert not session.running
    assert FakeWorker.started[0].runs == [("slow", 5)]


def test_shutdown_while_the_worker_is_still_starting_neither_raises_nor_waits(clock):
    # A worker that has no process yet (pid None: the interpreter is still starting) when
    # Anki's profile closes: nothing to kill; the worker is closed once its run returns.
    session, gate, thread = _run_held_open(clock, pid=None)
    session.shutdown()
    assert session.running and not FakeWorker.started[0].closed
    gate.set()
    thread.join(5)
    assert FakeWorker.started[0].closed and session._worker is None


def test_close_closes_the_worker(clock):
    session, _ = make(clock)
    session.close()  # nothing started: fine
    session.run("a", "/py", 5, 100)
    session.close()
    assert FakeWorker.started[0].closed


# --- the real runner, through the Session -------------------------------


@pytest.fixture(scope="module")
def real_session():
    from deckbuild import runner
    session = Session(runner.Worker, runner.find_python)
    yield session
    session.close()


def test_real_worker_runs_torch_and_stays_warm(real_session):
    code = "import torch\nprint(torch.arange(6).reshape(2, 3).sum(dim=0))\n"
    first = real_session.run(code, sys.executable, 120, 100_000)
    assert first.ok and first.stdout == "tensor([3, 5, 7])\n"
    assert first.torch and first.python
    worker = real_session._worker
    second = real_session.run(code, sys.executable, 120, 100_000)
    assert second.stdout == first.stdout
    assert real_session._worker is worker  # warm: the same worker process ran it (speed: make bench)


def test_real_worker_reports_the_exception_and_its_line(real_session):
    result = real_session.run("x = 1\nprint('before')\n1 / 0\n", sys.executable, 60, 100_000)
    assert result.stdout == "before\n"
    assert "ZeroDivisionError" in result.error and result.error_line == 3


def test_real_worker_recovers_after_a_timeout(real_session):
    result = real_session.run("import time\nprint('start', flush=True)\ntime.sleep(30)\n", sys.executable, 1.0, 100_000)
    assert result.timed_out
    again = real_session.run("print('fresh')\n", sys.executable, 60, 100_000)
    assert again.ok and again.stdout == "fresh\n"


def test_shutdown_does_not_wait_for_a_running_snippet_and_ends_it(real_session, tmp_path):
    real_session.run("print('warm')\n", sys.executable, 60, 100_000)
    results = []
    pid_file = tmp_path / "pid"
    code = f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n"
    thread = threading.Thread(target=lambda: results.append(real_session.run(code, sys.executable, 120, 100_000)))
    thread.start()
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.01)
    snippet = int(pid_file.read_text())
    start = time.perf_counter()
    real_session.shutdown()
    thread.join(20)
    assert time.perf_counter() - start < 10
    assert not thread.is_alive()
    [result] = results
    assert result.error.startswith("WorkerCrash") and not result.timed_out
    # the snippet's process group ends itself once its worker is gone
    assert wait_dead(snippet), "the snippet went on running after Anki's profile closed"
    assert real_session._worker is None  # closed after the run: the next run starts a new one
    assert real_session.run("print('again')\n", sys.executable, 60, 100_000).stdout == "again\n"
