"""Which gate combination keeps the most correct pseudo-labels, and how many examples it costs.

For each combination of gates (a list of config specs, all of which must pass), reports against the
hidden gold: how many samples and questions are kept, and the share of kept samples whose answer
is correct ("precision"). Writes JSON (one row per combination) and prints a table.

Two sources of samples:
  --run-dir RUN [--round 1]   a finished run: rounds/rNN/samples.jsonl, votes.jsonl, pool.jsonl,
                              pool_gold.jsonl and config.yaml (for the task name; or --task).
  --simulate N                N arithmetic problems with K simulated paths each: the gold rationale
                              with injected faults (arithmetic slips, misread operands, padding,
                              hedging, a missing answer). Runs anywhere in seconds, but measures
                              the gates against this fault model, not against a real model.

The critique gate is left out (it needs the run's model); add it with --extra-spec when a
backend is wired. Usage:
  python -m benchmarks.gates_ablation --simulate 300 --out /tmp/gates_ablation.json
  python -m benchmarks.gates_ablation --run-dir runs/demo --round 1 --out benchmarks/results/gates_ablation.json

The committed benchmarks/results/gates_ablation.json read round 1 of `selfimprove demo --seed 1` (then at
/tmp/demo-s1, not kept) with the code of 2026-11-21 (9c7a36d), whose demo recipe had no `grounded` check:
`make evidence-gates` reruns it on today's demo.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, as `python -m benchmarks...` does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.evidence import provenance  # noqa: E402
from selfimprove.rundir import layout  # noqa: E402
from selfimprove.gates import Candidate, GateContext, build_gate  # noqa: E402
from selfimprove.records import Sample, Vote, from_row  # noqa: E402
from selfimprove.tasks import get_task  # noqa: E402
from selfimprove.stages.vote import vote_all  # noqa: E402

MAJORITY = {"name": "majority"}
COMBINATIONS: dict[str, list[dict]] = {
    "none": [],
    "majority": [MAJORITY],
    "majority+share0.6": [MAJORITY, {"name": "min_share", "threshold": 0.6}],
    "majority+votes3": [MAJORITY, {"name": "min_votes", "count": 3}],
    "majority+margin": [MAJORITY, {"name": "logprob_margin", "margin": 0.0}],
    "majority+arithmetic": [MAJORITY, {"name": "arithmetic"}],
    "majority+format": [MAJORITY, {"name": "answer_format"}],
    "majority+length": [MAJORITY, {"name": "length_outlier", "k": 3.0}],
    "majority+dedup": [MAJORITY, {"name": "near_duplicate", "threshold": 0.95}],
    "majority+template": [MAJORITY, {"name": "template_cap", "max_share": 0.1}],
    "majority+share0.6+arithmetic+format": [MAJORITY, {"name": "min_share", "threshold": 0.6},
                                            {"name": "arithmetic"}, {"name": "answer_format"}],
    "all": [MAJORITY, {"name": "min_share", "threshold": 0.6}, {"name": "arithmetic"},
            {"name": "answer_format"}, {"name": "length_outlier"}, {"name": "near_duplicate", "threshold": 0.95}],
    "weighted(share,arith,format,margin)": [{"name": "weighted_vote", "threshold": 0.75, "gates": [
        {"name": "min_share", "threshold": 0.6}, {"name": "arithmetic"}, {"name": "answer_format"},
        {"name": "logprob_margin"}]}, MAJORITY],
}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_run(run_dir: Path, round_: int, task_name: str | None):
    """Candidates and gold from a finished run's artifacts."""
    if task_name is None:
        import yaml

        task_name = yaml.safe_load((run_dir / layout.CONFIG).read_text())["task"]["name"]
    samples = [from_row(Sample, r) for r in read_jsonl(run_dir / layout.round_file(round_, layout.SAMPLES))]
    votes = {v.question_id: v for v in (from_row(Vote, r)
                                        for r in read_jsonl(run_dir / layout.round_file(round_, layout.VOTES)))}
    questions = {r["id"]: r["question"] for r in read_jsonl(run_dir / layout.POOL)}
    gold = {r["id"]: r["gold"] for r in read_jsonl(run_dir / layout.POOL_GOLD)}
    candidates = [Candidate(s, votes[s.question_id], questions.get(s.question_id, "")) for s in samples]
    return get_task(task_name), candidates, gold


def simulate(n: int, k: int, seed: int):
    """Arithmetic problems with K faulty copies of the gold rationale each (see the module docstring)."""
    from selfimprove.tasks.arithmetic import TASK, generate_problems

    rng = random.Random(seed)
    samples, questions, gold = [], {}, {}
    for problem in generate_problems(n, seed=seed, steps=(2, 3, 4)):
        questions[problem.id], gold[problem.id] = problem.question, str(problem.answer)
        skill = rng.uniform(0.4, 1.0)  # per question: some questions are hard for the model
        for i in range(k):
            text, wrong = _faulty_path(problem.rationale, skill, rng)
            tokens = len(text)
            rate = -0.3 - (0.25 if wrong else 0.0) + rng.gauss(0, 0.15)
            samples.append(Sample(problem.id, 1, i, "cot_fewshot", seed, "simulated", None, text,
                                  TASK.extract(text), tokens, False, rate * tokens))
    votes = {v.question_id: v for v in vote_all(samples)}
    return TASK, [Candidate(s, votes[s.question_id], questions[s.question_id]) for s in samples], gold


def _faulty_path(rationale: str, skill: float, rng: random.Random) -> tuple[str, bool]:
    """The gold rationale, recomputed line by line with faults; returns (text, answer is wrong)."""
    lines = [line for line in rationale.split(". ") if "=" in line]
    value = int(lines[0].split()[0])
    out, wrong = [], False
    for line in lines:
        _, op, b, _, _ = line.rstrip(".").split()
        b = int(b)
        if rng.random() > skill ** 0.5 and rng.random() < 0.5:
            b, wrong = b + rng.choice([-2, -1, 1, 2]), True  # misread operand: arithmetic stays right
        result = {"+": value + b, "-": value - b, "*": value * b, "/": value / b if b else 0}[op]
        result = int(result) if result == int(result) else round(result, 2)
        written = result
        if rng.random() > skill ** 0.5:
            written, wrong = result + rng.choice([-10, -1, 1, 10]), True  # slip: written result is off
        out.append(f"{value} {op} {b} = {written}.")
        value = written
    text = " ".join(out) + f" The answer is {value}."
    roll = rng.random()
    if roll < 0.05:
        text = " ".join(out)  # no answer sentence: abstains
    elif roll < 0.08:
        text += f" Or maybe the answer is {value + 1}."  # hedging
    elif roll < 0.12:
        text = " ".join(out) + " Let me double check every step again." * 12 + f" The answer is {value}."
    return text, wrong


def ablate(task, candidates: list[Candidate], gold: dict[str, str], combos: dict[str, list[dict]]) -> list[dict]:
    context = GateContext(task=task)
    correct = [c.sample.answer is not None and gold.get(c.sample.question_id) is not None
               and task.is_equivalent(c.sample.answer, gold[c.sample.question_id]) for c in candidates]
    cache: dict[str, tuple[list[bool], float]] = {}  # each distinct gate spec runs once
    rows = []
    for name, specs in combos.items():
        keep = [True] * len(candidates)
        seconds = 0.0
        for spec in specs:
            key = json.dumps(spec, sort_keys=True)
            if key not in cache:
                params = {k: v for k, v in spec.items() if k != "name"}
                start = time.perf_counter()
                verdicts = build_gate(spec["name"], context, params)(candidates)
                cache[key] = ([v.passed for v in verdicts], time.perf_counter() - start)
            passed, spent = cache[key]
            keep = [a and b for a, b in zip(keep, passed)]
            seconds += spent
        kept = [i for i, k in enumerate(keep) if k]
        rows.append({
            "combination": name, "gates": specs,
            "kept_samples": len(kept), "kept_share": len(kept) / max(1, len(candidates)),
            "kept_questions": len({candidates[i].sample.question_id for i in kept}),
            "precision": sum(correct[i] for i in kept) / len(kept) if kept else None,
            "correct_kept": sum(correct[i] for i in kept),
            "question_precision": _question_precision(task, candidates, gold, kept),
            "gate_seconds": round(seconds, 4),
        })
    return rows


def _question_precision(task, candidates: list[Candidate], gold: dict[str, str], kept: list[int]) -> float | None:
    """Share of kept questions whose majority answer is correct (the pseudo-label, per question)."""
    votes = {candidates[i].sample.question_id: candidates[i].vote.answer for i in kept}
    if not votes:
        return None
    hits = sum(a is not None and q in gold and task.is_equivalent(a, gold[q]) for q, a in votes.items())
    return hits / len(votes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-dir", type=Path)
    source.add_argument("--simulate", type=int, metavar="N")
    parser.add_argument("--round", type=int, default=1)
    parser.add_argument("--task", default=None, help="task name; default: the run's config.yaml")
    parser.add_argument("--k", type=int, default=8, help="paths per question when simulating")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extra-spec", action="append", default=[], metavar="JSON",
                        help='another combination: \'{"name": "...", "gates": [{...}, ...]}\'')
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    record = provenance.start(args)
    if args.run_dir:
        task, candidates, gold = load_run(args.run_dir, args.round, args.task)
    else:
        task, candidates, gold = simulate(args.simulate, args.k, args.seed)
    combos = dict(COMBINATIONS)
    for extra in args.extra_spec:
        spec = json.loads(extra)
        combos[spec["name"]] = spec["gates"]
    rows = ablate(task, candidates, gold, combos)
    source = str(args.run_dir) if args.run_dir else f"simulated n={args.simulate} k={args.k} seed={args.seed}"
    result = {"source": source, "round": args.round, "samples": len(candidates), "rows": rows,
              "provenance": provenance.finish(record)}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    print(f"{'combination':40s} {'kept':>6s} {'share':>6s} {'questions':>9s} {'precision':>9s} {'q_prec':>6s} {'sec':>7s}")
    for r in rows:
        precision = f"{r['precision']:.3f}" if r["precision"] is not None else "-"
        q_precision = f"{r['question_precision']:.3f}" if r["question_precision"] is not None else "-"
        print(f"{r['combination']:40s} {r['kept_samples']:6d} {r['kept_share']:6.2f} {r['kept_questions']:9d} "
              f"{precision:>9s} {q_precision:>6s} {r['gate_seconds']:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
