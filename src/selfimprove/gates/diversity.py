"""Rationale augmentation's gate: prefer novel paths among those that reach the vote's answer.

`novel` keeps a path when it agrees with its question's vote (the task's equivalence), its novelty
against the other paths of its question (`Sample.novelty`, sampling/novelty.py) is at least `min_novelty`,
and it is among the `top` most novel such paths of its question (None: no limit). Complementary
rationales for one answer teach more than the same rationale several times (the seeds' rationale
augmentation); the vote keeps them correct.
"""

from __future__ import annotations

from selfimprove.gates.base import NEEDS_VOTE, Candidate, GateContext, Verdict
from selfimprove.plugins import Plugin
from selfimprove.sampling.novelty import novelty


def novel(context: GateContext, min_novelty: float = 0.0, top: int | None = None):
    if not 0 <= min_novelty <= 1:
        raise ValueError(f"min_novelty={min_novelty} must be within [0, 1]")
    if top is not None and top < 1:
        raise ValueError(f"top={top} must be >= 1 (or null: no limit)")
    task = context.task

    def gate(candidates: list[Candidate]) -> list[Verdict]:
        scores = _scores(candidates)
        agrees = [c.vote is not None and c.vote.answer is not None and c.sample.answer is not None
                  and (c.sample.answer == c.vote.answer or task.is_equivalent(c.sample.answer, c.vote.answer))
                  for c in candidates]
        rank: dict[int, int] = {}
        by_question: dict[str, list[int]] = {}
        for n, c in enumerate(candidates):
            if agrees[n]:
                by_question.setdefault(c.sample.question_id, []).append(n)
        for members in by_question.values():
            for place, n in enumerate(sorted(members, key=lambda n: (-scores[n], n))):
                rank[n] = place
        out = []
        for n, c in enumerate(candidates):
            if not agrees[n]:
                out.append(Verdict(False, "does not reach the vote's answer", scores[n]))
            elif scores[n] < min_novelty:
                out.append(Verdict(False, f"novelty {scores[n]:.2f} < {min_novelty}", scores[n]))
            elif top is not None and rank[n] >= top:
                out.append(Verdict(False, f"novelty {scores[n]:.2f}: {rank[n] + 1}th of its question's agreeing "
                                          f"paths (top {top})", scores[n]))
            else:
                out.append(Verdict(True, f"novelty {scores[n]:.2f}", scores[n]))
        return out

    return gate


def _scores(candidates: list[Candidate]) -> list[float]:
    """The recorded novelty of each path; computed here for samples written before it was recorded."""
    if all(c.sample.novelty is not None for c in candidates):
        return [c.sample.novelty for c in candidates]
    by_question: dict[str, list[int]] = {}
    for n, c in enumerate(candidates):
        by_question.setdefault(c.sample.question_id, []).append(n)
    out = [0.0] * len(candidates)
    for members in by_question.values():
        for n, value in zip(members, novelty([candidates[n].sample.text for n in members])):
            out[n] = value
    return out


# Judged against the question's vote, so not in vote.require.
NOVEL = Plugin("selfimprove.gates.diversity:novel", traits=frozenset({NEEDS_VOTE}))
