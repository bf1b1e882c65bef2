"""Named plug-ins: a config names a built-in ("sft") or a user's own "package.module:attr".

Each plug-in kind keeps one literal dict of its built-ins (GATES, BACKENDS, METHODS, ...), mapping a
name to "module:attr", imported only when asked for: a plug-in whose module is missing fails alone,
with a message naming the config key.
"""

from __future__ import annotations

import importlib


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
