"""How novel a path is against the other paths of its question: the share of its distinct word
n-grams that no other path of the question uses (1.0: nothing in common with them; 0.0: every
phrase of it appears in another path). Recorded on every sample (`Sample.novelty`); the `novel`
gate (gates/diversity.py) prefers novel paths among those that agree with the vote.

A leaf module: stages/generate.py and the gates import it.
"""

from __future__ import annotations

import re

WORD = re.compile(r"\w+|[^\w\s]")
N = 2  # word bigrams: long enough to tell "3 * 4" from "4 * 3", short enough for one-line rationales


def ngrams(text: str, n: int = N) -> set[tuple[str, ...]]:
    words = WORD.findall(text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def novelty(texts: list[str], n: int = N) -> list[float]:
    """Each text's share of distinct n-grams found in none of the other texts (one question's paths)."""
    grams = [ngrams(t, n) for t in texts]
    out = []
    for i, mine in enumerate(grams):
        if not mine:
            out.append(0.0)
            continue
        others = set().union(*(g for j, g in enumerate(grams) if j != i))
        out.append(round(len(mine - others) / len(mine), 4))
    return out
