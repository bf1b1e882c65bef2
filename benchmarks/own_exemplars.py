"""Self-generated few-shot exemplars (LMSI section 5.2) against the task's hand-written ones, on a real model.

    python benchmarks/own_exemplars.py                                   # the numbers in results/own_exemplars.json
    python benchmarks/own_exemplars.py --heldout 16 --candidates 8 --embedded 16 --work /tmp/oe   # plumbing only

SmolLM2-135M-Instruct (`configs/smollm2_arithmetic.yaml`: 1-2 step arithmetic, numbers up to 10, chat
turns, 2 exemplars) answers `--heldout` held-out questions greedily, prompted
  task   cot_fewshot with the task's 2 hand-written exemplars (the recipe's sampling prompt)
  self   cot_fewshot with 2 exemplars chosen by `own_exemplars` (generate.exemplars=self): the model's own
         zero-shot paths (K=8, T=0.8) on the first `--candidates` unlabeled pool questions, voted on with the
         recipe's verified vote (only paths whose arithmetic recomputes vote), most confident first
  zero   cot_zeroshot, no exemplars (the control)
scored by `evaluate.evaluate_weights` (the loop's scorer). Paired counts say on how many questions one arm is
right and the other wrong. Whether the chosen exemplars' answers are right is read from the pool's hidden
gold: a diagnostic only, the choice never sees it.

The embedded demo's base model (trained from scratch only in `cot_zeroshot`, completion-only loss) answers
`--embedded` held-out questions of its demo task greedily in cot_fewshot (the task's exemplars) and in
cot_zeroshot (and with 1 exemplar, and with none and no cue): can it use worked examples at all?

One torch thread. Writes WORK/ (run directories with the rationale cache: a rerun reads everything back,
including the chosen exemplars in WORK/smollm2/rounds/r01/own_exemplars.jsonl) and
benchmarks/results/own_exemplars.json; prints a table. Not run by CI.
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

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
RECIPE = ROOT / "configs" / "smollm2_arithmetic.yaml"
DEMO = ROOT / "src" / "selfimprove" / "embedded" / "demo.yaml"
BASE = ROOT / "src" / "selfimprove" / "embedded" / "assets" / "base"


def score(ctx, config, style) -> tuple[dict, dict[str, bool]]:
    """Greedy held-out accuracy of the base weights prompted in `style` (config.evaluate.format), and
    whether each question was answered right."""
    from selfimprove.stages.evaluate import evaluate_weights
    from selfimprove.tasks.base import graded

    started = time.time()
    scores = evaluate_weights(ctx.backend, ctx.base_sampler, ctx.task, config, ctx.data.heldout, style=style)
    gold = {i.id: i.gold for i in ctx.data.heldout}
    greedy = [s for s in scores.heldout_samples if s.index == 0]
    right = graded(ctx.task, [("", s.answer, gold[s.question_id]) for s in greedy])
    metrics = {"accuracy": scores.metrics["accuracy"], "questions": scores.metrics["eval_questions"],
               "answered": sum(s.answer is not None for s in greedy) / len(greedy),
               "mean_tokens": sum(s.num_tokens for s in greedy) / len(greedy), "seconds": round(time.time() - started),
               "first_completions": [s.text for s in greedy[:3]]}
    return metrics, {s.question_id: ok for s, ok in zip(greedy, right)}


def paired(a: dict[str, bool], b: dict[str, bool]) -> dict:
    return {"only_first_right": sum(a[q] and not b[q] for q in a), "only_second_right": sum(b[q] and not a[q] for q in a),
            "both_right": sum(a[q] and b[q] for q in a), "questions": len(a)}


def smollm2(args) -> dict:
    from rich.console import Console

    from selfimprove.rundir import layout
    from selfimprove.stages import own_exemplars
    from selfimprove.config import load_config
    from selfimprove.loop import open_context

    common = [f"run.out_dir={Path(args.work) / 'smollm2'}", "run.rounds=1", "run.threads=1",
              f"task.source=steps=1-2,max_value=10,n={max(args.candidates, 64)},seed=0",
              f"task.eval_limit={args.heldout}", "generate.exemplars=self",
              f"generate.exemplar_candidates={args.candidates}", "evaluate.k=1", "evaluate.temperature=0.0"]
    fewshot = load_config(RECIPE, common + ["evaluate.format=cot_fewshot"])
    zeroshot = load_config(RECIPE, common + ["evaluate.format=cot_zeroshot"])
    console = Console(quiet=not args.verbose)
    ctx = open_context(fewshot, False, console)
    try:
        started = time.time()
        own = own_exemplars.round_style(ctx, 1, ctx.base_sampler, ctx.data.pool, ctx.style)
        choose_seconds = round(time.time() - started)
        rows = ctx.store.read_jsonl(layout.round_file(1, layout.OWN_EXEMPLARS))
        arms, right = {}, {}
        for arm, config, style in (("task", fewshot, ctx.style), ("self", fewshot, own), ("zero", zeroshot, ctx.style)):
            print(f"[{time.strftime('%H:%M:%S')}] smollm2 {arm}", flush=True)
            arms[arm], right[arm] = score(ctx, config, style)
    finally:
        ctx.backend.close()
    for row in rows:  # diagnostics only: the pool's hidden gold never reached the choice
        gold = ctx.data.gold.get(row["question_id"]) if row["question_id"] else None
        row["right"] = None if gold is None else ctx.task.is_equivalent(row["answer"], gold)
    return {"model": fewshot.model.name, "recipe": str(RECIPE.relative_to(ROOT)), "arms": arms,
            "paired": {"self vs task": paired(right["self"], right["task"]),
                       "task vs zero": paired(right["task"], right["zero"]),
                       "self vs zero": paired(right["self"], right["zero"])},
            "exemplars": {"chosen": rows, "candidates": args.candidates, "k": fewshot.generate.k,
                          "temperature": fewshot.generate.temperature, "seconds": choose_seconds,
                          "right": sum(bool(r.get("right")) for r in rows), "task_exemplars": [
                              {"question": e.question, "rationale": e.rationale, "answer": e.answer}
                              for e in ctx.style.exemplars]}}


def embedded(args) -> dict:
    from dataclasses import replace

    from rich.console import Console

    from selfimprove.config import load_config
    from selfimprove.loop import open_context

    common = [f"model.name={BASE}", f"run.out_dir={Path(args.work) / 'embedded'}", "run.threads=1",
              "task.source=steps=3,max_value=30,n=64,seed=0", f"task.eval_limit={args.embedded}",
              "evaluate.k=1", "evaluate.temperature=0.0"]
    fewshot = load_config(DEMO, common + ["evaluate.format=cot_fewshot"])
    zeroshot = load_config(DEMO, common + ["evaluate.format=cot_zeroshot"])
    ctx = open_context(fewshot, False, Console(quiet=not args.verbose))
    try:
        # All 4 of the task's exemplars; 1 (a prompt about as long as the sequences it was trained on); none
        # ("Q: ...\nA:": the few-shot prompt's own tail, without the zero-shot cue it was always trained with).
        arms, right, prompt_tokens = {}, {}, {}
        for arm, config, style in (("fewshot", fewshot, ctx.style),
                                   ("fewshot_1", fewshot, replace(ctx.style, exemplars=ctx.style.exemplars[:1])),
                                   ("fewshot_0", fewshot, replace(ctx.style, exemplars=[])), ("zero", zeroshot, ctx.style)):
            print(f"[{time.strftime('%H:%M:%S')}] embedded {arm}", flush=True)
            arms[arm], right[arm] = score(ctx, config, style)
            prompt_tokens[arm] = ctx.backend.count_tokens(style.render(ctx.data.heldout[0].question,
                                                                       config.evaluate.format), ctx.base_sampler)
        context = ctx.backend.max_context(ctx.base_sampler)
    finally:
        ctx.backend.close()
    return {"model": str(BASE.relative_to(ROOT)), "context": context, "prompt_tokens": prompt_tokens, "arms": arms,
            "paired": {"fewshot vs zero": paired(right["fewshot"], right["zero"]),
                       "fewshot_1 vs zero": paired(right["fewshot_1"], right["zero"]),
                       "fewshot_1 vs fewshot_0": paired(right["fewshot_1"], right["fewshot_0"])}}


def print_table(results: dict) -> None:
    print(f"{'model':10} {'prompt':34} {'greedy':>7} {'answered':>8} {'tokens':>6} {'n':>4} {'sec':>5}")
    names = {"task": "cot_fewshot, task's exemplars", "self": "cot_fewshot, self-chosen exemplars",
             "zero": "cot_zeroshot (no exemplars)", "fewshot": "cot_fewshot, task's 4 exemplars",
             "fewshot_1": "cot_fewshot, task's first exemplar", "fewshot_0": "Q: ...\\nA: (no exemplar, no cue)"}
    for model in ("smollm2", "embedded"):
        for arm, m in results.get(model, {}).get("arms", {}).items():
            print(f"{model:10} {names[arm]:34} {100 * m['accuracy']:6.1f}% {100 * m['answered']:7.0f}% "
                  f"{m['mean_tokens']:6.1f} {m['questions']:>4} {m['seconds']:>5}")
    for model in ("smollm2", "embedded"):
        for name, p in results.get(model, {}).get("paired", {}).items():
            first, second = name.split(" vs ")
            print(f"{model} {name}: right only with {first} {p['only_first_right']}, only with {second} "
                  f"{p['only_second_right']}, both {p['both_right']} (of {p['questions']})")
    ex = results.get("smollm2", {}).get("exemplars")
    if ex:
        self_rows = [r for r in ex["chosen"] if r["source"] == "self"]
        print(f"self-chosen exemplars: {len(self_rows)} from {ex['candidates']} candidates x K={ex['k']} "
              f"({ex['seconds']} s); answers right by the hidden gold: {ex['right']} of {len(ex['chosen'])}")
        for r in ex["chosen"]:
            print(f"  share {r['share']} votes {r['num_votes']} right={r.get('right')}: {r['question']!r} -> "
                  f"{r['rationale']!r} {r['answer']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heldout", type=int, default=150, help="SmolLM2 held-out questions per arm")
    parser.add_argument("--candidates", type=int, default=32, help="pool questions sampled for own exemplars")
    parser.add_argument("--embedded", type=int, default=200, help="embedded model held-out questions (0 = skip)")
    parser.add_argument("--skip-smollm2", action="store_true")
    parser.add_argument("--work", default=str(ROOT / "runs" / "bench" / "own_exemplars"))
    parser.add_argument("--out", default=str(RESULTS / "own_exemplars.json"))
    parser.add_argument("--verbose", action="store_true", help="show progress bars")
    args = parser.parse_args()
    record = provenance.start(args)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(1)  # two shared cores: one thread is the fastest there (configs/smollm2_arithmetic.yaml)
    started = time.time()
    results = {"settings": {k: v for k, v in vars(args).items() if k not in ("out", "verbose")}}
    if not args.skip_smollm2:
        results["smollm2"] = smollm2(args)
    if args.embedded:
        results["embedded"] = embedded(args)
    results["wall_seconds"] = round(time.time() - started)
    results["provenance"] = provenance.finish(record)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print_table(results)
    print(f"wrote {out} in {results['wall_seconds']} s")


if __name__ == "__main__":
    main()
