"""Evidence for the model writing its own data, on the embedded domain: self-generated questions,
easy-to-hard rounds, and LADDER's easier variants, each against its control.

    python -m benchmarks.acquisition_evidence [--seeds 0 1 2] [--parts written curriculum variants]
    python -m benchmarks.acquisition_evidence --seeds 1 --out /tmp/a1.json   # one seed a process, then:
    python -m benchmarks.acquisition_evidence --merge /tmp/a0.json /tmp/a1.json /tmp/a2.json  # make evidence-acquisition

Every arm is the demo recipe (`demo.yaml`, 4 rounds, the same optimiser, steps and replay) through
`selfimprove.loop`, run once per seed; the arms differ only in `acquire`.

written     The demo's base cannot write a question (it was trained with the loss on answers only):
            its completions after "Q:" are counted first. The arms then start from its sibling,
            trained by the same recipe with the loss on the questions too, and on lists of 2-5 questions
            in the form of the few-shot writing prompt (`BaseRecipe.question_loss`, `question_lists`):
              real     the demo's 1,000-question pool
              written  only 10 example questions shown (the pool is those 10), 1,000 questions written
                       by the model each round (`acquire.method: written`), screened, then voted on
              shown10  control: the same rounds on the 10 example questions alone
            Reported: the gain of `written` as a share of the gain of `real`; how many written
            questions were well-formed, duplicated, or leaked a held-out question before the guard.
curriculum  From the demo's base: the demo's 4 rounds on 3-step problems, then 2 more rounds on
            self-labelled 4-step then 5-step problems (`acquire.method: schedule, by: knob`), against
            2 more rounds on 3-step problems (the same compute). Greedy accuracy on 200 held-out
            problems of 3, 4 and 5 steps after rounds 4, 5, 6; pseudo-label accuracy per round.
curriculum_checked  The same 2 extra rounds with a length filter in the vote and the gates of both arms
            (`grounded` every_step: one equation per operation), branched from the same round 4.
variants    From the demo's base: the demo's pool plus LADDER variants of the questions the last
            round's vote did not trust (`acquire: mix [pool, variants]`, writer: task: the embedded
            model cannot be asked to write them), against the demo itself. Reported: of the questions
            untrusted in round 1, the share trusted in rounds 2-4 in each arm; held-out accuracy.

Dev and test: each run's held-out set is its dev set (the demo recipe was developed on it); every round's
weights are also scored greedy on `--test` questions of another seed stream with every question the run saw
removed (`test_accuracy`, `test_outcomes` in each history row; `benchmarks.evidence.splits`).

Runs go to WORK/<part>-<arm>-s<seed>/ (a rerun resumes them); the merged result is
benchmarks/results/acquisition_evidence.json and .png. Not run by CI.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import shutil
import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, as `python -m benchmarks...` does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.evidence import claims, outcomes, provenance, splits  # noqa: E402
from benchmarks.evidence.quiet import quiet_worker  # noqa: E402
from benchmarks.evidence.stats import spread  # noqa: E402

RESULTS = Path(__file__).parent / "results"
DEMO_ROUNDS = 4
EXTRA_ROUNDS = 2  # curriculum: the rounds after the demo's
STEPS = (3, 4, 5)
TEST = {"questions": 200}  # the test split's size (--test; 0: none), read by `history`


def history(out: Path) -> list[dict]:
    """A run's per-round metrics, each with its per-question held-out outcomes (for paired tests)."""
    from selfimprove.rundir import layout
    from selfimprove.tasks import get_task

    import yaml

    from benchmarks.embedded_evidence import demo_seen

    scored = outcomes.from_run(out, get_task("arithmetic"))
    seed = yaml.safe_load((out / layout.CONFIG).read_text())["run"]["seed"]
    tested = splits.score_run(out, TEST["questions"], demo_seen(seed)) if TEST["questions"] else {}
    return [{**h, "outcomes": scored.get(str(h["round"])),
             "test_accuracy": tested.get(str(h["round"]), {}).get("accuracy"),
             "test_outcomes": tested.get(str(h["round"]), {}).get("outcomes")}
            for h in map(json.loads, (out / layout.HISTORY).read_text().splitlines())]


def run_arm(out: Path, seed: int, overrides: list[str], rounds: int = DEMO_ROUNDS, model: str | None = None) -> list[dict]:
    """The demo recipe with `overrides`, `rounds` rounds, resumed when it was started with other rounds."""
    from rich.console import Console

    from selfimprove.embedded import demo
    from selfimprove.loop import run

    extra = [f"run.rounds={rounds}", "probe.on_fail=warn", *([f"model.name={model}"] if model else []), *overrides]
    config = demo.demo_config(out, seed, quick=False, overrides=extra)
    run(config, allow_config_change=True, console=Console(quiet=True))
    return history(out)


def writer_base(work: Path) -> Path:
    """The demo base's sibling that also learned to write questions, singly and in few-shot lists (built
    once, deterministic)."""
    from selfimprove.embedded.train_base import BaseRecipe, build

    out, recipe = work / "writer_base", BaseRecipe(question_loss=True, question_lists=1600)
    # Seeds run as processes side by side (make evidence-acquisition) share it: the first builds, the rest wait.
    with open(work / "writer_base.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = json.loads((out / "recipe.json").read_text()) if (out / "recipe.json").exists() else {}
        if built.get("question_lists") != recipe.question_lists:
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(out.with_name("writer_base.partial"), ignore_errors=True)
            build(out.with_name("writer_base.partial"), recipe)
            shutil.move(out.with_name("writer_base.partial"), out)
    return out


def can_it_write(work: Path, seed: int, model: str | None, n_prompts: int = 50) -> dict:
    """Verdicts of the questions `model` (None = the demo's base) writes from 10 examples, before training."""
    from rich.console import Console

    from selfimprove.acquire.screen import count_verdicts
    from selfimprove.acquire.written import written
    from selfimprove.embedded import demo
    from selfimprove.loop import open_context

    out = work / f"canwrite-{'writer' if model else 'demo'}-s{seed}"
    config = demo.demo_config(out, seed, quick=False, overrides=[*([f"model.name={model}"] if model else [])])
    ctx = open_context(config, True, Console(quiet=True))
    try:
        kept = written(ctx, 1, ctx.base_sampler, count=10_000, examples=10, max_prompts=n_prompts)
    finally:
        ctx.backend.close()
    rows = [json.loads(line) for line in (out / "rounds/r01/written.jsonl").read_text().splitlines()]
    return {"written": len(rows), "kept": len(kept), "verdicts": count_verdicts(rows),
            "examples": [r["text"] for r in rows[:5]]}


def written_stats(out: Path) -> list[dict]:
    """Per round: the verdicts of the questions written, and how many of the kept had a gold answer."""
    rows = []
    for r in range(1, DEMO_ROUNDS + 1):
        path = out / f"rounds/r{r:02d}/written.jsonl"
        if path.exists():
            verdicts = [json.loads(line)["verdict"] for line in path.read_text().splitlines()]
            pool = [json.loads(line) for line in (out / f"rounds/r{r:02d}/pool.jsonl").read_text().splitlines()]
            rows.append({"round": r, "written": len(verdicts), "used": sum(q.get("origin") == "written" for q in pool),
                         **{v: verdicts.count(v) for v in ("kept", "surplus", "malformed", "leak", "duplicate",
                                                           "near_duplicate")}})
    return rows


def part_written(work: Path, seed: int) -> dict:
    base = str(writer_base(work))
    shown = f"task.source=steps=3,max_value=30,n=10,seed={seed}"
    arms = {
        "real": run_arm(work / f"written-real-s{seed}", seed, [], model=base),
        "written": run_arm(work / f"written-written-s{seed}", seed, [
            shown, "acquire.method=written", "acquire.options={count: 1000, examples: 10, shots: 3}"], model=base),
        "shown10": run_arm(work / f"written-shown10-s{seed}", seed, [shown], model=base),
    }
    gain = {a: h[-1]["accuracy"] - h[0]["accuracy"] for a, h in arms.items()}
    return {"histories": arms, "gain": gain,
            "share_of_real_gain": gain["written"] / gain["real"] if gain["real"] > 0 else None,
            "written_questions": written_stats(work / f"written-written-s{seed}"),
            "demo_base_writes": can_it_write(work, seed, None),
            "writer_base_writes": can_it_write(work, seed, base)}


def accuracy_by_steps(out: Path, seed: int, rounds: list[int]) -> dict:
    """Greedy accuracy of each round's weights on 200 held-out problems of 3, 4 and 5 steps."""
    from selfimprove.backends import create_backend
    from selfimprove.embedded import demo
    from selfimprove.stages.evaluate import evaluate_weights
    from selfimprove.prompts import PromptStyle
    from selfimprove.records import Weights
    from selfimprove.tasks import get_task

    task = get_task("arithmetic")
    config = demo.demo_config(out, seed, quick=False, overrides=[
        "evaluate.k=1", "evaluate.temperature=0", "generate.max_new_tokens=80"])
    backend = create_backend(config.model, config.generate)
    hist = {h["round"]: h for h in history(out)}
    result = {}
    for steps in STEPS:
        heldout = task.load(f"steps={steps},max_value=30,n=200,seed={seed}", split="test")
        for r in rounds:
            # a run the monitor stopped early serves its last round's weights from then on
            weights = Weights(hist[min(r, max(hist))]["model"]) if r else Weights(config.model.name)
            scores = evaluate_weights(backend, weights, task, config, heldout, [], r, PromptStyle([], False))
            result.setdefault(str(steps), {})[str(r)] = scores.metrics["accuracy"]
    backend.close()
    return result


def part_curriculum(work: Path, seed: int) -> dict:
    control, harder = work / f"curriculum-same-s{seed}", work / f"curriculum-harder-s{seed}"
    longer = ["generate.max_new_tokens=80"]  # a 5-step rationale is ~60 tokens; the demo's 48 truncates it
    run_arm(control, seed, [], rounds=DEMO_ROUNDS)
    if not harder.exists():  # the same first 4 rounds: a copy of the control, which branches at round 5
        shutil.copytree(control, harder)
        splits.forget_after(harder, DEMO_ROUNDS)
    same = run_arm(control, seed, longer, rounds=DEMO_ROUNDS + EXTRA_ROUNDS)
    stages = (f"{{1: 'steps=3,max_value=30,n=1000,seed={seed}', 5: 'steps=4,max_value=30,n=1000,seed={seed}', "
              f"6: 'steps=5,max_value=30,n=1000,seed={seed}'}}")
    hard = run_arm(harder, seed, [*longer, "acquire.method=schedule", f"acquire.options={{by: knob, stages: {stages}}}"],
                   rounds=DEMO_ROUNDS + EXTRA_ROUNDS)
    rounds = [0, DEMO_ROUNDS, DEMO_ROUNDS + 1, DEMO_ROUNDS + 2]
    return {"same": {"history": same, "by_steps": accuracy_by_steps(control, seed, rounds)},
            "harder": {"history": hard, "by_steps": accuracy_by_steps(harder, seed, rounds)}}


CHECKED = ['vote.require=[{name: arithmetic, require_equations: true}, {name: grounded, every_step: true}]',
           'curate.gates=[{name: majority}, {name: min_share, threshold: 0.5}, '
           '{name: arithmetic, require_equations: true}, {name: grounded, every_step: true}, {name: not_truncated}]']


def branch(source: Path, out: Path, after_round: int) -> None:
    """A copy of run `source` as it was after `after_round`: later rounds' artifacts are retired."""
    from selfimprove.rundir import layout
    from selfimprove.rundir.store import RunStore

    if out.exists():
        return
    shutil.copytree(source, out.with_name(out.name + ".partial"))
    store = RunStore(out.with_name(out.name + ".partial"))
    for name in list(store.manifest["artifacts"]):
        if (layout.round_of(name) or 0) > after_round:
            store.retire(name)
    splits.forget_after(out.with_name(out.name + ".partial"), after_round)
    shutil.move(out.with_name(out.name + ".partial"), out)


def part_curriculum_checked(work: Path, seed: int) -> dict:
    """The curriculum's 2 extra rounds again, with the length filter on (`grounded` every_step: one equation
    per operation) in the vote and the gates of both arms: does a stricter verifier stop the avalanche?"""
    control = work / f"curriculum-same-s{seed}"
    same, harder = work / f"checked-same-s{seed}", work / f"checked-harder-s{seed}"
    longer = ["generate.max_new_tokens=80"]
    branch(control, same, DEMO_ROUNDS)
    branch(control, harder, DEMO_ROUNDS)
    stages = (f"{{1: 'steps=3,max_value=30,n=1000,seed={seed}', 5: 'steps=4,max_value=30,n=1000,seed={seed}', "
              f"6: 'steps=5,max_value=30,n=1000,seed={seed}'}}")
    same_h = run_arm(same, seed, [*longer, *CHECKED], rounds=DEMO_ROUNDS + EXTRA_ROUNDS)
    hard_h = run_arm(harder, seed, [*longer, *CHECKED, "acquire.method=schedule",
                                    f"acquire.options={{by: knob, stages: {stages}}}"], rounds=DEMO_ROUNDS + EXTRA_ROUNDS)
    rounds = [0, DEMO_ROUNDS, DEMO_ROUNDS + 1, DEMO_ROUNDS + 2]
    return {"same": {"history": same_h, "by_steps": accuracy_by_steps(same, seed, rounds)},
            "harder": {"history": hard_h, "by_steps": accuracy_by_steps(harder, seed, rounds)}}


def trusted_share(out: Path, ids: list[str], r: int) -> float | None:
    from selfimprove.acquire.judge import trusted
    from selfimprove.records import Vote, from_row

    path = out / f"rounds/r{r:02d}/votes.jsonl"
    votes = {v.question_id: v for v in (from_row(Vote, json.loads(x)) for x in path.read_text().splitlines())}
    return sum(trusted(votes.get(i), 0.5) for i in ids) / len(ids) if ids else None


def part_variants(work: Path, seed: int) -> dict:
    from selfimprove.acquire.judge import trusted
    from selfimprove.records import Vote, from_row

    plain, ladder = work / f"curriculum-same-s{seed}", work / f"variants-ladder-s{seed}"
    run_arm(plain, seed, [], rounds=DEMO_ROUNDS)  # the demo itself (the curriculum's control, first 4 rounds)
    sources = "{sources: [{method: pool}, {method: variants, writer: task, depth: 2, per_question: 2}]}"
    run_arm(ladder, seed, ["acquire.method=mix", f"acquire.options={sources}"])
    votes = [from_row(Vote, json.loads(x)) for x in (plain / "rounds/r01/votes.jsonl").read_text().splitlines()]
    untrusted = [v.question_id for v in votes if not trusted(v, 0.5)]
    trees = []
    for r in range(2, DEMO_ROUNDS + 1):
        rows = [json.loads(x) for x in (ladder / f"rounds/r{r:02d}/variants.jsonl").read_text().splitlines()]
        trees.append({"round": r, "roots": sum(x["depth"] == 0 for x in rows),
                      "variants": sum(x["depth"] > 0 for x in rows),
                      "trusted_variants": sum(bool(x.get("trusted")) for x in rows)})
    return {"untrusted_in_round1": len(untrusted),
            "trusted_later": {arm: {r: trusted_share(out, untrusted, r) for r in range(2, DEMO_ROUNDS + 1)}
                              for arm, out in (("plain", plain), ("ladder", ladder))},
            "heldout": {"plain": [h["accuracy"] for h in history(plain)[:DEMO_ROUNDS + 1]],
                        "ladder": [h["accuracy"] for h in history(ladder)]},
            "histories": {"plain": history(plain)[:DEMO_ROUNDS + 1], "ladder": history(ladder)},
            "trees": trees}


PARTS = {"written": part_written, "curriculum": part_curriculum, "curriculum_checked": part_curriculum_checked,
         "variants": part_variants}


def final_test_outcomes(part: str, seed_result: dict, arm: str) -> str | None:
    """An arm's per-question test outcomes after its last round (None where the run stored none)."""
    h = seed_result.get("histories", {}).get(arm) if part in ("written", "variants") else seed_result[arm]["history"]
    return h[-1].get("test_outcomes") if h else None


def part_claims(results: dict) -> list:
    """Each part's arm against its control after its last round, paired per question on the untouched test
    split (3-step problems), pooled over the seeds whose runs stored test outcomes."""
    found = []
    for part, compared, mine, theirs in (
            ("written", "written questions vs the 10 shown alone, round 4", "written", "shown10"),
            ("written", "the real pool vs the 10 shown alone, round 4", "real", "shown10"),
            ("variants", "LADDER variants vs the demo, round 4", "ladder", "plain"),
            ("curriculum", "4- then 5-step rounds vs 3-step rounds, round 6 (3-step problems)", "harder", "same"),
            ("curriculum_checked", "the same with one equation per step checked, round 6 (3-step problems)",
             "harder", "same")):
        last = lambda r, arm: final_test_outcomes(part, r, arm)  # noqa: E731
        seeds = {s: r for s, r in results.get(part, {}).items() if last(r, mine) and last(r, theirs)}
        if seeds:
            found.append(claims.paired(f"{compared}, test", {s: last(r, mine) for s, r in seeds.items()},
                                       {s: last(r, theirs) for s, r in seeds.items()}))
    return found


def summarize(results: dict) -> dict:
    """Medians and ranges over seeds of what each part reports."""
    out = {}
    w = results.get("written", {})
    if w:
        out["written"] = {
            "gain": {arm: spread([r["gain"][arm] for r in w.values()]) for arm in ("real", "written", "shown10")},
            "test_gain": {arm: spread(gains) for arm in ("real", "written", "shown10") if (gains := [
                h[-1]["test_accuracy"] - h[0]["test_accuracy"] for r in w.values()
                if (h := r["histories"][arm])[-1].get("test_accuracy") is not None])},
            "share_of_real_gain": spread([r["share_of_real_gain"] for r in w.values()
                                          if r["share_of_real_gain"] is not None]),
            "written_questions": {v: sum(x.get(v, 0) for r in w.values() for x in r["written_questions"])
                                  for v in ("written", "used", "kept", "surplus", "malformed", "leak", "duplicate",
                                            "near_duplicate")},
            "demo_base_well_formed": sum(r["demo_base_writes"]["written"] - r["demo_base_writes"]["verdicts"].get(
                "malformed", 0) for r in w.values()),
            "demo_base_written": sum(r["demo_base_writes"]["written"] for r in w.values()),
        }
    for part in ("curriculum", "curriculum_checked"):
        c = results.get(part, {})
        if c:
            rounds = [str(r) for r in (0, DEMO_ROUNDS, DEMO_ROUNDS + 1, DEMO_ROUNDS + 2)]
            out[part] = {f"{steps}-step": {arm: {
                r: spread([x[arm]["by_steps"][str(steps)][r] for x in c.values()]) for r in rounds}
                for arm in ("same", "harder")} for steps in STEPS}
            out[part]["pseudo_label_accuracy"] = {arm: {
                h["round"]: spread([a for x in c.values() if len(x[arm]["history"]) > h["round"]
                                    and (a := x[arm]["history"][h["round"]]["pseudo_label_accuracy"]) is not None])
                for h in next(iter(c.values()))[arm]["history"][1:]} for arm in ("same", "harder")}
            out[part]["kept"] = {arm: {
                h["round"]: spread([x[arm]["history"][h["round"]]["kept"] for x in c.values()
                                    if len(x[arm]["history"]) > h["round"]])
                for h in next(iter(c.values()))[arm]["history"][1:]} for arm in ("same", "harder")}
    tested = part_claims(results)
    if tested:
        out["claims"] = [c.record() for c in tested]
    v = results.get("variants", {})
    if v:
        out["variants"] = {
            "untrusted_in_round1": spread([x["untrusted_in_round1"] for x in v.values()]),
            "trusted_later": {arm: {r: spread([x["trusted_later"][arm][r] for x in v.values()])
                                    for r in next(iter(v.values()))["trusted_later"][arm]} for arm in ("plain", "ladder")},
            "heldout_final": {arm: spread([x["heldout"][arm][-1] for x in v.values()]) for arm in ("plain", "ladder")},
            "heldout_gain_over_plain": spread([x["heldout"]["ladder"][-1] - x["heldout"]["plain"][-1] for x in v.values()]),
        }
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(19, 4.2))
    med = lambda xs: statistics.median(xs)  # noqa: E731
    w = results.get("written", {})
    for arm, style in (("real", "-o"), ("written", "-s"), ("shown10", ":^")):
        if w:
            curves = [[h["accuracy"] for h in r["histories"][arm]] for r in w.values()]
            axes[0].plot(range(len(curves[0])), [med(c) for c in zip(*curves)], style, label=arm)
    axes[0].set(title="self-generated questions (writer base)", xlabel="round", ylabel="held-out greedy (median)")
    rounds = ["0", str(DEMO_ROUNDS), str(DEMO_ROUNDS + 1), str(DEMO_ROUNDS + 2)]
    for ax, part, title in ((axes[1], "curriculum", "easy to hard: accuracy by steps"),
                            (axes[2], "curriculum_checked", "easy to hard, one equation per step checked")):
        c = results.get(part, {})
        for steps, colour in zip(STEPS, ("tab:blue", "tab:orange", "tab:green")):
            for arm, style in (("same", ":"), ("harder", "-")):
                if c:
                    ys = [med([x[arm]["by_steps"][str(steps)][r] for x in c.values()]) for r in rounds]
                    ax.plot([int(r) for r in rounds], ys, style, color=colour, marker="o",
                            label=f"{steps}-step, {'3-step rounds' if arm == 'same' else '4 then 5-step rounds'}")
        ax.set(title=title, xlabel="round", ylabel="greedy (median)")
    v = results.get("variants", {})
    for arm, style in (("plain", ":o"), ("ladder", "-s")):
        if v:
            rs = sorted(next(iter(v.values()))["trusted_later"][arm], key=int)
            axes[3].plot([int(r) for r in rs], [med([x["trusted_later"][arm][r] for x in v.values()]) for r in rs],
                         style, label=f"{arm}: share of round-1 untrusted now trusted")
    axes[3].set(title="LADDER variants", xlabel="round", ylabel="share (median)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--work", type=Path, default=Path("runs/acquisition-evidence"))
    parser.add_argument("--out", type=Path, default=RESULTS / "acquisition_evidence.json")
    parser.add_argument("--merge", type=Path, nargs="+", help="merge these per-seed JSON files into --out and plot")
    parser.add_argument("--test", type=int, default=200,
                        help="questions of the untouched test split every round is also scored on (0: none)")
    args = parser.parse_args()
    record = provenance.start(args)
    TEST["questions"] = args.test
    if args.merge:
        merged: dict = {}
        for f in args.merge:
            for part, seeds in json.loads(f.read_text()).items():
                if part in PARTS:
                    merged.setdefault(part, {}).update(seeds)
        for seed, r in merged.get("written", {}).items():  # recounted from the runs, where they are here
            if (args.work / f"written-written-s{seed}").exists():
                r["written_questions"] = written_stats(args.work / f"written-written-s{seed}")
        merged["summary"] = summarize(merged)
        merged["provenance"] = provenance.merged(record, {f.name: json.loads(f.read_text()) for f in args.merge})
        provenance.write_result(merged, args.out, plot)
        return
    quiet_worker()
    args.work.mkdir(parents=True, exist_ok=True)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for seed in args.seeds:
        for part in args.parts:
            print(f"seed {seed}: {part}", flush=True)
            result = PARTS[part](args.work, seed)
            results.setdefault(part, {})[str(seed)] = result
            results["provenance"] = provenance.finish(record)  # the part written so far says how it was made
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1))
    print(json.dumps({p: list(v) for p, v in results.items()}))


if __name__ == "__main__":
    main()
