"""Range checks of the built-in acquisition methods' options: preflight runs them before any work, and
each error names the option and says what to give instead."""

from __future__ import annotations


def integers(options: dict, bounds: dict[str, tuple[int, int]]) -> None:
    for name, (low, high) in bounds.items():
        value = options.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high):
            raise ValueError(f"{name}: {value!r} is out of range; give an integer from {low} to {high}")


def numbers(options: dict, bounds: dict[str, tuple[float, float]]) -> None:
    """Each named option, when given, a number within [low, high]."""
    for name, (low, high) in bounds.items():
        value = options.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not low <= value <= high):
            raise ValueError(f"{name}: {value!r} is out of range; give a number from {low} to {high}")


def choice(options: dict, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = options.get(name, default)
    if value not in allowed:
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value
