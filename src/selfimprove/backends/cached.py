"""The run's engine behind the rationale cache (rundir/cache.py): `generate` looks in the cache first.

Reads and writes `<cache_dir>/<key[:2]>/<key>.json`, one file per `generate` call, keyed by `cache.call_key`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from selfimprove.backends.base import parallel_calls
from selfimprove.rundir.cache import call_key
from selfimprove.records import Completion, Prompt, SamplingParams, Weights
from selfimprove.rundir.store import _atomic_write_bytes


class CachedBackend:
    """A backend whose `generate` looks in the cache first; everything else is the wrapped backend's."""

    def __init__(self, backend, cache_dir: str | Path):
        self.backend = backend
        self.cache_dir = Path(cache_dir)
        self.hits = 0  # generate calls answered from the cache (counted for tests and the resume benchmark)
        self.misses = 0

    def generate(self, prompts: list[Prompt], params: SamplingParams, weights: Weights,
                 progress=None) -> list[list[Completion]]:
        key = call_key(weights, prompts, params)
        path = self.cache_dir / key[:2] / f"{key}.json"
        if path.exists():
            try:
                rows = json.loads(path.read_text())
                self.hits += 1
                if progress:
                    progress(len(prompts))
                return [[Completion(**c) for c in comps] for comps in rows]
            except (ValueError, TypeError):
                pass  # a damaged entry is regenerated and overwritten
        self.misses += 1
        out = self.backend.generate(prompts, params, weights, progress)
        _atomic_write_bytes(path, json.dumps([[asdict(c) for c in comps] for comps in out]).encode())
        return out

    def count_tokens(self, prompt: Prompt, weights: Weights) -> int:
        return self.backend.count_tokens(prompt, weights)

    @property
    def parallel_calls(self) -> int:
        return parallel_calls(self.backend)

    def max_context(self, weights: Weights) -> int:
        return self.backend.max_context(weights)

    def has_chat_template(self, weights: Weights) -> bool:
        return self.backend.has_chat_template(weights)

    def close(self) -> None:
        self.backend.close()
