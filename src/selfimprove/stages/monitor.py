"""Monitor: the autonomous evaluation layer that runs every round, and whether the next round should run.

Per round it adds to `metrics.json` (and so `metrics.jsonl`):
- label-free signals of the pool's samples (no labels needed): agreement, answer entropy, abstention,
  truncation, mean length, distinct-2 and the share of the most common rationale skeleton;
- compute spent: tokens generated on the pool plus tokens the trainer processed;
- against the history: length drift (vs round 1 and the previous round), forgetting (greedy accuracy
  on an anchor set from the original skill, measured by evaluate, vs its best earlier value) and the
  round's return: held-out accuracy points gained per million tokens spent.

`decide` turns the history into continue / stop / reset and names the round whose weights carry on
(`weights_round`): reset restores the best earlier round when held-out accuracy, or a guarded
label-free signal, degrades past its tolerance; stop ends the run when the return stays under
`min_return` for `patience` rounds, or when nothing passed the gates. The short-term buffer of the
last `stagnation_window` rounds (memory.stagnation) stops or resets a run whose progress stalled.
A run that stops while degraded also falls back to the best round, so the final weights are never
the degraded ones.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, replace

from selfimprove.sections import MonitorConfig
from selfimprove.sampling.memory import stagnation
from selfimprove.names import GUARDED_SIGNALS
from selfimprove.records import RoundMetrics, Sample, Vote

NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*")


def _entropy(counts: dict[str, int]) -> float:
    total = sum(counts.values())
    return -sum(n / total * math.log(n / total) for n in counts.values()) if total else 0.0


def distinct_n(texts: list[str], n: int = 2) -> float:
    """Distinct word n-grams / all word n-grams: near 0 when every rationale says the same thing."""
    grams = [tuple(words[i:i + n]) for t in texts for words in [t.split()] for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def skeleton(text: str) -> str:
    """A rationale with every number replaced by '#': what is left is its wording, its template."""
    return " ".join(NUMBER.sub("#", text).split())


def skeleton_share(texts: list[str]) -> float:
    """Share of all rationales that share the most common skeleton: near 1 when the model writes one template."""
    if not texts:
        return 0.0
    return Counter(skeleton(t) for t in texts).most_common(1)[0][1] / len(texts)


def label_free_signals(samples: list[Sample], votes: list[Vote]) -> dict:
    if not samples:
        return {}
    answered = [v for v in votes if v.num_votes]
    texts = [s.text for s in samples]
    return {
        "agreement": sum(v.share for v in answered) / len(answered) if answered else 0.0,
        "answer_entropy": sum(_entropy(v.counts) for v in votes) / len(votes),
        "abstention_rate": sum(s.answer is None for s in samples) / len(samples),
        "truncation_rate": sum(s.truncated for s in samples) / len(samples),
        "mean_tokens": sum(s.num_tokens for s in samples) / len(samples),
        "distinct_2": distinct_n(texts),
        "skeleton_share": skeleton_share(texts),
    }


def compute_spent(samples: list[Sample], train_log: list[dict], acquired: int = 0, acquired_trained: int = 0) -> dict:
    """Tokens a round spent: completions generated on the pool (and, `acquired`, while acquiring it: questions
    the model wrote, paths that judged them) plus tokens the trainer processed (and, `acquired_trained`, an
    acquisition source's own training: the proposer's update).

    TRL logs `num_tokens` cumulatively (prompt + completion, without padding); held-out and anchor
    evaluation are monitoring, not improvement, and are not counted.
    """
    generated = sum(s.num_tokens for s in samples) + acquired
    trained = (int(train_log[-1].get("num_tokens", 0)) if train_log else 0) + acquired_trained
    return {"generated_tokens": generated, "trained_tokens": trained, "compute_tokens": generated + trained}


def _by_round(history: list[RoundMetrics]) -> dict[int, RoundMetrics]:
    return {h.round: h for h in history}


def start_round(history: list[RoundMetrics]) -> int:
    """The round whose weights the next round starts from: the last round's, or the one it restored."""
    return history[-1].carried_round


def compare(history: list[RoundMetrics], metrics: RoundMetrics) -> dict:
    """Signals of `metrics` (the round just run) that need the earlier rounds in `history`."""
    out = {}
    rounds = _by_round(history)
    lengths = [h.mean_tokens for h in history if h.mean_tokens]
    if metrics.mean_tokens is not None and lengths:
        out["length_drift"] = metrics.mean_tokens / lengths[0] - 1  # relative to round 1
        out["length_drift_prev"] = metrics.mean_tokens / lengths[-1] - 1
    anchors = [h.anchor_accuracy for h in history if h.anchor_accuracy is not None]
    if metrics.anchor_accuracy is not None and anchors:
        out["forgetting"] = max(0.0, max(anchors) - metrics.anchor_accuracy)
    start = rounds.get(start_round(history)) if history else None
    if metrics.accuracy is not None and start is not None and start.accuracy is not None:
        out["gain"] = metrics.accuracy - start.accuracy  # vs the weights this round started from
        tokens = metrics.compute_tokens or 0
        out["return_per_mtoken"] = 100 * out["gain"] / (tokens / 1e6) if tokens else None
    return out


@dataclass(frozen=True)
class Decision:
    action: str  # continue | stop | reset
    reason: str
    best_round: int  # highest held-out accuracy so far (this round included)
    weights_round: int  # whose weights the next round starts from, or are final when the run ends


def _degraded(signal: str, value: float, earlier: list[float], tolerance: float) -> str | None:
    falls = GUARDED_SIGNALS[signal] == "falls"
    ref = max(earlier) if falls else min(earlier)
    change = ref - value if falls else value - ref
    if change > tolerance:
        return f"{signal} {value:.3f} {'fell' if falls else 'rose'} {change:.3f} from its best {ref:.3f}"
    return None


def _best(scored: list[RoundMetrics]) -> RoundMetrics:
    return max(scored, key=lambda h: (h.accuracy, -h.round))


def alarms(history: list[RoundMetrics], cfg: MonitorConfig) -> list[str]:
    """Why the last round is worse than an earlier one beyond its tolerance (empty: healthy)."""
    last, earlier = history[-1], history[:-1]
    out = []
    scored = [h for h in earlier if h.accuracy is not None]
    if cfg.reset_tolerance is not None and last.accuracy is not None and scored:
        best = _best(scored)
        drop = best.accuracy - last.accuracy
        if drop > cfg.reset_tolerance:
            out.append(f"accuracy {last.accuracy:.3f} is {drop:.3f} below round {best.round}")
    for signal, tolerance in cfg.signal_tolerance.items():
        values = [getattr(h, signal) for h in earlier if getattr(h, signal) is not None]
        if getattr(last, signal) is not None and values:
            why = _degraded(signal, getattr(last, signal), values, tolerance)
            out += [why] if why else []
    return out


def restore_round(history: list[RoundMetrics]) -> int:
    """The round to go back to: the best earlier round by accuracy that was not itself reset away from;
    without held-out accuracy, the round the degraded one started from."""
    earlier = [h for h in history[:-1] if h.decision != "reset"]
    scored = [h for h in earlier if h.accuracy is not None]
    if scored:
        return _best(scored).round
    return start_round(history[:-1]) if len(history) > 1 else history[-1].round


def _low_return(history: list[RoundMetrics], cfg: MonitorConfig) -> str | None:
    recent = history[1:][-cfg.patience:]
    if cfg.min_return is None or len(recent) < cfg.patience:
        return None
    if all(h.return_per_mtoken is not None and h.return_per_mtoken < cfg.min_return for h in recent):
        returns = ", ".join(f"{h.return_per_mtoken:+.2f}" for h in recent)
        return (f"return (accuracy points per 1M tokens) {returns} under min_return {cfg.min_return} "
                f"for {cfg.patience} round(s)")
    return None


def decide(history: list[RoundMetrics], cfg: MonitorConfig) -> Decision:
    """`history` is metrics.jsonl so far, round 0 (the base model) first, the round just run last."""
    last = history[-1]
    scored = [h for h in history if h.accuracy is not None]
    best = _best(scored).round if scored else last.round
    wrong = alarms(history, cfg)
    weights = restore_round(history) if wrong else last.round
    restored = f"; restored round {weights}'s weights" if wrong else ""
    if last.kept == 0:
        return Decision("stop", "no path passed the gates: nothing left to learn from" + restored, best, weights)
    low = _low_return(history, cfg)
    if low:
        return Decision("stop", "; ".join([low] + wrong) + restored, best, weights)
    if wrong:
        return Decision("reset", "; ".join(wrong) + restored, best, weights)
    stalled = stagnation(history, cfg.stagnation_window, cfg.stagnation_change)
    if stalled and cfg.on_stagnation == "reset":
        return Decision("reset", f"{stalled}; restored round {best}'s weights (the best so far)", best, best)
    if stalled:
        return Decision("stop", stalled, best, weights)
    return Decision("continue", "", best, weights)


def monitor_round(history: list[RoundMetrics], metrics: RoundMetrics, cfg: MonitorConfig) -> RoundMetrics:
    """The round's drift, forgetting and return against the history, then continue / stop / reset."""
    metrics = replace(metrics, **compare(history, metrics))
    decision = decide(history + [metrics], cfg)
    return replace(metrics, decision=decision.action, decision_reason=decision.reason,
                   best_round=decision.best_round, weights_round=decision.weights_round)
