"""The self-improvement loop: collect once, then per round
acquire -> generate -> vote -> curate -> adapt -> evaluate -> monitor.

Each stage's entry point reads its inputs and writes its own artifact through the run store; a
stage whose artifact is complete is skipped on rerun, so running the same command again resumes
the run. The engine (`generate.backend`) is created once per run and told which weights to use.

A rerun also repairs: before a round runs (or is read back as finished), its artifacts are checked
as `selfimprove verify` checks them, and the round is redone from the first stage whose artifact is
missing or damaged, or whole when what it started from changed (`run/repair.py`). The run directory's
identity (which config it holds) is `run/identity.py`; the end of a run (metrics.jsonl, summary.json, the
report) is `run/summary.py`. Test-time training (`ttt.py`) is this same loop on a transformed config,
with a closing stage after its round (`run(..., closing=)`).
"""

from __future__ import annotations

import time
from typing import Callable

from rich.console import Console

from selfimprove import acquire
from selfimprove.adapt import AdaptInputs, adapt_round
from selfimprove.backends import create_backend, require_extra
from selfimprove.backends.cached import CachedBackend
from selfimprove.config import Config
from selfimprove.context import RunContext
from selfimprove.outputs import tracking
from selfimprove.prompts import prompt_style
from selfimprove.records import RoundMetrics, Weights, to_row
from selfimprove.run.identity import disown, names_before, open_run
from selfimprove.run.repair import prepare_round, read_metrics, round_inputs
from selfimprove.run.summary import finish, round_table
from selfimprove.rundir import layout
from selfimprove.rundir.cache import cache_dir_for
from selfimprove.rundir.store import RunStore
from selfimprove.stages import collect, evaluate, monitor, own_exemplars, probe
from selfimprove.stages.curate import curate_round
from selfimprove.stages.generate import generate_round
from selfimprove.stages.vote import vote_round
from selfimprove.tasks import get_task


def run_round(ctx: RunContext, r: int, learner: Weights, previous: RoundMetrics) -> RoundMetrics:
    """One round from the learner's current weights; `previous` is the round those weights came from."""
    started = time.time()
    sampler = ctx.base_sampler if ctx.teacher_samples else learner
    items = acquire.acquire_round(ctx, r, sampler)
    # generate.exemplars=self: the round samples with exemplars chosen from the sampler's own answers. Held-out
    # evaluation (and training pairs) keep the task's, so every round is scored with the same prompt: rounds
    # stay comparable, and a better score is the weights', not a better round's exemplars.
    style = own_exemplars.round_style(ctx, r, sampler, items, ctx.style)
    samples = generate_round(ctx, r, sampler, items, style)
    votes = vote_round(ctx, r, sampler, samples, items)
    verdicts = curate_round(ctx, r, sampler, samples, votes, items)
    ctx.backend.close()  # no model that sampled is alive while training runs
    adapted = adapt_round(ctx, r, AdaptInputs(learner, sampler, items, samples, votes, verdicts))
    scores = evaluate.evaluate_round(ctx, r, adapted.weights, votes, verdicts, previous, items,
                                    ctx.round_gold(r))
    kept = [v for v in verdicts if v["kept"]]
    return RoundMetrics(
        round=r, model=adapted.weights.model, adapter=adapted.weights.adapter, sampler_model=sampler.model,
        sampler_adapter=sampler.adapter, pool_questions=len(items), kept=len(kept),
        kept_questions=len({v["question_id"] for v in kept}), train_examples=adapted.examples,
        train_loss_first=adapted.log[0]["loss"] if adapted.log else None,
        train_loss_last=adapted.log[-1]["loss"] if adapted.log else None,
        **scores, **monitor.label_free_signals(samples, votes), **monitor.compute_spent(
            samples, adapted.log, acquire.tokens_spent(ctx, r), acquire.tokens_spent(ctx, r, "trained_tokens")),
        seconds=round(time.time() - started, 2))


def base_round(ctx: RunContext) -> RoundMetrics:
    """Round 0: the base learner's scores, before any round."""
    started = time.time()
    weights = ctx.base_learner
    scores = evaluate.score_round(ctx, 0, weights)
    return RoundMetrics(round=0, model=weights.model, adapter=None, **scores, seconds=round(time.time() - started, 2))


def run(config: Config, allow_config_change: bool = False, console: Console | None = None,
        closing: Callable[[Config, dict, Console], dict] | None = None) -> dict:
    """Run (or resume) every round of `config`; returns the summary also written to summary.json. `closing`,
    when given, is a last stage after the rounds that returns the run's summary (test-time training's
    answers: `ttt.Answers`)."""
    console = console or Console()
    before = names_before(config.run.out_dir)
    ctx = open_context(config, allow_config_change, console)
    opened, made_nothing = set(ctx.store.manifest["artifacts"]), False
    try:
        history = [_produce_metrics(ctx, 0, lambda: base_round(ctx), [])]
        probe.check(ctx, ctx.base_sampler, history[0])
        for r in range(1, config.run.rounds + 1):
            carried = history[monitor.start_round(history)]  # a reset carries the best earlier round on
            metrics = _produce_metrics(ctx, r, lambda: monitor.monitor_round(
                history, run_round(ctx, r, carried.weights, carried), config.monitor), history)
            history.append(metrics)
            if metrics.decision == "stop":
                console.print(f"[yellow]stopping after round {r}: {metrics.decision_reason}[/]")
                break
    except Exception:  # the first model call failed (weights that do not load, an engine that refuses)?
        made_nothing = before is not None and not _made_since(ctx.store, opened)
        raise
    finally:
        ctx.backend.close()
        if made_nothing:  # a new run that did no work owns nothing, as in open_context
            disown(config.run.out_dir, before)
    summary = finish(ctx, history)
    return summary if closing is None else closing(config, summary, console)


def _made_since(store: RunStore, opened: set[str]) -> set[str]:
    """What the run committed since it opened, but the rounds' records of what they started from."""
    return {name for name in store.manifest["artifacts"]
            if name not in opened and name.rsplit("/", 1)[-1] != layout.INPUTS}


def _produce_metrics(ctx: RunContext, r: int, measure, history: list[RoundMetrics]) -> RoundMetrics:
    """Round `r`'s metrics: read back when the round is finished and intact, else (re)measured."""
    prepare_round(ctx, r, round_inputs(ctx, r, history))
    name = layout.round_file(r, layout.METRICS)
    if not ctx.store.done(name):
        ctx.store.write_json(name, to_row(measure()))
        if r > 0:
            rows = list(history) + [read_metrics(ctx, r)]
            tracking.log_history(ctx.store.root, rows, ctx.config.run.report_to)
            ctx.console.print(round_table(rows))
    return read_metrics(ctx, r)


def open_context(config: Config, allow_config_change: bool, console: Console) -> RunContext:
    """Open the run directory, collect the questions, create the engine once. A new run that fails here
    has done no work: what it wrote goes (`run_dir.disown`), so its corrected rerun starts afresh."""
    require_extra(config.generate.backend)  # a missing optional dependency fails before any work
    tracking.require_extras(config.run.report_to)
    before = names_before(config.run.out_dir)
    try:
        return _start(config, open_run(config, allow_config_change), console)
    except Exception:  # an interrupt keeps what was written: the same command resumes it
        if before is not None:
            disown(config.run.out_dir, before)
        raise


def _start(config: Config, store: RunStore, console: Console) -> RunContext:
    from selfimprove.models import set_threads

    set_threads(config.run.threads)
    task = get_task(config.task.name)
    data = collect.collect(store, task, config)
    console.print(f"[bold]{task.name}[/]: {len(data.pool)} unlabeled questions, {len(data.heldout)} held-out, "
                  f"run directory {store.root}")
    cache_dir = cache_dir_for(config.run.out_dir)
    backend = CachedBackend(create_backend(config.model, config.generate, cache_dir / "requests"), cache_dir)
    ctx = RunContext(config, store, task, backend, data, None, console)
    formats = (*config.generate.formats, config.evaluate.format)  # each is rendered once, as a check
    ctx.style = prompt_style(task, backend, ctx.base_sampler, config.model.chat, config.generate.num_exemplars,
                             formats)
    if ctx.teacher_samples:  # a student of another family reads its own prompts (tokenizer, chat template)
        ctx.learner_style = prompt_style(task, backend, ctx.base_learner, config.model.chat,
                                         config.generate.num_exemplars, formats)
    return ctx
