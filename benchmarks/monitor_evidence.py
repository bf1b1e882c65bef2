"""Ten rounds on the embedded domain with the gates and monitors on, and with them off.

Both arms run the demo recipe (`src/selfimprove/embedded/demo.yaml`, the shipped base model, its
labelled replay set) through `selfimprove.loop.run`, shrunk to fit a shared 2-core CPU, and track
forgetting on an anchor set of the seed distribution (1-2 step problems):
  on   the demo's vote over arithmetic-checked paths; gates majority + min_share 0.5 + not_truncated
       + arithmetic (re-computes every written equation); monitor: reset to the best round when held-out accuracy drops > 1 point or the
       anchor / agreement / abstention signals degrade; stop when the return stays under
       `min_return` for `patience` rounds.
  off  every path votes and the majority gate alone filters (LMSI's plain recipe); no stop, no
       reset (the metrics are still recorded).
  on_no_stop  as `on` without the stop rule: the reset guard alone over all the rounds.
  checked_vote  as `on` with every monitor off (no stop, no reset): the same checked vote and gates, so
       `on` against it is what the monitors add, and it against `off` what the vote and gates add.
The reset and stop rules choose on the monitored held-out split, so the final weights of each arm
are also scored on a fresh test set (another seed stream) that no decision ever saw.

    python benchmarks/monitor_evidence.py                # both arms, then JSON and plot
    python benchmarks/monitor_evidence.py --arm off      # one arm (e.g. two processes in parallel)
    python benchmarks/monitor_evidence.py --plot-only    # re-render the plot from the JSON
    python -m benchmarks.monitor_evidence --seed 1 --out s1.json ...; --merge s0.json s1.json s2.json  # seeds
    python benchmarks/monitor_evidence.py --model M --rounds 2 --pool 24 --runs /tmp/ev --out /tmp/ev/ev.json

Writes runs/monitor_evidence/<arm>/ (normal run folders; rerunning resumes them), benchmarks/results/monitor_evidence.json
and benchmarks/results/monitor_evidence.png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, as `python -m benchmarks...` does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.evidence import provenance  # noqa: E402

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

RESULTS = Path(__file__).parent / "results"
RUNS = Path("runs/monitor_evidence")
ROUNDS = 10
POOL, HELDOUT, FRESH = 400, 400, 400  # pool questions, monitored held-out, untouched fresh test
ANCHOR = "steps=1-2,max_value={max_value},n=100,seed=0"  # the seed set's distribution: the original skill

# Shrinks the demo recipe to about a minute a round on a shared 2-core CPU; the same for both arms.
SMALL = [f"task.eval_limit={HELDOUT}", "generate.k=8", "evaluate.k=2", "adapt.max_steps=50",
         "monitor.anchor_limit=100"]
ARMS = {
    "on": ["curate.gates=[{name: majority}, {name: min_share, threshold: 0.5}, {name: not_truncated}, "
           "{name: arithmetic}]",
           "monitor.reset_tolerance=0.01", "monitor.min_return=0.0", "monitor.patience=3",
           "monitor.signal_tolerance={anchor_accuracy: 0.08, agreement: 0.15, abstention_rate: 0.1}"],
    "off": ["vote.require=[]", "curate.gates=[{name: majority}]"],  # LMSI's plain majority, unguarded
}
# The same guards without the stop rule: what the reset guard alone does over all ten rounds.
ARMS["on_no_stop"] = [o for o in ARMS["on"] if not o.startswith(("monitor.min_return", "monitor.patience"))]
# The same checked vote and gates with no monitor: separates the monitors' share from the vote's (issue 26).
ARMS["checked_vote"] = [o for o in ARMS["on"] if not o.startswith("monitor.")]


def max_value(model: Path) -> int:
    """The number range the base model was trained on (its recipe.json), so every set matches it."""
    recipe = model / "recipe.json"
    return json.loads(recipe.read_text())["max_value"] if recipe.exists() else 30


def arm_config(arm: str, model: Path, runs: Path, rounds: int, pool: int, seed: int):
    """The demo recipe filled in as `selfimprove demo` does, shrunk by SMALL, plus the arm's settings."""
    from selfimprove.config import load_config
    from selfimprove.embedded import demo

    out = runs / arm
    top = max_value(model)
    overrides = [f"run.out_dir={out}", f"run.seed={seed}", f"model.name={model}",
                 f"adapt.replay={demo.write_replay(model, out, demo.REPLAY_ROWS, seed)}",
                 f"task.source=steps=3,max_value={top},n={pool},seed={seed}",
                 f"task.eval_source=steps=3,max_value={top},n={HELDOUT},seed={seed}",
                 f"monitor.anchor_source={ANCHOR.format(max_value=top)}"] + SMALL + [f"run.rounds={rounds}"]
    return load_config(demo.CONFIG, overrides + ARMS[arm])


def fresh_accuracy(backend, config, weights, seed: int) -> tuple[float, str]:
    """Greedy accuracy and per-question outcomes of `weights` on a fresh 3-step test set that no
    stop/reset decision saw."""
    from selfimprove.stages.evaluate import evaluate_weights
    from selfimprove.tasks import get_task

    from benchmarks.evidence import outcomes

    task = get_task("arithmetic")
    items = task.load(f"steps=3,max_value={max_value(Path(config.model.name))},n={FRESH},seed={seed + 500}",
                      split="validation")
    # Scored in the anchor slot: greedy only, the one number wanted here; in the held-out slot it would
    # also sample evaluate.k paths a question for maj@k, scores nobody reads here.
    scores = evaluate_weights(backend, weights, task, config, [], items)
    return scores.metrics["anchor_accuracy"], outcomes.from_samples(task, scores.anchor_samples, items)


def run_arm(arm: str, args) -> dict:
    from rich.console import Console

    from selfimprove.rundir import layout
    from selfimprove.backends import create_backend
    from selfimprove.loop import run
    from selfimprove.records import RoundMetrics, from_row

    seed = args.seed
    config = arm_config(arm, args.model, args.runs, args.rounds, args.pool, seed)
    started = time.time()
    summary = run(config, console=Console(quiet=True))
    history = [json.loads(line) for line in (args.runs / arm / layout.HISTORY).read_text().splitlines()]
    by_round = {h["round"]: from_row(RoundMetrics, h) for h in history}
    last = history[-1]
    backend = create_backend(config.model, config.generate)  # one engine for every fresh-test score
    fresh = {r: fresh_accuracy(backend, config, by_round[r].weights, seed)
             for r in sorted({0, summary["final_round"], last["round"]})}
    backend.close()
    best = max(h["accuracy"] for h in history)
    return {
        "arm": arm, "overrides": ARMS[arm], "wall_seconds": round(time.time() - started, 1),
        "rounds_run": last["round"], "final_round": summary["final_round"],
        "base_accuracy": history[0]["accuracy"], "best_accuracy": best,
        "best_round": max(history, key=lambda h: (h["accuracy"], -h["round"]))["round"],
        "final_accuracy": summary["final_accuracy"], "last_round_accuracy": last["accuracy"],
        "final_below_best": best - summary["final_accuracy"],
        "fresh_test_accuracy_base": fresh[0][0], "fresh_test_accuracy_final": fresh[summary["final_round"]][0],
        "fresh_test_accuracy_last_round": fresh[last["round"]][0],
        "fresh_test_outcomes": {str(r): right for r, (_, right) in fresh.items()},  # for paired tests
        "history": [{k: h.get(k) for k in (
            "round", "accuracy", "majority_accuracy", "anchor_accuracy", "forgetting", "agreement",
            "abstention_rate", "distinct_2", "skeleton_share", "mean_tokens", "length_drift",
            "pseudo_label_accuracy", "kept_pseudo_label_accuracy", "kept", "compute_tokens", "gain",
            "return_per_mtoken", "decision", "decision_reason", "weights_round", "seconds")} for h in history],
    }


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for arm, res in results.get("arms", {}).items():
        hist = res["history"]
        rounds = [h["round"] for h in hist]
        wide = 5 if arm == "on" else 1.5  # `on` shares its first rounds with `on_no_stop`: keep it visible beneath
        line, = axes[0].plot(rounds, [h["accuracy"] for h in hist], marker="o", lw=wide, alpha=0.6 if wide > 2 else 1,
                             label=f"{arm}: held-out greedy")
        axes[0].axhline(res["final_accuracy"], color=line.get_color(), ls=":", lw=1)
        for h in hist:
            if h.get("decision") in ("reset", "stop"):
                axes[0].annotate(h["decision"], (h["round"], h["accuracy"]), fontsize=7,
                                 textcoords="offset points", xytext=(0, 6), ha="center")
        axes[1].plot(rounds, [h.get("anchor_accuracy") for h in hist], marker="o", label=f"{arm}: anchor (1-2 step)")
        axes[1].plot(rounds, [h.get("agreement") for h in hist], ls="--", color=line.get_color(),
                     label=f"{arm}: pool agreement")
    axes[0].set(title="held-out accuracy per round (dotted: the arm's final weights)", xlabel="round",
                ylabel="greedy accuracy")
    axes[1].set(title="forgetting (anchor) and agreement", xlabel="round")
    for ax in axes:
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arm", choices=sorted(ARMS), action="append")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot-only", action="store_true")
    parser.add_argument("--model", type=Path, default=Path("src/selfimprove/embedded/assets/base"))
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--pool", type=int, default=POOL)
    parser.add_argument("--runs", type=Path, default=RUNS, help="where the arms' run folders go")
    parser.add_argument("--out", type=Path, default=RESULTS / "monitor_evidence.json")
    parser.add_argument("--merge", type=Path, nargs="+", help="merge these per-seed JSON files (one --seed each) into --out")
    args = parser.parse_args()
    record = provenance.start(args)
    if args.merge:  # {"seeds": {seed: that file's results}}, plotted from the first
        parts = {f.name: json.loads(f.read_text()) for f in args.merge}
        merged = {"seeds": {str(p["seed"]): p for p in parts.values()}, "provenance": provenance.merged(record, parts)}
        args.out.write_text(json.dumps(merged, indent=1) + "\n")
        plot(next(iter(parts.values())), args.out.with_suffix(".png"))
        return
    if not args.plot_only and not (args.model / "config.json").exists():
        raise SystemExit(f"no base model at {args.model}: train it with `python -m selfimprove.embedded.train_base`")
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.exists() else {"arms": {}}
    if "seeds" in results:
        raise SystemExit(f"--out {out} holds seeds merged by --merge; give each seed's arms a file of their own "
                         "(--out s0.json) and merge those")
    for arm in ([] if args.plot_only else args.arm or list(ARMS)):
        finished = run_arm(arm, args)
        results = json.loads(out.read_text()) if out.exists() else {"arms": {}}  # another arm may have finished
        results["arms"][arm] = finished
        results |= {"model": str(args.model), "rounds": args.rounds, "pool": args.pool, "heldout": HELDOUT, "fresh_test": FRESH, "anchor": ANCHOR,
                    "shared_overrides": SMALL, "max_value": max_value(args.model), "seed": args.seed,
                    "return_unit": "held-out accuracy points gained per 1M tokens (pool generation + training)"}
        results.setdefault("provenance", {})[arm] = provenance.finish(record)  # each arm: its command and commit
        out.write_text(json.dumps(results, indent=1) + "\n")  # after each arm: one finished arm is kept
    if results.get("arms"):  # a merged file (`--merge`) keeps its plot
        plot(results, out.with_suffix(".png"))
    for arm, res in results.get("arms", {}).items():
        print(f"{arm}: base {res['base_accuracy']:.3f}, best {res['best_accuracy']:.3f} (round {res['best_round']}), "
              f"final {res['final_accuracy']:.3f} (round {res['final_round']} weights, {res['rounds_run']} rounds run), "
              f"{res['final_below_best'] * 100:.1f} points below best; fresh test {res['fresh_test_accuracy_final']:.3f}")


if __name__ == "__main__":
    main()
