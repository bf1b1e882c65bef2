"""External verifiers: checks that do not trust the model. Each gate reads only the sample's text.

- `equivalent_to_majority`: the sample's answer equals the majority under the task's own
  equivalence ("0.5" and "1/2"), where the `majority` gate compares strings.
- `arithmetic`: re-computes every "a op b = c" written in the rationale ("3 + 4 = 7",
  "1,200 × 3 = 3,600", "12 ÷ 4 = 3"); one wrong line fails the path.
- `grounded`: every number the rationale calculates with is given in the question or was
  computed in an earlier line, and (with `use_all`) every number in the question is used: a
  path that invents a quantity, misreads one or skips a step fails.
- `code_tests`: runs the candidate's code followed by the question's tests in the sandbox.
- `satisfies`: the task's own label-free check of an answer against its question (an equation's
  answer put back in for the unknown).
"""

from __future__ import annotations

import ast
import operator
import re
from collections import Counter
from fractions import Fraction

from selfimprove.gates.base import NEEDS_VOTE, Candidate, GateContext, Verdict
from selfimprove.plugins import Plugin


def equivalent_to_majority(context: GateContext):
    """Keep paths whose answer is equivalent to the question's majority answer (per the task)."""

    def gate(candidates: list[Candidate]) -> list[Verdict]:
        out = []
        for c in candidates:
            a, b = c.sample.answer, c.vote.answer
            if a is None or b is None:
                out.append(Verdict(False, "no answer" if a is None else "no majority"))
            else:
                same = a == b or context.task.is_equivalent(a, b)
                out.append(Verdict(same, f"{a} {'is' if same else 'is not'} equivalent to majority {b}"))
        return out

    return gate


# A number as written: "7", "2.5", "1,200" (commas only in groups of three, so "7," is 7).
_NUM = r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?![\d,]\d)"
# An expression: numbers, operators (ASCII and unicode), parentheses. "x" only between spaces.
_EXPR = rf"[-−(]*\s*{_NUM}(?:\s*(?:[-+*/×÷·−]|\s[xX]\s)\s*[(\s]*-?{_NUM}\)*)+"
_EQUATION = re.compile(rf"(?<![\w.,])({_EXPR})\s*=\s*\$?\s*(-?{_NUM})")
_THOUSANDS = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+)(?![\d,])")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def to_number(text: str) -> Fraction | None:
    """"1,200" -> 1200, "2.5" -> 5/2; None when it is not a plain number (e.g. "1,2")."""
    text = _THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), text.strip().rstrip("."))
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


def evaluate(expression: str) -> Fraction | None:
    """Exact value of an arithmetic expression (+ - * / and parentheses); None when it is not one."""
    text = _THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), expression)
    text = re.sub(r"\s[xX]\s", " * ", text)
    text = text.replace("×", "*").replace("·", "*").replace("÷", "/").replace("−", "-")
    if "," in text:
        return None  # a comma that is not a thousands separator: a list, not arithmetic
    try:
        return _value(ast.parse(text.strip(), mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
        return None


def _value(node: ast.AST) -> Fraction | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _value(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _value(node.left), _value(node.right)
        if left is None or right is None:
            return None
        return _OPS[type(node.op)](left, right)
    return None


def equations(text: str) -> list[tuple[str, str]]:
    """Every "expression = number" written in `text`, as (expression, result) strings."""
    text = re.sub(r"[$€£](?=\s*\d)", "", text)  # "$5 + $3 = $8"
    return [(m.group(1), m.group(2)) for m in _EQUATION.finditer(text)]


def check_equations(text: str) -> list[tuple[str, bool]]:
    """Every "expression = number" in `text` with whether it is right.

    The result may be rounded as written: "10 / 3 = 3.33" is right (to the digits shown).
    """
    found = []
    for expression, result in equations(text):
        left, right = evaluate(expression), to_number(result)
        if left is None or right is None:
            continue
        decimals = len(result.partition(".")[2])
        tolerance = Fraction(1, 2 * 10**decimals) if decimals else Fraction(0)
        found.append((f"{expression.strip()} = {result}", abs(left - right) <= tolerance))
    return found


def arithmetic(context: GateContext, require_equations: bool = False):
    """Drop paths with any wrong written calculation; score = share of calculations that are right."""

    def gate(candidates: list[Candidate]) -> list[Verdict]:
        out = []
        for c in candidates:
            checks = check_equations(c.sample.text)
            wrong = [eq for eq, ok in checks if not ok]
            if not checks:
                out.append(Verdict(not require_equations, "no arithmetic to check"))
            elif wrong:
                out.append(Verdict(False, f"{len(wrong)}/{len(checks)} calculations wrong, e.g. {wrong[0]!r}",
                                   1 - len(wrong) / len(checks)))
            else:
                out.append(Verdict(True, f"{len(checks)} calculations right", 1.0))
        return out

    return gate


_GIVEN = re.compile(rf"(?<![\w.,]){_NUM}")


def grounded(context: GateContext, use_all: bool = True, every_step: bool = False):
    """Keep paths whose calculations use only the question's numbers and their own earlier results.

    For word problems that state every quantity as a number (the arithmetic domain). On GSM8K,
    implicit constants (60 minutes) and percentages written as decimals would fail it.
    `every_step`: also one equation per operation of a chained problem (numbers given - 1), so a path that
    skips a step cannot pass because a number it computed happens to equal one the question gives (on
    problems longer than the model was taught, Self-Improving Transformers' length filter).
    """

    def gate(candidates: list[Candidate]) -> list[Verdict]:
        out = []
        for c in candidates:
            given = Counter(n for m in _GIVEN.finditer(c.question) if (n := to_number(m.group(0))) is not None)
            used: Counter = Counter()
            computed: set[Fraction] = set()
            invented = None
            lines = equations(c.sample.text)
            for left, right in lines:
                for m in _GIVEN.finditer(left):
                    n = to_number(m.group(0))
                    if n not in given and n not in computed and invented is None:
                        invented = m.group(0)
                    used[n] += 1
                computed.add(to_number(right))
            unused = sorted(given - used)
            if invented is not None:
                out.append(Verdict(False, f"calculates with {invented}, which is neither given nor computed"))
            elif use_all and unused:
                out.append(Verdict(False, f"never uses the given {', '.join(str(n) for n in unused)}"))
            elif every_step and len(lines) < sum(given.values()) - 1:
                out.append(Verdict(False, f"{len(lines)} equations for {sum(given.values()) - 1} operations"))
            else:
                out.append(Verdict(True, f"{sum(used.values())} operands, all given or computed"))
        return out

    return gate


def satisfies(context: GateContext, unchecked: bool = False):
    """Keep paths whose answer the task's own check accepts against the question, with no label: an
    equation's answer substituted for its unknown (`CheckedTask.check`). `unchecked`: whether a
    question the task cannot check passes (default: it fails, so only checked answers are trusted)."""
    from selfimprove.tasks.base import checker_of

    checked = checker_of(context.task)
    if checked is None:
        raise ValueError(f"the satisfies gate needs a task with check(question, answer); task "
                         f"{getattr(context.task, 'name', context.task)!r} has none (the equations task has one)")

    def gate(candidates: list[Candidate]) -> list[Verdict]:
        out = []
        for c in candidates:
            ok = checked.check(c.question, c.sample.answer)
            if ok is None:
                out.append(Verdict(unchecked, "the question states nothing the task can check"))
            else:
                out.append(Verdict(ok, f"{c.sample.answer} {'satisfies' if ok else 'does not satisfy'} the question"))
        return out

    return gate


_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_code(text: str) -> str | None:
    """The last fenced code block of a completion; None when it has none."""
    blocks = _FENCE.findall(text or "")
    return blocks[-1] if blocks else None


def code_tests(context: GateContext, timeout_s: float = 5.0, memory_mb: int = 512):
    """Keep paths whose code passes the question's tests, run together in the sandbox.

    The task must be a `TestedTask`: `tests(question_id) -> str | None` (Python that raises on
    failure, e.g. asserts). Identical code for one question runs once.
    """
    from selfimprove.execution import sandbox
    from selfimprove.tasks.base import tests_of

    tested = tests_of(context.task)
    if tested is None:
        raise ValueError(f"the code_tests gate needs a task with tests(question_id); task "
                         f"{getattr(context.task, 'name', context.task)!r} has none")

    def gate(candidates: list[Candidate]) -> list[Verdict]:
        results: dict[tuple[str, str], Verdict] = {}
        out = []
        for c in candidates:
            code = extract_code(c.sample.text)
            tests = tested.tests(c.sample.question_id)
            if code is None or tests is None:
                out.append(Verdict(False, "no code" if code is None else "no tests for this question"))
                continue
            key = (c.sample.question_id, code)
            if key not in results:
                result = sandbox.run(code + "\n\n" + tests, timeout_s=timeout_s, memory_mb=memory_mb)
                last = (result.stderr.strip().splitlines() or [""])[-1][:120]
                reason = "tests pass" if result.status == "ok" else f"tests {result.status}: {result.detail}; {last}"
                results[key] = Verdict(result.status == "ok", reason)
            out.append(results[key])
        return out

    return gate


# Judged against the question's vote, so not in vote.require.
EQUIVALENT_TO_MAJORITY = Plugin("selfimprove.gates.verify:equivalent_to_majority", traits=frozenset({NEEDS_VOTE}))
