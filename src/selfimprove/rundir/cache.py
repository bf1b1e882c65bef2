"""The rationale cache: a backend's `generate` answers, stored by what determines them.

Reads and writes `<cache_dir>/<key[:2]>/<key>.json`, one file per `generate` call. The key is a
hash of the model and adapter fingerprint, the prompts, and every sampling parameter including
the seed. A call, not a single prompt, is the unit because a batched sampler's output for one
prompt depends on the batch it ran in; caching calls keeps a cached run equal to a fresh one.
The run directory's own `cache/` is the default; SELFIMPROVE_CACHE_DIR shares one across runs.

The backend that looks in this cache first is `backends/cached.py`'s `CachedBackend`. A backend whose
call is many independent requests (an HTTP server) also keeps a `RequestCache`
under `<cache_dir>/requests/`: each request's answer is written the moment it arrives, so a call
that fails or is killed half-way loses nothing already returned, and its rerun asks only for the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, replace
from functools import lru_cache
from pathlib import Path

from selfimprove.records import Completion, Prompt, SamplingParams, Weights
from selfimprove.rundir.store import _atomic_write_bytes


@lru_cache(maxsize=64)
def fingerprint(path: str | None) -> str | None:
    """What identifies a model or adapter's weights. A local folder: every file's name and size,
    plus the full content of files under 64 MiB (configs, tokenizers, adapters) and the first and
    last MiB of larger ones (full-model shards: hashing gigabytes per round costs minutes).
    A hub id: the id itself (the hub cache pins a revision)."""
    if path is None:
        return None
    folder = Path(path)
    if not folder.is_dir():
        return f"id:{path}"
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        size = f.stat().st_size
        h.update(f"{f.relative_to(folder)}:{size}\n".encode())
        if f.name == "adapter_config.json":
            h.update(canonical_adapter_config(f.read_text()).encode())
            continue
        with open(f, "rb") as fh:
            if size < 64 << 20:
                h.update(fh.read())
            else:
                h.update(fh.read(1 << 20))
                fh.seek(-(1 << 20), os.SEEK_END)
                h.update(fh.read())
    return h.hexdigest()


def canonical_adapter_config(text: str) -> str:
    """PEFT saves `target_modules` (a set) in hash order, which changes from process to process;
    sorted, the same adapter gets the same fingerprint after a resume."""
    config = json.loads(text)
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    return json.dumps(config, sort_keys=True)


def _key_params(params: SamplingParams) -> dict:
    """The sampling parameters that pick a call's answers. Greedy decoding never reads the seed, so runs
    that differ only in seed share their greedy calls (a base model's held-out score is computed once).
    A batch size is part of the key only when set (padding can move float sums), so older keys still hold."""
    key = asdict(replace(params, seed=0) if params.temperature == 0 else params)
    if key["batch_size"] is None:
        del key["batch_size"]
    return key


def call_key(weights: Weights, prompts: list[Prompt], params: SamplingParams) -> str:
    data = {"model": fingerprint(weights.model), "adapter": fingerprint(weights.adapter),
            "tokenizer": fingerprint(weights.tokenizer), "prompts": prompts, "params": _key_params(params)}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


class RequestCache:
    """One file per request, keyed by everything that determines its answer (`request_key`), written
    atomically as each answer arrives. A damaged entry reads as missing and is asked for again."""

    def __init__(self, cache_dir: str | Path):
        self.cache_dir = Path(cache_dir)

    def _path(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.json"

    def get(self, key: str) -> list[Completion] | None:
        path = self._path(key)
        if not path.exists():
            return None
        try:
            return [Completion(**c) for c in json.loads(path.read_text())]
        except (ValueError, TypeError):
            return None

    def put(self, key: str, completions: list[Completion]) -> None:
        _atomic_write_bytes(self._path(key), json.dumps([asdict(c) for c in completions]).encode())


def request_key(weights: Weights, prompt: Prompt, params: SamplingParams, **request) -> str:
    """The key of one request: the weights' fingerprints, the prompt, the sampling parameters and
    whatever else picks the answer (`request`: the served model name, which sample, the endpoint)."""
    data = {"model": fingerprint(weights.model), "adapter": fingerprint(weights.adapter),
            "tokenizer": fingerprint(weights.tokenizer), "prompt": prompt, "params": _key_params(params), **request}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def cache_dir_for(run_dir: str | Path) -> Path:
    return Path(os.environ.get("SELFIMPROVE_CACHE_DIR") or Path(run_dir) / "cache")
