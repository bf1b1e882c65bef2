"""Ensembles: one gate made of other gates, combined by all / any / a weighted vote.

Each member is a spec like a config entry, {"name": "min_share", "threshold": 0.6}; a weighted
vote's member may add "weight" (default 1); a "label" is ignored. The combined verdict's reason lists every member's
verdict, so nothing is hidden by combining.
"""

from __future__ import annotations

from typing import Any

from selfimprove.gates.base import Candidate, Gate, GateContext, Verdict


def _members(context: GateContext, gates: list[dict[str, Any]]) -> list[tuple[str, float, Gate]]:
    if not gates:
        raise ValueError("a combined gate needs a non-empty list of member gates")
    members = []
    for spec in gates:
        params = dict(spec)
        if "name" not in params:
            raise ValueError(f"member gate spec {spec} has no 'name'")
        name, weight = params.pop("name"), float(params.pop("weight", 1.0))
        params.pop("label", None)  # curate's display name; not a gate parameter
        members.append((name, weight, context.build(name, params)))
    return members


def _combine(members, candidates: list[Candidate], decide) -> list[Verdict]:
    per_member = [(name, weight, gate(candidates)) for name, weight, gate in members]
    out = []
    for i in range(len(candidates)):
        votes = [(name, weight, verdicts[i]) for name, weight, verdicts in per_member]
        reason = "; ".join(f"{name}: {'pass' if v.passed else 'fail'} ({v.reason})" for name, _, v in votes)
        passed, score = decide(votes)
        out.append(Verdict(passed, reason, score))
    return out


def all_of(context: GateContext, gates: list[dict[str, Any]]):
    """Pass when every member passes."""
    members = _members(context, gates)
    return lambda candidates: _combine(members, candidates, lambda votes: (all(v.passed for _, _, v in votes), None))


def any_of(context: GateContext, gates: list[dict[str, Any]]):
    """Pass when at least one member passes."""
    members = _members(context, gates)
    return lambda candidates: _combine(members, candidates, lambda votes: (any(v.passed for _, _, v in votes), None))


def weighted_vote(context: GateContext, gates: list[dict[str, Any]], threshold: float = 0.5):
    """Pass when the weight of passing members is at least `threshold` of the total weight."""
    members = _members(context, gates)
    total = sum(weight for _, weight, _ in members)
    if total <= 0:
        raise ValueError("member weights must sum to more than 0")

    def decide(votes):
        share = sum(weight for _, weight, v in votes if v.passed) / total
        return share >= threshold, share

    return lambda candidates: _combine(members, candidates, decide)
