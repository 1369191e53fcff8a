"""Load card pages in Qt WebEngine (Chromium, as in Anki desktop) at a width; report their images.

Usage: figure_card.py WIDTH PAGE.html [PAGE.html ...] [--shots DIR]. For each page prints one
JSON line: the viewport width and, per <img>, its class, whether it is shown (display not
none), whether it loaded (naturalWidth > 0) and its rendered width in CSS px. With --shots a
screenshot of each page is saved in DIR under the page's name with .png.
"""

import json
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
os.environ.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", "--disable-gpu --no-sandbox")

from PyQt6.QtCore import QTimer, QUrl  # noqa: E402
from PyQt6.QtWebEngineWidgets import QWebEngineView  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402

REPORT = """JSON.stringify({
  viewport: document.documentElement.clientWidth,
  height: document.documentElement.scrollHeight,
  images: Array.from(document.images).map(i => ({
    cls: i.className, src: i.getAttribute("src"), complete: i.complete,
    shown: getComputedStyle(i).display !== "none", loaded: i.naturalWidth > 0,
    width: i.getBoundingClientRect().width
  }))
})"""


def main() -> None:
    args = sys.argv[1:]
    shots = None
    if "--shots" in args:
        at = args.index("--shots")
        shots = args[at + 1]
        del args[at : at + 2]
    width, pages = int(args[0]), args[1:]
    app = QApplication(["figure_card"])
    view = QWebEngineView()
    view.resize(width, 900)
    view.show()
    queue = list(pages)

    def load_next() -> None:
        if not queue:
            app.quit()
            return
        view.load(QUrl.fromLocalFile(os.path.abspath(queue[0])))

    def loaded(ok: bool) -> None:
        QTimer.singleShot(1200, lambda: view.page().runJavaScript(REPORT, reported))

    def reported(result) -> None:
        page = queue.pop(0)
        print(result, flush=True)
        if shots:
            height = min(json.loads(result)["height"], 2400)
            view.resize(width, height)
            QTimer.singleShot(600, lambda: (view.grab().save(os.path.join(shots, os.path.basename(page)[:-5] + ".png")), view.resize(width, 900), load_next()))
        else:
            load_next()

    view.loadFinished.connect(loaded)
    QTimer.singleShot(90000, lambda: (print(json.dumps({"error": "timeout"})), app.quit()))
    load_next()
    app.exec()


main()
