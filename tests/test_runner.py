"""Tests for deckbuild.runner: real worker subprocesses, nothing mocked."""

from __future__ import annotations

import gc
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from deckbuild import runner
from deckbuild.runner import RUNNER_VERSION, RunResult, Worker, WorkerError, find_python
from tests.conftest import pid_alive, shell_script, wait_dead

REPO = Path(__file__).resolve().parents[1]
VENV_PYTHON = REPO / ".venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
PYTHON = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable


@pytest.fixture(scope="module")
def worker():
    """One warm worker (numpy + torch preloaded) shared by the read-only tests."""
    with Worker(PYTHON) as w:
        yield w


@pytest.fixture
def light():
    """A worker without preloads (fast start) for the tests that kill it."""
    with Worker(PYTHON, preload=(), max_output_bytes=1000) as w:
        yield w


# ---------------------------------------------------------------- basics

def test_result_fields_and_versions(worker):
    r = worker.run("print('hello')")
    assert isinstance(r, RunResult)
    assert r.ok and r.stdout == "hello\n" and r.stderr == "" and r.error is None
    assert r.error_line is None and not r.timed_out and not r.truncated
    assert r.seconds >= 0
    assert r.python.count(".") == 2 and r.python[0].isdigit()
    import torch
    assert r.torch == torch.__version__
    assert isinstance(RUNNER_VERSION, str) and RUNNER_VERSION


def test_a_run_reports_the_time_its_snippet_took_in_seconds(light):
    # the time the card shows: a finished run's, and one that ended in an exception
    ran = light.run("import time\ntime.sleep(0.3)\nprint('done')")
    failed = light.run("import time\ntime.sleep(0.3)\n1 / 0")
    assert ran.ok and 0.3 <= ran.seconds < 20
    assert failed.error_types[0] == "ZeroDivisionError" and 0.3 <= failed.seconds < 20


def test_runner_is_stdlib_only():
    """runner.py and _worker.py are vendored into the Anki add-on.

    The worker imports the plotting stack (matplotlib and its own dependencies numpy and
    Pillow) only inside the figure functions, which run only for a snippet that draws."""
    allowed = set(sys.stdlib_module_names) | {"__future__"}
    if os.environ.get("MUTANT_UNDER_TEST"):  # the copy `make mutation` mutates imports mutmut's trampoline
        allowed.add("mutmut")
    import ast
    for name in ("runner.py", "_worker.py"):
        tree = ast.parse((Path(runner.__file__).parent / name).read_text())
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if id(node) not in top and name == "_worker.py" and isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                assert all(m.split(".")[0] in allowed | {"matplotlib", "numpy", "PIL"} for m in mods), mods
                continue
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"relative import in {name}"
                mods = [node.module]
            else:
                continue
            for mod in mods:
                assert mod.split(".")[0] in allowed, f"{name} imports {mod}"


def test_warm_worker_forks_a_fresh_process_per_snippet(worker):
    first = worker.run("import os; print(os.getpid(), os.getppid())")
    second = worker.run("import os; print(os.getpid(), os.getppid())")
    assert first.ok and second.ok
    (pid1, parent1), (pid2, parent2) = (map(int, r.stdout.split()) for r in (first, second))
    assert parent1 == parent2 == worker.pid  # the same warm worker (torch imported once)...
    assert len({pid1, pid2, worker.pid}) == 3  # ...forks a new process for each snippet


def test_torch_absent_reports_none():
    with Worker(PYTHON, preload=("surely_not_a_module_xyz",)) as w:
        r = w.run("print(1)")
        assert r.ok and r.stdout == "1\n"
        assert r.torch is None  # torch not preloaded and not imported


def test_isolation_between_snippets(worker):
    assert worker.run("secret = 42\ndef helper(): return 1\nimport json").ok
    r = worker.run("print('secret' in globals(), 'helper' in globals(), 'json' in globals())")
    assert r.stdout == "False False False\n"
    r = worker.run("print(__name__)")
    assert r.stdout == "__main__\n"


def test_process_state_reset(worker):
    setup = (
        "import os, sys, torch, numpy as np\n"
        "os.chdir(os.path.expanduser('~'))\n"
        "os.environ['DECKBUILD_LEAK'] = '1'\n"
        "sys.path.append('/leak')\n"
        "torch.set_default_dtype(torch.float64)\n"
        "torch.set_printoptions(precision=10)\n"
        "np.set_printoptions(precision=10)\n"
        "torch.set_grad_enabled(False)\n"
    )
    assert worker.run(setup).ok
    r = worker.run(
        "import os, sys, torch, numpy as np\n"
        "print(os.path.basename(os.path.dirname(os.getcwd())).startswith('deckbuild-worker-'))\n"
        "print('DECKBUILD_LEAK' in os.environ, '/leak' in sys.path)\n"
        "print(torch.get_default_dtype(), torch.is_grad_enabled(), torch.get_num_threads())\n"
        "print(torch.tensor([1/3]), np.array([1/3]))\n")
    assert r.stdout.splitlines() == [
        "True", "False False", "torch.float32 True 1", "tensor([0.3333]) [0.3333]"]


def test_snippet_classes_pickle(worker):
    r = worker.run("import pickle\nclass Point:\n    x = 1\n"
                   "print(pickle.loads(pickle.dumps(Point())).x)")
    assert r.ok, r.error
    assert r.stdout == "1\n"


# ---------------------------------------------------------------- determinism

DETERMINISM_SNIPPET = """
import random
import numpy as np
import torch
print(random.random())
print(np.random.rand(3))
print(torch.randn(2, 3))
print(torch.nn.Linear(3, 2).weight.sum().item())
print(sorted({'b', 'a'}), {'x', 'y', 'z'})
"""


def test_determinism_same_output_twice(worker):
    first = worker.run(DETERMINISM_SNIPPET)
    # disturb the global RNGs in between
    assert worker.run("import torch, numpy, random\ntorch.randn(100); numpy.random.rand(9)\n"
                      "random.random()").ok
    second = worker.run(DETERMINISM_SNIPPET)
    assert first.ok, first.error
    assert first.stdout == second.stdout
    assert "tensor([[" in first.stdout


def test_determinism_across_workers(worker):
    with Worker(PYTHON) as other:
        assert other.run(DETERMINISM_SNIPPET).stdout == worker.run(DETERMINISM_SNIPPET).stdout


def test_seeded_values(worker):
    r = worker.run("import torch; print(torch.randn(3))")
    assert r.stdout == "tensor([ 1.5410, -0.2934, -2.1788])\n"


def test_warnings_repeat_every_run(worker):
    code = "import warnings\nfor _ in range(3):\n    warnings.warn('careful')\n"
    first, second = worker.run(code), worker.run(code)
    expected = "<snippet>:3: UserWarning: careful\n  warnings.warn('careful')\n"
    assert first.stderr == second.stderr == expected


# ---------------------------------------------------------------- streams and errors

def test_stdout_stderr_exception_distinct(worker):
    r = worker.run("import sys\nprint('to out')\nprint('to err', file=sys.stderr)\n"
                   "raise ValueError('boom')\n")
    assert r.stdout == "to out\n"
    assert r.stderr == "to err\n"
    assert r.error is not None and r.error.endswith("ValueError: boom\n")
    assert "to out" not in r.error and "to err" not in r.error
    assert not r.ok and not r.timed_out


def test_error_line_mapping(worker):
    code = "x = 1\ny = 2\n\nz = x / (y - 2)\nprint(z)\n"
    r = worker.run(code)
    assert r.error_line == 4
    assert r.error.startswith("Traceback (most recent call last):\n")
    assert 'File "<snippet>", line 4, in <module>' in r.error
    assert "z = x / (y - 2)" in r.error
    assert r.error.rstrip().endswith("ZeroDivisionError: division by zero")
    # worker-internal frames are not shown
    assert "_worker" not in r.error and "exec(" not in r.error
    assert worker.run("1 / 0").error_line == 1  # the first line is a line like any other


def test_error_line_inside_function(worker):
    code = "def f(n):\n    if n == 0:\n        raise KeyError(n)\n    return f(n - 1)\n\nf(2)\n"
    r = worker.run(code)
    assert r.error_line == 3
    assert 'line 6, in <module>' in r.error and 'line 3, in f' in r.error


def test_error_from_library_call(worker):
    r = worker.run("import torch\na = torch.ones(3)\nb = torch.ones(4)\nprint(a + b)\n")
    assert r.error_line == 4
    assert "RuntimeError" in r.error and "site-packages" not in r.error


def test_syntax_error_line(worker):
    r = worker.run("print('ok')\nx = (1,\n")
    assert r.error_line == 2
    assert "SyntaxError" in r.error and r.stdout == ""


def test_system_exit(worker):
    assert worker.run("import sys\nprint('a')\nsys.exit(0)\nprint('b')").stdout == "a\n"
    for code in (1, 3, "bye"):  # only 0 and None are a success, as for the exit status of a script
        r = worker.run(f"import sys\nsys.exit({code!r})")
        assert not r.ok and f"SystemExit: {code}" in r.error and r.error_line == 2


def test_input_gets_eof(worker):
    r = worker.run("input()")
    assert "EOFError" in r.error


def test_fd_level_writes_do_not_corrupt_protocol(worker):
    r = worker.run("import os\nos.write(1, b'\\x00\\x00\\x00\\x09garbage')\n"
                   "os.write(2, b'raw')\nprint('still fine')")
    assert r.ok and r.stdout == "still fine\n"
    assert worker.run("print(2)").stdout == "2\n"


def test_unicode_output(worker):
    r = worker.run("print('é ✓ 日本 \\U0001F600')")
    assert r.stdout == "é ✓ 日本 \U0001F600\n"


# ---------------------------------------------------------------- output cap

def test_output_cap(light):
    r = light.run("print('x' * 5000)\nimport sys\nprint('y' * 10, file=sys.stderr)")
    assert r.ok and r.truncated
    assert r.stdout == "x" * 1000 + "\n\u2026 [output truncated at 1000 bytes]\n"
    assert r.stderr == "y" * 10 + "\n"


def test_output_cap_many_writes_multibyte(light):
    r = light.run("for i in range(10000):\n    print('é', i)")
    assert r.truncated
    body, note = r.stdout.rsplit("\u2026", 1)
    assert len(body.encode()) <= 1001 and note == " [output truncated at 1000 bytes]\n"


def test_output_cap_error_text(light):
    r = light.run("raise ValueError('v' * 5000)")
    assert r.truncated and r.error.endswith("[output truncated at 1000 bytes]\n")


def test_flood_does_not_hang(light):
    start = time.monotonic()
    r = light.run("while True:\n    print('spam' * 1000)", timeout=1.5)
    assert r.timed_out and r.truncated
    assert r.stdout.endswith("[output truncated at 1000 bytes]\n")
    assert time.monotonic() - start < 10


# ---------------------------------------------------------------- timeout, crash

def test_timeout_kills_the_snippet_and_its_children_and_keeps_the_worker(light):
    light.run("print(1)")
    worker_pid = light.pid
    code = ("import os, subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "print(os.getpid(), child.pid, flush=True)\n"
            "while True:\n    time.sleep(0.01)\n")
    start = time.monotonic()
    r = light.run(code, timeout=1.0)
    assert r.timed_out and not r.ok and r.error is None
    assert 1.0 <= r.seconds < 5 and time.monotonic() - start < 10
    snippet_pid, child_pid = map(int, r.stdout.split())
    assert wait_dead(snippet_pid), "the snippet's process survived the timeout"
    assert wait_dead(child_pid), "snippet's child process survived the timeout"
    after = light.run("import os; print(os.getppid())")
    assert after.ok and int(after.stdout) == worker_pid == light.pid  # still warm


def test_a_timed_out_run_still_names_its_python_and_torch(worker):
    r = worker.run("import time\ntime.sleep(30)", timeout=0.5)
    assert r.timed_out and (r.python, r.torch) == (worker.python_version, worker.torch_version) and r.torch


def test_timeout_keeps_partial_output(light):
    r = light.run("print('started')\nwhile True:\n    pass\n", timeout=0.5)
    assert r.timed_out and r.stdout == "started\n"


def test_crash_os_exit_is_reported_and_the_worker_stays(light):
    light.run("print(1)")
    worker_pid = light.pid
    r = light.run("print('about to exit')\nimport os\nos._exit(7)")
    assert not r.ok and not r.timed_out
    assert r.error.startswith("WorkerCrash:") and "code 7" in r.error
    assert r.stdout == "about to exit\n"
    after = light.run("import os; print(os.getppid())")
    assert after.ok and int(after.stdout) == worker_pid


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_crash_report_ends_with_the_last_2000_characters_the_worker_wrote_to_its_stderr(light):
    # What reached the worker's own stderr during the run (here written there by the snippet
    # itself) is the crash's diagnostics; the sleep lets the runner's reader take it in first.
    stray = "x" * 2500 + "TAIL"
    r = light.run(f"import os, time\nwith open(f'/proc/{{os.getppid()}}/fd/2', 'w') as f:\n    f.write({stray!r})\n"
                  "import sys\nprint('before the crash', file=sys.stderr)\ntime.sleep(0.3)\nos._exit(7)")
    assert r.timed_out is False and r.error.startswith("WorkerCrash: ") and "code 7" in r.error.splitlines()[0]
    assert r.seconds >= 0.3  # the crashed run still reports its time
    assert r.python == light.python_version and r.stderr == "before the crash\n"
    assert r.error.endswith(" while running the snippet\n" + stray[-2000:] + "\n"), r.error[-80:]


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_crash_segfault_recovers(light):
    r = light.run("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)")
    assert "signal 11" in r.error and "SIGSEGV" in r.error
    assert light.run("print('alive')").stdout == "alive\n"


def test_a_frame_past_the_limit_is_a_protocol_error_that_ends_the_worker(light):
    # The limit (what a worker may send in one frame) is far above what a run can make; here
    # it is lowered on the live worker, which then breaks it as a broken worker would.
    light.start()
    pid = light.pid
    light._process.frame_limit = 300
    r = light.run("import time\nprint('small', flush=True)\ntime.sleep(0.3)\nprint('x' * 1000)")
    assert r.error.startswith("WorkerCrash: protocol error (frame of ") and r.timed_out is False
    assert r.error.splitlines()[0].endswith(" bytes exceeds the limit); worker killed while running the snippet")
    assert r.stdout == "small\n" and 0.3 <= r.seconds < 20
    assert wait_dead(pid) and light.run("print('fresh')").stdout == "fresh\n" and light.pid != pid


def test_worker_killed_between_runs_is_replaced(light):
    light.run("print(1)")
    pid = light.pid
    os.kill(pid, 9)
    assert wait_dead(pid)
    r = light.run("import os; print(os.getppid())")
    assert r.ok and int(r.stdout) != pid and light.pid != pid, r


def test_close_kills_process_and_allows_restart():
    w = Worker(PYTHON, preload=())
    pid = int(w.run("import os; print(os.getppid())").stdout)
    w.close()
    assert w.pid is None and wait_dead(pid)
    w.close()  # idempotent
    assert w.run("print(5)").stdout == "5\n"
    w.close()


def test_an_interrupt_right_after_the_worker_folder_is_made_leaves_no_folder(tmp_path, monkeypatch):
    """An interrupt can land after mkdir() made the folder and before its name is known
    (tempfile.mkdtemp() would lose it): the folder is still removed (issue 11)."""
    monkeypatch.setattr(runner.tempfile, "tempdir", str(tmp_path))
    made = []
    real_mkdir = os.mkdir

    def mkdir_then_interrupt(path, *args, **kwargs):
        real_mkdir(path, *args, **kwargs)
        made.append(path)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "mkdir", mkdir_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        Worker(PYTHON, preload=()).start()
    monkeypatch.undo()
    assert made and list(tmp_path.iterdir()) == []


PROBE_STARTUP = (
    "import os, sys\n"
    "print(sys.flags)\nprint(sys.warnoptions)\nprint(sys.breakpointhook is sys.__breakpointhook__)\n"
    "print(sorted((k, v) for k, v in os.environ.items() if k.startswith(('PYTHON', '__PYVENV'))))\n"
    "try:\n    assert False\nexcept AssertionError:\n    print('asserts on')\n"
)


def test_the_environment_cannot_change_how_the_worker_python_starts(tmp_path, monkeypatch):
    # Variables that point Python at another installation, run a file at start, or change
    # flags, warnings and asserts: each one set in the environment deckbuild (or Anki) runs
    # in, yet a snippet sees what it sees without them.
    with Worker(PYTHON, preload=()) as w:
        clean = w.run(PROBE_STARTUP)
    assert clean.ok and "asserts on" in clean.stdout
    startup = tmp_path / "startup.py"
    startup.write_text("print('STARTUP FILE RAN')\n")
    hostile = {
        "PYTHONHOME": str(tmp_path / "no-such-home"), "PYTHONEXECUTABLE": str(tmp_path / "python"),
        "__PYVENV_LAUNCHER__": str(tmp_path / "python"), "PYTHONSTARTUP": str(startup),
        "PYTHONINSPECT": "1", "PYTHONWARNINGS": "error", "PYTHONDEVMODE": "1",
        "PYTHONOPTIMIZE": "2", "PYTHONSAFEPATH": "1", "PYTHONBREAKPOINT": "os.abort",
    }
    for key, value in hostile.items():
        monkeypatch.setenv(key, value)
    with Worker(PYTHON, preload=()) as w:
        seen = w.run(PROBE_STARTUP)
    assert (seen.stdout, seen.stderr, seen.error) == (clean.stdout, clean.stderr, None)


def test_snippets_run_with_the_documented_fixed_environment_whatever_it_was(monkeypatch):
    # runner.py promises PYTHONHASHSEED=0 (str hashes, set order), UTF-8 mode, one BLAS and
    # OpenMP thread (float sums in a fixed order) and the Agg backend, overriding the caller's.
    for key, value in {"PYTHONHASHSEED": "random", "PYTHONUTF8": "0", "OMP_NUM_THREADS": "8", "MKL_NUM_THREADS": "8",
                       "OPENBLAS_NUM_THREADS": "8", "VECLIB_MAXIMUM_THREADS": "8", "NUMEXPR_NUM_THREADS": "8",
                       "MPLBACKEND": "TkAgg"}.items():
        monkeypatch.setenv(key, value)
    code = ("import os, sys\nprint(sys.flags.hash_randomization, sys.flags.utf8_mode, hash('deckbuild'))\n"
            "print([os.environ.get(k) for k in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS', "
            "'VECLIB_MAXIMUM_THREADS', 'NUMEXPR_NUM_THREADS', 'MPLBACKEND')])\n")
    with Worker(PYTHON, preload=()) as w:
        first = w.run(code).stdout.splitlines()
    with Worker(PYTHON, preload=()) as w:
        second = w.run(code).stdout.splitlines()
    assert first == second  # the same str hash in two workers: no hash randomisation
    assert first[0].split()[:2] == ["0", "1"]
    assert first[1] == "['1', '1', '1', '1', '1', 'agg']"


def test_worker_error_for_missing_interpreter(tmp_path, monkeypatch):
    missing = str(tmp_path / "no-such-python")
    with pytest.raises(WorkerError, match=f"^Python interpreter not found: {re.escape(repr(missing))}$"):
        Worker(missing).run("print(1)")
    with pytest.raises(WorkerError, match="^Python interpreter not found: 'no-such-python-xyz-123'$"):
        Worker("no-such-python-xyz-123").start()
    monkeypatch.setattr(runner, "WORKER_FILE", str(tmp_path / "_worker.py"))
    with pytest.raises(WorkerError, match=f"^worker script missing: {re.escape(str(tmp_path / '_worker.py'))}$"):
        Worker(PYTHON).start()


@pytest.mark.skipif(os.name != "posix", reason="shell-script interpreter")
def test_worker_error_for_interpreter_that_dies(tmp_path):
    # what it wrote to stderr, its last 2,000 characters, ends the message
    not_python = shell_script(tmp_path / "fake-python", "printf 'x%.0s' $(seq 2100) >&2\necho nope >&2\nexit 3")
    with pytest.raises(WorkerError) as raised:
        Worker(str(not_python)).run("print(1)")
    head, tail = str(raised.value).split("\n", 1)
    assert head == f"worker {str(not_python)!r} died at start (exit code 3):"
    assert tail == ("x" * 2100 + "nope")[-2000:]
    # a short message is kept whole, from its first character
    short = shell_script(tmp_path / "short-python", "echo 'No module named encodings' >&2\nexit 1")
    with pytest.raises(WorkerError) as raised:
        Worker(str(short)).start()
    assert str(raised.value) == f"worker {str(short)!r} died at start (exit code 1):\nNo module named encodings"


@pytest.mark.skipif(os.name != "posix", reason="shell-script interpreter")
def test_an_interpreter_that_never_says_it_is_ready_is_an_error_and_is_ended(tmp_path):
    pid_file = tmp_path / "pid"
    hangs = shell_script(tmp_path / "hangs", f"echo $$ > {pid_file}\nexec sleep 60")
    w = Worker(str(hangs), start_timeout=1.5)
    with pytest.raises(WorkerError, match=f"^worker {re.escape(repr(str(hangs)))} did not start within 1.5 s$"):
        w.start()
    assert wait_dead(int(pid_file.read_text())) and w.pid is None


@pytest.mark.skipif(os.name != "posix", reason="shell-script interpreter")
def test_an_interrupt_while_the_worker_starts_ends_it_and_leaves_no_folder(tmp_path, monkeypatch, ctrl_c):
    monkeypatch.setattr(runner.tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    pid_file = tmp_path / "pid"
    hangs = shell_script(tmp_path / "hangs", f"echo $$ > {pid_file}\nexec sleep 60")
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        Worker(str(hangs), start_timeout=30).start()
    timer.join()
    assert wait_dead(int(pid_file.read_text()))
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_worker_dropped_without_close_is_ended():
    w = Worker(PYTHON, preload=())
    w.start()
    pid = w.pid
    del w
    gc.collect()
    assert wait_dead(pid)


def test_bad_arguments(light):
    with pytest.raises(TypeError, match="^code must be str, not bytes$"):
        light.run(b"print(1)")
    for timeout in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="^timeout must be positive$"):
            light.run("print(1)", timeout=timeout)
    assert light.run("print(1)", timeout=0.75).stdout == "1\n"  # under a second is a timeout too


def _dies_on_request(monkeypatch, times: int) -> list:
    """Make the next ``times`` run requests reach a worker that dies before it reads them:
    the real worker is stopped, sent the request (the pipe takes it) and killed. Returns the
    ids of every request sent, in order."""
    sent = []
    send = runner._Process.send

    def stop_send_kill(process, obj):
        if obj["op"] != "run":
            return send(process, obj)
        sent.append(obj["id"])
        if len(sent) > times:
            return send(process, obj)
        os.kill(process.pid, signal.SIGSTOP)
        send(process, obj)
        os.kill(process.pid, signal.SIGKILL)
        assert wait_dead(process.pid)

    monkeypatch.setattr(runner._Process, "send", stop_send_kill)
    return sent


def test_a_worker_that_dies_before_it_starts_the_snippet_is_replaced_and_the_snippet_runs_once(light, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    sent = _dies_on_request(monkeypatch, times=1)
    r = light.run(f"open({str(runs)!r}, 'a').write('ran\\n'); print('once')")
    assert (r.stdout, r.error, r.timed_out) == ("once\n", None, False)
    assert runs.read_text() == "ran\n" and len(sent) == 2 and sent[0] != sent[1]


def test_a_worker_that_dies_twice_before_it_starts_the_snippet_is_an_error(light, monkeypatch):
    sent = _dies_on_request(monkeypatch, times=2)
    with pytest.raises(WorkerError, match="^the worker died twice before it could start the snippet$"):
        light.run("print('never')")
    assert len(sent) == 2
    assert light.run("print('later')").stdout == "later\n"  # and the next run starts afresh


def test_a_worker_that_cannot_take_the_request_is_replaced_once_then_an_error(light, monkeypatch):
    started = []
    init = runner._Process.__init__
    monkeypatch.setattr(runner._Process, "__init__", lambda self, *a: (started.append(1), init(self, *a))[1])
    send = runner._Process.send
    monkeypatch.setattr(runner._Process, "send", lambda self, obj: send(self, obj) if obj["op"] != "run" else (_ for _ in ()).throw(BrokenPipeError()))
    with pytest.raises(WorkerError, match="^worker died before it could run the snippet$"):
        light.run("print('never')")
    assert len(started) == 2 and light.pid is None


# ---------------------------------------------------------------- find_python

def test_find_python_finds_venv():
    found = find_python([PYTHON])
    assert found is not None
    assert os.path.samefile(found, PYTHON)
    assert os.path.isabs(found)


def test_find_python_skips_bogus(tmp_path):
    assert find_python(["/definitely/not/python", str(tmp_path / "nope"),
                        "no-such-python-xyz-123"]) is None
    # first working candidate wins, bogus ones before it are skipped
    assert find_python(["/definitely/not/python", PYTHON]) is not None

# The default candidates, and an interpreter without torch: tests/test_regressions.py.


def _wrapper(path: Path) -> Path:
    """A shell script at ``path`` that runs the suite's interpreter."""
    return shell_script(path, f'exec {PYTHON} "$@"')


@pytest.mark.skipif(os.name == "nt", reason="shell-script wrappers")
def test_find_python_gives_an_absolute_path_for_a_relative_candidate(tmp_path, monkeypatch):
    wrapper = _wrapper(tmp_path / "bin" / "py")
    monkeypatch.chdir(tmp_path)
    assert find_python([os.path.join("bin", "py")]) == str(wrapper)


@pytest.mark.skipif(os.name == "nt", reason="shell-script wrappers")
def test_find_python_tries_python3_before_python(tmp_path, monkeypatch):
    for name in ("python3", "python"):
        _wrapper(tmp_path / "bin" / name)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert find_python() == str(tmp_path / "bin" / "python3")


@pytest.mark.skipif(os.name == "nt", reason="shell-script wrappers")
def test_find_python_skips_a_candidate_that_cannot_start_or_hangs_and_prints_nothing(tmp_path, capfd):
    not_executable = tmp_path / "plain-file"
    not_executable.write_text("not a program\n")
    hangs = shell_script(tmp_path / "hangs", "exec sleep 60")
    noisy = shell_script(tmp_path / "noisy", f'echo probe-out; echo probe-err >&2; exec {PYTHON} "$@"')
    found: list = []
    probe = threading.Thread(target=lambda: found.append(find_python([str(hangs)], timeout=1)), daemon=True)
    probe.start()
    probe.join(30)  # a probe without its timeout would wait out the whole sleep
    assert not probe.is_alive() and found == [None]
    assert find_python([str(not_executable), str(noisy)]) == str(noisy)
    out, err = capfd.readouterr()
    assert "probe-" not in out + err  # a probe's output never reaches the terminal or Anki's log


def test_find_python_probes_in_the_workers_environment(tmp_path, monkeypatch):
    # A PYTHONHOME that breaks every interpreter started with it: the worker never sees it
    # (runner._worker_env), so the probe must not either.
    monkeypatch.setenv("PYTHONHOME", str(tmp_path / "nowhere"))
    assert find_python([PYTHON]) is not None


# ---------------------------------------------------------------- isolation (issue 11)

LEAKS = [
    # (what one card leaves behind, what the next card prints if it leaked)
    ("import builtins\nbuiltins.leaked = 42", "print(hasattr(__builtins__, 'leaked') or 'leaked' in dir(__import__('builtins')))"),
    ("import signal, time\nsignal.signal(signal.SIGALRM, lambda *a: print('LEAKED HANDLER'))\nsignal.setitimer(signal.ITIMER_REAL, 0.3)",
     "import time\ntime.sleep(0.6)\nprint(False)"),
    ("import builtins\n_p = builtins.print\nbuiltins.print = lambda *a, **k: _p('PATCHED', *a, **k)", "print(False)"),
    ("import sys, types\nsys.modules['leaky_module'] = types.ModuleType('leaky_module')", "import sys\nprint('leaky_module' in sys.modules)"),
    ("import json\njson.dumps = lambda *a, **k: 'PATCHED'", "import json\nprint(json.dumps(1) == 'PATCHED')"),
    ("import threading, time\ndef chatter():\n    while True:\n        print('LEAKED THREAD')\n        time.sleep(0.05)\nthreading.Thread(target=chatter, daemon=True).start()",
     "import threading, time\ntime.sleep(0.3)\nprint(threading.active_count() > 2)"),
    ("import torch\ntorch.Tensor.sum = lambda self, *a, **k: 'PATCHED'", "import torch\nprint(torch.ones(2).sum() == 'PATCHED')"),
]


@pytest.mark.parametrize("leak, probe", LEAKS, ids=["builtins", "signal-handler", "patched-print", "sys-modules", "patched-function", "thread", "patched-torch"])
def test_nothing_one_snippet_changes_reaches_the_next(worker, leak, probe):
    assert worker.run(leak).error is None
    r = worker.run(probe)
    assert (r.stdout, r.stderr, r.error) == ("False\n", "", None)


def test_each_snippet_runs_in_its_own_empty_folder_removed_after_it(worker):
    first = worker.run("import os\nopen('left.txt', 'w').write('x')\nos.mkdir('sub')\nprint(os.getcwd())")
    second = worker.run("import os\nprint(os.getcwd())\nprint(sorted(os.listdir('.')), os.path.exists('../left.txt'))")
    assert first.ok and second.ok
    folder = first.stdout.strip()
    assert second.stdout.splitlines()[1:] == ["[] False"]
    assert second.stdout.splitlines()[0] != folder
    assert not os.path.exists(folder)  # removed before the next snippet started
    deadline = time.monotonic() + 5  # the second's goes right after its run (which reports first)
    while os.listdir(os.path.dirname(folder)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert os.listdir(os.path.dirname(folder)) == []


def test_a_child_process_a_snippet_leaves_running_is_ended(light):
    r = light.run("import subprocess, sys\nchild = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\nprint(child.pid)")
    assert r.ok
    assert wait_dead(int(r.stdout)), "the snippet's child process outlived its card"


OPEN_FDS = "import os\nfor fd in sorted(map(int, os.listdir('/proc/self/fd'))):\n    try:\n        print(fd, os.readlink(f'/proc/self/fd/{fd}'))\n    except OSError:\n        pass\n"


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_the_snippet_cannot_write_into_the_protocol(light):
    # The worker's protocol pipes (the other ends of the runner's pipes to its stdin and
    # stdout) are closed in the snippet's process: no fd of it is either pipe.
    light.start()
    proc = light._process.proc
    protocol = {os.readlink(f"/proc/self/fd/{f.fileno()}") for f in (proc.stdin, proc.stdout)}
    assert all(p.startswith("pipe:") for p in protocol)
    r = light.run(OPEN_FDS)
    assert r.ok and r.stdout
    held = {line.split(" ", 1)[1] for line in r.stdout.splitlines()}
    assert not held & protocol, r.stdout
    # Writing to fds 3 and 4, where the protocol pipes sat in the worker, does nothing either.
    r = light.run("import os\nfor fd in (3, 4):\n    try:\n        os.write(fd, b'\\x00\\x00\\x00\\x02{}')\n    except OSError as e:\n        print(fd, e.errno)\n")
    assert r.ok
    assert light.run("print('fine')").stdout == "fine\n"


FORGE = """import json, os, stat
def frame(obj):
    body = json.dumps(obj).encode()
    return len(body).to_bytes(4, "big") + body
pipes = [fd for fd in sorted(map(int, os.listdir('/proc/self/fd')))
         if fd > 2 and os.path.exists(f'/proc/self/fd/{fd}') and stat.S_ISFIFO(os.fstat(fd).st_mode)]
for fd in pipes:
    for run_id in range(1, 100):  # the run's id is not told to the snippet: every likely one
        for forged in FORGED(run_id):
            try:
                os.write(fd, frame(forged))
            except OSError:
                pass
print("sent")
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_frames_a_snippet_forges_on_its_own_pipe_are_dropped(light):
    # The snippet's process reports through a private pipe that it can find and write to;
    # the worker passes on only "out" and "done" frames, never a protocol error or a hello.
    forged = 'def FORGED(i):\n    return [{"op": "protocol-error", "id": i, "message": "forged"}, {"op": "hello", "id": i}, {"op": "started", "id": i}]\n'
    r = light.run(forged + FORGE)
    assert (r.stdout, r.error, r.timed_out) == ("sent\n", None, False)
    assert light.run("print('fine')").stdout == "fine\n"


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_snippet_cannot_put_output_into_the_next_cards_run(light):
    # A forged "done" for its own run (which ends its own run: its own business), then output
    # for the run after it: the worker passes on only frames of the run in progress.
    forged = 'def FORGED(i):\n    return [{"op": "done", "id": i, "error": None, "seconds": 0.0, "truncated": {}}, {"op": "out", "id": i + 1, "stream": "stdout", "data": "FORGED "}]\n'
    light.run(forged + FORGE)
    assert light.run("print('fine')").stdout == "fine\n"
    assert light.run("print('fine')").stdout == "fine\n"


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_output_a_snippet_forges_for_its_own_run_is_capped_and_kept_valid_text(light):
    # Frames for its own run pass the worker (they are its own output), but skip the worker's
    # cap: the runner caps them again, and text the worker would never send (a lone surrogate
    # from a JSON escape) is kept as an escape rather than crashing the run.
    forged = 'def FORGED(i):\n    return [{"op": "out", "id": i, "stream": "stdout", "data": "\\ud800" + "x" * 5000}]\n'
    r = light.run(forged + FORGE)
    assert r.truncated and r.error is None
    assert len(r.stdout.encode("utf-8")) <= 1000 + len(runner._truncation_note(1000).encode("utf-8")) + 1
    assert light.run("print('fine')").stdout == "fine\n"


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
@pytest.mark.parametrize("forged", [
    '{"op": "done", "id": i, "error": None, "seconds": "soon", "truncated": {}}',
    '{"op": "done", "id": i, "error": None, "seconds": float("nan"), "truncated": {}}',
    '{"op": "done", "id": i, "error": None, "seconds": -3, "truncated": {}}',
    '{"op": "done", "id": i, "error": None, "seconds": 0.5, "truncated": [1]}',
    '{"op": "done", "id": i, "timed_out": True, "seconds": [1]}',
    '{"op": "done", "id": i, "crash": "boom", "seconds": {}}',
    '{"op": "done", "id": i, "error": "E", "error_line": "7", "seconds": 0.5}',
    '{"op": "out", "id": i, "stream": ["stdout"], "data": "x"}',
    '{"op": "out", "id": i, "stream": {}, "data": "x"}',
    '{"op": "out", "id": i, "stream": "stdout"}',
    '{"op": "done", "id": i, "error": "E", "error_line": 0, "seconds": 0.5}',
], ids=["seconds-text", "seconds-nan", "seconds-negative", "truncated-list", "timed-out-seconds-list",
        "crash-seconds-dict", "error-line-text", "stream-list", "stream-dict", "out-without-data", "error-line-zero"])
def test_a_done_or_out_frame_a_snippet_forges_with_bad_fields_never_makes_the_run_raise(light, forged):
    # The snippet's process sends its own run's frames, so their fields can be any JSON: a bad
    # one is read as absent (no time, no line, no flags, no such stream), never a crash of the build.
    r = light.run(f"def FORGED(i):\n    return [{forged}]\n" + FORGE)
    assert r.seconds >= 0 and r.seconds == r.seconds and r.error_line is None and not r.truncated
    if '"op": "done"' in forged and '"seconds": 0.5' not in forged:
        assert r.seconds == 0.0  # a bad time reads as none
    assert r.ok or r.timed_out or r.error in ("E\n", "E") or r.error.startswith("WorkerCrash: boom")
    assert r.stdout in ("", "sent\n")  # an out frame without data adds nothing
    assert light.run("print('fine')").stdout == "fine\n"


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_an_error_a_snippet_forges_past_the_cap_is_cut_and_marked_truncated(light):
    # No "truncated" flags in the forged frame: the runner's own cap is the one that cuts.
    forged = 'def FORGED(i):\n    return [{"op": "done", "id": i, "error": "E" * 5000, "seconds": 0.1}]\n'
    r = light.run(forged + FORGE)
    assert r.truncated and r.error.startswith("E" * 1000 + "\n") and r.error.endswith(runner._truncation_note(1000))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_figures_a_snippet_forges_are_decoded_and_a_malformed_one_is_dropped_alone(light):
    good = '{"format": "svg", "day": "PHN2Zy8+", "night": "PHN2Zy8+", "alt": "Figure 1", "width": 10, "height": 20}'
    bad = ['{"format": "gif", "day": "", "night": "", "alt": "", "width": 1, "height": 1}', "7",
           '{"format": "png", "day": "not base64!", "night": "", "alt": "", "width": 1, "height": 1}',
           '{"format": "svg", "day": "", "night": "", "alt": "", "width": "wide", "height": 1}']
    forged = f'def FORGED(i):\n    return [{{"op": "done", "id": i, "error": None, "seconds": 0.1, "figures": [{", ".join(bad)}, {good}]}}]\n'
    r = light.run(forged + FORGE)
    assert r.figures == (runner.Figure("svg", b"<svg/>", b"<svg/>", "Figure 1", 10, 20),)


def test_output_of_exactly_the_cap_is_not_truncated(light):
    r = light.run("import sys\nsys.stdout.write('x' * 1000)")
    assert (r.stdout, r.truncated) == ("x" * 1000, False)
    r = light.run("import sys\nsys.stdout.write('x' * 1001)")
    assert r.truncated and r.stdout.startswith("x" * 1000 + "\n")


def _snippet_pid(path: Path, seconds: float = 30.0) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return int(path.read_text())
        time.sleep(0.02)
    raise AssertionError("the snippet never started")


def _spin(path: Path) -> str:
    """A snippet that records its pid and then runs forever without printing."""
    return f"import os\nopen({str(path)!r}, 'w').write(str(os.getpid()))\nwhile True:\n    pass\n"


def test_a_snippet_ends_when_its_worker_is_killed_mid_run(tmp_path):
    # What the add-on does when Anki's profile closes during a run: kill the worker's process
    # group. The snippet runs in a group of its own, and neither it nor a process it started
    # may go on running without the worker.
    pid_file, child_file = tmp_path / "pid", tmp_path / "child"
    leave_a_child = f"import subprocess, sys\nopen({str(child_file)!r}, 'w').write(str(subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']).pid))\n"
    with Worker(PYTHON, preload=()) as w:
        w.start()
        results = []
        thread = threading.Thread(target=lambda: results.append(w.run(leave_a_child + _spin(pid_file), timeout=60)))
        thread.start()
        snippet = _snippet_pid(pid_file)
        child = _snippet_pid(child_file)
        os.killpg(w.pid, signal.SIGKILL)
        thread.join(20)
        assert results and results[0].error.splitlines()[0] == "WorkerCrash: the worker process was killed by signal 9 (SIGKILL) while running the snippet"
        assert results[0].timed_out is False and results[0].python == w.python_version
        assert 0 < results[0].seconds < 20  # the run's own time, killed or not
        assert wait_dead(snippet), "the snippet outlived its worker"
        assert wait_dead(child), "a process the snippet started outlived its worker"


def _end_mid_run(tmp_path, end, snippet_head: str = "") -> RunResult:
    """Run a snippet that spins forever and call ``end(worker)`` once it runs; the result."""
    pid_file = tmp_path / "pid"
    with Worker(PYTHON, preload=()) as w:
        results = []
        thread = threading.Thread(target=lambda: results.append(w.run(snippet_head + _spin(pid_file), timeout=60)))
        thread.start()
        snippet = _snippet_pid(pid_file)
        end(w)
        thread.join(30)
        assert results and wait_dead(snippet)
        return results[0]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_worker_that_exits_mid_run_is_a_crash_with_its_code_and_its_stderr(tmp_path):
    # the end of its input makes the worker end the snippet and exit with code 0; what it
    # wrote to its stderr during the run, its last 2,000 characters, ends the report
    stray = "y" * 2500 + "END"
    head = f"import os, time\nwith open(f'/proc/{{os.getppid()}}/fd/2', 'w') as f:\n    f.write({stray!r})\ntime.sleep(0.3)\n"
    r = _end_mid_run(tmp_path, lambda w: w._process.proc.stdin.close(), head)
    assert r.error == "WorkerCrash: the worker process exited with code 0 while running the snippet\n" + stray[-2000:] + "\n"
    assert r.timed_out is False and 0.3 <= r.seconds < 30


def test_a_worker_whose_protocol_ends_while_it_lives_is_a_crash_and_is_killed(tmp_path):
    # as if the worker closed its end of the protocol: the runner's reader reports the end
    pids = []
    r = _end_mid_run(tmp_path, lambda w: (pids.append(w.pid), w._process.frames.put(None)))
    assert r.error == "WorkerCrash: the worker closed its protocol channel; worker killed while running the snippet\n"
    assert wait_dead(pids[0])


@pytest.mark.skipif(not hasattr(signal, "SIGRTMIN"), reason="real-time signals")
def test_a_worker_killed_by_a_signal_without_a_name_is_reported_by_its_number(tmp_path):
    number = signal.SIGRTMIN + 1  # Python names SIGRTMIN and SIGRTMAX only
    r = _end_mid_run(tmp_path, lambda w: os.kill(w.pid, number))
    assert r.error == f"WorkerCrash: the worker process was killed by signal {number} while running the snippet\n"


@pytest.fixture
def ctrl_c():
    """Python's own Ctrl-C handler, even where the suite started with SIGINT ignored (as a
    shell's background job does)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_worker_that_stops_answering_is_a_timeout_and_is_replaced(light, tmp_path):
    # The worker itself ends a snippet at its timeout; if the worker hangs (here: stopped), the
    # runner's own guard, 5 s later, reports the run as timed out, kills the worker and its
    # snippet, and the next run starts a fresh worker.
    pid_file = tmp_path / "pid"
    light.start()
    hung = light.pid
    stopper = threading.Thread(target=lambda: (_snippet_pid(pid_file), os.kill(hung, signal.SIGSTOP)))
    stopper.start()
    r = light.run(_spin(pid_file), timeout=2)
    stopper.join()
    assert (r.timed_out, r.error) == (True, None)
    assert 2 + 5 <= r.seconds < 60  # the snippet's timeout and the guard's grace, in seconds
    assert wait_dead(hung) and wait_dead(int(pid_file.read_text()))
    assert light.run("print('fresh')").stdout == "fresh\n" and light.pid != hung


def test_an_error_inside_the_block_of_a_worker_never_started_is_the_error_raised():
    with pytest.raises(ValueError, match="the caller's own"):
        with Worker(PYTHON, preload=()):
            raise ValueError("the caller's own")


def test_an_interrupt_during_a_run_ends_the_snippet(tmp_path, ctrl_c):
    pid_file = tmp_path / "pid"
    found = []

    def interrupt() -> None:
        found.append(_snippet_pid(pid_file))
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C

    with pytest.raises(KeyboardInterrupt):
        with Worker(PYTHON, preload=()) as w:
            threading.Thread(target=interrupt, daemon=True).start()
            w.run(_spin(pid_file), timeout=60)
    assert found and wait_dead(found[0], 2.0), "the snippet outlived an interrupted run"


def test_an_exception_comes_with_its_class_and_bases_as_the_traceback_names_them(worker):
    r = worker.run("d = {}\nd['k']\n")
    assert r.error_types == ("KeyError", "LookupError", "Exception", "BaseException")
    assert r.error.rstrip().endswith("KeyError: 'k'")
    r = worker.run("class Mine(ValueError):\n    pass\nraise Mine('x')\n")
    assert r.error_types == ("Mine", "ValueError", "Exception", "BaseException")
    r = worker.run("import torch\nraise torch.OutOfMemoryError('big')\n")
    assert r.error_types[0] == "torch.OutOfMemoryError" and r.error.rstrip().endswith("torch.OutOfMemoryError: big")
    assert worker.run("print(1)").error_types == ()
    assert worker.run("raise SystemExit(0)").error_types == ()
