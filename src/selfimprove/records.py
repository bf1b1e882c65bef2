"""The records that flow between stages. Each is a flat dataclass written as one JSONL row.

One question carries an id from collection to evaluation; every later record points back to it
by `question_id`, so any artifact of a run can be joined with any other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


def to_row(record) -> dict[str, Any]:
    return asdict(record)


def from_row(cls, row: dict[str, Any]):
    """Build `cls` from a stored row, ignoring columns added by newer versions."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in row.items() if k in names})


@dataclass(frozen=True)
class Item:
    """One question of a task. `gold` is None when unlabeled; the pool's gold never reaches training."""

    id: str
    question: str
    gold: str | None = None


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
