"""Questions the model writes itself, in the style of a few examples (LMSI section 5.2; R-Zero's proposer).

    acquire: {method: written, options: {count: 500, examples: 10}}

The model is shown `shots` of the `examples` (the first N questions of the collected pool, or a list
of questions given in the config), a different seeded choice per prompt, and asked for one more:
as a completion ("Q: <example>\\n\\nQ: ... Q:") or, for a chat model, as a request through its chat
template. Every completion is screened (screen.py: malformed, leak of a held-out question, duplicate,
near duplicate) and recorded with its verdict in `rounds/rNN/written.jsonl` ("surplus": acceptable, but beyond `count`,
so not used); prompting continues in
batches until `count` questions are kept or `max_prompts` prompts are spent. Kept questions are then
answered and voted on like any other. A task that reads its own language (`solve`) gives their exact
answers for diagnostics only (`rounds/rNN/pool_gold.jsonl`): never a label.
"""

from __future__ import annotations

import math
import random
import zlib

from pydantic import Field, field_validator

from selfimprove.rundir import layout
from selfimprove.acquire.base import RECORDS_TOKENS, record
from selfimprove.acquire.screen import count_verdicts, guard_for
from selfimprove.backends import SamplingParams
from selfimprove.context import RunContext
from selfimprove.plugins import Plugin
from selfimprove.records import Item, Weights
from selfimprove.sections import Section
from selfimprove.tasks.base import solver_of

ASK = ("Here are some example questions:\n\n{examples}\n\nWrite one new question of the same kind, different "
       "from these. Reply with the question only.")


def example_questions(ctx: RunContext, examples: int | list[str]) -> list[str]:
    if isinstance(examples, list):
        return [str(q) for q in examples]
    return [i.question for i in ctx.data.pool[:examples]]


def prompt_for(shown: list[str], chat: bool):
    if chat:
        listed = "\n".join(f"{n}. {q}" for n, q in enumerate(shown, 1))
        return [{"role": "user", "content": ASK.format(examples=listed)}]
    return "".join(f"Q: {q}\n\n" for q in shown) + "Q:"


def writing_prompts(ctx: RunContext, shown_from: list[str], shots: int, keys: list[str]) -> list:
    """One question-writing prompt per key, each showing a choice of `shots` examples seeded by its key."""
    return [prompt_for(random.Random(k).sample(shown_from, min(shots, len(shown_from))), ctx.style.chat)
            for k in keys]


def writing_params(ctx: RunContext, per_prompt: int, temperature: float, max_new_tokens: int,
                   key: str) -> SamplingParams:
    """How a question is sampled: `per_prompt` a prompt, one line (a completion prompt stops at its end)."""
    return SamplingParams(n=per_prompt, temperature=temperature, max_new_tokens=max_new_tokens,
                          seed=zlib.crc32(key.encode()), stop=() if ctx.style.chat else ("\n",))


def cleaned(text: str) -> str:
    """The question in a completion: its first non-empty line that is not a lead-in ("Here is an easier
    version:"), without a "Q:", "Problem:" or "1." label."""
    lines = [x.strip() for x in text.strip().splitlines() if x.strip()]
    line = next((x for x in lines if not x.endswith(":")), lines[0] if lines else "")
    for label in ("Q:", "Question:", "New question:", "Problem:", "Easier problem:"):
        if line.lower().startswith(label.lower()):
            line = line[len(label):].strip()
    return line.lstrip("0123456789. ").strip() if line[:1].isdigit() and ". " in line[:4] else line


class WritingOptions(Section):
    """How the model is asked to write questions: shared by every source whose model writes them."""

    # The pool's first N questions as examples, or a list of questions to show: a prompt needs at least one.
    examples: int | list[str] = 10
    shots: int = Field(4, ge=1, le=64)  # examples shown in one prompt (a seeded choice per prompt)
    per_prompt: int = Field(4, ge=1, le=64)  # questions sampled from one prompt
    temperature: float = Field(1.0, ge=0, le=5)  # 1.0: varied questions; the screen drops the bad ones
    max_new_tokens: int = Field(160, ge=1, le=8192)  # one question, not a solution
    near_duplicate: float = Field(0.8, ge=0.05, le=1)  # similarity at which a question repeats another

    @field_validator("examples", mode="before")
    @classmethod
    def _some_examples(cls, v):
        if isinstance(v, bool) or not isinstance(v, (int, list)):
            raise ValueError("give how many pool questions to show (an integer), or a list of questions")
        if (isinstance(v, list) and not [q for q in v if str(q).strip()]) or v == 0:
            raise ValueError("a question-writing prompt needs example questions: give at least one "
                             "(e.g. examples: 10 shows the pool's first 10)")
        if isinstance(v, int) and v < 0:
            raise ValueError(f"{v} must be at least 1")
        return [str(q) for q in v] if isinstance(v, list) else v


class WrittenOptions(WritingOptions):
    """`acquire.options` of `written`."""

    count: int = Field(200, ge=1, le=1_000_000)  # questions kept a round
    max_prompts: int | None = Field(None, ge=1, le=1_000_000)  # None = 4 x count / per_prompt


def written(ctx: RunContext, round_: int, weights: Weights, **options) -> list[Item]:
    """Up to `count` new questions written by `weights`, screened; each one's verdict is recorded."""
    o = DECLARATION.read(options, "acquire.options")
    count, examples, shots, per_prompt = o.count, o.examples, o.shots, o.per_prompt
    temperature, max_new_tokens, near_duplicate, max_prompts = (o.temperature, o.max_new_tokens, o.near_duplicate,
                                                                o.max_prompts)
    shown_from = example_questions(ctx, examples)
    guard = guard_for(ctx, near_duplicate, [(f"example-{n}", q) for n, q in enumerate(shown_from)])
    budget = max_prompts if max_prompts is not None else math.ceil(4 * count / per_prompt)
    solver, seed = solver_of(ctx.task), ctx.config.run.seed
    rows, kept, spent = [], [], 0
    while len(kept) < count and spent < budget:
        batch = min(budget - spent, max(1, math.ceil(2 * (count - len(kept)) / per_prompt)))
        prompts = writing_prompts(ctx, shown_from, shots, [f"{seed}/{round_}/{spent + p}" for p in range(batch)])
        params = writing_params(ctx, per_prompt, temperature, max_new_tokens, f"{seed}/{round_}/written/{spent}")
        outs = ctx.backend.generate(prompts, params, weights)
        for p, completions in enumerate(outs):
            for c in completions:
                text = cleaned(c.text)
                verdict, about = guard.verdict(ctx.task, text)
                if verdict == "kept" and len(kept) >= count:
                    verdict = "surplus"  # acceptable, but the batch wrote more than `count`
                id_ = f"written-r{round_}-{len(rows)}"
                rows.append({"id": id_, "prompt": spent + p, "text": text, "raw": c.text, "verdict": verdict,
                             "about": about, "tokens": c.num_tokens})
                if verdict == "kept":
                    guard.seen.add(id_, text)
                    gold = solver.solve(text) if solver is not None else None
                    kept.append(Item(id=id_, question=text, gold=gold, origin="written"))
        spent += batch
    ctx.store.write_jsonl(layout.round_file(round_, layout.WRITTEN), rows)
    ctx.console.print(f"round {round_}: the model wrote {len(rows)} questions in {spent} prompts: "
                      f"{count_verdicts(rows)}")
    return kept


DECLARATION = Plugin("selfimprove.acquire.written:written", WrittenOptions, traits=frozenset({RECORDS_TOKENS}),
                     artifacts=(record(layout.WRITTEN),), report="selfimprove.acquire.acquire_report:written_verdicts")
