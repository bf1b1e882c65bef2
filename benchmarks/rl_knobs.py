"""RL against SFT again on the embedded domain, with DAPO's knobs and the certainty rewards (issue 27).

    python -m benchmarks.rl_knobs [--seeds 0 1 2] [--lrs 3e-5 1e-4 3e-4] [--jobs 2] [--work DIR] [--out FILE]
    python -m benchmarks.rl_knobs --plumbing --jobs 2   # tiny settings, two seeds: the script end to end in minutes

Arms (the loop with the demo recipe, same pool, dev and untouched sets, rounds and seeds):
  sft              LMSI-style SFT rounds on the verified majority's paths (the demo)
  grpo_verified    GRPO, reward `verified_majority` (as rl_evidence.py's arm of that name)
  grpo_dapo        the same with DAPO's dynamic sampling and clip-higher (epsilon_high 0.28)
  grpo_entropy     the best certainty reward on dev (token_entropy: RENT, semantic_entropy: EMPO,
                   self_certainty: INTUITOR), with grpo_dapo's settings and learning rate
  grpo_gold        the gold-reward oracle (rl_evidence.grpo_gold), grpo_dapo's settings and learning rate
  grpo_random      the random-reward control, grpo_dapo's settings and learning rate

Selection on dev: the loop scores every round on its held-out set (the dev set, `accuracy`). At the
first seed every learning rate in --lrs (for grpo_entropy, every certainty reward at grpo_dapo's rate)
runs, and the candidate with the best final dev accuracy runs the other seeds; gold and random take
grpo_dapo's. With --jobs 2 the first seed's candidates run two at once, then the other seeds side by
side (each run in its own single-thread process). The
arms are compared on the untouched set (rl_evidence.untouched: another generator seed, the run's
questions removed), which nothing chose on: SFT against each arm, paired per question.

Compute, in tokens sampled + trained: SFT trains sft_steps x B_sft examples of p + c tokens a round;
a GRPO step samples B completions and trains on them with their prompts, B (p + 2c) tokens, so
grpo_verified takes sft_steps x B_sft (p + c) / (B (p + 2c)) steps with the SFT arm's lengths. Its own
samples' mean length c' and zero-variance share z then set the other arms' steps: dynamic sampling
samples 1 / (1 - z) groups per kept group, B (p + c' + c' / (1 - z)) tokens a step. Every arm's actual
`compute_tokens` is in the JSON, to check the match.

Per arm: untouched and dev gains (mean and spread over seeds), compute tokens, the chosen learning rate
(and reward), and from its rounds' rl_steps.jsonl: the share of trained groups with zero reward variance,
the groups dynamic sampling dropped, and TRL's mean per-token entropy of the trained samples.
Writes WORK/<arm>-<candidate>-s<seed>/ (a rerun resumes them) and --out. Not run by CI.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, as `python -m benchmarks...` does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.evidence import claims, provenance  # noqa: E402
from benchmarks.evidence.jobs import run_jobs  # noqa: E402
from benchmarks.evidence.quiet import quiet_worker  # noqa: E402
from benchmarks.evidence.stats import spread  # noqa: E402
from benchmarks.rl_evidence import final, gain, spent, token_lengths, untouched  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ARMS = ("sft", "grpo_verified", "grpo_dapo", "grpo_entropy", "grpo_gold", "grpo_random")
CERTAINTY = ("token_entropy", "semantic_entropy", "self_certainty")
# Controls run at the tested arm's learning rate; the certainty rewards are compared at it too (a reward x rate
# grid of 9 runs would double the selection's cost for a choice the dev set cannot resolve at 200 questions).
INHERIT_LR = {"grpo_gold": "grpo_dapo", "grpo_random": "grpo_dapo", "grpo_entropy": "grpo_dapo"}
PLUMBING = dict(seeds=[0, 1], lrs=[1e-4], rounds=1, pool=24, heldout=16, untouched=16, sft_steps=2,
                num_generations=4, batch_size=16, k=4)


def reward_and_method(arm: str, reward: str | None) -> tuple[str, str, bool]:
    """adapt.method, the reward, and whether DAPO's knobs are on."""
    return {"grpo_verified": ("grpo", "verified_majority", False), "grpo_dapo": ("grpo", "verified_majority", True),
            "grpo_entropy": ("grpo", reward or CERTAINTY[0], True),
            "grpo_gold": ("benchmarks.rl_evidence:grpo_gold", "majority", True),
            "grpo_random": ("grpo", "random", True)}[arm]


def overrides(arm: str, args, steps: int, lr: float, reward: str | None) -> list[str]:
    base = [f"run.rounds={args.rounds}", f"task.source=steps=3,max_value=30,n={args.pool},seed={{seed}}",
            f"task.eval_limit={args.heldout}", f"generate.k={args.k}", f"evaluate.k={args.k}"]
    if arm == "sft":
        return base + [f"adapt.max_steps={args.sft_steps}"]
    method, reward, dapo = reward_and_method(arm, reward)
    knobs = f", dynamic_sampling: true, sampling_budget: {args.budget}, epsilon_high: 0.28" if dapo else ""
    temperature = f", temperature: {args.rl_temperature}" if args.rl_temperature else ""
    return base + [f"adapt.method={method}", f"adapt.batch_size={args.batch_size}", f"adapt.max_steps={steps}",
                   f"adapt.learning_rate={lr}",
                   f"adapt.options={{rewards: {{{reward}: 1.0}}, num_generations: {args.num_generations}, "
                   f"probe_every: {steps}, probe_questions: {args.heldout}, tolerance: 1.0, beta: {args.beta}"
                   f"{knobs}{temperature}}}"]


def run_arm(name: str, arm: str, seed: int, args, steps: int, lr: float, reward: str | None = None) -> dict:
    """One run of the loop; its history (dev and untouched accuracy per round) and its RL step records."""
    from rich.console import Console

    from selfimprove.rundir import layout
    from selfimprove.embedded import demo
    from selfimprove.loop import run

    quiet_worker()  # a spawned worker's torch: one thread, no bars
    out = args.work / f"{name}-s{seed}"
    started = time.time()
    config = [o.replace("{seed}", str(seed)) for o in overrides(arm, args, steps, lr, reward)]
    run(demo.demo_config(out, seed, quick=False, overrides=config), console=Console(quiet=True))
    history = [json.loads(line) for line in (out / layout.HISTORY).read_text().splitlines()]
    for h, (score, right) in zip(history, untouched(out, history, seed, args)):
        h["untouched_accuracy"], h["untouched_outcomes"] = score, right
    steps_rows = [json.loads(x) for r in range(1, len(history)) if (out / layout.round_file(r, layout.RL_STEPS)).exists()
                  for x in (out / layout.round_file(r, layout.RL_STEPS)).read_text().splitlines()]
    trained = [s for s in steps_rows if s["samples"]]
    mean = lambda key: statistics.mean(v) if (v := [s[key] for s in trained if s.get(key) is not None]) else None  # noqa: E731
    return {"arm": arm, "seed": seed, "lr": lr, "reward": reward, "steps_per_round": steps,
            "seconds": round(time.time() - started),
            "history": [{k: h.get(k) for k in ("round", "accuracy", "untouched_accuracy", "untouched_outcomes",
                                                "compute_tokens", "weights_round")} for h in history],
            "zero_variance_groups": mean("zero_variance_groups"), "token_entropy": mean("token_entropy"),
            "mean_tokens": mean("mean_tokens"),
            "dropped_groups": sum(s.get("dropped_groups") or 0 for s in trained)}


def sft_batch_size(run_dir: Path) -> int:
    """Examples an SFT step trains on, from the run's own config."""
    from selfimprove.config import load_config

    adapt = load_config(run_dir / "config.yaml").adapt
    return adapt.batch_size * adapt.grad_accum


def candidates(arm: str, args, chosen: dict) -> list[tuple[float, str | None]]:
    """(learning rate, reward) pairs to run at the first seed; one pair once chosen."""
    if arm in chosen:
        return [chosen[arm]]
    lrs = [chosen[INHERIT_LR[arm]][0]] if arm in INHERIT_LR else args.lrs
    return [(lr, reward) for lr in lrs for reward in (CERTAINTY if arm == "grpo_entropy" else (None,))]


def run_all(todo: list[tuple], workers: int) -> list[dict]:
    """run_arm for each args tuple: in this process when workers is 1, else `workers` spawned at once."""
    if workers <= 1:
        return [run_arm(*t) for t in todo]
    return run_jobs(run_arm, todo, workers, report=lambda r: print(f"  {r['arm']} lr={r['lr']:g} "
                                                                    f"reward={r['reward']} done", flush=True))


def run_seed(seed: int, args, results: dict, chosen: dict, workers: int = 1) -> dict:
    sft = run_arm("sft", "sft", seed, args, args.sft_steps, 0.0)
    results["arms"].setdefault("sft", {})[str(seed)] = sft
    p, c = token_lengths(args.work / f"sft-s{seed}")
    sft_batch = sft_batch_size(args.work / f"sft-s{seed}")  # the demo's; GRPO's is --batch-size
    budget = args.sft_steps * sft_batch * (p + c)  # SFT's trained tokens a round
    steps = max(1, round(budget / (args.batch_size * (p + 2 * c))))
    # grpo_verified runs first (ARMS order) at SFT's lengths; its zero-variance share and the length of its
    # samples (longer than SFT's kept paths: a sample runs on to max_new_tokens) set the other arms' steps.
    zero, length = None, c
    for arm in sorted((a for a in args.arms if a != "sft"), key=ARMS.index):
        kept = max(0.05, 1 - (zero or 0))  # informative groups per group sampled (floored: a share of 1 stalls)
        dynamic = reward_and_method(arm, None)[2]
        per_step = args.batch_size * (p + length + length / (kept if dynamic else 1))
        arm_steps = steps if arm == "grpo_verified" else max(1, round(budget / per_step))
        runs = run_all([(f"{arm}-lr{lr:g}{'-' + reward if reward else ''}", arm, seed, args, arm_steps, lr, reward)
                        for lr, reward in candidates(arm, args, chosen)], workers)
        best = max(runs, key=gain)
        chosen.setdefault(arm, (best["lr"], best["reward"]))
        results["arms"].setdefault(arm, {})[str(seed)] = best
        if len(runs) > 1:
            results.setdefault("selection", {})[arm] = [{"lr": r["lr"], "reward": r["reward"], "dev_gain": gain(r)}
                                                        for r in runs]
        if arm == "grpo_verified":
            zero, length = best["zero_variance_groups"], best["mean_tokens"] or c
        results.setdefault("steps", {}).setdefault(str(seed), {"prompt_tokens": p, "sft_completion_tokens": c})[
            arm] = {"steps": arm_steps, "zero_variance_share_used": zero, "sample_tokens_used": length}
    return results


def other_seed(seed: int, args, chosen: dict) -> dict:
    """A seed after the first, in a worker process: its arms one after another at the chosen settings
    (run_arm quiets the worker's torch)."""
    return run_seed(seed, args, {"arms": {}}, dict(chosen))


def summarize(results: dict) -> dict:
    out = {}
    for arm, per_seed in results["arms"].items():
        runs = list(per_seed.values())
        out[arm] = {"untouched_gain": spread([gain(r, "untouched_accuracy") for r in runs]),
                    "dev_gain": spread([gain(r) for r in runs]),
                    "compute_tokens": [spent(r) for r in runs],
                    "lr": runs[0]["lr"], "reward": runs[0]["reward"],
                    **{k: [r[k] for r in runs] for k in ("zero_variance_groups", "token_entropy", "dropped_groups")}}
    arms = results["arms"]
    out["claims"] = [claims.paired(f"SFT vs {a}, untouched set, final weights",
                                   {s: final(r)["untouched_outcomes"] for s, r in arms["sft"].items()},
                                   {s: final(r)["untouched_outcomes"] for s, r in arms[a].items()}).record()
                     for a in arms if a != "sft" and "sft" in arms]
    return out


def plot(results: dict, path: Path) -> None:
    """Each arm's untouched-set gain after the last round, per seed (dots) and median (bar), with its
    share of zero-variance trained groups written beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [a for a in ARMS if a in results["arms"]]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    for i, arm in enumerate(arms):
        runs = list(results["arms"][arm].values())
        gains = [100 * gain(r, "untouched_accuracy") for r in runs]
        ax.barh(i, statistics.median(gains), color=f"C{i}", alpha=0.6)
        ax.scatter(gains, [i] * len(gains), color="black", s=12, zorder=3)
        zero = [r["zero_variance_groups"] for r in runs if r["zero_variance_groups"] is not None]
        if zero:
            ax.annotate(f"{100 * statistics.median(zero):.0f}% zero-variance", (max(gains), i),
                        xytext=(6, -3), textcoords="offset points", fontsize=7)
    ax.set_yticks(range(len(arms)), arms)
    ax.set_xlim(right=ax.get_xlim()[1] + 6)  # room for the zero-variance notes
    ax.axvline(0, color="black", lw=0.8)
    ax.set(xlabel="untouched test gain after 2 rounds, points (dots: seeds; bar: median)",
           title="SFT against GRPO with DAPO's knobs, tokens matched (embedded domain)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), help=", ".join(ARMS))
    parser.add_argument("--lrs", type=float, nargs="+", default=[3e-5, 1e-4, 3e-4], help="GRPO learning rates (dev)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pool", type=int, default=500)
    parser.add_argument("--heldout", type=int, default=200, help="the dev set: the loop's held-out score")
    parser.add_argument("--untouched", type=int, default=200, help="the test set, scored after the run")
    parser.add_argument("--sft-steps", type=int, default=100)
    parser.add_argument("--k", type=int, default=8, help="voters a question (generate.k, evaluate.k): the demo's")
    parser.add_argument("--num-generations", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--budget", type=float, default=3.0, help="dynamic sampling's sampling_budget")
    parser.add_argument("--rl-temperature", type=float, help="the trained samples' temperature (default: generate's)")
    parser.add_argument("--beta", type=float, default=0.04)
    parser.add_argument("--jobs", type=int, default=1, help="processes at once (one torch thread each)")
    parser.add_argument("--plumbing", action="store_true", help="tiny settings: " + str(PLUMBING))
    parser.add_argument("--work", type=Path, default=Path("runs/rl-knobs"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.plumbing:
        vars(args).update(PLUMBING)
    # a plumbing run checks the script, not the claim: its JSON stays beside its runs, out of results/
    args.out = args.out or (args.work / "rl_knobs_plumbing.json" if args.plumbing else RESULTS / "rl_knobs.json")
    if "sft" not in args.arms:
        parser.error("the SFT arm sets the token budget: keep it in --arms")
    record = provenance.start(args)
    quiet_worker()
    results, chosen = {"seeds": args.seeds, "config": {k: str(v) for k, v in vars(args).items()}, "arms": {}}, {}
    first, rest = args.seeds[0], args.seeds[1:]
    print(f"seed {first}: every candidate, {args.jobs} at once", flush=True)
    run_seed(first, args, results, chosen, args.jobs)
    results["summary"] = summarize(results)
    provenance.write_result(results, args.out, None, dict(record))

    def merge(part: dict) -> None:
        for arm, per_seed in part["arms"].items():
            results["arms"].setdefault(arm, {}).update(per_seed)
        results.setdefault("steps", {}).update(part.get("steps", {}))
        results["summary"] = summarize(results)
        provenance.write_result(results, args.out, plot, dict(record))
        print(f"seed {next(iter(part['arms']['sft']))} done", flush=True)

    print(f"seeds {rest}: the chosen settings, {args.jobs} at once", flush=True)
    if args.jobs <= 1:
        for seed in rest:
            merge(run_seed(seed, args, {"arms": {}}, dict(chosen)))
    else:
        run_jobs(other_seed, [(seed, args, chosen) for seed in rest], args.jobs, report=merge)
    provenance.write_result(results, args.out, plot, record)


if __name__ == "__main__":
    main()
