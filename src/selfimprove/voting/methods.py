"""The vote methods and how a run reaches its votes: the `vote.method` seam.

A method is a plain function `method(ctx, round, weights, samples, items, **vote.options) -> list[Vote]`,
one of `METHODS` or a user's "package.module:function" (or "package.module:DECLARATION"). Each built-in
declares itself beside its code (`plugins.Plugin`: options model, check, traits, records with their stage):
`majority` (self-consistency, voting/majority.py), `behaviour` (code: clusters of program behaviour,
voting/behaviour.py) and `debate` (voting/debate.py). This is shared ground: the vote stage (stages/vote.py) writes the
round's votes with it, and acquisition's judge votes on fresh paths with the same method.
"""

from __future__ import annotations

from selfimprove import plugins
from selfimprove.context import RunContext
from selfimprove.plugins import Plugin
from selfimprove.records import Item, Sample, Vote, Weights

# One line a method: its declaration ("module:attr"), imported only when a config names it.
METHODS = {"majority": "selfimprove.voting.majority:DECLARATION",
           "behaviour": "selfimprove.voting.behaviour:DECLARATION",
           "debate": "selfimprove.voting.debate:DECLARATION"}


def declaration(name: str, where: str = "vote.method") -> Plugin:
    """Vote method `name`'s declaration; ValueError naming `where` when it cannot be resolved."""
    return plugins.declared(name, METHODS, where)


def reach_votes(ctx: RunContext, round_: int, weights: Weights, samples: list[Sample], items: list[Item]) -> list[Vote]:
    """The votes `vote.method` reaches over `samples` (nothing stored)."""
    method = plugins.callable_of(declaration(ctx.config.vote.method), "vote.method")
    return method(ctx, round_, weights, samples, items, **ctx.config.vote.options)
