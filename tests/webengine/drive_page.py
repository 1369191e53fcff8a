"""Open a URL in Qt WebEngine (Chromium, as in Anki desktop) and evaluate JavaScript on request.

Usage: drive_page.py URL [WIDTH HEIGHT]. Prints ``{"ready": true}`` once the page loaded,
then reads one JavaScript expression per line on stdin (a JSON string) and prints one line
``{"result": value}`` per expression, in order. End of stdin quits. Optional: a line
``{"screenshot": "file.png"}`` saves what the view shows.
"""

import json
import os
import queue
import sys
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
os.environ.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", "--disable-gpu --no-sandbox")

from PyQt6.QtCore import QTimer, QUrl  # noqa: E402
from PyQt6.QtWebEngineWidgets import QWebEngineView  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402


def main() -> None:
    url = sys.argv[1]
    width, height = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (1200, 800)
    app = QApplication(["drive_page"])
    view = QWebEngineView()
    view.resize(width, height)
    view.show()
    requests: queue.Queue = queue.Queue()
    busy = [False]

    def reader() -> None:
        for line in sys.stdin:
            requests.put(json.loads(line))
        requests.put(None)

    def reply(value) -> None:
        print(json.dumps({"result": value}), flush=True)
        busy[0] = False

    def poll() -> None:
        if busy[0] or requests.empty():
            return
        request = requests.get()
        if request is None:
            app.quit()
        elif isinstance(request, dict):
            view.grab().save(request["screenshot"])
            print(json.dumps({"result": True}), flush=True)
        else:
            busy[0] = True
            view.page().runJavaScript(request, reply)

    def loaded(ok: bool) -> None:
        if timer.isActive():
            return
        print(json.dumps({"ready": ok}), flush=True)
        threading.Thread(target=reader, daemon=True).start()
        timer.start(20)

    timer = QTimer()
    timer.timeout.connect(poll)
    view.loadFinished.connect(loaded)
    view.load(QUrl(url))
    app.exec()


main()
