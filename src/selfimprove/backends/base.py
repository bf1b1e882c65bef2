"""The generation backend contract: prompts in, K completions per prompt out, from named weights.

A backend is an engine created once per run (`create_backend`), that is told per call which
`Weights` to sample from, so it may keep weights (or several adapters) loaded between calls and
load each set of weights once. A prompt is a plain string, or chat messages that the backend
renders with the model's own chat template (an HTTP chat endpoint renders them server-side).
Every backend returns the same `Completion` records, so the stages above never know which ran.
`close()` frees whatever the backend holds (weights, GPU memory, connections) before training
runs in the same process; the next call loads again what it needs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Protocol

# The records a backend takes and gives live with the other records (records.py), so that what sits below
# the engines (the cache) can read them without importing the engines; re-exported here.
from selfimprove.records import Completion, Prompt, SamplingParams, Weights  # noqa: F401

class Backend(Protocol):
    def generate(self, prompts: list[Prompt], params: SamplingParams, weights: Weights,
                 progress=None) -> list[list[Completion]]:
        """`params.n` completions for each prompt, in prompt order. `progress(n_done)` is called per batch."""

    def count_tokens(self, prompt: Prompt, weights: Weights) -> int:
        """Tokens of the prompt as the model sees it (chat messages rendered)."""

    def max_context(self, weights: Weights) -> int: ...

    def has_chat_template(self, weights: Weights) -> bool: ...

    def close(self) -> None:
        """Free loaded weights and devices; a later call loads what it needs again."""

    # Optional: `parallel_calls: int`, how many `generate` calls may run at once from different
    # threads (the Ray backend: one per worker). Absent = 1: the stage calls one at a time.


def parallel_calls(backend) -> int:
    """The backend's `parallel_calls`, 1 when it does not declare one (in-process engines)."""
    return int(getattr(backend, "parallel_calls", 1))


def request_seed(seed: int, prompt: Prompt, sample: int | None = None) -> int:
    """The seed of one prompt's request (or of its sample `sample`) for engines that seed each request
    (vLLM, HTTP servers): the same prompt always gets the same seed, whatever else is in the call.
    31 bits, the range llama.cpp accepts."""
    text = json.dumps([seed, prompt, sample], sort_keys=True)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF
