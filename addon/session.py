"""One warm worker for the whole Anki session, shared by Run code
and the scratchpad.

Runs are serialized (one worker process, one snippet at a time). The worker
is started by the first run, reused while the interpreter and output cap stay
the same, and closed on request or when idle. No aqt import: tested alone.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any, Callable, Optional


class NoPythonError(Exception):
    """No interpreter is configured and none with torch was found on PATH."""


class Session:
    """Owns the vendored runner's Worker and picks its interpreter."""

    def __init__(
        self,
        worker_factory: Optional[Callable[..., Any]] = None,
        find_python: Optional[Callable[[], Optional[str]]] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if worker_factory is None or find_python is None:
            from . import runner  # the copy vendored by build.py

            worker_factory = worker_factory or runner.Worker
            find_python = find_python or runner.find_python
        self._worker_factory = worker_factory
        self._find_python = find_python
        self._clock = clock
        self._lock = threading.Lock()
        self._worker: Any = None
        self._key: tuple[str, int] | None = None
        self._found: str | None = None
        self._last_used = clock()
        self._close_after_run = False

    def interpreter(self, configured: str) -> str:
        """Return the interpreter to use: `configured` if not empty, else the
        first python on PATH that can import torch (looked up once).

        Raises NoPythonError if there is none. May take seconds the first time:
        call it off the UI thread.
        """
        if configured:
            return configured
        if self._found is None:
            self._found = self._find_python()
        if not self._found:
            self._found = None
            raise NoPythonError
        return self._found

    def run(self, code: str, python: str, timeout: float, max_output_bytes: int) -> Any:
        """Run code in the warm worker for interpreter `python` (a leading "~"
        means the user's home folder) and return the runner's RunResult.
        timeout is in seconds, max_output_bytes in bytes.

        Blocks until the snippet ends (call it off the UI thread); waits for a
        run already in progress. Raises NoPythonError if python is "" and none
        is found, and the runner's WorkerError if the interpreter cannot start.
        """
        with self._lock:
            python = self.interpreter(python)
            key = (python, int(max_output_bytes))
            if self._worker is None or self._key != key:
                self._close_locked()
                self._worker = self._worker_factory(os.path.expanduser(python), max_output_bytes=max_output_bytes)
                self._key = key
            try:
                return self._worker.run(code, timeout=timeout)
            finally:
                self._last_used = self._clock()
                if self._close_after_run:
                    self._close_locked()

    def close_if_idle(self, idle_seconds: float) -> bool:
        """Close the worker if no run used it for idle_seconds (seconds).

        Returns True if a worker was closed. Never waits for a running snippet.
        """
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._worker is None or self._clock() - self._last_used < idle_seconds:
                return False
            self._close_locked()
            return True
        finally:
            self._lock.release()

    def close(self) -> None:
        """Close the worker (a new one starts at the next run). Waits for a run
        in progress to end."""
        with self._lock:
            self._close_locked()

    def shutdown(self) -> None:
        """Stop the worker without waiting (profile closing).

        If a snippet is running, its process group is killed (POSIX) so that
        run ends now, reported as a worker crash; elsewhere the worker is
        closed as soon as the run ends.
        """
        if self._lock.acquire(blocking=False):
            try:
                self._close_locked()
            finally:
                self._lock.release()
            return
        self._close_after_run = True
        pid = getattr(self._worker, "pid", None)
        if pid and os.name == "posix":
            try:
                os.killpg(pid, signal.SIGKILL)  # the runner starts each worker in its own session
            except OSError:
                pass

    @property
    def running(self) -> bool:
        """True while a snippet runs."""
        return self._lock.locked()

    def _close_locked(self) -> None:
        """Close the worker; the caller holds the lock."""
        self._close_after_run = False
        worker, self._worker, self._key = self._worker, None, None
        if worker is not None:
            try:
                worker.close()
            except Exception:
                pass
