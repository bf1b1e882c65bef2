"""The records that flow between stages. Each is a flat dataclass written as one JSONL row.

One question carries an id from collection to evaluation; every later record points back to it
by `question_id`, so any artifact of a run can be joined with any other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Union


def to_row(record) -> dict[str, Any]:
    return asdict(record)


def from_row(cls, row: dict[str, Any]):
    """Build `cls` from a stored row, ignoring columns added by newer versions."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in row.items() if k in names})


@dataclass(frozen=True)
class Weights:
    """A set of weights a stage samples from or trains: a base model (Hub id, local folder or
    `.gguf` file), an optional PEFT adapter folder on top, and an optional separate tokenizer."""

    model: str
    adapter: str | None = None
    tokenizer: str | None = None  # None = the model's own

    def __str__(self) -> str:
        return self.model + (f" + {self.adapter}" if self.adapter else "")


# What a generation backend is given and gives back (backends/base.py has the contract).
Prompt = Union[str, list[dict]]  # a completion prompt, or chat messages [{"role", "content"}, ...]


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1  # completions per prompt (K)
    temperature: float = 0.7  # 0 = greedy
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
    stop: tuple[str, ...] = ()  # cut a completion at the first of these strings (e.g. "\nQ:")
    # Prompts per forward pass for an engine that batches each call itself (transformers); None = the engine's
    # own setting (generate.batch_size). Engines that schedule their own batches (vLLM, a server) ignore it.
    batch_size: int | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    num_tokens: int
    truncated: bool  # hit max_new_tokens before EOS or a stop string
    logprob: float  # summed log-probability of the generated tokens (before temperature)


POOL_ORIGIN = "pool"  # Item.origin of a collected question


@dataclass(frozen=True)
class Item:
    """One question of a task. `gold` is None when unlabeled; the pool's gold never reaches training."""

    id: str
    question: str
    gold: str | None = None
    # Where a round's question came from (acquire/): POOL_ORIGIN (collected), "written" (the model wrote it),
    # "variant" (an easier variant the model or task wrote of `parent`), "knob:<source>" (a difficulty stage).
    origin: str = POOL_ORIGIN
    parent: str | None = None


@dataclass(frozen=True)
class Exemplar:
    """A worked example for few-shot prompts: question, step-by-step rationale, final answer."""

    question: str
    rationale: str
    answer: str


@dataclass
class Sample:
    """One sampled completion for one question."""

    question_id: str
    round: int
    index: int  # 0..K-1 within the question
    prompt_format: str
    seed: int
    model: str
    adapter: str | None
    text: str
    answer: str | None  # extracted and canonical; None = abstain (no answer found)
    num_tokens: int
    truncated: bool  # stopped by max_new_tokens, not by EOS
    logprob: float  # summed log-probability of the generated tokens under the sampling model
    novelty: float | None = None  # share of its word bigrams no other path of its question uses (sampling/novelty.py)


@dataclass
class Vote:
    """Self-consistency over one question's samples."""

    question_id: str
    round: int
    answer: str | None  # majority answer; None when every sample abstained
    share: float  # votes for `answer` / non-abstaining votes (0.0 when none)
    num_votes: int  # non-abstaining samples
    num_abstain: int
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class TrustedPath:
    """A path the curate stage (or a reviewer) trusts: question, rationale, and the answer it reached."""

    question_id: str
    question: str
    rationale: str
    answer: str
    sample_index: int = -1


@dataclass
class Example:
    """One training example made from a kept sample, in one of the four LMSI formats."""

    question_id: str
    round: int
    sample_index: int
    format: str  # cot_fewshot | cot_zeroshot | direct_fewshot | direct_zeroshot
    prompt: str | list[dict]  # str in completion mode, chat messages in chat mode
    completion: str | list[dict]
    answer: str


@dataclass
class RoundMetrics:
    """One row of `metrics.jsonl` (and `rounds/rNN/metrics.json`): everything measured in a round.

    Round 0 is the base model's evaluation and has only the weights and the held-out and anchor
    scores. A field is None when its stage did not run (no held-out set, no anchor set, ...).
    """

    round: int
    # The weights this round produced: what is evaluated, and (unless a teacher samples) sampled next.
    model: str | None = None
    adapter: str | None = None
    # Which weights sampled the round's paths (differs from model/adapter when a teacher samples).
    sampler_model: str | None = None
    sampler_adapter: str | None = None
    # curate / adapt
    pool_questions: int | None = None  # questions sampled this round
    kept: int | None = None  # paths that passed every gate
    kept_questions: int | None = None  # questions with at least one kept path
    train_examples: int | None = None  # rows of train.jsonl (all formats, replay included); RL: questions with a label
    train_loss_first: float | None = None
    train_loss_last: float | None = None
    # Pseudo-labels against the pool's hidden gold (diagnostics only; never used for training).
    pseudo_label_accuracy: float | None = None  # majority answers right, over voted questions
    kept_pseudo_label_accuracy: float | None = None  # the same over questions with a kept path
    # Label-free signals of the round's samples (monitor.label_free_signals).
    agreement: float | None = None  # mean vote share of answered questions
    answer_entropy: float | None = None  # mean entropy of each question's answer counts (nats)
    abstention_rate: float | None = None  # samples with no extractable answer
    truncation_rate: float | None = None  # samples cut by max_new_tokens
    mean_tokens: float | None = None  # mean completion length
    distinct_2: float | None = None  # distinct word bigrams / all bigrams
    skeleton_share: float | None = None  # share of the most common number-free rationale skeleton
    # Compute (monitor.compute_spent).
    generated_tokens: int | None = None  # sampled on the pool, and while acquiring it (acquire.tokens_spent)
    trained_tokens: int | None = None  # through the round's trainer, and an acquisition source's own (the proposer's)
    compute_tokens: int | None = None  # generated + trained: the denominator of the return
    # Held-out scores of the round's weights (evaluate).
    accuracy: float | None = None  # greedy
    majority_accuracy: float | None = None  # maj@k
    verified_majority_accuracy: float | None = None  # maj@k when only paths passing vote.require vote
    pass_at_k: float | None = None
    heldout_agreement: float | None = None  # mean vote share on the held-out questions
    eval_k: int | None = None
    eval_questions: int | None = None
    anchor_accuracy: float | None = None  # greedy accuracy on the anchor set (the original skill)
    # Against the history (monitor.compare).
    length_drift: float | None = None  # mean_tokens relative to round 1
    length_drift_prev: float | None = None  # relative to the previous round
    forgetting: float | None = None  # anchor accuracy below its best earlier value
    gain: float | None = None  # greedy accuracy minus that of the weights the round started from
    return_per_mtoken: float | None = None  # held-out accuracy points gained per million compute tokens
    # The monitor's decision (monitor.decide).
    decision: str | None = None  # continue | stop | reset
    decision_reason: str | None = None
    best_round: int | None = None  # highest held-out accuracy so far
    weights_round: int | None = None  # whose weights carry on (the best round after a reset)
    seconds: float | None = None  # wall time of the round

    @property
    def weights(self) -> Weights:
        return Weights(self.model, self.adapter)

    @property
    def carried_round(self) -> int:
        """The round whose weights the next round starts from: this one's, or the one a reset restored."""
        return self.round if self.weights_round is None else self.weights_round
