"""Adapt: turn a round's trusted paths into new weights.

The algorithm is a plug-in, `adapt.method`: a plain function
`method(ctx, round, inputs: AdaptInputs, **adapt.options) -> Adapted`, one of `METHODS` or a user's
"package.module:function". Which weights change (a LoRA adapter or all of them) is `adapt.tuning`,
which the method honours. Built-ins: SFT (`sft.py`), and label-free RL (`grpo.py`: GRPO or RLOO
rewarded by the round's vote, TTRL; rewards in `rewards.py`, the collapse guard in `guard.py`).
Test-time training (`ttt.py`) runs these methods on the questions it answers.

`inputs.learner` is the learner's current weights; `start_weights` says what a round trains from
(the base learner, or the current weights with `adapt.init: previous`). The method writes its
artifacts under `rounds/rNN/` through the store and returns the learner's new weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from selfimprove import plugins
from selfimprove.records import Item, Sample, Vote, Weights

METHODS = {"sft": "selfimprove.adapt.sft:sft", "grpo": "selfimprove.adapt.grpo:grpo",
           "rloo": "selfimprove.adapt.grpo:rloo"}


@dataclass(frozen=True)
class AdaptInputs:
    learner: Weights  # the learner's current weights (the last round's, or the one a reset restored)
    sampler: Weights  # the weights that sampled the round's paths
    items: list[Item]  # the round's questions
    samples: list[Sample]
    votes: list[Vote]
    verdicts: list[dict]  # curate's rows, in sample order ("kept" says which paths are trusted)


@dataclass(frozen=True)
class Adapted:
    weights: Weights  # the learner's new weights (== inputs.learner when nothing was trained)
    log: list[dict]  # training log rows ("loss", and "num_tokens" for the compute count)
    examples: int  # training examples used


def start_weights(ctx, inputs: AdaptInputs) -> Weights:
    """What this round trains from: the base learner (ReST-EM, `adapt.init: base`) or the current weights."""
    return inputs.learner if ctx.config.adapt.init == "previous" else ctx.base_learner


def adapt_round(ctx, round_: int, inputs: AdaptInputs) -> Adapted:
    cfg = ctx.config.adapt
    method = plugins.resolve(cfg.method, METHODS, "adapt.method")
    return method(ctx, round_, inputs, **cfg.options)
