"""Evidence for distillation in miniature (LMSI's 62B student of the self-improved 540B, on the embedded domain).

    python -m benchmarks.distill_evidence [--seeds 0 1 2] [--jobs 2] [--work runs/distill-evidence]  # make evidence-distill
    python -m benchmarks.distill_evidence --seeds 0 --jobs 1          # one seed first (about 10 minutes)

The claim tested: a student smaller than the teacher's base model, given the same labelled seed set,
then distilled from the self-improved teacher's trusted paths, beats the teacher's *base* accuracy.

Models: the teacher's base is the shipped embedded model (width 64, 4 layers). The student is built
once by the same recipe (`train_base.BaseRecipe`: the same labelled seed set, the same steps) at half
the width (32; about a quarter of the parameters), into WORK/student-base.
Arms, per seed (the demo recipe, demo.yaml: same pool, held-out set, optimiser, steps and replay):
  teacher   the demo's label-free self-improvement of the base model, TEACHER_ROUNDS rounds
            (embedded_evidence.selftrain): teacher base -> teacher after
  distill   `adapt.method: distill`: model.name = the finished teacher run directory (its final weights
            sample the pool and vote, with the demo's verified vote and gates), adapt.learner = the
            student, DISTILL_ROUNDS rounds of adapt.max_steps each: student before -> student after
  control   the student trained on the labelled seed set alone for the same steps
            (embedded_evidence.supervised): is the gain just more training?
  base_teacher  (with --missing-arms) distillation from the *un-improved* teacher base: does the
            student's gain need the teacher's self-improvement, or would its base teach as well?
  gold      (with --missing-arms) the student on the pool's gold rationales + the same replay
            (embedded_evidence.supervised "oracle"): the most the pool can teach it
Every score is the loop's own held-out scorer (200 questions, greedy, maj@8, same seeds): the dev set, on
which the student's width was chosen. Every round's weights are also scored greedy on `--test` questions
from another seed stream that no arm saw (`benchmarks.evidence.splits`); the claims read those.

Each seed's arms run in one process (one thread; `--jobs` seeds at once) and write WORK/*-s<seed>/; a
rerun resumes the run directories and skips finished seeds (WORK/seed-<seed>.json). The merged result
goes to benchmarks/results/distill_evidence.json and .png. Compute: about 7 minutes of one core a seed
plus 6 for the student base, on an otherwise idle machine.
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

RESULTS = Path(__file__).parent / "results"
HELDOUT = 200  # the demo's held-out questions (the claim's n when a result stored no outcomes)
TEACHER_ROUNDS = 2  # most of the demo's gain (0.55 -> 0.79 on seed 0; 4 rounds reach 0.82)
DISTILL_ROUNDS = 2
STUDENT_WIDTH = 32  # half the base model's hidden size
KEEP = ("round", "accuracy", "majority_accuracy", "pass_at_k", "pseudo_label_accuracy", "kept_pseudo_label_accuracy",
        "kept", "train_examples", "seconds", "outcomes", "test_accuracy", "test_outcomes")


def student_base(work: Path, width: int = STUDENT_WIDTH) -> Path:
    """The student: the base recipe at `width` (half the base's by default), on the same labelled seed
    set (built once into WORK/student-base)."""
    from selfimprove.embedded.train_base import BaseRecipe, build

    out = work / "student-base"
    if not (out / "config.json").exists():
        partial = work / "student-base.partial"
        build(partial, BaseRecipe(hidden_size=width))
        partial.rename(out)
    return out


def distill(out: Path, seed: int, teacher: Path, student: Path) -> list[dict]:
    """The demo recipe with the teacher's weights (a finished run directory, or a model folder) sampling
    and the student learning; per-round metrics and per-question outcomes of the student."""
    from rich.console import Console

    from selfimprove.rundir import layout
    from selfimprove.embedded import demo
    from selfimprove.loop import run
    from selfimprove.tasks import get_task

    from benchmarks.evidence import outcomes

    config = demo.demo_config(out, seed, quick=False, overrides=[
        f"model.name={teacher}", f"adapt.learner={student}", "adapt.method=distill", f"run.rounds={DISTILL_ROUNDS}"])
    run(config, console=Console(quiet=True))
    history = [json.loads(line) for line in (out / layout.HISTORY).read_text().splitlines()]
    scored = outcomes.from_run(out, get_task(config.task.name))
    return [{**h, "outcomes": scored.get(str(h["round"]))} for h in history]


def run_seed(seed: int, work: str, student: str, missing_arms: bool = False, test_n: int = 0) -> dict:
    from benchmarks.embedded_evidence import selftrain, supervised, with_test_scores
    from selfimprove.embedded import demo

    quiet_worker()
    work_dir, started = Path(work), time.time()
    teacher_dir, distill_dir = work_dir / f"teacher-s{seed}", work_dir / f"distill-s{seed}"
    student_overrides = [f"model.name={student}", f"run.rounds={DISTILL_ROUNDS}"]
    arms = {"teacher": with_test_scores(teacher_dir, selftrain(teacher_dir, seed, [], rounds=TEACHER_ROUNDS), test_n)}
    arms["distill"] = with_test_scores(distill_dir, distill(distill_dir, seed, teacher_dir, Path(student)), test_n)
    arms["control"] = supervised(work_dir / f"control-s{seed}", seed, "control", overrides=student_overrides,
                                 test_n=test_n)
    if missing_arms:  # the controls a reviewer asks for (issue 26)
        base_dir = work_dir / f"base-teacher-s{seed}"
        arms["base_teacher"] = with_test_scores(base_dir, distill(base_dir, seed, demo.base_model(), Path(student)),
                                                test_n)
        arms["gold"] = supervised(work_dir / f"gold-s{seed}", seed, "oracle", overrides=student_overrides,
                                  test_n=test_n)
    result = {"seed": seed, "seconds": round(time.time() - started),
              **{arm: [{k: h.get(k) for k in KEEP} for h in history] for arm, history in arms.items()}}
    (work_dir / f"seed-{seed}.json").write_text(json.dumps(result, indent=1))
    return result


def summarize(per_seed: dict[str, dict]) -> dict:
    def col(arm, index, key="accuracy"):
        return [r[arm][index][key] for r in per_seed.values()]

    out = {"teacher_base": spread(col("teacher", 0)), "teacher_after": spread(col("teacher", -1)),
           "student_before": spread(col("distill", 0)), "student_after": spread(col("distill", -1)),
           "control_after": spread(col("control", -1)),
           "teacher_base_majority": spread(col("teacher", 0, "majority_accuracy")),
           "student_after_majority": spread(col("distill", -1, "majority_accuracy"))}
    margins = [r["distill"][-1]["accuracy"] - r["teacher"][0]["accuracy"] for r in per_seed.values()]
    out["student_after_minus_teacher_base"] = spread(margins)
    out["student_beats_teacher_base_in"] = f"{sum(m > 0 for m in margins)}/{len(margins)} seeds"
    out["student_after_minus_control"] = spread(
        [r["distill"][-1]["accuracy"] - r["control"][-1]["accuracy"] for r in per_seed.values()])
    out["claims"] = [c.record() for c in student_claims(per_seed)]
    return out


def student_claims(per_seed: dict[str, dict]) -> list:
    """The distilled student against the teacher's base, the control and (when run) the base-taught and
    gold-taught students: on the test split when it was scored, paired per question where outcomes were
    stored, else unpaired over seeds (older results: the dev set's accuracies)."""
    def final(arm, index=-1):
        return {s: r[arm][index] for s, r in per_seed.items() if arm in r}

    on_test = all(h.get("test_outcomes") for r in per_seed.values() for h in (r["distill"][-1], r["teacher"][0]))
    key, acc, split = ("test_outcomes", "test_accuracy", "test") if on_test else ("outcomes", "accuracy", "dev")

    out = []
    for name, other, index in (("distilled student vs the teacher's base", "teacher", 0),
                               ("distilled student vs its control", "control", -1),
                               ("distilled student vs the student taught by the un-improved teacher", "base_teacher", -1),
                               ("distilled student vs the student taught gold rationales", "gold", -1)):
        mine, theirs = final("distill"), final(other, index)
        if not theirs:
            continue
        if all(h.get(key) for h in [*mine.values(), *theirs.values()]):
            out.append(claims.paired(f"{name}, {split}", {s: h[key] for s, h in mine.items()},
                                     {s: h[key] for s, h in theirs.items()}))
        else:
            out.append(claims.unpaired(f"{name}, {split}", {s: h[acc] for s, h in mine.items()},
                                       {s: h[acc] for s, h in theirs.items()}, HELDOUT))
    return out


# each arm: its colour, its name in the docs' table and the plot's legend ({w}: the student's width), its bar label
ARMS = (("teacher", "C0", "teacher (width 64), self-improving", "teacher\nafter"),
        ("distill", "C2", "student (width {w}), distilled from the self-improved teacher", "student of the\nimproved teacher"),
        ("base_teacher", "C4", "student, distilled from the un-improved teacher base", "student of the\nteacher base"),
        ("gold", "C3", "student, taught the pool's gold rationales (oracle)", "student of\ngold (oracle)"),
        ("control", "C1", "student, labelled seed set only (control)", "student,\nseed set (control)"))


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    runs = list(results["per_seed"].values())
    arms = [(arm, color, label, short) for arm, color, label, short in ARMS if all(arm in r for r in runs)]
    for arm, color, label, _ in arms:
        rounds = range(min(len(r[arm]) for r in runs))
        acc = [[r[arm][i]["accuracy"] for r in runs] for i in rounds]
        left.plot(rounds, [statistics.median(a) for a in acc], marker="o", color=color,
                  label=label.format(w=results["student_width"]))
        left.fill_between(rounds, [min(a) for a in acc], [max(a) for a in acc], color=color, alpha=0.2)
    left.set_xticks(list(rounds))
    left.set(xlabel="round", ylabel="dev greedy accuracy", title="dev set, per round (median, min-max)")
    left.legend(fontsize=7)
    # the bars: the untouched test split where it was scored, else the dev set
    key = "test_accuracy" if all(h.get("test_accuracy") is not None for r in runs for h in r["distill"]) else "accuracy"
    bars = [("teacher\nbase", "C0", [r["teacher"][0][key] for r in runs]),
            ("student\nbase", "C2", [r["distill"][0][key] for r in runs]),
            *((short, color, [r[arm][-1][key] for r in runs]) for arm, color, _, short in arms)]
    med = [100 * statistics.median(v) for _, _, v in bars]
    err = [[m - 100 * min(v) for m, (_, _, v) in zip(med, bars)], [100 * max(v) - m for m, (_, _, v) in zip(med, bars)]]
    right.bar(range(len(bars)), med, yerr=err, capsize=4, color=[c for _, c, _ in bars])
    right.set_xticks(range(len(bars)), [n for n, _, _ in bars], fontsize=6)
    right.set(ylabel=f"{'untouched test' if key == 'test_accuracy' else 'dev'} greedy accuracy (%)",
              title="after the last round (median, min-max)")
    fig.suptitle(f"distillation into a width-{results['student_width']} student (the base is 64), "
                 f"seeds {results['seeds']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="seeds at once (one thread each)")
    parser.add_argument("--work", type=Path, default=Path("runs/distill-evidence"))
    parser.add_argument("--out", type=Path, default=RESULTS / "distill_evidence.json")
    parser.add_argument("--student-width", type=int, default=STUDENT_WIDTH,
                        help="the student's hidden size (the base's is 64); use a --work of its own")
    parser.add_argument("--test", type=int, default=200,
                        help="questions of the untouched test split every round is also scored on (0: none)")
    parser.add_argument("--missing-arms", action="store_true",
                        help="also distil from the un-improved teacher base, and teach the student gold rationales")
    args = parser.parse_args()
    record = provenance.start(args)
    args.work.mkdir(parents=True, exist_ok=True)
    quiet_worker()
    student = student_base(args.work, args.student_width)
    width = json.loads((student / "recipe.json").read_text())["hidden_size"]
    if width != args.student_width:
        parser.error(f"{student} holds a student of width {width}, not {args.student_width}: use another --work")
    todo = [(s, str(args.work), str(student), args.missing_arms, args.test) for s in args.seeds
            if not (args.work / f"seed-{s}.json").exists()]
    run_jobs(run_seed, todo, args.jobs, lambda r: print(f"seed {r['seed']}: " + "; ".join(
        f"{arm} {[round(h['accuracy'], 3) for h in r[arm]]}" for arm in r if isinstance(r[arm], list))
        + f" ({r['seconds']}s)", flush=True))
    per_seed = {str(s): json.loads((args.work / f"seed-{s}.json").read_text()) for s in args.seeds}
    results = {"seeds": args.seeds, "teacher_rounds": TEACHER_ROUNDS, "distill_rounds": DISTILL_ROUNDS,
               "student_width": args.student_width, "per_seed": per_seed, "summary": summarize(per_seed)}
    provenance.write_result(results, args.out, plot, record)


if __name__ == "__main__":
    main()
