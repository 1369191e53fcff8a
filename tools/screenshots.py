"""Screenshots of a fixed set of corpus cards, for review and for the README (not run by the tests).

    .venv/bin/python tools/screenshots.py [--out screenshots]

Builds the shipped corpus, then renders each card's answer side (which shows the question too):
- in real headless Anki desktop (aqt, offscreen), day and night: ``anki-{day,night}-NAME.png``;
- in Qt WebEngine at 360 CSS px with AnkiDroid's body classes (``card mobile android``, plus
  ``night_mode``), day and night: ``phone-{day,night}-NAME.png``.
The output folder is ignored by git. Look at the pictures; copy the ones the README shows into
docs/images/.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: name -> (note Id, card ordinal from 1): display math, matrices, code with output, an exception,
#: a table, a follow-up.
CARDS = {
    "display-math": ("tf-bayes-theorem", 1),
    "matrix": ("tf-eigenvalues-and-rank", 1),
    "code-output": ("code-softmax-temperature", 1),
    "exception": ("code-broadcasting-mismatch", 1),
    "table": ("qz-cross-entropy-confident-wrong", 1),
    "follow-up": ("iv-joint-conditional-marginal", 2),
}


def build_corpus(out: Path) -> Path:
    """Build cards/ into ``out/dist`` (cache in ``out/cache``); return the all-decks package."""
    subprocess.run(
        [sys.executable, "-m", "deckbuild", "build", str(REPO / "cards"), "--out", str(out / "dist"), "--cache-dir", str(out / "cache"), "--quiet"],
        check=True,
    )
    return max((out / "dist").glob("*.apkg"), key=lambda p: p.stat().st_size)


def phone_pages(package: Path, out: Path) -> list[tuple[Path, Path]]:
    """Import ``package`` into a scratch collection; write one page per card and mode; return (page, png)."""
    from anki.collection import Collection, ImportAnkiPackageOptions, ImportAnkiPackageRequest

    folder = Path(tempfile.mkdtemp(prefix="deckbuild-shots-"))
    col = Collection(str(folder / "collection.anki2"))
    try:
        col.import_anki_package(ImportAnkiPackageRequest(package_path=str(package), options=ImportAnkiPackageOptions()))
        jobs = []
        for name, (note_id, ordinal) in CARDS.items():
            (cid,) = col.find_cards(f'"Id:{note_id}" card:{ordinal}')
            card = col.get_card(cid)
            css, body = card.note_type()["css"], card.render_output().answer_text
            for mode, classes in (("day", "card mobile android"), ("night", "card mobile android nightMode night_mode")):
                page = Path(col.media.dir()) / f"shot-{mode}-{name}.html"
                page.write_text(
                    '<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
                    f"<style>html {{ scrollbar-width: none; }} body {{ margin: 0; }}\n{css}</style></head>"
                    f'<body class="{html.escape(classes)}">{body}</body></html>',
                    encoding="utf-8",
                )
                jobs.append((page, out / f"phone-{mode}-{name}.png"))
    finally:
        col.close()
    return jobs


PHONE = r"""
import json, os, sys
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
from PyQt6.QtCore import QTimer, QUrl
from PyQt6.QtWebEngineWidgets import QWebEngineView
from PyQt6.QtWidgets import QApplication
jobs = json.loads(sys.argv[1])
app = QApplication(["shots"])
view = QWebEngineView()
view.resize(360, 640)
view.show()
def run(i=0):
    if i == len(jobs):
        app.quit(); return
    page, png = jobs[i]
    def loaded(ok):
        view.loadFinished.disconnect()
        view.page().runJavaScript("document.fonts.ready.then(()=>0); document.documentElement.scrollHeight",
            lambda h: (view.resize(360, min(int(h or 640), 2400)), QTimer.singleShot(700, lambda: (view.grab().save(png), run(i + 1)))))
    view.loadFinished.connect(loaded)
    view.load(QUrl.fromLocalFile(page))
run()
QTimer.singleShot(120000, app.quit)
app.exec()
"""

DESKTOP = r"""
import json, os, sys, time
from pathlib import Path
args = json.loads(sys.argv[1])
base = Path(args["base"])
from aqt.profiles import ProfileManager
from aqt.theme import Theme
pm = ProfileManager(ProfileManager.get_created_base_folder(str(base)))
pm.setupMeta(); pm.setLang("en_US"); pm.profiles()
pm.load("User 1")
pm.set_theme(Theme.DARK if args["night"] else Theme.LIGHT)
pm.save()
import aqt
from anki.collection import ImportAnkiPackageOptions, ImportAnkiPackageRequest
from aqt import gui_hooks
from aqt.qt import QTimer
def opened():
    QTimer.singleShot(1500, start)
def start():
    try:
        review()
    except Exception:
        import traceback; traceback.print_exc(); os._exit(4)
def review():
    mw = aqt.mw
    mw.resize(1000, 860)
    mw.col.import_anki_package(ImportAnkiPackageRequest(package_path=args["apkg"], options=ImportAnkiPackageOptions()))
    cards = [(name, mw.col.find_cards(f'"Id:{note}" card:{ordinal}')[0]) for name, (note, ordinal) in args["cards"].items()]
    mw.col.decks.select(mw.col.get_card(cards[0][1]).did)
    mw.moveToState("review")
    def show(i=0):
        if i == len(cards):
            QTimer.singleShot(0, mw.unloadProfileAndExit); return
        name, cid = cards[i]
        reviewer = mw.reviewer
        reviewer.card = mw.col.get_card(cid)
        reviewer.card.start_timer()
        reviewer._showQuestion()
        def answer():
            reviewer._showAnswer()
            QTimer.singleShot(2000, lambda: (mw.grab().save(args["png"].format(name=name)), show(i + 1)))
        QTimer.singleShot(1500, answer)
    QTimer.singleShot(3000, show)
gui_hooks.profile_did_open.append(opened)
QTimer.singleShot(240000, lambda: os._exit(3))
aqt._run(argv=["anki", "-b", str(base), "-p", "User 1"])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "screenshots")
    out = parser.parse_args().out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    package = build_corpus(out)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QTWEBENGINE_DISABLE_SANDBOX="1", QTWEBENGINE_CHROMIUM_FLAGS="--disable-gpu --no-sandbox")
    jobs = [(str(page), str(png)) for page, png in phone_pages(package, out)]
    subprocess.run([sys.executable, "-c", PHONE, json.dumps(jobs)], env=env, check=True, timeout=300)
    for mode in ("day", "night"):
        base = Path(tempfile.mkdtemp(prefix="deckbuild-anki-"))
        spec = {"base": str(base), "apkg": str(package), "night": mode == "night", "cards": CARDS, "png": str(out / f"anki-{mode}-{{name}}.png")}
        env_anki = dict(env, ANKI_BASE=str(base), ANKI_SINGLE_INSTANCE_KEY=f"deckbuild-shots-{mode}-{os.getpid()}")
        subprocess.run([sys.executable, "-c", DESKTOP, json.dumps(spec)], env=env_anki, timeout=300, stdout=subprocess.DEVNULL)
    print("\n".join(sorted(str(p.relative_to(out)) for p in out.glob("*.png"))))


if __name__ == "__main__":
    main()
