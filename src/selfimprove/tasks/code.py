"""Code tasks: the question is a function to write, the answer is the program a completion writes.

A question is a Python stub: imports, maybe helpers, and the function to write (the last `def`, its
*entry point*) with a signature and a docstring whose examples (`>>> f([1, 2])` then `[2, 1]`, or
`f([1, 2]) == [2, 1]` / `➞` / `->` / `=>`) are part of the question, not a hidden label: they are
the label-free tests the gates run. Everything here reads text only; running programs is
`selfimprove.execution.programs` (always inside the sandbox).

- `extract_program(text)`: the program in a completion, from its last fenced block that defines a
  function or from bare code starting at the first `def`/`import`; prose after it is cut. Only
  definitions, imports and constant assignments are kept; top-level asserts and calls are the
  completion's own tests (`written_tests`). None when there is no function or nothing parses.
- `generated_calls(question, n, seed)`: extra inputs made by changing the docstring examples'
  arguments (seeded): what programs are clustered on besides the examples.
- `is_equivalent` compares programs by their syntax tree (formatting and comments aside): two texts
  that differ can still behave the same, which only execution tells; the vote method `behaviour`
  (`selfimprove.voting.behaviour`) clusters programs by what they do.
"""

from __future__ import annotations

import ast
import doctest
import random
import re
import zlib
from dataclasses import dataclass

from selfimprove.execution.programs import Example, HiddenTest, Limits, run_hidden_tests
from selfimprove.records import Exemplar, Item

FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
CODE_START = re.compile(r"^(?:def |async def |from \S+ import |import |class |@)", re.MULTILINE)
# "f(1, 2) == 3", "f(1, 2) ➞ 3", "f(1, 2) -> 3", "f(1, 2) => 3", "f(1, 2) should return 3"
INLINE_EXAMPLE = re.compile(r"^\s*(?:>>>\s*|assert\s+|for\s+|[*-]\s+)?(?P<call>[A-Za-z_]\w*\(.*\))\s*"
                            r"(?:==>|==|=>|➞|->|=|should return|returns?)\s*(?P<want>.+?)\s*$")
KEPT_NODES = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign,
              ast.AnnAssign)


def entry_point(question: str) -> str | None:
    """The function a question asks for: its last top-level `def`; None when the stub does not parse."""
    try:
        tree = ast.parse(question)
    except SyntaxError:
        return None
    names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return names[-1] if names else None


def _docstring(question: str, name: str) -> str:
    tree = ast.parse(question)
    node = next(n for n in reversed(tree.body) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                and n.name == name)
    return ast.get_docstring(node, clean=True) or ""


def _is_expression(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
        return True
    except SyntaxError:
        return False


def _is_literal(text: str) -> bool:
    try:
        ast.literal_eval(text)
        return True
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def docstring_examples(question: str) -> list[Example]:
    """The examples the entry point's docstring gives: doctest blocks first, else inline "call == value"
    lines. Only calls of the entry point whose call and expected value parse are kept."""
    name = entry_point(question)
    if name is None:
        return []
    doc = _docstring(question, name)
    found: list[Example] = []
    try:
        parsed = doctest.DocTestParser().get_examples(doc)
    except ValueError:  # inconsistent indentation in the docstring: fall back to inline examples
        parsed = []
    for ex in parsed:
        call, want = ex.source.strip(), ex.want.strip()
        if call.startswith(name + "(") and _is_expression(call) and want and _is_expression(want):
            found.append(Example(call, want))
    if not found:
        for line in doc.splitlines():
            m = INLINE_EXAMPLE.match(line)
            # Prose is loose ("tri(n) = 1 + n / 2, if n is even"): keep literal calls and literal values only.
            if m and m.group("call").startswith(name + "(") and _literal_arguments(m.group("call")) \
                    and _is_literal(want := m.group("want").rstrip(".").strip()):
                found.append(Example(m.group("call"), want))
    unique = list(dict.fromkeys(found))
    return unique


def _code_of(text: str) -> str | None:
    blocks = [b for b in FENCE.findall(text) if re.search(r"^\s*(?:async )?def ", b, re.MULTILINE)]
    if blocks:
        return blocks[-1]
    m = CODE_START.search(text)
    return text[m.start():] if m else None


def _parse_prefix(code: str) -> ast.Module | None:
    """The longest run of whole lines from the start that parses (prose after the code is cut)."""
    lines = code.splitlines()
    for end in range(len(lines), 0, -1):
        if end < len(lines) and lines[end - 1].strip() == "" and end > 1:
            continue  # the same module as the next longer prefix
        try:
            return ast.parse("\n".join(lines[:end]))
        except (SyntaxError, ValueError):
            continue
    return None


def _split(text: str) -> tuple[str, list[ast.stmt]] | None:
    code = _code_of(text or "")
    if code is None:
        return None
    code = code.expandtabs(4)
    tree = _parse_prefix(code)
    if tree is None or not any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in tree.body):
        return None
    lines = code.splitlines()
    kept = []
    for node in tree.body:
        if isinstance(node, KEPT_NODES) and not _is_call_assignment(node):
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            kept.append("\n".join(lines[first - 1:node.end_lineno]))
    return "\n\n".join(kept) + "\n", [n for n in tree.body if not isinstance(n, KEPT_NODES)]


def _is_call_assignment(node: ast.stmt) -> bool:
    """`result = f(3)` at top level is a test, not part of the program."""
    return isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(getattr(node, "value", None), ast.Call)


def extract_program(text: str) -> str | None:
    """The program a completion writes (see the module docstring); None when it writes none."""
    split = _split(text)
    return None if split is None else split[0]


def written_tests(text: str, name: str) -> list[Example]:
    """The completion's own tests of `name`: top-level `assert name(...) == value` (an input and its
    expected output) and bare `name(...)` / `print(name(...))` calls (an input only)."""
    split = _split(text)
    if split is not None:
        statements = split[1]
    else:  # tests alone, without a function: a reply to `tests_prompt`
        blocks = FENCE.findall(text or "")
        tree = _parse_prefix(("\n".join(blocks) if blocks else (text or "")).expandtabs(4))
        statements = tree.body if tree is not None else []
    found = []
    for node in statements:
        if isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1 \
                and isinstance(node.test.ops[0], ast.Eq) and _calls(node.test.left, name):
            found.append(Example(ast.unparse(node.test.left), ast.unparse(node.test.comparators[0])))
        elif isinstance(node, ast.Expr):
            call = node.value
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "print" \
                    and len(call.args) == 1:
                call = call.args[0]
            if _calls(call, name):
                found.append(Example(ast.unparse(call)))
    return list(dict.fromkeys(found))


def _calls(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name


# ------------------------------------------------------------------ generated inputs

def _mutate(value, rng: random.Random, depth: int = 0):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.choice([-3, -2, -1, 1, 2, 3, 5, 10]) if rng.random() < 0.7 else rng.randint(-5, 20)
    if isinstance(value, float):
        return round(value * rng.uniform(0.3, 1.7) + rng.uniform(-1, 1), 2)
    if isinstance(value, str):
        alphabet = sorted(set(value)) or list("abc")
        chars = list(value)
        move = rng.randrange(4)
        if move == 0 and chars:
            del chars[rng.randrange(len(chars))]
        elif move == 1:
            chars.insert(rng.randrange(len(chars) + 1), rng.choice(alphabet))
        elif move == 2 and len(chars) > 1:
            rng.shuffle(chars)
        else:
            chars = chars + chars[: rng.randint(0, len(chars))]
        return "".join(chars)
    if isinstance(value, (list, tuple)):
        items = list(value)
        move = rng.randrange(6)
        if move == 0 and items:
            del items[rng.randrange(len(items))]
        elif move == 1 and items:
            items.insert(rng.randrange(len(items) + 1), _mutate(rng.choice(items), rng, depth + 1))
        elif move == 2 and items:
            i = rng.randrange(len(items))
            items[i] = _mutate(items[i], rng, depth + 1)
        elif move == 3:
            rng.shuffle(items)
        elif move == 4 and items:
            items = [_mutate(x, rng, depth + 1) for x in items]
        else:
            items = items + [_mutate(x, rng, depth + 1) for x in items[: rng.randint(1, 3)]]
        return type(value)(items) if isinstance(value, tuple) else items
    if isinstance(value, dict) and value:
        key = rng.choice(list(value))
        return {**value, key: _mutate(value[key], rng, depth + 1)}
    return value


def _literal_arguments(call: str) -> tuple[str, list, dict] | None:
    try:
        node = ast.parse(call, mode="eval").body
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    except (SyntaxError, ValueError, TypeError, AttributeError, MemoryError, RecursionError):
        return None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or None in kwargs:
        return None
    return node.func.id, args, kwargs


def generated_calls(question: str, n: int, seed: int = 0) -> list[str]:
    """Up to `n` new calls of the entry point, each made by changing one example's literal arguments;
    seeded by the question text, so the same question always gets the same calls."""
    sources = [p for e in docstring_examples(question) if (p := _literal_arguments(e.call))]
    if not sources or n <= 0:
        return []
    rng = random.Random(zlib.crc32(question.encode()) + 7919 * seed)
    seen = {e.call for e in docstring_examples(question)}
    out: list[str] = []
    for _ in range(20 * n):
        name, args, kwargs = rng.choice(sources)
        if args and (rng.random() < 0.8 or not kwargs):
            i = rng.randrange(len(args))
            args = args[:i] + [_mutate(args[i], rng)] + args[i + 1:]
        elif kwargs:
            key = rng.choice(list(kwargs))
            kwargs = {**kwargs, key: _mutate(kwargs[key], rng)}
        parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
        call = f"{name}({', '.join(parts)})"
        if call not in seen and len(call) < 2000:
            seen.add(call)
            out.append(call)
            if len(out) == n:
                break
    return out


# ------------------------------------------------------------------ the task contract

CHAT_INSTRUCTION = "Complete this Python function. Reply with the whole function in a ```python block.\n\n"


def code_prompt(question: str, chat: bool = False) -> str:
    """What the model is asked: the stub and an opening for the function (plain), or an instruction (chat)."""
    return CHAT_INSTRUCTION + question if chat else f"{question.rstrip()}\n\n# Solution:\n"


def tests_prompt(question: str, chat: bool = False) -> str:
    """What the model is asked when it writes tests: asserts for the entry point (CodeT's test generation).
    In plain mode the reply continues "assert name(", which `written_tests` reads back with that prefix."""
    name = entry_point(question) or "f"
    if chat:
        return (f"{question}\n\nWrite five different `assert {name}(...) == ...` lines that test this function, "
                "in a ```python block.")
    return f"{question.rstrip()}\n\n# Tests:\nassert {name}("


class CodeTask:
    """The task contract for code; concrete tasks (HumanEval, the embedded list functions) say where
    questions come from. `Item.question` is the stub itself; `Item.gold` is the question's hidden test
    (`programs.HiddenTest.as_gold`; None when the source has none), which `grade` runs in the sandbox.
    Like every task's gold it is read only by scoring: `collect` strips it from the pool the loop sees.

    The questions are asked with `code_prompt` (the prompt the code model was trained on, not the LMSI
    formats), and a trusted path trains on its program alone (`training_target`)."""

    name = "code"
    default_source = ""
    answer_prefix = "The answer is"  # unused by code: a completion's answer is its program
    is_code = True  # preflight checks the sandbox for tasks that run programs
    grade_timeout_s = 10.0  # per hidden test run, as HumanEval's harness allows

    def load(self, source=None, split="train", limit=None, fields=None) -> list[Item]:
        raise NotImplementedError

    def extract(self, completion: str) -> str | None:
        return extract_program(completion)

    def is_equivalent(self, a: str, b: str) -> bool:
        if a == b:
            return True
        try:
            return ast.dump(ast.parse(a)) == ast.dump(ast.parse(b))
        except (SyntaxError, ValueError, TypeError, RecursionError):
            return False

    def exemplars(self) -> list[Exemplar]:
        return []

    def prompt(self, question: str, chat: bool) -> str:
        return code_prompt(question, chat)

    def training_target(self, completion: str, answer: str) -> str:
        """The program: what `train_code_base` and `benchmarks/code_evidence.py` train on after the prompt."""
        return answer

    def grade(self, jobs: list[tuple[str, str | None, str]]) -> list[bool]:
        """For each (question, program, gold hidden test): does the program pass it, in the sandbox?"""
        runnable = [(n, (q, a, HiddenTest.from_gold("", g))) for n, (q, a, g) in enumerate(jobs) if a is not None]
        ok = run_hidden_tests([j for _, j in runnable], Limits(timeout_s=self.grade_timeout_s))
        out = [False] * len(jobs)
        for (n, _), passed in zip(runnable, ok):
            out[n] = passed
        return out


@dataclass(frozen=True)
class Probe:
    """The calls one question's programs are run on: the docstring examples first, then the rest."""

    examples: tuple[Example, ...]
    written: tuple[Example, ...]
    generated: tuple[str, ...]

    @property
    def calls(self) -> tuple[str, ...]:
        return tuple(e.call for e in self.examples + self.written) + self.generated


def probe_for(question: str, texts: list[str], extra_inputs: int, seed: int, written_tests_cap: int) -> Probe:
    """The calls for `question`; `texts` are its sampled completions (their own written tests)."""
    name = entry_point(question)
    examples = tuple(docstring_examples(question))
    known = {e.call for e in examples}
    written: list[Example] = []
    for text in texts:
        for t in written_tests(text, name) if name else []:
            if t.call not in known and len(written) < written_tests_cap:
                known.add(t.call)
                written.append(t)
    generated = tuple(c for c in generated_calls(question, extra_inputs, seed) if c not in known)
    return Probe(examples, tuple(written), generated)
