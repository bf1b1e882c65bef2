"""Vote: how each question's answer is reached from its sampled paths; writes `rounds/rNN/votes.jsonl`.

How a question's answer is reached is a seam: `vote.method` names a plain function
`method(ctx, round, weights, samples, items, **vote.options) -> list[Vote]`, one of `METHODS`
or a user's "package.module:function" (or "package.module:DECLARATION"). Each built-in declares itself
beside its code (`plugins.Plugin`: options model, check, traits, records with their stage):
`majority` (self-consistency, majority.py), `behaviour` (code: clusters of program behaviour,
vote_behaviour.py) and `debate` (debate.py). The majority counting itself is shared ground
(`majority.py`, re-exported here), so a method built on it, like debate, imports that, not this stage.
"""

from __future__ import annotations

from selfimprove import layout, plugins
from selfimprove.context import RunContext
from selfimprove.majority import (eligible_voters, majority, majority_vote,  # noqa: F401 - re-exported
                                  merge_equivalent, require_gates, verified_voters, vote_all)
from selfimprove.plugins import Plugin
from selfimprove.records import Item, Sample, Vote, Weights, from_row, to_row

# One line a method: its declaration ("module:attr"), imported only when a config names it.
METHODS = {"majority": "selfimprove.majority:DECLARATION",
           "behaviour": "selfimprove.vote_behaviour:DECLARATION",
           "debate": "selfimprove.debate:DECLARATION"}


def declaration(name: str, where: str = "vote.method") -> Plugin:
    """Vote method `name`'s declaration; ValueError naming `where` when it cannot be resolved."""
    return plugins.declared(name, METHODS, where)


def reach_votes(ctx: RunContext, round_: int, weights: Weights, samples: list[Sample], items: list[Item]) -> list[Vote]:
    """The votes `vote.method` reaches over `samples` (nothing stored)."""
    method = plugins.callable_of(declaration(ctx.config.vote.method), "vote.method")
    return method(ctx, round_, weights, samples, items, **ctx.config.vote.options)


def vote_round(ctx: RunContext, round_: int, weights: Weights, samples: list[Sample], items: list[Item]) -> list[Vote]:
    """The round's votes: read when complete, else reached by `vote.method` and written."""
    def build() -> list[dict]:
        return [to_row(v) for v in reach_votes(ctx, round_, weights, samples, items)]

    return [from_row(Vote, v) for v in ctx.store.produce_jsonl(layout.round_file(round_, layout.VOTES), build)]
