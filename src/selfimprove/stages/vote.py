"""Vote: how each question's answer is reached from its sampled paths; writes `rounds/rNN/votes.jsonl`.

How a question's answer is reached is a seam: `vote.method` names one of the vote methods registered in
`voting/methods.py` (majority, behaviour, debate) or a user's "package.module:function". The methods, their
registry and the majority counting are shared ground (`voting/methods.py`, `voting/majority.py`, re-exported here),
so another stage that votes again, such as acquisition's judge, imports them, not this stage.
"""

from __future__ import annotations

from selfimprove.rundir import layout
from selfimprove.context import RunContext
from selfimprove.voting.majority import (eligible_voters, majority, majority_vote,  # noqa: F401 - re-exported
                                  merge_equivalent, require_gates, verified_voters, vote_all)
from selfimprove.records import Item, Sample, Vote, Weights, from_row, to_row
from selfimprove.voting.methods import METHODS, declaration, reach_votes  # noqa: F401 - re-exported


def vote_round(ctx: RunContext, round_: int, weights: Weights, samples: list[Sample], items: list[Item]) -> list[Vote]:
    """The round's votes: read when complete, else reached by `vote.method` and written."""
    def build() -> list[dict]:
        return [to_row(v) for v in reach_votes(ctx, round_, weights, samples, items)]

    return [from_row(Vote, v) for v in ctx.store.produce_jsonl(layout.round_file(round_, layout.VOTES), build)]
