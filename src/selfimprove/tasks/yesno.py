"""Yes/no questions: StrategyQA.

Reads the dataset through `tasks.sources` (local `strategyqa/` train.json/dev.json, JSON arrays
with qid/question/answer (bool); Hub default ChilleD/StrategyQA). Writes nothing.

Answers are "yes" or "no" ("true"/"false" are read as yes/no). Splits: the local copy is the
authors' 90/10 split of the official train set into train (2061) and dev (229); split "test"
reads dev.json there, with a logged note (the official test labels are hidden). On the Hub,
ChilleD/StrategyQA has train/test and "dev" maps to its "test".
"""

from __future__ import annotations

import re
from typing import Any

from selfimprove.records import Exemplar
from selfimprove.tasks.answers import answer_spans, boxed_spans, normalise_text
from selfimprove.tasks.sources import Dataset, DatasetTask

_WORDS = {"yes": "yes", "true": "yes", "no": "no", "false": "no"}
_FIRST_WORD = re.compile(r"[\W_]*(yes|no|true|false)\b", re.IGNORECASE)
# "No, ...", "Yes.\n...", "**No**: ..."; not "No one knows" or "Nothing".
_OPENING = re.compile(r"[\s*_#>]*(yes|no|true|false)[*_]*(?:[,.!;:]|\s*\n|\s*$)", re.IGNORECASE)


def yes_no(value: Any) -> str | None:
    """A gold label or a short answer as "yes"/"no": True, "Yes", "false" ...; None otherwise."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    m = re.fullmatch(r"[\s*]*(yes|no|true|false)[\s*.!]*", normalise_text(str(value)), re.IGNORECASE)
    return _WORDS[m[1].lower()] if m else None


def extract_yes_no(completion: str) -> str | None:
    """The last answer statement with yes/no ("The answer is no", "**Answer:** Yes"), else the last
    \\boxed{yes}; with neither, a completion that is only yes/no or opens with one ("No, because ...")."""
    statements = answer_spans(completion) + boxed_spans(completion)
    for span in statements:
        m = _FIRST_WORD.match(normalise_text(span).replace("\\text{", ""))
        if m:
            return _WORDS[m[1].lower()]
    if statements:
        return None  # it stated an answer that is not yes/no ("The answer is 1000."): don't guess
    m = _OPENING.match(normalise_text(completion))
    return _WORDS[m[1].lower()] if m else yes_no(completion)


def _strategyqa_row(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row.get("qid"), "question": row.get("question"), "answer": row.get("answer")}


# Written for this project (not taken from StrategyQA).
EXEMPLARS = [
    Exemplar(question="Is it possible to walk from France to Spain without crossing water?",
             rationale="France and Spain share a land border along the Pyrenees mountains. So a person can walk "
                       "from one country to the other on land.",
             answer="yes"),
    Exemplar(question="Could a penguin ride the subway in Antarctica?",
             rationale="A subway is an underground railway built in a large city. Antarctica has no cities and "
                       "no railways. So there is no subway in Antarctica to ride.",
             answer="no"),
    Exemplar(question="Could one person read every book in a large public library in a week?",
             rationale="A large public library holds hundreds of thousands of books. Even a fast reader "
                       "finishes about one book a day, which is seven books in a week.",
             answer="no"),
    Exemplar(question="Did the Roman Empire exist before the printing press was invented?",
             rationale="The Roman Empire began in 27 BC. Gutenberg built his printing press around 1440 AD, "
                       "long after that.",
             answer="yes"),
]


def same_yes_no(a: str, b: str) -> bool:
    return a is not None and b is not None and yes_no(a) is not None and yes_no(a) == yes_no(b)


STRATEGYQA = DatasetTask(Dataset(name="strategyqa", default_source="ChilleD/StrategyQA", native=_strategyqa_row,
                                 hf_splits={"dev": "test"}, dir_splits={"test": "dev"}),
                         yes_no, extract_yes_no, same_yes_no, lambda: EXEMPLARS)
