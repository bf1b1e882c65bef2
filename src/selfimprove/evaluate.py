"""Evaluate: held-out accuracy of the current model, and how good the pool's pseudo-labels were.

Greedy accuracy (one path at temperature 0), majority-vote accuracy at K and pass@K on the
labelled held-out split. Pseudo-label accuracy compares the round's votes with the pool's hidden
gold answers: a diagnostic only, never fed back into training.
"""

from __future__ import annotations

from selfimprove.backends import SamplingParams
from selfimprove.generate import sample_paths
from selfimprove.records import Item, Sample, Vote
from selfimprove.vote import vote_all


def _share(hits: int, total: int) -> float | None:
    return hits / total if total else None


def accuracy(answers: dict[str, str | None], gold: dict[str, str], task) -> float:
    """Share of the gold questions whose answer is equivalent to gold; a missing or None answer counts wrong."""
    right = sum(answers.get(q) is not None and task.is_equivalent(answers[q], g) for q, g in gold.items())
    return right / len(gold)


def majority_answers(samples: list[Sample], task) -> dict[str, str | None]:
    return {v.question_id: v.answer for v in vote_all(samples, is_equivalent=task.is_equivalent)}


def heldout_accuracy(backend, task, items: list[Item], style, fmt: str, k: int, temperature: float,
                     max_new_tokens: int, round_: int, seed: int, progress=None,
                     voters=None) -> tuple[list[Sample], dict]:
    """Greedy accuracy, maj@k and pass@k on labelled items; with `voters` (the loop's `vote.require`:
    samples -> samples with failing paths abstaining) also the maj@k of that verified vote."""
    if not items:
        return [], {}
    greedy = sample_paths(backend, task, items, style,
                          SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens, seed=seed), [fmt],
                          round_, progress)
    sampled = sample_paths(backend, task, items, style,
                           SamplingParams(n=k, temperature=temperature, max_new_tokens=max_new_tokens,
                                          seed=seed + 1), [fmt], round_, progress)
    gold = {i.id: i.gold for i in items}
    votes = vote_all(sampled, is_equivalent=task.is_equivalent)
    solved = {s.question_id for s in sampled
              if s.answer is not None and task.is_equivalent(s.answer, gold[s.question_id])}
    n = len(items)
    metrics = {
        "accuracy": accuracy({s.question_id: s.answer for s in greedy}, gold, task),
        "majority_accuracy": accuracy({v.question_id: v.answer for v in votes}, gold, task),
        "pass_at_k": len(solved) / n,
        "heldout_agreement": sum(v.share for v in votes) / n,
        "eval_k": k,
        "eval_questions": n,
    }
    if voters is not None:  # a question none of whose paths may vote counts wrong
        metrics["verified_majority_accuracy"] = accuracy(majority_answers(voters(sampled), task), gold, task)
    return greedy + sampled, metrics


def pseudo_label_accuracy(task, votes: list[Vote], gold: dict[str, str], kept_ids: set[str]) -> dict:
    """Share of majority answers that match the hidden gold, over all voted and over kept questions."""
    judged = [v for v in votes if v.answer is not None and v.question_id in gold]
    right = {v.question_id for v in judged if task.is_equivalent(v.answer, gold[v.question_id])}
    kept = [v for v in judged if v.question_id in kept_ids]
    return {
        "pseudo_label_accuracy": _share(len(right), len(judged)),
        "kept_pseudo_label_accuracy": _share(sum(v.question_id in right for v in kept), len(kept)),
    }
