"""Per-question outcomes: which held-out questions a model got right, as a string a paired test reads.

One character a question ("1" right, "0" wrong), questions in sorted id order, so two arms scored on the
same set line up. Graded as the loop grades accuracy (`tasks.base.graded`: the task's own `grade`, else
`is_equivalent`), on the greedy answer: the first sample of each question (the scorer samples greedy first).
"""

from __future__ import annotations

import json
from pathlib import Path


def outcome_string(task, rows: list[dict], gold: dict[str, str], questions: dict[str, str] | None = None) -> str:
    """`rows`: scored samples (`question_id`, `answer`), greedy first; `gold`: id -> gold answer."""
    from selfimprove.tasks.base import graded

    first: dict[str, str | None] = {}
    for r in rows:
        first.setdefault(r["question_id"], r["answer"])
    ids = sorted(gold)
    right = graded(task, [((questions or {}).get(q, ""), first.get(q), gold[q]) for q in ids])
    return "".join("1" if ok else "0" for ok in right)


def from_samples(task, samples, items) -> str:
    """From `evaluate_weights(...).heldout_samples` and the items scored (what a benchmark scoring
    weights itself, outside the loop, has)."""
    rows = [{"question_id": s.question_id, "answer": s.answer} for s in samples]
    return outcome_string(task, rows, {i.id: i.gold for i in items}, {i.id: i.question for i in items})


def from_run(run_dir: Path, task) -> dict[str, str]:
    """Every scored round of a loop run directory: {round: outcomes} from its eval samples and held-out gold."""
    from selfimprove.rundir import layout

    run_dir = Path(run_dir)
    held = [json.loads(line) for line in (run_dir / layout.HELDOUT).read_text().splitlines()]
    gold, questions = {r["id"]: r["gold"] for r in held}, {r["id"]: r.get("question", "") for r in held}
    out = {}
    for line in (run_dir / layout.HISTORY).read_text().splitlines():
        r = json.loads(line)["round"]
        path = run_dir / layout.round_file(r, layout.EVAL_SAMPLES)
        if path.exists():
            rows = [json.loads(x) for x in path.read_text().splitlines()]
            out[str(r)] = outcome_string(task, rows, gold, questions)
    return out


def accuracy(outcomes: str) -> float:
    return outcomes.count("1") / len(outcomes)
