"""Confidence gates from self-consistency: agree with the majority, and trust only clear majorities."""

from __future__ import annotations

from selfimprove.gates import Candidate, GateContext, Verdict


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
