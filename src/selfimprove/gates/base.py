"""What a gate is: a plain callable `gate(candidates) -> list[Verdict]`, one verdict per candidate.

A leaf module: gate modules import these records and nothing else of the gate package, so the
registry in `gates/__init__.py` can name them without an import cycle. A gate with a trait declares
itself (`plugins.Plugin` beside its factory); one without is its plain factory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from selfimprove.records import Sample, Vote, Weights

# Trait of a gate that judges a path against its question's vote: it cannot decide who votes (vote.require).
NEEDS_VOTE = "needs_vote"


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
    backend: Any = None  # the run's generation backend, for model-judged gates
    weights: Weights | None = None  # the weights that sampled the round (what a critique asks)
    round: int = 0
    seed: int = 0
    # build(name, params): a member gate, for ensembles (set by gates.build_gate; no import cycle needed).
    build: Callable[[str, dict[str, Any]], Gate] | None = None


def run_gates(gates: dict[str, Gate], candidates: list[Candidate]) -> list[dict[str, Verdict]]:
    """Every gate's verdict for every candidate: one {gate name: verdict} per candidate."""
    per_gate = {}
    for name, gate in gates.items():
        verdicts = gate(candidates)
        if len(verdicts) != len(candidates):
            raise RuntimeError(f"gate {name!r} returned {len(verdicts)} verdicts for {len(candidates)} candidates")
        per_gate[name] = verdicts
    return [{name: per_gate[name][i] for name in gates} for i in range(len(candidates))]
