"""Evidence for label-free RL on the embedded domain: SFT rounds vs GRPO with four rewards, and test-time training.

    python -m benchmarks.rl_evidence [--seeds 0 1 2] [--rounds 2] [--long-rounds 4] [--pool 500] [--work DIR]
    python -m benchmarks.rl_evidence --seeds 1 --out /tmp/s1.json   # one seed a process, then:
    python -m benchmarks.rl_evidence --merge /tmp/s0.json /tmp/s1.json /tmp/s2.json   # make evidence-rl does all

Arms (each the loop with the demo recipe, `demo.yaml`, same pool, held-out set, rounds and seeds):
  sft              LMSI-style SFT rounds on the verified majority's paths (today's demo)
  grpo_verified    GRPO, reward `verified_majority`: the verified vote (vote.require) as label, 0 for a path
                   that fails the arithmetic/grounded checks
  grpo_plain       GRPO, reward `majority` over a plain vote (every path votes: TTRL's reward)
  grpo_gold        GRPO, the pool's gold answers as labels (the oracle: what the same RL could do with labels)
  grpo_random      GRPO, reward `random` (the spurious-reward control: a gain here only unlocks format)
  grpo_verified_guard  grpo_verified with the collapse guard on: probe every `--probe-every` steps,
                   stop after a fall of more than 1 point at 3 probes in a row (or at the last step),
                   and end every round on its best probed weights (`load_best_at_end`). Every other
                   GRPO arm probes the same way but never stops, so its curve shows any rise and fall.
  grpo_plain_long, grpo_plain_long_guard   TTRL's plain-majority reward for `--long-rounds` rounds,
                   without and with the guard: the long run where a rise-then-fall would show
  ttt              test-time training (transductive): GRPO verified_majority with a LoRA on the held-out
                   questions themselves, accuracy before and after (reported apart: never in the arms table)
  ttt_guard        ttt with the guard probing greedy agreement with the vote (`probe: votes`, label-free)
  ttt_random, ttt_gold   ttt's control (random reward, same steps) and oracle (the answers as labels)

Compute: every arm spends its round's sampling (pool x K paths, the vote) plus training. SFT trains
`--sft-steps` steps of `adapt.batch_size` prompt+completion pairs; a GRPO step samples batch_size
completions and trains on them with their prompts, so GRPO's steps are set to spend the same tokens:
steps = sft_steps x (prompt + completion) / (prompt + 2 x completion), with the lengths measured on
the SFT arm's first round. The tokens each arm actually spent (`compute_tokens`: generated + trained,
recorded by the loop) are in the JSON, so the match can be checked.

Held-out: the loop scores every round on `--heldout` questions (200), and the guard probes the
same ones, so the guard's (and the monitor's) choice of weights is selected on them. After the run,
every round's weights are also scored on a second held-out set (`--untouched`, 200, another
generator seed, questions seen in the run removed) that nothing chose on: the arms are compared there.

Writes WORK/<arm>-s<seed>/ (run directories; a rerun resumes them) and the merged
benchmarks/results/rl_evidence.json and .png. Not run by CI.
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
from benchmarks.evidence import claims, outcomes, provenance  # noqa: E402
from benchmarks.evidence.merge import by_arm_and_seed  # noqa: E402
from benchmarks.evidence.quiet import quiet_worker  # noqa: E402
from benchmarks.evidence.stats import spread  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ARMS = ("sft", "grpo_verified", "grpo_plain", "grpo_gold", "grpo_random", "grpo_verified_guard")
LONG_ARMS = ("grpo_plain_long", "grpo_plain_long_guard")
PLAIN_VOTE = "vote.require=[]"
UNTOUCHED_SEED = 7919  # the second held-out set's generator seed is the run's seed plus this
KEEP = ("round", "accuracy", "untouched_accuracy", "weights_round", "majority_accuracy", "verified_majority_accuracy", "pass_at_k",
        "pseudo_label_accuracy", "agreement", "answer_entropy", "compute_tokens", "generated_tokens",
        "trained_tokens", "train_examples", "seconds", "decision", "untouched_outcomes")


def grpo_gold(ctx, round_, inputs, **options):
    """The oracle arm's method: GRPO whose labels are the pool's gold answers instead of the vote.
    Lives here, not in the package: a benchmark control, the one place gold is meant to reach a reward."""
    from dataclasses import replace

    from selfimprove.adapt.grpo import adapt_rl
    from selfimprove.records import Vote

    gold = ctx.data.gold
    votes = [Vote(v.question_id, v.round, gold[v.question_id], 1.0, v.num_votes, v.num_abstain,
                  {gold[v.question_id]: v.num_votes or 1}) for v in inputs.votes if v.question_id in gold]
    return adapt_rl(ctx, round_, replace(inputs, votes=votes), "grpo", options)


def rl_options(rewards: str, args, guard: bool) -> str:
    tolerance, bands, patience = (0.01, "{mean_tokens: 0.5}", 3) if guard else (1.0, "{}", 1)
    return (f"adapt.options={{rewards: {{{rewards}: 1.0}}, num_generations: {args.num_generations}, "
            f"probe_every: {args.probe_every}, probe_questions: {args.heldout}, tolerance: {tolerance}, "
            f"patience: {patience}, load_best_at_end: {str(guard).lower()}, bands: {bands}, beta: {args.beta}}}")


def arm_overrides(arm: str, args, grpo_steps: int) -> list[str]:
    rounds = args.long_rounds if arm in LONG_ARMS else args.rounds
    base = [f"run.rounds={rounds}", f"task.source=steps=3,max_value=30,n={args.pool},seed={{seed}}",
            f"task.eval_limit={args.heldout}"]
    if arm == "sft":
        return base + [f"adapt.max_steps={args.sft_steps}"]
    rl = base + ["adapt.batch_size=64", f"adapt.max_steps={grpo_steps}", f"adapt.learning_rate={args.lr}"]
    return rl + {
        "grpo_verified": ["adapt.method=grpo", rl_options("verified_majority", args, False)],
        "grpo_verified_guard": ["adapt.method=grpo", rl_options("verified_majority", args, True)],
        "grpo_plain": ["adapt.method=grpo", PLAIN_VOTE, rl_options("majority", args, False)],
        "grpo_plain_long": ["adapt.method=grpo", PLAIN_VOTE, rl_options("majority", args, False)],
        "grpo_plain_long_guard": ["adapt.method=grpo", PLAIN_VOTE, rl_options("majority", args, True)],
        "grpo_gold": ["adapt.method=benchmarks.rl_evidence:grpo_gold", rl_options("majority", args, False)],
        "grpo_random": ["adapt.method=grpo", rl_options("random", args, False)],
    }[arm]


def untouched(out: Path, history: list[dict], seed: int, args) -> list[tuple[float, str]]:
    """Greedy accuracy and per-question outcomes of every round's weights on a second held-out set (drawn
    with another seed, questions seen in the run removed) that neither the guard's probe nor the monitor
    ever scored."""
    from rich.console import Console

    from selfimprove.stages import collect
    from selfimprove.backends import create_backend
    from selfimprove.config import load_config
    from selfimprove.stages.evaluate import evaluate_weights
    from selfimprove.records import Weights
    from selfimprove.tasks import get_task

    cache = out / "untouched.json"
    done = json.loads(cache.read_text()) if cache.exists() else {}
    cfg = load_config(out / "config.yaml", [
        f"task.eval_source=steps=3,max_value=30,n={args.untouched},seed={seed + UNTOUCHED_SEED}",
        f"task.eval_limit={args.untouched}", "evaluate.k=1", "evaluate.temperature=0"])
    task = get_task(cfg.task.name)
    seen = {json.loads(x)["question"] for name in ("heldout.jsonl", "pool.jsonl")
            for x in (out / name).read_text().splitlines()}
    items = [i for i in collect.load_heldout(task, cfg.task) if i.question not in seen]
    backend = create_backend(cfg.model, cfg.generate)
    for h in history:
        key = str(h["round"])
        if key not in done:
            weights = Weights(cfg.model.name) if h["round"] == 0 else Weights(str(out / f"rounds/r{h['round']:02d}/model"))
            with Console(quiet=True).capture():
                scores = evaluate_weights(backend, weights, task, cfg, items)
            done[key] = scores.metrics["accuracy"]
            done[f"outcomes {key}"] = outcomes.from_samples(task, scores.heldout_samples, items)
            cache.write_text(json.dumps(done | {"questions": len(items)}))
    backend.close()
    return [(done[str(h["round"])], done.get(f"outcomes {h['round']}")) for h in history]


def run_arm(arm: str, seed: int, args, grpo_steps: int) -> dict:
    from rich.console import Console

    from selfimprove.rundir import layout
    from selfimprove.embedded import demo
    from selfimprove.loop import run

    out = args.work / f"{arm}-s{seed}"
    started = time.time()
    overrides = [o.replace("{seed}", str(seed)) for o in arm_overrides(arm, args, grpo_steps)]
    run(demo.demo_config(out, seed, quick=False, overrides=overrides), console=Console(quiet=True))
    history = [json.loads(line) for line in (out / layout.HISTORY).read_text().splitlines()]
    for h, (score, right) in zip(history, untouched(out, history, seed, args)):
        h["untouched_accuracy"], h["untouched_outcomes"] = score, right
    steps, guards = [], []
    for r in range(1, len(history)):
        if (out / layout.round_file(r, layout.RL_STEPS)).exists():
            steps += [{"round": r, **{k: s.get(k) for k in ("step", "probe_accuracy", "reward", "agreement",
                                                              "answer_entropy", "mean_tokens", "pseudo_label_accuracy",
                                                              "reward_accuracy", "gold_reward", "stopped")}}
                      for s in map(json.loads, (out / layout.round_file(r, layout.RL_STEPS)).read_text().splitlines())]
            guards.append({"round": r, **{k: v for k, v in json.loads(
                (out / layout.round_file(r, layout.RL_GUARD)).read_text()).items() if k != "probes"}})
    return {"arm": arm, "seed": seed, "seconds": round(time.time() - started), "grpo_steps_per_round": grpo_steps,
            "history": [{k: h.get(k) for k in KEEP} for h in history], "steps": steps, "guard": guards}


TTT_LR = 5e-4  # the second value tried: 2e-3 lowered accuracy on 1 of 3 seeds (both are in the results)
GUARDED = "probe: votes, tolerance: 0.02, patience: 2, load_best_at_end: true"
# Test-time arms: adapt.method, reward, extra RL options. The guard probes agreement with the vote
# (label-free), stops after a 2-point fall at 2 probes in a row and keeps the best probe's adapter;
# random is the same compute with an uninformative reward; gold is the oracle (the answers as labels).
TTT_ARMS = {"ttt": ("grpo", "verified_majority", ""), "ttt_guard": ("grpo", "verified_majority", GUARDED),
            "ttt_random": ("grpo", "random", ""), "ttt_gold": ("benchmarks.rl_evidence:grpo_gold", "majority", "")}


def ttt_name(arm: str, args) -> str:
    """The test-time arm's run name: the arm, with its learning rate when not the default."""
    return arm + ("" if args.ttt_lr == TTT_LR else f"_lr{args.ttt_lr:g}")


def run_ttt(arm: str, seed: int, args, grpo_steps: int) -> dict:
    from rich.console import Console

    from selfimprove.rundir import layout
    from selfimprove.embedded import demo
    from selfimprove.ttt import run

    method, reward, extra = TTT_ARMS[arm]
    out = args.work / f"{ttt_name(arm, args)}-s{seed}"
    started = time.time()
    config = demo.demo_config(out, seed, quick=False, overrides=[
        f"task.eval_limit={args.heldout}", f"adapt.method={method}", "adapt.tuning=lora", "adapt.init=base",
        "adapt.batch_size=64", f"adapt.max_steps={grpo_steps}", f"adapt.learning_rate={args.ttt_lr}",
        "adapt.lora_r=32", "adapt.lora_alpha=64", "adapt.lora_dropout=0.0",
        f"adapt.options={{rewards: {{{reward}: 1.0}}, num_generations: {args.num_generations}, "
        f"probe_every: {args.probe_every}, probe_questions: {args.heldout}, beta: {args.beta}"
        f"{', ' + extra if extra else ''}}}"])
    summary = run(config, console=Console(quiet=True))
    guard = json.loads((out / layout.round_file(1, layout.RL_GUARD)).read_text())
    return {"seed": seed, "seconds": round(time.time() - started), **{k: summary[k] for k in (
        "mode", "questions", "base_accuracy", "base_vote_accuracy", "adapted_accuracy")},
        "guard": {"probes": [(p["step"], p["accuracy"]) for p in guard["probes"]], "stopped": guard["stopped"],
                  "restore_step": guard["restore_step"]}}


def token_lengths(run_dir: Path) -> tuple[float, float]:
    """Mean prompt and completion tokens of the SFT arm's round-1 training rows (the demo tokenizer)."""
    from transformers import AutoTokenizer

    from selfimprove.rundir import layout
    from selfimprove.embedded.demo import base_model

    tok = AutoTokenizer.from_pretrained(base_model())
    rows = [json.loads(x) for x in (run_dir / layout.round_file(1, layout.TRAIN)).read_text().splitlines()][:500]
    prompt = statistics.mean(len(tok(r["prompt"])["input_ids"]) for r in rows)
    completion = statistics.mean(len(tok(r["completion"])["input_ids"]) for r in rows)
    return prompt, completion


# --- summary and plot ------------------------------------------------------------------------------

def final(run: dict) -> dict:
    """The history row of the weights the run ends with (after a monitor reset: the best round's)."""
    last = run["history"][-1]
    return run["history"][last["weights_round"]] if last.get("weights_round") is not None else last


def gain(run: dict, key: str = "accuracy") -> float:
    """The final weights' score (`accuracy`: dev; `untouched_accuracy`: test) less the base's."""
    return final(run)[key] - run["history"][0][key]


def spent(run: dict) -> int:
    """Tokens the run's rounds sampled and trained."""
    return sum(h["compute_tokens"] or 0 for h in run["history"][1:])


def summarize(results: dict) -> dict:
    out = {}
    for arm, per_seed in results["arms"].items():
        runs = list(per_seed.values())
        probes = [[s["probe_accuracy"] for s in r["steps"] if s["probe_accuracy"] is not None] for r in runs]
        out[arm] = {
            "untouched_gain": spread([gain(r, "untouched_accuracy") for r in runs]),
            "heldout_gain": spread([gain(r) for r in runs]),
            "compute_tokens": [spent(r) for r in runs],
            # the guard's criterion, on its probe set: the final weights against the best probe of the run
            "best_probe_gain": [max(p) - r["history"][0]["accuracy"] for r, p in zip(runs, probes) if p] or None,
            "final_below_best_probe": [round(max(p) - final(r)["accuracy"], 4) for r, p in zip(runs, probes) if p]
                                      or None,
            "stops": [[g["stopped"] for g in r["guard"] if g.get("stopped")] for r in runs],
            "resets": [[h["round"] for h in r["history"] if h.get("decision") == "reset"] for r in runs]}
    for name in [k for k in results if k.startswith("ttt")]:
        if results[name]:
            out[f"{name} (transductive)"] = {"gain": spread([t["adapted_accuracy"] - t["base_accuracy"]
                                                             for t in results[name].values()])}
    out["claims"] = [c.record() for c in [*sft_claims(results), *base_claims(results)]]
    return out


def base_claims(results: dict) -> list:
    """Each arm's final weights against the base they started from, paired per question on the untouched set."""
    out = []
    for arm, per_seed in results["arms"].items():
        if all(r["history"][0].get("untouched_outcomes") and final(r).get("untouched_outcomes") for r in per_seed.values()):
            out.append(claims.paired(f"{arm} vs its base, untouched set, final weights",
                                     {s: final(r)["untouched_outcomes"] for s, r in per_seed.items()},
                                     {s: r["history"][0]["untouched_outcomes"] for s, r in per_seed.items()}))
    return out


def sft_claims(results: dict) -> list:
    """SFT's final weights against each RL arm's on the untouched set: paired per question where the
    outcomes were stored, else unpaired over the pooled seeds (the same base, so this is the gain gap)."""
    arms, out = results["arms"], []
    n = int(next(iter(results.get("configs", {}).values()), {}).get("untouched", 200))
    for other in (a for a in ARMS if a != "sft" and a in arms and "sft" in arms):
        mine, theirs = ({s: final(r) for s, r in arms[a].items()} for a in ("sft", other))
        name = f"SFT vs {other}, untouched set, final weights"
        if all(h.get("untouched_outcomes") for h in [*mine.values(), *theirs.values()]):
            out.append(claims.paired(name, {s: h["untouched_outcomes"] for s, h in mine.items()},
                                     {s: h["untouched_outcomes"] for s, h in theirs.items()}))
        else:
            out.append(claims.unpaired(name, {s: h["untouched_accuracy"] for s, h in mine.items()},
                                       {s: h["untouched_accuracy"] for s, h in theirs.items()}, n))
    return out


COLORS = {"sft": "C0", "grpo_verified": "C1", "grpo_plain": "C2", "grpo_gold": "C3", "grpo_random": "C4",
          "grpo_verified_guard": "C5", "grpo_plain_long": "C2", "grpo_plain_long_guard": "C5"}


def step_curve(run: dict) -> tuple[list[int], list[float], list[int]]:
    """The guard's probes with rounds laid end to end: steps, accuracies, and the steps where it stopped."""
    xs, ys, stops, offset = [], [], [], 0
    for rd in range(1, len(run["history"])):
        pts = [(s["step"], s["probe_accuracy"]) for s in run["steps"] if s["round"] == rd and s["probe_accuracy"] is not None]
        xs += [offset + s for s, _ in pts]
        ys += [a for _, a in pts]
        stops += [offset + g["stopped"]["step"] for g in run["guard"] if g["round"] == rd and g.get("stopped")]
        offset += max([s for s, _ in pts], default=0)
    return xs, ys, stops


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, mid, right, ttt) = plt.subplots(1, 4, figsize=(22, 4.8))
    for arm, per_seed in results["arms"].items():
        for i, r in enumerate(per_seed.values()):
            label = arm if i == 0 else None
            xs, ys, stops = step_curve(r)
            if arm in LONG_ARMS:
                right.plot(xs, ys, color=COLORS[arm], marker=".", alpha=0.8, label=label,
                           ls="--" if arm.endswith("guard") else "-")
                for x in stops:
                    right.axvline(x, color=COLORS[arm], ls=":", lw=1)
                continue
            spent = [0]
            for h in r["history"][1:]:
                spent.append(spent[-1] + (h["compute_tokens"] or 0))
            left.plot([t / 1e6 for t in spent], [h["untouched_accuracy"] for h in r["history"]], marker="o",
                      color=COLORS[arm], alpha=0.8, label=label)
            if xs:
                mid.plot(xs, ys, color=COLORS[arm], marker=".", alpha=0.8, label=label)
                for x in stops:
                    mid.axvline(x, color=COLORS[arm], ls=":", lw=1)
    left.set(xlabel="compute spent (M tokens: sampled + trained)", ylabel="greedy accuracy, untouched held-out",
             title="per round (a held-out set nothing chose on)")
    mid.set(xlabel="GRPO step (rounds end to end)", ylabel="greedy accuracy, probe set",
            title="per step (dotted: the guard stopped)")
    right.set(xlabel="GRPO step (rounds end to end)", ylabel="greedy accuracy, probe set",
              title="long runs, plain majority (dashed: guarded)")
    names = [k for k in results if k.startswith("ttt")]
    bars = [("base", lambda t: t["base_accuracy"]), ("base's verified vote", lambda t: t["base_vote_accuracy"])] + [
        (name, lambda t, name=name: t["adapted_accuracy"]) for name in names]
    seeds = sorted({s for name in names for s in results[name]})
    width = 0.8 / max(1, len(bars))
    for i, (label, value) in enumerate(bars if names else []):  # a run without test-time arms has no panel
        source = results[names[0]] if i < 2 else results[label]
        ttt.bar([x + i * width for x in range(len(seeds))], [value(source[s]) if s in source else 0 for s in seeds],
                width, label=label)
    ttt.set(xticks=[x + 0.4 - width / 2 for x in range(len(seeds))], xticklabels=[f"seed {s}" for s in seeds],
            ylabel="greedy accuracy on the questions adapted on", ylim=(0.3, 1.0),
            title="test-time training (transductive: not comparable)")
    for ax in (left, mid, right, ttt):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"label-free RL on the embedded domain, seeds {results['seeds']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def merge(paths: list[Path]) -> dict:
    """Per-seed (or per-arm) result files as one result: later files win for the same arm and seed."""
    parts = [json.loads(f.read_text()) for f in paths]
    merged = {"seeds": sorted({s for p in parts for s in p["seeds"]}),
              "configs": {f.name: p["config"] for f, p in zip(paths, parts)}, "arms": {}, "token_lengths": {}}
    merged["arms"] = by_arm_and_seed(parts)
    for p in parts:
        for name in [k for k in p if k.startswith("ttt")]:
            merged.setdefault(name, {}).update(p[name])
        merged["token_lengths"].update(p.get("token_lengths", {}))
    merged["summary"] = summarize(merged)
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=[*ARMS, *LONG_ARMS, *TTT_ARMS],
                        help=", ".join([*ARMS, *LONG_ARMS, *TTT_ARMS]))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--long-rounds", type=int, default=4, help="rounds of the long arms")
    parser.add_argument("--pool", type=int, default=500)
    parser.add_argument("--heldout", type=int, default=200, help="held-out questions: the loop's score and the guard's probe")
    parser.add_argument("--untouched", type=int, default=200, help="a second held-out set, scored after the run")
    parser.add_argument("--sft-steps", type=int, default=100, help="SFT steps a round (the demo's)")
    parser.add_argument("--num-generations", type=int, default=8)
    parser.add_argument("--probe-every", type=int, default=10)
    parser.add_argument("--grpo-steps", type=int, help="GRPO steps a round, instead of matching the SFT arm's "
                                                       "tokens (which runs that arm first)")
    parser.add_argument("--lr", type=float, default=1e-4, help="GRPO learning rate (full weights)")
    parser.add_argument("--ttt-lr", type=float, default=TTT_LR, help="test-time LoRA learning rate")
    parser.add_argument("--beta", type=float, default=0.04)
    parser.add_argument("--work", type=Path, default=Path("runs/rl-evidence"))
    parser.add_argument("--out", type=Path, default=RESULTS / "rl_evidence.json")
    parser.add_argument("--merge", type=Path, nargs="+", help="merge these per-seed JSON files into --out and plot")
    args = parser.parse_args()
    record = provenance.start(args)
    if args.merge:
        merged = merge(args.merge)
        merged["provenance"] = provenance.merged(record, {f.name: json.loads(f.read_text()) for f in args.merge})
        provenance.write_result(merged, args.out, plot)
        return
    quiet_worker()
    results = {"seeds": args.seeds, "config": {k: str(v) for k, v in vars(args).items()}, "arms": {}}
    for seed in args.seeds:
        if args.grpo_steps and "sft" not in args.arms:
            grpo_steps = args.grpo_steps
        else:
            sft = run_arm("sft", seed, args, 0)  # first: its lengths set GRPO's steps
            prompt, completion = token_lengths(args.work / f"sft-s{seed}")
            grpo_steps = max(1, round(args.sft_steps * (prompt + completion) / (prompt + 2 * completion)))
            results.setdefault("token_lengths", {})[str(seed)] = {"prompt": prompt, "completion": completion,
                                                                  "grpo_steps_per_round": grpo_steps}
        for arm in args.arms:
            print(f"seed {seed}: {arm}", flush=True)
            if arm in TTT_ARMS:
                results.setdefault(ttt_name(arm, args), {})[str(seed)] = run_ttt(arm, seed, args, grpo_steps)
            else:
                results["arms"].setdefault(arm, {})[str(seed)] = sft if arm == "sft" else run_arm(arm, seed, args,
                                                                                                  grpo_steps)
            results["summary"] = summarize(results)
            results["provenance"] = provenance.finish(record)  # a part written so far says how it was made
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1))
    provenance.write_result(results, args.out, plot, record)


if __name__ == "__main__":
    main()
