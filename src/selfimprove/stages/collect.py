"""Collect: the unlabeled question pool, the labelled held-out split and the anchor set, once per run.

Writes `pool.jsonl` (id and question only: what the loop may see), `pool_gold.jsonl` (the pool's
gold answers where the source has them, read only by diagnostics), `heldout.jsonl` and
`anchor.jsonl` (the original skill, when `monitor.anchor_source` is set).
"""

from __future__ import annotations

from dataclasses import replace

from selfimprove.rundir import layout
from selfimprove.sections import Config, TaskConfig
from selfimprove.context import Collected
from selfimprove.records import Item, from_row, to_row
from selfimprove.rundir.store import RunStore


def load_pool(task, cfg: TaskConfig) -> tuple[list[Item], dict[str, str]]:
    """The pool with gold answers stripped, and the stripped gold answers by question id."""
    items = task.load(cfg.source, split=cfg.split, limit=cfg.limit, fields=cfg.fields)
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
    items = task.load(source, split=cfg.eval_split, limit=cfg.eval_limit, fields=cfg.heldout_fields)
    unlabeled = [i.id for i in items if i.gold is None]
    if unlabeled:
        raise ValueError(f"held-out split {cfg.eval_split!r} has {len(unlabeled)} questions without an answer "
                         f"(e.g. {unlabeled[0]}); set task.eval_limit=0 to run without held-out evaluation")
    return items


def _collect_questions(task, cfg: TaskConfig) -> tuple[list[Item], dict[str, str], list[Item]]:
    pool, gold = load_pool(task, cfg)
    heldout = load_heldout(task, cfg)
    pool = without_heldout(pool, heldout)
    if not pool:
        raise ValueError("every pool question is also a held-out question: give task.eval_source or "
                         "task.eval_split a different set")
    return pool, gold, heldout


def collect(store: RunStore, task, config: Config) -> Collected:
    """The run's questions: read from the run directory, or collected and written there first."""
    if not all(store.done(n) for n in (layout.POOL_GOLD, layout.POOL, layout.HELDOUT)):  # missing or damaged
        pool, gold, heldout = _collect_questions(task, config.task)
        store.write_jsonl(layout.POOL_GOLD, [{"id": k, "gold": v} for k, v in gold.items()])
        store.write_jsonl(layout.POOL, [to_row(i) for i in pool])
        store.write_jsonl(layout.HELDOUT, [to_row(i) for i in heldout])
    m = config.monitor
    anchor = [] if m.anchor_source is None else store.produce_jsonl(layout.ANCHOR, lambda: [
        to_row(i) for i in task.load(m.anchor_source, split=m.anchor_split, limit=m.anchor_limit)])
    return Collected(pool=[from_row(Item, r) for r in store.read_jsonl(layout.POOL)],
                     gold={r["id"]: r["gold"] for r in store.read_jsonl(layout.POOL_GOLD)},
                     heldout=[from_row(Item, r) for r in store.read_jsonl(layout.HELDOUT)],
                     anchor=[from_row(Item, r) for r in anchor])
