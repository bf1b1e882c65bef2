"""Easier variants of the questions the model cannot yet answer (LADDER, Simonds & Yoshiyama 2025).

    acquire: {method: mix, options: {sources: [{method: pool}, {method: variants, depth: 2}]}}

For each question of the last round whose vote was not trusted (the roots), `per_question` easier
variants are written (fewer steps, smaller numbers, a sub-question), screened like any question the
model writes (screen.py), and solved: K fresh paths and the run's vote (judge.py). A variant whose
vote is trusted becomes one of this round's questions; one that is not gets variants of its own,
down to `depth`. The whole tree, question -> variants -> verdicts, is recorded in
`rounds/rNN/variants.jsonl` and drawn in the report. Round 1 has no earlier vote, so no roots.

Who writes the variants (`writer`):
    model  the model, asked to (a chat request, or a completion prompt for a base model)
    task   the task's own rule (`easier_variants`: the embedded domain's sub-questions), for a model that
           cannot be asked, such as the embedded demo's (it was never trained to write a question)
"""

from __future__ import annotations

import zlib
from typing import Literal

from pydantic import Field

from selfimprove.rundir import layout
from selfimprove.acquire.base import RECORDS_TOKENS, record
from selfimprove.acquire.judge import judge, trusted
from selfimprove.acquire.screen import guard_for
from selfimprove.acquire.written import cleaned
from selfimprove.backends import SamplingParams
from selfimprove.context import RunContext
from selfimprove.plugins import Plugin
from selfimprove.records import Item, Vote, Weights, from_row
from selfimprove.sections import Section
from selfimprove.tasks.base import solver_of, variant_writer_of

ASK = ("Here is a problem:\n\n{question}\n\nWrite an easier version of it: fewer steps, smaller numbers, or one "
       "of the sub-questions it depends on. Reply with the new problem only.")
PLAIN = "Problem: {question}\nAn easier version of this problem, with fewer steps or smaller numbers: "


class VariantsOptions(Section):
    """`acquire.options` of `variants`."""

    depth: int = Field(2, ge=1, le=5)  # levels of variants below an untrusted question
    per_question: int = Field(3, ge=1, le=16)  # variants written of each question
    writer: Literal["model", "task"] = "model"  # who writes them (see the module docstring)
    share: float = Field(0.5, ge=0, le=1)  # a vote at least this strong is trusted
    limit: int | None = Field(None, ge=1, le=1_000_000)  # roots taken a round; None = every untrusted question
    temperature: float = Field(1.0, ge=0, le=5)
    max_new_tokens: int = Field(160, ge=1, le=8192)  # one question, not a solution
    near_duplicate: float = Field(0.8, ge=0.05, le=1)  # similarity at which a variant repeats another


def roots(ctx: RunContext, round_: int, share: float, limit: int | None) -> list[tuple[Item, Vote | None]]:
    """The last round's questions (not variants themselves) whose vote is not trusted, with that vote."""
    if round_ == 1:
        return []
    store = ctx.store
    items = [from_row(Item, r) for r in store.read_jsonl(layout.round_file(round_ - 1, layout.ROUND_POOL))]
    votes = {v["question_id"]: from_row(Vote, v) for v in store.read_jsonl(layout.round_file(round_ - 1, layout.VOTES))}
    out = [(i, votes.get(i.id)) for i in items if i.origin != "variant" and not trusted(votes.get(i.id), share)]
    return out[:limit] if limit is not None else out


def write_variants(ctx: RunContext, round_: int, weights: Weights, questions: list[Item], writer: str,
                   per_question: int, temperature: float, max_new_tokens: int,
                   level: int) -> list[list[tuple[str, int]]]:
    """Up to `per_question` easier variants of each question, by the task's rule or by the model, each with
    the tokens it took to write."""
    if writer == "task":
        return [[(v, 0) for v in variant_writer_of(ctx.task).easier_variants(q.question)[:per_question]]
                for q in questions]
    chat = ctx.style.chat
    prompts = [[{"role": "user", "content": ASK.format(question=q.question)}] if chat
               else PLAIN.format(question=q.question) for q in questions]
    params = SamplingParams(n=per_question, temperature=temperature, max_new_tokens=max_new_tokens,
                            seed=zlib.crc32(f"{ctx.config.run.seed}/{round_}/variants/{level}".encode()),
                            stop=() if chat else ("\n",))
    outs = ctx.backend.generate(prompts, params, weights) if prompts else []
    return [[(cleaned(c.text), c.num_tokens) for c in cs] for cs in outs]


def variants(ctx: RunContext, round_: int, weights: Weights, **options) -> list[Item]:
    """The trusted easier variants of the last round's untrusted questions, to `depth` levels."""
    o = DECLARATION.read(options, "acquire.options")
    depth, per_question, writer, share, limit = o.depth, o.per_question, o.writer, o.share, o.limit
    temperature, max_new_tokens, near_duplicate = o.temperature, o.max_new_tokens, o.near_duplicate
    found = roots(ctx, round_, share, limit)
    # A variant is meant to resemble its question: against questions seen, only exact repeats are dropped.
    guard = guard_for(ctx, near_duplicate, [(i.id, i.question) for i in ctx.data.pool], seen_near=float("inf"))
    solver = solver_of(ctx.task)
    rows = [{"id": i.id, "parent": None, "root": i.id, "depth": 0, "question": i.question, "verdict": "root",
             "answer": v.answer if v else None, "share": v.share if v else 0.0, "trusted": False} for i, v in found]
    frontier, root_of, kept = [i for i, _ in found], {i.id: i.id for i, _ in found}, []
    for level in range(1, depth + 1):
        children = []
        written = write_variants(ctx, round_, weights, frontier, writer, per_question, temperature,
                                 max_new_tokens, level)
        for parent, texts in zip(frontier, written):
            for text, tokens in texts:
                id_ = f"variant-r{round_}-{len(rows)}"
                verdict, about = guard.verdict(ctx.task, text)
                rows.append({"id": id_, "parent": parent.id, "root": root_of[parent.id], "depth": level,
                             "question": text, "verdict": verdict, "about": about, "tokens": tokens})
                if verdict == "kept":
                    guard.seen.add(id_, text)
                    root_of[id_] = root_of[parent.id]
                    children.append(Item(id=id_, question=text, gold=solver.solve(text) if solver else None,
                                         origin="variant", parent=parent.id))
        votes, tokens = judge(ctx, round_, weights, children, f"variants/{level}")
        by_id = {r["id"]: r for r in rows}
        for child in children:
            vote = votes.get(child.id)
            ok = trusted(vote, share)
            by_id[child.id].update(answer=vote.answer if vote else None, share=vote.share if vote else 0.0,
                                   trusted=ok, tokens=by_id[child.id]["tokens"] + tokens.get(child.id, 0))
            if ok:
                kept.append(child)
        frontier = [c for c in children if not by_id[c.id]["trusted"]]
    ctx.store.write_jsonl(layout.round_file(round_, layout.VARIANTS), rows)
    ctx.console.print(f"round {round_}: {len(found)} untrusted questions -> {len(rows) - len(found)} variants, "
                      f"{len(kept)} solved with a trusted vote")
    return kept


def check(config, options: VariantsOptions, task) -> None:
    """Against the task and the vote, before any work, naming the option."""
    if options.writer == "task" and variant_writer_of(task) is None:
        raise ValueError(f"writer: task {task.name!r} has no rule for easier variants; use writer: model")
    if config.generate.k < 2:
        raise ValueError(f"a variant is trusted by its vote, and generate.k={config.generate.k} gives no vote; "
                         "set generate.k to 2 or more")


DECLARATION = Plugin("selfimprove.acquire.variants:variants", VariantsOptions, check,
                     traits=frozenset({RECORDS_TOKENS}), artifacts=(record(layout.VARIANTS),),
                     report="selfimprove.acquire.acquire_report:variant_trees")
