"""Generate a synthetic corpus for benchmarks: N cards with Markdown, formulas and code spans."""

from __future__ import annotations

import random
from pathlib import Path

CARD = """  - id: gen-{i}
    source: gen-{i}
    tags: [bench, topic::bench::t{t}]
    q: |
      Card {i}: what is $\\sum_{{k=1}}^{{{n}}} k^2$ and why does `torch.sum` agree?
    a: |
      **{total}**, by $\\frac{{n(n+1)(2n+1)}}{{6}}$ with $n = {n}$.

      - the *closed form* avoids a loop over `range({n})`
      - $\\mathbb{{E}}[X^2] = \\operatorname{{Var}}(X) + \\mathbb{{E}}[X]^2$ for any $X$
      - compare with `x.pow(2).sum()` on a tensor of shape $({n},)$
"""


def write_corpus(folder: Path, cards: int, per_file: int = 500, seed: int = 0) -> list[Path]:
    """Write ``cards`` qa cards into YAML files of ``per_file`` cards under ``folder``."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for start in range(0, cards, per_file):
        lines = [f"deck: Bench::Part {start // per_file:02d}\ntype: qa\ncards:\n"]
        for i in range(start, min(start + per_file, cards)):
            n = rng.randint(2, 500)
            lines.append(CARD.format(i=i, t=i % 50, n=n, total=n * (n + 1) * (2 * n + 1) // 6))
        path = folder / f"part-{start // per_file:03d}.yaml"
        path.write_text("".join(lines), encoding="utf-8")
        paths.append(path)
    return paths
