"""Gates for code tasks: a program is trusted when it passes its question's docstring examples and
behaves like the vote's winning program. Both run programs only in the sandbox (`programs`).

- `passes_examples`: the program returns what every docstring example says (examples are part of the
  question, not a hidden label). A question without examples fails (`allow_no_examples` passes it).
- `same_behaviour`: the program's outcomes equal the vote answer's on the calls the `behaviour` vote
  used (examples, the completions' own tests, generated inputs): it is in the winning cluster. Give
  it the same `extra_inputs` and `written_tests_cap` as `vote.options` (both default to the same).
"""

from __future__ import annotations

from selfimprove.execution import programs
from selfimprove.gates.base import NEEDS_VOTE, Candidate, GateContext, Verdict
from selfimprove.plugins import Plugin
from selfimprove.tasks.code import docstring_examples


def passes_examples(context: GateContext, allow_no_examples: bool = False, timeout_s: float = 5.0,
                    memory_mb: int = 512, workers: int | None = None):
    limits = programs.Limits(timeout_s, memory_mb, workers)

    def gate(candidates: list[Candidate]) -> list[Verdict]:
        examples = {c.question: docstring_examples(c.question) for c in candidates}
        jobs = [(c.question, c.sample.answer, tuple(e.call for e in examples[c.question]))
                for c in candidates if c.sample.answer is not None and examples[c.question]]
        ran = dict(zip(jobs, programs.behaviours_many(jobs, limits)))
        out = []
        for c in candidates:
            given = examples[c.question]
            if c.sample.answer is None:
                out.append(Verdict(False, "no program"))
            elif not given:
                out.append(Verdict(allow_no_examples, "the question gives no examples"))
            else:
                behaviour = ran[(c.question, c.sample.answer, tuple(e.call for e in given))]
                right = [programs.matches(o, e.want) for o, e in zip(behaviour, given)]
                wrong = [(e, o) for e, o, r in zip(given, behaviour, right) if not r]
                reason = (f"{len(given)} examples pass" if not wrong else
                          f"{len(wrong)}/{len(given)} examples fail, e.g. {wrong[0][0].call} gave {wrong[0][1]!s:.80} "
                          f"not {wrong[0][0].want:.80}")
                out.append(Verdict(not wrong, reason, sum(right) / len(right)))
        return out

    return gate


def same_behaviour(context: GateContext, extra_inputs: int = 8, written_tests_cap: int = 10,
                   timeout_s: float = 5.0, memory_mb: int = 512, workers: int | None = None):
    from selfimprove.tasks.code import probe_for

    limits = programs.Limits(timeout_s, memory_mb, workers)

    def gate(candidates: list[Candidate]) -> list[Verdict]:
        texts: dict[str, list[str]] = {}
        for c in candidates:
            texts.setdefault(c.sample.question_id, []).append(c.sample.text)
        probes = {c.sample.question_id: probe_for(c.question, texts[c.sample.question_id], extra_inputs,
                                                  context.seed, written_tests_cap) for c in candidates}
        jobs = []
        for c in candidates:
            calls = probes[c.sample.question_id].calls
            if c.sample.answer is not None and c.vote is not None and c.vote.answer is not None:
                jobs += [(c.question, c.sample.answer, calls), (c.question, c.vote.answer, calls)]
        ran = dict(zip(jobs, programs.behaviours_many(jobs, limits)))
        out = []
        for c in candidates:
            if c.sample.answer is None or c.vote is None or c.vote.answer is None:
                out.append(Verdict(False, "no program" if c.sample.answer is None else "no winning cluster"))
                continue
            calls = probes[c.sample.question_id].calls
            mine, theirs = ran[(c.question, c.sample.answer, calls)], ran[(c.question, c.vote.answer, calls)]
            differ = sum(a != b for a, b in zip(mine, theirs))
            out.append(Verdict(differ == 0, f"same outcomes as the winner on {len(calls)} calls" if not differ else
                               f"differs from the winner on {differ}/{len(calls)} calls", 1 - differ / max(len(calls), 1)))
        return out

    return gate


# Judged against the question's vote, so not in vote.require.
SAME_BEHAVIOUR = Plugin("selfimprove.gates.code:same_behaviour", traits=frozenset({NEEDS_VOTE}))
