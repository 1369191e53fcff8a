"""SIGINT and SIGTERM as an exception that unwinds the build, and critical sections that defer them.

The command line turns both signals into :class:`Interrupted` (a ``KeyboardInterrupt``), so
every ``finally`` runs: worker processes are stopped and temporary files removed. Two kinds
of statement must not be split by that exception, so they run under :func:`deferred`,
which only notes a signal and raises when the block ends: starting a process pool (a
Python signal handler that runs inside an at-fork callback has its exception swallowed,
"Exception ignored in ...", and the build would go on), and creating a temporary file
together with noting it for removal. Forked workers call :func:`in_worker`, so an
interrupt reaches only the parent, which then ends them.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; ``signum`` says which (exit status 128 + ``signum``)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_held = 0  # > 0 inside deferred(): a signal is only noted
_pending: int | None = None


def _raise(signum: int, frame) -> None:
    global _pending
    if _held:
        _pending = signum
        return
    _raise_now(signum)


def _raise_now(signum: int) -> None:
    for other in SIGNALS:  # once: the cleanup that follows runs undisturbed
        signal.signal(other, signal.SIG_IGN)
    raise Interrupted(signum)


@contextmanager
def raising() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted` (main thread only; elsewhere a no-op)."""
    global _pending
    _pending = None
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise) for s in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


@contextmanager
def deferred() -> Iterator[None]:
    """Defer SIGINT and SIGTERM over a critical section (nestable; main thread).

    Within the block a signal is only noted; it raises :class:`Interrupted` when the
    outermost block ends, so the block's statements run whole or not at all. For short
    sections only: the signal waits for the block. (Python runs signal handlers between
    bytecodes, also inside at-fork callbacks, where an exception is printed and dropped.)
    """
    global _held, _pending
    _held += 1
    try:
        yield
    finally:
        _held -= 1
    if not _held and _pending is not None:
        signum, _pending = _pending, None
        _raise_now(signum)


def in_worker() -> None:
    """Run first in a forked worker: ignore SIGINT and die on SIGTERM.

    The parent handles an interrupt and ends its workers (they write nothing that it does not remove).
    """
    global _held, _pending
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # A signal that came between the fork and now was only noted (the parent's handler
    # was inherited inside deferred()): the parent's SIGTERM that ends this worker must still end it.
    held, _held, _pending = _pending, 0, None
    if held == signal.SIGTERM:
        signal.raise_signal(signal.SIGTERM)


def _after_fork_in_child() -> None:
    # At once, before the child runs anything else: a worker that hangs on a lock inherited
    # from another thread must still die by the SIGTERM with which its parent ends it.
    if _held:
        in_worker()


os.register_at_fork(after_in_child=_after_fork_in_child)
