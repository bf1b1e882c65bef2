"""Math word problems with a numeric answer: GSM8K, SVAMP and ASDiv.

Reads the datasets through `tasks.sources` and the 8 Wei et al. (2022) chain-of-thought exemplars
from `<shared data>/gsm8k_cot_exemplars/gsm8k_cot_8shot.jsonl`. Writes nothing.

Answers are canonical number strings: "1,000", "$1000.00", "1000." -> "1000"; "\\frac{1}{2}" -> "0.5";
a repeating fraction stays "3/7". Splits:
- gsm8k: train (7473) / test (1319).
- svamp: one set of 1000 (`SVAMP.json`): test = the ids whose sha256 falls in the lowest 30 of 100
  buckets, train = the rest (694/306 for the shared copy; stable under reordering and `limit`);
  split "all" gives every row.
  The Hub default (ChilleD/SVAMP) has its own 700/300 train/test split, used as is.
- asdiv: one set of 2305 (`asdiv.jsonl`, Hub: EleutherAI/asdiv "validation"), carved the same way
  (1453/640).
  The 212 rows whose answer is not one number (names, "Yes", times "3:30 p.m.", ratios "2:3",
  several numbers "8; 40") are skipped with a logged count, leaving 2093; the question is
  Body + " " + Question and the unit in the answer ("9 (apples)") is dropped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from selfimprove.records import Exemplar
from selfimprove.tasks.data import SHARED_DATA
from selfimprove.tasks.answers import as_fraction, canonical_number, extract_number, hash_spans
from selfimprove.tasks.sources import Dataset, DatasetTask

EXEMPLARS = SHARED_DATA / "gsm8k_cot_exemplars" / "gsm8k_cot_8shot.jsonl"
# ASDiv answers: one number, maybe negated in parentheses ("-(1/3)"), maybe a unit ("9 (apples)").
_ASDIV_ANSWER = re.compile(r"\s*(-?)\(?\s*([\d.,/]+)\s*\)?\s*(?:\([^()]*\))?\s*")


def numeric_gold(value: Any) -> str | None:
    """A gold label as a canonical number: a number, a numeric string, or a GSM8K solution ending "#### N"."""
    if isinstance(value, bool):
        return None
    text = str(value)
    spans = hash_spans(text)
    return canonical_number(spans[0] if spans else text)


def _rounded_equal(x: str, y: str) -> bool:
    """A repeating fraction equals a decimal rounded to its printed digits (3/7 == 0.43, 1/3 == 0.333)."""
    fx, fy = as_fraction(x), as_fraction(y)
    if fx is None or fy is None or "/" not in x or "." not in y:
        return False
    digits = len(y.split(".", 1)[1])
    return digits >= 2 and round(fx, digits) == fy


def numbers_equivalent(a: str | None, b: str | None) -> bool:
    """Exact canonical equality first (fast, covers nearly all votes), then math-verify for the rest."""
    if a is None or b is None:
        return False
    if a == b:
        return True
    ca, cb = canonical_number(a), canonical_number(b)
    if ca is not None and cb is not None:  # two plain numbers: decide exactly, no sympy needed
        return ca == cb or _rounded_equal(ca, cb) or _rounded_equal(cb, ca)
    from math_verify import parse, verify  # slow import; only for LaTeX or expressions

    def parsed(text: str) -> list:
        # No timeouts: math-verify's are signal based and raise outside the main thread.
        # Without math delimiters "1+x" parses as just "1", so read a bare answer as $...$ first.
        wrapped = parse(f"${text}$", parsing_timeout=None) if "$" not in text else []
        return wrapped or parse(text, parsing_timeout=None)

    try:
        return bool(verify(parsed(a), parsed(b), timeout_seconds=None))
    except Exception:  # a string sympy cannot handle is simply not equivalent
        return False


def load_exemplars(path: Path = EXEMPLARS) -> list[Exemplar]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Exemplar(question=r["question"], rationale=r["rationale"], answer=r["answer"]) for r in rows]


def _svamp_row(row: dict[str, Any]) -> dict[str, Any]:
    if "Body" not in row:  # already question/answer columns (a user's file)
        return row
    question = f"{str(row['Body']).strip()} {str(row.get('Question', '')).strip()}"
    return {"id": row.get("ID"), "question": question.strip(), "answer": row.get("Answer")}


def asdiv_answer(raw: Any) -> str | None:
    """ASDiv's answer as a canonical number ("9 (apples)" -> "9", "-(1/3)" -> "-1/3"), None if not one number."""
    m = _ASDIV_ANSWER.fullmatch(str(raw))
    return canonical_number(m[1] + m[2]) if m else None


def _asdiv_row(row: dict[str, Any]) -> dict[str, Any] | None:
    if "body" not in row:
        return row
    answer = asdiv_answer(row.get("answer", ""))
    if answer is None:
        return None  # not a one-number question (see the module docstring)
    question = f"{str(row['body']).strip()} {str(row.get('question', '')).strip()}"
    return {"id": row.get("id"), "question": question.strip(), "answer": answer}


_MATH = (numeric_gold, extract_number, numbers_equivalent, load_exemplars)
GSM8K = DatasetTask(Dataset(name="gsm8k", default_source="openai/gsm8k", default_config="main"), *_MATH)
SVAMP = DatasetTask(Dataset(name="svamp", default_source="ChilleD/SVAMP", native=_svamp_row, carve_test_percent=30),
                    *_MATH)
ASDIV = DatasetTask(Dataset(name="asdiv", default_source="EleutherAI/asdiv", native=_asdiv_row,
                            hf_splits={"train": "validation", "test": "validation", "all": "validation"},
                            carve_test_percent=30), *_MATH)
