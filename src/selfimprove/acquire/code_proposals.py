"""Verified code tasks: the model proposes programs, the sandbox runs them, and what they return is the
question's answer, never what the model says it is (Absolute Zero's induction tasks, Zhao et al. 2025).

    acquire: {method: code_proposals, options: {prompts: 16, per_prompt: 4}}

For a code task (list_functions, humaneval), each round:

1. the writer (the round's weights, as for `written`) is shown pool questions and writes programs. A
   completion model (the embedded code model) is asked for the last shown question's function
   (`code_prompt`): what it writes at temperature, right or wrong for that question, is a proposal. A
   chat model is asked for a new function of the same kind and a few calls of it;
2. a program's inputs are the calls it wrote itself (literal arguments only), then calls made by changing
   the shown question's example inputs (`tasks.code.generated_calls`; those examples themselves only when
   these run short), `shown_calls + hidden_calls` in all; the held-out questions' docstring calls are added, to catch a leak;
3. each program runs twice on its inputs in the sandbox (`programs.behaviours_many`: a separate process,
   time and memory limits, no network, a temporary directory) and is rejected, the reason recorded, when
       malformed         no program, or none defining the entry point (`f`)
       few_inputs        fewer than `shown_calls + 1` inputs
       timeout / memory  a call did not finish in `timeout_s`, or ran out of `memory_mb`
       error             a call raised (the sandbox's guard raises for os.system, sockets, files, ...)
       nondeterministic  the two runs returned different values
       unreadable        a value that is not a Python literal, or too long to compare whole
       trivial           fewer than 3 distinct values, every input returned unchanged, or the
                         examples a question would show all alike
       leak              it passes every docstring example of a held-out question (by execution), or its
                         question is the text of one (the screen, screen.py)
       duplicate         the same program (syntax tree) as one kept before; or the same or nearly the same
       near_duplicate    question text as one kept before or one shown (screen.py)
4. a kept program becomes an induction question in the task's own form: the entry point's signature and a
   docstring (the task's words for the program when it can say them, `describe`, read from the code; else
   "Write the function these examples show.") with its first `shown_calls` inputs and their executed
   outputs. Those examples are the question's label-free check (the vote and gates run them); its hidden
   test asserts the executed outputs of the other inputs, and is gold: `acquire` strips it to
   `rounds/rNN/pool_gold.jsonl`, read only by scoring.

Every proposal (prompt, shown question, raw text, program, inputs, both runs' outcomes, verdict and why, the
question and hidden test when kept, tokens) is in `rounds/rNN/code_proposals.jsonl`, written once: a killed
round resumes from it, a damaged one redoes the round from its acquisition.

Deduction (a program and an input: predict the output) and abduction (a program and an output: find an
input) are not built: their answer is a value, and the code task's vote clusters programs by what they
return on a question's docstring calls, of which a question asking for a value has none. The writer is not
trained here (the trained proposer, proposer.py, writes text questions); that is the next step.
"""

from __future__ import annotations

import ast
import random
import zlib

from pydantic import Field

from selfimprove.acquire.acquire_report import verdict_table
from selfimprove.acquire.base import RECORDS_TOKENS, record
from selfimprove.acquire.screen import count_verdicts, guard_for
from selfimprove.acquire.written import WritingOptions, example_questions
from selfimprove.context import RunContext
from selfimprove.execution import programs
from selfimprove.plugins import Plugin
from selfimprove.records import Item, SamplingParams, Weights
from selfimprove.rundir import layout
from selfimprove.tasks.base import describer_of
from selfimprove.tasks.code import (code_prompt, docstring_examples, entry_point, extract_program, generated_calls,
                                    written_tests)

PROPOSALS = "code_proposals.jsonl"  # every proposed program: inputs, executed outcomes, verdict and why
ORIGIN = "code_proposal"  # Item.origin of a question built from one
GENERIC = "Write the function these examples show."  # a program the task's words cannot say
DISTINCT = 3  # values a program must return over its inputs: fewer is a constant, not a task (list_functions too)
ASK = ("Here are some Python functions to write:\n\n{examples}\n\nWrite a new function `{signature}` of the same "
       "kind, different from these, in a ```python block, followed in the block by {n} calls of it on new "
       "inputs, one a line, such as `{call}`.")


class CodeProposalOptions(WritingOptions):
    """`acquire.options` of `code_proposals` (`examples`, `shots`, `temperature`, ... as `written`)."""

    prompts: int = Field(16, ge=1, le=100_000)  # program-writing prompts a round, each showing seeded pool questions
    shown_calls: int = Field(3, ge=1, le=20)  # examples in a question's docstring (list_functions shows 3)
    hidden_calls: int = Field(8, ge=1, le=100)  # calls its hidden test asserts (list_functions checks 8)
    # Per program, all its calls in one process: a busy machine takes about 2 s to start a sandbox.
    timeout_s: float = Field(5.0, gt=0, le=120)
    memory_mb: int = Field(256, ge=64, le=65536)  # a list function needs little; a hostile one is cut


def prompt_for(shown: list[str], chat: bool, calls: int):
    """The completion model's prompt: the last shown question's stub; a chat model's: a request for a new one."""
    if not chat:
        return code_prompt(shown[-1])
    name = entry_point(shown[-1]) or "f"
    signature = next((line.strip() for line in shown[-1].splitlines() if line.startswith(f"def {name}(")),
                     f"def {name}(...):")
    example = next((e.call for e in docstring_examples(shown[-1])), f"{name}(...)")
    listed = "\n\n".join(f"```python\n{q.strip()}\n```" for q in shown)
    return [{"role": "user", "content": ASK.format(examples=listed, signature=signature, n=calls, call=example)}]


def _arguments(call: str) -> list | None:
    """A call's literal arguments; None when one is not a literal."""
    try:
        node = ast.parse(call, mode="eval").body
        return [ast.literal_eval(a) for a in node.args] + [ast.literal_eval(k.value) for k in node.keywords]
    except (SyntaxError, ValueError, TypeError, AttributeError, MemoryError, RecursionError):
        return None


def _literal(text: str) -> tuple[bool, object]:
    try:
        return True, ast.literal_eval(text)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        return False, None


def inputs_for(text: str, name: str, shown: str, n: int, seed: int) -> list[str]:
    """Up to `n` calls of `name`: the completion's own (literal arguments), then the shown question's
    example inputs changed (seeded by the question), then, when those run short, the examples themselves."""
    own = [e.call for e in written_tests(text, name) if _arguments(e.call) is not None]
    examples = [e.call for e in docstring_examples(shown)]
    return list(dict.fromkeys(own + generated_calls(shown, 2 * n, seed) + examples))[:n]


def defines(program: str | None, name: str) -> bool:
    if program is None:
        return False
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError):
        return False
    return any(isinstance(n, ast.FunctionDef) and n.name == name for n in tree.body)


def run_twice(jobs: list[tuple[str, tuple[str, ...]]], limits: programs.Limits) -> list[tuple[tuple, tuple]]:
    """Each (program, calls) run twice, in separate sandboxed processes, all in one parallel batch. The two
    runs' stubs differ by a comment, so the process's cache of runs cannot answer the second from the first."""
    both = programs.behaviours_many([("# run 1", p, c) for p, c in jobs] + [("# run 2", p, c) for p, c in jobs],
                                    limits)
    return list(zip(both[:len(jobs)], both[len(jobs):]))


def executed_verdict(calls: list[str], first: tuple, second: tuple, shown: int) -> tuple[str, str | None]:
    """(verdict, why) of a program from its two runs' outcomes on `calls` (the first `shown` its question's
    examples): "kept" when it is a task."""
    for outcome, call in zip(first, calls):
        if outcome == "timeout":
            return "timeout", call
        if outcome == "!MemoryError":
            return "memory", call
        if outcome.startswith("!"):
            return "error", f"{outcome[1:]} on {call}"
    if first != second:
        return "nondeterministic", next(f"{call}: {a[1:]} then {b[1:]}" for call, a, b in zip(calls, first, second)
                                        if a != b)
    values = [outcome[1:] for outcome in first]
    for call, value in zip(calls, values):
        if len(value) >= programs.MAX_REPR or not _literal(value)[0]:
            return "unreadable", f"{call} returned {value[:80]}"
    if len(set(values)) < DISTINCT:
        return "trivial", f"{len(set(values))} distinct values on {len(calls)} inputs"
    if all([_literal(v)[1]] == _arguments(c) for c, v in zip(calls, values)):
        return "trivial", "returns its input"
    if len(set(values[:shown])) < 2:
        return "trivial", f"its {shown} examples show one value"
    return "kept", None


def heldout_leak(outcomes: tuple, heldout: list[tuple[str, list[programs.Example]]]) -> str | None:
    """The held-out question whose every docstring example the program passes (outcomes in `heldout`'s order)."""
    at = 0
    for id_, examples in heldout:
        if examples and programs.passes(outcomes[at:at + len(examples)], examples):
            return id_
        at += len(examples)
    return None


def question_for(task, program: str, name: str, examples: list[tuple[str, str]]) -> str:
    """The induction question: `name`'s signature, the task's words for the program, the examples."""
    node = next(n for n in ast.parse(program).body if isinstance(n, ast.FunctionDef) and n.name == name)
    describer = describer_of(task)
    text = (describer.describe(program) if describer is not None else None) or GENERIC
    shown = "".join(f"    >>> {call}\n    {want}\n" for call, want in examples)
    return f'def {name}({ast.unparse(node.args)}):\n    """{text}\n{shown}    """\n'


def hidden_test(id_: str, name: str, pairs: list[tuple[str, str]]) -> programs.HiddenTest:
    """`check(candidate)` asserting each call's executed value, as HumanEval writes a test."""
    body = "".join(f"    assert candidate{call[len(name):]} == {want}\n" for call, want in pairs)
    return programs.HiddenTest(id_, f"def check(candidate):\n{body}", name)


def propose(ctx: RunContext, round_: int, weights: Weights, o: CodeProposalOptions) -> list[dict]:
    """The round's proposals, written by `weights`, each with its program, inputs and completion."""
    shown_from, seed = example_questions(ctx, o.examples), ctx.config.run.seed
    shown = [random.Random(f"{seed}/{round_}/code/{p}").sample(shown_from, min(o.shots, len(shown_from)))
             for p in range(o.prompts)]
    params = SamplingParams(n=o.per_prompt, temperature=o.temperature, max_new_tokens=o.max_new_tokens,
                            seed=zlib.crc32(f"{seed}/{round_}/code".encode()))
    outs = ctx.backend.generate([prompt_for(s, ctx.style.chat, o.shown_calls) for s in shown], params, weights)
    rows = []
    for p, (questions, completions) in enumerate(zip(shown, outs)):
        name = entry_point(questions[-1]) or "f"
        for c in completions:
            program = extract_program(c.text)
            rows.append({"id": f"code-r{round_}-{len(rows)}", "prompt": p, "shown": questions[-1], "raw": c.text,
                         "program": program, "entry_point": name, "tokens": c.num_tokens,
                         "calls": inputs_for(c.text, name, questions[-1], o.shown_calls + o.hidden_calls, seed)})
    return rows


def screen(ctx: RunContext, rows: list[dict], o: CodeProposalOptions) -> list[dict]:
    """Each proposal run twice and given its verdict; a kept one its question and hidden test."""
    heldout = [(i.id, entry_point(i.question), docstring_examples(i.question)) for i in ctx.data.heldout]
    leak_probe = {r["entry_point"]: [(id_, ex) for id_, name, ex in heldout if name == r["entry_point"] and ex]
                  for r in rows}
    runnable = [r for r in rows if defines(r["program"], r["entry_point"]) and len(r["calls"]) > o.shown_calls]
    jobs = [(r["program"], tuple(r["calls"] + [e.call for _, ex in leak_probe[r["entry_point"]] for e in ex]))
            for r in runnable]
    ran = {r["id"]: run for r, run in zip(runnable, run_twice(jobs, programs.Limits(o.timeout_s, o.memory_mb)))}
    shown = example_questions(ctx, o.examples)
    guard = guard_for(ctx, o.near_duplicate, [(f"example-{n}", q) for n, q in enumerate(shown)])
    trees: dict[str, str] = {}  # the syntax tree of each kept program -> its id
    for r in rows:
        n, name = len(r["calls"]), r["entry_point"]
        first, second = ran.get(r["id"], ((), ()))
        r.update(outcomes=list(first[:n]), rerun=list(second[:n]), question=None, test=None)
        if not defines(r["program"], name):
            verdict, about = "malformed", None
        elif r["id"] not in ran:
            verdict, about = "few_inputs", f"{n} inputs"
        else:
            verdict, about = executed_verdict(r["calls"], first[:n], second[:n], o.shown_calls)
        if verdict == "kept" and (leaked := heldout_leak(first[n:], leak_probe[name])) is not None:
            verdict, about = "leak", leaked
        tree = ast.dump(ast.parse(r["program"])) if verdict == "kept" else ""
        if verdict == "kept" and tree in trees:
            verdict, about = "duplicate", trees[tree]
        if verdict == "kept":
            pairs = [(call, outcome[1:]) for call, outcome in zip(r["calls"], first)]
            question = question_for(ctx.task, r["program"], name, pairs[:o.shown_calls])
            verdict, about = guard.overlap(question)
            if verdict == "kept":
                guard.seen.add(r["id"], question)
                trees[tree] = r["id"]
                r.update(question=question, test=hidden_test(r["id"], name, pairs[o.shown_calls:]).test)
        r["verdict"], r["about"] = verdict, about
    return rows


def code_proposals(ctx: RunContext, round_: int, weights: Weights, **options) -> list[Item]:
    """This round's induction questions from the programs `weights` proposed that ran and were kept."""
    o = DECLARATION.read(options, "acquire.options")
    rows = ctx.store.produce_jsonl(layout.round_file(round_, PROPOSALS),
                                   lambda: screen(ctx, propose(ctx, round_, weights, o), o))
    kept = [Item(id=r["id"], question=r["question"], origin=ORIGIN,
                 gold=programs.HiddenTest(r["id"], r["test"], r["entry_point"]).as_gold())
            for r in rows if r["verdict"] == "kept"]
    ctx.console.print(f"round {round_}: the model proposed {len(rows)} programs, ran them in the sandbox and kept "
                      f"{len(kept)} as questions: {count_verdicts(rows)}")
    return kept


def check(config, options: CodeProposalOptions, task) -> None:
    """A code task only: the questions are functions to write, the answers programs that run."""
    if not getattr(task, "is_code", False):
        raise ValueError(f"programs are proposed for a code task, and task.name={config.task.name!r} is not one; "
                         "give task.name: list_functions (or humaneval), or another acquire.method")


def report(store, rounds, read) -> dict[str, str]:
    """Per round, the proposed programs by verdict (kept, error, timeout, nondeterministic, trivial, ...)."""
    return verdict_table(store, rounds, read, PROPOSALS, "Programs proposed by the model, by verdict")


DECLARATION = Plugin("selfimprove.acquire.code_proposals:code_proposals", CodeProposalOptions, check,
                     traits=frozenset({RECORDS_TOKENS}), artifacts=(record(PROPOSALS),),
                     report="selfimprove.acquire.code_proposals:report")
