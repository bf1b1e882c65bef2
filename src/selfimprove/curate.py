"""Curate: run the configured gates over a round's samples and keep the trusted paths.

Reads samples and votes; writes `verdicts.jsonl` (every sample, every gate's verdict, kept or
not and why). A path is kept when every gate passes it, it is not an exact duplicate of a kept
path of the same question, and its question has not reached `max_paths_per_question`.
"""

from __future__ import annotations

from dataclasses import replace

from selfimprove.gates import Candidate, GateContext, build_gate, run_gates
from selfimprove.records import Sample, Vote


def build_gates(specs: list[dict], context: GateContext) -> dict:
    gates = {}
    for i, spec in enumerate(specs):
        if "name" not in spec:
            raise ValueError(f"curate.gates[{i}] has no 'name' (e.g. {{name: min_share, threshold: 0.5}})")
        params = {k: v for k, v in spec.items() if k not in ("name", "label")}
        label = spec.get("label", spec["name"])
        if label in gates:
            raise ValueError(f"curate.gates[{i}]: gate {label!r} given twice; add a distinct 'label'")
        gates[label] = build_gate(spec["name"], context, params)
    return gates


def eligible_voters(samples: list[Sample], questions: dict[str, str], gates: dict) -> list[Sample]:
    """The samples with the answer of every path that fails a pre-vote gate removed (it abstains).

    Pre-vote gates judge a path on its own (its arithmetic, its format): there is no vote yet, so
    they see `Candidate.vote = None`.
    """
    if not gates:
        return samples
    verdicts = run_gates(gates, [Candidate(s, None, questions.get(s.question_id, "")) for s in samples])
    return [s if all(v.passed for v in per_gate.values()) else replace(s, answer=None)
            for s, per_gate in zip(samples, verdicts)]


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
