"""What may run: the add-on's checked config, which gestures start a run, and
the user's trust in decks.

Nothing here imports aqt, so every rule is unit-tested without Anki (see
tests/test_addon_policy.py). Python 3.9 syntax (the oldest Python that the
supported Anki versions bundle).

The security model this module encodes (README, "The Anki add-on / Security"):
a card's HTML and JavaScript are written by whoever made the deck. They can
call ``pycmd`` with any message, click and focus any element of the card,
dispatch synthetic key events and plant timers that outlive their card
(Anki's ../shared/ANKI.md, "Security"). So no message from a card's web view
starts anything: only a control in the reviewer's bottom bar (a separate web
view that card scripts cannot reach), a Qt button, or a Qt shortcut (a real
key press) does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

DEFAULT_CONFIG: dict[str, Any] = {
    "python": "",
    "timeout_seconds": 30,
    "max_output_bytes": 100000,
    "ask_before_running": True,
    "offer_after_import": True,
}

MAX_TIMEOUT_SECONDS = 24 * 60 * 60  # one day: longer is a typo, not a snippet
MAX_OUTPUT_BYTES = 10_000_000  # 10 MB: more would stall the card's web view


@dataclass(frozen=True)
class Settings:
    """The add-on's config after checking.

    python: interpreter path or command ("" = look for one with torch on PATH);
    timeout_seconds: finite, in (0, 86400] seconds; max_output_bytes: int in
    [1, 10_000_000] bytes; ask_before_running: ask before running code from a
    deck the user has not trusted; offer_after_import: after a deckbuild
    package is imported, offer to clean up what the import left (notes removed
    from the sources, moved and emptied cards).
    """

    python: str
    timeout_seconds: float
    max_output_bytes: int
    ask_before_running: bool
    offer_after_import: bool = True


def check_config(config: Mapping[str, Any] | None) -> tuple[Settings, list[str]]:
    """Check an add-on config dict (as Anki's ``getConfig`` returns it; None
    means all defaults) and return (Settings, problems).

    Each value of the wrong type or out of range is replaced by its default,
    and problems gets one sentence naming the key, the bad value and the
    default used; an unknown key is named too. A JSON ``Infinity`` or ``NaN``
    timeout is out of range. Never raises.
    """
    if not isinstance(config, Mapping):
        config = {}
    problems: list[str] = []

    def fallback(key: str, why: str) -> Any:
        default = DEFAULT_CONFIG[key]
        problems.append(
            f'config "{key}": {why} (got {_shown(config[key])}); using the default {_shown(default)}.'
        )
        return default

    python = config.get("python", DEFAULT_CONFIG["python"])
    if not isinstance(python, str) or "\0" in python or "\n" in python:
        python = fallback("python", "must be a path or command, as one line of text")

    timeout = config.get("timeout_seconds", DEFAULT_CONFIG["timeout_seconds"])
    if not _is_number(timeout) or not (0 < timeout <= MAX_TIMEOUT_SECONDS):
        timeout = fallback(
            "timeout_seconds", f"must be a finite number of seconds above 0 and at most {MAX_TIMEOUT_SECONDS}"
        )

    cap = config.get("max_output_bytes", DEFAULT_CONFIG["max_output_bytes"])
    if not _is_number(cap) or cap != int(cap) or not (1 <= cap <= MAX_OUTPUT_BYTES):
        cap = fallback("max_output_bytes", f"must be a whole number of bytes from 1 to {MAX_OUTPUT_BYTES}")

    ask = config.get("ask_before_running", DEFAULT_CONFIG["ask_before_running"])
    if not isinstance(ask, bool):
        ask = fallback("ask_before_running", "must be true or false")

    offer = config.get("offer_after_import", DEFAULT_CONFIG["offer_after_import"])
    if not isinstance(offer, bool):
        offer = fallback("offer_after_import", "must be true or false")

    for key in sorted(set(config) - set(DEFAULT_CONFIG), key=str):
        problems.append(f'config "{key}": unknown setting, ignored.')
    settings = Settings(python.strip(), float(timeout), int(cap), ask, offer)
    return settings, problems


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _shown(value: Any) -> str:
    """A config value as the user wrote it in JSON (Infinity stays Infinity)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        return '"' + value.replace("\n", "\\n") + '"'
    if value is None:
        return "null"
    return repr(value)


# ---------------------------------------------------------------------------
# Gestures

RUN = "run"
SCRATCHPAD = "scratchpad"
MESSAGE_PREFIX = "deckbuild:"
BAR_MESSAGES = {"deckbuild:run": RUN, "deckbuild:scratchpad": SCRATCHPAD}


def action_for_message(message: str, from_bottom_bar: bool) -> str | None:
    """Map a web view bridge message to the action it may start.

    Returns RUN or SCRATCHPAD only for exactly "deckbuild:run" or
    "deckbuild:scratchpad" sent by the reviewer's bottom bar
    (from_bottom_bar=True: Anki's own web view, whose content the add-on
    writes). From any other web view (the card itself, the previewer, the
    editor) every message yields None: a card's script can send any message,
    so none proves a user gesture. Use is_ours() to know whether to swallow it.
    """
    if not from_bottom_bar:
        return None
    return BAR_MESSAGES.get(message)


def is_ours(message: str) -> bool:
    """True for any message with the "deckbuild:" prefix (handled, and unless
    action_for_message allows it, ignored)."""
    return message.startswith(MESSAGE_PREFIX)


# ---------------------------------------------------------------------------
# Trust

TRUST_CONFIG_KEY = "deckbuild_trusted_decks"  # in the collection's config


@dataclass(frozen=True)
class Origin:
    """Where a snippet comes from: its note type id, deck id (the card's home
    deck, not a filtered deck), and names for the user."""

    notetype_id: int
    deck_id: int
    deck_name: str
    note_id: int
    note_label: str

    @property
    def trust_key(self) -> str:
        """The key trust is remembered under: "notetype id:deck id"."""
        return f"{int(self.notetype_id)}:{int(self.deck_id)}"


def trusted_keys(stored: Any) -> frozenset[str]:
    """Read the trusted keys from the stored config value (a list of strings);
    anything else (missing, damaged) trusts nothing."""
    if not isinstance(stored, (list, tuple)):
        return frozenset()
    return frozenset(k for k in stored if isinstance(k, str))


def with_trust(stored: Any, origin: Origin) -> list[str]:
    """Return the value to store after the user trusted origin's note type in
    origin's deck (sorted, no duplicates)."""
    return sorted(trusted_keys(stored) | {origin.trust_key})


def must_ask(settings: Settings, trusted: Iterable[str], origin: Origin) -> bool:
    """True if the user must confirm before origin's code runs: asking is on
    and this note type in this deck was not trusted before. Trust in one deck
    says nothing about another."""
    return settings.ask_before_running and origin.trust_key not in set(trusted)
