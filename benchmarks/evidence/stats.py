"""Paired statistics over per-question outcomes, pooled over seeds, and the fallbacks when none were stored.

An outcome string holds one character a question, "1" right and "0" wrong, in one fixed question order;
two arms are paired when their strings come from the same questions in the same order (same seed, same
test set). Every interval is 95%.
"""

from __future__ import annotations

import math
import statistics


def spread(values: list[float]) -> dict | None:
    """Median, range and every value over seeds (the benchmarks' one summary of a measurement)."""
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def discordant(a: str, b: str) -> tuple[int, int]:
    """(questions only `a` got right, questions only `b` got right)."""
    if len(a) != len(b):
        raise ValueError(f"outcomes of different lengths ({len(a)} and {len(b)}): not the same questions")
    return (sum(x == "1" and y == "0" for x, y in zip(a, b)), sum(x == "0" and y == "1" for x, y in zip(a, b)))


def mcnemar(a: str, b: str) -> dict:
    """Exact McNemar test and a 95% paired (Wald) interval for accuracy(a) - accuracy(b), from two
    equally long strings of per-question outcomes. Pool seeds by concatenating their strings."""
    return mcnemar_counts(*discordant(a, b), len(a))


def mcnemar_counts(only_a: int, only_b: int, n: int) -> dict:
    """`mcnemar` from the discordant counts alone (what older result files stored) and the pairs `n`."""
    from scipy.stats import binomtest

    diff = (only_a - only_b) / n
    se = math.sqrt(max(only_a + only_b - n * diff**2, 0)) / n
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"only_this_right": only_a, "only_other_right": only_b, "pairs": n, "difference": diff,
            "ci95": [diff - 1.96 * se, diff + 1.96 * se], "p_exact_mcnemar": p}


def paired_bootstrap(pairs: list[tuple[str, str]], resamples: int = 10_000, seed: int = 0) -> dict:
    """A percentile interval for the pooled accuracy difference, resampling questions within each seed
    (`pairs`: one (a, b) pair of outcome strings a seed). It makes no normal approximation, so it is
    the interval to trust when the discordant counts are small."""
    import numpy as np

    rng = np.random.default_rng(seed)
    total = sum(len(a) for a, _ in pairs)
    sums = np.zeros(resamples)
    for a, b in pairs:
        diff = np.array([int(x) - int(y) for x, y in zip(a, b)])
        if len(diff) != len(b):
            raise ValueError("outcomes of different lengths: not the same questions")
        sums += diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].sum(axis=1)
    point = sum(int(x) - int(y) for a, b in pairs for x, y in zip(a, b)) / total
    lo, hi = np.percentile(sums / total, [2.5, 97.5])
    return {"difference": point, "ci95": [float(lo), float(hi)], "pairs": total, "resamples": resamples}


def unpaired(acc_a: list[float], acc_b: list[float], n: int) -> dict:
    """When no per-question outcomes were stored: a Wald interval and two-sided normal p for the pooled
    difference of two accuracies measured on `n` questions a seed (per-seed lists in the same seed order).
    It ignores the pairing (same questions), so it is wider than the paired interval would be: a claim
    it does not exclude zero for may still hold, and waits for a rerun that stores outcomes."""
    m = n * len(acc_a)
    pa, pb = sum(acc_a) / len(acc_a), sum(acc_b) / len(acc_b)
    se = math.sqrt(pa * (1 - pa) / m + pb * (1 - pb) / m)
    diff = pa - pb
    p = math.erfc(abs(diff) / se / math.sqrt(2)) if se else (1.0 if diff == 0 else 0.0)
    return {"difference": diff, "ci95": [diff - 1.96 * se, diff + 1.96 * se], "p_normal": p, "questions": m}
