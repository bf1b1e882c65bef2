"""Self-consistency majority over each question's extracted answers: shared ground of the stages that vote.

Abstentions (None) are counted but never vote. Answers the task judges equivalent
("0.5" and "\\frac{1}{2}") are merged under the first-seen spelling. Ties are broken by
`tie_break`: "first" (the tied answer sampled first), "logprob" (the tied answer whose paths
have the highest mean log-probability), or "abstain" (no majority: answer None).

With `vote.require`, only paths that pass those gates vote (the others abstain): `eligible_voters`.
The vote stage (stages/vote.py), debate, evaluation, the probe and own exemplars all count votes here; this
module reads and writes nothing. `DECLARATION` is the `majority` vote method's.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from selfimprove.context import RunContext
from selfimprove.gates import Candidate, Gate, GateContext, build_gates, run_gates
from selfimprove.names import ANSWER_STRINGS
from selfimprove.plugins import Plugin
from selfimprove.records import Item, Sample, Vote, Weights
from selfimprove.sections import NoOptions

def merge_equivalent(answers: list[str], is_equivalent) -> dict[str, str]:
    """Map each distinct answer to the first-seen answer it is equivalent to."""
    reps: list[str] = []
    mapping = {}
    for a in answers:
        if a in mapping:
            continue
        rep = next((r for r in reps if r == a or is_equivalent(r, a)), None)
        if rep is None:
            reps.append(a)
            rep = a
        mapping[a] = rep
    return mapping


def majority(answers: list[str | None], tie_break: str = "first", logprobs: list[float] | None = None,
             is_equivalent=None) -> tuple[str | None, float, dict[str, int], int]:
    """(answer, share, counts, abstentions) for one question's answers, in sample order."""
    given = [a for a in answers if a is not None]
    abstain = len(answers) - len(given)
    if not given:
        return None, 0.0, {}, abstain
    mapping = merge_equivalent(given, is_equivalent) if is_equivalent else {a: a for a in given}
    counts: dict[str, int] = {}
    score: dict[str, list[float]] = defaultdict(list)
    for i, a in enumerate(answers):
        if a is None:
            continue
        rep = mapping[a]
        counts[rep] = counts.get(rep, 0) + 1  # dict keeps first-seen order: the "first" tie-break
        if logprobs is not None:
            score[rep].append(logprobs[i])
    top = max(counts.values())
    tied = [a for a, n in counts.items() if n == top]
    if len(tied) == 1 or tie_break == "first":
        winner = tied[0]
    elif tie_break == "abstain":
        return None, top / len(given), counts, abstain
    elif tie_break == "logprob":
        if logprobs is None:
            raise ValueError("tie_break='logprob' needs the samples' log-probabilities")
        winner = max(tied, key=lambda a: sum(score[a]) / len(score[a]))
    else:
        raise ValueError(f"unknown tie_break {tie_break!r}; use first, logprob or abstain")
    return winner, top / len(given), counts, abstain


def vote_all(samples: list[Sample], tie_break: str = "first", is_equivalent=None) -> list[Vote]:
    by_question: dict[str, list[Sample]] = {}
    for s in samples:
        by_question.setdefault(s.question_id, []).append(s)
    votes = []
    for qid, group in by_question.items():
        answer, share, counts, abstain = majority(
            [s.answer for s in group], tie_break, [s.logprob / max(s.num_tokens, 1) for s in group], is_equivalent)
        votes.append(Vote(question_id=qid, round=group[0].round, answer=answer, share=share,
                          num_votes=sum(counts.values()), num_abstain=abstain, counts=counts))
    return votes


def eligible_voters(samples: list[Sample], questions: dict[str, str], gates: dict[str, Gate]) -> list[Sample]:
    """The samples with the answer of every path that fails a pre-vote gate removed (it abstains).

    Pre-vote gates judge a path on its own (its arithmetic, its format): there is no vote yet, so
    they see `Candidate.vote = None`.
    """
    if not gates:
        return samples
    verdicts = run_gates(gates, [Candidate(s, None, questions.get(s.question_id, "")) for s in samples])
    return [s if all(v.passed for v in per_gate.values()) else replace(s, answer=None)
            for s, per_gate in zip(samples, verdicts)]


def require_gates(ctx: RunContext, weights: Weights | None, round_: int) -> dict[str, Gate]:
    """The gates of `vote.require`: a path must pass them all to vote."""
    context = GateContext(ctx.task, ctx.backend, weights, round_, ctx.config.run.seed)
    return build_gates(ctx.config.vote.require, context, "vote.require", before_vote=True)


def verified_voters(ctx: RunContext, round_: int, weights: Weights, samples: list[Sample],
                    items: list[Item]) -> list[Sample]:
    """`samples` with the answer of every path `vote.require` turns away removed (it abstains)."""
    return eligible_voters(samples, {i.id: i.question for i in items}, require_gates(ctx, weights, round_))


def majority_vote(ctx: RunContext, round_: int, weights: Weights, samples: list[Sample],
                  items: list[Item]) -> list[Vote]:
    """Self-consistency (LMSI): the most frequent answer among the paths `vote.require` lets vote."""
    return vote_all(verified_voters(ctx, round_, weights, samples, items), ctx.config.vote.tie_break,
                    ctx.task.is_equivalent)


DECLARATION = Plugin("selfimprove.voting.majority:majority_vote", NoOptions, traits=frozenset({ANSWER_STRINGS}))
