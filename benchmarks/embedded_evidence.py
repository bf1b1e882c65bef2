"""Evidence for the embedded demo: label-free self-improvement against its controls and ablations.

    python benchmarks/embedded_evidence.py [--seeds 0 1 2] [--rounds 4] [--ablations]

Arms, each over the same seeds, pool, held-out set, optimiser and steps as the demo:
  selftrain  the demo itself (`selfimprove.loop` with demo.yaml): majority-voted own paths + replay
  control    the same extra steps per round on the labelled replay set alone (is it just more training?)
  oracle     the same pool with its gold rationales + replay (the most the pool can teach)
Ablations in miniature (one seed, fewer rounds, unless --seeds says otherwise): K in 1,2,4,8,16;
majority filter vs no filter vs a stricter share threshold; accuracy of the base model by vote-share bin.
Writes benchmarks/results/embedded_evidence.json and .png; not run by CI (about an hour on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from selfimprove import adapt, evaluate
from selfimprove.backends import load_backend
from selfimprove.embedded import demo
from selfimprove.generate import prompt_style
from selfimprove.records import Item
from selfimprove.tasks import get_task
from selfimprove.tasks.arithmetic import load_problems, reasoning

RESULTS = Path(__file__).parent / "results"
ABLATIONS = {  # name -> loop overrides on top of the demo config
    "k1": ["generate.k=1"], "k2": ["generate.k=2"], "k4": ["generate.k=4"], "k8": [], "k16": ["generate.k=16"],
    # LMSI's plain majority: every path votes, no re-computation of the written arithmetic
    "majority_only": ["vote.require=[]",
                      "curate.gates=[{name: majority}, {name: min_share, threshold: 0.5}, {name: not_truncated}]"],
    "no_filter": ["vote.require=[]", "curate.gates=[{name: not_truncated}]"],
    "share_0.75": ["curate.gates=[{name: majority}, {name: min_share, threshold: 0.75}, "
                   "{name: arithmetic, require_equations: true}, {name: not_truncated}]"],
    "cot_and_direct": ["adapt.formats={cot_zeroshot: 1.0, direct_zeroshot: 1.0}"],
    "direct_only": ["adapt.formats={direct_zeroshot: 1.0}"],
}


def selftrain(out: Path, seed: int, overrides: list[str] = ()) -> list[dict]:
    """Run the demo recipe through the loop; per-round metrics, round 0 = base."""
    config = demo.demo_config(out, seed, quick=False)
    if overrides:
        from selfimprove.config import apply_overrides, parse_config

        config = parse_config(apply_overrides(config.model_dump(mode="json"), list(overrides)))
    from selfimprove.loop import run

    run(config, console=Console(quiet=True))
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def supervised(out: Path, seed: int, arm: str) -> list[dict]:
    """control / oracle: the loop's own trainer and evaluator, on labelled data instead of votes."""
    config = demo.demo_config(out, seed, quick=False)
    task = get_task("arithmetic")
    heldout = task.load(config.task.eval_source, split=config.task.eval_split, limit=config.task.eval_limit)
    replay = adapt.read_replay(config.adapt.replay)
    pool = [adapt.TrustedPath(p.id, p.question, reasoning(p), str(p.answer))
            for p in load_problems(config.task.source, config.task.split)]
    paths = replay + (pool if arm == "oracle" else [])
    state, history = adapt.ModelState(config.model.name), []
    for r in range(config.run.rounds + 1):
        started = time.time()
        if r:
            backend = load_backend("transformers", state.model, batch_size=config.generate.batch_size)
            style = prompt_style(task, backend, config.model.chat, config.generate.num_exemplars)
            rows = adapt.example_rows(adapt.examples_for(paths, config.adapt.formats, style.exemplars, False, r,
                                                         seed, task.answer_prefix))
            folder = out / f"{arm}-r{r:02d}"
            adapt.train(rows, state, config.model.name, config.adapt, folder, seed + r, "float32", "cpu")
            state = adapt.ModelState(str(folder))
        history.append({"round": r, **eval_model(state.model, task, heldout, config, seed + 1000 * r),
                        "seconds": round(time.time() - started, 1)})
    return history


def eval_model(model: str, task, heldout: list[Item], config, seed: int) -> dict:
    backend = load_backend("transformers", model, batch_size=config.generate.batch_size)
    style = prompt_style(task, backend, config.model.chat, config.generate.num_exemplars)
    ev = config.evaluate
    _, metrics = evaluate.heldout_accuracy(backend, task, heldout, style, ev.format, ev.k, ev.temperature,
                                           config.generate.max_new_tokens, 0, seed)
    return metrics


def share_bins(run_dir: Path) -> list[dict]:
    """Base model's held-out questions binned by vote share: how often the majority is right."""
    gold = {json.loads(l)["id"]: json.loads(l)["gold"] for l in (run_dir / "heldout.jsonl").read_text().splitlines()}
    votes: dict[str, list] = {}
    for line in (run_dir / "rounds/r00/eval_samples.jsonl").read_text().splitlines():
        s = json.loads(line)
        votes.setdefault(s["question_id"], []).append(s)  # greedy rows are written before the sampled ones
    bins = [(0.0, 0.375), (0.375, 0.625), (0.625, 0.875), (0.875, 1.01)]
    out = []
    for lo, hi in bins:
        right = total = 0
        for qid, samples in votes.items():
            sampled = samples[1:]  # the first row of each question is its greedy path
            answers = [s["answer"] for s in sampled if s["answer"] is not None]
            if not answers:
                continue
            top = max(set(answers), key=answers.count)
            share = answers.count(top) / len(sampled)
            if lo <= share < hi:
                total += 1
                right += top == gold[qid]
        out.append({"bin": f"{lo:.2f}-{min(hi, 1):.2f}", "questions": total, "majority_accuracy": right / total if total else None})
    return out


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def summarize(results: dict) -> dict:
    out = {}
    for arm, per_seed in results["arms"].items():
        gains = [h[-1]["accuracy"] - h[0]["accuracy"] for h in per_seed.values()]
        out[arm] = {"gain": spread(gains), "final": spread([h[-1]["accuracy"] for h in per_seed.values()])}
    if "selftrain" in out and "oracle" in out and out["oracle"]["gain"]["median"] > 0:
        out["selftrain_share_of_oracle_gain"] = out["selftrain"]["gain"]["median"] / out["oracle"]["gain"]["median"]
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, per_seed in results["arms"].items():
        for i, (seed, h) in enumerate(per_seed.items()):
            ax.plot([x["round"] for x in h], [x["accuracy"] for x in h], marker="o", alpha=0.8,
                    color={"selftrain": "C0", "control": "C1", "oracle": "C2"}[arm], label=arm if i == 0 else None)
    ax.set_xlabel("round")
    ax.set_ylabel("held-out greedy accuracy")
    ax.set_title("embedded demo: label-free vs control vs oracle")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def table(results: dict) -> Table:
    t = Table(title="greedy held-out accuracy per round (base = round 0)")
    t.add_column("arm")
    t.add_column("seed")
    t.add_column("per round")
    t.add_column("maj@k per round")
    for arm, per_seed in results["arms"].items():
        for seed, h in per_seed.items():
            t.add_row(arm, str(seed), " ".join(f"{x['accuracy']:.1%}" for x in h),
                      " ".join(f"{x.get('majority_accuracy') or 0:.1%}" for x in h))
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=["selftrain", "control", "oracle"])
    parser.add_argument("--ablations", nargs="*", default=None, help=f"any of {', '.join(ABLATIONS)}")
    parser.add_argument("--ablation-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--work", type=Path, default=Path("runs/embedded-evidence"))
    parser.add_argument("--out", type=Path, default=RESULTS / "embedded_evidence.json")
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.exists() else {"arms": {}, "ablations": {}}
    for arm in args.arms:
        for seed in args.seeds:
            work = args.work / f"{arm}-s{seed}"
            started = time.time()
            h = selftrain(work, seed) if arm == "selftrain" else supervised(work, seed, arm)
            results["arms"].setdefault(arm, {})[str(seed)] = h
            results.setdefault("wall_seconds", {})[f"{arm}-s{seed}"] = round(time.time() - started)
            if arm == "selftrain":
                results.setdefault("share_bins", {})[str(seed)] = share_bins(work)
            args.out.write_text(json.dumps(results, indent=1))
            print(arm, seed, [round(x["accuracy"], 3) for x in h], flush=True)
    for name in args.ablations or []:
        for seed in args.ablation_seeds:
            h = selftrain(args.work / f"abl-{name}-s{seed}", seed, ABLATIONS[name])
            results["ablations"].setdefault(name, {})[str(seed)] = [
                {k: x.get(k) for k in ("round", "accuracy", "majority_accuracy", "pseudo_label_accuracy", "kept")}
                for x in h]
            args.out.write_text(json.dumps(results, indent=1))
            print(name, seed, [round(x["accuracy"], 3) for x in h], flush=True)
    results["summary"] = summarize(results)
    args.out.write_text(json.dumps(results, indent=1))
    plot(results, args.out.with_suffix(".png"))
    Console().print(table(results))
    print(json.dumps(results["summary"], indent=1))


if __name__ == "__main__":
    main()
