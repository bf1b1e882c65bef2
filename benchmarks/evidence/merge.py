"""Merging result parts that ran side by side (one seed, or one set of arms, a process) into one result."""

from __future__ import annotations


def by_arm_and_seed(parts: list[dict], key: str = "arms") -> dict:
    """`{arm: {seed: result}}` under `key` of every part, as one; a later part wins for the same arm and seed
    (a rerun of one seed replaces it)."""
    merged: dict = {}
    for part in parts:
        for arm, by_seed in (part.get(key) or {}).items():
            merged.setdefault(arm, {}).update(by_seed)
    return merged
