"""Generation backends. `BACKENDS` maps a config name to the class that implements it."""

from __future__ import annotations

import importlib

from selfimprove.backends.base import Backend, Completion, SamplingParams

BACKENDS: dict[str, str] = {
    "transformers": "selfimprove.backends.transformers:TransformersBackend",
}


def load_backend(name: str, model: str, adapter: str | None = None, **options) -> Backend:
    target = BACKENDS.get(name, name)
    if ":" not in target:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)} (or 'package.module:Class')")
    module_name, attr = target.split(":", 1)
    cls = getattr(importlib.import_module(module_name), attr)
    return cls(model, adapter=adapter, **options)


__all__ = ["Backend", "Completion", "SamplingParams", "BACKENDS", "load_backend"]
