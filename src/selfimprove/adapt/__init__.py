"""Adapt: turn a round's trusted paths into new weights.

The algorithm is a plug-in, `adapt.method`: a plain function
`method(ctx, round, inputs: AdaptInputs, **adapt.options) -> Adapted`, one of `METHODS` or a user's
"package.module:function". Each entry of `METHODS` is a `Method` (base.py) that declares the method once:
its function, its options model and check (read when a config is loaded), and the traits preflight asks
about (needs a learner, scores answer strings); a user's method may be a `Method` too. Which weights
change (a LoRA adapter or all of them) is `adapt.tuning`, which the method honours. Built-ins: SFT
(`sft.py`), distillation into another model (`distill.py`), and label-free RL (`grpo.py`: GRPO or RLOO
rewarded by the round's vote, TTRL; options in `rl_options.py`, rewards in `rewards.py`, the collapse
guard in `guard.py`, its signals in `signals.py`).
Test-time training (`ttt.py`) runs these methods on the questions it answers.

`inputs.learner` is the learner's current weights; `start_weights` says what a round trains from
(the base learner, or the current weights with `adapt.init: previous`). The method writes its
artifacts under `rounds/rNN/` through the store and returns the learner's new weights.
"""

from __future__ import annotations

from selfimprove import plugins
from selfimprove.rundir import layout
from selfimprove.adapt.base import Adapted, AdaptInputs, Method, method_options, start_weights
from selfimprove.adapt.rl_options import RL_DROPPED, RL_TRAINER, RLOptions, check_rl

__all__ = ["METHODS", "TARGETS", "Adapted", "AdaptInputs", "Method", "adapt_round", "declaration", "method_options",
           "start_weights"]

# Label-free RL's round files (grpo.py), besides the weights and the training log.
RL_FILES = tuple(layout.Artifact(name, "adapt") for name in (layout.RL_SAMPLES, layout.RL_STEPS, layout.RL_GUARD,
                                                                layout.RL_WORK, RL_TRAINER, RL_DROPPED))
RL_REPORT = "selfimprove.adapt.rl_report:report"  # its per-step plots in `selfimprove report`

METHODS = {
    "sft": Method("selfimprove.adapt.sft:sft"),
    "grpo": Method("selfimprove.adapt.grpo:grpo", RLOptions, check_rl, scores_answer_strings=True, artifacts=RL_FILES,
                   report=RL_REPORT),
    "rloo": Method("selfimprove.adapt.grpo:rloo", RLOptions, check_rl, scores_answer_strings=True, artifacts=RL_FILES,
                   report=RL_REPORT),
    "distill": Method("selfimprove.adapt.distill:distill", needs_learner=True),
}
TARGETS = {name: method.target for name, method in METHODS.items()}  # as plugins.resolve and `selfimprove ls` read them


def declaration(name: str) -> Method:
    """adapt.method `name`'s declaration: a built-in's entry, a user's own `Method`, or a user's plain
    function as a `Method` without options model or traits. ValueError when `name` cannot be resolved."""
    if name in METHODS:
        return METHODS[name]
    found = plugins.resolve(name, TARGETS, "adapt.method")
    return found if isinstance(found, Method) else Method(name)


def adapt_round(ctx, round_: int, inputs: AdaptInputs) -> Adapted:
    cfg = ctx.config.adapt
    method = declaration(cfg.method)
    return plugins.resolve(method.target, TARGETS, "adapt.method")(ctx, round_, inputs, **cfg.options)
