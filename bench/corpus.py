"""Generate a synthetic corpus for benchmarks: N cards with Markdown, formulas and code spans.

The same cards can be written as deckbuild YAML, deckbuild Markdown, or ankcompiler's
Markdown (``question ::: answer`` blocks), so that tools are compared on the same notes.
"""

from __future__ import annotations

import random
from pathlib import Path

QUESTION = "Card {i}: what is $\\sum_{{k=1}}^{{{n}}} k^2$ and why does `torch.sum` agree?"
ANSWER = """**{total}**, by $\\frac{{n(n+1)(2n+1)}}{{6}}$ with $n = {n}$.

- the *closed form* avoids a loop over `range({n})`
- $\\mathbb{{E}}[X^2] = \\operatorname{{Var}}(X) + \\mathbb{{E}}[X]^2$ for any $X$
- compare with `x.pow(2).sum()` on a tensor of shape $({n},)$"""

YAML_CARD = """  - id: gen-{i}
    source: gen-{i}
    tags: [topic::bench::t{t}]
    q: |
      {question}
    a: |
{answer}
"""
MARKDOWN_CARD = """## {question}
id: gen-{i}
source: gen-{i}
tags: [topic::bench::t{t}]

{answer}

"""
ANKCOMPILER_CARD = """---

{question} ::: {answer}

---
[^uid]: {uid}
[^tag]: topic::bench::t{t}

"""
FORMS = ("yaml", "markdown", "ankcompiler")


def write_corpus(folder: Path, cards: int, per_file: int = 500, seed: int = 0, form: str = "yaml") -> list[Path]:
    """Write ``cards`` qa cards, ``per_file`` to a file (one deck each), under ``folder``.

    ``form`` is ``"yaml"`` or ``"markdown"`` (deckbuild's two source forms, identical notes)
    or ``"ankcompiler"`` (the same questions and answers for ankcompiler 0.6.0).
    """
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for start in range(0, cards, per_file):
        deck = f"Bench::Part {start // per_file:02d}"
        if form == "yaml":
            parts = [f"deck: {deck}\ntype: qa\ntags: [bench]\ncards:\n"]
        else:
            parts = [f"---\ndeck: {deck}\n{'type: qa' + chr(10) if form == 'markdown' else ''}tags: [bench]\n---\n\n"]
        for i in range(start, min(start + per_file, cards)):
            n = rng.randint(2, 500)
            question = QUESTION.format(i=i, n=n)
            answer = ANSWER.format(n=n, total=n * (n + 1) * (2 * n + 1) // 6)
            if form == "yaml":
                indented = "\n".join(f"      {line}" if line else "" for line in answer.splitlines())
                parts.append(YAML_CARD.format(i=i, t=i % 50, question=question, answer=indented))
            elif form == "markdown":
                parts.append(MARKDOWN_CARD.format(i=i, t=i % 50, question=question, answer=answer))
            else:
                parts.append(ANKCOMPILER_CARD.format(t=i % 50, question=question, answer=answer, uid=f"g{i:09d}"))
        suffix = ".yaml" if form == "yaml" else ".md"
        path = folder / f"part-{start // per_file:03d}{suffix}"
        path.write_text("".join(parts), encoding="utf-8")
        paths.append(path)
    return paths
