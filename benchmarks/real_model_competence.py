"""Where a real model's label-free vote can work: a competence scan on the dev (validation) split.

    python benchmarks/real_model_competence.py                       # the numbers in results/real_model_competence_equations.json
    python benchmarks/real_model_competence.py --task arithmetic --shots 2 --max-new-tokens 64 --questions 40 \
        --source steps=1-2,max_value=10 steps=1-2,max_value=10,ops=+- steps=1,max_value=10,ops=+- \
        --require "[{name: arithmetic, require_equations: true}, {name: grounded}]" \
        --out benchmarks/results/real_model_competence.json     # the arithmetic scan (configs/smollm2_arithmetic.yaml)

For each source (difficulty) and prompt style (zero-shot chain of thought; `--shots` worked examples as chat
turns), on `--questions`
validation questions: greedy accuracy, and over K samples at temperature T the plain majority, the vote of
only the answers the task's own check accepts (substitution, for equations) or, with `--require`, of
only the paths that pass those pre-vote gates (a recipe's `vote.require`, e.g. arithmetic that recomputes),
its coverage (questions with a checked answer) and precision, and pass@K. This scan chose the
domain, difficulty, prompt and K of `configs/smollm2_equations.yaml`; the test split is never read here.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

if __package__ in (None, ""):  # run as a file: import from the repository root, as `python -m benchmarks...` does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.evidence import provenance  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--task", default="equations")
    parser.add_argument("--source", nargs="+", default=["steps=1-2,max_value=10", "steps=2,max_value=10"])
    parser.add_argument("--questions", type=int, default=24)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--max-new-tokens", type=int, default=80)
    parser.add_argument("--shots", type=int, nargs="+", default=[0, 2, 4])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--require", type=yaml.safe_load, default=None,
                        help="a YAML list of pre-vote gates, as in a recipe's vote.require: only the paths that pass "
                             "them all vote in the checked vote (instead of the task's answer check)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "real_model_competence_equations.json"))
    return parser, parser.parse_args(argv)


def require_gates(parser, require, task) -> dict:
    """`--require`'s gates, built as a recipe's vote.require is; a bad list is an argument error."""
    from selfimprove.gates import build_gates
    from selfimprove.gates.base import GateContext

    if require is None:
        return {}
    if not isinstance(require, list):
        parser.error("--require is a YAML list of gates, e.g. \"[{name: arithmetic}, {name: grounded}]\"")
    try:
        return build_gates(require, GateContext(task), "--require", before_vote=True)
    except (ValueError, KeyError) as e:
        parser.error(str(e))


def checked_votes(task, check, gates, item, fmt: str, model: str, group, answers) -> Counter | None:
    """The answers that count in the checked vote: those of paths passing `gates`, else those the task's
    answer check accepts; None when there is neither."""
    from selfimprove.records import Sample
    from selfimprove.voting.majority import eligible_voters

    if gates:
        paths = [Sample(item.id, 0, j, fmt, 0, model, None, c.text, a, c.num_tokens, c.truncated, c.logprob)
                 for j, (c, a) in enumerate(zip(group, answers))]
        return Counter(s.answer for s in eligible_voters(paths, {item.id: item.question}, gates) if s.answer is not None)
    if check is not None:
        return Counter(a for a in answers if check.check(item.question, a))
    return None


def scan(args, task, check, gates, backend, weights, source: str, shots: int) -> dict:
    """One row: greedy, plain and checked majority, coverage and pass@K on one source with `shots` examples."""
    from selfimprove.backends.base import SamplingParams
    from selfimprove.prompts import chat_messages

    started = time.time()
    items = task.load(f"{source},n={args.questions},seed=7", split="validation")
    fmt = "cot_fewshot" if shots else "cot_zeroshot"
    prompts = [chat_messages(i.question, fmt, task.exemplars()[:shots], task.answer_prefix) for i in items]
    greedy = backend.generate(prompts, SamplingParams(n=1, temperature=0.0, max_new_tokens=args.max_new_tokens), weights)
    samples = backend.generate(prompts, SamplingParams(n=args.k, temperature=args.temperature,
                                                       max_new_tokens=args.max_new_tokens, seed=0), weights)
    count = Counter()
    for item, first, group in zip(items, greedy, samples):
        right = lambda a: a is not None and task.is_equivalent(a, item.gold)  # noqa: E731
        answers = [task.extract(c.text) for c in group]
        count["greedy"] += right(task.extract(first[0].text))
        count["pass_at_k"] += any(map(right, answers))
        votes = Counter(a for a in answers if a is not None)
        count["plain_majority"] += bool(votes) and right(votes.most_common(1)[0][0])
        checked = checked_votes(task, check, gates, item, fmt, args.model, group, answers)
        if checked is not None:
            count["checked_covered"] += bool(checked)
            count["checked_majority"] += bool(checked) and right(checked.most_common(1)[0][0])
        count["tokens"] += sum(c.num_tokens for c in group)
    n = len(items)
    return {"source": source, "shots": shots, "questions": n,
            **{k: count[k] / n for k in ("greedy", "plain_majority", "checked_majority", "checked_covered", "pass_at_k")},
            "checked_precision": count["checked_majority"] / count["checked_covered"] if count["checked_covered"] else None,
            "tokens_per_path": count["tokens"] / (n * args.k), "seconds": round(time.time() - started)}


def main() -> None:
    parser, args = parse_args()
    record = provenance.start(args)

    import torch

    from selfimprove.backends import create_backend
    from selfimprove.config import GenerateConfig, ModelConfig
    from selfimprove.records import Weights
    from selfimprove.tasks import get_task
    from selfimprove.tasks.base import checker_of

    torch.set_num_threads(args.threads)
    task = get_task(args.task)
    check, gates = checker_of(task), require_gates(parser, args.require, task)
    backend = create_backend(ModelConfig(name=args.model, dtype="float32", device="cpu", chat="on"), GenerateConfig())
    weights = Weights(args.model)
    rows = []
    for source in args.source:
        for shots in args.shots:
            rows.append(scan(args, task, check, gates, backend, weights, source, shots))
            print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in rows[-1].items()), flush=True)
    backend.close()
    out = Path(args.out)
    checked_by = "--require gates" if gates else "the task's answer check" if check is not None else None
    provenance.write_result({"settings": vars(args), "split": "validation (dev)", "checked_by": checked_by, "rows": rows},
                            out, None, record)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
