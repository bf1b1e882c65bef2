"""Generation backends. `BACKENDS` maps a config name (`generate.backend`) to its factory.

A factory is called once per run as `factory(model_config, generate_config, **generate.backend_options)`;
a user's own backend is given as "package.module:factory".
"""

from __future__ import annotations

import inspect

from selfimprove import plugins
from selfimprove.backends.base import Backend, Completion, Prompt, SamplingParams

BACKENDS: dict[str, str] = {
    "transformers": "selfimprove.backends.transformers:TransformersBackend",
}


def backend_factory(name: str):
    return plugins.resolve(name, BACKENDS, "generate.backend")


def create_backend(model, generate) -> Backend:
    """The run's engine, from the `model` and `generate` config sections (plus generate.backend_options)."""
    factory = backend_factory(generate.backend)
    try:  # check the options against the factory's signature before any work (a model load, a connection)
        inspect.signature(factory).bind(model, generate, **generate.backend_options)
    except TypeError as err:
        raise ValueError(f"generate.backend_options: {err} (backend {generate.backend!r})") from None
    return factory(model, generate, **generate.backend_options)


__all__ = ["Backend", "Completion", "Prompt", "SamplingParams", "BACKENDS", "backend_factory", "create_backend"]
