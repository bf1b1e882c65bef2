"""Generation backends. `BACKENDS` maps a config name (`generate.backend`) to its declaration
(`plugins.Plugin`: the factory, and the optional dependencies, pip extra and modules, it needs beyond the
core install, checked before the factory's module is imported); `EXTRAS` is that column alone.

A factory is called once per run as `factory(model_config, generate_config, **generate.backend_options)`;
a user's own backend is given as "package.module:factory". A factory that declares a `cache_dir`
parameter also gets the run's cache folder (where the HTTP backend keeps each request's answer).
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

from selfimprove import plugins
from selfimprove.plugins import Plugin
from selfimprove.backends.base import Backend, Completion, Prompt, SamplingParams

# Declared here, not in their modules: a backend's module imports its engine (torch, vllm, ray), which
# may be missing, and that is what its declaration must say before any import.
BACKENDS: dict[str, Plugin] = {
    "transformers": Plugin("selfimprove.backends.transformers:TransformersBackend"),
    "openai_http": Plugin("selfimprove.backends.openai_http:OpenAIHTTPBackend", extra=("http", ("httpx",))),
    "vllm": Plugin("selfimprove.backends.vllm:VLLMBackend", extra=("gpu", ("vllm",))),
    "ray": Plugin("selfimprove.backends.ray_backend:RayBackend", extra=("cluster", ("ray",))),
}
TARGETS = {name: b.target for name, b in BACKENDS.items()}  # as plugins.resolve reads them
# backend -> (pip extra, modules it imports); None = the core install has everything.
EXTRAS: dict[str, tuple[str, tuple[str, ...]] | None] = {name: b.extra for name, b in BACKENDS.items()}


def declaration(name: str) -> Plugin:
    """generate.backend `name`'s declaration: a built-in's, or a user's (a plain factory: nothing declared)."""
    return BACKENDS[name] if name in BACKENDS else plugins.declared(name, TARGETS, "generate.backend")


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
    return plugins.callable_of(declaration(name), "generate.backend")


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


__all__ = ["Backend", "Completion", "Prompt", "SamplingParams", "BACKENDS", "EXTRAS", "TARGETS", "MissingExtraError",
           "backend_factory", "declaration", "create_backend", "create_backend_from", "missing_modules", "require_extra"]
