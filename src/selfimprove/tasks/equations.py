"""The checkable domain: linear equations in one unknown, whose answers are verified by substitution.

"Solve for x: 3x + 5 = 20." A proposed answer can be checked without any label: put it in for x and
see whether both sides agree. That is the task's own verifier (`check`), the analogue for equations of
running a program's unit tests, and what lets a weak model's vote pick the right answer out of its
samples when its mistakes are wrong operations with correct arithmetic ("subtract 5: 3x = 25").

A seeded generator writes the equations. Difficulty knobs: `steps` (1: "x + b = c", "x - b = c",
"ax = c"; 2: "ax + b = c", "ax - b = c"; 3: "a(x + b) = c", "a(x - b) = c") and `max_value` (the
bound on the solution x and on b; the coefficient a is 2-9). Every solution is a whole number from 1 to
`max_value`; "ax - b = c" may have a negative c.
`load(source)` takes a knob string such as "steps=1-2,max_value=10,n=500,seed=1" or a JSONL file with
question/answer columns (any equation in one unknown that sympy can read, such as "2(y - 3) = 3y/2").
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from selfimprove.records import Exemplar, Item
from selfimprove.tasks.arithmetic import SPLIT_OFFSET, _load_jsonl, canonical
from selfimprove.tasks.answers import extract_number
from selfimprove.tasks.base import Fields
from selfimprove.tasks.data import parse_knobs

ASK = ["Solve for x: {eq}.", "Find x if {eq}.", "What value of x makes {eq} true?", "Solve the equation {eq}.",
       "Find the number x such that {eq}."]


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    rationale: str  # the worked steps, without the closing "The answer is N."
    answer: int
    steps: int


def _equation(rng: random.Random, steps: int, max_value: int) -> tuple[str, str, int]:
    """(equation, worked steps, solution) of one problem with `steps` inverse operations."""
    x, a, b = rng.randint(1, max_value), rng.randint(2, 9), rng.randint(1, max_value)
    form = rng.choice({1: ["x+", "x-", "ax"], 2: ["ax+", "ax-"], 3: ["a(x+)", "a(x-)"]}[steps])
    if form in ("x-", "a(x-)"):
        b = rng.randint(1, max(1, x - 1))  # keep x - b >= 0
    if form == "x+":
        c = x + b
        return f"x + {b} = {c}", f"Subtract {b} from both sides: x = {c} - {b} = {x}.", x
    if form == "x-":
        c = x - b
        return f"x - {b} = {c}", f"Add {b} to both sides: x = {c} + {b} = {x}.", x
    if form == "ax":
        c = a * x
        return f"{a}x = {c}", f"Divide both sides by {a}: x = {c} / {a} = {x}.", x
    if form in ("ax+", "ax-"):
        sign, c = ("+", a * x + b) if form == "ax+" else ("-", a * x - b)
        undo, inner = ("Subtract", c - b) if sign == "+" else ("Add", c + b)
        where = "from" if sign == "+" else "to"
        return (f"{a}x {sign} {b} = {c}",
                f"{undo} {b} {where} both sides: {a}x = {c} {'-' if sign == '+' else '+'} {b} = {inner}. "
                f"Divide both sides by {a}: x = {inner} / {a} = {x}.", x)
    sign = "+" if form == "a(x+)" else "-"
    inner = x + b if sign == "+" else x - b
    c = a * inner
    return (f"{a}(x {sign} {b}) = {c}",
            f"Divide both sides by {a}: x {sign} {b} = {c} / {a} = {inner}. "
            f"{'Subtract' if sign == '+' else 'Add'} {b}: x = {inner} {'-' if sign == '+' else '+'} {b} = {x}.", x)


def generate_problems(n: int, seed: int = 0, steps: tuple[int, ...] = (2,), max_value: int = 10,
                      prefix: str = "eq") -> list[Problem]:
    """`n` problems from a seeded generator; the same arguments give the same problems."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.choice(steps)
        equation, worked, x = _equation(rng, k, max_value)
        out.append(Problem(f"{prefix}-{seed}-{i}", rng.choice(ASK).format(eq=equation), worked, x, k))
    return out


def parse_source(source: str | None) -> tuple[tuple[int, ...], int, int, int]:
    """(steps, max_value, n, seed) from a string like "steps=1-2,max_value=10,n=500,seed=1"."""
    values = parse_knobs(source, {"steps": tuple, "max_value": int, "n": int, "seed": int}, "equations")
    steps = tuple(values.get("steps", (2,)))
    if not steps or not set(steps) <= {1, 2, 3}:
        raise ValueError(f"equations source {source!r}: steps must be within 1-3 (got {steps})")
    return steps, values.get("max_value", 10), values.get("n", 1000), values.get("seed", 0)


def load_problems(source: str | None, split: str = "train", limit: int | None = None) -> list[Problem]:
    """The problems (with gold rationales) behind `TASK.load(source, split)`, for oracle baselines."""
    steps, max_value, n, seed = parse_source(source)
    n = min(n, limit) if limit is not None else n
    return generate_problems(n, seed * 10 + SPLIT_OFFSET.get(split, 3), steps, max_value, prefix=f"eq-{split}")


# One side of an equation: numbers, one-letter unknowns (not inside a word), operators and brackets.
_SIDE = r"(?:\s*(?:\d+(?:\.\d+)?|(?<![A-Za-z])[a-z](?![A-Za-z])|[-+*/×÷·−()]))+"
_EQUATION = re.compile(rf"({_SIDE})\s*=\s*({_SIDE})")
_UNKNOWN_IS = re.compile(r"(?<![A-Za-z])[a-z]\s*=\s*(-?\d+(?:\.\d+)?)(?!\s*[-+*/×÷·(\d])")


@lru_cache(maxsize=4096)
def read_equation(question: str):
    """(lhs, rhs, unknown) as sympy objects for the one-unknown equation a question states; None when it
    states none that sympy can read, or several (a system, or givens such as "a = 2": then an answer
    cannot be checked by substituting it into one of them)."""
    from sympy.parsing.sympy_parser import (implicit_multiplication_application, parse_expr,
                                            standard_transformations)

    transformations = standard_transformations + (implicit_multiplication_application,)
    found = []
    for m in _EQUATION.finditer(question):
        sides = [s.strip().replace("×", "*").replace("÷", "/").replace("·", "*").replace("−", "-")
                 for s in m.groups()]
        try:
            lhs, rhs = (parse_expr(s, transformations=transformations, evaluate=True) for s in sides)
        except Exception:  # sympy's parser raises many kinds (SyntaxError, TokenError, TypeError...)
            continue
        unknowns = (lhs - rhs).free_symbols
        given = any(side.is_Symbol for side in (lhs, rhs)) and any(side.is_number for side in (lhs, rhs))
        found.append((lhs, rhs, unknowns.pop()) if len(unknowns) == 1 and not given else None)
    return found[0] if len(found) == 1 else None


def check_answer(question: str, answer: str | None) -> bool | None:
    """Whether `answer` satisfies the equation `question` states (substitution, no label); None when the
    question states no equation this can read."""
    read = read_equation(question)
    if read is None:
        return None
    if answer is None:
        return False
    from sympy import Rational, simplify

    lhs, rhs, unknown = read
    try:
        value = Rational(answer)
    except (TypeError, ValueError):
        return False
    return simplify(lhs.subs(unknown, value) - rhs.subs(unknown, value)) == 0


class EquationsTask:
    """The task contract for linear equations (see the module docstring for `source`)."""

    name = "equations"
    default_source = "steps=1-2,max_value=10,n=1000,seed=0"
    answer_prefix = "The answer is"
    difficulty = ("steps", "max_value")

    def load(self, source: str | None = None, split: str = "train", limit: int | None = None,
             fields: Fields | None = None) -> list[Item]:
        if source and (source.endswith(".jsonl") or Path(source).is_file()):
            return _load_jsonl(Path(source), limit, fields or Fields())
        return [Item(id=p.id, question=p.question, gold=str(p.answer)) for p in load_problems(source, split, limit)]

    def extract(self, completion: str) -> str | None:
        """The number of the last answer statement ("The answer is 5", "\\boxed{5}"), else of the last
        "x = 5" that ends a line of working; canonical; None when there is neither."""
        number = extract_number(completion or "")
        if number is None:
            found = _UNKNOWN_IS.findall(completion or "")
            number = found[-1] if found else None
        return None if number is None else canonical(number)

    def is_equivalent(self, a: str, b: str) -> bool:
        ca, cb = canonical(str(a)), canonical(str(b))
        return ca is not None and ca == cb

    def check(self, question: str, answer: str | None) -> bool | None:
        """The task's label-free verifier: does `answer` satisfy the question's equation?"""
        return check_answer(question, answer)

    def solve(self, question: str) -> str | None:
        """The exact solution of the question's equation, when it has exactly one; diagnostics and
        screening of written questions only, never a training label."""
        read = read_equation(question)
        if read is None:
            return None
        from sympy import solve

        lhs, rhs, unknown = read
        roots = solve(lhs - rhs, unknown)
        return canonical(str(float(roots[0]))) if len(roots) == 1 and roots[0].is_real else None

    def exemplars(self) -> list[Exemplar]:
        """Four fixed worked examples, one of each kind of step, for few-shot prompts."""
        problems = [generate_problems(1, seed=12345 + i, steps=(s,))[0] for i, s in enumerate((1, 2, 2, 3))]
        return [Exemplar(question=p.question, rationale=p.rationale, answer=str(p.answer)) for p in problems]


TASK = EquationsTask()
