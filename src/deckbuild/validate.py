"""Stage 2: checks that need the whole corpus (one file at a time is ``load.py``'s job).

Errors: the same card id twice (naming both places). Warnings (errors under ``--strict``):
tags that differ only in case (Anki treats tags case-insensitively and merges them), and
two cards asking the very same question in one deck.
"""

from __future__ import annotations

from deckbuild.errors import Diagnostic, Severity
from deckbuild.model import Card


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
    return problems
