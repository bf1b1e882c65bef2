"""Quality gates: which self-generated samples are trusted enough to train on, and why.

A gate is a plain callable `gate(candidates) -> list[Verdict]` (see `base.py`), one verdict per
candidate, in order. It sees the whole round at once, because some judgements are relative to the
round (length outliers, duplicates across questions). Gates are named in the config and built from
`GATES` (name -> "module:attr": the gate's declaration, `plugins.Plugin`, where it has a trait, else its
factory); a user's own gate is "package.module:factory" or a declaration. Its parameters are checked
against its declared options model, or its factory's signature with the types it annotates.

Every verdict is stored with its sample, so a person can see why each path was kept or dropped.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from selfimprove import plugins
from selfimprove.gates.base import NEEDS_VOTE, Candidate, Gate, GateContext, Verdict, run_gates

__all__ = ["Candidate", "Gate", "GateContext", "Verdict", "GATES", "NEEDS_VOTE", "build_gate", "build_gates",
           "declaration", "run_gates"]

GATES: dict[str, str] = {
    "majority": "selfimprove.gates.confidence:MAJORITY",
    "min_share": "selfimprove.gates.confidence:MIN_SHARE",
    "min_votes": "selfimprove.gates.confidence:MIN_VOTES",
    "not_truncated": "selfimprove.gates.confidence:not_truncated",
    "logprob_margin": "selfimprove.gates.confidence:LOGPROB_MARGIN",
    "critique": "selfimprove.gates.critique:critique",
    "equivalent_to_majority": "selfimprove.gates.verify:EQUIVALENT_TO_MAJORITY",
    "arithmetic": "selfimprove.gates.verify:arithmetic",
    "grounded": "selfimprove.gates.verify:grounded",
    "code_tests": "selfimprove.gates.verify:code_tests",
    "satisfies": "selfimprove.gates.verify:satisfies",
    "passes_examples": "selfimprove.gates.code:passes_examples",
    "same_behaviour": "selfimprove.gates.code:SAME_BEHAVIOUR",
    "length_outlier": "selfimprove.gates.hacking:length_outlier",
    "answer_format": "selfimprove.gates.hacking:answer_format",
    "near_duplicate": "selfimprove.gates.hacking:near_duplicate",
    "template_cap": "selfimprove.gates.hacking:template_cap",
    "all_of": "selfimprove.gates.combine:all_of",
    "any_of": "selfimprove.gates.combine:any_of",
    "weighted_vote": "selfimprove.gates.combine:weighted_vote",
    "novel": "selfimprove.gates.diversity:NOVEL",
}



def declaration(name: str, where: str = "gate") -> plugins.Plugin:
    """The declaration a gate name (or a user's 'module:attr') stands for."""
    return plugins.declared(name, GATES, where)


def gate_factory(name: str, where: str = "gate"):
    """The factory a gate name (or a user's 'module:factory') stands for."""
    return plugins.callable_of(declaration(name, where), where)


def build_gate(name: str, context: GateContext, params: dict[str, Any], where: str = "gate") -> Gate:
    """Build a named gate with its config parameters; parameters are checked against its options model
    (declared, or its factory's signature) first, so a misspelt or mistyped parameter is named before any work."""
    declared = declaration(name, where)
    factory = plugins.callable_of(declared, where)
    try:
        plugins.read_options(declared.options or plugins.signature_model(factory, 1), params, where)
    except ValueError as err:
        raise ValueError(f"{where}: gate {name!r}: bad parameters {params}: "
                         f"{str(err).removeprefix(where + ': ')}") from None
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
        if before_vote and NEEDS_VOTE in declaration(spec["name"], where).traits:
            raise ValueError(f"{where}: gate {spec['name']!r} judges a path against the vote, so it cannot "
                             "decide who votes; put it in curate.gates")
        label = spec.get("label", spec["name"])
        if label in gates:
            raise ValueError(f"{where}: gate {label!r} given twice; add a distinct 'label'")
        params = {k: v for k, v in spec.items() if k not in ("name", "label")}
        gates[label] = build_gate(spec["name"], context, params, where)
    return gates
