"""Acquire: the questions a round samples, written as `rounds/rNN/pool.jsonl` with where each came from.

The pool may change between rounds, so every round's pool is an artifact of that round:

    pool       the collected pool, every round (LMSI, STaR, ReST-EM)
    written    questions the model writes itself from a few examples (written.py; LMSI 5.2, R-Zero)
    variants   the pool plus easier variants of the questions the last round's vote did not trust,
               solved and trusted (variants.py; LADDER)
    schedule   a difficulty schedule: the task's difficulty knob per round, or the questions whose
               measured agreement falls in a band (schedule.py; Self-Improving Transformers, open-r1)
    proposer   questions a proposer writes, trained each round by RL to write those its solver is unsure
               of (proposer.py; R-Zero)
    code_proposals  for a code task: programs the model proposes, run in the sandbox; those that run, twice
               alike, become questions whose examples and hidden test are their executed outputs
               (code_proposals.py; Absolute Zero's induction tasks)
    mix        several of these in one round: {method: mix, options: {sources: [{method: ..., ...}]}}

A method is a plain function `method(ctx, round, weights, **acquire.options) -> list[Item]`, named in
`acquire.method`: one of `METHODS`, or a user's "package.module:function" or "package.module:DECLARATION".
Each source declares itself beside its code (`plugins.Plugin`): its options model and check (run by
preflight), its traits (`base.RECORDS_TOKENS`), the records it writes with their stage (`base.record`)
and its report section; `declaration(name)` returns it. Each Item says where it came from (`origin`, `parent`). Gold an acquired question carries (a difficulty stage's generator,
a task that can solve its own language) is stripped and written to `rounds/rNN/pool_gold.jsonl`,
read only by diagnostics, as `collect` does for the collected pool.
"""

from __future__ import annotations

from dataclasses import replace

from pydantic import Field

from selfimprove import plugins
from selfimprove.rundir import layout
from selfimprove.acquire.base import RECORDS_TOKENS
from selfimprove.context import RunContext
from selfimprove.plugins import Plugin
from selfimprove.records import Item, Weights, from_row, to_row
from selfimprove.sections import NoOptions, Section


def pool(ctx: RunContext, round_: int, weights: Weights) -> list[Item]:
    """The collected pool, every round (LMSI, STaR, ReST-EM)."""
    return ctx.data.pool


class MixOptions(Section):
    """`acquire.options` of `mix`."""

    # Each {method: ..., **its options}, taken in order (a question id once), e.g.
    # [{method: pool}, {method: written, count: 200}].
    sources: list[dict] = Field(min_length=1)


def mix(ctx: RunContext, round_: int, weights: Weights, **options) -> list[Item]:
    """Every source's questions in order, a question id taken once: `sources` are {method: ..., **options}."""
    seen, out = set(), []
    for spec in MIX.read(options, "acquire.options").sources:
        source = {k: v for k, v in spec.items() if k != "method"}
        method = plugins.callable_of(declaration(spec["method"], "acquire.options.sources"), "acquire.options.sources")
        for item in method(ctx, round_, weights, **source):
            if item.id not in seen:
                seen.add(item.id)
                out.append(item)
    return out


def check_mix(config, options: MixOptions, task) -> None:
    for i, spec in enumerate(options.sources):
        if "method" not in spec:
            raise ValueError(f"sources[{i}]: give a mapping with a method, e.g. {{method: written, count: 200}}")
        if spec["method"] == "mix":
            raise ValueError(f"sources[{i}]: a mix inside a mix; list its sources here instead")


POOL = Plugin("selfimprove.acquire:pool", NoOptions)
MIX = Plugin("selfimprove.acquire:mix", MixOptions, check_mix)

# One line a source: its declaration ("module:attr"), imported only when a config names it.
METHODS = {"pool": "selfimprove.acquire:POOL",
           "mix": "selfimprove.acquire:MIX",
           "written": "selfimprove.acquire.written:DECLARATION",
           "variants": "selfimprove.acquire.variants:DECLARATION",
           "schedule": "selfimprove.acquire.schedule:DECLARATION",
           "proposer": "selfimprove.acquire.proposer:DECLARATION",
           "code_proposals": "selfimprove.acquire.code_proposals:DECLARATION"}


def declaration(name: str, where: str = "acquire.method") -> Plugin:
    """Source `name`'s declaration (a user's plain function as one with nothing declared); ValueError naming
    `where` when it cannot be resolved."""
    return plugins.declared(name, METHODS, where)


def sources(name: str, options: dict) -> list[tuple[str, str, dict]]:
    """(where, name, options) of every source a round's acquisition runs: `name` itself ("" for where)
    and, for a mix, each of its sources ("sources[i]"), in order."""
    out = [("", name, options)]
    if name == "mix" and isinstance(options.get("sources"), list):
        out += [(f"sources[{i}]", s["method"], {k: v for k, v in s.items() if k != "method"})
                for i, s in enumerate(options["sources"]) if isinstance(s, dict) and "method" in s]
    return out


def declarations(config) -> list[Plugin]:
    """The declarations of every source `config` runs (those that cannot be resolved left out: preflight
    names them)."""
    found = []
    for _, name, _ in sources(config.acquire.method, config.acquire.options):
        try:
            found.append(declaration(name))
        except ValueError:
            pass
    return found


def acquire_round(ctx: RunContext, round_: int, weights: Weights) -> list[Item]:
    """Round `round_`'s questions: read when complete, else acquired with `weights` and written."""
    cfg = ctx.config.acquire
    method = plugins.callable_of(declaration(cfg.method), "acquire.method")

    def build() -> list[dict]:
        items = method(ctx, round_, weights, **cfg.options)
        gold = [{"id": i.id, "gold": i.gold} for i in items if i.gold is not None]
        ctx.store.write_jsonl(layout.round_file(round_, layout.ROUND_GOLD), gold)
        return [to_row(replace(i, gold=None)) for i in items]

    rows = ctx.store.produce_jsonl(layout.round_file(round_, layout.ROUND_POOL), build)
    return [from_row(Item, r) for r in rows]


def tokens_spent(ctx: RunContext, round_: int, column: str = "tokens") -> int:
    """Tokens the model generated while acquiring round `round_`'s questions (writing them, judging variants,
    measuring pass rates): the `tokens` recorded by the records of the sources declared `RECORDS_TOKENS`;
    with column="trained_tokens", the tokens a source's own training processed (the proposer's update)."""
    total = 0
    for source in declarations(ctx.config):
        for artifact in source.artifacts if RECORDS_TOKENS in source.traits else ():
            name = layout.round_file(round_, artifact.name)
            if name.endswith(".jsonl") and ctx.store.done(name):  # records, not a folder of weights
                total += sum(r.get(column) or 0 for r in ctx.store.read_jsonl(name))
    return total
