"""Multiple-choice questions with options A-E: AQuA-RAT.

Reads the dataset through `tasks.sources` (local `aqua_rat/` dev.json/test.json, JSON lines with
question/options/rationale/correct; Hub default deepmind/aqua_rat "raw"). Writes nothing.

The question shown to the model ends with its options: "...\\nAnswer Choices: (A) 32400 (B) 6000 ...".
Answers are one capital letter. Splits: the local copy has dev and test only (AQuA's 97k train
file is not redistributed), so split "train" reads dev.json there, with a logged note; on the Hub
"train" is the real train split and "dev" maps to "validation".
"""

from __future__ import annotations

import re
from typing import Any

from selfimprove.records import Exemplar
from selfimprove.tasks.answers import answer_spans, boxed_spans, normalise_text
from selfimprove.tasks.sources import Dataset, DatasetTask

_OPTION = re.compile(r"\s*\(?\s*([A-Ea-e])\s*\)\s*(.*)", re.DOTALL)

# In the order tried on the text after "The answer is"; the first that matches wins.
_LETTER_PATTERNS = (
    re.compile(r"\(\s*([A-Ea-e])\s*\)"),  # "(C)", "(c) 600"
    re.compile(r"([A-Ea-e])\s*\)"),  # "C)", "c)"
    re.compile(r"(?:option|choice)\s*\(?\s*([A-Ea-e])(?![\w'’])", re.IGNORECASE),  # "option C"
    re.compile(r"([A-E])(?![\w'’])"),  # "C", "C: 600"; not "An", not "E's"
    re.compile(r"([a-e])[\s.!]*"),  # a lone lower-case letter, "b." (not the article in "a train")
)


# A line that opens with an option: "A) $61", "(C) 17 is ...", "**B)** 6000".
_OPENING = re.compile(r"[\s*_]*\(?([A-E])\)[*_]*(?:\s|$)")


def find_letter(span: str) -> str | None:
    """The option letter at the start of an answer span, upper-cased, or None."""
    span = normalise_text(span).strip().lstrip("*:$ ").replace("\\text{", "").replace("}", "")
    for i, pattern in enumerate(_LETTER_PATTERNS):
        m = pattern.fullmatch(span) if i == len(_LETTER_PATTERNS) - 1 else pattern.match(span)
        if m:
            return m[1].upper()
    return None


def extract_letter(completion: str) -> str | None:
    """The last answer statement with a letter ("The answer is (C)", "Answer: C", "the correct option
    is D) 42"), else the last \\boxed{X}, else a completion that is only a letter, else an opening
    option line ("A) 40\n\nThe answer is: 40": the value alone names no option).

    Statements naming three or more different options list them all ("The answer is (A) ...
    The answer is (B) ..."): that is no answer, None.
    """
    letters = [letter for letter in map(find_letter, answer_spans(completion)) if letter is not None]
    if len(set(letters)) >= 3:
        return None
    for letter in letters + [find_letter(span) for span in boxed_spans(completion)]:
        if letter is not None:
            return letter
    text = normalise_text(completion)
    m = re.fullmatch(r"\s*\(?([A-Ea-e])\)?[.\s]*", text)
    if m:
        return m[1].upper()
    lines = [line for line in text.splitlines() if line.strip()]
    opening = [_OPENING.match(line) for line in lines[:2]] + [None]
    return opening[0][1] if opening[0] and not opening[1] else None  # not a list of the options


def letter_gold(value: Any) -> str | None:
    m = re.fullmatch(r"\s*\(?([A-Ea-e])\)?\s*", str(value))
    return m[1].upper() if m else None


def with_options(question: str, options: list[str]) -> str:
    """AQuA's question plus its options as one line: "Answer Choices: (A) 32400 (B) 6000 ..."."""
    shown = []
    for option in options:
        m = _OPTION.match(str(option))
        shown.append(f"({m[1].upper()}) {m[2].strip()}" if m else str(option).strip())
    return f"{question.strip()}\nAnswer Choices: {' '.join(shown)}"


def _aqua_row(row: dict[str, Any]) -> dict[str, Any]:
    if "options" not in row:
        return row
    return {"question": with_options(str(row.get("question", "")), list(row["options"])),
            "answer": row.get("correct", row.get("answer"))}


# Written for this project (not taken from AQuA), one per letter A-D.
EXEMPLARS = [
    Exemplar(question="A shop sells pencils at 3 for $1. How much do 24 pencils cost?\n"
                      "Answer Choices: (A) $6 (B) $8 (C) $9 (D) $12 (E) $24",
             rationale="24 pencils are 24 / 3 = 8 groups of 3 pencils. Each group costs $1, so 24 pencils "
                       "cost 8 * $1 = $8.",
             answer="B"),
    Exemplar(question="If 2x + 5 = 17, what is the value of x?\n"
                      "Answer Choices: (A) 4 (B) 5 (C) 6 (D) 7 (E) 11",
             rationale="Subtract 5 from both sides: 2x = 12. Divide both sides by 2: x = 6.",
             answer="C"),
    Exemplar(question="A train travels 180 km in 3 hours. At the same speed, how far does it travel in 5 hours?\n"
                      "Answer Choices: (A) 240 km (B) 270 km (C) 280 km (D) 300 km (E) 360 km",
             rationale="The speed is 180 / 3 = 60 km per hour. In 5 hours the train travels 60 * 5 = 300 km.",
             answer="D"),
    Exemplar(question="What is 15% of 240?\nAnswer Choices: (A) 36 (B) 30 (C) 32 (D) 34 (E) 24",
             rationale="10% of 240 is 24 and 5% of 240 is half of that, 12. So 15% of 240 is 24 + 12 = 36.",
             answer="A"),
]


def same_letter(a: str, b: str) -> bool:
    return a is not None and b is not None and letter_gold(a) is not None and letter_gold(a) == letter_gold(b)


AQUA = DatasetTask(Dataset(name="aqua", default_source="deepmind/aqua_rat", default_config="raw", native=_aqua_row,
                           hf_splits={"dev": "validation"}, dir_splits={"train": "dev"}),
                   letter_gold, extract_letter, same_letter, lambda: EXEMPLARS)
