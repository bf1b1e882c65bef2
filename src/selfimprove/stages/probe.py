"""Competence first: can self-improvement work for this model on this task, before rounds spend budget?

Self-consistency only amplifies what a model can already sometimes do (LMSI; the seeds' critique):
if the right answer is (almost) never among its K samples, or its samples never agree, the rounds
train it on its own errors. After round 0 the probe reads:
- with a labelled held-out set: round 0's pass@K (is the right answer ever among K samples?);
- label-free, on `probe.questions` pool questions sampled K times as round 1 will: the answer rate
  (paths with an extractable answer), consensus (the majority's votes over K, so one voter of K is
  not a consensus) and the truncation rate.
It writes `probe.json` (the signals, each threshold, the verdict and why) and, with
`probe.on_fail: stop`, stops the run with a message saying what failed and what to try.
"""

from __future__ import annotations

from dataclasses import replace

from selfimprove.rundir import layout
from selfimprove.context import RunContext
from selfimprove.sampling.paths import sample_paths, sampling_params
from selfimprove.voting.majority import eligible_voters, require_gates, vote_all
from selfimprove.records import RoundMetrics, Weights


class IncompetentError(RuntimeError):
    pass


def signals(ctx: RunContext, weights: Weights, base: RoundMetrics) -> dict:
    cfg = ctx.config.probe
    items = ctx.data.pool[:cfg.questions]
    params = replace(sampling_params(ctx), seed=ctx.config.run.seed + 7_777)  # not round 1's seeds
    samples = sample_paths(ctx.backend, weights, ctx.task, items, ctx.style, params, ctx.config.generate.formats, 0)
    voters = eligible_voters(samples, {i.id: i.question for i in items}, require_gates(ctx, weights, 0))
    votes = vote_all(voters, ctx.config.vote.tie_break, ctx.task.is_equivalent)
    per_question = len(samples) / max(len(items), 1)
    return {
        "questions": len(items),
        "samples": len(samples),
        # Paths that may vote: a readable answer, and (with vote.require) passing its checks.
        "answer_rate": sum(s.answer is not None for s in voters) / max(len(voters), 1),
        "readable_rate": sum(s.answer is not None for s in samples) / max(len(samples), 1),
        "consensus": sum(max(v.counts.values(), default=0) / per_question for v in votes) / max(len(votes), 1),
        "truncation_rate": sum(s.truncated for s in samples) / max(len(samples), 1),
        # A teacher that samples for a student: the held-out pass@K measured is the student's, not its own.
        "heldout_pass_at_k": None if ctx.teacher_samples else base.pass_at_k,
    }


def verdict(found: dict, cfg) -> list[str]:
    """Why self-improvement cannot work here (empty: it can)."""
    why = []
    if found["heldout_pass_at_k"] is not None and found["heldout_pass_at_k"] < cfg.min_pass_at_k:
        why.append(f"held-out pass@K is {found['heldout_pass_at_k']:.1%} (< probe.min_pass_at_k "
                   f"{cfg.min_pass_at_k:.0%}): the right answer is almost never among the model's samples")
    if found["answer_rate"] < cfg.min_answer_rate:
        checked = found.get("readable_rate") not in (None, found["answer_rate"])
        what = (f"an answer that may vote ({found['readable_rate']:.1%} give one the task can read; the rest fail "
                "vote.require)") if checked else "an answer the task can read"
        why.append(f"only {found['answer_rate']:.1%} of sampled solutions give {what} "
                   f"(< probe.min_answer_rate {cfg.min_answer_rate:.0%})")
    if found["consensus"] < cfg.min_consensus:
        why.append(f"on an average question its most common answer holds only {found['consensus']:.1%} of the K "
                   f"samples (< probe.min_consensus {cfg.min_consensus:.0%}): the model's answers do not agree, so their "
                   "vote is no label")
    if found["truncation_rate"] > cfg.max_truncation_rate:
        why.append(f"{found['truncation_rate']:.1%} of solutions were cut off at generate.max_new_tokens "
                   f"(> probe.max_truncation_rate {cfg.max_truncation_rate:.0%})")
    return why


def incompetence_message(config, record: dict) -> str:
    """What the probe found, for a person: which model, which task, on how much, what fails, what to try."""
    found, problems = record["signals"], record["problems"]
    seen = f"{found['questions']} questions" + (f", {found['samples']} sampled solutions" if "samples" in found else "")
    longer = ", a larger generate.max_new_tokens" if any("cut off" in p for p in problems) else ""
    return (f"competence probe: {config.model.name} cannot yet do {config.task.name} well enough to learn from its "
            f"own answers (checked before any training, on {seen}): " + "; ".join(problems) + ". Trained on its "
            f"own votes it would mostly learn its own mistakes. Try a stronger model{longer}, an easier task or "
            "difficulty, or few-shot exemplars; probe.on_fail=warn runs anyway.")


def check(ctx: RunContext, weights: Weights, base: RoundMetrics) -> dict:
    """The probe's record (computed once, then read from `probe.json`); raises when it says stop."""
    cfg = ctx.config.probe
    if not cfg.enabled:
        return {}

    def build() -> dict:
        found = signals(ctx, weights, base)
        return {"signals": found, "problems": verdict(found, cfg), "thresholds": cfg.model_dump()}

    record = ctx.store.produce_json(layout.PROBE, build)
    if record["problems"]:
        message = incompetence_message(ctx.config, record)
        if cfg.on_fail == "stop":
            raise IncompetentError(message)
        ctx.console.print(f"[yellow]{message}[/]")
    return record
