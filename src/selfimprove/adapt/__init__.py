"""Adapt: turn a round's trusted paths into new weights.

The algorithm is a plug-in, `adapt.method`: a plain function
`method(ctx, round, inputs: AdaptInputs, **adapt.options) -> Adapted`, one of `METHODS` or a user's
"package.module:function". Which weights change (a LoRA adapter or all of them) is `adapt.tuning`,
which the method honours. Built-ins: SFT (`sft.py`), distillation into another model (`distill.py`), and label-free RL (`grpo.py`: GRPO or RLOO
rewarded by the round's vote, TTRL; rewards in `rewards.py`, the collapse guard in `guard.py`).
Test-time training (`ttt.py`) runs these methods on the questions it answers.

`inputs.learner` is the learner's current weights; `start_weights` says what a round trains from
(the base learner, or the current weights with `adapt.init: previous`). The method writes its
artifacts under `rounds/rNN/` through the store and returns the learner's new weights.
"""

from __future__ import annotations

from selfimprove import plugins
from selfimprove.adapt.base import Adapted, AdaptInputs, start_weights

__all__ = ["METHODS", "Adapted", "AdaptInputs", "adapt_round", "start_weights"]

METHODS = {"sft": "selfimprove.adapt.sft:sft", "grpo": "selfimprove.adapt.grpo:grpo",
           "rloo": "selfimprove.adapt.grpo:rloo", "distill": "selfimprove.adapt.distill:distill"}


def adapt_round(ctx, round_: int, inputs: AdaptInputs) -> Adapted:
    cfg = ctx.config.adapt
    method = plugins.resolve(cfg.method, METHODS, "adapt.method")
    return method(ctx, round_, inputs, **cfg.options)
