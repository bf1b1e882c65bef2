"""Evidence for the embedded code domain: label-free rounds against their control and oracle.

    python -m benchmarks.code_evidence [--seeds 0 1 2] [--jobs 2] [--rounds 3]    # or make evidence-code
    python -m benchmarks.code_evidence --quick --seeds 0 --work /tmp/ce --out /tmp/ce.json   # plumbing

Dev and test: the held-out problems are the dev set (the recipe was set on them); every round's weights
are also scored on `--test` problems of another seed stream, minus any the job saw (`test` in each round's
row; `benchmarks.evidence.splits`). The claims read the test split where it was scored.

The model is the shipped tiny code model (`embedded/assets/code_base`, trained on mostly 1-2 step list
functions); pool and held-out problems have 3 steps. The recipe is `embedded/code_demo.yaml`.
Arms (same pool, held-out set, optimiser and steps per round; each round continues from the last):
  selftrain  sample K programs per pool question; vote over behaviour clusters in the sandbox
             (`vote.method: behaviour`); keep the programs of the winning cluster (they pass the
             docstring examples: `same_behaviour` gate); train on them + a replay sample of the seed set
  control    the same steps on the labelled seed set alone (is it just more training?)
  oracle     the pool's reference programs + the same replay (the most the pool can teach)
Scored every round on the held-out problems with their hidden tests, in the sandbox: greedy pass@1, and
pass@1 / pass@k from k samples (unbiased estimator). For selftrain also the pseudo-label accuracy (the
voted program passes the hidden test) and the kept programs' accuracy: diagnostics only; the hidden
tests never reach the vote, the gates or training.

Every (arm, seed) runs in its own process (one torch thread) and keeps each finished round in
WORK/<arm>-s<seed>/rNN.json (weights in rNN/); a rerun skips what is done, so a killed run resumes.
Writes benchmarks/results/code_evidence.json and .png. Not run by CI: 32 minutes for 3 seeds with --jobs 2 on 2 busy cores.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, as `python -m benchmarks...` does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.evidence import provenance, splits  # noqa: E402
from benchmarks.evidence.jobs import run_jobs  # noqa: E402
from benchmarks.evidence.quiet import quiet_worker  # noqa: E402
from benchmarks.evidence.stats import spread  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "src/selfimprove/embedded/code_demo.yaml"
BASE = ROOT / "src/selfimprove/embedded/assets/code_base"
ARMS = ("selftrain", "control", "oracle")
REPLAY_ROWS = 300
QUICK = ["run.rounds=1", "task.source=steps=3,n=40,seed=0", "task.eval_source=steps=3,n=30,seed=0",
         "generate.k=4", "evaluate.k=2", "adapt.max_steps=10"]


def with_seed(source: str, seed: int) -> str:
    return ",".join(p if not p.startswith("seed=") else f"seed={seed}" for p in source.split(","))


def load(seed: int, quick: bool, rounds: int | None, base: Path = BASE):
    from selfimprove.config import load_config

    overrides = [f"model.name={base}", f"run.seed={seed}", *(QUICK if quick else [])]
    if rounds:
        overrides.append(f"run.rounds={rounds}")
    config = load_config(CONFIG, overrides)
    task = config.task.model_copy(update={"source": with_seed(config.task.source, seed),
                                          "eval_source": with_seed(config.task.eval_source, seed)})
    return config.model_copy(update={"task": task})


def sample_programs(backend, weights, items, n: int, temperature: float, max_new_tokens: int, seed: int, round_: int):
    from selfimprove.backends import SamplingParams
    from selfimprove.records import Sample
    from selfimprove.tasks.code import code_prompt, extract_program

    params = SamplingParams(n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    outs = backend.generate([code_prompt(i.question) for i in items], params, weights)
    return [Sample(i.id, round_, j, "code", seed, weights.model, weights.adapter, c.text, extract_program(c.text),
                   c.num_tokens, c.truncated, c.logprob) for i, cs in zip(items, outs) for j, c in enumerate(cs)]


def hidden_pass(problems, samples) -> dict[tuple[str, int], bool]:
    """(question id, sample index) -> passes the hidden test (scoring only)."""
    from selfimprove.execution.programs import Limits, run_hidden_tests
    from selfimprove.tasks.list_functions import hidden_test

    by_id = {p.id: p for p in problems}
    jobs = [(s, (by_id[s.question_id].question, s.answer, hidden_test(by_id[s.question_id])))
            for s in samples if s.answer is not None]
    ok = run_hidden_tests([j for _, j in jobs], Limits(timeout_s=2.0, memory_mb=256))
    return {(s.question_id, s.index): o for (s, _), o in zip(jobs, ok)}


def score(backend, weights, problems, config, round_: int) -> dict:
    """Held-out greedy pass@1 and sampled pass@1 / pass@k, hidden tests in the sandbox."""
    from selfimprove.execution.programs import pass_at_k
    from selfimprove.records import Item

    items = [Item(p.id, p.question) for p in problems]
    seed = config.run.seed + 1000 * round_
    max_new = config.generate.max_new_tokens
    greedy = sample_programs(backend, weights, items, 1, 0.0, max_new, seed, round_)
    k = config.evaluate.k
    sampled = sample_programs(backend, weights, items, k, config.evaluate.temperature, max_new, seed + 1, round_)
    g, s = hidden_pass(problems, greedy), hidden_pass(problems, sampled)
    right = {p.id: sum(s.get((p.id, j), False) for j in range(k)) for p in problems}
    return {"pass_at_1_greedy": sum(g.values()) / len(problems),
            # greedy pass per problem, by sorted id: what a paired test between arms reads
            "outcomes": "".join("1" if g.get((i, 0), False) else "0" for i in sorted(p.id for p in problems)),
            "pass_at_1": statistics.mean(pass_at_k(k, c, 1) for c in right.values()),
            f"pass_at_{k}": statistics.mean(pass_at_k(k, c, k) for c in right.values()),
            "no_program": sum(x.answer is None for x in greedy) / len(problems)}


def label_free_rows(backend, weights, pool, config, round_: int, seed: int) -> tuple[list[dict], dict]:
    """The round's kept programs as training rows, and the diagnostics of its votes (hidden tests)."""
    from selfimprove.stages.curate import curate
    from selfimprove.gates import GateContext, build_gates
    from selfimprove.execution.programs import Limits
    from selfimprove.records import Item
    from selfimprove.tasks import get_task
    from selfimprove.tasks.code import code_prompt
    from selfimprove.voting.behaviour import vote_by_behaviour

    items = [Item(p.id, p.question) for p in pool]
    g = config.generate
    samples = sample_programs(backend, weights, items, g.k, g.temperature, g.max_new_tokens,
                              seed * 7919 + round_, round_)
    options = dict(config.vote.options)
    limits = Limits(options.pop("timeout_s", 5.0), options.pop("memory_mb", 512), options.pop("workers", None))
    votes = vote_by_behaviour(samples, items, seed=config.run.seed, limits=limits, **options)
    gates = build_gates(config.curate.gates, GateContext(get_task("list_functions"), None, weights, round_,
                                                         config.run.seed))
    questions = {i.id: i.question for i in items}
    verdicts = curate(samples, votes, questions, gates, config.curate.max_paths_per_question, config.curate.dedupe)
    kept = [s for s, v in zip(samples, verdicts) if v["kept"]]
    # Diagnostics against the hidden tests (never fed back): is the voted program right? are kept ones?
    voted = [s for v in votes if v.answer is not None
             for s in [next(x for x in samples if x.question_id == v.question_id and x.answer == v.answer)]]
    voted_ok, kept_ok = hidden_pass(pool, voted), hidden_pass(pool, kept)
    rows = [{"prompt": code_prompt(questions[s.question_id]), "completion": s.answer} for s in kept]
    return rows, {"voted_questions": len(voted), "pseudo_label_accuracy": _mean(voted_ok.values()),
                  "kept": len(kept), "kept_questions": len({s.question_id for s in kept}),
                  "kept_accuracy": _mean(kept_ok.values()),
                  "abstention_rate": sum(s.answer is None for s in samples) / len(samples),
                  "mean_share": _mean([v.share for v in votes if v.answer is not None])}


def _mean(values) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def seed_rows(base: Path) -> list[dict]:
    from selfimprove.tasks.code import code_prompt

    rows = [json.loads(line) for line in (base / "seed.jsonl").read_text().splitlines()]
    return [{"prompt": code_prompt(r["question"]), "completion": r["program"]} for r in rows]


def test_problems(config, seed: int, n: int, seen: list[str]) -> list:
    """The untouched test split: `n` problems of another seed stream, minus any a job saw (dev = held-out)."""
    from selfimprove.tasks.list_functions import load_problems

    source = splits.with_seed(config.task.eval_source, seed + splits.TEST_SEED_OFFSET, n)
    return splits.disjoint(load_problems(source, config.task.eval_split), seen)[0]


def run_job(arm: str, seed: int, work: str, quick: bool = False, rounds: int | None = None,
            base: str = str(BASE), test_n: int = 0) -> dict:
    quiet_worker()
    from selfimprove.adapt.sft import train
    from selfimprove.backends import create_backend
    from selfimprove.records import Weights
    from selfimprove.tasks.code import code_prompt
    from selfimprove.tasks.list_functions import load_problems

    config = load(seed, quick, rounds, Path(base))
    out = Path(work) / f"{arm}-s{seed}"
    out.mkdir(parents=True, exist_ok=True)
    pool = load_problems(config.task.source, config.task.split)
    heldout = load_problems(config.task.eval_source, config.task.eval_split)
    seed_set = seed_rows(Path(base))
    replay = random.Random(seed).sample(seed_set, min(REPLAY_ROWS, len(seed_set)))
    seen = [p.question for p in pool + heldout] + [
        json.loads(line)["question"] for line in (Path(base) / "seed.jsonl").read_text().splitlines()]
    test = test_problems(config, seed, test_n, seen) if test_n else []
    backend = create_backend(config.model, config.generate)
    weights, history, started = Weights(base), [], time.time()
    for r in range(config.run.rounds + 1):
        done = out / f"r{r:02d}.json"
        folder = out / f"r{r:02d}"
        twin = [f for f in Path(work).glob(f"*-s{seed}/r00.json") if r == 0 and f != done]
        if not done.exists() and twin:  # round 0 is the same base scored the same way in every arm
            shutil.copyfile(twin[0], done)
        if done.exists():
            row = json.loads(done.read_text())
            weights = Weights(str(folder)) if r else weights
            if test and "test" not in row:  # a round finished before the test split was scored
                row["test"] = score(backend, weights, test, config, r)
                done.write_text(json.dumps(row))
            history.append(row)
            continue
        t0, info = time.time(), {}
        if r:
            if arm == "selftrain":
                rows, info = label_free_rows(backend, weights, pool, config, r, seed)
                rows += replay
            elif arm == "control":
                rows = seed_set
            else:
                rows = [{"prompt": code_prompt(p.question), "completion": p.program} for p in pool] + replay
            partial = folder.with_name(folder.name + ".partial")  # renamed when whole: a kill leaves no half model
            shutil.rmtree(partial, ignore_errors=True)
            backend.close()
            train(rows, weights, config.adapt, partial, seed + r, config.model)
            shutil.rmtree(folder, ignore_errors=True)
            partial.rename(folder)
            weights = Weights(str(folder))
            info["train_rows"] = len(rows)
        row = {"round": r, **score(backend, weights, heldout, config, r), **info, "seconds": round(time.time() - t0, 1)}
        if test:  # the same weights on problems no choice was made on
            row["test"] = score(backend, weights, test, config, r)
        tmp = done.with_suffix(".tmp")
        tmp.write_text(json.dumps(row))
        tmp.rename(done)
        history.append(row)
        print(f"{arm} seed {seed} round {r}: {row}", flush=True)
    backend.close()
    result = {"arm": arm, "seed": seed, "seconds": round(time.time() - started), "history": history}
    (out / "evidence.json").write_text(json.dumps(result, indent=1))
    return result


# --- merging, summary, plot ----------------------------------------------------------------------

def merge(work: Path, seeds: list[int]) -> dict:
    arms: dict = {a: {} for a in ARMS}
    for f in sorted(work.glob("*/evidence.json")):
        r = json.loads(f.read_text())
        if r["seed"] in seeds and r["arm"] in arms:
            arms[r["arm"]][str(r["seed"])] = r["history"]
    summary = {}
    for arm, per_seed in arms.items():
        if per_seed:
            gains = [h[-1]["pass_at_1_greedy"] - h[0]["pass_at_1_greedy"] for h in per_seed.values()]
            summary[arm] = {"gain_greedy_pass_at_1": spread(gains),
                            "final_greedy_pass_at_1": spread([h[-1]["pass_at_1_greedy"] for h in per_seed.values()]),
                            "gain_sampled_pass_at_1": spread([h[-1]["pass_at_1"] - h[0]["pass_at_1"]
                                                              for h in per_seed.values()])}
            if all("test" in h[-1] and "test" in h[0] for h in per_seed.values()):  # the untouched split
                summary[arm]["test_gain_greedy_pass_at_1"] = spread(
                    [h[-1]["test"]["pass_at_1_greedy"] - h[0]["test"]["pass_at_1_greedy"] for h in per_seed.values()])
    if arms["selftrain"]:
        rounds = [h for hist in arms["selftrain"].values() for h in hist[1:]]
        summary["selftrain_pseudo_label_accuracy"] = spread([h["pseudo_label_accuracy"] for h in rounds
                                                             if h.get("pseudo_label_accuracy") is not None])
        summary["selftrain_kept_accuracy"] = spread([h["kept_accuracy"] for h in rounds
                                                     if h.get("kept_accuracy") is not None])
    st, orc = summary.get("selftrain"), summary.get("oracle")
    if st and orc and orc["gain_greedy_pass_at_1"]["median"] > 0:
        summary["selftrain_share_of_oracle_gain"] = (st["gain_greedy_pass_at_1"]["median"]
                                                     / orc["gain_greedy_pass_at_1"]["median"])
    summary["claims"] = paired_claims(arms)
    return {"seeds": seeds, "arms": arms, "summary": summary}


def paired_claims(arms: dict) -> list[dict]:
    """selftrain's final round against each other arm's and against its own round 0, paired per problem
    (results from before outcomes were stored have none, and get no claim)."""
    from benchmarks.evidence import claims

    out = []
    for split, pick in (("test", lambda h: (h.get("test") or {}).get("outcomes")), ("dev", lambda h: h.get("outcomes"))):
        final = {a: {s: pick(h[-1]) for s, h in per_seed.items() if pick(h[-1])} for a, per_seed in arms.items()}
        base = {s: pick(h[0]) for s, h in arms["selftrain"].items() if pick(h[0])}
        out += [claims.paired(f"selftrain vs {other}, final round, {split}", final["selftrain"], final[other]).record()
                for other in ("control", "oracle") if final["selftrain"] and final[other]]
        if final["selftrain"] and base:
            out.append(claims.paired(f"selftrain final round vs its base, {split}", final["selftrain"], base).record())
    return out


COLORS = {"selftrain": "C0", "control": "C1", "oracle": "C2"}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, title in ((axes[0], "pass_at_1_greedy", "held-out greedy pass@1 (hidden tests)"),
                           (axes[1], "pass_at_1", "held-out sampled pass@1 (unbiased, T=1)")):
        for arm, per_seed in results["arms"].items():
            if not per_seed:
                continue
            rounds = range(min(len(h) for h in per_seed.values()))
            values = [[h[r][key] for h in per_seed.values()] for r in rounds]
            ax.plot(rounds, [statistics.median(v) for v in values], marker="o", color=COLORS[arm], label=arm)
            ax.fill_between(rounds, [min(v) for v in values], [max(v) for v in values], color=COLORS[arm], alpha=0.2)
        ax.set(xlabel="round", ylabel=key, title=title, xticks=list(rounds))
        ax.legend()
    fig.suptitle(f"embedded code domain (3-step list functions): median and min-max over seeds {results['seeds']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--jobs", type=int, default=2, help="processes at once (one thread each)")
    parser.add_argument("--rounds", type=int, default=None, help="override run.rounds of code_demo.yaml")
    parser.add_argument("--work", type=Path, default=Path("runs/code-evidence"))
    parser.add_argument("--out", type=Path, default=RESULTS / "code_evidence.json")
    parser.add_argument("--quick", action="store_true", help="a tiny pool, one round: a smoke check, not evidence")
    parser.add_argument("--test", type=int, default=200,
                        help="problems of the untouched test split every round is also scored on (0: none)")
    parser.add_argument("--base", type=Path, default=BASE, help="the code model to start from")
    args = parser.parse_args()
    if not (args.base / "config.json").exists():
        parser.error(f"no code model at {args.base}: build it with `python -m selfimprove.embedded.train_code_base`")
    record = provenance.start(args)
    todo = [(a, s, str(args.work), args.quick, args.rounds, str(args.base.resolve()), args.test)
            for a in args.only for s in args.seeds if not (args.work / f"{a}-s{s}" / "evidence.json").exists()]
    run_jobs(run_job, todo, args.jobs, lambda r: print(
        f"{r['arm']} seed {r['seed']}: greedy pass@1 {[round(h['pass_at_1_greedy'], 3) for h in r['history']]} "
        f"({r['seconds']}s)", flush=True))
    results = merge(args.work, args.seeds)
    provenance.write_result(results, args.out, plot, record)


if __name__ == "__main__":
    main()
