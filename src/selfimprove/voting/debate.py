"""Debate as a way to reach a question's answer (Du et al. 2023): `vote.method: debate`.

(It builds on the shared majority and gates of voting/majority.py, not on the vote stage: like the other vote
methods it is shared ground, registered in methods.METHODS.)

`agents` agents answer each question; for `turns` more turns each agent reads the other agents'
latest solutions (rationale and answer) and answers again, keeping or revising its answer. The
question's answer is the majority of the agents' last answers (only the paths `vote.require` lets
vote count, as in the plain vote). Turn 0 is the round's own samples (agent i = the question's
sample i, so `generate.k` must be >= agents); later turns are sampled from the same weights with
the sampling format, so each turn's agents are the same model with different samples.

Every turn of every agent is recorded in `rounds/rNN/debate.jsonl`: the question, turn, agent, the
text it wrote, its answer, its tokens, and which agents' answers it was shown (`saw`). The paths
curate judges are still the round's samples, judged against the debate's answer. The debate's
extra tokens (turns >= 1) are not in the round's `generated_tokens`; sum `num_tokens` of
debate.jsonl for them (benchmarks compare debate with a plain vote at equal tokens).
"""

from __future__ import annotations

import zlib
from dataclasses import replace

from pydantic import Field

from selfimprove import prompts
from selfimprove.rundir import layout
from selfimprove.context import RunContext
from selfimprove.voting.majority import eligible_voters, require_gates, vote_all
from selfimprove.names import ANSWER_STRINGS
from selfimprove.plugins import Plugin
from selfimprove.records import Item, Sample, Vote, Weights
from selfimprove.sections import Section

INSTRUCTION = "Use these solutions as extra information, check them, and give your own answer."


def others_block(question: str, others: list[tuple[int, str]]) -> str:
    """The question with the other agents' latest solutions after it (what a debating agent reads)."""
    shown = "\n".join(f"Agent {agent}: {text.strip()}" for agent, text in others)
    return f"{question}\nOther agents' solutions:\n{shown}\n{INSTRUCTION}"


class DebateOptions(Section):
    """`vote.options` of `debate`."""

    agents: int = Field(3, ge=2)  # Du et al.'s 3 agents; each agent's first answer is one of the round's samples
    turns: int = Field(1, ge=1)  # turns after the first in which each agent reads the others' solutions


def check(config, options: DebateOptions, task) -> None:
    """vote.options against generate.k, before any work."""
    if config.generate.k < options.agents:
        raise ValueError(f"agents={options.agents} but generate.k={config.generate.k}: each agent's first answer "
                         "is one of the round's samples; set generate.k >= agents")


def debate(ctx: RunContext, round_: int, weights: Weights, samples: list[Sample], items: list[Item],
           **options) -> list[Vote]:
    """The round's votes reached by debate; writes `rounds/rNN/debate.jsonl` (read back on a rerun)."""
    opts = DECLARATION.read(options, "vote.options")
    check(ctx.config, opts, ctx.task)
    agents, turns = opts.agents, opts.turns
    rows = ctx.store.produce_jsonl(layout.round_file(round_, layout.DEBATE),
                                   lambda: debate_turns(ctx, round_, weights, samples, items, agents, turns))
    last = max(r["turn"] for r in rows) if rows else 0
    final = [Sample(question_id=r["question_id"], round=round_, index=r["agent"], prompt_format=r["format"],
                    seed=r["seed"], model=weights.model, adapter=weights.adapter, text=r["text"], answer=r["answer"],
                    num_tokens=r["num_tokens"], truncated=r["truncated"], logprob=r["logprob"])
             for r in rows if r["turn"] == last]
    voters = eligible_voters(final, {i.id: i.question for i in items}, require_gates(ctx, weights, round_))
    votes = {v.question_id: v for v in vote_all(voters, ctx.config.vote.tie_break, ctx.task.is_equivalent)}
    return [votes.get(i.id, Vote(i.id, round_, None, 0.0, 0, 0)) for i in items]


def debate_turns(ctx: RunContext, round_: int, weights: Weights, samples: list[Sample], items: list[Item],
                 agents: int, turns: int) -> list[dict]:
    """Every agent's answer at every turn, turn 0 (the round's samples) first."""
    from selfimprove.sampling.paths import sampling_params

    question = {i.id: i.question for i in items}
    latest: dict[str, list[dict]] = {}
    rows = []
    for s in samples:
        if s.index < agents and s.question_id in question and s.prompt_format == samples[0].prompt_format:
            row = _row(s.question_id, 0, s.index, s.prompt_format, s.seed, s.text, s.answer, s.num_tokens,
                       s.truncated, s.logprob, [])
            latest.setdefault(s.question_id, []).append(row)
            rows.append(row)
    params = sampling_params(ctx)
    for turn in range(1, turns + 1):
        asked = [(qid, agent) for qid in latest for agent in range(len(latest[qid]))]
        prompts_ = []
        for qid, agent in asked:
            others = [(r["agent"], r["text"]) for r in latest[qid] if r["agent"] != agent]
            fmt = latest[qid][agent]["format"]
            prompts_.append(ctx.style.render(others_block(question[qid], others), fmt))
        seed = zlib.crc32(f"{ctx.config.run.seed}/{round_}/debate/{turn}".encode())
        outs = ctx.backend.generate(prompts_, replace(params, n=1, seed=seed), weights)
        nxt: dict[str, list[dict]] = {}
        for (qid, agent), [c] in zip(asked, outs):
            fmt = latest[qid][agent]["format"]
            text = f"{prompts.CUES[fmt]} {c.text.lstrip()}" if fmt in prompts.CUES else c.text
            saw = [{"agent": r["agent"], "answer": r["answer"]} for r in latest[qid] if r["agent"] != agent]
            row = _row(qid, turn, agent, fmt, seed, text, ctx.task.extract(text), c.num_tokens, c.truncated,
                       c.logprob, saw)
            nxt.setdefault(qid, []).append(row)
            rows.append(row)
        latest = nxt
    return rows


def _row(qid, turn, agent, fmt, seed, text, answer, num_tokens, truncated, logprob, saw) -> dict:
    return {"question_id": qid, "turn": turn, "agent": agent, "format": fmt, "seed": seed, "text": text,
            "answer": answer, "num_tokens": num_tokens, "truncated": truncated, "logprob": logprob, "saw": saw}


# Every turn is recorded while the round votes: a damaged debate.jsonl redoes the vote.
DECLARATION = Plugin("selfimprove.voting.debate:debate", DebateOptions, check, traits=frozenset({ANSWER_STRINGS}),
                     artifacts=(layout.Artifact(layout.DEBATE, "vote"),))
