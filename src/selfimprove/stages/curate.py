"""Curate: run the configured gates over a round's samples and keep the trusted paths.

Reads samples and votes; writes `rounds/rNN/verdicts.jsonl` (every sample, every gate's verdict, kept or
not and why). A path is kept when every gate passes it, it is not an exact duplicate of a kept
path of the same question, and its question has not reached `max_paths_per_question`.
"""

from __future__ import annotations

from selfimprove.rundir import layout
from selfimprove.context import RunContext
from selfimprove.gates import Candidate, GateContext, build_gates, run_gates
from selfimprove.records import Item, Sample, Vote, Weights


def curate(samples: list[Sample], votes: list[Vote], questions: dict[str, str], gates: dict,
           max_paths_per_question: int, dedupe: bool) -> list[dict]:
    """One verdict row per sample, in sample order."""
    vote_of = {v.question_id: v for v in votes}
    candidates = [Candidate(s, vote_of[s.question_id], questions.get(s.question_id, "")) for s in samples]
    verdicts = run_gates(gates, candidates)
    rows = []
    kept_texts: dict[str, set[str]] = {}
    for s, per_gate in zip(samples, verdicts):
        failed = [name for name, v in per_gate.items() if not v.passed]
        seen = kept_texts.setdefault(s.question_id, set())
        reason = "kept"
        if s.answer is None:
            reason = "no answer"  # whatever the gates say: there is nothing to train towards
        elif failed:
            reason = "failed " + ", ".join(failed)
        elif dedupe and s.text.strip() in seen:
            reason = "duplicate of a kept path"
        elif len(seen) >= max_paths_per_question:
            reason = f"question already has {max_paths_per_question} paths"
        kept = reason == "kept"
        if kept:
            seen.add(s.text.strip())
        rows.append({"question_id": s.question_id, "round": s.round, "index": s.index,
                     "prompt_format": s.prompt_format, "answer": s.answer, "kept": kept, "reason": reason,
                     "gates": {n: {"passed": v.passed, "reason": v.reason, "score": v.score}
                               for n, v in per_gate.items()}})
    return rows


def curate_round(ctx: RunContext, round_: int, weights: Weights, samples: list[Sample], votes: list[Vote],
                 items: list[Item]) -> list[dict]:
    """The round's verdict rows: read when complete, else judged by `curate.gates` and written."""
    cfg = ctx.config.curate

    def build() -> list[dict]:
        gates = build_gates(cfg.gates, GateContext(ctx.task, ctx.backend, weights, round_, ctx.config.run.seed))
        return curate(samples, votes, {i.id: i.question for i in items}, gates, cfg.max_paths_per_question,
                      cfg.dedupe)

    return ctx.store.produce_jsonl(layout.round_file(round_, layout.VERDICTS), build)
