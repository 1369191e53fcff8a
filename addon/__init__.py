"""deckbuild's Anki add-on: runs a code card's snippet on the user's gesture, and a scratchpad;
after a deckbuild package is imported, keeps the tags added in Anki and offers to clean up.

Import-time work is only wiring, and only inside a running Anki: tests import
the modules of this package without starting anything.
"""

import sys

_aqt = sys.modules.get("aqt")
if _aqt is not None and getattr(_aqt, "mw", None) is not None:
    from . import gui

    gui.setup()
