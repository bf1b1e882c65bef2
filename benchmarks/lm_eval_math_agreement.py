"""Agreement with lm-evaluation-harness's MATH scoring, question by question, on the same completions.

The completions: for each MATH-500 question, its reference solution ending in Minerva's answer line
("Final Answer: The final answer is $X$. I hope it is correct.", the form of lm-eval's `minerva_math`
few-shot targets) as a right answer, and the next question's solution as a wrong one; plus the
SmolLM2-135M-Instruct completions of `tests/fixtures/math500_completions.jsonl` as they were written.
Each is scored by the `math500` task (extract, then `is_equivalent` to the `answer` field) and by
lm-eval's `minerva_math` `process_results` (both its metrics: `exact_match`, Minerva's answer line with
its normalisation and sympy, and `math_verify`, math-verify over the whole texts), against the gold that
lm-eval's `process_docs` makes (the last box of the solution). Every difference is listed with its
reason in `benchmarks/results/lm_eval_math_agreement.json`.

    python benchmarks/lm_eval_math_agreement.py [--lm-eval-python /tmp/lmeval/bin/python] [--questions 500]

lm-eval runs in its own interpreter (`--lm-eval-python`, default this one): installing lm-eval 0.4.13
downgrades python-dateutil, so keep it in a separate venv; it needs only `pip install --no-deps
lm-eval==0.4.13 sympy math-verify==0.9.0 'antlr4-python3-runtime==4.11.*'`, as this script loads
`lm_eval/tasks/minerva_math/utils.py` by its path. About a minute on one CPU thread.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, as `python -m benchmarks...` does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.evidence import provenance  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "lm_eval_math_agreement.json"
FIXTURE = HERE.parent / "tests" / "fixtures" / "math500_completions.jsonl"
MINERVA_LINE = "\nFinal Answer: The final answer is ${}$. I hope it is correct."


def completions(questions: int) -> list[dict]:
    """(kind, question id, solution, gold, completion) rows: right and wrong references for the first
    `questions` questions, then SmolLM2's."""
    from selfimprove.tasks import local_source

    rows = [json.loads(line) for line in (local_source("math500") / "test.jsonl").read_text().splitlines()]
    out = []
    for i, row in enumerate(rows[:questions]):
        other = rows[(i + 1) % len(rows)]
        for kind, source in (("reference", row), ("other_reference", other)):
            out.append({"kind": kind, "id": row["unique_id"], "solution": row["solution"], "gold": row["answer"],
                        "completion": source["solution"] + MINERVA_LINE.format(source["answer"])})
    by_problem = {r["problem"]: r for r in rows}
    for line in FIXTURE.read_text().splitlines():
        fixture = json.loads(line)
        row = by_problem[fixture["question"]]
        out.append({"kind": f"smollm2 {fixture['prompt_format']}", "id": row["unique_id"], "solution": row["solution"],
                    "gold": row["answer"], "completion": fixture["completion"]})
    return out


def lm_eval_side(rows_path: Path, out_path: Path) -> None:
    """Runs in lm-eval's interpreter: its minerva_math scoring of every row."""
    spec = importlib.util.find_spec("lm_eval")
    utils_path = Path(spec.submodule_search_locations[0]) / "tasks" / "minerva_math" / "utils.py"
    module_spec = importlib.util.spec_from_file_location("minerva_math_utils", utils_path)
    u = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(u)
    scored = []
    for line in rows_path.read_text().splitlines():
        row = json.loads(line)
        doc = {"solution": row["solution"],
               "answer": u.normalize_final_answer(u.remove_boxed(u.last_boxed_only_string(row["solution"])))}
        result = u.process_results(doc, [row["completion"]])
        scored.append({**result, "answer": u.normalize_final_answer(u.get_unnormalized_answer(row["completion"])),
                       "gold": doc["answer"]})
    out_path.write_text("".join(json.dumps(s) + "\n" for s in scored))


def why_they_differ(ours: str | None, ours_right: bool, theirs: dict) -> str:
    """The reason for one disagreement between our verdict and one of lm-eval's metrics."""
    if ours_right == bool(theirs["exact_match"]):
        return (f"only lm-eval's math_verify differs ({theirs['math_verify']}): it parses the whole gold solution and "
                "completion (not the final answers) under a wall-clock timeout, which a busy machine can trip")
    if theirs["answer"] == "[invalidanswer]":
        return ("no Minerva answer line ('Final Answer: The final answer is X. I hope it is correct.'): "
                "exact_match reads nothing")
    if ours is None:
        return "we read no answer (no box, no answer sentence we accept)"
    if ours_right:
        return (f"exact_match's normalisation and sympy judge {theirs['answer']!r} unequal to {theirs['gold']!r}; "
                "math-verify judges our answer equal to the gold")
    return f"exact_match judges {theirs['answer']!r} equal to {theirs['gold']!r}; math-verify does not ({ours!r})"


# What lm-eval's minerva_math utils need, checked in its interpreter before any work: its own import asserts
# an antlr4 runtime of 4.11, which a plain `pip install lm-eval` does not bring.
LM_EVAL_NEEDS = """
from importlib.metadata import version, PackageNotFoundError
try:
    version("sympy"), version("math-verify")
    ok = version("lm-eval") == "0.4.13" and version("antlr4-python3-runtime").startswith("4.11")
except PackageNotFoundError:
    ok = False
raise SystemExit(0 if ok else 1)
"""
INSTALL = "pip install --no-deps lm-eval==0.4.13 sympy math-verify==0.9.0 'antlr4-python3-runtime==4.11.*'"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lm-eval-python", default=sys.executable)
    parser.add_argument("--questions", type=int, default=500, help="MATH-500 questions whose references are scored")
    args = parser.parse_args()
    try:
        ready = subprocess.run([args.lm_eval_python, "-c", LM_EVAL_NEEDS], capture_output=True, timeout=120).returncode == 0
    except OSError as e:
        parser.error(f"--lm-eval-python {args.lm_eval_python}: {e}")
    if not ready:
        parser.error(f"--lm-eval-python {args.lm_eval_python} lacks lm-eval 0.4.13's MATH scoring; in that interpreter "
                     f"(a venv of its own): {INSTALL}")
    record = provenance.start(args)
    from selfimprove.tasks import get_task

    task = get_task("math500")
    rows = completions(args.questions)
    with tempfile.TemporaryDirectory() as tmp:
        rows_path, out_path = Path(tmp) / "rows.jsonl", Path(tmp) / "scored.jsonl"
        rows_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        subprocess.run([args.lm_eval_python, __file__, "--lm-eval-side", str(rows_path), str(out_path)], check=True)
        theirs = [json.loads(line) for line in out_path.read_text().splitlines()]
    table, differences = {}, []
    for row, their in zip(rows, theirs):
        ours = task.extract(row["completion"])
        right = ours is not None and task.is_equivalent(ours, row["gold"])
        kind = row["kind"].split()[0]
        counts = table.setdefault(kind, {"rows": 0, "selfimprove": 0, "exact_match": 0, "math_verify": 0,
                                         "agree_exact_match": 0, "agree_math_verify": 0})
        counts["rows"] += 1
        counts["selfimprove"] += right
        counts["exact_match"] += their["exact_match"]
        counts["math_verify"] += their["math_verify"]
        counts["agree_exact_match"] += right == bool(their["exact_match"])
        counts["agree_math_verify"] += right == bool(their["math_verify"])
        if right != bool(their["exact_match"]) or right != bool(their["math_verify"]):
            differences.append({"kind": row["kind"], "id": row["id"], "gold": row["gold"], "selfimprove_answer": ours,
                                "selfimprove_right": right, "exact_match": their["exact_match"],
                                "exact_match_answer": their["answer"], "math_verify": their["math_verify"],
                                "why": why_they_differ(ours, right, their), "completion_end": row["completion"][-300:]})
    provenance.write_result({"lm_eval_task": "minerva_math500 (lm-eval 0.4.13 process_results)",
                             "questions": args.questions, "per_kind": table, "differences": differences},
                            RESULTS, None, record)
    for kind, counts in table.items():
        print(kind, counts)
    for d in differences:
        print(f"{d['kind']:24} {d['id']:40} ours {d['selfimprove_answer']!r} ({d['selfimprove_right']}) "
              f"em {d['exact_match']} mv {d['math_verify']}: {d['why']}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--lm-eval-side"]:
        lm_eval_side(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        main()
