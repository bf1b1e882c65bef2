"""Quality gates: which self-generated samples are trusted enough to train on, and why.

A gate is a plain callable `gate(candidates) -> list[Verdict]`, one verdict per candidate, in
order. It sees the whole round at once, because some judgements are relative to the round
(length outliers, duplicates across questions). Gates are named in the config and built from
`GATES` (name -> "module:attr" factory); a user's own gate is "package.module:factory".

Every verdict is stored with its sample, so a person can see why each path was kept or dropped.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from selfimprove.records import Sample, Vote


@dataclass(frozen=True)
class Candidate:
    """What a gate judges: one sample, its question's vote, and the question text."""

    sample: Sample
    vote: Vote | None  # None for pre-vote gates (vote.require): they judge a path alone
    question: str


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str = ""
    score: float | None = None


Gate = Callable[[list[Candidate]], list[Verdict]]


@dataclass(frozen=True)
class GateContext:
    """What a gate factory may need beyond its own parameters (a critique gate needs the model)."""

    task: Any
    backend: Any = None  # the round's generation backend, for model-judged gates
    round: int = 0
    seed: int = 0


GATES: dict[str, str] = {
    "majority": "selfimprove.gates.confidence:majority",
    "min_share": "selfimprove.gates.confidence:min_share",
    "min_votes": "selfimprove.gates.confidence:min_votes",
    "not_truncated": "selfimprove.gates.confidence:not_truncated",
    "logprob_margin": "selfimprove.gates.confidence:logprob_margin",
    "critique": "selfimprove.gates.critique:critique",
    "equivalent_to_majority": "selfimprove.gates.verify:equivalent_to_majority",
    "arithmetic": "selfimprove.gates.verify:arithmetic",
    "grounded": "selfimprove.gates.verify:grounded",
    "code_tests": "selfimprove.gates.verify:code_tests",
    "length_outlier": "selfimprove.gates.hacking:length_outlier",
    "answer_format": "selfimprove.gates.hacking:answer_format",
    "near_duplicate": "selfimprove.gates.hacking:near_duplicate",
    "template_cap": "selfimprove.gates.hacking:template_cap",
    "all_of": "selfimprove.gates.combine:all_of",
    "any_of": "selfimprove.gates.combine:any_of",
    "weighted_vote": "selfimprove.gates.combine:weighted_vote",
}


def build_gate(name: str, context: GateContext, params: dict[str, Any]) -> Gate:
    """Build a named gate (or a user's 'module:factory') with its config parameters."""
    target = GATES.get(name, name)
    if ":" not in target:
        raise ValueError(f"unknown gate {name!r}; known gates: {', '.join(sorted(GATES))} "
                         "(or give your own as 'package.module:factory')")
    module_name, attr = target.split(":", 1)
    factory = getattr(importlib.import_module(module_name), attr)
    try:
        return factory(context, **params)
    except TypeError as err:
        raise ValueError(f"gate {name!r}: bad parameters {params}: {err}") from None


def run_gates(gates: dict[str, Gate], candidates: list[Candidate]) -> list[dict[str, Verdict]]:
    """Every gate's verdict for every candidate: one {gate name: verdict} per candidate."""
    per_gate = {}
    for name, gate in gates.items():
        verdicts = gate(candidates)
        if len(verdicts) != len(candidates):
            raise RuntimeError(f"gate {name!r} returned {len(verdicts)} verdicts for {len(candidates)} candidates")
        per_gate[name] = verdicts
    return [{name: per_gate[name][i] for name in gates} for i in range(len(candidates))]
