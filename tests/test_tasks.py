"""Table-driven tests of the built-in tasks: every gold label round-trips, extraction and equivalence
cases, garbage is None, exemplars, and the task table. Reads the shared data copies; writes nothing."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from selfimprove.records import Item
from selfimprove.tasks import TASKS, get_task, local_source

DATASET_TASKS = ["gsm8k", "svamp", "asdiv", "aqua", "strategyqa"]
SPLITS = [(name, split) for name in DATASET_TASKS for split in ("train", "test")]

_CACHE: dict[tuple[str, str], list[Item]] = {}


def load(name: str, split: str) -> list[Item]:
    if (name, split) not in _CACHE:
        _CACHE[name, split] = get_task(name).load(source=local_source(name), split=split)
    return _CACHE[name, split]


# ---------------------------------------------------------------- loading the shared copies

@pytest.mark.parametrize("name,split,count", [
    ("gsm8k", "train", 7473), ("gsm8k", "test", 1319),
    ("svamp", "train", 694), ("svamp", "test", 306),
    ("asdiv", "train", 1453), ("asdiv", "test", 640),
    ("aqua", "train", 254), ("aqua", "test", 254),  # train reads dev.json (no train split is shipped)
    ("aqua", "dev", 254),
    ("strategyqa", "train", 2061), ("strategyqa", "test", 229), ("strategyqa", "dev", 229),
])
def test_rows_per_split(name, split, count):
    items = get_task(name).load(source=local_source(name), split=split)
    assert len(items) == count
    assert len({it.id for it in items}) == count
    assert all(it.question and it.gold is not None for it in items)


@pytest.mark.parametrize("name", ["svamp", "asdiv"])
def test_carved_splits_are_disjoint_and_complete(name):
    task = get_task(name)
    train, test = load(name, "train"), load(name, "test")
    everything = task.load(source=local_source(name), split="all")
    assert not {it.id for it in train} & {it.id for it in test}
    assert {it.id for it in train} | {it.id for it in test} == {it.id for it in everything}


def test_limit_and_ids_are_stable():
    task = get_task("gsm8k")
    first = task.load(source=local_source("gsm8k"), split="test", limit=5)
    assert [it.id for it in first] == [f"gsm8k/test/{i}" for i in range(5)]
    assert first == task.load(source=local_source("gsm8k"), split="test", limit=5)


def test_question_formats():
    svamp = load("svamp", "train") + load("svamp", "test")
    chal1 = next(it for it in svamp if it.id == "svamp/chal-1")
    assert chal1.question == ("Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each pack "
                              "How much do you have to pay to buy each pack?")
    assert chal1.gold == "51"
    aqua = load("aqua", "train")[0]
    assert aqua.question.endswith("\nAnswer Choices: (A) 32400 (B) 6000 (C) 600 (D) 60000 (E) 10")
    assert aqua.gold == "A" and aqua.id == "aqua/dev/0"
    asdiv = {it.id: it for it in load("asdiv", "train") + load("asdiv", "test")}
    assert asdiv["asdiv/nluds-0001"].gold == "9"
    assert asdiv["asdiv/nluds-0001"].question.startswith("Seven red apples")
    assert load("strategyqa", "test")[0].gold == "no"


# ---------------------------------------------------------------- gold answers round-trip

def test_every_gsm8k_reference_solution_gives_its_gold():
    from selfimprove.tasks.sources import read_file

    task = get_task("gsm8k")
    for split in ("train", "test"):
        rows = read_file(local_source("gsm8k") / f"{split}.jsonl")
        items = load("gsm8k", split)
        assert len(rows) == len(items)
        for row, item in zip(rows, items):
            answer = task.extract(row.data["answer"])
            assert answer is not None and task.is_equivalent(answer, item.gold), row.origin


@pytest.mark.parametrize("name,split", SPLITS)
def test_every_gold_round_trips_through_an_answer_sentence(name, split):
    task = get_task(name)
    for item in load(name, split):
        answer = task.extract(f"Some reasoning with 12 and 7. {task.answer_prefix} {item.gold}.")
        assert answer is not None and task.is_equivalent(answer, item.gold), (item.id, item.gold, answer)


# ---------------------------------------------------------------- extraction

MATH_CASES = [
    ("The answer is 1,000.", "1000"),
    ("The answer is $1000.00.", "1000"),
    ("The answer is 1000.", "1000"),
    ("The answer is 1000", "1000"),
    ("The answer is 1,000.0", "1000"),
    ("The answer is -3.", "-3"),
    ("The answer is 0.5.", "0.5"),
    ("The answer is .5", "0.5"),
    ("The answer is 2.50 dollars.", "2.5"),
    ("The answer is 50%.", "50"),
    ("The answer is ３.", "3"),  # full-width digit
    ("The answer is €1,000.", "1000"),
    ("The answer is \u22125.", "-5"),  # unicode minus sign
    ("The answer is -$5.", "-5"),
    ("The answer is $\\$1{,}000$.", "1000"),
    ("The answer is \\boxed{\\frac{1}{2}}.", "0.5"),
    ("so \\boxed{\\dfrac{3}{4}}", "0.75"),
    ("The answer is 3/7.", "3/7"),
    ("The answer is **42**.", "42"),
    ("The answer is: 18 dollars", "18"),
    ("The final answer is 2.5 hours.", "2.5"),
    ("The answer is 5 + 3 = 8.", "8"),
    ("She has 3 apples and 4 pears, 7 in all. The answer is 7.", "7"),
    ("The answer is 5. Checking again, the answer is 7.", "7"),  # the last answer sentence wins
    ("The answer is 7.\nQ: Tom has 3 cats. How many?\nA: The answer is unclear", "7"),  # last with a number
    ("48/2 = 24 clips.\n#### 72", "72"),
    ("#### 1,234", "1234"),
    ("The answer is 12. \\boxed{13}", "12"),  # an answer sentence beats \boxed
    ("The answer is unknown. There are 5 apples.", None),  # the number is in the next sentence
    ("There are 5 apples and 6 pears.", None),  # no answer sentence: abstain, don't guess
    ("The answer is 1/0", None),
    ("", None),
    ("   ", None),
    # Forms real chat models write (more in tests/test_extract_real.py):
    ("**Answer:** 64", "64"),
    ("**The answer is 64**", "64"),
    ("**Answer**: $10,000", "10000"),
    ("Final answer: 2.5 hours", "2.5"),
    ("### Final Answer\nThe final answer is $\\boxed{64}$. I hope it is correct.", "64"),
    ("**Final Answer:**\n\n64", "64"),  # the answer on the line below its marker
    ("The answer is:\n\\[\n\\boxed{12}\n\\]", "12"),
    ("The answer is:\n1. First we add 2 and 3.", None),  # a list below: an explanation, not an answer
    ("so the answer is 3.", "3"),
    ("The answer is: 3", "3"),
    ("answer: 7. But the answer is 8.", "8"),  # the last statement wins, whatever its form
    ("The answer is 8. Answer: 9", "9"),
    ("Answer Choices: (A) 5 (B) 6", None),  # AQuA's options repeated, not an answer
    ("The answer to this question is 12.", "12"),
    ("The answer is 2 * 8 = 16.\nThe solution to the problem is 16 / 2 = 8 bolts.", "8"),
    ("The solution is to divide 12 by 3.", None),  # "is to": a method, not an answer
    # No answer statement: a bare number, or a finished sentence that concludes, states the answer.
    ("42", "42"),
    ("15 * 6 = 90.\n\nSo, Jack received 90 emails in the afternoon.", "90"),
    ("Therefore, the robe takes 8 + 4 = 12 bolts.", "12"),
    ("So she has 3 apples and 4 pears.", None),  # two numbers: which one?
    ("So, Kylar needs to pay $122", None),  # no full stop: maybe cut off by the token limit
    ("She has 4 pencils.", None),  # does not conclude: one more step
    ("The answer is unclear. So, Jack received 90 emails.", None),  # a statement we cannot read: no guessing
]


@pytest.mark.parametrize("text,expected", MATH_CASES)
def test_math_extract(text, expected):
    assert get_task("gsm8k").extract(text) == expected


CHOICE_CASES = [
    ("(B)", "B"), ("B)", "B"), ("b", "B"), ("B", "B"), ("  (d) ", "D"),
    ("The answer is (C) 600", "C"),
    ("The answer is (a).", "A"),
    ("The answer is C.", "C"),
    ("The answer is C: 600", "C"),
    ("The answer is option D", "D"),
    ("The answer is e)", "E"),
    ("The answer is (B). No wait, the answer is (D).", "D"),
    ("\\boxed{C}", "C"),
    ("The answer is $\\boxed{\\text{E}}$.", "E"),
    ("The answer is a train.", None),  # the article, not an option
    ("The answer is E's choice", None),
    ("The answer is 600.", None),  # the value, not the letter
    ("The answer is (F).", None),
    ("zzz", None), ("", None),
    ("Answer: C", "C"),
    ("**Answer:** (B) 6000", "B"),
    ("the correct option is D) 42", "D"),
    ("The correct choice is (e).", "E"),
    ("The correct answer is D: 15.", "D"),
    ("The answer is: 3", None),  # a value, not a letter
    ("Answer Choices: (A) 32400 (B) 6000\nThe answer is (B).", "B"),
    ("A) 40\n\nThe answer is: 40", "A"),  # an opening option line; the value alone names none
    ("(C) 17 is divisible by 9.", "C"),
    ("A) 4,000\nB) 4,200\nC) 4,500", None),  # the options listed, none chosen
    ("The answer is (A) 1.\nThe answer is (B) 2.\nThe answer is (C) 3.", None),  # every option "is the answer"
    ("The answer is 17.", None),  # a value: which option it is needs the question
]


@pytest.mark.parametrize("text,expected", CHOICE_CASES)
def test_choice_extract(text, expected):
    assert get_task("aqua").extract(text) == expected


YESNO_CASES = [
    ("So the answer is yes.", "yes"), ("The answer is No", "no"), ("The answer is: **Yes**", "yes"),
    ("True", "yes"), ("false.", "no"), ("Yes", "yes"),
    ("The answer is yes. Actually, the answer is no.", "no"),
    ("\\boxed{no}", "no"),
    ("The answer is maybe.", None), ("yesterday", None), ("Nothing to say", None), ("", None),
    ("**Answer:** No", "no"), ("Final answer: yes", "yes"), ("THE ANSWER IS YES.", "yes"),
    ("Answer: no. On reflection, the answer is yes.", "yes"),
    ("The answer to this question is \"no.\" Anchovies live in cold water.", "no"),
    ("No, no, no, no,", "no"), ("**Yes**\nBecause Rome is older.", "yes"), ("No one knows.", None),
    ("No, it is. The answer is 1000.", None),  # a statement that is not yes/no: no guessing from the opening
]


@pytest.mark.parametrize("text,expected", YESNO_CASES)
def test_yesno_extract(text, expected):
    assert get_task("strategyqa").extract(text) == expected


EQUIVALENT = [
    ("gsm8k", "0.5", "\\frac{1}{2}", True),
    ("gsm8k", "\\boxed{\\frac{1}{2}}", "0.5", True),
    ("gsm8k", "1000", "1,000", True),
    ("gsm8k", "1000", "1000.00", True),
    ("gsm8k", "3/7", "6/14", True),
    ("gsm8k", "3/7", "0.43", True),  # a repeating fraction vs the decimal rounded to its digits
    ("gsm8k", "1/3", "0.333", True),
    ("gsm8k", "3/7", "0.4", False),
    ("gsm8k", "1000000", "1000001", False),
    ("gsm8k", "-5", "5", False),
    ("gsm8k", "x+1", "1+x", True),
    ("gsm8k", "\\sqrt{4}", "2", True),
    ("gsm8k", "abc", "1", False),
    ("gsm8k", None, "1", False),
    ("aqua", "C", "C", True), ("aqua", "C", "(C)", True), ("aqua", "c", "C", True), ("aqua", "C", "D", False),
    ("aqua", None, "C", False),
    ("strategyqa", "yes", "yes", True), ("strategyqa", "yes", "True", True), ("strategyqa", "yes", "no", False),
    ("strategyqa", None, "no", False),
]


@pytest.mark.parametrize("name,a,b,expected", EQUIVALENT)
def test_is_equivalent(name, a, b, expected):
    task = get_task(name)
    assert task.is_equivalent(a, b) is expected
    assert task.is_equivalent(b, a) is expected


@pytest.mark.parametrize("name", DATASET_TASKS)
def test_garbage_is_none_never_an_exception(name):
    task = get_task(name)
    rng = random.Random(0)
    alphabet = "abcdefghijklmnopqrstuvwxyz ;:{}\\$%#()[]*/-.,\n\t\u00e9\u4e2d\u0416\U0001f600"
    for _ in range(500):
        garbage = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        assert task.extract(garbage) is None, garbage
    for weird in ["\\boxed{", "The answer is", "The answer is \\boxed{\\frac{", "#### ", "\x00\x01", "answer is ("]:
        assert task.extract(weird) is None


@pytest.mark.parametrize("name", DATASET_TASKS)
def test_unlucky_garbage_with_digits_does_not_raise(name):
    task = get_task(name)
    rng = random.Random(1)
    alphabet = "0123456789 .,/-$\\{}%The answer is####boxed(ABCDE)yesno\u2212\uff13"
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        answer = task.extract(text)
        assert answer is None or task.is_equivalent(answer, answer)


# ---------------------------------------------------------------- exemplars and the contract

@pytest.mark.parametrize("name,count", [("gsm8k", 8), ("svamp", 8), ("asdiv", 8), ("aqua", 4), ("strategyqa", 4)])
def test_exemplars_end_in_an_extractable_answer(name, count):
    task = get_task(name)
    exemplars = task.exemplars()
    assert len(exemplars) == count
    for ex in exemplars:
        assert ex.question and ex.rationale
        assert task.extract(f"{ex.rationale} {task.answer_prefix} {ex.answer}.") == ex.answer
    if name == "aqua":
        assert all("\nAnswer Choices: (A) " in ex.question for ex in exemplars)


def test_gsm8k_exemplars_are_wei_et_al():
    assert [ex.answer for ex in get_task("gsm8k").exemplars()] == ["6", "5", "39", "8", "9", "29", "33", "8"]


@pytest.mark.parametrize("name", DATASET_TASKS)
def test_contract_attributes(name):
    task = get_task(name)
    assert task.name == name
    assert task.answer_prefix == "The answer is"
    assert "/" in task.default_source  # a Hub id: owner/name
    assert local_source(name) is not None and local_source(name).exists()


def test_task_table():
    assert set(TASKS) >= {"gsm8k", "svamp", "asdiv", "aqua", "strategyqa", "arithmetic"}
    assert TASKS["arithmetic"] == "selfimprove.tasks.arithmetic:TASK"
    assert all(":" in spec for spec in TASKS.values())
    assert get_task("selfimprove.tasks.math:GSM8K") is get_task("gsm8k")
    assert local_source("no-such-task") is None


def test_task_modules_are_imported_lazily():
    # A missing or broken task module (arithmetic is written elsewhere) must only fail when asked for.
    code = "import sys, selfimprove.tasks; print(sorted(m for m in sys.modules if m.startswith('selfimprove.tasks.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "arithmetic" not in out and "math" not in out and "choice" not in out


@pytest.mark.parametrize("name,message", [
    ("gsm9k", "task.name: unknown name .gsm9k.; known: aqua, arithmetic, asdiv, equations, gsm8k"),
    ("selfimprove.tasks.no_such_module:TASK", "cannot import module"),
    ("selfimprove.tasks.math:NOPE", "has no attribute 'NOPE'"),
])
def test_get_task_errors(name, message):
    with pytest.raises(ValueError, match=message):
        get_task(name)
