"""``deckbuild preview``: every card as Anki shows it, in the browser, live while writing.

A thin server over the build, the way mkdocs' ``serve`` is over its ``build``: it renders
nothing itself. Each (re)build is :func:`deckbuild.build.build` into a temporary output
folder with the project's build cache, so a save re-renders only the cards that changed
and rewrites only the packages they are in. Those packages are imported with Anki's own
importer into a temporary collection, and every card's sides are Anki's own
``card.question()`` and ``card.answer()`` (its template engine, the note type CSS, the
media the import put in the collection's media folder). The page shows them in iframes,
with the body classes Anki desktop and AnkiDroid set.

One file watcher (``watchfiles``) over the sources and the config; one worker thread does
every build and every collection call (Anki's collection wants one thread at a time).
A build that fails keeps the last good cards and shows its diagnostics instead.

Code cards show the output the build cache holds from the last ``deckbuild build``; no
snippet runs unless the preview was started with ``--run``.

Needs the ``preview`` extra (``pip install 'deckbuild[preview]'``: anki, starlette,
uvicorn, watchfiles); :func:`missing_extra` names it when it is not installed.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager, contextmanager
import json
import signal
import socket
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from deckbuild import history
from deckbuild.build import BuildOptions, build
from deckbuild.latex import close_engines
from deckbuild.cache import Cache
from deckbuild.errors import BuildFailed, DeckbuildError, Diagnostic

EXTRA = "preview"
_MODULES = ("anki", "starlette", "uvicorn", "watchfiles")
PAGE = resources.files("deckbuild").joinpath("templates/preview.html")


def missing_extra() -> str | None:
    """Return the one-line error for a missing ``preview`` extra, or ``None`` if it is installed."""
    import importlib

    missing = []
    for name in _MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if not missing:
        return None
    return f"preview needs the '{EXTRA}' extra ({', '.join(missing)} missing): pip install 'deckbuild[{EXTRA}]'"


@dataclass(frozen=True)
class PreviewCard:
    """One Anki card as the preview shows it.

    ``id`` is deckbuild's card id (the note's ``Id`` field), ``ord`` the card's template
    index (0: the card, 1: a probe's follow-up), ``question``/``answer`` the sides' HTML from
    Anki's template engine (``card.render_output()``), without the note type CSS: Anki's
    ``card.question()`` is ``<style>{css}</style>`` then this, and the CSS (the same for every
    card of a note type) is sent once per note type (:attr:`PreviewState.css`);
    ``not_run`` is true for a code card whose output the cache did not hold.
    """

    id: str
    deck: str
    notetype: str
    template: str
    ord: int
    tags: tuple[str, ...]
    question: str
    answer: str
    not_run: bool = False


@dataclass(frozen=True)
class PreviewState:
    """What the page shows: ``version`` grows by one with every finished rebuild; ``cards``
    are the last good build's; ``diagnostics`` the last rebuild's errors and warnings as
    ``path:line:col: severity: message`` lines (empty: it built cleanly)."""

    version: int = 0
    cards: tuple[PreviewCard, ...] = ()
    diagnostics: tuple[str, ...] = ()
    seconds: float = 0.0
    css: tuple[tuple[str, str], ...] = ()  # (note type name, its CSS)

    def to_json(self) -> str:
        """Return the state as the JSON the page reads from ``/api/state``."""
        return json.dumps({
            "version": self.version,
            "seconds": round(self.seconds, 3),
            "diagnostics": list(self.diagnostics),
            "css": dict(self.css),
            "cards": [card.__dict__ | {"tags": list(card.tags)} for card in self.cards],
        })


@dataclass
class Previewer:
    """Builds ``options.sources`` into a temporary folder and collection; keeps the state.

    ``options`` is the build's options (``out_dir`` is replaced by a temporary folder;
    ``cache_dir`` should be the project's, so unchanged cards come from the build cache).
    Call :meth:`rebuild` from one thread only, and :meth:`close` at the end.
    """

    options: BuildOptions
    state: PreviewState = field(default_factory=PreviewState)

    def __post_init__(self) -> None:
        from anki.collection import Collection

        self._tmp = tempfile.TemporaryDirectory(prefix="deckbuild-preview-")
        root = Path(self._tmp.name)
        (root / "collection").mkdir()
        self.options = replace(self.options, out_dir=root / "dist", progress=False)
        self.collection = Collection(str(root / "collection" / "collection.anki2"))
        self.media_dir = Path(self.collection.media.dir()).resolve()
        self._rendered: dict = {}  # Anki card id -> ((note mod, note type mod), PreviewCard)

    def rebuild(self) -> PreviewState:
        """Build, import what changed and return the new state (also kept in ``state``).

        A failed build keeps the previous cards and sets ``diagnostics``; an error that is
        not deckbuild's (an unreadable folder) becomes a diagnostic too, never a crash.
        """
        import time

        started = time.perf_counter()
        try:
            result = build(self.options)
        except BuildFailed as failed:
            return self._set(self.state.cards, failed.diagnostics, started)
        except DeckbuildError as error:
            return self._set(self.state.cards, [error.diagnostic()], started)
        out = self.options.out_dir
        for name in result.report.packages:
            self._import(out / name)
        cards = self.state.cards if result.report.up_to_date else self._cards()
        return self._set(cards, result.diagnostics, started)

    def _set(self, cards: tuple[PreviewCard, ...], diagnostics: list[Diagnostic], started: float) -> PreviewState:
        import time

        css = tuple((nt["name"], nt["css"]) for nt in self.collection.models.all())
        self.state = PreviewState(self.state.version + 1, cards, tuple(str(d) for d in diagnostics), time.perf_counter() - started, css)
        return self.state

    def _import(self, path: Path) -> None:
        from anki.collection import ImportAnkiPackageOptions, ImportAnkiPackageRequest
        from anki.import_export_pb2 import ImportAnkiPackageUpdateCondition as Update

        options = ImportAnkiPackageOptions(
            update_notes=Update.IMPORT_ANKI_PACKAGE_UPDATE_CONDITION_ALWAYS,
            update_notetypes=Update.IMPORT_ANKI_PACKAGE_UPDATE_CONDITION_ALWAYS,
        )
        self.collection.import_anki_package(ImportAnkiPackageRequest(package_path=str(path), options=options))

    def _cards(self) -> tuple[PreviewCard, ...]:
        """Every card of the last build, in source order, as Anki renders it.

        A card is rendered again only when its note or note type changed since the last
        rebuild (their modification times in the collection), so a save re-renders the
        cards it changed, not the corpus.
        """
        cache = Cache(self.options.cache_dir) if self.options.cache_dir is not None else None
        try:
            notes = history.read(cache, self.options.out_dir).notes
        finally:
            if cache is not None:
                cache.close()
        col = self.collection
        rows = col.db.all(
            "select c.id, c.ord, n.mod, n.mid, n.flds from cards c join notes n on c.nid = n.id order by c.ord"
        )
        by_id: dict[str, list[tuple[int, int, int, int]]] = {}
        for cid, ord_, mod, mid, fields in rows:
            by_id.setdefault(fields.split("\x1f", 1)[0], []).append((cid, ord_, mod, mid))  # field 0 is Id
        notetype_mod = {mid: col.models.get(mid)["mod"] for mid in {row[3] for row in rows}}
        rendered: dict[int, tuple[tuple[int, int], PreviewCard]] = {}
        for card_id, entry in notes.items():
            count, deck = entry.cards, entry.deck
            for cid, ord_, mod, mid in by_id.get(card_id, [])[:count]:
                stamp = (mod, notetype_mod[mid])
                before = self._rendered.get(cid)
                if before is not None and before[0] == stamp and before[1].deck == deck:
                    rendered[cid] = before
                    continue
                card = col.get_card(cid)
                note = card.note()
                output = card.render_output()
                rendered[cid] = (stamp, PreviewCard(
                    id=card_id,
                    deck=deck,
                    notetype=note.note_type()["name"],
                    template=card.template()["name"],
                    ord=ord_,
                    tags=tuple(note.tags),
                    question=output.question_text,
                    answer=output.answer_text,
                    not_run=entry.kind == "code" and not note["Output"].strip(),
                ))
        self._rendered = rendered
        return tuple(card for _, card in rendered.values())

    def media_file(self, name: str) -> Path | None:
        """Return the file ``name`` in the collection's media folder, or ``None``.

        Anki's media folder is flat: a name with a folder part, ``..`` or an absolute path,
        or one that resolves (through a link) outside the folder, gives ``None``.
        """
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            return None
        path = (self.media_dir / name).resolve()
        return path if path.parent == self.media_dir and path.is_file() else None

    def close(self) -> None:
        """Close the collection, the math engine this thread used, and delete the temporary folder."""
        self.collection.close()
        close_engines()
        self._tmp.cleanup()


def bind(host: str, port: int) -> socket.socket:
    """Return a listening TCP socket on ``host``:``port`` (0: any free port).

    Raises :class:`DeckbuildError` with one clear line when the port is in use or the
    address cannot be used.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DeckbuildError(f"cannot serve on host '{host}': {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise DeckbuildError(f"port {port} on {host} is in use; choose another with --port") from None
        raise DeckbuildError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def app(previewer: Previewer, watch: tuple[Path, ...], executor: ThreadPoolExecutor, closing: threading.Event):
    """Return the Starlette app: the page, ``/api/state``, ``/events`` (server-sent events:
    one ``data: <version>`` per finished rebuild) and ``/media/<name>`` (the build's media only).

    ``watch`` are the files and folders whose changes trigger a rebuild; every build runs on
    ``executor`` (one thread). ``closing`` set (on Ctrl-C) ends the event streams within
    half a second, so the server can stop: uvicorn waits for open responses first.
    """
    import watchfiles
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response, StreamingResponse
    from starlette.routing import Route

    changed = asyncio.Condition()
    stop = asyncio.Event()

    async def rebuild() -> None:
        await asyncio.get_running_loop().run_in_executor(executor, previewer.rebuild)
        async with changed:
            changed.notify_all()

    async def watcher() -> None:
        paths = [p for p in watch if p.exists()]
        async for _ in watchfiles.awatch(*paths, stop_event=stop, debounce=400, step=30, rust_timeout=200):
            await rebuild()

    @asynccontextmanager
    async def lifespan(_):
        task = asyncio.create_task(watcher())
        try:
            yield
        finally:
            stop.set()
            async with changed:
                changed.notify_all()
            task.cancel()

    async def page(_request):
        return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-store"})

    async def state(_request):
        return Response(previewer.state.to_json(), media_type="application/json", headers={"Cache-Control": "no-store"})

    async def events(_request):
        async def stream():
            seen, idle = -1, 0
            while not (stop.is_set() or closing.is_set()):
                if previewer.state.version != seen:
                    seen, idle = previewer.state.version, 0
                    yield f"data: {seen}\n\n"
                async with changed:
                    try:
                        await asyncio.wait_for(changed.wait(), 0.5)
                    except asyncio.TimeoutError:
                        idle += 1
                if idle >= 30:  # a comment every 15 s keeps proxies and browsers from timing out
                    idle = 0
                    yield ": keep-alive\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def media(request):
        path = previewer.media_file(request.path_params["name"])
        if path is None:
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(path)

    routes = [
        Route("/", page),
        Route("/api/state", state),
        Route("/events", events),
        Route("/media/{name:path}", media),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def serve(options: BuildOptions, watch: tuple[Path, ...], host: str = "127.0.0.1", port: int = 8000, out=sys.stdout) -> None:
    """Build once, then serve the preview on ``host``:``port`` until Ctrl-C (SIGINT) or SIGTERM.

    Raises :class:`DeckbuildError` when the port is in use (before anything is built).
    A host other than 127.0.0.1/localhost/::1 gets a warning on stderr: the page shows
    every card to anyone who can reach it.
    """
    import time

    import uvicorn

    sock = bind(host, port)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"deckbuild preview: warning: serving on {host}: anyone who can reach this address sees every card", file=sys.stderr)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deckbuild-preview")
    started = time.perf_counter()
    previewer = executor.submit(Previewer, options).result()
    try:
        first = executor.submit(previewer.rebuild).result()
        actual = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        print(f"deckbuild preview: {len(first.cards)} cards in {time.perf_counter() - started:.1f} s; "
              f"serving http://{shown}:{actual}/ (Ctrl-C stops)", file=out, flush=True)
        for line in first.diagnostics:
            print(line, file=sys.stderr)
        closing = threading.Event()

        class Server(uvicorn.Server):
            def handle_exit(self, sig, frame) -> None:  # Ctrl-C, SIGTERM
                closing.set()
                super().handle_exit(sig, frame)

            @contextmanager
            def capture_signals(self):  # uvicorn's raises the signal again after stopping: a traceback
                handled = (signal.SIGINT, signal.SIGTERM)
                before = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
                try:
                    yield
                finally:
                    for sig, handler in before.items():
                        signal.signal(sig, handler)

        config = uvicorn.Config(app(previewer, watch, executor, closing), log_level="warning", timeout_graceful_shutdown=2, lifespan="on")
        Server(config).run(sockets=[sock])
    finally:
        sock.close()
        executor.submit(previewer.close).result()
        executor.shutdown()
    print("deckbuild preview: stopped", file=out, flush=True)

