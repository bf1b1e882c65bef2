"""Acquire: the questions a round samples, written as `rounds/rNN/pool.jsonl`.

The pool may change between rounds (questions the model writes itself, easier variants of the
questions it fails, a difficulty schedule), so every round's pool is an artifact of that round.
A method is a plain function `method(ctx, round, weights, **acquire.options) -> list[Item]`,
named in `acquire.method`: one of `METHODS`, or a user's "package.module:function".
"""

from __future__ import annotations

from selfimprove import layout, plugins
from selfimprove.context import RunContext
from selfimprove.records import Item, Weights, from_row, to_row


def pool(ctx: RunContext, round_: int, weights: Weights) -> list[Item]:
    """The collected pool, every round (LMSI, STaR, ReST-EM)."""
    return ctx.data.pool


METHODS = {"pool": "selfimprove.acquire:pool"}


def acquire_round(ctx: RunContext, round_: int, weights: Weights) -> list[Item]:
    """Round `round_`'s questions: read when complete, else acquired with `weights` and written."""
    cfg = ctx.config.acquire
    method = plugins.resolve(cfg.method, METHODS, "acquire.method")
    rows = ctx.store.produce_jsonl(layout.round_file(round_, layout.ROUND_POOL),
                                   lambda: [to_row(i) for i in method(ctx, round_, weights, **cfg.options)])
    return [from_row(Item, r) for r in rows]
