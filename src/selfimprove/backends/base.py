"""The generation backend contract: prompts in, K completions per prompt out.

Every backend (transformers now; vLLM and OpenAI-compatible HTTP later) returns the same
`Completion` records, so the stages above never know which one ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1  # completions per prompt (K)
    temperature: float = 0.7  # 0 = greedy
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
    stop: tuple[str, ...] = ()  # cut a completion at the first of these strings (e.g. "\nQ:")


@dataclass(frozen=True)
class Completion:
    text: str
    num_tokens: int
    truncated: bool  # hit max_new_tokens before EOS or a stop string
    logprob: float  # summed log-probability of the generated tokens (before temperature)


class Backend(Protocol):
    model_name: str
    adapter: str | None

    def generate(self, prompts: list[str], params: SamplingParams, progress=None) -> list[list[Completion]]:
        """`params.n` completions for each prompt, in prompt order. `progress(n_done)` is called per batch."""

    def count_tokens(self, text: str) -> int: ...

    @property
    def max_context(self) -> int: ...

    def render_chat(self, messages: list[dict]) -> str | None:
        """The model's chat template applied to `messages`, or None when it has none."""
