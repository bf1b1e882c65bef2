"""Evidence for the embedded demo: label-free self-improvement against its controls, and LMSI's ablations.

    python -m benchmarks.embedded_evidence [--seeds 0 1 2] [--jobs 2] [--only selftrain control ...]   # make evidence-embedded
    python -m benchmarks.embedded_evidence --quick --seeds 0 --only selftrain control --work /tmp/ev --out /tmp/ev.json

Dev and test: the demo's 200 held-out questions are the dev set (the recipe was developed on them, and the
loop scores them every round); after each job, every round's weights are also scored greedy on `--test`
questions from another seed stream with every question the job saw removed (`benchmarks.evidence.splits`).
The report and the claims read the test scores (`test_accuracy`, `test_outcomes`).

Arms (the demo's 4 rounds, over every seed; same pool, held-out set, optimiser and steps):
  selftrain  the demo itself (`selfimprove.loop` with demo.yaml): verified-majority own paths + replay
  control    the same extra steps per round on the labelled seed set alone (is it just more training?)
  oracle     the pool's gold rationales + the same replay (the most the pool can teach)
Ablations, one round each as in the paper (round 1 of `selftrain` is the default in each family):
  K          k1 k2 k4 k16 (default 8)
  filter     no_filter (every path), majority (LMSI: every path votes, keep the majority's),
             share_0.75 (the same with a vote-share threshold); default: only verified paths vote
  formats    four_formats (CoT/direct x zero/few-shot), direct_only; default: CoT zero-shot
Calibration: the base model's pool questions binned by vote share, majority accuracy per bin (paper's Fig. 2).

Every job runs in its own process (one thread each, `--jobs` at once) and writes WORK/<job>/evidence.json;
a rerun skips finished jobs, so a killed run resumes. The merged result goes to
benchmarks/results/embedded_evidence.json and .png. Not run by CI: about an hour on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, as `python -m benchmarks...` does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.evidence import claims, outcomes, provenance, splits  # noqa: E402
from benchmarks.evidence.jobs import run_jobs  # noqa: E402
from benchmarks.evidence.quiet import quiet_worker  # noqa: E402
from benchmarks.evidence.stats import spread  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ARMS = ("selftrain", "control", "oracle")
ABLATION_ROUNDS = 1
PLAIN_VOTE = "vote.require=[]"  # every path votes, as in LMSI
ABLATIONS = {  # name -> (family, loop overrides on top of the demo config)
    "k1": ("K", ["generate.k=1"]), "k2": ("K", ["generate.k=2"]), "k4": ("K", ["generate.k=4"]),
    "k16": ("K", ["generate.k=16"]),
    "no_filter": ("filter", [PLAIN_VOTE, "curate.gates=[{name: not_truncated}]"]),
    "majority": ("filter", [PLAIN_VOTE, "curate.gates=[{name: majority}, {name: not_truncated}]"]),
    "share_0.75": ("filter", [PLAIN_VOTE, "curate.gates=[{name: majority}, {name: min_share, threshold: 0.75}, "
                                          "{name: not_truncated}]"]),
    "four_formats": ("formats", ["adapt.formats={cot_zeroshot: 1.0, cot_fewshot: 1.0, direct_zeroshot: 1.0, "
                                 "direct_fewshot: 1.0}", "generate.num_exemplars=2", "adapt.max_length=512"]),
    "direct_only": ("formats", ["adapt.formats={direct_zeroshot: 1.0}"]),
}
DEFAULT_LABEL = {"K": "k8", "filter": "verified_majority", "formats": "cot_only"}
KEEP = ("round", "accuracy", "majority_accuracy", "pass_at_k", "pseudo_label_accuracy", "kept_pseudo_label_accuracy",
        "kept", "seconds", "outcomes", "test_accuracy", "test_outcomes")


# --- the jobs (each runs in a worker process) -----------------------------------------------------

def selftrain(out: Path, seed: int, overrides: list[str], rounds: int | None = None, quick: bool = False) -> list[dict]:
    """The demo recipe through the loop; per-round metrics and per-question outcomes, round 0 = base."""
    from rich.console import Console

    from selfimprove.rundir import layout
    from selfimprove.embedded import demo
    from selfimprove.loop import run
    from selfimprove.tasks import get_task

    extra = [*overrides, *([f"run.rounds={rounds}"] if rounds else [])]
    config = demo.demo_config(out, seed, quick=quick, overrides=extra)
    run(config, console=Console(quiet=True))
    history = [json.loads(line) for line in (out / layout.HISTORY).read_text().splitlines()]
    scored = outcomes.from_run(out, get_task(config.task.name))
    return [{**h, "outcomes": scored.get(str(h["round"]))} for h in history]


def supervised(out: Path, seed: int, arm: str, quick: bool = False, overrides: list[str] = (),
               test_n: int = 0) -> list[dict]:
    """control / oracle: the loop's own trainer and scorer, on labelled data instead of votes.
    `overrides` (dotted) change the demo config, e.g. another base model (distill_evidence's student).
    With `test_n`, every round is also scored greedy on the test split (questions this arm never saw)."""
    from selfimprove.adapt.examples import examples_for, read_replay
    from selfimprove.adapt.sft import train
    from selfimprove.backends import create_backend
    from selfimprove.embedded import demo
    from selfimprove.stages.evaluate import evaluate_weights
    from selfimprove.records import TrustedPath, Weights, to_row
    from selfimprove.tasks import get_task
    from selfimprove.tasks.arithmetic import load_problems, reasoning

    config = demo.demo_config(out, seed, quick=quick, overrides=overrides)
    task = get_task("arithmetic")
    heldout = task.load(config.task.eval_source, split=config.task.eval_split, limit=config.task.eval_limit)
    if arm == "control":  # the whole labelled seed set the base model converged on
        paths = read_replay(str(demo.base_model() / "seed.jsonl"))
    else:
        paths = read_replay(config.adapt.replay) + [
            TrustedPath(p.id, p.question, reasoning(p), str(p.answer))
            for p in load_problems(config.task.source, config.task.split)]
    test, test_config = [], None
    if test_n:
        test, _ = splits.test_items(task, config.task.eval_source, config.task.eval_split, seed, test_n,
                                    demo_seen(seed, quick))
        test_config = demo.demo_config(out, seed, quick=quick, overrides=[*overrides, "evaluate.k=1",
                                                                          "evaluate.temperature=0"])
    backend = create_backend(config.model, config.generate)  # one engine, told each round's weights
    weights, history = Weights(config.model.name), []
    for r in range(config.run.rounds + 1):
        started = time.time()
        folder = out / f"{arm}-r{r:02d}"
        if r and not folder.exists():
            rows = [to_row(e) for e in examples_for(paths, config.adapt.formats, [], False, r, seed,
                                                     task.answer_prefix)]
            partial = folder.with_name(folder.name + ".partial")  # renamed when whole: a kill leaves no half model
            shutil.rmtree(partial, ignore_errors=True)
            backend.close()  # no sampling model is alive while training runs, as in the loop
            train(rows, weights, config.adapt, partial, seed + r, config.model)
            partial.rename(folder)
        if r:  # adapt.init=previous: the next round trains from these weights
            weights = Weights(str(folder)) if config.adapt.tuning == "full" else Weights(weights.model, str(folder))
        # Scored exactly as the loop scores a round (same seeds, prompts, verified vote).
        scores = evaluate_weights(backend, weights, task, config, heldout, [], r)
        row = {"round": r, **scores.metrics, "seconds": round(time.time() - started, 1),
               "outcomes": outcomes.from_samples(task, scores.heldout_samples, heldout)}
        if test:
            on_test = evaluate_weights(backend, weights, task, test_config, test, [], r)
            row |= {"test_accuracy": on_test.metrics["accuracy"],
                    "test_outcomes": outcomes.from_samples(task, on_test.heldout_samples, test)}
        history.append(row)
    backend.close()
    return history


def calibration(run_dir: Path) -> dict:
    """Round-1 pool questions (sampled by the base model) binned by vote share: is the majority right?

    `plain`: every path votes (LMSI); `verified`: only paths that pass `vote.require` vote (the share is
    among them; questions where none passed abstain and are counted apart).
    """
    from selfimprove.rundir import layout
    from selfimprove.tasks import get_task
    from selfimprove.stages.vote import majority

    task = get_task("arithmetic")
    gold = {r["id"]: r["gold"] for r in map(json.loads, (run_dir / layout.POOL_GOLD).read_text().splitlines())}
    answers: dict[str, list] = {}
    for s in map(json.loads, (run_dir / layout.round_file(1, layout.SAMPLES)).read_text().splitlines()):
        answers.setdefault(s["question_id"], []).append(s["answer"])
    plain = []
    for qid, given in answers.items():
        top, share, _, _ = majority(given, is_equivalent=task.is_equivalent)  # the loop's own vote and tie-break
        plain.append((share, top is not None and task.is_equivalent(top, gold[qid])))
    votes = [json.loads(line) for line in (run_dir / layout.round_file(1, layout.VOTES)).read_text().splitlines()]
    verified = [(v["share"], task.is_equivalent(v["answer"], gold[v["question_id"]]))
                for v in votes if v["answer"] is not None]
    return {"plain": share_bins(plain), "verified": share_bins(verified),
            "verified_abstained": sum(v["answer"] is None for v in votes)}  # no path passed the verifiers


def base_votes(run_dir: Path) -> dict:
    """The base model on the held-out set: greedy, plain maj@k, and maj@k where only verified paths vote.

    The gap between greedy and the verified vote is what the rounds can close (an abstention counts wrong).
    Read from round 0's scores: `evaluate_weights` measured all three on the same samples.
    """
    from selfimprove.rundir import layout

    base = json.loads((run_dir / layout.round_file(0, layout.METRICS)).read_text())
    return {"greedy": base["accuracy"], "plain_majority": base["majority_accuracy"],
            "verified_majority": base.get("verified_majority_accuracy")}


BINS = ((0.0, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.0), (1.0, 1.01))


def share_bins(pairs: list[tuple[float, bool]]) -> list[dict]:
    out = []
    for lo, hi in BINS:
        inside = [right for share, right in pairs if lo <= share < hi]
        out.append({"bin": f"{lo:.1f}-{min(hi, 1):.1f}" if hi <= 1 else "1.0", "questions": len(inside),
                    "majority_accuracy": sum(inside) / len(inside) if inside else None})
    return out


def demo_seen(seed: int, quick: bool = False) -> list[str]:
    """What every arm of a demo seed shares (pool, dev set, the base's labelled seed set): the questions
    its test split leaves out, so every arm of the seed is scored on the same test questions."""
    from selfimprove.embedded import demo
    from selfimprove.tasks import get_task

    pool = demo.QUICK_POOL if quick else demo.POOL
    return splits.shared_seen(get_task("arithmetic"), f"steps=3,max_value=30,n={pool},seed={seed}", "train",
                              f"steps=3,max_value=30,n=200,seed={seed}", "test", None,
                              [demo.base_model() / "seed.jsonl"])


def with_test_scores(out: Path, history: list[dict], test_n: int, quick: bool = False) -> list[dict]:
    """A loop run's history with every round's test-split accuracy and outcomes (none when `test_n` is 0)."""
    if not test_n:
        return history
    import yaml

    seed = yaml.safe_load((out / "config.yaml").read_text())["run"]["seed"]  # the run's own seed
    scored = splits.score_run(out, test_n, demo_seen(seed, quick))
    return [{**h, "test_accuracy": scored[str(h["round"])]["accuracy"],
             "test_outcomes": scored[str(h["round"])]["outcomes"]} for h in history]


def run_job(name: str, seed: int, work: str, quick: bool = False, test_n: int = 0) -> dict:
    quiet_worker()
    out = Path(work) / f"{name}-s{seed}"
    started = time.time()
    if name == "selftrain":
        history = with_test_scores(out, selftrain(out, seed, [], quick=quick), test_n, quick)
    elif name in ARMS:
        history = supervised(out, seed, name, quick, test_n=test_n)
    else:
        history = with_test_scores(out, selftrain(out, seed, ABLATIONS[name][1], rounds=ABLATION_ROUNDS, quick=quick),
                                   test_n, quick)
    result = {"name": name, "seed": seed, "seconds": round(time.time() - started),
              "history": [{k: h.get(k) for k in KEEP} for h in history]}
    (out / "evidence.json").write_text(json.dumps(result, indent=1))
    return result


# --- merging, summary, plot ----------------------------------------------------------------------

def merge(work: Path, seeds: list[int]) -> dict:
    jobs = {}
    for f in sorted(work.glob("*/evidence.json")):
        r = json.loads(f.read_text())
        if r["seed"] in seeds:
            jobs[(r["name"], r["seed"])] = r
    arms = {a: {str(s): jobs[(a, s)]["history"] for s in seeds if (a, s) in jobs} for a in ARMS}
    ablations: dict = {}
    for name, (family, _) in ABLATIONS.items():
        ablations.setdefault(family, {})[name] = {str(s): jobs[(name, s)]["history"] for s in seeds
                                                  if (name, s) in jobs}
    for family, label in DEFAULT_LABEL.items():  # the default of each family is selftrain's first round
        ablations[family][label] = {s: h[:ABLATION_ROUNDS + 1] for s, h in arms["selftrain"].items()}
    return {"seeds": seeds, "ablation_rounds": ABLATION_ROUNDS, "arms": arms, "ablations": ablations,
            "calibration": {str(s): calibration(work / f"selftrain-s{s}") for s in seeds if ("selftrain", s) in jobs},
            "base_votes": {str(s): base_votes(work / f"selftrain-s{s}") for s in seeds if ("selftrain", s) in jobs},
            "wall_seconds": {f"{n}-s{s}": r["seconds"] for (n, s), r in sorted(jobs.items())}}


def summarize(results: dict) -> dict:
    def gains(per_seed):
        return [h[-1]["accuracy"] - h[0]["accuracy"] for h in per_seed.values()]

    out: dict = {"arms": {}, "ablations": {}}
    for arm, per_seed in results["arms"].items():
        if per_seed:
            out["arms"][arm] = {"gain": spread(gains(per_seed)),
                                "final": spread([h[-1]["accuracy"] for h in per_seed.values()])}
    arms = out["arms"]
    if "selftrain" in arms and "oracle" in arms and arms["oracle"]["gain"]["median"] > 0:
        out["selftrain_share_of_oracle_gain"] = arms["selftrain"]["gain"]["median"] / arms["oracle"]["gain"]["median"]
        st, orc = results["arms"]["selftrain"], results["arms"]["oracle"]
        out["share_of_oracle_gain_per_seed"] = {
            s: round((st[s][-1]["accuracy"] - st[s][0]["accuracy"]) / (orc[s][-1]["accuracy"] - orc[s][0]["accuracy"]), 3)
            for s in st if s in orc and orc[s][-1]["accuracy"] > orc[s][0]["accuracy"]}
    for family, variants in results["ablations"].items():
        out["ablations"][family] = {
            name: {"gain": spread(gains(per_seed)),
                   "kept_label_accuracy": spread([h[-1]["kept_pseudo_label_accuracy"] or 0 for h in per_seed.values()]),
                   "kept": spread([h[-1]["kept"] or 0 for h in per_seed.values()])}
            for name, per_seed in variants.items() if per_seed}
    for arm, per_seed in results["arms"].items():  # the untouched test split, where it was scored
        if per_seed and all(h[-1].get("test_accuracy") is not None for h in per_seed.values()):
            out["arms"][arm]["test_gain"] = spread([h[-1]["test_accuracy"] - h[0]["test_accuracy"]
                                                    for h in per_seed.values()])
    out["claims"] = paired_claims(results["arms"], "test_outcomes", "test") + paired_claims(results["arms"])
    return out


def paired_claims(arms: dict, key: str = "outcomes", split: str = "dev") -> list[dict]:
    """The label-free arm's final round against each control and against its base, paired per question on
    `split` (results from before outcomes were stored have none, and get no claim)."""
    final = {a: {s: h[-1][key] for s, h in per_seed.items() if h[-1].get(key)} for a, per_seed in arms.items()}
    base = {s: h[0][key] for s, h in arms.get("selftrain", {}).items() if h[0].get(key)}
    out = [claims.paired(f"label-free vs {other}, after the last round, {split}", final["selftrain"],
                         final[other]).record()
           for other in ("control", "oracle") if final.get("selftrain") and final.get(other)]
    if final.get("selftrain") and base:
        out.append(claims.paired(f"label-free after the last round vs its base, {split}", final["selftrain"],
                                 base).record())
    return out


COLORS = {"selftrain": "C0", "control": "C1", "oracle": "C2"}
K_ORDER = {"k1": 1, "k2": 2, "k4": 4, "k8": 8, "k16": 16}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    ax = axes[0][0]
    for arm, per_seed in results["arms"].items():
        if not per_seed:
            continue
        rounds = range(min(len(h) for h in per_seed.values()))
        acc = [[h[r]["accuracy"] for h in per_seed.values()] for r in rounds]
        ax.plot(rounds, [statistics.median(a) for a in acc], marker="o", color=COLORS[arm], label=arm)
        ax.fill_between(rounds, [min(a) for a in acc], [max(a) for a in acc], color=COLORS[arm], alpha=0.2)
    ax.set(xlabel="round", ylabel="held-out greedy accuracy", title="label-free vs control vs oracle")
    ax.legend()
    summary = results["summary"]["ablations"]
    panels = ((axes[0][1], ["K"], "paths per question K"), (axes[1][0], ["filter", "formats"], "filters | training formats"))
    for ax, families, title in panels:
        bars = [(fam, name, st) for fam in families for name, st in summary.get(fam, {}).items()]
        bars.sort(key=lambda b: K_ORDER.get(b[1], 0))  # stable: filters and formats keep their order
        med = [100 * st["gain"]["median"] for _, _, st in bars]
        err = [[m - 100 * st["gain"]["min"] for m, (_, _, st) in zip(med, bars)],
               [100 * st["gain"]["max"] - m for m, (_, _, st) in zip(med, bars)]]
        colors = ["C3" if name == DEFAULT_LABEL[fam] else ("C0" if fam != "formats" else "C4") for fam, name, _ in bars]
        ax.bar([name for _, name, _ in bars], med, yerr=err, capsize=4, color=colors)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(ylabel=f"greedy gain after {ABLATION_ROUNDS} round (points)", title=f"{title} (red: the demo's)")
        ax.tick_params(axis="x", rotation=30)
    ax = axes[1][1]
    for kind, color in (("plain", "C1"), ("verified", "C0")):
        per_seed = [c[kind] for c in results["calibration"].values()]
        if not per_seed:
            continue
        labels = [b["bin"] for b in per_seed[0]]
        values = [[s[i]["majority_accuracy"] for s in per_seed if s[i]["majority_accuracy"] is not None]
                  for i in range(len(labels))]
        xs = [i for i, v in enumerate(values) if v]
        ax.errorbar([labels[i] for i in xs], [statistics.median(values[i]) for i in xs],
                    yerr=[[statistics.median(values[i]) - min(values[i]) for i in xs],
                          [max(values[i]) - statistics.median(values[i]) for i in xs]],
                    marker="o", capsize=4, color=color, label=f"{kind} vote")
    ax.set(xlabel="vote share of the majority answer", ylabel="majority answer correct",
           title="calibration: base model, pool questions")
    ax.legend()
    fig.suptitle(f"embedded demo evidence: median and min-max over seeds {results['seeds']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def print_tables(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    pct = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    t = Table(title="held-out greedy accuracy per round (round 0 = base)")
    for col in ("arm", "seed", "greedy per round", "maj@k per round"):
        t.add_column(col)
    for arm, per_seed in results["arms"].items():
        for seed, h in per_seed.items():
            t.add_row(arm, seed, " ".join(pct(x["accuracy"]) for x in h), " ".join(pct(x["majority_accuracy"]) for x in h))
    a = Table(title=f"ablations: greedy gain (points) after {ABLATION_ROUNDS} round, median [min, max] over seeds")
    for col in ("family", "variant", "gain", "vote right (kept questions)", "paths kept"):
        a.add_column(col)
    for family, variants in results["summary"]["ablations"].items():
        for name, s in sorted(variants.items(), key=lambda v: K_ORDER.get(v[0], 0)):
            g = s["gain"]
            a.add_row(family, name, f"{100 * g['median']:+.1f} [{100 * g['min']:+.1f}, {100 * g['max']:+.1f}]",
                      pct(s["kept_label_accuracy"]["median"]), f"{s['kept']['median']:.0f}")
    console = Console(width=120)
    console.print(t)
    console.print(a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", default=None, help=f"jobs to run: {', '.join([*ARMS, *ABLATIONS])}")
    parser.add_argument("--jobs", type=int, default=2, help="processes at once (one thread each)")
    parser.add_argument("--work", type=Path, default=Path("runs/embedded-evidence"))
    parser.add_argument("--out", type=Path, default=RESULTS / "embedded_evidence.json")
    parser.add_argument("--test", type=int, default=200,
                        help="questions of the untouched test split every round is also scored on (0: none)")
    parser.add_argument("--quick", action="store_true",
                        help="the demo's --quick recipe (one round, small pool): a smoke check, not evidence")
    args = parser.parse_args()
    names = args.only or [*ARMS, *ABLATIONS]
    unknown = [n for n in names if n not in ARMS and n not in ABLATIONS]
    if unknown:
        parser.error(f"unknown job(s) {unknown}; choose from {', '.join([*ARMS, *ABLATIONS])}")
    record = provenance.start(args)
    todo = [(n, s, str(args.work), args.quick, args.test) for n in names for s in args.seeds
            if not (args.work / f"{n}-s{s}" / "evidence.json").exists()]
    run_jobs(run_job, todo, args.jobs, lambda r: print(
        f"{r['name']} seed {r['seed']}: {[round(h['accuracy'], 3) for h in r['history']]} ({r['seconds']}s)", flush=True))
    results = merge(args.work, args.seeds)
    results["summary"] = summarize(results)
    provenance.write_result(results, args.out, plot, record)
    print_tables(results)
    print(json.dumps({k: v for k, v in results["summary"].items() if k != "ablations"}, indent=1))


if __name__ == "__main__":
    main()
