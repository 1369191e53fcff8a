"""Snippet worker for :mod:`deckbuild.runner` (the child-process side).

Standalone file: standard library only, no deckbuild imports, and kept
compatible with Python 3.8+ because it runs under whatever interpreter the
user's torch lives in. ``runner.py`` starts it as::

    python -c "<bootstrap that execs this file>" /path/to/_worker.py '<json config>'

so the directory holding this file is never on ``sys.path`` (a module there
could otherwise shadow the standard library inside snippets).

Protocol
--------
Frames in both directions are a 4-byte big-endian length followed by that many
bytes of ASCII JSON. At start-up the worker duplicates its stdin/stdout file
descriptors for the protocol and points fd 0 at the null device and fd 1 at
fd 2, so nothing a snippet does with ``print``, ``os.write(1, ...)`` or child
processes can corrupt the protocol. Python-level output (``sys.stdout``,
``sys.stderr``, warnings, tracebacks printed by the snippet) is captured per
run and capped; output written straight to file descriptors 1/2 (C code,
child processes) ends up on the worker's stderr, which the parent only keeps
for crash diagnostics.

parent -> worker::

    {"op": "run", "id": int, "code": str, "max_output": int,   # bytes per stream
     "figures": {"count": int, "side": int, "bytes": int}}     # figure limits
    {"op": "exit"}

worker -> parent::

    {"op": "hello", "pid": int, "python": str, "torch": str|null,
     "numpy": str|null, "preload_errors": {module: message}}
    {"op": "started", "id": int}             # run received; the snippet starts now
    {"op": "out", "id": int, "stream": "stdout"|"stderr", "data": str,
     "truncated": bool}                      # the stream hit the cap
    {"op": "done", "id": int, "error": str|null, "error_line": int|null,
     "error_types": [str],                   # the exception's class and bases (traceback names)
     "seconds": float, "truncated": {"stdout": bool, "stderr": bool, "error": bool},
     "figures": [{"format": "svg"|"png", "day": base64, "night": base64,
                  "alt": str, "width": int, "height": int}]}   # CSS px

Figures: a snippet that mentions ``matplotlib`` (or runs after one that
imported pyplot) gets pyplot set up before it runs: Agg backend, matplotlib's
own defaults plus :data:`FIGURE_STYLE`, no open figure. Every figure it leaves
open is saved in creation order, in a day and a night variant, and closed.

``out`` frames stream output in chunks (line by line for the first 1000
frames, then every 0.1 s) so that a run that times out or crashes still
reports what it printed so far.
"""

import builtins
import io
import json
import linecache
import os
import platform
import random
import select
import shutil
import signal
import sys
import threading
import time
import traceback
import types
import warnings

SNIPPET_FILENAME = "<snippet>"
_DUMPS = json.dumps  # taken now: a snippet that patches json.dumps must not break its own frames
FLUSH_INTERVAL = 0.1  # seconds between streamed output chunks

# Fixed print options applied before every snippet (documented in runner.py).
NUMPY_PRINTOPTIONS = dict(
    precision=4, threshold=1000, edgeitems=3, linewidth=75, suppress=False,
    nanstr="nan", infstr="inf", sign="-", floatmode="maxprec", formatter=None,
    legacy=False,
)
TORCH_PRINTOPTIONS = dict(
    precision=4, threshold=1000, edgeitems=3, linewidth=80, sci_mode=None,
)
SEED = 0


def describe_exit(status):
    """Say how a snippet's process ended, from its ``os.waitpid`` status."""
    if status is not None and os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = " (%s)" % signal.Signals(number).name
        except ValueError:
            name = ""
        return "the snippet's process was killed by signal %d%s" % (number, name)
    code = os.WEXITSTATUS(status) if status is not None and os.WIFEXITED(status) else status
    return "the snippet's process exited with code %s" % code


def truncation_note(limit):
    """The visible marker appended to a capped stream."""
    return "\u2026 [output truncated at %d bytes]\n" % limit


def cap_text(text, limit):
    """Cap ``text`` at ``limit`` UTF-8 bytes; return (text, truncated)."""
    data = text.encode("utf-8", "backslashreplace")
    if len(data) <= limit:
        return data.decode("utf-8"), False
    text = data[:limit].decode("utf-8", "ignore")
    if text and not text.endswith("\n"):
        text += "\n"
    return text + truncation_note(limit), True


# --------------------------------------------------------------------------
# protocol

class Channel(object):
    """Length-prefixed JSON frames over two private file descriptors."""

    def __init__(self, fd_in, fd_out):
        self.fd_in = fd_in
        self.fd_out = fd_out
        self.lock = threading.Lock()

    def _read_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = os.read(self.fd_in, n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def recv(self):
        head = self._read_exact(4)
        if head is None:
            return None
        body = self._read_exact(int.from_bytes(head, "big"))
        if body is None:
            return None
        return json.loads(body.decode("ascii"))

    def send(self, obj):
        body = _DUMPS(obj, ensure_ascii=True).encode("ascii")
        data = memoryview(len(body).to_bytes(4, "big") + body)
        with self.lock:
            while data:
                written = os.write(self.fd_out, data)
                data = data[written:]


# --------------------------------------------------------------------------
# output capture

class Capture(object):
    """Collects one run's stdout/stderr, capped per stream, and streams it out.

    Line-buffered for the first LINE_BUFFERED_FRAMES frames (so output printed
    right before a crash reaches the parent), then sent in batches by the
    Flusher thread every FLUSH_INTERVAL seconds.
    """

    LINE_BUFFERED_FRAMES = 1000

    def __init__(self, channel, run_id, limit):
        self.channel = channel
        self.run_id = run_id
        self.limit = limit
        self.lock = threading.RLock()
        self.pending = {"stdout": [], "stderr": []}
        self.used = {"stdout": 0, "stderr": 0}
        self.truncated = {"stdout": False, "stderr": False}
        self.reported = {"stdout": False, "stderr": False}
        self.frames = 0

    def add(self, stream, text):
        if not text:
            return
        with self.lock:
            room = self.limit - self.used[stream]
            if room <= 0:
                self.truncated[stream] = True
                return
            # Every character takes at least one byte: slicing first bounds the
            # work for a single gigantic write.
            clipped = len(text) > room
            data = text[:room].encode("utf-8", "backslashreplace")
            if len(data) > room:
                data = data[:room]
                clipped = True
            if clipped:
                self.truncated[stream] = True
            self.pending[stream].append(data.decode("utf-8", "ignore"))
            self.used[stream] += len(data)
            if "\n" in text and self.frames < self.LINE_BUFFERED_FRAMES:
                self.flush()

    def flush(self):
        # The lock is held while sending so chunks can never overtake each
        # other (or the final "done" frame, which is sent after a flush).
        with self.lock:
            for stream in ("stdout", "stderr"):
                parts = self.pending[stream]
                newly_cut = self.truncated[stream] and not self.reported[stream]
                if parts or newly_cut:
                    self.pending[stream] = []
                    self.reported[stream] = self.truncated[stream]
                    self.frames += 1
                    self.channel.send({"op": "out", "id": self.run_id, "stream": stream,
                                       "data": "".join(parts),
                                       "truncated": self.truncated[stream]})


class CapturedBinary(object):
    """``sys.stdout.buffer`` stand-in: decodes UTF-8 bytes into the capture."""

    def __init__(self, text_stream):
        import codecs
        self._text = text_stream
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def write(self, data):
        self._text.write(self._decoder.decode(bytes(data)))
        return len(data)

    def flush(self):
        pass

    def writable(self):
        return True

    def isatty(self):
        return False


class CapturedText(io.TextIOBase):
    """A text stream that feeds a :class:`Capture` (replaces sys.stdout/stderr)."""

    encoding = "utf-8"
    errors = "backslashreplace"

    def __init__(self, capture, stream):
        super(CapturedText, self).__init__()
        self._capture = capture
        self._stream = stream
        self.buffer = CapturedBinary(self)

    @property
    def name(self):
        return "<%s>" % self._stream

    def writable(self):
        return True

    def isatty(self):
        return False

    def write(self, text):
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not %s" % type(text).__name__)
        self._capture.add(self._stream, text)
        return len(text)

    def flush(self):
        if self.closed:
            raise ValueError("I/O operation on closed file.")


def end_own_group():
    """Kill this process's group (a snippet's process and whatever it started), this process last."""
    try:
        os.killpg(os.getpgrp(), signal.SIGKILL)
    finally:
        os._exit(70)


class Flusher(threading.Thread):
    """Background thread sending the current run's output every FLUSH_INTERVAL.

    In a snippet's forked process, ``worker`` is the pid of the worker that forked it: once
    that worker is gone (killed, say, with its own process group, which this one is not in),
    the snippet's process group ends itself within FLUSH_INTERVAL, so no snippet outlives
    its worker, even one that never prints.
    """

    def __init__(self, worker=None):
        super(Flusher, self).__init__(name="deckbuild-flusher", daemon=True)
        self.current = None
        self.worker = worker

    def run(self):
        while True:
            time.sleep(FLUSH_INTERVAL)
            if self.worker is not None and os.getppid() != self.worker:
                end_own_group()
            capture = self.current
            if capture is not None:
                try:
                    capture.flush()
                except OSError:  # parent went away
                    if self.worker is not None:
                        end_own_group()
                    return


# --------------------------------------------------------------------------
# error formatting

def short_path(filename):
    """Machine-independent spelling of a library path (for warnings)."""
    norm = filename.replace("\\", "/")
    for marker in ("/site-packages/", "/dist-packages/"):
        if marker in norm:
            return norm.split(marker, 1)[1]
    stdlib = os.path.dirname(os.__file__).replace("\\", "/") + "/"
    if norm.startswith(stdlib):
        return norm[len(stdlib):]
    return filename


def format_warning(message, category, filename, lineno, line=None):
    text = "%s:%s: %s: %s\n" % (short_path(filename), lineno, category.__name__, message)
    if filename == SNIPPET_FILENAME:
        source = linecache.getline(filename, lineno).strip()
        if source:
            text += "  %s\n" % source
    return text


def _keep_snippet_frames(te, seen):
    """Drop frames outside the snippet from a TracebackException chain."""
    if te is None or id(te) in seen:
        return
    seen.add(id(te))
    frames = [f for f in te.stack if f.filename == SNIPPET_FILENAME]
    te.stack = traceback.StackSummary.from_list(frames)
    if not frames and hasattr(te, "exc_traceback"):
        te.exc_traceback = None  # Python < 3.11 prints the header from this
    _keep_snippet_frames(te.__cause__, seen)
    _keep_snippet_frames(te.__context__, seen)
    for sub in getattr(te, "exceptions", None) or ():
        _keep_snippet_frames(sub, seen)


def format_error(exc):
    """Return (traceback text with snippet frames only, 1-based snippet line)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == SNIPPET_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    if line is None and isinstance(exc, SyntaxError) and exc.filename == SNIPPET_FILENAME:
        line = exc.lineno
    try:
        te = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
    except TypeError:  # Python < 3.10
        te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    _keep_snippet_frames(te, set())
    return "".join(te.format()), line


def exception_names(exc):
    """Names of the exception's class and its bases, most derived first, as Python's
    traceback prints them ("KeyError", "LookupError", ..., "torch.OutOfMemoryError");
    ``object`` left out."""
    names = []
    for cls in type(exc).__mro__[:-1]:
        module = getattr(cls, "__module__", None)
        qualname = getattr(cls, "__qualname__", cls.__name__)
        names.append(qualname if module in (None, "builtins", "__main__") else "%s.%s" % (module, qualname))
    return names


# --------------------------------------------------------------------------
# figures (matplotlib)

#: Card text colours (deckbuild's card.css) for the day and night variants.
DAY_FG, NIGHT_FG = "#1f2328", "#e6edf3"
DAY_BG, NIGHT_BG = "#ffffff", "#1f1f1f"
#: Colours with at least 3:1 contrast (WCAG 2.1, 1.4.11 non-text contrast)
#: against both the day (#ffffff) and the night (#1f1f1f) card background.
PALETTE = ("#3b82d6", "#db6d12", "#2d9b3c", "#e34850", "#9872d6",
           "#ad7651", "#d560ad", "#868686", "#93911b", "#159fb0")
#: rcParams set on top of matplotlib's defaults before each snippet. Figures
#: are drawn once, with DAY_FG; the night variant swaps the foreground (and
#: black) for NIGHT_FG and white for NIGHT_BG. Backgrounds are transparent.
FIGURE_STYLE = {
    "figure.figsize": (5.0, 3.2), "figure.dpi": 100,
    "figure.facecolor": "none", "axes.facecolor": "none", "savefig.transparent": True,
    "text.color": DAY_FG, "axes.labelcolor": DAY_FG, "axes.edgecolor": DAY_FG,
    "axes.titlecolor": DAY_FG, "xtick.color": DAY_FG, "ytick.color": DAY_FG,
    "xtick.labelcolor": DAY_FG, "ytick.labelcolor": DAY_FG, "grid.color": DAY_FG,
    "grid.alpha": 0.18, "patch.edgecolor": DAY_FG, "hatch.color": DAY_FG,
    "boxplot.flierprops.markeredgecolor": DAY_FG, "legend.facecolor": DAY_BG,
    "legend.edgecolor": DAY_FG, "legend.framealpha": 0.85,
    "svg.hashsalt": "deckbuild", "svg.fonttype": "path", "svg.image_inline": True,
    "savefig.bbox": "tight", "savefig.pad_inches": 0.05,
}
NIGHT_SWAP = ((DAY_FG, NIGHT_FG), ("#000000", NIGHT_FG), (DAY_BG, NIGHT_BG))
SVG_MAX_BYTES = 400000  # a heavier SVG is saved as PNG at 2x instead
PNG_SCALE = 2  # device pixels per CSS px
CSS_DPI = 96  # CSS px per inch


class FigureError(Exception):
    """A figure the snippet drew cannot be kept (too many, too large, too heavy)."""


def _swap_svg(data):
    """Return the night variant of an SVG drawn with FIGURE_STYLE."""
    for day, night in NIGHT_SWAP:
        data = data.replace(day.encode("ascii"), night.encode("ascii"))
    return data


def _night_png(day):
    """Return the night variant of a PNG drawn with FIGURE_STYLE (pixels near the
    swapped colours are recoloured; alpha, hence anti-aliasing, is kept)."""
    import numpy as np
    from PIL import Image
    with Image.open(io.BytesIO(day)) as image:
        pixels = np.array(image.convert("RGBA"))
    rgb = pixels[..., :3].astype(np.int16)
    out = pixels.copy()
    for colour, other in NIGHT_SWAP:
        src = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
        dst = np.array([int(other[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)
        out[np.abs(rgb - src).max(axis=-1) <= 6, :3] = dst
    buf = io.BytesIO()
    Image.fromarray(out, "RGBA").save(buf, format="png")
    return buf.getvalue()


class Figures(object):
    """Sets pyplot up before a snippet and collects, then closes, its figures."""

    def __init__(self):
        self.pyplot = None
        self.limits = {"count": 20, "side": 4000, "bytes": 8 << 20}

    def prepare(self, code, limits):
        """Make pyplot ready for ``code`` if it may draw; close every figure."""
        self.limits = dict(self.limits, **(limits or {}))
        if self.pyplot is None and "matplotlib" not in code and "matplotlib.pyplot" not in sys.modules:
            return
        if self.pyplot is None:
            try:
                import matplotlib
                matplotlib.use("agg", force=True)
                import matplotlib.pyplot as pyplot
            except Exception:
                return  # no matplotlib: a snippet importing it raises ImportError itself
            self.pyplot = pyplot
            self.figure, self.show = pyplot.figure, pyplot.show
        pyplot = self.pyplot
        import matplotlib
        pyplot.close("all")
        pyplot.switch_backend("agg")
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(FIGURE_STYLE)
        matplotlib.rcParams["axes.prop_cycle"] = matplotlib.cycler(color=list(PALETTE))
        count, figure = self.limits["count"], self.figure

        def limited_figure(*args, **kwargs):
            num = args[0] if args else kwargs.get("num")
            known = num is not None and pyplot.fignum_exists(num) if not hasattr(num, "canvas") else True
            if not known and len(pyplot.get_fignums()) >= count:
                raise FigureError(
                    "a code card keeps at most %d figures; close the ones it should not show "
                    "(plt.close(fig))" % count)
            return figure(*args, **kwargs)

        pyplot.figure = limited_figure
        pyplot.show = lambda *args, **kwargs: None  # Agg shows nothing; figures are kept anyway

    def collect(self):
        """Return the open figures as protocol dicts, in creation order, and close them all.

        Raises FigureError if one is larger than ``side`` px a side, or all of
        them together take more than ``bytes`` bytes.
        """
        if self.pyplot is None and "matplotlib.pyplot" in sys.modules:
            pyplot = sys.modules["matplotlib.pyplot"]  # imported without the word "matplotlib"
            self.pyplot, self.figure, self.show = pyplot, pyplot.figure, pyplot.show
        pyplot = self.pyplot
        if pyplot is None:
            return []
        try:
            out, total = [], 0
            numbers = pyplot.get_fignums()
            if len(numbers) > self.limits["count"]:
                raise FigureError("the snippet left %d figures open; a code card keeps at most %d"
                                  % (len(numbers), self.limits["count"]))
            for index, number in enumerate(numbers, 1):
                fig = self._get(number)
                w_in, h_in = fig.get_size_inches()
                side = self.limits["side"]
                px_w, px_h = w_in * fig.dpi, h_in * fig.dpi
                if not (0 < px_w <= side and 0 < px_h <= side):
                    raise FigureError("figure %d is %d x %d px; at most %d px a side are kept "
                                      "(figsize x dpi)" % (index, px_w, px_h, side))
                if (w_in * h_in * (CSS_DPI * PNG_SCALE) ** 2 > 16e6
                        and not self._svg_fits(fig)):
                    raise FigureError("figure %d is too heavy for SVG and too large for PNG; "
                                      "make it smaller (figsize) or simpler" % index)
                item = self._save(fig, index)
                total += len(item["day"]) + len(item["night"])
                if total > self.limits["bytes"]:
                    raise FigureError("the figures take more than %d bytes; draw fewer or "
                                      "simpler figures" % self.limits["bytes"])
                out.append(item)
            return [dict(item, day=_b64(item["day"]), night=_b64(item["night"])) for item in out]
        finally:
            pyplot.close("all")
            pyplot.figure, pyplot.show = self.figure, self.show

    def _get(self, number):
        import matplotlib._pylab_helpers as helpers
        return helpers.Gcf.get_fig_manager(number).canvas.figure

    def _svg_fits(self, fig):
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        return len(buf.getvalue()) <= SVG_MAX_BYTES

    def _save(self, fig, index):
        """Save one figure as SVG, or PNG at 2x when the SVG is too heavy."""
        titles = [t for t in ([fig.get_suptitle()] if hasattr(fig, "get_suptitle") else [])
                  + [ax.get_title() for ax in fig.axes] if t]
        alt = "Figure %d" % index + (": " + "; ".join(titles) if titles else "")
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        day = buf.getvalue()
        # CSS size from the SVG's own width/height in pt (bbox="tight" crops).
        head = day[:2000].decode("ascii", "replace")
        width, height = _svg_size(head)
        if len(day) <= SVG_MAX_BYTES:
            return {"format": "svg", "day": day, "night": _swap_svg(day), "alt": alt,
                    "width": width, "height": height}
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=CSS_DPI * PNG_SCALE, metadata={"Software": None})
        day = buf.getvalue()
        return {"format": "png", "day": day, "night": _night_png(day), "alt": alt,
                "width": width, "height": height}


def _svg_size(head):
    """Return the (width, height) in CSS px of an SVG whose header is ``head``."""
    import re
    size = []
    for name in ("width", "height"):
        match = re.search(r'\b%s="([0-9.]+)(pt|px)?"' % name, head)
        value = float(match.group(1)) if match else 0.0
        if match and match.group(2) == "pt":
            value *= CSS_DPI / 72.0
        size.append(int(round(value)))
    return size[0], size[1]


def _b64(data):
    import base64
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------
# the worker

class Worker(object):
    def __init__(self, channel, preload):
        self.channel = channel
        self.preload_errors = {}
        for name in preload:
            try:
                __import__(name)
            except BaseException as exc:  # broken installs raise all sorts
                self.preload_errors[name] = "%s: %s" % (type(exc).__name__, exc)
        torch = sys.modules.get("torch")
        if torch is not None:
            try:
                torch.set_num_interop_threads(1)  # only allowed once, before use
            except Exception:
                pass
        self.base_cwd = os.getcwd()
        self.run_cwd = self.base_cwd  # each snippet's own empty folder (see run())
        self.base_path = list(sys.path)
        self.base_argv = [SNIPPET_FILENAME]
        self.base_env = dict(os.environ)
        self.base_recursion = sys.getrecursionlimit()
        self.base_filters = list(warnings.filters)
        self.base_showwarning = warnings.showwarning
        self.flusher = None  # started in each snippet's process (a fork keeps no threads)
        self.backlog = []  # requests that came while a snippet ran
        self.figures = Figures()

    def hello(self):
        torch = sys.modules.get("torch")
        numpy = sys.modules.get("numpy")
        return {
            "op": "hello",
            "pid": os.getpid(),
            "python": platform.python_version(),
            "torch": getattr(torch, "__version__", None) if torch else None,
            "numpy": getattr(numpy, "__version__", None) if numpy else None,
            "preload_errors": self.preload_errors,
        }

    def reset(self):
        """Put every piece of process state a snippet may touch back to fixed values."""
        os.chdir(self.run_cwd)
        sys.path[:] = self.base_path
        sys.argv[:] = self.base_argv
        if dict(os.environ) != self.base_env:
            os.environ.clear()
            os.environ.update(self.base_env)
        sys.setrecursionlimit(self.base_recursion)
        warnings.resetwarnings()  # bumps the filter version: "shown once" registries reset
        warnings.filters[:] = self.base_filters
        warnings.onceregistry.clear()
        warnings.showwarning = self.base_showwarning
        warnings.formatwarning = format_warning
        logging = sys.modules.get("logging")
        if logging is not None:
            root = logging.getLogger()
            for handler in list(root.handlers):
                root.removeHandler(handler)
            root.setLevel(logging.WARNING)
            logging.disable(logging.NOTSET)

        random.seed(SEED)
        np = sys.modules.get("numpy")
        if np is not None:
            np.random.seed(SEED)
            np.set_printoptions(**NUMPY_PRINTOPTIONS)
            np.seterr(all="warn", under="ignore")
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.manual_seed(SEED)
            torch.set_default_dtype(torch.float32)
            torch.set_num_threads(1)
            torch.set_printoptions(profile="default")
            torch.set_printoptions(**TORCH_PRINTOPTIONS)
            torch.set_grad_enabled(True)
            if hasattr(torch, "set_default_device"):
                torch.set_default_device(None)
            torch.autograd.set_detect_anomaly(False)

    def run(self, msg):
        """Run one snippet in a fresh child process forked from this (clean) one.

        The child has its own copy of everything a snippet can change (builtins, modules,
        signal handlers, patched functions, threads), and leads its own process group, which
        is killed once it ends (its leftover child processes go with it). Its frames come
        through a private pipe and are passed on whole, so a child killed mid-write cannot
        corrupt the protocol. A timeout (``msg["timeout"]`` seconds) or a child that dies
        without a "done" frame ends in a "done" frame with ``timed_out`` or ``crash``.
        """
        run_id = msg["id"]
        # The snippet's working folder: new and empty, removed when the run has ended
        # (with every process of its group), so no file one card writes reaches the next.
        self.run_cwd = os.path.join(self.base_cwd, "run-%d" % run_id)
        shutil.rmtree(self.run_cwd, ignore_errors=True)
        os.mkdir(self.run_cwd, 0o700)
        try:
            self.run_isolated(msg)
        finally:
            os.chdir(self.base_cwd)
            shutil.rmtree(self.run_cwd, ignore_errors=True)
            self.run_cwd = self.base_cwd

    def run_isolated(self, msg):
        """:meth:`run` in a forked child process (in this process where there is no fork)."""
        run_id = msg["id"]
        timeout = float(msg.get("timeout") or 0)
        self.channel.send({"op": "started", "id": run_id})
        if not hasattr(os, "fork"):  # Windows: in this process (the parent enforces the timeout)
            if self.flusher is None:
                self.flusher = Flusher()
                self.flusher.start()
            self.run_here(msg)
            return
        read_end, write_end = os.pipe()
        worker = os.getpid()
        pid = os.fork()
        if pid == 0:  # the snippet's process
            status = 70
            try:
                os.close(read_end)
                os.close(self.channel.fd_in)  # the snippet cannot read or forge the protocol
                os.close(self.channel.fd_out)
                os.setpgid(0, 0)
                self.channel = Channel(None, write_end)
                self.flusher = Flusher(worker)
                self.flusher.start()
                self.run_here(msg)
                status = 0
            finally:
                os._exit(status)
        os.close(write_end)
        try:
            os.setpgid(pid, pid)  # also here: end_group() must find the group even if the child has not run yet
        except OSError:
            pass
        started = time.perf_counter()
        finished, timed_out, waited = False, False, None
        buffer = bytearray()
        deadline = started + timeout if timeout > 0 else None
        watched = [read_end, self.channel.fd_in]
        while True:
            wait = 0.05 if read_end in watched else 0.005
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.perf_counter()))
            ready, _, _ = select.select(watched, [], [], wait)
            if read_end in ready:
                chunk = os.read(read_end, 65536)
                if chunk:
                    buffer += chunk
                    finished = self.relay(buffer, run_id) or finished
                else:  # the child closed its end (it is exiting)
                    watched.remove(read_end)
            if self.channel.fd_in in ready:
                self.parent_request(pid)
            done_pid, status = os.waitpid(pid, os.WNOHANG)
            if done_pid:
                waited = status
                break
            if deadline is not None and time.perf_counter() >= deadline:
                self.end_group(pid)
                waited, timed_out = os.waitpid(pid, 0)[1], True
                break
        self.end_group(pid)
        os.set_blocking(read_end, False)  # a process outside the group may still hold the pipe
        try:
            while True:  # what the child wrote before it ended
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                buffer += chunk
        except BlockingIOError:
            pass
        finished = self.relay(buffer, run_id) or finished
        os.close(read_end)
        if finished and not timed_out:
            return
        frame = {"op": "done", "id": run_id, "error": None, "error_line": None,
                 "seconds": time.perf_counter() - started, "truncated": {}}
        if timed_out:
            frame["timed_out"] = True
        else:
            frame["crash"] = describe_exit(waited)
        self.channel.send(frame)

    def relay(self, buffer, run_id):
        """Pass every whole frame in ``buffer`` on to the parent; return whether one was "done"."""
        done = False
        while len(buffer) >= 4:
            size = int.from_bytes(buffer[:4], "big")
            if len(buffer) < 4 + size:
                break
            body = bytes(buffer[4:4 + size])
            del buffer[:4 + size]
            try:
                frame = json.loads(body.decode("ascii"))
            except ValueError:
                continue  # not ours: a snippet wrote into the pipe
            if not isinstance(frame, dict) or frame.get("id") != run_id or frame.get("op") not in ("out", "done"):
                continue
            if frame["op"] == "done":
                done = True
            self.channel.send(frame)
        return done

    def parent_request(self, pid):
        """The parent wrote while a snippet's process runs: "exit" or the end of input (the
        parent is gone) end the snippet and this worker; the next "run" (sent as soon as the
        parent had this run's "done") waits in the backlog."""
        msg = self.channel.recv()
        if msg is None or msg.get("op") == "exit":
            self.end_group(pid)
            os._exit(0)
        self.backlog.append(msg)

    @staticmethod
    def end_group(pid):
        """Kill the snippet's process group (the snippet and the processes it left)."""
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def run_here(self, msg):
        """Run the snippet in this process (the forked child), sending "out" and "done" frames."""
        run_id = msg["id"]
        code = msg["code"]
        limit = int(msg["max_output"])
        capture = Capture(self.channel, run_id, limit)
        error = error_line = None
        error_types = []

        main = types.ModuleType("__main__")
        main.__dict__["__builtins__"] = builtins
        saved_main = sys.modules.get("__main__")
        linecache.cache[SNIPPET_FILENAME] = (
            len(code), None, code.splitlines(True), SNIPPET_FILENAME)
        sys.stdout = CapturedText(capture, "stdout")
        sys.stderr = CapturedText(capture, "stderr")
        sys.stdin = io.StringIO()  # input() raises EOFError; exit() may close it
        self.flusher.current = capture
        start = None
        try:
            self.reset()
            sys.modules["__main__"] = main  # pickling snippet classes works
            self.figures.prepare(code, msg.get("figures"))
            start = time.perf_counter()
            compiled = compile(code, SNIPPET_FILENAME, "exec", dont_inherit=True)
            exec(compiled, main.__dict__)
        except SystemExit as exc:
            if exc.code not in (None, 0):
                error, error_line = format_error(exc)
                error_types = exception_names(exc)
        except BaseException as exc:
            error, error_line = format_error(exc)
            error_types = exception_names(exc)
        finally:
            seconds = time.perf_counter() - start if start is not None else 0.0
            figures = []
            try:
                figures = self.figures.collect()
            except FigureError as exc:
                if error is None:
                    error = "FigureError: %s\n" % exc
                    error_types = ["FigureError"]
            except Exception as exc:  # a figure that fails to save
                if error is None:
                    error, error_line = format_error(exc)
                    error_types = exception_names(exc)
            # Break function <-> globals cycles now, while output is still
            # captured (a __del__ that prints belongs to this run).
            try:
                main.__dict__.clear()
            except BaseException:
                pass
            if saved_main is not None:
                sys.modules["__main__"] = saved_main
            self.flusher.current = None
            sys.stdout = sys.__stdout__
            sys.stderr = sys.__stderr__
            sys.stdin = sys.__stdin__

        capture.flush()
        error_truncated = False
        if error is not None:
            error, error_truncated = cap_text(error, limit)
        self.channel.send({
            "op": "done", "id": run_id, "error": error, "error_line": error_line,
            "error_types": error_types, "seconds": seconds,
            "truncated": {"stdout": capture.truncated["stdout"],
                          "stderr": capture.truncated["stderr"],
                          "error": error_truncated},
            "figures": figures,
        })

    def serve(self):
        self.channel.send(self.hello())
        while True:
            msg = self.backlog.pop(0) if self.backlog else self.channel.recv()
            if msg is None or msg.get("op") == "exit":
                return
            if msg.get("op") == "run":
                self.run(msg)


def main(argv):
    # argv: ["-c", json_config] (the bootstrap removed the path of this file)
    config = json.loads(argv[1]) if len(argv) > 1 else {}
    # Private copies of the pipes for the protocol; fds 0/1 are then pointed
    # elsewhere so snippets (and their children) cannot touch the protocol.
    fd_in = os.dup(0)
    fd_out = os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull, "r")
    channel = Channel(fd_in, fd_out)
    worker = Worker(channel, config.get("preload", ()))
    try:
        worker.serve()
    except (BrokenPipeError, OSError):
        pass  # parent went away
    os._exit(0)  # skip interpreter teardown (torch threads etc.)


main(sys.argv)
