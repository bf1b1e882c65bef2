"""The untouched test split: questions nothing in a run saw, scored only after the run has ended.

A run's held-out set is its *dev* set: the loop scores it every round, and the monitor, the guard and
whoever tunes a recipe choose on it. The *test* set comes from the same generator with another seed
(the run's seed + TEST_SEED_OFFSET), minus every question that equals or near-duplicates (NEAR of its word
pairs, the acquisition guard's measure) a question every arm of that seed shares: the pool, the dev set
and the labelled seed set (`shared_seen`). It depends on nothing an arm does, so all arms of a seed are
scored on the same questions and stay paired; what a single run saw beyond that (questions it wrote, for
one) is counted against the test set (`overlap_with_run`), not removed. Every round's weights are scored
on it afterwards, greedy; the choices never read it, the report does.
"""

from __future__ import annotations

import json
from pathlib import Path

TEST_SEED_OFFSET = 7919  # rl_evidence's untouched set used the same offset
NEAR = 0.8  # share of word pairs: the acquisition guard's near-duplicate threshold
SCORES = "test_scores.json"  # beside the run's own files, keyed by the test source


def with_seed(source: str, seed: int, n: int | None = None) -> str:
    """A generator source spec ("steps=3,max_value=30,n=200,seed=0") with another seed (and size)."""
    fields = dict(part.split("=", 1) for part in source.split(",") if "=" in part)
    if "seed" not in fields and not fields:
        raise ValueError(f"{source!r} is not a generator spec: a file-backed task needs a held-back split instead")
    fields["seed"] = str(seed)
    if n is not None:
        fields["n"] = str(n)
    return ",".join(f"{k}={v}" for k, v in fields.items())


def shared_seen(task, source: str, split: str, eval_source: str, eval_split: str, eval_limit: int | None,
                extra: list[Path] = ()) -> list[str]:
    """The questions every arm of one seed shares: the pool `source`, the dev set, and the rows of `extra`
    JSONL files (a labelled seed set)."""
    rows = (json.loads(line) for f in map(Path, extra) if f.exists() for line in f.read_text().splitlines() if line.strip())
    return ([i.question for i in task.load(source, split=split)] +
            [i.question for i in task.load(eval_source, split=eval_split, limit=eval_limit)] +
            [r["question"] for r in rows if r.get("question")])


def seen_questions(run_dir: Path, extra: list[Path] = ()) -> list[str]:
    """Every question a run sampled, trained on or was scored on (and those of `extra` JSONL files, e.g.
    its labelled replay set)."""
    from selfimprove.rundir import layout

    run_dir = Path(run_dir)
    files = [run_dir / layout.POOL, run_dir / layout.HELDOUT, run_dir / "anchor.jsonl",
             *sorted(run_dir.glob("rounds/r*/pool.jsonl")), *map(Path, extra)]
    rows = (json.loads(line) for f in files if f.exists() for line in f.read_text().splitlines() if line.strip())
    return [r["question"] for r in rows if r.get("question")]


def disjoint(items: list, seen: list[str], near: float = NEAR) -> tuple[list, int]:
    """`items` without those that equal or near-duplicate a `seen` question; and how many were removed."""
    from selfimprove.acquire.screen import NearIndex

    index = NearIndex(near)
    for i, question in enumerate(seen):
        index.add(str(i), question)
    kept = [it for it in items if index.exact(it.question) is None and index.closest(it.question)[1] < near]
    return kept, len(items) - len(kept)


def test_items(task, eval_source: str, split: str, seed: int, n: int, seen: list[str]) -> tuple[list, dict]:
    """The test split for a run of `seed` whose dev set came from `eval_source` (its `split`); and what
    was removed as seen."""
    source = with_seed(eval_source, seed + TEST_SEED_OFFSET, n)
    items = task.load(source, split=split, limit=n)
    kept, removed = disjoint(items, seen)
    return kept, {"source": source, "drawn": len(items), "removed_as_seen": removed, "questions": len(kept)}


def score_run(run_dir: Path, n: int, seen: list[str]) -> dict:
    """Greedy accuracy and per-question outcomes of every round's weights of a finished loop run on the
    test split of its seed (`seen`: `shared_seen` for that seed, the same for every arm); cached in the run
    directory, so a rerun scores only what is new."""
    from rich.console import Console

    from selfimprove.rundir import layout
    from selfimprove.backends import create_backend
    from selfimprove.config import load_config
    from selfimprove.stages.evaluate import evaluate_weights
    from selfimprove.rundir.finished import _here
    from selfimprove.records import Weights
    from selfimprove.tasks import get_task

    from benchmarks.evidence import outcomes

    run_dir = Path(run_dir).resolve()
    cfg = load_config(run_dir / layout.CONFIG, ["evaluate.k=1", "evaluate.temperature=0"])
    task = get_task(cfg.task.name)
    items, split = test_items(task, cfg.task.eval_source or cfg.task.source, cfg.task.eval_split, cfg.run.seed, n,
                              seen)
    replay = [Path(cfg.adapt.replay)] if getattr(cfg.adapt, "replay", None) else []
    split["overlap_with_run"] = len(items) - len(disjoint(items, seen_questions(run_dir, replay))[0])
    cache = run_dir / SCORES
    done = json.loads(cache.read_text()) if cache.exists() else {}
    if done.get("split", {}).get("source") != split["source"]:
        done = {"split": split}
    history = [json.loads(line) for line in (run_dir / layout.HISTORY).read_text().splitlines()]
    backend = None
    for h in history:
        key = str(h["round"])
        if key in done:
            continue
        backend = backend or create_backend(cfg.model, cfg.generate)
        weights = Weights(_here(run_dir, h.get("model")) or cfg.model.name, _here(run_dir, h.get("adapter")))
        with Console(quiet=True).capture():
            scores = evaluate_weights(backend, weights, task, cfg, items, [], h["round"])
        done[key] = {"accuracy": scores.metrics["accuracy"],
                     "outcomes": outcomes.from_samples(task, scores.heldout_samples, items)}
        cache.write_text(json.dumps(done))
    if backend is not None:
        backend.close()
    return done


def forget_after(run_dir: Path, after_round: int) -> None:
    """Drop the cached test scores of rounds after `after_round`: a run branched from a copy of another
    must not inherit the source's later rounds, which its own later rounds replace."""
    cache = Path(run_dir) / SCORES
    if cache.exists():
        done = json.loads(cache.read_text())
        cache.write_text(json.dumps({k: v for k, v in done.items() if not k.isdigit() or int(k) <= after_round}))
