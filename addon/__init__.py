"""deckbuild's Anki add-on: a Run button and a scratchpad for code cards.

Import-time work is only wiring, and only inside a running Anki: tests import
the modules of this package without starting anything.
"""

import sys

_aqt = sys.modules.get("aqt")
if _aqt is not None and getattr(_aqt, "mw", None) is not None:
    from . import gui

    gui.setup()
