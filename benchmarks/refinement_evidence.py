"""Inference refinement on a real model: rationale augmentation, debate and retrieved exemplars,
each against its plain counterpart at the same cost. One round of the loop per arm, no training.

    python benchmarks/refinement_evidence.py                                  # SmolLM2-135M on a CPU, tiny
    python benchmarks/refinement_evidence.py --config configs/refinement_gpu.yaml --work runs/refinement-gpu \
        --k 8 --agents 4 --eval-limit 500                                     # the GPU recipe

Arms (same pool, same seeds; scored against the pool's hidden gold, which nothing else reads):
  plain        generate.formats [cot_fewshot], K paths a question
  augmented    [cot_fewshot, cot_alternative], K/2 paths each (the same K): pass@K, the verified vote's
               coverage (questions where some path passes vote.require and a vote is reached) and its
               pseudo-label accuracy, mean novelty
  debate       vote.method debate, `--agents` agents, 1 turn of revision
  plain_tokens a plain vote over 2 x agents paths: the debate's generated paths (agents first answers
               + agents revisions), so generated tokens match up to the revisions' lengths (both counted);
               left out when K = 2 x agents (then `plain` is that arm)
  fixed        held-out greedy accuracy with the task's fixed exemplars (cot_fewshot)
  retrieved    the same with exemplars retrieved (cot_retrieved) from the proven paths of the `plain`
               arm's run (memory.sources): the model's own verified answers, no labels
Writes WORK/<arm>/ (run directories; a rerun resumes) and benchmarks/results/<out>.json.

Where the model cannot follow the prompts the numbers say nothing about the methods: SmolLM2-135M
rarely writes a different approach when asked and does not use other agents' solutions, and the
embedded demo model (trained from scratch on one prompt format) cannot read either prompt. The
default run is a mechanism check on 24 questions; configs/refinement_gpu.yaml is the measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, as `python -m benchmarks...` does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.evidence import provenance  # noqa: E402

RESULTS = Path(__file__).parent / "results"
DEFAULT_CONFIG = Path(__file__).parents[1] / "configs" / "refinement_smollm2_cpu.yaml"


def no_training(ctx, round_, inputs):
    """An adaptation method that trains nothing: these arms measure sampling and voting only."""
    from selfimprove.adapt import Adapted

    return Adapted(inputs.learner, [], 0)


def arms(k: int, agents: int, eval_limit: int, work: Path) -> dict[str, list[str]]:
    none = ["adapt.method=benchmarks.refinement_evidence:no_training"]
    one_question = ["task.limit=1", "generate.k=1", f"task.eval_limit={eval_limit}"]  # only round 0's held-out scores
    out = {
        "plain": none + [f"generate.k={k}"],
        "augmented": none + [f"generate.k={k // 2}", "generate.formats=[cot_fewshot, cot_alternative]"],
        "debate": none + [f"generate.k={agents}", "vote.method=debate",
                          f"vote.options={{agents: {agents}, turns: 1}}"],
        "plain_tokens": none + [f"generate.k={2 * agents}"],
        "fixed": none + one_question,
        "retrieved": none + one_question + ["evaluate.format=cot_retrieved", f"memory.sources=[{work / 'plain'}]"],
    }
    if 2 * agents == k:  # the plain arm is the debate's token-matched vote already
        del out["plain_tokens"]
    return out


def measure(root: Path) -> dict:
    """Pool-level numbers of round 1 (against the hidden gold) and round 0's held-out accuracy."""
    from selfimprove.rundir import layout
    from selfimprove.config import load_config
    from selfimprove.rundir.store import read_jsonl
    from selfimprove.tasks import get_task

    task = get_task(load_config(root / layout.CONFIG).task.name)
    gold = {r["id"]: r["gold"] for r in read_jsonl(root / layout.POOL_GOLD)}
    samples = read_jsonl(root / layout.round_file(1, layout.SAMPLES))
    votes = read_jsonl(root / layout.round_file(1, layout.VOTES))
    right = lambda a, qid: a is not None and task.is_equivalent(a, gold[qid])  # noqa: E731
    questions = sorted({s["question_id"] for s in samples})
    solved = {s["question_id"] for s in samples if right(s["answer"], s["question_id"])}
    voted = [v for v in votes if v["answer"] is not None]
    debate = root / layout.round_file(1, layout.DEBATE)
    extra = sum(r["num_tokens"] for r in read_jsonl(debate) if r["turn"] > 0) if debate.exists() else 0
    base = json.loads((root / layout.round_file(0, layout.METRICS)).read_text())
    novelty = [s["novelty"] for s in samples if s.get("novelty") is not None]
    return {"questions": len(questions), "paths": len(samples),
            "pass_at_k": len(solved) / len(questions) if questions else None,
            "vote_coverage": len(voted) / len(votes) if votes else None,
            "pseudo_label_accuracy": (sum(right(v["answer"], v["question_id"]) for v in voted) / len(voted)
                                      if voted else None),
            "right_over_all_questions": (sum(right(v["answer"], v["question_id"]) for v in voted) / len(votes)
                                         if votes else None),
            "generated_tokens": sum(s["num_tokens"] for s in samples) + extra, "debate_tokens": extra,
            "mean_novelty": sum(novelty) / len(novelty) if novelty else None,
            "heldout_accuracy": base.get("accuracy"), "heldout_questions": base.get("eval_questions")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--work", type=Path, default=Path("runs/refinement"))
    parser.add_argument("--out", type=Path, default=RESULTS / "refinement_evidence.json")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--eval-limit", type=int, default=40)
    parser.add_argument("--only", nargs="+", default=None)
    args = parser.parse_args()
    record = provenance.start(args)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rich.console import Console

    from selfimprove.config import load_config
    from selfimprove.loop import run

    results = {}
    for name, overrides in arms(args.k, args.agents, args.eval_limit, args.work.resolve()).items():
        if args.only and name not in args.only:
            continue
        out = args.work / name
        started = time.time()
        run(load_config(args.config, [f"run.out_dir={out}", *overrides]), console=Console(quiet=True))
        results[name] = {**measure(out), "overrides": overrides, "seconds": round(time.time() - started)}
        print(name, json.dumps({k: v for k, v in results[name].items() if k != "overrides"}), flush=True)
    provenance.write_result({"config": str(args.config), "k": args.k, "agents": args.agents, "arms": results},
                            args.out, None, record)


if __name__ == "__main__":
    main()
