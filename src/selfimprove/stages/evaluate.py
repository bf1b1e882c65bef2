"""Evaluate: how good a set of weights is on labelled questions, and how good the pool's pseudo-labels were.

`evaluate_weights` is the one scoring function: the loop, `selfimprove eval` and the benchmarks
all call it. On the labelled held-out split it measures greedy accuracy (one path at temperature
0), majority-vote accuracy at K, pass@K and, when `vote.require` is set, the maj@K of that verified
vote; on the anchor set (the original skill) greedy accuracy, for forgetting.
Pseudo-label accuracy compares a round's votes with the pool's hidden gold answers: a diagnostic
only, never fed back into training. The stage (`evaluate_round`) writes `rounds/rNN/eval.json`
and the samples it scored, `eval_samples.jsonl` and `anchor_samples.jsonl`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from selfimprove.sampling import memory
from selfimprove.rundir import layout
from selfimprove.backends import SamplingParams
from selfimprove.voting.majority import eligible_voters, vote_all
from selfimprove.sections import Config
from selfimprove.context import RunContext
from selfimprove.gates import GateContext, build_gates
from selfimprove.sampling.paths import sample_paths
from selfimprove.progress import progress_bar
from selfimprove.prompts import PromptStyle, prompt_style
from selfimprove.records import Item, RoundMetrics, Sample, Vote, Weights, to_row
from selfimprove.tasks.base import graded

# Scores that stay the same while the weights do (a round that trained nothing carries them on).
WEIGHT_SCORES = ("accuracy", "majority_accuracy", "verified_majority_accuracy", "pass_at_k", "anchor_accuracy")


def _share(hits: int, total: int) -> float | None:
    return hits / total if total else None


def accuracy(answers: dict[str, str | None], gold: dict[str, str], task,
             questions: dict[str, str] | None = None) -> float:
    """Share of the gold questions whose answer is right by the task's grading (`tasks.base.graded`:
    equivalent to gold, or for code passing the hidden test); a missing or None answer counts wrong."""
    qs = list(gold)
    right = graded(task, [((questions or {}).get(q, ""), answers.get(q), gold[q]) for q in qs])
    return sum(right) / len(gold)


def majority_answers(samples: list[Sample], task, tie_break: str = "first") -> dict[str, str | None]:
    return {v.question_id: v.answer for v in vote_all(samples, tie_break, task.is_equivalent)}


def heldout_accuracy(backend, weights: Weights, task, items: list[Item], style: PromptStyle, fmt: str, k: int,
                     temperature: float, max_new_tokens: int, round_: int, seed: int, progress=None,
                     voters=None, tie_break: str = "first", batch_size: int | None = None) -> tuple[list[Sample], dict]:
    """Greedy accuracy, maj@k and pass@k on labelled items; with `voters` (the loop's `vote.require`:
    samples -> samples with failing paths abstaining) also the maj@k of that verified vote.
    Completions stop where sampling's do (`style.stop`), so a model that runs on into an invented
    next question is not scored on that question's answer."""
    if not items:
        return [], {}
    greedy = sample_paths(backend, weights, task, items, style,
                          SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens, seed=seed,
                                         stop=style.stop, batch_size=batch_size), [fmt], round_, progress)
    if k == 1 and temperature == 0:  # one greedy sample is the greedy pass: do not decode it twice
        sampled = greedy
    else:
        sampled = sample_paths(backend, weights, task, items, style,
                               SamplingParams(n=k, temperature=temperature, max_new_tokens=max_new_tokens,
                                              seed=seed + 1, stop=style.stop, batch_size=batch_size),
                               [fmt], round_, progress)
    gold, questions = {i.id: i.gold for i in items}, {i.id: i.question for i in items}
    votes = vote_all(sampled, tie_break, task.is_equivalent)
    right = graded(task, [(questions[s.question_id], s.answer, gold[s.question_id]) for s in sampled])
    solved = {s.question_id for s, ok in zip(sampled, right) if ok}
    n = len(items)
    metrics = {
        "accuracy": accuracy({s.question_id: s.answer for s in greedy}, gold, task, questions),
        "majority_accuracy": accuracy({v.question_id: v.answer for v in votes}, gold, task, questions),
        "pass_at_k": len(solved) / n,
        "heldout_agreement": sum(v.share for v in votes) / n,
        "eval_k": k,
        "eval_questions": n,
    }
    if voters is not None:  # a question none of whose paths may vote counts wrong
        metrics["verified_majority_accuracy"] = accuracy(majority_answers(voters(sampled), task, tie_break), gold,
                                                         task, questions)
    return greedy + (sampled if sampled is not greedy else []), metrics


def anchor_accuracy(backend, weights: Weights, task, items: list[Item], style: PromptStyle, fmt: str,
                    max_new_tokens: int, round_: int, seed: int, batch_size: int | None = None
                    ) -> tuple[list[Sample], dict]:
    """Greedy accuracy on the anchor set (the original skill): falling means the rounds make it forget."""
    if not items:
        return [], {}
    samples = sample_paths(backend, weights, task, items, style,
                           SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens, seed=seed,
                                          stop=style.stop, batch_size=batch_size), [fmt], round_)
    answers = {s.question_id: s.answer for s in samples}
    return samples, {"anchor_accuracy": accuracy(answers, {i.id: i.gold for i in items}, task,
                                                 {i.id: i.question for i in items})}


@dataclass
class Scores:
    metrics: dict
    heldout_samples: list[Sample] = field(default_factory=list)
    anchor_samples: list[Sample] = field(default_factory=list)


def evaluate_weights(backend, weights: Weights, task, config: Config, heldout: list[Item],
                     anchor: list[Item] = (), round_: int = 0, style: PromptStyle | None = None) -> Scores:
    """Every score of `weights` under `config` (evaluate, vote and model sections): held-out greedy,
    maj@k, pass@k, verified maj@k (with vote.require) and anchor accuracy."""
    ev, seed = config.evaluate, config.run.seed + 1000 * round_
    style = style or prompt_style(task, backend, weights, config.model.chat, config.generate.num_exemplars,
                                  (ev.format,))
    max_new_tokens = ev.max_new_tokens or config.generate.max_new_tokens
    voters = None
    if config.vote.require:  # is the vote the loop trusts better than greedy? (the gap self-training can close)
        require = build_gates(config.vote.require, GateContext(task, backend, weights, round_, config.run.seed),
                              "vote.require", before_vote=True)
        questions = {i.id: i.question for i in heldout}
        voters = lambda samples: eligible_voters(samples, questions, require)  # noqa: E731
    with progress_bar() as progress:
        held, metrics = heldout_accuracy(backend, weights, task, heldout, style, ev.format, ev.k, ev.temperature,
                                         max_new_tokens, round_, seed, progress, voters, config.vote.tie_break,
                                         ev.batch_size)
    anchored, anchor_metrics = anchor_accuracy(backend, weights, task, list(anchor), style, ev.format,
                                               max_new_tokens, round_, seed + 7, ev.batch_size)
    return Scores(metrics | anchor_metrics, held, anchored)


def pseudo_label_accuracy(task, votes: list[Vote], gold: dict[str, str], kept_ids: set[str],
                          questions: dict[str, str] | None = None) -> dict:
    """Share of majority answers that match the hidden gold, over all voted and over kept questions."""
    judged = [v for v in votes if v.answer is not None and v.question_id in gold]
    ok = graded(task, [((questions or {}).get(v.question_id, ""), v.answer, gold[v.question_id]) for v in judged])
    right = {v.question_id for v, good in zip(judged, ok) if good}
    kept = [v for v in judged if v.question_id in kept_ids]
    return {
        "pseudo_label_accuracy": _share(len(right), len(judged)),
        "kept_pseudo_label_accuracy": _share(sum(v.question_id in right for v in kept), len(kept)),
    }


def score_round(ctx: RunContext, round_: int, weights: Weights) -> dict:
    """The scores of `weights` as round `round_`'s: read from `eval.json` when complete, else
    measured, with the samples scored written beside it."""
    def build() -> dict:
        data = ctx.data
        style = memory.round_style(ctx, round_, data.heldout + data.anchor, ctx.student_style,
                                   [ctx.config.evaluate.format], layout.EVAL_EXEMPLARS, before_round=round_ + 1)
        scores = evaluate_weights(ctx.backend, weights, ctx.task, ctx.config, data.heldout, data.anchor, round_,
                                  style)
        ctx.store.write_jsonl(layout.round_file(round_, layout.EVAL_SAMPLES),
                              [to_row(s) for s in scores.heldout_samples])
        if data.anchor:
            ctx.store.write_jsonl(layout.round_file(round_, layout.ANCHOR_SAMPLES),
                                  [to_row(s) for s in scores.anchor_samples])
        return scores.metrics

    return ctx.store.produce_json(layout.round_file(round_, layout.EVAL), build)


def evaluate_round(ctx: RunContext, round_: int, weights: Weights, votes: list[Vote], verdicts: list[dict],
                   previous: RoundMetrics, items: list[Item], gold: dict[str, str]) -> dict:
    """Round `round_`'s scores of the learner's new `weights` and of its pseudo-labels on `items` (against
    `gold`, where known: diagnostics only). When the round trained nothing (`weights` are `previous`'s),
    `previous`'s scores carry on unmeasured."""
    kept_ids = {v["question_id"] for v in verdicts if v["kept"]}
    metrics = pseudo_label_accuracy(ctx.task, votes, gold, kept_ids, {i.id: i.question for i in items})
    if weights == previous.weights:
        return metrics | {k: getattr(previous, k) for k in WEIGHT_SCORES if getattr(previous, k) is not None}
    return metrics | score_round(ctx, round_, weights)
