"""What an acquisition source declares beyond `plugins.Plugin`: its traits and its records' stage.

A leaf module: the source modules import these, and the registry in `acquire/__init__.py` names them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from selfimprove.rundir.layout import Artifact

# Trait: its records' rows carry the `tokens` the model generated to acquire them (writing questions,
# judging variants, measuring pass rates), which `acquire.tokens_spent` counts as the round's compute; rows
# may also carry `trained_tokens`, those a source's own training processed (the proposer's update).
RECORDS_TOKENS = "records_tokens"


def record(name: str) -> Artifact:
    """A source's own round file, written while the round acquires its questions: a damaged one redoes
    the acquisition and everything after it."""
    return Artifact(name, "acquire")


def _check_band(v: tuple[float, float]) -> tuple[float, float]:
    if not all(0 <= b <= 1 for b in v) or v[0] > v[1]:
        raise ValueError(f"{list(v)!r}; give [low, high] with 0 <= low <= high <= 1, e.g. [0.25, 0.75]")
    return v


# A range of vote shares [low, high]: the questions a source keeps as neither always nor never answered alike.
Band = Annotated[tuple[float, float], AfterValidator(_check_band)]
