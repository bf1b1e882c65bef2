"""The self-improvement loop: collect once, then per round
acquire -> generate -> vote -> curate -> adapt -> evaluate -> monitor.

Each stage's entry point reads its inputs and writes its own artifact through the run store; a
stage whose artifact is complete is skipped on rerun, so running the same command again resumes
the run. The engine (`generate.backend`) is created once per run and told which weights to use.

A rerun also repairs: before a round runs (or is read back as finished), its artifacts are checked
as `selfimprove verify` checks them, and the round is redone from the first stage whose artifact is
missing or damaged (that artifact and everything after it move to damaged/). Each round records a
digest of what it started from (`rounds/rNN/inputs.json`: the collected data, earlier rounds'
metrics, weights and training sets); when that changed because an earlier round was redone
differently, the whole round is redone. A run directory that was moved or copied resumes: the
weights paths its metrics name are read relative to where it is now.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import time
from importlib import metadata
from pathlib import Path

import yaml

from rich.console import Console
from rich.table import Table

from selfimprove import acquire, collect, evaluate, layout, monitor, own_exemplars, probe, tracking
from selfimprove.adapt import AdaptInputs, adapt_round
from selfimprove.backends import create_backend, require_extra
from selfimprove.cache import CachedBackend, cache_dir_for, fingerprint
from selfimprove.config import Config, ConfigError, dump_config, parse_config
from selfimprove.context import RunContext
from selfimprove.curate import curate_round
from selfimprove.generate import generate_round
from selfimprove.prompts import prompt_style
from selfimprove.records import RoundMetrics, Weights, from_row, to_row
from selfimprove.store import RunStore, StoreError
from selfimprove.tasks import get_task
from selfimprove.vote import vote_round

PACKAGES = ("selfimprove", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "math-verify")


class ConfigChangedError(RuntimeError):
    pass


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
                                    acquire.round_gold(ctx, r))
    kept = [v for v in verdicts if v["kept"]]
    return RoundMetrics(
        round=r, model=adapted.weights.model, adapter=adapted.weights.adapter, sampler_model=sampler.model,
        sampler_adapter=sampler.adapter, pool_questions=len(items), kept=len(kept),
        kept_questions=len({v["question_id"] for v in kept}), train_examples=adapted.examples,
        train_loss_first=adapted.log[0]["loss"] if adapted.log else None,
        train_loss_last=adapted.log[-1]["loss"] if adapted.log else None,
        **scores, **monitor.label_free_signals(samples, votes), **monitor.compute_spent(samples, adapted.log,
                                                                       acquire.tokens_spent(ctx, r)),
        seconds=round(time.time() - started, 2))


def base_round(ctx: RunContext) -> RoundMetrics:
    """Round 0: the base learner's scores, before any round."""
    started = time.time()
    weights = ctx.base_learner
    scores = evaluate.score_round(ctx, 0, weights)
    return RoundMetrics(round=0, model=weights.model, adapter=None, **scores, seconds=round(time.time() - started, 2))


def run(config: Config, allow_config_change: bool = False, console: Console | None = None) -> dict:
    """Run (or resume) every round of `config`; returns the summary also written to summary.json."""
    console = console or Console()
    ctx = open_context(config, allow_config_change, console)
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
    finally:
        ctx.backend.close()
    return finish(ctx, history)


def _produce_metrics(ctx: RunContext, r: int, measure, history: list[RoundMetrics]) -> RoundMetrics:
    """Round `r`'s metrics: read back when the round is finished and intact, else (re)measured."""
    prepare_round(ctx, r, round_inputs(ctx, r, history))
    name = layout.round_file(r, layout.METRICS)
    if not ctx.store.done(name):
        ctx.store.write_json(name, to_row(measure()))
        if r > 0:
            rows = list(history) + [read_metrics(ctx, r)]
            tracking.log_history(ctx.store.root, rows)
            ctx.console.print(round_table(rows))
    return read_metrics(ctx, r)


def read_metrics(ctx: RunContext, r: int) -> RoundMetrics:
    """Round `r`'s stored metrics, with the weights it names found where the run directory is now."""
    row = ctx.store.read_json(layout.round_file(r, layout.METRICS))
    own = {ctx.config.model.name, ctx.config.adapt.learner}
    for key in ("model", "adapter", "sampler_model", "sampler_adapter"):
        if row.get(key) is not None and row[key] not in own:
            row[key] = _rebase(ctx.store, row[key])
    return from_row(RoundMetrics, row)


_ARTIFACT = re.compile(r"(?:^|/)(rounds/r\d+/[^/]+)$")


def _rebase(store: RunStore, path: str) -> str:
    """A path to one of this run's own weights (".../rounds/r01/adapter"), under the run directory's
    current place: it was written where the directory was when that round ran."""
    match = _ARTIFACT.search(path)
    if match is None or match.group(1) not in store.manifest["artifacts"]:
        return path
    return str((store.root / match.group(1)).resolve())


def round_inputs(ctx: RunContext, r: int, history: list[RoundMetrics]) -> dict:
    """A digest of what round `r` starts from: the collected questions, and every earlier round's
    metrics (wall time left out), weights and training set."""
    store, root = ctx.store, str(ctx.store.root.resolve())
    artifacts = store.manifest["artifacts"]

    def digest(obj) -> str:
        return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()

    def relative(value):
        return "RUN" + value[len(root):] if isinstance(value, str) and value.startswith(root) else value

    data = {n: artifacts[n].get("sha256") for n in (layout.POOL, layout.POOL_GOLD, layout.HELDOUT, layout.ANCHOR)
            if n in artifacts}
    rounds = [{k: relative(v) for k, v in to_row(h).items() if k != "seconds"} for h in history]
    weights, train = {}, {}
    for q in range(1, r):
        for name in (layout.ADAPTER, layout.MODEL):
            if layout.round_file(q, name) in artifacts:
                weights[q] = fingerprint.__wrapped__(str(store.path(layout.round_file(q, name))))
        if layout.round_file(q, layout.TRAIN) in artifacts:
            train[q] = artifacts[layout.round_file(q, layout.TRAIN)].get("sha256")
    return {"data": digest(data), "earlier_rounds": digest(rounds), "weights": digest(weights),
            "train": digest(train)}


def prepare_round(ctx: RunContext, r: int, inputs: dict) -> None:
    """Make round `r`'s artifacts agree with `verify` and with `inputs`: retire (move to damaged/) the
    first missing or damaged artifact and every one after it, or all of them when the round's inputs
    changed; then record `inputs`."""
    store = ctx.store
    name = layout.round_file(r, layout.INPUTS)
    mine = sorted((n for n in store.manifest["artifacts"] if layout.round_of(n) == r and n != name),
                  key=layout.stage_rank)
    recorded = store.read_json(name) if store.done(name) else None
    if name in store.manifest["artifacts"] and recorded != inputs:
        changed = ", ".join(k for k in inputs if (recorded or {}).get(k) != inputs[k])
        stale, why = mine, f"what it was made from changed ({changed})"
    else:
        damaged = [n for n in mine if store.problem(n) is not None]
        first = min((layout.stage_rank(n) for n in damaged), default=None)
        stale = [n for n in mine if first is not None and layout.stage_rank(n) >= first]
        why = f"{', '.join(damaged)} missing or damaged"
    if stale:
        ctx.console.print(f"[yellow]round {r}: redoing from {stale[0]} ({why}); the old files are kept in "
                          f"{store.root / 'damaged'}[/]")
        for n in stale:
            store.retire(n)
        fingerprint.cache_clear()  # weights about to be rewritten at the same paths must not hit old cache keys
    if recorded != inputs:
        store.write_json(name, inputs)


def open_context(config: Config, allow_config_change: bool, console: Console) -> RunContext:
    """Open the run directory, collect the questions, create the engine once."""
    from selfimprove.models import set_threads

    require_extra(config.generate.backend)  # a missing optional dependency fails before any work
    store = open_run(config, allow_config_change)
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


def open_run(config: Config, allow_config_change: bool = False) -> RunStore:
    """The run directory of `config`, checked to hold this config's run (or none yet).

    Where the directory is (run.out_dir) is not part of the comparison: a moved or copied run resumes.
    """
    store = RunStore(config.run.out_dir)
    text = dump_config(config)
    saved = store.path(layout.CONFIG)
    if saved.exists():
        old = saved.read_text()
        changes = config_changes(_as_config_dict(old, saved), _as_config_dict(text, saved))
        if changes and not allow_config_change:
            shown = "; ".join(changes[:8]) + (f"; and {len(changes) - 8} more" if len(changes) > 8 else "")
            raise ConfigChangedError(f"{config.run.out_dir} holds a run with a different config ({shown}). "
                                     "Use another run.out_dir, or pass --allow-config-change to continue it anyway.")
        if changes:
            _record_config_change(store, old, text)
    store.write_text(layout.CONFIG, text)
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    store.write_json(layout.ENVIRONMENT, {"python": platform.python_version(), "platform": platform.platform(),
                                          "seed": config.run.seed, "packages": versions})
    return store


def _as_config_dict(text: str, path: Path) -> dict:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if not isinstance(data, dict):
        raise StoreError(f"{path} is damaged (not a YAML mapping): restore it from the config you ran with, "
                         "or start a new run directory")
    try:  # with every default filled in, a key written out or left to its default compares the same
        data = parse_config(data).model_dump(mode="json")
    except ConfigError:
        pass  # a config this version cannot read is compared as written
    if isinstance(data.get("run"), dict):
        data["run"].pop("out_dir", None)  # where the directory is now is not part of what must match
    return data


def config_changes(old, new, prefix: str = "") -> list[str]:
    """'generate.k: 8 -> 16' for every key whose value differs (a section is compared key by key)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [c for k in list(old) + [k for k in new if k not in old]
                for c in config_changes(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else str(k))]
    return [] if old == new else [f"{prefix}: {json.dumps(old)} -> {json.dumps(new)}"]


def _record_config_change(store: RunStore, old: str, new: str) -> None:
    """Keep the replaced config and which rounds it finished: the run branches here."""
    changes = store.read_jsonl(layout.CONFIG_CHANGES) if store.done(layout.CONFIG_CHANGES) else []
    store.write_jsonl(layout.CONFIG_CHANGES, changes + [{
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "rounds_done_before": layout.finished_rounds(store.manifest["artifacts"]),
        "old_config": old, "new_config": new}])


def finish(ctx: RunContext, history: list[RoundMetrics]) -> dict:
    store = ctx.store
    final = history[monitor.start_round(history)]
    for path in (final.model, final.adapter):  # never name weights that are not there
        if path is not None and Path(path).is_absolute() and not Path(path).exists():
            raise StoreError(f"round {final.round}'s weights {path} are gone: rerun the same command to "
                             "redo that round")
    store.write_text(layout.HISTORY, "".join(json.dumps(to_row(h)) + "\n" for h in history))
    summary = summarize(history)
    store.write_json(layout.SUMMARY, summary)
    tracking.log_history(store.root, history)
    _write_report(store, ctx.console)
    return summary


def round_table(history: list[RoundMetrics]) -> Table:
    table = Table(title="held-out accuracy (greedy, maj@k); pool agreement and pseudo-label accuracy")
    cols = [("round", "round", "{}"), ("greedy", "accuracy", "{:.1%}"), ("maj@k", "majority_accuracy", "{:.1%}"),
            ("agree", "agreement", "{:.2f}"), ("pseudo", "pseudo_label_accuracy", "{:.1%}"),
            ("anchor", "anchor_accuracy", "{:.1%}"), ("return", "return_per_mtoken", "{:+.2f}"),
            ("kept", "kept", "{}"), ("loss", "train_loss_last", "{:.3f}"), ("sec", "seconds", "{:.0f}"),
            ("next", "decision", "{}")]
    cols = [c for c in cols if any(getattr(h, c[1]) is not None for h in history)]  # no empty columns
    for title, _, _ in cols:
        table.add_column(title, justify="right")
    for h in history:
        table.add_row(*[fmt.format(getattr(h, key)) if getattr(h, key) is not None else "-" for _, key, fmt in cols])
    return table


def _write_report(store: RunStore, console: Console) -> None:
    from selfimprove.report import ReportError, write_report

    try:
        console.print(f"report: {write_report(store.root)}")
    except ReportError as err:  # the run itself succeeded; say why there is no report
        console.print(f"[yellow]no report: {err}[/]")


SUMMARY_KEYS = ("round", "accuracy", "majority_accuracy", "verified_majority_accuracy", "pass_at_k",
                "pseudo_label_accuracy", "kept_pseudo_label_accuracy", "kept", "agreement", "anchor_accuracy",
                "forgetting", "compute_tokens", "return_per_mtoken", "train_loss_last", "seconds", "decision",
                "weights_round")


def summarize(history: list[RoundMetrics]) -> dict:
    base, final = history[0], history[monitor.start_round(history)]  # after a reset: the best round's weights
    return {
        "base_accuracy": base.accuracy,
        "base_majority_accuracy": base.majority_accuracy,
        "base_verified_majority_accuracy": base.verified_majority_accuracy,
        "final_accuracy": final.accuracy,
        "final_majority_accuracy": final.majority_accuracy,
        "final_round": final.round,
        "final_model": {"model": final.model, "adapter": final.adapter},
        "rounds": [{k: getattr(h, k) for k in SUMMARY_KEYS} for h in history[1:]],
    }
