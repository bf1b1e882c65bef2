"""How sure the model is of questions it has not answered yet: K paths each, then the run's own vote.

Used inside acquisition (easier variants' verdicts, a pass-rate schedule's measurement), before the
round's generate stage: the same sampling settings, formats and vote (`vote.method`, `vote.require`)
as the round, with a seed of its own so these paths are not the round's.
"""

from __future__ import annotations

from selfimprove.context import RunContext
from selfimprove.sampling.paths import fresh_paths
from selfimprove.records import Item, Vote, Weights
from selfimprove.voting.methods import reach_votes


def judge(ctx: RunContext, round_: int, weights: Weights, items: list[Item],
          purpose: str) -> tuple[dict[str, Vote], dict[str, int]]:
    """Question id -> its vote over K fresh paths from `weights` (`purpose` seeds them), and -> the tokens
    those paths took (compute the round spent acquiring)."""
    if not items:
        return {}, {}
    samples = fresh_paths(ctx, round_, weights, items, purpose)
    tokens: dict[str, int] = {}
    for s in samples:
        tokens[s.question_id] = tokens.get(s.question_id, 0) + s.num_tokens
    return {v.question_id: v for v in reach_votes(ctx, round_, weights, samples, items)}, tokens


def trusted(vote: Vote | None, share: float) -> bool:
    """A vote worth training on: an answer, at least two votes for it, and a share of at least `share`."""
    return (vote is not None and vote.answer is not None and vote.share >= share
            and vote.counts.get(vote.answer, vote.num_votes) >= 2)


def agreement(vote: Vote | None) -> float:
    """Votes for the majority answer over all of the question's paths (one that abstains or may not vote
    counts against): a pass rate without labels."""
    if vote is None or vote.answer is None:
        return 0.0
    return vote.counts.get(vote.answer, 0) / max(1, vote.num_votes + vote.num_abstain)
