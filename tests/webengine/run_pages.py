"""Load HTML pages in Qt WebEngine (Chromium, as in Anki desktop) and run a measuring script in each.

Usage: run_pages.py JOBS_JSON. JOBS_JSON holds ``{"script": JS, "pages": [{"path": ..., "width": 360,
"height": 640}, ...]}``. ``script`` is the body of a JavaScript function run once the page and its
fonts have loaded; it returns a JSON-serializable value. Prints one JSON list, a result per page
(``{"error": ...}`` for a page that did not answer within 60 s).
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

START = """(function () {
  window.__dbResult = undefined;
  document.fonts.ready.then(function () {
    requestAnimationFrame(function () {
      try { window.__dbResult = JSON.stringify((function () { %s })()); }
      catch (e) { window.__dbResult = JSON.stringify({error: String(e && e.stack || e)}); }
    });
  });
  return true;
})()"""


def main() -> None:
    jobs = json.loads(open(sys.argv[1], encoding="utf-8").read())
    pages, script = jobs["pages"], jobs["script"]
    app = QApplication(["run_pages"])
    view = QWebEngineView()
    results: list = []
    state = {"index": -1, "polls": 0}

    def next_page() -> None:
        state["index"] += 1
        state["polls"] = 0
        if state["index"] >= len(pages):
            print(json.dumps(results))
            app.quit()
            return
        page = pages[state["index"]]
        view.resize(page.get("width", 360), page.get("height", 640))
        view.load(QUrl.fromLocalFile(os.path.abspath(page["path"])))

    def loaded(ok: bool) -> None:
        view.page().runJavaScript(START % script, lambda _: QTimer.singleShot(50, poll))

    def poll() -> None:
        state["polls"] += 1
        if state["polls"] > 600:  # 60 s
            results.append({"error": "timeout"})
            next_page()
            return
        view.page().runJavaScript("window.__dbResult", answered)

    def answered(value) -> None:
        if value is None:
            QTimer.singleShot(100, poll)
            return
        results.append(json.loads(value))
        next_page()

    view.loadFinished.connect(loaded)
    view.show()
    next_page()
    app.exec()


main()
