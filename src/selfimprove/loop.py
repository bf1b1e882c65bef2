"""The self-improvement loop: collect once, then per round generate -> vote -> curate -> adapt -> evaluate.

Each stage writes its artifact to the run directory before the next starts; a stage whose
artifact is complete is skipped on rerun, so running the same command again resumes the run.
"""

from __future__ import annotations

import gc
import json
import platform
import time
from importlib import metadata

from rich.console import Console
from rich.table import Table

from selfimprove import adapt, collect, evaluate, monitor, review, tracking
from selfimprove.backends import SamplingParams, load_backend
from selfimprove.cache import CachedBackend, cache_dir_for
from selfimprove.config import Config, dump_config
from selfimprove.curate import build_gates, curate, eligible_voters
from selfimprove.gates import GateContext
from selfimprove.generate import generate_round, progress_bar, prompt_style
from selfimprove.records import Item, Sample, Vote, from_row, to_row
from selfimprove.store import RunStore
from selfimprove.tasks import get_task
from selfimprove.vote import vote_all

PACKAGES = ("selfimprove", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "math-verify")


class ConfigChangedError(RuntimeError):
    pass


def open_run(config: Config, allow_config_change: bool = False) -> RunStore:
    store = RunStore(config.run.out_dir)
    text = dump_config(config)
    saved = store.path("config.yaml")
    if saved.exists() and saved.read_text() != text and allow_config_change:
        _record_config_change(store, saved.read_text(), text)
    if saved.exists() and saved.read_text() != text and not allow_config_change:
        import difflib

        diff = "".join(difflib.unified_diff(saved.read_text().splitlines(True), text.splitlines(True),
                                            "saved config.yaml", "this config", n=0))
        raise ConfigChangedError(f"{config.run.out_dir} holds a run with a different config:\n{diff}\n"
                                 "Use another run.out_dir, or pass --allow-config-change to continue it anyway.")
    store.write_text("config.yaml", text)
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    store.write_json("environment.json", {"python": platform.python_version(), "platform": platform.platform(),
                                          "seed": config.run.seed, "packages": versions})
    return store


def _record_config_change(store: RunStore, old: str, new: str) -> None:
    """Keep the replaced config and which rounds it finished: the run branches here."""
    changes = store.read_jsonl("config_changes.jsonl") if store.done("config_changes.jsonl") else []
    done = sorted(int(k[8:10]) for k in store.manifest["artifacts"] if k.endswith("/metrics.json"))
    store.write_jsonl("config_changes.jsonl", changes + [{
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "rounds_done_before": done, "old_config": old, "new_config": new}])


def _round_dir(r: int) -> str:
    return f"rounds/r{r:02d}"


def collect_stage(store: RunStore, task, config: Config) -> tuple[list[Item], dict[str, str], list[Item]]:
    if not store.done("heldout.jsonl"):
        pool, gold = collect.load_pool(task, config.task)
        heldout = collect.load_heldout(task, config.task)
        pool = collect.without_heldout(pool, heldout)
        if not pool:
            raise ValueError("every pool question is also a held-out question: give task.eval_source or "
                             "task.eval_split a different set")
        store.write_jsonl("pool_gold.jsonl", [{"id": k, "gold": v} for k, v in gold.items()])
        store.write_jsonl("pool.jsonl", [to_row(i) for i in pool])
        store.write_jsonl("heldout.jsonl", [to_row(i) for i in heldout])
    pool = [from_row(Item, r) for r in store.read_jsonl("pool.jsonl")]
    gold = {r["id"]: r["gold"] for r in store.read_jsonl("pool_gold.jsonl")}
    heldout = [from_row(Item, r) for r in store.read_jsonl("heldout.jsonl")]
    return pool, gold, heldout


def _backend(config: Config, state: adapt.ModelState):
    backend = load_backend(config.generate.backend, state.model, adapter=state.adapter, dtype=config.model.dtype,
                           device=config.model.device, batch_size=config.generate.batch_size)
    return CachedBackend(backend, cache_dir_for(config.run.out_dir))  # nothing is sampled twice on resume


def evaluate_stage(store: RunStore, config: Config, task, backend, heldout: list[Item], r: int) -> dict:
    name = f"{_round_dir(r)}/eval_samples.jsonl"
    ev = config.evaluate
    style = prompt_style(task, backend, config.model.chat, config.generate.num_exemplars)
    voters = None
    if config.vote.require:  # is the vote the loop trusts better than greedy? (the gap self-training can close)
        require = build_gates(config.vote.require, GateContext(task, backend, r, config.run.seed))
        questions = {i.id: i.question for i in heldout}
        voters = lambda samples: eligible_voters(samples, questions, require)  # noqa: E731
    with progress_bar() as progress:
        samples, metrics = evaluate.heldout_accuracy(
            backend, task, heldout, style, ev.format, ev.k, ev.temperature,
            ev.max_new_tokens or config.generate.max_new_tokens, r, config.run.seed + 1000 * r, progress, voters)
    store.write_jsonl(name, [to_row(s) for s in samples])
    return metrics


def train_stage(store: RunStore, config: Config, task, style, pool: list[Item], samples: list[Sample],
                verdicts: list[dict], state: adapt.ModelState, r: int) -> tuple[adapt.ModelState, list[dict]]:
    rd = _round_dir(r)
    if not store.done(f"{rd}/train.jsonl"):
        question = {i.id: i.question for i in pool}
        kept = [s for s, v in zip(samples, verdicts) if v["kept"]]
        kept, reviewed, rejected = review.apply_marks(store, r, kept, task.answer_prefix)  # a person's marks win
        paths = [adapt.TrustedPath(s.question_id, question[s.question_id],
                                   adapt.prompts.rationale_of(s.text, task.answer_prefix), s.answer, s.index)
                 for s in kept] + reviewed
        examples = adapt.example_rows(adapt.examples_for(paths, config.adapt.formats, style.exemplars, style.chat,
                                                         r, config.run.seed, task.answer_prefix))
        if config.adapt.data == "accumulate":
            examples += [e for p in range(1, r) if store.done(f"{_round_dir(p)}/train.jsonl")
                         for e in store.read_jsonl(f"{_round_dir(p)}/train.jsonl") if not e["question_id"].startswith("replay/")
                         and (e["question_id"], e["answer"]) not in rejected]
        if config.adapt.replay and examples:
            replay = adapt.examples_for(adapt.read_replay(config.adapt.replay), config.adapt.formats,
                                        style.exemplars, style.chat, r, config.run.seed, task.answer_prefix)
            examples += adapt.example_rows(replay)
        store.write_jsonl(f"{rd}/train.jsonl", examples)
    examples = store.read_jsonl(f"{rd}/train.jsonl")
    if not examples:
        return state, []
    weights = f"{rd}/adapter" if config.adapt.method == "lora" else f"{rd}/model"
    start = state if config.adapt.init == "previous" else adapt.ModelState(config.model.name)
    if not store.done(weights):
        def build(tmp):
            log = adapt.train(examples, start, config.model.name, config.adapt, tmp, config.run.seed + r,
                              config.model.dtype, config.model.device)
            (tmp / "train_log.json").write_text(json.dumps(log))  # commits with the weights: a kill can't split them

        store.commit_dir(weights, build)
    if not store.done(f"{rd}/train_log.jsonl"):
        store.write_jsonl(f"{rd}/train_log.jsonl", json.loads((store.path(weights) / "train_log.json").read_text()))
    path = str(store.path(weights).resolve())
    new = adapt.ModelState(config.model.name, path) if config.adapt.method == "lora" else adapt.ModelState(path)
    return new, store.read_jsonl(f"{rd}/train_log.jsonl")


def run_round(store: RunStore, config: Config, task, pool, gold, heldout, state: adapt.ModelState, r: int) -> dict:
    rd = _round_dir(r)
    started = time.time()
    backend = _backend(config, state)
    style = prompt_style(task, backend, config.model.chat, config.generate.num_exemplars)
    g = config.generate
    params = SamplingParams(n=g.k, temperature=g.temperature, top_p=g.top_p, max_new_tokens=g.max_new_tokens,
                            seed=config.run.seed, stop=() if style.chat else adapt.prompts.STOP)
    samples = [from_row(Sample, s) for s in generate_round(
        store, f"{rd}/samples.jsonl", backend, task, pool, style, params, g.formats, r, g.checkpoint_every)]
    context = GateContext(task, backend, r, config.run.seed)
    if not store.done(f"{rd}/votes.jsonl"):
        voters = eligible_voters(samples, {i.id: i.question for i in pool},
                                 build_gates(config.vote.require, context))
        votes = vote_all(voters, config.vote.tie_break, task.is_equivalent)
        store.write_jsonl(f"{rd}/votes.jsonl", [to_row(v) for v in votes])
    votes = [from_row(Vote, v) for v in store.read_jsonl(f"{rd}/votes.jsonl")]
    if not store.done(f"{rd}/verdicts.jsonl"):
        gates = build_gates(config.curate.gates, context)
        rows = curate(samples, votes, {i.id: i.question for i in pool}, gates,
                      config.curate.max_paths_per_question, config.curate.dedupe)
        store.write_jsonl(f"{rd}/verdicts.jsonl", rows)
    verdicts = store.read_jsonl(f"{rd}/verdicts.jsonl")
    del backend
    gc.collect()
    new_state, log = train_stage(store, config, task, style, pool, samples, verdicts, state, r)
    kept_ids = {v["question_id"] for v in verdicts if v["kept"]}
    metrics = {"round": r, "model": new_state.model, "adapter": new_state.adapter,
               "kept": sum(v["kept"] for v in verdicts), "kept_questions": len(kept_ids),
               "pool_questions": len(pool), "train_examples": store.manifest["artifacts"][f"{rd}/train.jsonl"]["rows"],
               "train_loss_first": log[0]["loss"] if log else None, "train_loss_last": log[-1]["loss"] if log else None}
    metrics |= evaluate.pseudo_label_accuracy(task, votes, gold, kept_ids)
    metrics |= monitor.label_free_signals(samples, votes)
    metrics |= monitor.compute_spent(samples, log)
    if new_state != state and heldout:
        metrics |= evaluate_stage(store, config, task, _backend(config, new_state), heldout, r)
    elif heldout:
        carried = ("accuracy", "majority_accuracy", "verified_majority_accuracy", "pass_at_k")
        metrics |= {k: v for k, v in _previous_metrics(store, r).items() if k in carried}
    metrics["seconds"] = round(time.time() - started, 2)
    return metrics


def _previous_metrics(store: RunStore, r: int) -> dict:
    """Metrics of the weights round r started from: round r-1's, or the round a reset restored."""
    previous = store.read_json(f"{_round_dir(r - 1)}/metrics.json")
    return store.read_json(f"{_round_dir(previous.get('weights_round', r - 1))}/metrics.json")


def anchor_items(store: RunStore, task, config: Config) -> list[Item]:
    """The anchor set (the original skill, labelled), collected once into `anchor.jsonl`; [] when not configured."""
    m = config.monitor
    if m.anchor_source is None:
        return []
    if not store.done("anchor.jsonl"):
        items = task.load(m.anchor_source, split=m.anchor_split, limit=m.anchor_limit)
        store.write_jsonl("anchor.jsonl", [to_row(i) for i in items])
    return [from_row(Item, r) for r in store.read_jsonl("anchor.jsonl")]


def anchor_stage(store: RunStore, config: Config, task, anchor: list[Item], state: adapt.ModelState, r: int) -> dict:
    """Greedy accuracy of `state` on the anchor set; samples to `rounds/rNN/anchor_samples.jsonl`."""
    if not anchor:
        return {}
    backend = _backend(config, state)
    style = prompt_style(task, backend, config.model.chat, config.generate.num_exemplars)
    ev = config.evaluate
    samples, metrics = monitor.anchor_accuracy(backend, task, anchor, style, ev.format,
                                               ev.max_new_tokens or config.generate.max_new_tokens, r,
                                               config.run.seed + 1000 * r + 7)
    store.write_jsonl(f"{_round_dir(r)}/anchor_samples.jsonl", [to_row(s) for s in samples])
    return metrics


def monitor_stage(store: RunStore, config: Config, task, anchor: list[Item], history: list[dict], metrics: dict,
                  state: adapt.ModelState) -> dict:
    """The round's forgetting, drift and return against the history, then continue / stop / reset."""
    new = adapt.ModelState(metrics["model"], metrics["adapter"])
    if new != state:
        metrics |= anchor_stage(store, config, task, anchor, new, metrics["round"])
    elif anchor:
        metrics["anchor_accuracy"] = history[-1].get("anchor_accuracy")  # same weights, same score
    metrics |= monitor.compare(history, metrics)
    decision = monitor.decide(history + [metrics], config.monitor)
    return metrics | {"decision": decision.action, "decision_reason": decision.reason,
                      "best_round": decision.best_round, "weights_round": decision.weights_round}


def round_table(history: list[dict]) -> Table:
    table = Table(title="held-out accuracy (greedy, maj@k); pool agreement and pseudo-label accuracy")
    cols = [("round", "round", "{}"), ("greedy", "accuracy", "{:.1%}"), ("maj@k", "majority_accuracy", "{:.1%}"),
            ("agree", "agreement", "{:.2f}"), ("pseudo", "pseudo_label_accuracy", "{:.1%}"),
            ("anchor", "anchor_accuracy", "{:.1%}"), ("return", "return", "{:+.2f}"),
            ("kept", "kept", "{}"), ("loss", "train_loss_last", "{:.3f}"), ("sec", "seconds", "{:.0f}"),
            ("next", "decision", "{}")]
    cols = [c for c in cols if any(h.get(c[1]) is not None for h in history)]  # no empty columns
    for title, _, _ in cols:
        table.add_column(title, justify="right")
    for h in history:
        table.add_row(*[fmt.format(h[key]) if h.get(key) is not None else "-" for _, key, fmt in cols])
    return table


def run(config: Config, allow_config_change: bool = False, console: Console | None = None) -> dict:
    """Run (or resume) every round of `config`; returns the summary also written to summary.json."""
    console = console or Console()
    store = open_run(config, allow_config_change)
    task = get_task(config.task.name)
    pool, gold, heldout = collect_stage(store, task, config)
    anchor = anchor_items(store, task, config)
    console.print(f"[bold]{task.name}[/]: {len(pool)} unlabeled questions, {len(heldout)} held-out, "
                  f"run directory {store.root}")
    base = adapt.ModelState(config.model.name)
    history = []
    if not store.done("rounds/r00/metrics.json"):
        started = time.time()
        metrics = {"round": 0, "model": base.model, "adapter": None}
        if heldout:
            metrics |= evaluate_stage(store, config, task, _backend(config, base), heldout, 0)
        metrics |= anchor_stage(store, config, task, anchor, base, 0)
        metrics["seconds"] = round(time.time() - started, 2)
        store.write_json("rounds/r00/metrics.json", metrics)
    history.append(store.read_json("rounds/r00/metrics.json"))
    state = base
    for r in range(1, config.run.rounds + 1):
        name = f"{_round_dir(r)}/metrics.json"
        if not store.done(name):
            metrics = run_round(store, config, task, pool, gold, heldout, state, r)
            metrics = monitor_stage(store, config, task, anchor, history, metrics, state)
            store.write_json(name, metrics)
            tracking.log_history(store.root, history + [metrics])
            console.print(round_table(history + [metrics]))
        metrics = store.read_json(name)
        history.append(metrics)
        carry = history[metrics.get("weights_round", r)]  # a reset carries the best earlier round's weights on
        state = adapt.ModelState(carry["model"], carry["adapter"])
        if metrics["decision"] == "stop":
            console.print(f"[yellow]stopping after round {r}: {metrics['decision_reason']}[/]")
            break
    store.write_text("metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))
    summary = summarize(history)
    store.write_json("summary.json", summary)
    tracking.log_history(store.root, history)
    _write_report(store, console)
    return summary


def _write_report(store: RunStore, console: Console) -> None:
    from selfimprove.report import ReportError, write_report

    try:
        console.print(f"report: {write_report(store.root)}")
    except ReportError as err:  # the run itself succeeded; say why there is no report
        console.print(f"[yellow]no report: {err}[/]")


def summarize(history: list[dict]) -> dict:
    rounds = history[1:]
    final = history[monitor.start_round(history)]  # after a reset or a degraded stop: the best round's weights
    keys = ("round", "accuracy", "majority_accuracy", "verified_majority_accuracy", "pass_at_k", "pseudo_label_accuracy",
            "kept_pseudo_label_accuracy", "kept", "agreement", "anchor_accuracy", "forgetting", "compute_tokens",
            "return", "train_loss_last", "seconds", "decision", "weights_round")
    return {
        "base_accuracy": history[0].get("accuracy"),
        "base_majority_accuracy": history[0].get("majority_accuracy"),
        "base_verified_majority_accuracy": history[0].get("verified_majority_accuracy"),
        "final_accuracy": final.get("accuracy"),
        "final_majority_accuracy": final.get("majority_accuracy"),
        "final_round": final["round"],
        "final_model": {"model": final.get("model"), "adapter": final.get("adapter")},
        "rounds": [{k: h.get(k) for k in keys} for h in rounds],
    }
