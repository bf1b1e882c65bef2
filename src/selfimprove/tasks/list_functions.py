"""The embedded code domain: small list functions to write, from a seeded generator (nothing downloaded).

A problem asks for `def f(xs):` that applies a few steps to a list of integers, in order: keep some
numbers (greater/less than k, even, odd), change each number (add, subtract, multiply by k), reorder
(reverse, sort), cut (first k, drop k), and sometimes end by returning the sum or the count. The
docstring says the steps in words and gives three examples (`>>> f([4, 1, 5])` then `[10, 8]`);
the reference program writes one line per step:

    def f(xs):
        xs = [x for x in xs if x > 3]
        xs = [x * 2 for x in xs]
        xs = xs[::-1]
        return xs

Difficulty is the number of steps. The examples are part of the question (label-free tests); each
problem's hidden test checks the reference outputs on other lists and is used only to score.

`TASK.load(source)` takes a knob string "steps=3,n=200,seed=0" (steps may be a range "1-2").
"""

from __future__ import annotations

import random
import re
import zlib
from dataclasses import dataclass, replace

from selfimprove.execution.programs import HiddenTest
from selfimprove.records import Item
from selfimprove.tasks.code import CodeTask
from selfimprove.tasks.data import parse_knobs

# (kind, phrasings, code line); {k} is the step's number.
STEPS = {
    "gt": (["keep the numbers greater than {k}", "remove every number that is not above {k}",
            "keep only values bigger than {k}"], "xs = [x for x in xs if x > {k}]"),
    "lt": (["keep the numbers less than {k}", "remove every number that is not below {k}",
            "keep only values smaller than {k}"], "xs = [x for x in xs if x < {k}]"),
    "even": (["keep the even numbers", "remove the odd numbers"], "xs = [x for x in xs if x % 2 == 0]"),
    "odd": (["keep the odd numbers", "remove the even numbers"], "xs = [x for x in xs if x % 2 == 1]"),
    "add": (["add {k} to each number", "increase every number by {k}"], "xs = [x + {k} for x in xs]"),
    "sub": (["subtract {k} from each number", "decrease every number by {k}"], "xs = [x - {k} for x in xs]"),
    "mul": (["multiply each number by {k}", "make every number {k} times bigger"], "xs = [x * {k} for x in xs]"),
    "rev": (["reverse the list", "turn the list around"], "xs = xs[::-1]"),
    "sort": (["sort the list", "put the numbers in increasing order"], "xs = sorted(xs)"),
    "desc": (["sort the list from largest to smallest", "put the numbers in decreasing order"],
             "xs = sorted(xs, reverse=True)"),
    "head": (["keep the first {k} numbers", "keep only the first {k}"], "xs = xs[:{k}]"),
    "drop": (["drop the first {k} numbers", "remove the first {k}"], "xs = xs[{k}:]"),
}
ENDINGS = {  # a last step that returns a number instead of the list
    "sum": (["return their sum", "add them all up"], "return sum(xs)"),
    "len": (["return how many there are", "count them"], "return len(xs)"),
}
K_RANGE = {"gt": (1, 7), "lt": (3, 9), "add": (1, 5), "sub": (1, 5), "mul": (2, 4), "head": (1, 3), "drop": (1, 2)}
OPENING = ["Given a list of numbers, ", "Take a list of numbers: ", "For a list of numbers, "]
JOINERS = [", then ", ", and then ", "; then "]
HIDDEN_CALLS = 8
# Examples per docstring. With two, a program with a wrong number ("> 4" for "> 3") passed them about a
# quarter of the time in a pilot (kept programs 73% right); three make the question's own tests sharper.
EXAMPLES = 3


@dataclass(frozen=True)
class Problem:
    id: str
    question: str  # the stub: signature and docstring with examples
    program: str  # the reference solution
    steps: int
    hidden: tuple[tuple[str, str], ...]  # (call, expected repr): the hidden test, for scoring only


def _apply(kind: str, k: int | None, xs: list[int]):
    ops = {"gt": lambda: [x for x in xs if x > k], "lt": lambda: [x for x in xs if x < k],
           "even": lambda: [x for x in xs if x % 2 == 0], "odd": lambda: [x for x in xs if x % 2 == 1],
           "add": lambda: [x + k for x in xs], "sub": lambda: [x - k for x in xs], "mul": lambda: [x * k for x in xs],
           "rev": lambda: xs[::-1], "sort": lambda: sorted(xs), "desc": lambda: sorted(xs, reverse=True),
           "head": lambda: xs[:k], "drop": lambda: xs[k:], "sum": lambda: sum(xs), "len": lambda: len(xs)}
    return ops[kind]()


def _run(plan: list[tuple[str, int | None]], xs: list[int]):
    for kind, k in plan:
        xs = _apply(kind, k, xs)
    return xs


def _random_list(rng: random.Random) -> list[int]:
    return [rng.randint(0, 9) for _ in range(rng.randint(3, 6))]


def _words(plan: list[tuple[str, int | None]], rng: random.Random) -> str:
    """The docstring's sentence for `plan`, in words chosen by `rng`."""
    phrases = [rng.choice((STEPS.get(kind) or ENDINGS[kind])[0]).format(k=k) for kind, k in plan]
    joiner = rng.choice(JOINERS)
    return rng.choice(OPENING) + joiner.join(phrases) + "."


def generate_problem(rng: random.Random, steps: int, id: str) -> Problem:
    """A problem with `steps` steps whose examples show something (not every output empty)."""
    while True:
        kinds = [rng.choice([k for k in STEPS if k not in ("sort", "desc", "rev")] if i == 0 else list(STEPS))
                 for i in range(steps)]
        if rng.random() < 0.25 and steps > 1:
            kinds[-1] = rng.choice(list(ENDINGS))
        plan = [(kind, rng.randint(*K_RANGE[kind]) if kind in K_RANGE else None) for kind in kinds]
        inputs = [_random_list(rng) for _ in range(EXAMPLES + HIDDEN_CALLS)]
        outputs = [_run(plan, xs) for xs in inputs]
        shown = outputs[:len(inputs) - HIDDEN_CALLS]
        if any(o not in ([], 0) for o in shown) and len({repr(o) for o in outputs}) > 2:
            break
    text = _words(plan, rng)
    examples = "".join(f"    >>> f({xs!r})\n    {out!r}\n" for xs, out in zip(inputs, shown))
    question = f'def f(xs):\n    """{text}\n{examples}    """\n'
    lines = [(STEPS.get(kind) or ENDINGS[kind])[1].format(k=k) for kind, k in plan]
    if not lines[-1].startswith("return"):
        lines.append("return xs")
    program = "def f(xs):\n" + "".join(f"    {line}\n" for line in lines)
    hidden = tuple((f"f({xs!r})", repr(out)) for xs, out in zip(inputs[len(shown):], outputs[len(shown):]))
    return Problem(id=id, question=question, program=program, steps=steps, hidden=hidden)


def generate_problems(n: int, seed: int = 0, steps: tuple[int, ...] = (3,), prefix: str = "listfn") -> list[Problem]:
    rng = random.Random(seed)
    return [generate_problem(rng, rng.choice(steps), f"{prefix}-{seed}-{i}") for i in range(n)]


# Each step's code line as a pattern ({k} a number): how `describe` reads a program back into steps.
LINES = [(kind, re.compile(re.escape(line).replace(re.escape("{k}"), r"(\d+)") + "$"))
         for kind, (_, line) in {**STEPS, **ENDINGS}.items()]


def describe(program: str) -> str | None:
    """The docstring's sentence for a program written in the reference programs' lines (`def f(xs):`, one
    step a line, then `return xs` or an ending), in words chosen by the program's text; None for any other
    program. A proposed program the model wrote is asked in these words (acquisition), so the question says
    what the program does, read from its code, never from what the model says of it."""
    lines = [line.strip() for line in program.strip().splitlines()]
    if not lines or lines[0] != "def f(xs):" or any(not line for line in lines):
        return None
    returns_list = lines[-1] == "return xs"
    body = lines[1:-1] if returns_list else lines[1:]
    plan = []
    for n, line in enumerate(body):
        kind, match = next(((kind, m) for kind, pattern in LINES if (m := pattern.match(line))), (None, None))
        if kind is None or (kind in ENDINGS) != (not returns_list and n == len(body) - 1):
            return None  # not a step; an ending before the end; or the end neither returns xs nor ends
        plan.append((kind, int(match.group(1)) if match.groups() else None))
    return _words(plan, random.Random(zlib.crc32(program.encode()))) if plan else None


def hidden_test(problem: Problem) -> HiddenTest:
    """The problem's hidden test as HumanEval writes one: `check(candidate)` asserting reference outputs."""
    body = "".join(f"    assert candidate({call[2:-1]}) == {want}\n" for call, want in problem.hidden)
    return HiddenTest(problem.id, f"def check(candidate):\n{body}", "f")


def vocabulary() -> list[str]:
    """Every word the questions and programs use, for a word-level tokenizer (digits stay characters)."""
    text = " ".join(OPENING + JOINERS)
    for phrasings, line in list(STEPS.values()) + list(ENDINGS.values()):
        text += " " + " ".join(phrasings) + " " + line
    text += " def f xs return Solution Given"
    return sorted(set(re.findall(r"[A-Za-z]+", text.replace("{k}", " "))))


SPLIT_OFFSET = {"train": 0, "validation": 1, "test": 2}


@dataclass(frozen=True)
class Knobs:
    steps: tuple[int, ...] = (3,)
    n: int = 200
    seed: int = 0


def parse_source(source: str | None) -> Knobs:
    return replace(Knobs(), **parse_knobs(source, {"steps": tuple, "n": int, "seed": int}, "list_functions"))


def load_problems(source: str | None, split: str = "train", limit: int | None = None) -> list[Problem]:
    """The problems behind `TASK.load(source, split)`, with reference programs and hidden tests."""
    knobs = parse_source(source)
    n = min(knobs.n, limit) if limit is not None else knobs.n
    return generate_problems(n, knobs.seed * 10 + SPLIT_OFFSET.get(split, 3), knobs.steps, prefix=f"listfn-{split}")


class ListFunctionsTask(CodeTask):
    name = "list_functions"
    default_source = "steps=3,n=200,seed=0"
    grade_timeout_s = 2.0  # eight calls on short lists

    def load(self, source: str | None = None, split: str = "train", limit: int | None = None,
             fields=None) -> list[Item]:
        return [Item(id=p.id, question=p.question, gold=hidden_test(p).as_gold())
                for p in load_problems(source, split, limit)]

    def describe(self, program: str) -> str | None:
        return describe(program)


TASK = ListFunctionsTask()
