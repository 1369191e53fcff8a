"""What the e2e tests share: starting a driver in its own headless Anki (test side), and
the driver's results file, scheduler and helpers (driver side, inside Anki's process).

The test side imports nothing from Anki. The driver side is imported by anki_driver.py and
import_driver.py after Anki's modules are importable; its functions import aqt lazily.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import traceback
import zipfile
from pathlib import Path
from typing import Any, Callable, Generator

# --- test side ----------------------------------------------------------------------


def anki_env(home: Path, key: str) -> dict[str, str]:
    """Environment for a headless Anki: Qt offscreen, HOME at ``home``, its own
    single-instance key (``key`` plus this process and time), no ANKI_BASE."""
    env = dict(os.environ)
    env.update(
        HOME=str(home),
        QT_QPA_PLATFORM="offscreen",
        ANKI_SINGLE_INSTANCE_KEY=f"{key}-{os.getpid()}-{time.time_ns()}",
        QTWEBENGINE_CHROMIUM_FLAGS="--disable-gpu --no-sandbox",
        PYTHONUNBUFFERED="1",
    )
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env["QTWEBENGINE_DISABLE_SANDBOX"] = "1"
    env.pop("ANKI_BASE", None)
    return env


def run_driver(args: list[str], cwd: Path, env: dict[str, str], results_path: Path, log_path: Path,
               timeout: float) -> dict[str, Any]:
    """Run a driver (``args``) to its end, or kill its process group after ``timeout`` seconds;
    return its results JSON with ``returncode``, ``log`` and ``wall_seconds`` added.

    Fails the test if the driver wrote no results, reported an error, or did not finish.
    """
    start = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
    log_text = log_path.read_text(errors="replace")
    assert results_path.exists(), f"the driver wrote no results:\n{log_text[-5000:]}"
    results = json.loads(results_path.read_text())
    results.update(returncode=proc.returncode, log=log_text, wall_seconds=time.monotonic() - start)
    assert results.get("error") is None, f"{results['error']}\n--- Anki log:\n{log_text[-5000:]}"
    assert results.get("done"), f"steps: {results['steps']}\n--- Anki log:\n{log_text[-5000:]}"
    return results


# --- driver side --------------------------------------------------------------------


class Sleep:
    """A script step: wait this many seconds (Qt's event loop keeps running)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class Js:
    """A script step: evaluate an expression in a web view (None: the reviewer's); the
    step gets its value."""

    def __init__(self, expr: str, web: Any = None) -> None:
        self.expr = expr
        self.web = web


class Results:
    """The results JSON a driver writes after every step (so a hang still reports its
    last step); the test makes the assertions."""

    def __init__(self, path: Path, **initial: Any) -> None:
        self.path = path
        self.data: dict[str, Any] = {"steps": [], "stderr": "", **initial}

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=2), encoding="utf-8")

    def log(self, step: str, **data: Any) -> None:
        self.data["steps"].append(step)
        self.data.update(data)
        self.save()


def prepare_base(base: Path, addon_zip: Path, config: dict[str, Any]) -> str:
    """Create the profile and install the add-on; return the add-on's folder name."""
    from aqt.profiles import ProfileManager

    pm = ProfileManager(ProfileManager.get_created_base_folder(str(base)))
    pm.setupMeta()
    pm.setLang("en_US")
    pm.profiles()  # creates "User 1"

    with zipfile.ZipFile(addon_zip) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        folder = base / "addons21" / manifest["package"]
        folder.mkdir(parents=True)
        zf.extractall(folder)
    meta = {"name": manifest["name"], "min_point_version": manifest.get("min_point_version", 0), "config": config}
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return manifest["package"]


def click(widget: Any) -> None:
    """A real mouse click (press and release inside the widget)."""
    from aqt.qt import Qt
    from PyQt6.QtTest import QTest

    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


def top_level(name: str) -> Any:
    """The visible top-level widget with this object name, or None."""
    from aqt.qt import QApplication

    for widget in QApplication.topLevelWidgets():
        if widget.objectName() == name and widget.isVisible():
            return widget
    return None


def open_dialogs() -> list[str]:
    """Names of the dialogs still on screen besides Anki's main window."""
    import aqt
    from aqt.qt import QApplication

    return [
        w.objectName() or type(w).__name__
        for w in QApplication.topLevelWidgets()
        if w.isVisible() and w is not aqt.mw and w.isWindow() and w.inherits("QDialog")
    ]


def record_stderr(results: Results) -> None:
    """Record what Anki's error handler sees: anything written to stderr in Anki's
    process becomes an error popup for the user."""
    import aqt

    original_write = aqt.mw.errorHandler.write

    def record(data: str) -> None:
        results.data["stderr"] += data
        original_write(data)

    aqt.mw.errorHandler.write = record


def wait_py(probe: Callable[[], Any], timeout: float) -> Generator[Any, Any, Any]:
    """Poll ``probe`` until it returns a true value (returned); TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{probe} still false after {timeout} s")
        yield Sleep(0.02)


def wait_js(expr: str, timeout: float, ok: Callable[[Any], bool] = bool, web: Any = None) -> Generator[Any, Any, Any]:
    """Evaluate ``expr`` until ``ok`` accepts its value (returned); TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = yield Js(expr, web)
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{expr!r} still {value!r} after {timeout} s")
        yield Sleep(0.02)


def run_anki(base: Path, results: Results, script: Callable[[], Generator[Any, Any, None]], watchdog_seconds: float) -> None:
    """Start Anki on ``base`` ("User 1"), run ``script`` once the profile is open, then
    close Anki normally (so atexit handlers, coverage's among them, run).

    ``script`` yields :class:`Sleep` and :class:`Js` steps. Its end, or an exception in it,
    finishes: the results get ``error`` (None or the traceback) and ``done``. A watchdog ends
    the process (exit status 3) if the script has not finished after ``watchdog_seconds``.
    """
    import aqt
    from aqt import gui_hooks
    from aqt.qt import QTimer

    def finish(error: str | None = None) -> None:
        results.data["error"] = error
        results.data["done"] = True
        results.save()
        QTimer.singleShot(0, aqt.mw.unloadProfileAndExit)

    def watchdog() -> None:
        last = results.data["steps"][-1:]
        results.data["error"] = f"watchdog: no finish after {watchdog_seconds} s (last step: {last})"
        results.save()
        os._exit(3)

    def step(gen: Generator[Any, Any, None], value: Any = None) -> None:
        try:
            command = gen.send(value)
        except StopIteration:
            finish()
            return
        except Exception:
            finish(traceback.format_exc())
            return
        if isinstance(command, Sleep):
            QTimer.singleShot(int(command.seconds * 1000), lambda: step(gen))
        elif isinstance(command, Js):
            web = command.web or aqt.mw.reviewer.web
            web.evalWithCallback(command.expr, lambda v: step(gen, v))
        else:
            finish(f"bad command {command!r}")

    def on_profile_open() -> None:
        QTimer.singleShot(int(watchdog_seconds * 1000), watchdog)
        gen = script()
        QTimer.singleShot(1500, lambda: step(gen))  # let the main window settle

    gui_hooks.profile_did_open.append(on_profile_open)
    results.log("starting anki")
    aqt._run(argv=["anki", "-b", str(base), "-p", "User 1"])
    results.data["exited"] = True
    results.save()
