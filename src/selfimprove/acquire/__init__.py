"""Acquire: the questions a round samples, written as `rounds/rNN/pool.jsonl` with where each came from.

The pool may change between rounds, so every round's pool is an artifact of that round:

    pool       the collected pool, every round (LMSI, STaR, ReST-EM)
    written    questions the model writes itself from a few examples (written.py; LMSI 5.2, R-Zero)
    variants   the pool plus easier variants of the questions the last round's vote did not trust,
               solved and trusted (variants.py; LADDER)
    schedule   a difficulty schedule: the task's difficulty knob per round, or the questions whose
               measured agreement falls in a band (schedule.py; Self-Improving Transformers, open-r1)
    mix        several of these in one round: {method: mix, options: {sources: [{method: ..., ...}]}}

A method is a plain function `method(ctx, round, weights, **acquire.options) -> list[Item]`, named in
`acquire.method`: one of `METHODS`, or a user's "package.module:function". Each Item says where it
came from (`origin`, `parent`). Gold an acquired question carries (a difficulty stage's generator,
a task that can solve its own language) is stripped and written to `rounds/rNN/pool_gold.jsonl`,
read only by diagnostics, as `collect` does for the collected pool.
"""

from __future__ import annotations

from dataclasses import replace

from selfimprove import layout, plugins
from selfimprove.context import RunContext
from selfimprove.records import Item, Weights, from_row, to_row


def pool(ctx: RunContext, round_: int, weights: Weights) -> list[Item]:
    """The collected pool, every round (LMSI, STaR, ReST-EM)."""
    return ctx.data.pool


def mix(ctx: RunContext, round_: int, weights: Weights, sources: list[dict]) -> list[Item]:
    """Every source's questions in order, a question id taken once: `sources` are {method: ..., **options}."""
    seen, out = set(), []
    for spec in sources:
        options = {k: v for k, v in spec.items() if k != "method"}
        method = plugins.resolve(spec["method"], METHODS, "acquire.options.sources")
        for item in method(ctx, round_, weights, **options):
            if item.id not in seen:
                seen.add(item.id)
                out.append(item)
    return out


METHODS = {"pool": "selfimprove.acquire:pool",
           "mix": "selfimprove.acquire:mix",
           "written": "selfimprove.acquire.written:written",
           "variants": "selfimprove.acquire.variants:variants",
           "schedule": "selfimprove.acquire.schedule:schedule"}

# The option checks of the built-in methods, run by preflight before any work (a user's method checks
# its own options when called): check(options, config, task) raises ValueError naming the option.
CHECKS = {"mix": "selfimprove.acquire:check_mix",
          "written": "selfimprove.acquire.written:check",
          "variants": "selfimprove.acquire.variants:check",
          "schedule": "selfimprove.acquire.schedule:check"}


def check_mix(options: dict, config, task) -> None:
    sources = options.get("sources")
    if not isinstance(sources, list) or not sources:
        raise ValueError("sources: give a list of sources, e.g. [{method: pool}, {method: written, count: 200}]")
    for i, spec in enumerate(sources):
        if not isinstance(spec, dict) or "method" not in spec:
            raise ValueError(f"sources[{i}]: give a mapping with a method, e.g. {{method: written, count: 200}}")
        if spec["method"] == "mix":
            raise ValueError(f"sources[{i}]: a mix inside a mix; list its sources here instead")


def check_options(method: str, options: dict, config, task) -> list[tuple[str, str, dict]]:
    """Check a built-in method's options; returns (where, method, options) of every source to check
    further (mix's sources, each with its place 'sources[i]'). Raises ValueError naming the option."""
    if method == "mix":
        check_mix(options, config, task)
        return [(f"sources[{i}]", s["method"], {k: v for k, v in s.items() if k != "method"})
                for i, s in enumerate(options["sources"])]
    if method in CHECKS:
        plugins.resolve(method, CHECKS, "acquire.method")(options, config, task)
    return []


def acquire_round(ctx: RunContext, round_: int, weights: Weights) -> list[Item]:
    """Round `round_`'s questions: read when complete, else acquired with `weights` and written."""
    cfg = ctx.config.acquire
    method = plugins.resolve(cfg.method, METHODS, "acquire.method")

    def build() -> list[dict]:
        items = method(ctx, round_, weights, **cfg.options)
        gold = [{"id": i.id, "gold": i.gold} for i in items if i.gold is not None]
        ctx.store.write_jsonl(layout.round_file(round_, layout.ROUND_GOLD), gold)
        return [to_row(replace(i, gold=None)) for i in items]

    rows = ctx.store.produce_jsonl(layout.round_file(round_, layout.ROUND_POOL), build)
    return [from_row(Item, r) for r in rows]


def tokens_spent(ctx: RunContext, round_: int) -> int:
    """Tokens the model generated while acquiring round `round_`'s questions (writing them, judging variants,
    measuring pass rates): the `tokens` its acquisition artifacts record."""
    total = 0
    for name in (layout.WRITTEN, layout.VARIANTS, layout.DIFFICULTY):
        if ctx.store.done(layout.round_file(round_, name)):
            total += sum(r.get("tokens") or 0 for r in ctx.store.read_jsonl(layout.round_file(round_, name)))
    return total


def round_gold(ctx: RunContext, round_: int) -> dict[str, str]:
    """Gold answers of round `round_`'s questions, for diagnostics only: the collected pool's, plus those
    its acquisition knew (`rounds/rNN/pool_gold.jsonl`)."""
    name = layout.round_file(round_, layout.ROUND_GOLD)
    acquired = {r["id"]: r["gold"] for r in ctx.store.read_jsonl(name)} if ctx.store.done(name) else {}
    return {**ctx.data.gold, **acquired}
