"""Stage 2: checks that need the whole corpus (one file at a time is ``load.py``'s job).

Errors: the same card id twice, and deck paths that differ only in case (Anki compares
deck names case-insensitively and would merge them), each naming both places. Warnings (errors under ``--strict``):
tags that differ only in case (Anki treats tags case-insensitively and merges them), two
cards asking the very same question in one deck, and a list that starts right under a
paragraph line: CommonMark lets a list interrupt a paragraph, Python-Markdown does not,
so the "list" would render as running text.
"""

from __future__ import annotations

import re
import unicodedata

from deckbuild.errors import Diagnostic, Severity
from deckbuild.model import Card, Text

_LIST_ITEM = re.compile(r"\s*([-*+]|\d+[.)])\s")
_FENCE = re.compile(r"\s*(`{3,}|~{3,})")


def validate(cards: list[Card]) -> list[Diagnostic]:
    """Return every cross-card problem in ``cards``, in source order."""
    problems: list[Diagnostic] = []
    first_by_id: dict[str, Card] = {}
    for card in cards:
        first = first_by_id.setdefault(card.id, card)
        if first is not card:
            problems.append(
                Diagnostic(card.location, Severity.ERROR, f"duplicate id '{card.id}' (first used at {first.location})")
            )

    problems += _decks_equal_in_anki(cards)
    spelling: dict[str, tuple[str, Card]] = {}
    for card in cards:
        for tag in card.tags:
            seen = spelling.setdefault(tag.lower(), (tag, card))
            if seen[0] != tag:
                problems.append(
                    Diagnostic(
                        card.location,
                        Severity.WARNING,
                        f"tag '{tag}' differs only in case from '{seen[0]}' (at {seen[1].location}); Anki merges them",
                    )
                )
                spelling[tag.lower()] = (tag, card)

    questions: dict[tuple[str, str], Card] = {}
    for card in cards:
        key = (card.deck, " ".join(card.q.value.split()).lower())
        first = questions.setdefault(key, card)
        if first is not card and card.kind is first.kind and card.code == first.code:
            problems.append(
                Diagnostic(card.location, Severity.WARNING, f"same question as card '{first.id}' ({first.location})")
            )
    for card in cards:
        for text in card.texts():
            problems += _list_without_blank_line(text)
    return problems


def _decks_equal_in_anki(cards: list[Card]) -> list[Diagnostic]:
    """Flag deck paths (or their parents) spelled two ways that Anki treats as one deck.

    Anki compares deck names case-insensitively (and NFC-normalises text), so ``ML::Key Facts``
    and ``ml::key facts`` would land in one deck with one of the two names.
    """
    problems: list[Diagnostic] = []
    first_card = {card.deck: card for card in reversed(cards)}
    seen: dict[str, tuple[str, Card]] = {}
    reported: set[tuple[str, str]] = set()
    for deck, card in sorted(first_card.items(), key=lambda item: item[1].location):
        parts = deck.split("::")
        for depth in range(1, len(parts) + 1):
            name = "::".join(parts[:depth])
            other, other_card = seen.setdefault(unicodedata.normalize("NFC", name).casefold(), (name, card))
            if other != name and (other, name) not in reported:
                reported.add((other, name))
                message = f"deck '{name}' differs only in case from deck '{other}' (at {other_card.location}); Anki treats them as one deck"
                problems.append(Diagnostic(card.location, Severity.ERROR, message))
                break
    return problems


#: A line that is not a list item, followed by one that is: the case _list_without_blank_line
#: looks at closely (most texts have none, and need no line-by-line walk).
_SUSPECT = re.compile(r"^(?![^\S\n]*(?:[-*+]|\d+[.)])[^\S\n])[^ \t\n].*\n[^\S\n]*(?:[-*+]|\d+[.)])\s", re.MULTILINE)


def _list_without_blank_line(text: Text) -> list[Diagnostic]:
    """Warn where a list item directly follows a paragraph line (outside fenced code)."""
    if not _SUSPECT.search(text.value):
        return []
    lines = text.value.split("\n")
    in_fence = False
    offset = 0
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and i and _LIST_ITEM.match(line):
            above = lines[i - 1]
            if above.strip() and not _LIST_ITEM.match(above) and not above.startswith((" ", "\t")):
                message = "this list follows a paragraph line without a blank line, so Python-Markdown renders it as text; add a blank line before it"
                return [Diagnostic(text.location_of(offset), Severity.WARNING, message)]
        offset += len(line) + 1
    return []
