"""Generation backends. `BACKENDS` maps a config name (`generate.backend`) to its factory, and
`EXTRAS` says which optional dependencies (pip extra, modules) it needs beyond the core install.

A factory is called once per run as `factory(model_config, generate_config, **generate.backend_options)`;
a user's own backend is given as "package.module:factory". A factory that declares a `cache_dir`
parameter also gets the run's cache folder (where the HTTP backend keeps each request's answer).
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

from selfimprove import plugins
from selfimprove.backends.base import Backend, Completion, Prompt, SamplingParams

BACKENDS: dict[str, str] = {
    "transformers": "selfimprove.backends.transformers:TransformersBackend",
    "openai_http": "selfimprove.backends.openai_http:OpenAIHTTPBackend",
    "vllm": "selfimprove.backends.vllm:VLLMBackend",
    "ray": "selfimprove.backends.ray_backend:RayBackend",
}

# backend -> (pip extra, modules it imports); None = the core install has everything.
EXTRAS: dict[str, tuple[str, tuple[str, ...]] | None] = {
    "transformers": None,
    "openai_http": ("http", ("httpx",)),
    "vllm": ("gpu", ("vllm",)),
    "ray": ("cluster", ("ray",)),
}


class MissingExtraError(ValueError):
    pass


def missing_modules(name: str) -> list[str]:
    """The modules backend `name` needs that are not installed ([] for user backends: their import says)."""
    extra = EXTRAS.get(name)
    return [] if extra is None else [m for m in extra[1] if importlib.util.find_spec(m) is None]


def require_extra(name: str) -> None:
    """Fail before any work when backend `name`'s optional dependencies are not installed."""
    if missing := missing_modules(name):
        extra = EXTRAS[name][0]
        raise MissingExtraError(f"generate.backend {name!r} needs {', '.join(missing)}, which is not installed: "
                                f"pip install 'selfimprove[{extra}]'")


def backend_factory(name: str):
    require_extra(name)
    return plugins.resolve(name, BACKENDS, "generate.backend")


def create_backend(model, generate, cache_dir: str | Path | None = None) -> Backend:
    """The run's engine, from the `model` and `generate` config sections (plus generate.backend_options)."""
    return create_backend_from(generate.backend, model, generate, generate.backend_options, cache_dir)


def create_backend_from(name: str, model, generate, options: dict, cache_dir: str | Path | None = None) -> Backend:
    """Backend `name` with `options` (an engine inside another, like the Ray backend's, is made this way)."""
    factory = backend_factory(name)
    options = dict(options)
    accepted = inspect.signature(factory).parameters
    if cache_dir is not None and "cache_dir" in accepted:
        options.setdefault("cache_dir", str(cache_dir))
    if "make_backend" in accepted:  # a backend that holds other engines (Ray) builds them through this function
        options.setdefault("make_backend", create_backend_from)
    try:  # check the options against the factory's signature before any work (a model load, a connection)
        inspect.signature(factory).bind(model, generate, **options)
    except TypeError as err:
        raise ValueError(f"generate.backend_options: {err} (backend {name!r})") from None
    return factory(model, generate, **options)


__all__ = ["Backend", "Completion", "Prompt", "SamplingParams", "BACKENDS", "EXTRAS", "MissingExtraError",
           "backend_factory", "create_backend", "create_backend_from", "missing_modules", "require_extra"]
