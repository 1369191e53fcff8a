"""Run Python snippets in one warm, persistent worker process.

Used by the compiler at build time (to bake each code card's output into its
note) and vendored verbatim into the Anki add-on, so this module is standard
library only, imports nothing from deckbuild, and runs on Python 3.9+. The
worker side lives in the sibling file ``_worker.py`` (also vendored); it runs
under the interpreter given to :class:`Worker`, which needs torch and numpy
but nothing else.

Typical use::

    with Worker(find_python() or sys.executable) as worker:
        result = worker.run("import torch; print(torch.ones(2))", timeout=5)
        print(result.stdout, result.ok)

What a run guarantees
---------------------
* **Isolation.** The worker imports its ``preload`` modules once and then runs
  no snippet itself: it forks a fresh child process for each (POSIX), so
  whatever one snippet changes (builtins, ``sys.modules``, patched functions,
  signal handlers and alarms, threads, module state of libraries) dies with
  its process and never reaches the next; the child leads its own process
  group, which is killed when it ends, so child processes it left behind go
  too (unless they started a session of their own). If the worker dies while a
  snippet runs (killed with its own group, which the snippet's is not part of),
  the snippet's group ends itself within 0.1 s. Every snippet also runs
  as a fresh ``__main__`` module, in a new empty working folder of its own
  (inside the worker's temporary folder), removed when the run ends, so a
  file one snippet writes is never seen by the next. (On Windows, without
  fork, snippets share the worker process and only ``__main__``, working
  folder, ``sys.path``, ``sys.argv``, ``os.environ``, recursion limit,
  warning filters and root logging handlers are reset.)
* **Determinism.** Before each snippet: ``random.seed(0)``,
  ``numpy.random.seed(0)``, ``torch.manual_seed(0)``,
  ``torch.set_default_dtype(torch.float32)``, ``torch.set_num_threads(1)``,
  grad mode on, and these print options:

  - torch: ``precision=4, threshold=1000, edgeitems=3, linewidth=80,
    sci_mode=None`` (torch's own defaults);
  - numpy: ``precision=4, threshold=1000, edgeitems=3, linewidth=75,
    suppress=False, floatmode="maxprec", sign="-", legacy=False`` (numpy's
    defaults except precision 4 instead of 8), and ``numpy.seterr`` defaults.

  The worker also runs with ``PYTHONHASHSEED=0`` (stable ``set``/``dict`` of
  str ordering) and ``OMP/MKL/OPENBLAS_NUM_THREADS=1``. Warnings are printed
  as ``<snippet>:LINE: Category: message`` (library paths shortened to the
  part after ``site-packages/``) so the text does not depend on the machine.
* **Capture.** ``sys.stdout`` and ``sys.stderr`` are captured separately and
  the exception separately; each is capped at ``max_output_bytes`` (UTF-8)
  and a capped stream ends with ``"… [output truncated at N bytes]"``. Output
  written directly to file descriptors 1/2 (C extensions, child processes)
  is not captured.
* **Errors.** ``RunResult.error`` is the traceback with only the snippet's own
  frames (``File "<snippet>", line 3, in <module>``) and ``error_line`` the
  1-based snippet line of the innermost such frame. ``SystemExit`` with code
  0/None counts as success.
* **Timeouts and crashes.** The worker kills a snippet's process group when
  it exceeds its timeout and stays warm; the run returns ``timed_out=True``
  (``error`` None) with the output streamed so far. A snippet whose process
  dies (``os._exit``, segfault) yields ``error="WorkerCrash: ..."``. The
  worker runs in its own session (POSIX) or process group (Windows); if the
  worker itself stops answering (or, on Windows, at the timeout) the whole
  group is killed and the next run starts a fresh worker.
* **Figures.** A snippet draws with matplotlib's pyplot on the Agg backend
  (``MPLBACKEND=agg``; a snippet that mentions ``matplotlib`` gets matplotlib's
  defaults plus a fixed style before it runs). Every figure it leaves open is
  returned in ``RunResult.figures``, in creation order, as data (no file is
  written), then closed: SVG (``svg.hashsalt`` fixed, no date, text as paths, so
  the same snippet and versions give the same bytes), or PNG at 2x device pixels
  when the SVG would exceed 400 kB. Each comes in a day variant and a night
  variant (transparent background; dark foreground, or light foreground with
  white turned into the night background). Limits: at most ``max_figures``
  figures (opening one more raises ``FigureError`` in the snippet), at most
  ``max_figure_side`` px a side (figsize x dpi), and ``max_figure_bytes`` for
  all files of a run together; beyond them ``error`` is a ``FigureError``.
"""

from __future__ import annotations

import json
import math
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Iterable, Optional, Tuple

__all__ = ["RUNNER_VERSION", "Figure", "RunResult", "Worker", "WorkerError", "find_python"]

#: Bump whenever the text a given snippet produces may change (seeding, print
#: options, traceback or truncation format...). Part of the compiler's cache key.
RUNNER_VERSION = "3"  # 2: every snippet in its own forked process; 3: figures

WORKER_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_worker.py")

# Executes _worker.py from its path without putting its directory on sys.path.
_BOOTSTRAP = (
    "import sys;p=sys.argv.pop(1);"
    "exec(compile(open(p,encoding='utf-8').read(),p,'exec'))"
)

_POSIX = os.name == "posix"
_CREATE_NO_WINDOW = 0x08000000
_CREATE_NEW_PROCESS_GROUP = 0x00000200
_STDERR_KEEP = 65536  # bytes of worker stderr kept for crash diagnostics
_TIMEOUT_GRACE = 5.0  # seconds past a snippet's timeout before the worker itself counts as hung


def _truncation_note(limit: int) -> str:
    return f"\u2026 [output truncated at {limit} bytes]\n"


@dataclass(frozen=True)
class Figure:
    """One figure a snippet drew (see "Figures" above).

    Attributes:
        format: ``"svg"`` or ``"png"`` (the file type of ``day`` and ``night``).
        day: The file for a light background (dark foreground, transparent).
        night: The file for a dark background (light foreground, transparent).
        alt: Text alternative: ``"Figure N"`` plus the figure's titles.
        width: Display width in CSS px (96 per inch of the saved figure).
        height: Display height in CSS px.
    """

    format: str
    day: bytes
    night: bytes
    alt: str
    width: int
    height: int


@dataclass(frozen=True)
class RunResult:
    """Outcome of one :meth:`Worker.run`.

    Attributes:
        stdout: Text the snippet wrote to ``sys.stdout`` (capped, see ``truncated``).
        stderr: Text written to ``sys.stderr``, including printed warnings.
        error: The uncaught exception formatted as a traceback whose frames refer
            to the snippet's lines (``File "<snippet>", line 3``), or
            ``"WorkerCrash: ..."`` if the worker process died; None on success
            and on timeout.
        error_line: 1-based snippet line where the exception was raised (for a
            ``SyntaxError``: the offending line), or None.
        timed_out: True if the snippet was killed for exceeding its timeout.
        truncated: True if stdout, stderr or error hit ``max_output_bytes``.
        seconds: Wall time of the snippet itself, in seconds (compile + exec;
            worker start-up excluded; for a timeout, time until the kill).
        python: Python version of the worker, e.g. ``"3.11.7"``.
        torch: ``torch.__version__`` in the worker, or None if torch is absent
            (or was not among the worker's ``preload`` modules).
        figures: The figures the snippet left open, in creation order.
        error_types: Names of the exception's class and its bases, most derived first,
            as the traceback prints them (``("KeyError", "LookupError", "Exception",
            "BaseException")``, ``"torch.OutOfMemoryError"``); empty on success, timeout,
            a worker crash, or from a worker that does not send them.
    """

    stdout: str
    stderr: str
    error: Optional[str]
    error_line: Optional[int]
    timed_out: bool
    truncated: bool
    seconds: float
    python: str
    torch: Optional[str]
    figures: Tuple[Figure, ...] = ()
    error_types: Tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True if the snippet neither raised nor timed out."""
        return self.error is None and not self.timed_out


def _figures(items: object) -> Tuple[Figure, ...]:
    """Decode the ``figures`` of a done frame; malformed entries are dropped."""
    import base64
    import binascii
    out = []
    for item in items if isinstance(items, list) else ():
        try:
            if item["format"] not in ("svg", "png"):
                continue
            out.append(Figure(item["format"], base64.b64decode(item["day"], validate=True),
                              base64.b64decode(item["night"], validate=True), str(item["alt"]),
                              int(item["width"]), int(item["height"])))
        except (KeyError, TypeError, ValueError, binascii.Error):
            continue
    return tuple(out)


def _seconds(value: object) -> float:
    """Decode the ``seconds`` of a done frame: a finite number >= 0, anything else 0.0.

    The snippet's process sends its own done frame, so a snippet can forge it (any JSON
    value); nothing in it may make :meth:`Worker.run` raise.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return 0.0
    return float(value)


def _line(value: object) -> Optional[int]:
    """Decode the ``error_line`` of a done frame: a 1-based line number, anything else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _take_output(msg: dict, out: dict) -> None:
    """Add an "out" frame's ``data`` to the ``_Output`` of its ``stream`` ("stdout" or
    "stderr", the keys of ``out``); a frame naming no such stream is dropped (a snippet can
    forge frames for its own run, see :func:`_seconds`)."""
    stream = msg.get("stream")
    if isinstance(stream, str) and stream in out:
        out[stream].add(str(msg.get("data", "")), bool(msg.get("truncated")))


def _names(items: object) -> Tuple[str, ...]:
    """Decode the ``error_types`` of a done frame (a list of strings; anything else: none)."""
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        return ()
    return tuple(items)


class WorkerError(Exception):
    """The worker interpreter cannot be started, or died before it was ready."""


def _worker_env() -> dict:
    """Environment for worker and probe processes (fixed, machine-neutral)."""
    env = dict(os.environ)
    # Variables that would point another interpreter at the wrong installation,
    # or change what a snippet prints.
    for key in ("PYTHONHOME", "PYTHONEXECUTABLE", "__PYVENV_LAUNCHER__", "PYTHONSTARTUP",
                "PYTHONINSPECT", "PYTHONWARNINGS", "PYTHONDEVMODE", "PYTHONOPTIMIZE",
                "PYTHONSAFEPATH", "PYTHONBREAKPOINT"):
        env.pop(key, None)
    env.update({
        "PYTHONHASHSEED": "0",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONUTF8": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "VECLIB_MAXIMUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1",
        "MPLBACKEND": "agg",  # no display, whatever the snippet imports
    })
    return env


def _popen_flags() -> dict:
    if _POSIX:
        return {"start_new_session": True}
    return {"creationflags": _CREATE_NEW_PROCESS_GROUP | _CREATE_NO_WINDOW}


def _resolve(python: str) -> Optional[str]:
    """Absolute path for a path-like ``python``; PATH lookup for a bare name."""
    if os.sep in python or (os.altsep and os.altsep in python):
        # Not resolving symlinks: a venv's python must stay the venv's.
        return os.path.abspath(python) if os.path.exists(python) else None
    return shutil.which(python)


def find_python(candidates: Iterable[str] | None = None, *, timeout: float = 30.0) -> str | None:
    """Return the first interpreter among ``candidates`` that can ``import torch``.

    Args:
        candidates: Executable paths or names looked up on PATH. Default:
            ``("python3", "python")``.
        timeout: Seconds allowed for each ``python -c "import torch"`` probe
            (a cold torch import can take several seconds).

    Returns:
        The absolute path of the first working interpreter (symlinks kept),
        or None if none qualifies. Never raises for bad candidates.
    """
    if candidates is None:
        candidates = ("python3", "python")
    env = _worker_env()
    flags = {} if _POSIX else {"creationflags": _CREATE_NO_WINDOW}
    for candidate in candidates:
        path = _resolve(str(candidate))
        if path is None:
            continue
        try:
            probe = subprocess.run(
                [path, "-c", "import torch"], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=env, timeout=timeout, **flags)
        except (OSError, subprocess.SubprocessError, ValueError):
            continue
        if probe.returncode == 0:
            return path
    return None


class _Output:
    """Parent-side accumulation of one stream, capped defensively."""

    def __init__(self, limit: int):
        self.limit = limit
        self.parts: list[str] = []
        self.used = 0
        self.truncated = False

    def add(self, text: str, truncated: bool = False) -> None:
        if truncated:
            self.truncated = True
        room = self.limit - self.used
        data = text[: max(room, 0)].encode("utf-8", "backslashreplace")
        if len(text) > room or len(data) > room:
            self.truncated = True
            data = data[: max(room, 0)]
        self.parts.append(data.decode("utf-8", "ignore"))
        self.used += len(data)

    def text(self, truncated: bool = False) -> str:
        out = "".join(self.parts)
        if truncated or self.truncated:
            if out and not out.endswith("\n"):
                out += "\n"
            out += _truncation_note(self.limit)
        return out


class _Process:
    """One running worker process with its reader threads."""

    def __init__(self, python: str, preload: tuple, frame_limit: int):
        self.frame_limit = frame_limit
        # The folder's name is known before it exists, so an interrupt at any point after
        # the mkdir (even inside it) finds it in the handlers below; mkdtemp() could be
        # interrupted after its mkdir and before it returns the name.
        self.tmpdir = os.path.join(tempfile.gettempdir(), "deckbuild-worker-" + os.urandom(8).hex())
        args = [python, "-c", _BOOTSTRAP, WORKER_FILE, json.dumps({"preload": list(preload)})]
        try:
            os.mkdir(self.tmpdir, 0o700)
            self.proc = subprocess.Popen(
                args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd=self.tmpdir, env=_worker_env(), bufsize=0, **_popen_flags())
        except FileExistsError as exc:  # not this process's folder: never removed
            raise WorkerError(f"cannot create the worker's folder: {exc}") from exc
        except (OSError, ValueError) as exc:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            raise WorkerError(f"cannot start Python interpreter {python!r}: {exc}") from exc
        except BaseException:  # interrupted: no folder left behind
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            raise
        self.pid = self.proc.pid
        self.frames: queue.Queue = queue.Queue()
        self.stderr_buf = bytearray()
        self.stderr_total = 0  # bytes ever received, for slicing per run
        self.stderr_lock = threading.Lock()
        self.dead = False
        self.reader = self.drainer = None
        try:
            self.reader = threading.Thread(target=self._read_frames, daemon=True,
                                           name=f"deckbuild-worker-{self.pid}-frames")
            self.drainer = threading.Thread(target=self._drain_stderr, daemon=True,
                                            name=f"deckbuild-worker-{self.pid}-stderr")
            self.reader.start()
            self.drainer.start()
        except BaseException:  # interrupted: no process or folder left behind
            self.kill()
            raise

    # -- threads
    def _read_exact(self, n: int) -> Optional[bytes]:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.proc.stdout.read(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def _read_frames(self) -> None:
        try:
            while True:
                head = self._read_exact(4)
                if head is None:
                    break
                size = int.from_bytes(head, "big")
                if size > self.frame_limit:
                    self.frames.put({"op": "protocol-error",
                                     "message": f"frame of {size} bytes exceeds the limit"})
                    break
                body = self._read_exact(size)
                if body is None:
                    break
                try:
                    self.frames.put(json.loads(body.decode("ascii")))
                except ValueError as exc:
                    self.frames.put({"op": "protocol-error", "message": f"bad frame: {exc}"})
                    break
        except (OSError, ValueError):
            pass
        self.frames.put(None)  # end of stream

    def _drain_stderr(self) -> None:
        try:
            while True:
                chunk = self.proc.stderr.read(4096)
                if not chunk:
                    return
                with self.stderr_lock:
                    self.stderr_buf += chunk
                    self.stderr_total += len(chunk)
                    if len(self.stderr_buf) > _STDERR_KEEP:
                        del self.stderr_buf[: len(self.stderr_buf) - _STDERR_KEEP]
        except (OSError, ValueError):
            pass

    def stderr_since(self, mark: int) -> str:
        with self.stderr_lock:
            new = self.stderr_total - mark
            data = bytes(self.stderr_buf[-new:]) if new > 0 else b""
        return data.decode("utf-8", "replace")

    # -- control
    def send(self, obj: dict) -> None:
        body = json.dumps(obj, ensure_ascii=True).encode("ascii")
        self.proc.stdin.write(len(body).to_bytes(4, "big") + body)
        self.proc.stdin.flush()

    def exited(self) -> bool:
        """Has the worker exited? Does not reap it, so its group id stays reserved."""
        if _POSIX and hasattr(os, "waitid"):
            try:
                return os.waitid(os.P_PID, self.pid,
                                 os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
            except ChildProcessError:
                return True
            except OSError:
                pass
        return self.proc.poll() is not None

    def wait_exit(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not self.exited():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def kill(self) -> Optional[int]:
        """Kill the worker and everything in its process group; return its exit code."""
        if self.dead:
            return self.proc.returncode
        self.dead = True
        # End of input first: the worker then kills the process group of a snippet still
        # running (its own group, which the kill below does not reach) and exits.
        try:
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass
        self.wait_exit(0.5)
        if _POSIX:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        else:
            try:
                subprocess.run(["taskkill", "/F", "/T", "/PID", str(self.pid)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               creationflags=_CREATE_NO_WINDOW, timeout=10)
            except (OSError, subprocess.SubprocessError):
                pass
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        # Let the threads read to EOF first (keeps the last stderr bytes for
        # diagnostics), then close the pipes.
        for thread in (self.reader, self.drainer):
            if thread is not None and thread.is_alive():
                thread.join(timeout=1)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        return self.proc.returncode

    def close(self) -> None:
        """Ask the worker to exit, then make sure the whole group is gone."""
        if self.dead:
            return
        try:
            self.send({"op": "exit"})
            self.wait_exit(2.0)
        except (OSError, ValueError):
            pass
        self.kill()


def _finalize(process: _Process) -> None:
    try:
        process.kill()
    except Exception:
        pass


class Worker:
    """A persistent Python process that runs snippets one at a time.

    The process is started lazily by the first :meth:`run` (or by
    :meth:`start`), imports the ``preload`` modules once, and is reused until
    :meth:`close`; a snippet that times out or crashes the process causes a
    fresh process to be started for the next run. Thread-safe (runs are
    serialised). Use as a context manager to guarantee the process is killed.

    Args:
        python: Interpreter to run snippets with (path or name on PATH). It
            needs only the standard library, plus whatever snippets import.
        max_output_bytes: Cap, in UTF-8 bytes, for each of stdout, stderr and
            the error text of one run.
        preload: Modules imported once at worker start; an import failure is
            not an error (``RunResult.torch`` is then None).
        start_timeout: Seconds to wait for a new worker to become ready
            (importing torch from a cold disk can take several seconds).
        max_figures: Figures one run may keep.
        max_figure_side: Largest figure side kept, in pixels (figsize x dpi).
        max_figure_bytes: Bytes all figure files of one run may take together.
    """

    def __init__(self, python: str = sys.executable, *, max_output_bytes: int = 65536,
                 preload: tuple[str, ...] = ("numpy", "torch"), start_timeout: float = 120.0,
                 max_figures: int = 20, max_figure_side: int = 4000,
                 max_figure_bytes: int = 8 << 20):
        if max_output_bytes < 1:
            raise ValueError("max_output_bytes must be positive")
        self.python = python
        self.figure_limits = {"count": int(max_figures), "side": int(max_figure_side),
                              "bytes": int(max_figure_bytes)}
        self.max_output_bytes = int(max_output_bytes)
        self.preload = tuple(preload)
        self.start_timeout = start_timeout
        self._process: Optional[_Process] = None
        self._finalizer = None
        self._hello: dict = {}
        self._lock = threading.RLock()
        self._run_id = 0
        self._stderr_mark = 0

    # -- lifecycle
    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        if exc_type is None:
            self.close()
        else:  # an error or an interrupt: no grace period for a snippet still running
            with self._lock:
                self._discard()

    @property
    def pid(self) -> Optional[int]:
        """Process id of the live worker, or None if none is running."""
        process = self._process
        return process.pid if process is not None and not process.dead else None

    @property
    def python_version(self) -> Optional[str]:
        """Python version of the worker (after it has started), e.g. ``"3.11.7"``."""
        return self._hello.get("python")

    @property
    def torch_version(self) -> Optional[str]:
        """``torch.__version__`` in the worker, or None (absent or not started)."""
        return self._hello.get("torch")

    def start(self) -> None:
        """Start the worker now if it is not running (otherwise a no-op).

        Raises:
            WorkerError: the interpreter cannot be run, or the worker died or
                did not report ready within ``start_timeout`` seconds.
        """
        with self._lock:
            if self._process is not None and not self._process.dead:
                return
            python = _resolve(self.python)
            if python is None:
                raise WorkerError(f"Python interpreter not found: {self.python!r}")
            if not os.path.exists(WORKER_FILE):
                raise WorkerError(f"worker script missing: {WORKER_FILE}")
            # base64 and JSON escapes: figures need at most twice their bytes
            frame_limit = 16 * self.max_output_bytes + 2 * self.figure_limits["bytes"] + (1 << 20)
            process = None
            try:
                process = _Process(python, self.preload, frame_limit)
                hello = process.frames.get(timeout=self.start_timeout)
            except queue.Empty:
                hello = "timeout"
            except BaseException:  # interrupted while the worker starts: leave nothing behind
                if process is not None:
                    process.kill()
                raise
            if not isinstance(hello, dict) or hello.get("op") != "hello":
                rc = process.kill()
                tail = process.stderr_since(0).strip()[-2000:]
                if hello == "timeout":
                    why = f"did not start within {self.start_timeout} s"
                else:
                    why = f"died at start (exit code {rc})"
                raise WorkerError(f"worker {python!r} {why}" + (f":\n{tail}" if tail else ""))
            self._process = process
            self._hello = hello
            self._finalizer = weakref.finalize(self, _finalize, process)

    def close(self) -> None:
        """Stop the worker process and its children. Idempotent; a later
        :meth:`run` starts a new worker."""
        with self._lock:
            process, self._process = self._process, None
            if self._finalizer is not None:
                self._finalizer.detach()
                self._finalizer = None
            if process is not None:
                process.close()

    def _discard(self) -> Optional[int]:
        process, self._process = self._process, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        return process.kill() if process is not None else None

    # -- running
    def run(self, code: str, timeout: float = 10.0) -> RunResult:
        """Run ``code`` as a fresh ``__main__`` module in the worker.

        Args:
            code: Python source of the snippet.
            timeout: Seconds the snippet may run (worker start-up not included).

        Returns:
            A :class:`RunResult`. Exceptions raised by the snippet, timeouts and
            worker crashes are reported in it, never raised.

        Raises:
            WorkerError: no worker could be started (see :meth:`start`).
            TypeError, ValueError: bad ``code`` or ``timeout``.
        """
        if not isinstance(code, str):
            raise TypeError(f"code must be str, not {type(code).__name__}")
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        with self._lock:
            result = self._attempt(code, timeout)
            if result is None:
                # The worker died before it acknowledged the request (e.g. killed
                # while idle), so the snippet never started: retry once on a fresh one.
                result = self._attempt(code, timeout)
            if result is None:
                raise WorkerError("the worker died twice before it could start the snippet")
            return result

    def _attempt(self, code: str, timeout: float) -> Optional[RunResult]:
        """One try at a run; None if the worker died before starting the snippet."""
        process = self._send_run(code, timeout)
        run_id = self._run_id
        limit = self.max_output_bytes
        out = {"stdout": _Output(limit), "stderr": _Output(limit)}
        stderr_mark = self._stderr_mark = process.stderr_total
        acknowledged = False
        started = time.monotonic()
        deadline = started + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise queue.Empty
                msg = process.frames.get(timeout=remaining)
            except queue.Empty:
                return self._timed_out(out, time.monotonic() - started)
            if msg is None and not acknowledged:
                self._discard()
                return None
            if msg is None or msg.get("op") == "protocol-error":
                return self._crashed(process, out, msg, stderr_mark, time.monotonic() - started)
            if msg.get("id") != run_id:
                continue
            op = msg.get("op")
            if op == "started":
                acknowledged = True
                # the snippet's time starts now, not while a request waited in the pipe; the
                # worker itself ends a snippet at ``timeout``, this is the guard against a hung worker
                deadline = time.monotonic() + timeout + _TIMEOUT_GRACE
            elif op == "out":
                _take_output(msg, out)
            elif op == "done":
                return self._finished(msg, out)

    def _finished(self, msg: dict, out: dict) -> RunResult:
        if msg.get("timed_out"):
            return self._result(out, error=None, timed_out=True, seconds=_seconds(msg.get("seconds")))
        if msg.get("crash"):
            error = f"WorkerCrash: {msg['crash']} while running the snippet\n"
            stray = self._process.stderr_since(self._stderr_mark).strip() if self._process else ""
            if stray:
                error += stray[-2000:] + "\n"
            return self._result(out, error=error, timed_out=False, seconds=_seconds(msg.get("seconds")))
        limit = self.max_output_bytes
        flags = msg.get("truncated")
        flags = flags if isinstance(flags, dict) else {}
        error_text, error_cut = None, False
        if msg.get("error") is not None:
            error = _Output(limit)
            error.add(str(msg["error"]))
            error_text = error.text()
            error_cut = error.truncated or bool(flags.get("error"))
        cut = {name: bool(flags.get(name)) or out[name].truncated for name in out}
        return RunResult(
            stdout=out["stdout"].text(cut["stdout"]),
            stderr=out["stderr"].text(cut["stderr"]),
            error=error_text,
            error_line=_line(msg.get("error_line")),
            timed_out=False,
            truncated=cut["stdout"] or cut["stderr"] or error_cut,
            seconds=_seconds(msg.get("seconds")),
            python=self._hello.get("python", ""),
            torch=self._hello.get("torch"),
            figures=_figures(msg.get("figures")),
            error_types=_names(msg.get("error_types")) if error_text is not None else (),
        )

    def _send_run(self, code: str, timeout: float) -> _Process:
        """Send the run request, replacing a worker that died between runs."""
        for attempt in range(2):
            self.start()
            process = self._process
            self._run_id += 1
            try:
                if process.exited():
                    raise BrokenPipeError("worker exited")
                process.send({"op": "run", "id": self._run_id, "code": code,
                              "max_output": self.max_output_bytes, "timeout": timeout,
                              "figures": self.figure_limits})
                return process
            except (OSError, ValueError):
                self._discard()
                if attempt:
                    raise WorkerError("worker died before it could run the snippet")
        raise AssertionError("unreachable")

    def _result(self, out: dict, *, error: Optional[str], timed_out: bool,
                seconds: float) -> RunResult:
        return RunResult(
            stdout=out["stdout"].text(), stderr=out["stderr"].text(), error=error,
            error_line=None, timed_out=timed_out,
            truncated=out["stdout"].truncated or out["stderr"].truncated,
            seconds=seconds, python=self._hello.get("python", ""),
            torch=self._hello.get("torch"))

    def _timed_out(self, out: dict, seconds: float) -> RunResult:
        # the worker sent nothing past its deadline (it ends a snippet at the timeout
        # itself), so every frame it sent was taken; one still in the pipe is lost
        self._discard()
        return self._result(out, error=None, timed_out=True, seconds=seconds)

    def _crashed(self, process: _Process, out: dict, msg: Optional[dict], stderr_mark: int,
                 seconds: float) -> RunResult:
        exited = process.wait_exit(2.0)  # let it finish dying, without reaping
        rc = self._discard()  # the reader had queued every frame before the end it reported
        if msg is not None:
            error = f"WorkerCrash: protocol error ({msg.get('message')}); worker killed"
        elif not exited:
            error = "WorkerCrash: the worker closed its protocol channel; worker killed"
        elif rc is not None and rc < 0:
            try:
                name = f" ({signal.Signals(-rc).name})"
            except ValueError:
                name = ""
            error = f"WorkerCrash: the worker process was killed by signal {-rc}{name}"
        else:
            error = f"WorkerCrash: the worker process exited with code {rc}"
        error += " while running the snippet\n"
        stray = process.stderr_since(stderr_mark).strip()
        if stray:
            error += stray[-2000:] + "\n"
        return self._result(out, error=error, timed_out=False, seconds=seconds)
