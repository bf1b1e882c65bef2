"""Screen questions from an untrusted source (the model wrote them) before they reach a round's pool.

Each candidate gets one verdict, checked in this order:

    malformed       not a question of the task's language: the task's own `solve` cannot read it, or
                    (a task without one) empty, too short or too long, no "?", or an answer written in
    leak            contains a held-out or anchor question's text, or is a near duplicate of one (a
                    trivial rephrase: case, punctuation, a word or a number changed)
    duplicate       the same text (case, spacing and punctuation aside) as a question seen before
    near_duplicate  shares at least `near` of its word pairs with a question seen before
    kept            (written.py marks one beyond the `count` wanted "surplus")

`clusters` groups a batch of candidates into near-duplicate clusters by the same measure (the
proposer's repetition penalty). Questions are data: nothing here executes them. Near duplicates are
measured by word-bigram containment, |pairs(a) & pairs(b)| / min(|pairs(a)|, |pairs(b)|), found
through an inverted index.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass

from selfimprove.tasks.base import solver_of

MIN_CHARS, MAX_CHARS = 12, 2000
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def key(text: str) -> str:
    """What two questions share when they differ only in case, spacing and punctuation."""
    return " ".join(words(text))


def pairs(text: str) -> set[tuple[str, str]]:
    w = words(text)
    return set(zip(w, w[1:])) or {(x, "") for x in w}


def well_formed(task, question: str) -> bool:
    """A question the task can read: its own `solve` accepts it, else a plain-text sanity check."""
    solver = solver_of(task)
    if solver is not None:
        return solver.solve(question) is not None
    text = question.strip()
    return (MIN_CHARS <= len(text) <= MAX_CHARS and "?" in text
            and not re.search(r"(?im)^\s*(a|answer)\s*:|the answer is", text))


class NearIndex:
    """Questions indexed by their word pairs, to find the one a new question overlaps most."""

    def __init__(self, near: float):
        self.near = near
        self.keys: dict[str, str] = {}  # key(text) -> id
        self.sizes: dict[str, int] = {}
        self.index: dict[tuple[str, str], list[str]] = defaultdict(list)

    def add(self, id_: str, text: str) -> None:
        self.keys.setdefault(key(text), id_)
        p = pairs(text)
        self.sizes[id_] = len(p)
        for pair in p:
            self.index[pair].append(id_)

    def exact(self, text: str) -> str | None:
        return self.keys.get(key(text))

    def closest(self, text: str) -> tuple[str | None, float]:
        """The indexed question sharing the largest share of word pairs with `text`, and that share."""
        p = pairs(text)
        shared = Counter(id_ for pair in p for id_ in self.index.get(pair, ()))
        best, score = None, 0.0
        for id_, n in shared.items():
            s = n / max(1, min(len(p), self.sizes[id_]))
            if s > score:
                best, score = id_, s
        return best, score


@dataclass
class Guard:
    """What candidates are screened against: protected questions (held-out, anchor) and those seen."""

    protected: NearIndex
    seen: NearIndex
    protected_keys: dict[str, str]  # key(text) -> id: a candidate that contains one leaks it

    @classmethod
    def of(cls, protected: list[tuple[str, str]], seen: list[tuple[str, str]], near: float,
           seen_near: float | None = None) -> "Guard":
        """`near` for leaks; `seen_near` (default `near`) for near duplicates of questions seen."""
        guard = cls(NearIndex(near), NearIndex(near if seen_near is None else seen_near), {})
        for id_, text in protected:
            guard.protected.add(id_, text)
            guard.protected_keys[key(text)] = id_
        for id_, text in seen:
            guard.seen.add(id_, text)
        return guard

    def verdict(self, task, text: str) -> tuple[str, str | None]:
        """(verdict, the question it concerns) for one candidate; the caller adds a kept one to `seen`."""
        if not well_formed(task, text):
            return "malformed", None
        return self.overlap(text)

    def overlap(self, text: str) -> tuple[str, str | None]:
        """`verdict` for a candidate known to be well formed (a question built from a program that ran)."""
        k = key(text)
        inside = next((i for pk, i in self.protected_keys.items() if pk and pk in k), None)
        if inside is not None:
            return "leak", inside
        near_id, score = self.protected.closest(text)
        if score >= self.protected.near:
            return "leak", near_id
        if (same := self.seen.exact(text)) is not None:
            return "duplicate", same
        near_id, score = self.seen.closest(text)
        if score >= self.seen.near:
            return "near_duplicate", near_id
        return "kept", None


def clusters(texts: list[str], near: float) -> list[int]:
    """Each text's cluster, named by its first member's index: two texts are in one cluster when one
    repeats the other (the same key, or at least `near` of the shorter one's word pairs shared), and
    clusters join through shared members (R-Zero's repetition clusters, with this screen's measure)."""
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    index = NearIndex(near)
    for i, text in enumerate(texts):
        p = pairs(text)
        shared = Counter(j for pair in p for j in index.index.get(pair, ()))
        same = {j for j, n in shared.items() if n / max(1, min(len(p), index.sizes[j])) >= near}
        if (exact := index.exact(text)) is not None:
            same.add(exact)
        for j in same:
            a, b = sorted((root(i), root(int(j))))
            parent[b] = a
        index.add(str(i), text)
    return [root(i) for i in range(len(texts))]


def guard_for(ctx, near: float, seen: list[tuple[str, str]], seen_near: float | None = None) -> Guard:
    """The run's guard: its held-out and anchor questions are protected."""
    protected = [(i.id, i.question) for i in ctx.data.heldout + ctx.data.anchor]
    return Guard.of(protected, seen, near, seen_near)


def count_verdicts(rows: list[dict]) -> dict[str, int]:
    return dict(Counter(r["verdict"] for r in rows))
