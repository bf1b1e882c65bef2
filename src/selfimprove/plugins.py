"""Named plug-ins: a config names a built-in ("sft") or a user's own "package.module:attr", and each
plug-in declares itself once (`Plugin`).

Each plug-in kind keeps one literal dict of its built-ins (GATES, BACKENDS, METHODS, ...), mapping a
name to "module:attr", imported only when asked for: a plug-in whose module is missing fails alone,
with a message naming the config key. The attr is the plug-in's declaration (a `Plugin` beside its
code) or, for a user's plug-in, a plain callable: `declared` makes it a `Plugin` without options
model, traits or artifacts. Preflight, layout, repair, report and the CLI ask the declaration; none
of them names a built-in. (The adaptation methods' declarations are `adapt.Method`, which predates this.)
"""

from __future__ import annotations

import importlib
import inspect
import typing
from dataclasses import dataclass
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, ValidationError, create_model


def resolve(name: str, builtins: dict[str, str], where: str):
    """The object `name` stands for; `where` is the config key, for the error message."""
    target = builtins.get(name, name)
    if ":" not in target:
        raise ValueError(f"{where}: unknown name {name!r}; known: {', '.join(sorted(builtins))} "
                         "(or give your own as 'package.module:attr')")
    module_name, attr = target.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - a user's plug-in can fail to import in any way
        raise ValueError(f"{where}: cannot import module {module_name!r} ({type(err).__name__}: {err})") from None
    if not hasattr(module, attr):
        raise ValueError(f"{where}: module {module_name!r} has no attribute {attr!r}")
    return getattr(module, attr)


def read_options(model: type[BaseModel], options: dict[str, Any], key: str) -> BaseModel:
    """A plug-in's `options` read by its options model; a mistake is a ValueError naming each key under `key`."""
    try:
        return model(**options)
    except ValidationError as err:
        raise ValueError(f"{key}: " + "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in err.errors())) from None


@dataclass(frozen=True)
class Plugin:
    """A plug-in (an acquisition source, a vote method, a gate, a backend), declared once beside its code."""

    target: str  # "package.module:attr", the callable; imported only when the plug-in is used
    # Its options' model (a `sections.Section`: types, defaults and bounds written once, each with why),
    # read before any work; None = its options are the callable's keyword arguments (bound by preflight).
    options: type[BaseModel] | None = None
    # check(config, options, task): the options against the rest of the config and the task; ValueError
    # naming the option. Run by preflight.
    check: Callable[[Any, Any, Any], None] | None = None
    # What the rest of the package asks about it (each kind's module names its traits: a gate's
    # "needs_vote", a vote method's "answer_strings", a backend's "launches_processes", ...).
    traits: frozenset[str] = frozenset()
    artifacts: tuple = ()  # the round files it writes, each a `layout.Artifact` with its stage
    # (pip extra, modules it imports) beyond the core install, checked before it is imported; None = none.
    extra: tuple[str, tuple[str, ...]] | None = None
    # "package.module:function", its section of `selfimprove report`: section(store, rounds, read) ->
    # {figure id: SVG or HTML}, drawn from what its rounds recorded (`read(name)` reads a JSONL artifact).
    report: str | None = None

    def read(self, options: dict, key: str):
        """`options` read by the options model (ValueError naming each key under `key`); None without one."""
        return None if self.options is None else read_options(self.options, options, key)


def signature_model(target: Callable, skip: int) -> type[BaseModel]:
    """The options model a plug-in without one has: its callable's keyword parameters after the first `skip`,
    with their annotations (types checked; an annotation that cannot be read checks nothing) and defaults.
    Unknown options are refused, unless the callable takes **kwargs. A class is read through its __init__
    (where its annotations are), `self` skipped too."""
    if inspect.isclass(target):
        target, skip = target.__init__, skip + 1
    params = list(inspect.signature(target).parameters.values())[skip:]
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:  # noqa: BLE001 - a user's annotation naming what its module cannot import
        hints = {}
    fields = {p.name: (hints.get(p.name, Any), ... if p.default is p.empty else p.default) for p in params
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    extra = "allow" if any(p.kind is p.VAR_KEYWORD for p in params) else "forbid"
    config = ConfigDict(extra=extra, arbitrary_types_allowed=True, allow_inf_nan=False)
    try:
        return create_model(f"{getattr(target, '__name__', 'plugin')}_options", __config__=config, **fields)
    except Exception:  # noqa: BLE001 - an annotation pydantic cannot check: the names alone are checked
        return create_model(f"{getattr(target, '__name__', 'plugin')}_options", __config__=config,
                            **{n: (Any, d) for n, (_, d) in fields.items()})


def declared(name: str, builtins: dict[str, str], where: str) -> Plugin:
    """The declaration `name` stands for: a built-in's, a user's own `Plugin`, or a user's plain callable
    as a `Plugin` with nothing declared. ValueError (naming `where`) when it cannot be resolved."""
    found = resolve(name, builtins, where)
    if isinstance(found, Plugin):
        return found
    if not callable(found):
        raise ValueError(f"{where}: {name!r} is neither a plug-in declaration nor a function")
    return Plugin(builtins.get(name, name))


def callable_of(plugin: Plugin, where: str):
    """The plug-in's callable (imported now)."""
    return resolve(plugin.target, {}, where)
