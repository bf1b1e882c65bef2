"""The options of the label-free RL methods (`adapt.method: grpo | rloo`, grpo.py), beside their code.

`RLOptions` is `adapt.options`' schema (every default with why); `check_rl` checks it against the rest
of the config. Both are named in the methods' registry entries (`adapt/__init__.py`), so loading a
config checks them before any work, and grpo.py reads its options through them. A light module: no
torch, no transformers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from selfimprove.adapt.rewards import REWARDS
from selfimprove.adapt.signals import SIGNALS
from selfimprove.sections import Config, Section, known_signals


class RLOptions(Section):
    """`adapt.options` of the label-free RL methods (`adapt.method: grpo | rloo`, adapt/grpo.py; TTRL).

    The vote is taken before training, over the round's `generate.k` samples of each question (the
    voters); RL then draws `num_generations` fresh samples of each question (the trained samples)
    and rewards them against that vote. Steps, batch and learning rate are adapt's own keys:
    `adapt.batch_size` counts completions (questions x num_generations) per device and step.
    """

    # Reward name -> weight; a sample's reward is the weighted sum. Built-ins (adapt/rewards.py):
    # majority (1 when the answer is its question's vote: the verified vote when vote.require is set),
    # verified_majority (the same, and 0 unless the path passes vote.require's gates), vote_share (the
    # share of voters that gave its answer), gates (1 when it passes vote.require's gates), self_certainty
    # (INTUITOR: mean KL(uniform || next-token distribution)), random (the spurious-reward control).
    # TTRL's reward is {majority: 1.0}.
    rewards: dict[str, float] = {"majority": 1.0}
    # Trained samples per question (the GRPO group). TTRL votes with 64 and trains on 32; here the
    # voters are the round's generate.k samples. 8 gives a usable group baseline at a quarter of
    # TTRL's cost; it must be >= 2 (one sample has no group to be relative to).
    num_generations: int = Field(8, ge=1)
    # Questions whose vote share is below this are left out: without a clear majority the label is
    # about as often wrong as right (LMSI's calibration; the embedded base model's plain majority is
    # right 22-31% of the time under a share of 0.4). Questions nobody voted on are always left out.
    min_share: float = Field(0.5, ge=0, le=1)
    # KL coefficient towards the round's starting weights. 0.04 is DeepSeekMath's GRPO value: a
    # light anchor against drifting on self-made labels (0 = none, as in DAPO and Dr. GRPO).
    beta: float = Field(0.04, ge=0)
    # The collapse guard (adapt/guard.py): every probe_every steps, greedy accuracy on the first
    # probe_questions held-out questions; training stops and the best probed weights are restored
    # when it falls more than `tolerance` below its best, or a label-free signal of the training
    # samples leaves its band. A checkpoint is saved at every probe, so a killed run resumes there.
    probe_every: int = Field(10, ge=1)
    probe_questions: int = Field(100, ge=1)
    # What the probe scores. heldout: greedy accuracy on held-out answers (none without a held-out
    # set, as in test-time training). votes: greedy agreement with the round's own vote on the first
    # probe_questions training questions; label-free, so test-time training can use it. It catches a
    # policy drifting away from the labels it is rewarded for, not a wrong vote.
    probe: Literal["heldout", "votes"] = "heldout"
    tolerance: float = Field(0.02, ge=0)  # 2 points: about one standard error on 100 questions at 50-80%
    # Alarms in a row before training stops (an alarm at the last step always stops). 1 stops at the
    # first; more lets a noisy dip recover, at the cost of training on past a real fall: the best
    # probed weights are restored either way.
    patience: int = Field(1, ge=1)
    # End the round on the best probed weights even without a stop (transformers'
    # load_best_model_at_end): the weights are then chosen on the probe questions, so score them on others.
    load_best_at_end: bool = False
    # {signal: band}: the signal may move by at most this fraction of its value over the first probe
    # window. mean_tokens 0.5: a completion length that halves or grows by half is a reward being gamed
    # (or a collapse), not learning. answer_entropy falls as the majority reward sharpens the model,
    # so it is not banded by default.
    bands: dict[str, float] = {"mean_tokens": 0.5}
    # Sample inside RL with vLLM (TRL's colocate mode: GPU only, `pip install -e .[gpu]`); off = transformers.
    use_vllm: bool = False

    @field_validator("bands")
    @classmethod
    def _known_bands(cls, v: dict[str, float]) -> dict[str, float]:
        return known_signals(v, SIGNALS, "band")


def check_rl(config: Config, opts: RLOptions) -> None:
    """The RL options checked against the rest of `config` (its own types and bounds are RLOptions')."""
    adapt = config.adapt
    if not opts.rewards:
        raise ValueError("adapt.options.rewards is empty: name at least one reward, e.g. {majority: 1.0}")
    for name in opts.rewards:
        if name not in REWARDS and ":" not in name:
            raise ValueError(f"adapt.options.rewards: unknown reward {name!r}; use one of {', '.join(REWARDS)} "
                             "or your own 'package.module:factory'")
    voting = [n for n in opts.rewards if n in REWARDS and REWARDS[n].needs_vote]
    if voting and config.generate.k < 2:
        raise ValueError(f"reward {voting[0]!r} scores a sample against its question's vote, but voting is off "
                         f"(generate.k={config.generate.k}: one sample a question); set generate.k >= 2")
    gated = [n for n in opts.rewards if n in REWARDS and REWARDS[n].needs_gates]
    if gated and not config.vote.require:
        raise ValueError(f"reward {gated[0]!r} needs the gates of vote.require (e.g. [{{name: arithmetic}}]), "
                         "which is empty")
    if opts.num_generations < 2:
        raise ValueError(f"adapt.method {adapt.method!r} is group-relative: adapt.options.num_generations "
                         f"(K trained samples a question) must be >= 2, not {opts.num_generations}")
    judged = [g.get("name") for g in config.vote.require if isinstance(g, dict) and g.get("name") == "critique"]
    if adapt.launch == "accelerate" and judged:
        raise ValueError("vote.require's critique gate asks the run's engine, which launched RL processes do not "
                         "have: with adapt.launch=accelerate, use gates that judge a path alone, or "
                         "adapt.launch=process")
    if adapt.ema is not None:
        raise ValueError("adapt.ema is for SFT rounds; with RL the KL coefficient (adapt.options.beta) keeps "
                         "the weights near the round's start")
    per_step = adapt.batch_size * adapt.grad_accum
    if per_step % opts.num_generations:
        raise ValueError(f"adapt.batch_size x adapt.grad_accum ({per_step}) must be a multiple of "
                         f"adapt.options.num_generations ({opts.num_generations}): each step trains whole groups")
