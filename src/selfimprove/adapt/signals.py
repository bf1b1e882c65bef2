"""The label-free signals of label-free RL's own samples (rows of `rl_samples.jsonl`), which the collapse
guard (guard.py) keeps in a band and `rl_steps.jsonl` records per step.

A light module (no torch, no transformers): the RL options (`rl_options.py`) check `bands` against
`SIGNALS` when a config is loaded.
"""

from __future__ import annotations

import math
from collections import Counter

# The signals `signals` computes, in its order: the names `adapt.options.bands` may give.
SIGNALS = ("answer_entropy", "agreement", "mean_tokens")


def entropy(counts: Counter) -> float:
    total = sum(counts.values())
    return -sum(n / total * math.log(n / total) for n in counts.values()) if total else 0.0


def signals(rows: list[dict]) -> dict:
    """Per (step, question) group, the entropy of its answers and the majority's share among answered;
    and the mean completion length. Keyed by `SIGNALS`."""
    if not rows:
        return {}
    groups: dict[tuple, Counter] = {}
    for r in rows:
        counts = groups.setdefault((r["step"], r["question_id"]), Counter())
        if r["answer"] is not None:
            counts[r["answer"]] += 1
    answered = [c for c in groups.values() if c]
    values = (sum(entropy(c) for c in groups.values()) / len(groups),
              sum(max(c.values()) / sum(c.values()) for c in answered) / len(answered) if answered else 0.0,
              sum(r["tokens"] for r in rows) / len(rows))
    return dict(zip(SIGNALS, values))


def zero_variance_share(rows: list[dict]) -> float | None:
    """The share of (step, question) groups whose scored rewards all agree: groups with no advantage,
    which carry no policy gradient (DAPO's motivation for dynamic sampling). None without rows."""
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["step"], r["question_id"]), []).append(r["reward"])
    if not groups:
        return None
    flat = [[x for x in g if x is not None] for g in groups.values()]
    return sum(1 for g in flat if len(g) < 2 or max(g) - min(g) <= 1e-6) / len(flat)
