"""The adaptation seam's records: what a method gets (`AdaptInputs`) and returns (`Adapted`), and how a
method declares itself (`Method`).

A leaf module: methods import these, and the registry in `adapt/__init__.py` names the methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from selfimprove.records import Item, Sample, Vote, Weights
from selfimprove.sections import read_options


@dataclass(frozen=True)
class Method:
    """An adaptation method, declared once: its function and what the rest of the package asks about it.

    The built-ins are entries of `adapt.METHODS`; a user's method is its plain function (no options model,
    no traits) or a `Method` of its own, named as "package.module:attr" in `adapt.method`."""

    target: str  # "package.module:function", imported only when the method runs (trainers are heavy)
    # adapt.options' model (a `sections.Section`: types, defaults and bounds written once), read when the
    # config is loaded; None = the options are the function's keyword arguments (bound by preflight).
    options: type | None = None
    check: Callable[[Any, Any], None] | None = None  # check(config, options): against the rest; ValueError
    needs_learner: bool = False  # trains adapt.learner on model.name's paths, so adapt.learner must be set
    scores_answer_strings: bool = False  # rewards answers that match the vote's string: unfit for programs
    # Round files it writes besides the weights and train_log.jsonl, each a `layout.Artifact` with its stage
    # (Artifact(name, "adapt"): a damaged one redoes the training); repair asks them (declarations.py).
    artifacts: tuple = ()
    # "package.module:function", its section of `selfimprove report`: section(store, rounds, read) ->
    # {figure id: SVG}, drawn from what its rounds recorded (`read(name)` reads a JSONL artifact). None = none.
    report: str | None = None


def method_options(method: Method, config, options: dict | None = None):
    """`options` (default adapt.options) read by the method's options model and checked against `config`;
    None for a method without a model."""
    if method.options is None:
        return None
    opts = read_options(method.options, config.adapt.options if options is None else options, "adapt.options")
    if method.check is not None:
        method.check(config, opts)
    return opts


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
