"""Monitor: label-free health signals of a round, and whether the next round should run.

Signals need no labels (agreement, abstention, answer entropy, length, truncation, diversity).
`decide` turns the metric history into continue / stop / reset: stop when a round's return
(held-out accuracy gained) falls below `min_return`; reset to the best round's weights when
accuracy falls more than `reset_tolerance` below the best so far.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from selfimprove.config import MonitorConfig
from selfimprove.records import Sample, Vote


def _entropy(counts: dict[str, int]) -> float:
    total = sum(counts.values())
    return -sum(n / total * math.log(n / total) for n in counts.values()) if total else 0.0


def distinct_n(texts: list[str], n: int = 2) -> float:
    """Distinct word n-grams / all word n-grams: near 0 when every rationale says the same thing."""
    grams = [tuple(words[i:i + n]) for t in texts for words in [t.split()] for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def label_free_signals(samples: list[Sample], votes: list[Vote]) -> dict:
    if not samples:
        return {}
    answered = [v for v in votes if v.num_votes]
    return {
        "agreement": sum(v.share for v in answered) / len(answered) if answered else 0.0,
        "answer_entropy": sum(_entropy(v.counts) for v in votes) / len(votes),
        "abstention_rate": sum(s.answer is None for s in samples) / len(samples),
        "truncation_rate": sum(s.truncated for s in samples) / len(samples),
        "mean_tokens": sum(s.num_tokens for s in samples) / len(samples),
        "distinct_2": distinct_n([s.text for s in samples]),
    }


@dataclass(frozen=True)
class Decision:
    action: str  # continue | stop | reset
    reason: str
    best_round: int


def decide(history: list[dict], cfg: MonitorConfig) -> Decision:
    """`history` is metrics.jsonl so far, round 0 (the base model) first."""
    scored = [h for h in history if h.get("accuracy") is not None]
    if not scored:
        return Decision("continue", "no held-out accuracy to monitor", history[-1]["round"])
    best = max(scored, key=lambda h: (h["accuracy"], -h["round"]))
    last = history[-1]
    if last.get("kept", 1) == 0:
        return Decision("stop", "no path passed the gates: nothing left to learn from", best["round"])
    if last.get("accuracy") is None or len(scored) < 2:
        return Decision("continue", "", best["round"])
    drop = best["accuracy"] - last["accuracy"]
    if cfg.reset_tolerance is not None and drop > cfg.reset_tolerance:
        return Decision("reset", f"accuracy {last['accuracy']:.3f} is {drop:.3f} below round {best['round']}",
                        best["round"])
    gain = last["accuracy"] - scored[-2]["accuracy"]
    if cfg.min_return is not None and gain < cfg.min_return:
        return Decision("stop", f"round gained {gain:+.3f} accuracy, under min_return {cfg.min_return}",
                        best["round"])
    return Decision("continue", "", best["round"])
