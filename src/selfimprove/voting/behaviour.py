"""The `behaviour` vote method: programs vote by what they do, not by how they are written.

For each question (a code task's stub), every sampled program runs in the sandbox on the same calls:
the docstring's examples, the completions' own written tests (inputs, with expected outputs when they
assert one), with `ask_tests: n` the tests of n completions the model writes when asked for tests
(`tasks.code.tests_prompt`), and `extra_inputs` calls generated from the examples
(`tasks.code.generated_calls`).
Programs that fail a docstring example, or that only raise or hang, abstain. The rest are clustered
by their outcomes on all calls (AlphaCode's clustering); the largest cluster wins, its first-sampled
program is the vote's answer and the cluster's share of the voting programs is the confidence.
With `score: dual` a cluster scores size x (1 + written tests it passes), CodeT's dual agreement.

`Vote.counts` maps each cluster's first program to its size. The gates `passes_examples` and
`same_behaviour` (gates/code.py) keep the programs that pass the examples and act like the winner
(`same_behaviour` compares on every call but the asked tests', which the gate does not see).
Hidden reference tests of a benchmark never reach this module: it is given the questions only.

Used as `vote.method: behaviour` with `vote.options: {extra_inputs: 8, timeout_s: 5, ...}` (`BehaviourOptions`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from selfimprove.execution import programs
from selfimprove.names import RUNS_PROGRAMS
from selfimprove.plugins import Plugin
from selfimprove.sections import Section
from selfimprove.records import Item, Sample, Vote
from selfimprove.tasks.code import Probe, entry_point, probe_for, tests_prompt

SCORES = ("size", "dual")
TESTS_FORMAT = "tests"  # Sample.prompt_format of a completion asked for tests (`ask_tests`)


def cluster_vote(question_id: str, round_: int, answers: list[str | None], behaviours: list[programs.Behaviour | None],
                 probe: Probe, require_examples: bool = True, score: str = "size") -> Vote:
    """One question's vote over behaviour clusters, in sample order (the first program of a cluster names it)."""
    n_examples = len(probe.examples)
    clusters: dict[programs.Behaviour, list[str]] = {}
    abstain = 0
    for program, behaviour in zip(answers, behaviours):
        eligible = (program is not None and behaviour is not None and programs.answered(behaviour)
                    and (not require_examples or programs.passes(behaviour, list(probe.examples))))
        if not eligible:
            abstain += 1
            continue
        clusters.setdefault(behaviour, []).append(program)
    if not clusters:
        return Vote(question_id=question_id, round=round_, answer=None, share=0.0, num_votes=0,
                    num_abstain=abstain, counts={})

    def merit(item) -> float:
        behaviour, members = item
        if score == "dual":
            written = behaviour[n_examples:n_examples + len(probe.written)]
            passed = sum(t.want is not None and programs.matches(o, t.want) for o, t in zip(written, probe.written))
            return len(members) * (1 + passed)
        return len(members)

    ranked = sorted(clusters.items(), key=merit, reverse=True)  # stable: ties go to the first-sampled cluster
    winner = ranked[0][1]
    voters = sum(len(m) for m in clusters.values())
    return Vote(question_id=question_id, round=round_, answer=winner[0], share=len(winner) / voters,
                num_votes=voters, num_abstain=abstain, counts={m[0]: len(m) for _, m in clusters.items()})


def vote_by_behaviour(samples: list[Sample], items: list[Item], extra_inputs: int = 8, seed: int = 0,
                      written_tests_cap: int = 10, require_examples: bool = True, score: str = "size",
                      limits: programs.Limits = programs.Limits()) -> list[Vote]:
    """Every question's vote; all programs of all questions run in one parallel sandbox batch."""
    if score not in SCORES:
        raise ValueError(f"vote.options.score: {score!r} is not one of {', '.join(SCORES)}")
    question = {i.id: i.question for i in items}
    texts: dict[str, list[str]] = {}
    by_question: dict[str, list[Sample]] = {}
    for s in samples:
        texts.setdefault(s.question_id, []).append(s.text)
        if s.prompt_format != TESTS_FORMAT:  # a test-writing completion lends its tests, not a vote
            by_question.setdefault(s.question_id, []).append(s)
    probes = {qid: probe_for(question[qid], texts[qid], extra_inputs, seed, written_tests_cap)
              for qid in by_question}
    jobs = [(question[s.question_id], s.answer, probes[s.question_id].calls)
            for group in by_question.values() for s in group if s.answer is not None]
    ran = dict(zip(jobs, programs.behaviours_many(jobs, limits)))
    votes = []
    for qid, group in by_question.items():
        probe = probes[qid]
        found = [ran.get((question[qid], s.answer, probe.calls)) if s.answer is not None else None for s in group]
        votes.append(cluster_vote(qid, group[0].round, [s.answer for s in group], found, probe,
                                  require_examples, score))
    return votes


def asked_tests(backend, weights, items: list[Item], n: int, chat: bool, seed: int, round_: int,
                max_new_tokens: int = 256, temperature: float = 0.8) -> list[Sample]:
    """`n` test-writing completions per question from the sampling model (`tasks.code.tests_prompt`), as
    samples without a program: `probe_for` reads their asserts like any completion's own tests."""
    from selfimprove.backends import SamplingParams

    params = SamplingParams(n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed + 104729 * round_)
    outs = backend.generate([tests_prompt(i.question, chat) for i in items], params, weights)
    samples = []
    for item, completions in zip(items, outs):
        opening = "" if chat else f"assert {entry_point(item.question) or 'f'}("
        samples += [Sample(item.id, round_, -1 - j, TESTS_FORMAT, params.seed, weights.model if weights else "",
                           getattr(weights, "adapter", None), opening + c.text, None, c.num_tokens, c.truncated,
                           c.logprob) for j, c in enumerate(completions)]
    return samples


class BehaviourOptions(Section):
    """`vote.options` of `behaviour`."""

    extra_inputs: int = Field(8, ge=0)  # calls generated from the docstring's examples, beyond the examples
    written_tests_cap: int = Field(10, ge=0)  # the completions' own tests taken per question
    require_examples: bool = True  # a program that fails a docstring example abstains
    score: Literal["size", "dual"] = "size"  # dual = size x (1 + written tests passed), CodeT's dual agreement
    timeout_s: float = Field(5.0, gt=0)  # per program run in the sandbox
    memory_mb: int = Field(512, ge=1)  # per program run in the sandbox
    workers: int | None = Field(None, ge=1)  # sandbox processes; None = the CPUs
    ask_tests: int = Field(0, ge=0)  # test-writing completions asked per question (0 = none)


def behaviour_vote(ctx, round_: int, weights, samples: list[Sample], items: list[Item], **options) -> list[Vote]:
    """The `vote.method: behaviour` plug-in (see the module docstring); options come from `vote.options`.
    With `ask_tests: n` the sampling model also writes n test completions per question; their inputs
    (and expected outputs, for `score: dual`) join the calls every program runs on."""
    o = DECLARATION.read(options, "vote.options")
    extra: list[Sample] = []
    if o.ask_tests:
        extra = asked_tests(ctx.backend, weights, items, o.ask_tests, ctx.style.chat, ctx.config.run.seed, round_)
    return vote_by_behaviour(samples + extra, items, o.extra_inputs, ctx.config.run.seed, o.written_tests_cap,
                             o.require_examples, o.score, programs.Limits(o.timeout_s, o.memory_mb, o.workers))


DECLARATION = Plugin("selfimprove.voting.behaviour:behaviour_vote", BehaviourOptions, traits=frozenset({RUNS_PROGRAMS}))
