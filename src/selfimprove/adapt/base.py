"""The adaptation seam's records: what a method gets (`AdaptInputs`) and returns (`Adapted`).

A leaf module: methods import these, and the registry in `adapt/__init__.py` names the methods.
"""

from __future__ import annotations

from dataclasses import dataclass

from selfimprove.records import Item, Sample, Vote, Weights


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
