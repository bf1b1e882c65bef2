"""Evidence for the trained proposer (issue 30): does a writer trained by RL on its solver's uncertainty
write questions that teach, where the untrained writer's did not?

    python -m benchmarks.proposer_evidence [--seeds 0 1 2] [--arms real written shown10] [--proposer-lrs 2e-5 1e-4 3e-4 1e-3] [--jobs 2]

Every arm is acquisition_evidence's `written` setting: the demo recipe (`demo.yaml`, 4 rounds) from the
demo base's sibling that also learned to write questions (`writer_base`), through `selfimprove.loop`; the
arms differ only in where a round's questions come from:

  real      the demo's 1,000-question pool (human-made in kind: the generator's questions)
  written   10 example questions shown; 1,000 questions a round written by the untrained model
            (`acquire.method: written`), screened, then voted on
  proposer-lrX  the same 10 examples shown; the trained proposer (`acquire.method: proposer`): 192 prompts
            x 8 questions a round, each solved K=8 times by the round's solver, rewarded by its uncertainty
            (1 - 2|share - 1/2|) minus repetition, leak and malformed penalties; the proposer's LoRA adapter
            is updated by GRPO at learning rate X on those rewards each round, and the questions in the
            band [0.25, 0.75] are the round's questions. One arm per `--proposer-lrs` rate.
  shown10   the same rounds on the 10 example questions alone (the seed set, no question written)

Compute: each round's generated tokens (writing, solving for the reward, and sampling the pool) and
trained tokens (the round's SFT, and the proposer's update) are recorded per arm (`generated_tokens`,
`trained_tokens`, `compute_tokens` in the history); 192 x 8 proposed questions a round were chosen so that
the proposer's generated tokens a round are near the untrained writer's. A run the loop stopped early
(nothing passed the gates) spent less; `rounds_run` says how many rounds each arm ran.

Dev and test: each run's held-out set (200 questions, seed stream of the demo) is its dev set; every round's
weights are also scored greedy on 200 questions of another seed stream with every question any arm of that
seed saw removed (`test_accuracy`, `test_outcomes`; `benchmarks.evidence.splits`), so arms of one seed are
paired question by question. The proposer's learning rate is chosen on dev: the rate whose arm has the
largest median dev gain over seeds is `proposer` in the claims (every rate's gains are reported); its band
is R-Zero's, not tuned. Nothing is chosen on the test set.

Difficulty: per round, the proposer's questions by the solver's share (its difficulty to the solver) and by
their number of operations (read by the task's grammar), and the mean reward and its parts.

Each (arm, seed) is a job in its own process (`--jobs` at once, `benchmarks.evidence.jobs`), writing
WORK/<arm>-s<seed>.json; a rerun skips finished jobs and resumes runs. The merged result is
benchmarks/results/proposer_evidence.json and .png. Not run by CI.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, as `python -m benchmarks...` does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.evidence import claims, provenance  # noqa: E402
from benchmarks.evidence.jobs import run_jobs  # noqa: E402
from benchmarks.evidence.stats import spread  # noqa: E402

RESULTS = Path(__file__).parent / "results"
PROPOSER_OPTIONS = ("{prompts: 192, per_prompt: 8, groups_per_step: 8, examples: 10, shots: 3, "
                    "learning_rate: LR, band: [0.25, 0.75]}")
PROPOSER = "proposer-lr"  # + the learning rate as given: one arm per rate
ARMS = ("real", "written", "shown10")


def arm_overrides(arm: str, seed: int) -> list[str]:
    shown = f"task.source=steps=3,max_value=30,n=10,seed={seed}"
    if arm.startswith(PROPOSER):
        options = PROPOSER_OPTIONS.replace("LR", arm.removeprefix(PROPOSER))
        return [shown, "acquire.method=proposer", f"acquire.options={options}"]
    return {"real": [],
            "written": [shown, "acquire.method=written", "acquire.options={count: 1000, examples: 10, shots: 3}"],
            "shown10": [shown]}[arm]


def order(arm: str) -> tuple:
    """Arms in the report's order: real, written, the proposer's rates (ascending), shown10."""
    if arm.startswith(PROPOSER):
        return (2, float(arm.removeprefix(PROPOSER)))
    return ({"real": 0, "written": 1, "shown10": 3}[arm], 0.0)


def operations(question: str) -> int | None:
    """A question's number of operations in the generator's language (None: not one of its questions)."""
    from selfimprove.tasks.arithmetic import read_question

    read = read_question(question)
    return None if read is None else len(read[1])


def proposed_stats(out: Path) -> list[dict]:
    """Per round: the proposer's questions by verdict, by the solver's share and by operations; the mean
    reward and its parts; the update's steps and trained tokens."""
    rows = []
    for path in sorted(out.glob("rounds/r*/proposed.jsonl")):
        proposed = [json.loads(x) for x in path.read_text().splitlines()]
        log_path = path.with_name("proposer_log.jsonl")
        log = [json.loads(x) for x in log_path.read_text().splitlines()] if log_path.exists() else []
        solved = [r for r in proposed if r["share"] is not None]
        rows.append({
            "round": int(path.parent.name[1:]), "questions": len(proposed),
            "verdicts": dict(Counter(r["verdict"] for r in proposed)),
            "share": dict(sorted(Counter(f"{r['share']:.3f}" for r in solved).items())),
            "operations_solved": dict(sorted(Counter(str(operations(r["text"])) for r in solved).items())),
            "operations_kept": dict(sorted(Counter(str(operations(r["text"])) for r in proposed
                                                   if r["verdict"] == "kept").items())),
            "mean_reward": statistics.fmean(r["reward"] for r in proposed),
            "mean_parts": {p: statistics.fmean(r["parts"][p] for r in proposed) for p in proposed[0]["parts"]},
            "mean_share_solved": statistics.fmean(r["share"] for r in solved) if solved else None,
            "update_steps": len(log), "trained_tokens": sum(h.get("trained_tokens", 0) for h in log)})
    return rows


def job(work: Path, arm: str, seed: int) -> dict:
    """One arm of one seed: its run (resumed if started), history with dev and test outcomes, and what its
    questions were."""
    from benchmarks.acquisition_evidence import run_arm, writer_base, written_stats
    from benchmarks.evidence.quiet import quiet_worker

    done = work / f"{arm}-s{seed}.json"
    if done.exists():
        return json.loads(done.read_text())
    quiet_worker()
    start = time.time()
    out = work / f"{arm}-s{seed}"
    history = run_arm(out, seed, arm_overrides(arm, seed), model=str(writer_base(work)))
    result = {"arm": arm, "seed": seed, "history": history, "seconds": round(time.time() - start),
              **({"proposed": proposed_stats(out)} if arm.startswith(PROPOSER) else {}),
              **({"written_questions": written_stats(out)} if arm == "written" else {})}
    done.write_text(json.dumps(result))
    return result


def tokens(history: list[dict], key: str) -> int:
    return sum(h.get(key) or 0 for h in history[1:])


def by_round(jobs: list[dict]) -> dict[str, list[dict]]:
    """Per proposer arm, per round, its questions summed over seeds: verdicts, operations of the solved ones,
    and the mean reward and solver's share (means over seeds) -- the difficulty distribution by round."""
    out: dict[str, list[dict]] = {}
    for arm in sorted({j["arm"] for j in jobs if j["arm"].startswith(PROPOSER)}, key=order):
        rows = [r for j in jobs if j["arm"] == arm for r in j["proposed"]]
        for n in sorted({r["round"] for r in rows}):
            at = [r for r in rows if r["round"] == n]
            total = lambda key: dict(sum((Counter(r[key]) for r in at), Counter()))  # noqa: E731
            shares = [r["mean_share_solved"] for r in at if r["mean_share_solved"] is not None]
            out.setdefault(arm, []).append({
                "round": n, "seeds": len(at), "questions": sum(r["questions"] for r in at),
                "verdicts": total("verdicts"), "operations_solved": total("operations_solved"),
                "mean_reward": statistics.fmean(r["mean_reward"] for r in at),
                "mean_share_solved": statistics.fmean(shares) if shares else None})
    return out


def summarize(jobs: list[dict]) -> dict:
    """Per arm over seeds: dev and test gains, tokens; the proposer's rate chosen on dev; the paired
    test-set claims of the chosen rate, pooled over seeds."""
    by = {(j["arm"], str(j["seed"])): j["history"] for j in jobs}
    arms = sorted({a for a, _ in by}, key=order)
    seeds = sorted({s for _, s in by}, key=int)
    out: dict = {"arms": {}}
    for arm in arms:
        hs = [by[(arm, s)] for s in seeds if (arm, s) in by]
        out["arms"][arm] = {
            "dev_gain": spread([h[-1]["accuracy"] - h[0]["accuracy"] for h in hs]),
            "test_gain": spread([h[-1]["test_accuracy"] - h[0]["test_accuracy"] for h in hs]),
            "test_final": spread([h[-1]["test_accuracy"] for h in hs]),
            "rounds_run": spread([len(h) - 1 for h in hs]),
            "generated_tokens": spread([tokens(h, "generated_tokens") for h in hs]),
            "trained_tokens": spread([tokens(h, "trained_tokens") for h in hs]),  # the SFT's and the proposer's
            "compute_tokens": spread([tokens(h, "compute_tokens") for h in hs]),
            "pseudo_label_accuracy": spread([statistics.fmean(x["pseudo_label_accuracy"] for x in h[1:]
                                                              if x.get("pseudo_label_accuracy") is not None)
                                             for h in hs if any(x.get("pseudo_label_accuracy") is not None
                                                                for x in h[1:])])}
    rates = [a for a in arms if a.startswith(PROPOSER)]
    if rates:  # the rate with the largest median dev gain; the test set plays no part
        out["chosen_on_dev"] = max(rates, key=lambda a: out["arms"][a]["dev_gain"]["median"])
        out["arms"]["proposer"] = out["arms"][out["chosen_on_dev"]]
        for s in seeds:
            if (out["chosen_on_dev"], s) in by:
                by[("proposer", s)] = by[(out["chosen_on_dev"], s)]
        arms = [*arms, "proposer"]
    out["proposed_by_round"] = by_round(jobs)
    test_gain = {a: statistics.median(out["arms"][a]["test_gain"]["values"]) for a in arms}
    out["share_of_real_test_gain"] = {a: test_gain[a] / test_gain["real"] for a in arms
                                      if a != "real" and "real" in test_gain and test_gain["real"] > 0}
    final = {a: {s: by[(a, s)][-1]["test_outcomes"] for s in seeds if (a, s) in by} for a in arms}
    pairs = [("proposer", "written"), ("proposer", "shown10"), ("proposer", "real"), ("written", "shown10"),
             ("real", "shown10")]
    out["claims"] = [claims.paired(f"{a} vs {b}, final round, test", final[a], final[b]).record()
                     for a, b in pairs if a in final and b in final]
    for arm in [a for a in arms if not a.startswith(PROPOSER)]:  # final round vs its base (round 0: same weights)
        base = {s: by[(arm, s)][0]["test_outcomes"] for s in final[arm]}
        out["claims"].append(claims.paired(f"{arm} final round vs its base, test", final[arm], base).record())
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    jobs = results["jobs"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    chosen = results["summary"].get("chosen_on_dev")
    for arm in sorted({j["arm"] for j in jobs}, key=order):
        curves = [[h["test_accuracy"] for h in j["history"]] for j in jobs if j["arm"] == arm]
        rounds = range(max(map(len, curves)))  # a run the loop stopped early keeps its last round's score
        axes[0].plot(rounds, [statistics.median(c[min(r, len(c) - 1)] for c in curves) for r in rounds],
                     "-D" if arm == chosen else ":" if arm.startswith(PROPOSER) else "-o",
                     label=arm + (" (chosen on dev)" if arm == chosen else ""))
    axes[0].set(title="Test accuracy (greedy), median of seeds", xlabel="round", ylabel="accuracy")
    axes[0].legend(fontsize=7)
    proposed = [j["proposed"] for j in jobs if j["arm"] == chosen]
    if proposed:
        rounds = sorted({r["round"] for p in proposed for r in p})
        at = [[r for p in proposed for r in p if r["round"] == n] for n in rounds]  # every seed's row of a round

        def curve(value, label, style):  # the median over seeds where the round has a value
            points = [(n, statistics.median(v)) for n, rows in zip(rounds, at)
                      if (v := [x for r in rows if (x := value(r)) is not None])]
            if points:
                axes[1].plot(*zip(*points), style, label=label)
        curve(lambda r: r["mean_reward"], "mean reward", "-o")
        curve(lambda r: r["mean_share_solved"], "mean share (solved)", "-s")
        for part in proposed[0][0]["mean_parts"]:
            curve(lambda r, part=part: r["mean_parts"][part], part, ":")
        axes[1].set(title="Proposer: reward and solver share by round", xlabel="round")
        axes[1].legend(fontsize=7)
        ops = sorted({k for p in proposed for r in p for k in r["operations_solved"] if k != "None"}, key=int)
        bottom = [0.0] * len(rounds)
        for k in ops:
            counts = [sum(r["operations_solved"].get(k, 0) for r in rows) for rows in at]
            axes[2].bar(rounds, counts, bottom=bottom, label=f"{k} operation{'s' if k != '1' else ''}")
            bottom = [b + c for b, c in zip(bottom, counts)]
        axes[2].set(title="Proposed questions solved, by operations (all seeds)", xlabel="round", ylabel="questions")
        axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--proposer-lrs", nargs="*", default=["2e-5", "1e-4", "3e-4", "1e-3"],
                        help="the trained proposer's GRPO learning rates, one arm each (chosen among on dev)")
    parser.add_argument("--jobs", type=int, default=2, help="processes at once (one torch thread each)")
    parser.add_argument("--work", type=Path, default=Path("runs/bench/proposer-evidence"))
    parser.add_argument("--out", type=Path, default=RESULTS / "proposer_evidence.json")
    args = parser.parse_args()
    record = provenance.start(args)
    args.work.mkdir(parents=True, exist_ok=True)
    from benchmarks.acquisition_evidence import writer_base

    writer_base(args.work)  # built once here, not by two workers at once
    # the proposer's jobs first: they are the longest, so the pool's two workers finish near together
    arms = [PROPOSER + lr for lr in args.proposer_lrs] + args.arms
    todo = [(args.work, arm, seed) for arm in arms for seed in args.seeds]
    jobs = run_jobs(job, todo, args.jobs, lambda r: print(
        f"{r['arm']} seed {r['seed']}: test {[round(h['test_accuracy'], 3) for h in r['history']]} "
        f"({r['seconds']}s)", flush=True))
    jobs.sort(key=lambda j: (order(j["arm"]), j["seed"]))
    results = {"jobs": jobs, "summary": summarize(jobs), "proposer_options": PROPOSER_OPTIONS}
    provenance.write_result(results, args.out, plot, record)


if __name__ == "__main__":
    main()
