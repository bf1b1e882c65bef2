"""rationale_of agrees with the extractors on where the final answer statement starts. Writes nothing."""

from __future__ import annotations

import pytest

from selfimprove.prompts import rationale_of, target
from selfimprove.tasks import get_task
from selfimprove.tasks.answers import answer_marks

RATIONALES = [
    ("5 + 3 = 8. The answer is 8.", "5 + 3 = 8."),
    ("Let's think step by step. 5 + 3 = 8. The answer is 8.", "5 + 3 = 8."),
    ("5 + 3 = 8. So the answer is 8.", "5 + 3 = 8."),  # lower case, with its lead-in
    ("5 + 3 = 8.\nTherefore, the final answer is: 8", "5 + 3 = 8."),
    ("5 + 3 = 8, so the answer is 8", "5 + 3 = 8."),  # cut inside a sentence: reasoning kept, full stop added
    ("5 + 3 = 8.\n\n**Answer:** 8", "5 + 3 = 8."),
    ("5 + 3 = 8.\n\n**Final Answer**: 8", "5 + 3 = 8."),
    ("It costs 5 + 3 = 8 dollars.\nAnswer: $8", "It costs 5 + 3 = 8 dollars."),
    ("Option D fits. Thus, the correct option is D) 42", "Option D fits."),
    ("The answer is 5. Checking again, the answer is 7.", "The answer is 5. Checking again."),  # the last one
    ("48/2 = 24 clips.\n#### 72", "48/2 = 24 clips."),
    ("She has 8 in all.\n\\[\n\\boxed{8}\n\\]", "She has 8 in all."),
    ("So the total is $\\boxed{8}$.", ""),  # the whole sentence is the answer statement
    ("The answer is 8.", ""),
    ("There are 5 apples and 6 pears.", "There are 5 apples and 6 pears."),  # no statement: all reasoning
]


@pytest.mark.parametrize("text,expected", RATIONALES)
def test_rationale_of(text, expected):
    assert rationale_of(text) == expected


def test_a_task_prefix_of_its_own_is_a_marker_too():
    assert rationale_of("2 * 4 = 8. Result: 8", "Result:") == "2 * 4 = 8."
    assert rationale_of("2 * 4 = 8. Result: 8") == "2 * 4 = 8. Result: 8"


@pytest.mark.parametrize("text", [t for t, _ in RATIONALES])
def test_training_target_states_the_extracted_answer_once(text):
    task = get_task("gsm8k")
    answer = task.extract(text)
    if answer is None:
        return
    rationale = rationale_of(text)
    assert len(answer_marks(rationale)) == max(len(answer_marks(text)) - 1, 0), rationale  # only the last one goes
    assert task.extract(target(rationale, answer, "cot_zeroshot")) == answer
