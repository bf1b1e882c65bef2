"""The synthetic domain: multi-step arithmetic word problems with exact answers (GSM8K-like).

A seeded generator writes a short story about one person's collection of things; every
sentence after the first changes the count by one operation (+, -, *, /), and the last asks
for the final count. Each problem comes with a chain-of-thought rationale, one equation per
operation, that ends "The answer is N." Nothing is downloaded: the embedded demo's base
model is trained on these problems, and its unlabeled pool and held-out set come from here.

Difficulty knobs (see `Knobs`): the number of operations (`steps`), the size of numbers
(`max_value` bounds every operand and every intermediate count), and the wording: many
templates per operation, names, things and friends, so no single phrasing can be memorised.

`TASK` satisfies the contract in `selfimprove.tasks.base`. Its `load(source)` takes either
None (the default knobs), a knob string such as "steps=3,max_value=30,n=500,seed=1"
(steps may be a range "2-3"), or the path of a JSONL file with question/answer columns.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from pathlib import Path

from selfimprove.records import Exemplar, Item
from selfimprove.tasks.base import Fields
from selfimprove.tasks.data import parse_knobs
from selfimprove.tasks.sources import column, read_file
from selfimprove.tasks.answers import extract_number

NAMES = [("Tom", "he", "him", "his"), ("Ann", "she", "her", "her"), ("Sam", "he", "him", "his"),
         ("Mia", "she", "her", "her"), ("Leo", "he", "him", "his"), ("Eva", "she", "her", "her"),
         ("Max", "he", "him", "his"), ("Zoe", "she", "her", "her"), ("Ben", "he", "him", "his"),
         ("Lily", "she", "her", "her"), ("Jack", "he", "him", "his"), ("Emma", "she", "her", "her")]
FRIENDS = ["{s} friend", "a neighbour", "the teacher", "{s} sister", "a classmate", "{s} uncle",
           "the shop", "a cousin"]  # {s} is the possessive pronoun, so "her sister" follows "Ann"
THINGS = ["apples", "marbles", "stickers", "books", "coins", "pencils", "cards", "shells",
          "stamps", "cookies", "toy cars", "flowers"]

# {N} name, {p}/{P} pronoun, {o} object pronoun, {s} possessive, {x} things, {f}/{F} friend,
# {b} operand.
START = ["{N} has {a} {x}.", "{N} starts with {a} {x}.", "{N} owns {a} {x}.",
         "There are {a} {x} in {N}'s box.", "At first {N} has {a} {x}.", "{N} collects {a} {x}."]
OPS = {
    "+": ["{P} buys {b} more.", "{F} gives {o} {b} more.", "{P} finds {b} more {x}.",
          "Then {p} gets {b} more from {f}.", "Later, {N} picks up another {b}.",
          "{P} receives {b} {x} as a gift.", "{N} wins {b} more {x} in a game."],
    "-": ["{P} gives {b} to {f}.", "{P} loses {b} of them.", "{F} takes {b} {x} from {o}.",
          "Then {p} sells {b}.", "{P} uses {b} {x}.", "Later, {N} throws away {b}.",
          "{N} trades away {b} {x}."],
    "*": ["Then {s} number of {x} grows {b} times.", "{P} ends up with {b} times as many {x}.",
          "{F} helps {o} get {b} times as many.", "Each one {p} has is swapped for {b} new ones.",
          "{N} makes the pile {b} times bigger."],
    "/": ["{P} splits them into {b} equal groups and keeps one group.",
          "{P} keeps only one of every {b}.", "{N} puts them into {b} equal bags and keeps one bag.",
          "Then {p} divides them into {b} equal piles and keeps a pile."],
}
QUESTION = ["How many {x} does {N} have now?", "How many {x} does {N} have in the end?",
            "How many {x} are left with {N}?", "What is the number of {x} {N} has at the end?",
            "How many {x} does {N} end up with?"]


@dataclass(frozen=True)
class Knobs:
    """How hard the generated problems are. The defaults are the demo's held-out difficulty."""

    steps: tuple[int, ...] = (3,)  # operations per problem, drawn uniformly from this tuple
    max_value: int = 30  # bound on every operand and intermediate count (the demo's difficulty)
    ops: str = "+-*/"  # which operations may appear
    templates: int = 0  # use only the first k templates per operation (0 = all): a wording knob


@dataclass(frozen=True)
class Problem:
    """One generated problem: the question, the worked rationale, and the exact answer."""

    id: str
    question: str
    rationale: str
    answer: int
    steps: int


def _pick(rng: random.Random, options: list[str], k: int) -> str:
    return rng.choice(options[:k] if k else options)


def _step(rng: random.Random, value: int, knobs: Knobs) -> tuple[str, int] | None:
    """One operation applied to `value` within the bounds, or None when none fits."""
    op = rng.choice(knobs.ops)
    if op == "+" and value < knobs.max_value - 1:
        return op, rng.randint(1, knobs.max_value - value)
    if op == "-" and value > 1:
        return op, rng.randint(1, value - 1)
    if op == "*":
        factors = [b for b in range(2, 6) if value * b <= knobs.max_value]
        return (op, rng.choice(factors)) if factors and value > 1 else None
    if op == "/":
        divisors = [b for b in range(2, 6) if value % b == 0]
        return (op, rng.choice(divisors)) if divisors else None
    return None


def generate_problem(rng: random.Random, steps: int, knobs: Knobs, id: str) -> Problem:
    """A problem with exactly `steps` operations; retries a step until one fits the bounds."""
    name, p, o, s = rng.choice(NAMES)
    friend = rng.choice(FRIENDS).format(s=s)
    slots = {"N": name, "p": p, "P": p.capitalize(), "o": o, "s": s, "x": rng.choice(THINGS),
             "f": friend, "F": friend[0].upper() + friend[1:]}
    value = rng.randint(2, knobs.max_value)
    sentences = [_pick(rng, START, knobs.templates).format(a=value, **slots)]
    lines = []
    while len(lines) < steps:
        step = _step(rng, value, knobs)
        if step is None:
            continue
        op, b = step
        new = {"+": value + b, "-": value - b, "*": value * b, "/": value // max(b, 1)}[op]
        sentences.append(_pick(rng, OPS[op], knobs.templates).format(b=b, **slots))
        lines.append(f"{value} {op} {b} = {new}.")
        value = new
    sentences.append(_pick(rng, QUESTION, knobs.templates).format(**slots))
    question = " ".join(sentences)
    rationale = " ".join(lines) + f" The answer is {value}."
    return Problem(id=id, question=question, rationale=rationale, answer=value, steps=steps)


def reasoning(problem: Problem) -> str:
    """The rationale without its closing "The answer is N." sentence."""
    return problem.rationale.rsplit(" The answer is", 1)[0]


def generate_problems(n: int, seed: int = 0, steps: tuple[int, ...] = (3,), max_value: int = 30,
                      ops: str = "+-*/", templates: int = 0, prefix: str = "arith") -> list[Problem]:
    """`n` problems drawn from a seeded generator; the same arguments give the same problems."""
    knobs = Knobs(steps=tuple(steps), max_value=max_value, ops=ops, templates=templates)
    rng = random.Random(seed)
    return [generate_problem(rng, rng.choice(knobs.steps), knobs, f"{prefix}-{seed}-{i}") for i in range(n)]


def vocabulary() -> list[str]:
    """Every word the generator can write, for a word-level tokenizer (digits stay single tokens)."""
    text = " ".join(START + QUESTION + FRIENDS + THINGS + sum(OPS.values(), []))
    text += " " + " ".join(" ".join(n) for n in NAMES) + " The answer is He She Then Question Answer"
    words = set(re.findall(r"[A-Za-z]+", re.sub(r"\{\w\}", " ", text)))
    return sorted(words | {w.capitalize() for w in words})


def _pattern(template: str) -> re.Pattern:
    """A template sentence as a regex: operands become number groups, names and things any words."""
    text = re.escape(template)
    text = text.replace(re.escape("{a}"), r"(\d+)").replace(re.escape("{b}"), r"(\d+)")
    text = re.sub(r"\\\{\w\\\}", r"[A-Za-z' ]+?", text)
    return re.compile(text + "$")


_START = [_pattern(t) for t in START]
_OPS = [(op, _pattern(t)) for op, ts in OPS.items() for t in ts]
_QUESTION = [_pattern(t) for t in QUESTION]
_SENTENCE = re.compile(r"[^.?]+[.?]")


def read_question(question: str) -> tuple[int, list[tuple[str, int, str]], str] | None:
    """(start value, [(op, operand, sentence)], question sentence) of a question in the generator's
    language, or None when it is not one (a sentence no template matches, no operation, no question)."""
    sentences = [s.strip() for s in _SENTENCE.findall(question)]
    if len(sentences) < 3 or "".join(_SENTENCE.findall(question)).strip() != question.strip():
        return None
    start = next((m for p in _START if (m := p.match(sentences[0]))), None)
    ask = sentences[-1] if any(p.match(sentences[-1]) for p in _QUESTION) else None
    if start is None or ask is None:
        return None
    ops = []
    for sentence in sentences[1:-1]:
        found = next(((op, int(m.group(1))) for op, p in _OPS if (m := p.match(sentence))), None)
        if found is None:
            return None
        ops.append((*found, sentence))
    return int(start.group(1)), ops, ask


def solve_question(question: str) -> int | None:
    """The exact answer of a question in the generator's language; None when it is not one, or when an
    operation leaves whole non-negative counts (the generator never divides unevenly or below zero)."""
    read = read_question(question)
    if read is None:
        return None
    value, ops, _ = read
    for op, b, _ in ops:
        if op == "/" and (b == 0 or value % b):
            return None
        value = {"+": value + b, "-": value - b, "*": value * b, "/": value // max(b, 1)}[op]
        if value < 0:
            return None
    return value


SPLIT_OFFSET = {"train": 0, "validation": 1, "test": 2}  # a split is a disjoint stream of seeds


def parse_source(source: str | None) -> tuple[Knobs, int, int]:
    """Knobs, problem count and seed from a string like "steps=2-3,max_value=60,n=500,seed=1"."""
    values = parse_knobs(source, {"steps": tuple, "max_value": int, "templates": int, "ops": str, "n": int,
                                  "seed": int}, "arithmetic")
    n, seed = values.pop("n", 1000), values.pop("seed", 0)
    return replace(Knobs(), **values), n, seed


def load_problems(source: str | None, split: str = "train", limit: int | None = None) -> list[Problem]:
    """The problems (with gold rationales) behind `TASK.load(source, split)`, for oracle baselines."""
    knobs, n, seed = parse_source(source)
    n = min(n, limit) if limit is not None else n
    seed = seed * 10 + SPLIT_OFFSET.get(split, 3)
    return generate_problems(n, seed, knobs.steps, knobs.max_value, knobs.ops, knobs.templates, prefix=f"arith-{split}")


def _load_jsonl(path: Path, limit: int | None, fields: Fields) -> list[Item]:
    """Questions from the user's own file (any format `sources.read_file` reads), each bad line or
    missing column named by file and line."""
    items = []
    for row in read_file(path, limit):
        gold = row.data.get(fields.answer) if fields.answer else None
        item_id = str(column(row, fields.id, "id", key=fields._key)) if fields.id else f"{path.stem}-{row.index}"
        items.append(Item(id=item_id, question=str(column(row, fields.question, "question", key=fields._key)),
                          gold=None if gold is None else canonical(str(gold))))
    return items


def canonical(number: str) -> str | None:
    """"1,200" -> "1200", "14.0" -> "14", "2.50" -> "2.5"; None when it is not a number."""
    try:
        value = float(number.replace(",", ""))
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return str(int(value)) if value == int(value) else repr(value)


class ArithmeticTask:
    """The task contract for the synthetic domain (see the module docstring for `source`)."""

    name = "arithmetic"
    default_source = "steps=3,max_value=30,n=1000,seed=0"
    answer_prefix = "The answer is"
    difficulty = ("steps", "max_value")  # the knobs a difficulty schedule may turn

    def load(self, source: str | None = None, split: str = "train", limit: int | None = None,
             fields: Fields | None = None) -> list[Item]:
        if source and (source.endswith(".jsonl") or Path(source).is_file()):
            return _load_jsonl(Path(source), limit, fields or Fields())
        problems = load_problems(source, split, limit)
        return [Item(id=p.id, question=p.question, gold=str(p.answer)) for p in problems]

    def extract(self, completion: str) -> str | None:
        """The number of the last answer statement, as the math tasks read it ("the answer is 7",
        "**Answer:** 7", "\\boxed{7}"), canonical; None when absent or not a decimal ("3/7")."""
        number = extract_number(completion or "")
        return None if number is None else canonical(number)

    def is_equivalent(self, a: str, b: str) -> bool:
        ca, cb = canonical(str(a)), canonical(str(b))
        return ca is not None and ca == cb

    def solve(self, question: str) -> str | None:
        """The exact answer of a question in the generator's language (a question the model wrote, say);
        None when it is not one. Diagnostics and screening only: never a training label."""
        answer = solve_question(question)
        return None if answer is None else str(answer)

    def easier_variants(self, question: str) -> list[str]:
        """Its sub-questions: the story cut after each earlier operation, asked the same way; longest first."""
        read = read_question(question)
        if read is None:
            return []
        first = _SENTENCE.findall(question)[0].strip()
        _, ops, ask = read
        return [" ".join([first, *(s for _, _, s in ops[:j]), ask]) for j in range(len(ops) - 1, 0, -1)]

    def exemplars(self) -> list[Exemplar]:
        """Four fixed worked examples (one per operation mix) for few-shot prompts."""
        problems = generate_problems(4, seed=12345, steps=(2, 3))
        # An exemplar's rationale stops before the answer sentence, which the prompt adds itself.
        return [Exemplar(question=p.question, rationale=reasoning(p), answer=str(p.answer)) for p in problems]


TASK = ArithmeticTask()
