"""The training set of a round: kept paths (and a person's marks, a labelled replay set, earlier
rounds' paths) as prompt/completion pairs in the training formats.

A task with its own format (`tasks.base.own_format_of`; code) decides what a path trains on: its
prompt, then `task.training_target(completion, answer)` (for code the program), once per path, with
`adapt.formats` unused; every other task gets the LMSI formats below.

Writes `rounds/rNN/train.jsonl`: the exact pairs trained on, one `Example` per row. Each row's
`round` is the round whose paths it came from, so `adapt.data: accumulate` adds every earlier round's
own examples exactly once.
"""

from __future__ import annotations

import random
import zlib

from selfimprove import names, prompts, review
from selfimprove.rundir import layout
from selfimprove.context import RunContext
from selfimprove.records import Example, Exemplar, Item, Sample, TrustedPath, to_row
from selfimprove.sampling.replay import read_replay
from selfimprove.tasks.base import own_format_of


OWN_FORMAT = "task"  # Example.format of a task's own pair (`own_format_of`)


def examples_for(paths: list[TrustedPath], formats: dict[str, float], exemplars: list[Exemplar], chat: bool,
                 round_: int, seed: int, answer_prefix: str = "The answer is", task=None) -> list[Example]:
    """Each path in each format with that format's probability (1.0 = always), deterministically.
    When `task` has its own format, each path once in it instead (its `rationale` is the whole completion)."""
    own = own_format_of(task)
    if own is not None:
        return [Example(question_id=p.question_id, round=round_, sample_index=p.sample_index, format=OWN_FORMAT,
                        prompt=pair[0], completion=pair[1], answer=p.answer)
                for p in paths for pair in [prompts.task_pair(own, p.question, p.rationale, p.answer, chat)]]
    rng = random.Random(zlib.crc32(f"{seed}/{round_}/formats".encode()))
    out = []
    for p in paths:
        for fmt, weight in formats.items():
            if rng.random() >= weight:
                continue
            if prompts.is_cot(fmt) and not p.rationale:
                continue  # a direct-format sample has no reasoning to teach
            prompt, completion = prompts.training_pair(p.question, p.rationale, p.answer, fmt, exemplars, chat,
                                                       answer_prefix)
            out.append(Example(question_id=p.question_id, round=round_, sample_index=p.sample_index, format=fmt,
                               prompt=prompt, completion=completion, answer=p.answer))
    return out


def trusted_paths(kept: list[Sample], items: list[Item], answer_prefix: str, task=None) -> list[TrustedPath]:
    """Kept samples as paths: the rationale before the answer statement, or the whole completion when
    `task` has its own format (it says itself what of the completion to train on)."""
    question = {i.id: i.question for i in items}
    own = own_format_of(task)
    return [TrustedPath(s.question_id, question[s.question_id],
                        s.text if own else prompts.rationale_of(s.text, answer_prefix), s.answer, s.index)
            for s in kept]


def earlier_examples(ctx: RunContext, round_: int, rejected: set) -> list[dict]:
    """Every earlier round's own examples (not replay, not what it accumulated), minus rejected answers."""
    return [e for p in range(1, round_) if ctx.store.done(layout.round_file(p, layout.TRAIN))
            for e in ctx.store.read_jsonl(layout.round_file(p, layout.TRAIN))
            if e["round"] == p and not names.is_replay(e["question_id"])
            and (e["question_id"], e["answer"]) not in rejected]


def training_set(ctx: RunContext, round_: int, samples: list[Sample], verdicts: list[dict],
                 items: list[Item]) -> list[dict]:
    """The round's `train.jsonl` rows: read when complete, else built and written."""
    cfg, style, seed = ctx.config.adapt, ctx.student_style, ctx.config.run.seed
    prefix = ctx.task.answer_prefix

    def build() -> list[dict]:
        kept = [s for s, v in zip(samples, verdicts) if v["kept"]]
        kept, reviewed, rejected = review.apply_marks(ctx.store, round_, kept, prefix)  # a person's marks win
        paths = trusted_paths(kept, items, prefix, ctx.task) + reviewed
        rows = [to_row(e) for e in examples_for(paths, cfg.formats, style.exemplars, style.chat, round_, seed, prefix,
                                                ctx.task)]
        if cfg.data == "accumulate":
            rows += earlier_examples(ctx, round_, rejected)
        if cfg.replay and rows:
            rows += [to_row(e) for e in examples_for(read_replay(cfg.replay), cfg.formats, style.exemplars,
                                                     style.chat, round_, seed, prefix, ctx.task)]
        return rows

    return ctx.store.produce_jsonl(layout.round_file(round_, layout.TRAIN), build)
