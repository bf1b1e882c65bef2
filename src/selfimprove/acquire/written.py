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

from selfimprove import layout
from selfimprove.acquire.options import integers, numbers
from selfimprove.acquire.screen import count_verdicts, guard_for
from selfimprove.backends import SamplingParams
from selfimprove.context import RunContext
from selfimprove.records import Item, Weights
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


def cleaned(text: str) -> str:
    """The question in a completion: its first non-empty line that is not a lead-in ("Here is an easier
    version:"), without a "Q:", "Problem:" or "1." label."""
    lines = [x.strip() for x in text.strip().splitlines() if x.strip()]
    line = next((x for x in lines if not x.endswith(":")), lines[0] if lines else "")
    for label in ("Q:", "Question:", "New question:", "Problem:", "Easier problem:"):
        if line.lower().startswith(label.lower()):
            line = line[len(label):].strip()
    return line.lstrip("0123456789. ").strip() if line[:1].isdigit() and ". " in line[:4] else line


def written(ctx: RunContext, round_: int, weights: Weights, count: int = 200, examples: int | list[str] = 10,
            shots: int = 4, per_prompt: int = 4, temperature: float = 1.0, max_new_tokens: int = 160,
            near_duplicate: float = 0.8, max_prompts: int | None = None) -> list[Item]:
    """Up to `count` new questions written by `weights`, screened; each one's verdict is recorded."""
    shown_from = example_questions(ctx, examples)
    guard = guard_for(ctx, near_duplicate, [(f"example-{n}", q) for n, q in enumerate(shown_from)])
    budget = max_prompts if max_prompts is not None else math.ceil(4 * count / per_prompt)
    solver, seed = solver_of(ctx.task), ctx.config.run.seed
    rows, kept, spent = [], [], 0
    while len(kept) < count and spent < budget:
        batch = min(budget - spent, max(1, math.ceil(2 * (count - len(kept)) / per_prompt)))
        shown = [random.Random(f"{seed}/{round_}/{spent + p}").sample(shown_from, min(shots, len(shown_from)))
                 for p in range(batch)]
        params = SamplingParams(n=per_prompt, temperature=temperature, max_new_tokens=max_new_tokens,
                                seed=zlib.crc32(f"{seed}/{round_}/written/{spent}".encode()),
                                stop=() if ctx.style.chat else ("\n",))
        outs = ctx.backend.generate([prompt_for(s, ctx.style.chat) for s in shown], params, weights)
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


def check(options: dict, config, task) -> None:
    """Bad options fail before any work, naming the option."""
    examples = options.get("examples", 10)
    if isinstance(examples, bool) or not isinstance(examples, (int, list)):
        raise ValueError("examples: give how many pool questions to show (an integer), or a list of questions")
    if (isinstance(examples, list) and not [q for q in examples if str(q).strip()]) or examples == 0:
        raise ValueError("examples: a question-writing prompt needs example questions: give at least one "
                         "(e.g. examples: 10 shows the pool's first 10)")
    if isinstance(examples, int) and examples < 0:
        raise ValueError(f"examples: {examples} must be at least 1")
    integers(options, {"count": (1, 1_000_000), "shots": (1, 64), "per_prompt": (1, 64),
                       "max_new_tokens": (1, 8192), "max_prompts": (1, 1_000_000)})
    numbers(options, {"temperature": (0.0, 5.0), "near_duplicate": (0.05, 1.0)})
