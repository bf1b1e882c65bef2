"""Confidence gates from self-consistency: agree with the majority, and trust only clear majorities."""

from __future__ import annotations

from selfimprove.gates.base import NEEDS_VOTE, Candidate, GateContext, Verdict
from selfimprove.plugins import Plugin


def majority(context: GateContext):
    """Keep the paths whose answer is the question's majority answer (LMSI's filter)."""

    def gate(candidates: list[Candidate]) -> list[Verdict]:
        out = []
        for c in candidates:
            if c.sample.answer is None:
                out.append(Verdict(False, "no answer"))
            elif c.sample.answer != c.vote.answer:
                out.append(Verdict(False, f"answer {c.sample.answer} is not the majority {c.vote.answer}"))
            else:
                out.append(Verdict(True, "agrees with majority"))
        return out

    return gate


def min_share(context: GateContext, threshold: float = 0.5):
    """Keep questions whose majority holds at least `threshold` of the non-abstaining votes."""

    def gate(candidates: list[Candidate]) -> list[Verdict]:
        return [Verdict(c.vote.share >= threshold, f"vote share {c.vote.share:.2f} vs {threshold}", c.vote.share)
                for c in candidates]

    return gate


def min_votes(context: GateContext, count: int = 2):
    """Keep questions with at least `count` samples that gave an answer (a 1-of-1 majority is no vote)."""

    def gate(candidates: list[Candidate]) -> list[Verdict]:
        return [Verdict(c.vote.num_votes >= count, f"{c.vote.num_votes} answering votes vs {count}")
                for c in candidates]

    return gate


def not_truncated(context: GateContext):
    """Drop paths cut off at max_new_tokens: their rationale is unfinished."""

    def gate(candidates: list[Candidate]) -> list[Verdict]:
        return [Verdict(not c.sample.truncated, "truncated" if c.sample.truncated else "complete")
                for c in candidates]

    return gate


def logprob_margin(context: GateContext, margin: float = 0.0):
    """Keep questions whose majority answer is also the likelier one, by at least `margin` nats/token.

    Each answer's score is the mean per-token log-probability of the paths that gave it; the margin
    is the majority's score minus the best competing answer's. A question with no competing answer
    passes (its margin is unbounded). Per token, so long and short rationales compare fairly.
    """

    def gate(candidates: list[Candidate]) -> list[Verdict]:
        per_question: dict[str, dict[str, list[float]]] = {}
        for c in candidates:
            if c.sample.answer is not None:
                rate = c.sample.logprob / max(1, c.sample.num_tokens)
                per_question.setdefault(c.sample.question_id, {}).setdefault(c.sample.answer, []).append(rate)
        majority = {c.sample.question_id: c.vote.answer for c in candidates}
        margins = {q: _margin(scores, majority[q]) for q, scores in per_question.items()}
        out = []
        for c in candidates:
            m = margins.get(c.sample.question_id)
            if m is None:
                out.append(Verdict(False, "no scored majority answer"))
            else:
                # score None for "no competitor": an infinite score would not survive JSON
                out.append(Verdict(m >= margin, f"log-prob margin {m:.3f} vs {margin}",
                                   m if m != float("inf") else None))
        return out

    return gate


def _margin(scores: dict[str, list[float]], majority: str | None) -> float | None:
    if majority not in scores:
        return None
    mean = {a: sum(v) / len(v) for a, v in scores.items()}
    others = [s for a, s in mean.items() if a != majority]
    return mean[majority] - max(others) if others else float("inf")


# Judged against the question's vote, so not in vote.require.
MAJORITY = Plugin("selfimprove.gates.confidence:majority", traits=frozenset({NEEDS_VOTE}))
MIN_SHARE = Plugin("selfimprove.gates.confidence:min_share", traits=frozenset({NEEDS_VOTE}))
MIN_VOTES = Plugin("selfimprove.gates.confidence:min_votes", traits=frozenset({NEEDS_VOTE}))
LOGPROB_MARGIN = Plugin("selfimprove.gates.confidence:logprob_margin", traits=frozenset({NEEDS_VOTE}))
