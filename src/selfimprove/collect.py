"""Collect: the unlabeled question pool and the labelled held-out split.

Writes `pool.jsonl` (id and question only: what the loop may see), `pool_gold.jsonl` (the pool's
gold answers where the source has them, read only by diagnostics) and `heldout.jsonl`.
"""

from __future__ import annotations

from dataclasses import replace

from selfimprove.config import TaskConfig
from selfimprove.records import Item
from selfimprove.tasks.base import Fields


def _fields(cfg: TaskConfig) -> Fields | None:
    return Fields(**cfg.fields.model_dump()) if cfg.fields else None


def load_pool(task, cfg: TaskConfig) -> tuple[list[Item], dict[str, str]]:
    """The pool with gold answers stripped, and the stripped gold answers by question id."""
    items = task.load(cfg.source, split=cfg.split, limit=cfg.limit, fields=_fields(cfg))
    if not items:
        raise ValueError(f"the question pool is empty (task {cfg.name}, source {cfg.source}, split {cfg.split}); "
                         "point task.source at a file or dataset with questions")
    gold = {i.id: i.gold for i in items if i.gold is not None}
    return [replace(i, gold=None) for i in items], gold


def _key(question: str) -> str:
    return " ".join(question.lower().split())


def without_heldout(pool: list[Item], heldout: list[Item]) -> list[Item]:
    """Drop pool questions that are also held-out questions (one file given as both splits, say)."""
    seen = {_key(i.question) for i in heldout}
    return [i for i in pool if _key(i.question) not in seen]


def load_heldout(task, cfg: TaskConfig) -> list[Item]:
    if cfg.eval_limit == 0:
        return []
    source = cfg.eval_source if cfg.eval_source is not None else cfg.source
    items = task.load(source, split=cfg.eval_split, limit=cfg.eval_limit, fields=_fields(cfg))
    unlabeled = [i.id for i in items if i.gold is None]
    if unlabeled:
        raise ValueError(f"held-out split {cfg.eval_split!r} has {len(unlabeled)} questions without an answer "
                         f"(e.g. {unlabeled[0]}); set task.eval_limit=0 to run without held-out evaluation")
    return items
