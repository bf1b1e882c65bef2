"""Every task's extractor on what a real chat model wrote: tests/fixtures/real_completions.jsonl.

The fixture holds SmolLM2-135M-Instruct completions (recorded by benchmarks/record_real_completions.py)
with `expected`, the answer a careful reader takes as the model's final answer, labelled by hand
(null when it gives none; not the gold). Reads the fixture only: no model is needed.

How the labels read a completion: its last explicit answer statement counts ("The answer is",
"Answer:", "####", \\boxed, "the correct option is", an opening "No," or "A) 40"); without one, a
finished concluding sentence ("So, Ann has 3 pencils.") counts. Not counted: text cut off by the
token limit, a statement listing every option, and a value or a restatement that needs the question
to decode ("The answer is 17." when (C) is 17). A row's `note` says which of these decided it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from selfimprove.prompts import rationale_of, target
from selfimprove.tasks import get_task
from selfimprove.tasks.answers import answer_marks

FIXTURE = Path(__file__).parent / "fixtures" / "real_completions.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]
ANSWERED = [(i, r) for i, r in enumerate(ROWS) if r.get("expected") is not None]


def _id(row: dict) -> str:
    return f"{row['task']}-{row['prompt_format']}-{row['decoding'].replace(' ', '_')}"


@pytest.mark.parametrize("row", ROWS, ids=[f"{i}-{_id(r)}" for i, r in enumerate(ROWS)])
def test_extraction_reads_what_a_person_reads(row):
    assert "expected" in row, f"row not labelled yet: add 'expected' by hand\n{row['completion']}"
    task = get_task(row["task"])
    got, expected = task.extract(row["completion"]), row["expected"]
    same = got is None if expected is None else got is not None and task.is_equivalent(got, expected)
    assert same, (f"{row['task']} ({row['prompt_format']}, {row['decoding']}): extracted {got!r}, "
                  f"a reader sees {expected!r} in:\n{row['completion']}")


def test_fixture_covers_every_task_and_both_kinds_of_prompt():
    per_task = Counter(r["task"] for r in ROWS)
    assert set(per_task) == {"gsm8k", "svamp", "aqua", "strategyqa", "arithmetic"}
    assert min(per_task.values()) >= 15
    formats = {r["prompt_format"] for r in ROWS}
    assert {"chat_cot_zeroshot", "plain"} <= formats  # the project's prompt and one that names no format
    assert 0 < len(ANSWERED) < len(ROWS)


@pytest.mark.parametrize("row", [r for _, r in ANSWERED], ids=[f"{i}-{_id(r)}" for i, r in ANSWERED])
def test_training_target_drops_the_final_statement_only(row):
    """The loop trains "<rationale_of(path)> The answer is X.": one final statement, the extracted one."""
    task = get_task(row["task"])
    rationale = rationale_of(row["completion"], task.answer_prefix)
    before = len(answer_marks(row["completion"]))
    assert len(answer_marks(rationale)) == max(before - 1, 0), rationale
    trained = target(rationale, row["expected"], "cot_zeroshot", task.answer_prefix)
    assert task.is_equivalent(task.extract(trained), row["expected"]), trained
