"""A difficulty schedule: which questions a round samples, chosen by how hard they are (easy to hard).

    by: knob        the task's own difficulty knob, stage by stage (Self-Improving Transformers: extend a
                    skill one step at a time on self-labelled, slightly harder problems):
                      {method: schedule, options: {by: knob, stages: {1: "steps=3,n=1000",
                                                                      5: "steps=4,n=1000,seed=1"}}}
                    round r samples the stage with the largest start round <= r, a source the task's
                    loader reads (a knob string); its questions are never the held-out ones.
    by: pass_rate   the model's own measured agreement (open-r1's pass-rate filter, SRT's "easy"
                    subset): each round, `candidates` pool questions (a window that moves on every round)
                    get K fresh paths from the current weights and the run's vote; those whose agreement
                    (votes for the majority over all K) lies within `band` are the round's questions.
                    Every candidate's agreement is recorded in `rounds/rNN/difficulty.jsonl`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import Field

from selfimprove.rundir import layout
from selfimprove.acquire.base import RECORDS_TOKENS, Band, record
from selfimprove.acquire.judge import agreement, judge
from selfimprove.acquire.screen import key
from selfimprove.context import RunContext
from selfimprove.plugins import Plugin
from selfimprove.records import Item, Weights
from selfimprove.sections import Section
from selfimprove.tasks.base import difficulty_knobs


class ScheduleOptions(Section):
    """`acquire.options` of `schedule`."""

    by: Literal["knob", "pass_rate"] = "knob"
    stages: dict | None = None  # by: knob: {first round: the task's source (a knob string)}
    # by: pass_rate: the agreement a question's vote must have to be sampled; 0.2-0.8 leaves out what the
    # model always or never gets (open-r1's pass-rate filter)
    band: Band = (0.2, 0.8)
    candidates: int = Field(256, ge=1, le=10_000_000)  # by: pass_rate: pool questions measured a round
    count: int | None = Field(None, ge=1, le=10_000_000)  # by: pass_rate: at most this many taken; None = all


def stage_of(stages: dict, round_: int) -> str:
    """The source of the stage that round `round_` is in (the largest start round <= round_)."""
    start = max(int(r) for r in stages if int(r) <= round_)
    return next(v for r, v in stages.items() if int(r) == start)


def by_knob(ctx: RunContext, round_: int, stages: dict) -> list[Item]:
    source = stage_of(stages, round_)
    items = ctx.task.load(source, split=ctx.config.task.split)
    held = {key(i.question) for i in ctx.data.heldout + ctx.data.anchor}
    return [replace(i, id=f"{i.id}@{source}", origin=f"knob:{source}") for i in items if key(i.question) not in held]


def by_pass_rate(ctx: RunContext, round_: int, weights: Weights, band: list[float], candidates: int,
                 count: int | None) -> list[Item]:
    pool = ctx.data.pool
    start = (round_ - 1) * candidates % len(pool)
    window = (pool[start:] + pool[:start])[:candidates]
    votes, tokens = judge(ctx, round_, weights, window, "pass_rate")
    low, high = band
    rows = [{"id": i.id, "agreement": round(agreement(votes.get(i.id)), 4),
             "in_band": low <= agreement(votes.get(i.id)) <= high, "tokens": tokens.get(i.id, 0)} for i in window]
    ctx.store.write_jsonl(layout.round_file(round_, layout.DIFFICULTY), rows)
    chosen = {r["id"] for r in rows if r["in_band"]}
    kept = [i for i in window if i.id in chosen]
    ctx.console.print(f"round {round_}: {len(kept)} of {len(window)} candidates have agreement in "
                      f"[{low}, {high}]")
    return kept[:count] if count is not None else kept


def schedule(ctx: RunContext, round_: int, weights: Weights, **options) -> list[Item]:
    """This round's questions by difficulty (see the module docstring)."""
    o = DECLARATION.read(options, "acquire.options")
    if o.by == "knob":
        return by_knob(ctx, round_, o.stages)
    return by_pass_rate(ctx, round_, weights, list(o.band), o.candidates, o.count)


def check(config, options: ScheduleOptions, task) -> None:
    """Against the task and the vote, before any work, naming the option."""
    if options.by == "knob":
        knobs = difficulty_knobs(task)
        if not knobs:
            raise ValueError(f"by: knob, but task {task.name!r} has no difficulty knob (its questions come from "
                             "files or datasets); use by: pass_rate, which measures difficulty from the model's "
                             "own agreement")
        stages = options.stages
        if not isinstance(stages, dict) or not stages:
            raise ValueError(f'stages: give {{first round: source}}, e.g. {{1: "steps=3", 5: "steps=4"}}; '
                             f"the task's difficulty knobs are {', '.join(knobs)}")
        for r, source in stages.items():
            if not str(r).isdigit() or int(r) < 1:
                raise ValueError(f"stages: {r!r} is not a round number (1, 2, ...)")
            try:
                task.load(str(source), split=config.task.split, limit=1)
            except Exception as err:  # noqa: BLE001 - whatever the task's loader says is the message
                raise ValueError(f"stages.{r}: {source!r}: {err}") from None
        if 1 not in {int(r) for r in stages}:
            raise ValueError("stages: the first stage must start at round 1")
        return
    if config.generate.k < 2:
        raise ValueError(f"by: pass_rate measures agreement among K paths, and generate.k={config.generate.k} "
                         "gives no pass rate to use; set generate.k to 2 or more")


DECLARATION = Plugin("selfimprove.acquire.schedule:schedule", ScheduleOptions, check,
                     traits=frozenset({RECORDS_TOKENS}), artifacts=(record(layout.DIFFICULTY),))
