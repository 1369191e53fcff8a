"""Load a card's HTML in Qt WebEngine (Chromium, as in Anki desktop) and report what the page did.

Usage: render_card.py HTML_FILE [--no-mathml]. Prints one JSON object: whether the page
detected MathML layout, how many <math> elements remain, and the TeX spans made for MathJax.
With --no-mathml the page is told MathML layout is missing, as on Chromium 108.
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
  detected: window.deckbuildMathML,
  math: document.querySelectorAll("math:not(mjx-container math)").length,  // not MathJax's own copy
  tex: Array.from(document.querySelectorAll(".db-tex")).map(e => e.textContent),
  typeset: document.querySelectorAll("mjx-container").length,
  links: Array.from(document.querySelectorAll("[href]")).map(e => e.getAttribute("href")),
  text: document.body.textContent
})"""
# A page that loads MathJax (as Anki's reviewer does) is typeset before the report, as Anki
# typesets each card it shows.
TYPESET = """window.__typeset = "running";
(window.MathJax && window.MathJax.startup
  ? window.MathJax.startup.promise.then(() => window.MathJax.typesetPromise())
  : Promise.resolve()
).then(() => { window.__typeset = "done"; }, e => { window.__typeset = "failed: " + e; });"""


def main() -> None:
    path = sys.argv[1]
    app = QApplication(["render_card"])
    view = QWebEngineView()
    view.resize(800, 600)

    def loaded(ok: bool) -> None:
        QTimer.singleShot(300, lambda: view.page().runJavaScript(TYPESET, lambda _: poll()))

    def poll() -> None:
        view.page().runJavaScript("window.__typeset", lambda state: (
            QTimer.singleShot(100, poll) if state == "running"
            else view.page().runJavaScript(REPORT, done) if state == "done"
            else done(json.dumps({"error": state}))
        ))

    def done(result) -> None:
        print(result)
        app.quit()

    view.loadFinished.connect(loaded)
    view.load(QUrl.fromLocalFile(os.path.abspath(path)))
    QTimer.singleShot(30000, lambda: (print(json.dumps({"error": "timeout"})), app.quit()))
    app.exec()


main()
