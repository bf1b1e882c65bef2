"""Quality gates: which self-generated samples are trusted enough to train on, and why.

A gate is a plain callable `gate(candidates) -> list[Verdict]` (see `base.py`), one verdict per
candidate, in order. It sees the whole round at once, because some judgements are relative to the
round (length outliers, duplicates across questions). Gates are named in the config and built from
`GATES` (name -> "module:attr" factory); a user's own gate is "package.module:factory".

Every verdict is stored with its sample, so a person can see why each path was kept or dropped.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any

from selfimprove import plugins
from selfimprove.names import NEEDS_VOTE
from selfimprove.gates.base import Candidate, Gate, GateContext, Verdict, run_gates

__all__ = ["Candidate", "Gate", "GateContext", "Verdict", "GATES", "NEEDS_VOTE", "build_gate", "build_gates",
           "run_gates"]

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
    "satisfies": "selfimprove.gates.verify:satisfies",
    "passes_examples": "selfimprove.gates.code:passes_examples",
    "same_behaviour": "selfimprove.gates.code:same_behaviour",
    "length_outlier": "selfimprove.gates.hacking:length_outlier",
    "answer_format": "selfimprove.gates.hacking:answer_format",
    "near_duplicate": "selfimprove.gates.hacking:near_duplicate",
    "template_cap": "selfimprove.gates.hacking:template_cap",
    "all_of": "selfimprove.gates.combine:all_of",
    "any_of": "selfimprove.gates.combine:any_of",
    "weighted_vote": "selfimprove.gates.combine:weighted_vote",
    "novel": "selfimprove.gates.diversity:novel",
}



def gate_factory(name: str, where: str = "gate"):
    """The factory a gate name (or a user's 'module:factory') stands for."""
    return plugins.resolve(name, GATES, where)


def build_gate(name: str, context: GateContext, params: dict[str, Any], where: str = "gate") -> Gate:
    """Build a named gate with its config parameters; parameters are checked against the factory's
    signature first, so a misspelt parameter is named before any work."""
    factory = gate_factory(name, where)
    try:
        inspect.signature(factory).bind(context, **params)
    except TypeError as err:
        raise ValueError(f"{where}: gate {name!r}: bad parameters {params}: {err}") from None
    with_members = replace(context, build=lambda member, member_params: build_gate(
        member, context, member_params, f"{where} member {member!r}"))
    return factory(with_members, **params)


def build_gates(specs: list[dict], context: GateContext, section: str = "curate.gates",
                before_vote: bool = False) -> dict[str, Gate]:
    """{label: gate} for a config list of gate specs; `before_vote` refuses gates that need a vote."""
    gates = {}
    for i, spec in enumerate(specs):
        where = f"{section}[{i}]"
        if not isinstance(spec, dict) or "name" not in spec:
            raise ValueError(f"{where} has no 'name' (e.g. {{name: min_share, threshold: 0.5}})")
        if before_vote and spec["name"] in NEEDS_VOTE:
            raise ValueError(f"{where}: gate {spec['name']!r} judges a path against the vote, so it cannot "
                             "decide who votes; put it in curate.gates")
        label = spec.get("label", spec["name"])
        if label in gates:
            raise ValueError(f"{where}: gate {label!r} given twice; add a distinct 'label'")
        params = {k: v for k, v in spec.items() if k not in ("name", "label")}
        gates[label] = build_gate(spec["name"], context, params, where)
    return gates
