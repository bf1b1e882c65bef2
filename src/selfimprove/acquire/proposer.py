"""A trained proposer: the model writes questions, and is trained by RL to write the ones its solver is
unsure of (R-Zero's challenger, Huang et al. 2025), with a reward that needs no label.

    acquire: {method: proposer, options: {prompts: 16, per_prompt: 4, band: [0.25, 0.75]}}

Each round:

1. the proposer (model.name's weights with an adapter of its own: none in round 1, then the last round's
   `rounds/rNN/proposer/`) writes `per_prompt` questions from each of `prompts` prompts showing a few
   example questions (written.py's prompts, parsing and screen: malformed, leak of a held-out or anchor
   question, copy of a shown example);
2. the solver (the round's sampling weights) answers each screened question K times (`generate.k`) and
   the run's vote is taken (judge.py); `share` = votes for the majority / K (0 when nothing answers);
3. each question gets `proposer_reward`: uncertainty 1 - 2|share - 1/2| (largest when the solver is split),
   minus penalties for repeating the round's other questions (near-duplicate clusters, R-Zero's
   repetition penalty), leaking a held-out question, or being malformed;
4. the proposer is updated by GRPO (TRL underneath, `policy_update.py`): the questions of one prompt are a
   group, their rewards as computed; the adapter is saved as `rounds/rNN/proposer/`, TRL's log as
   `rounds/rNN/proposer_log.jsonl`;
5. the questions whose share lies within `band` (one per repetition cluster) are the round's questions:
   the loop samples, votes and trains on them as on any other (the vote's majority is their pseudo-label).

Every question, its screen, its solver's votes, its share, reward and parts, and whether it was kept and
why, is in `rounds/rNN/proposed.jsonl` (with the tokens it took to write and to solve). A killed round
resumes: the questions and rewards, the proposer's update and its log are each done once. A task that
reads its own language (`solve`) gives kept questions' exact answers for diagnostics only.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter

from pydantic import Field

from selfimprove.rundir import layout
from selfimprove.acquire.base import RECORDS_TOKENS, Band, record
from selfimprove.acquire.judge import agreement, judge
from selfimprove.acquire.screen import clusters, guard_for
from selfimprove.acquire.written import WritingOptions, cleaned, example_questions, writing_params, writing_prompts
from selfimprove.context import RunContext
from selfimprove.plugins import Plugin
from selfimprove.policy_update import Group, UpdateSettings, update
from selfimprove.records import Item, Weights
from selfimprove.tasks.base import solver_of

PROPOSER = "proposer"  # the proposer's adapter after this round's update (its questions: layout.PROPOSED)
PROPOSER_WORK = "proposer_work"  # TRL's output folder while the update runs; removed once committed
UNSOLVED = ("malformed", "leak")  # screen verdicts whose question the solver is not asked


class ProposerOptions(WritingOptions):
    """`acquire.options` of `proposer`."""

    prompts: int = Field(16, ge=1, le=100_000)  # question-writing prompts a round: the update's groups
    per_prompt: int = Field(4, ge=2, le=64)  # questions a prompt: a GRPO group (two at least, to compare)
    temperature: float = Field(1.0, gt=0, le=5)  # above 0: a group's questions must differ to be compared
    # The solver's share a kept question must have: R-Zero's filter keeps questions the solver answers
    # neither always nor never alike (0.25-0.75); those are also the ones the uncertainty reward favours.
    band: Band = (0.25, 0.75)
    repetition: float = Field(1.0, ge=0, le=10)  # penalty weight for repeating the round's other questions
    leak: float = Field(1.0, ge=0, le=10)  # penalty for a question that leaks a held-out one
    malformed: float = Field(1.0, ge=0, le=10)  # penalty for text that is not a question of the task
    # A small step a round: the proposer follows the solver rather than running ahead of it (LoRA, the
    # rank and modules of adapt's settings).
    learning_rate: float = Field(2e-5, gt=0, le=1)
    groups_per_step: int = Field(4, ge=1, le=100_000)  # groups in one optimizer step; must divide `prompts`


def proposer_reward(share: float | None, screen: str, repeats: float, repetition: float = 1.0,
                    leak: float = 1.0, malformed: float = 1.0) -> dict[str, float]:
    """A proposed question's reward and its parts, without labels.

    share     the solver's votes for its majority answer over its K paths (None: not solved, 0: no answer)
    screen    the screen's verdict (screen.py): "malformed" and "leak" are penalised
    repeats   how much it repeats: the share of the round's other solved questions in its cluster, or 1 for a
              copy of a shown example
    reward = (1 - 2 |share - 1/2|) - repetition * repeats - leak [if leak] - malformed [if malformed]
    """
    parts = {"uncertainty": 0.0 if share is None else 1 - 2 * abs(share - 0.5),
             "repetition": -repetition * repeats,
             "leak": -leak if screen == "leak" else 0.0,
             "malformed": -malformed if screen == "malformed" else 0.0}
    return {"reward": sum(parts.values()), **parts}


def proposer_weights(ctx: RunContext, round_: int) -> Weights:
    """Who writes round `round_`'s questions: the last round's proposer, or model.name's weights (round 1)."""
    last = layout.round_file(round_ - 1, PROPOSER)
    if round_ > 1 and ctx.store.done(last):
        return Weights(ctx.base_sampler.model, str(ctx.store.path(last).resolve()))
    return ctx.base_sampler


def write_questions(ctx: RunContext, round_: int, o: ProposerOptions) -> list[dict]:
    """The proposer's questions, each with the prompt it was written from and the screen's verdict."""
    shown_from = example_questions(ctx, o.examples)
    seed = ctx.config.run.seed
    prompts = writing_prompts(ctx, shown_from, o.shots, [f"{seed}/{round_}/{PROPOSER}/{p}" for p in range(o.prompts)])
    params = writing_params(ctx, o.per_prompt, o.temperature, o.max_new_tokens, f"{seed}/{round_}/{PROPOSER}")
    outs = ctx.backend.generate(prompts, params, proposer_weights(ctx, round_))
    guard = guard_for(ctx, o.near_duplicate, [(f"example-{n}", q) for n, q in enumerate(shown_from)])
    rows = []
    for p, (prompt, completions) in enumerate(zip(prompts, outs)):
        for c in completions:
            text = cleaned(c.text)
            screen, about = guard.verdict(ctx.task, text)
            rows.append({"id": f"proposed-r{round_}-{len(rows)}", "prompt": p, "asked": prompt, "raw": c.text,
                         "text": text, "screen": screen, "about": about, "tokens": c.num_tokens})
    return rows


def score(ctx: RunContext, round_: int, solver: Weights, rows: list[dict], o: ProposerOptions) -> list[dict]:
    """Each question solved (unless malformed or a leak), rewarded, and kept or not, with why."""
    solved = [r for r in rows if r["screen"] not in UNSOLVED]
    votes, tokens = judge(ctx, round_, solver, [Item(id=r["id"], question=r["text"]) for r in solved], PROPOSER)
    cluster = clusters([r["text"] for r in solved], o.near_duplicate)
    sizes = Counter(cluster)
    taken: set[int] = set()
    for r, c in zip(solved, cluster):
        vote = votes.get(r["id"])
        r.update(share=agreement(vote), answer=vote.answer if vote else None, votes=vote.counts if vote else {},
                 abstain=vote.num_abstain if vote else 0, cluster=solved[c]["id"],
                 tokens=r["tokens"] + tokens.get(r["id"], 0))
        r["repeats"] = 1.0 if r["screen"] != "kept" else (sizes[c] - 1) / max(1, len(solved) - 1)
        in_band = o.band[0] <= r["share"] <= o.band[1]
        r["verdict"] = r["screen"] if r["screen"] != "kept" else (
            "out_of_band" if not in_band else "repeat" if c in taken else "kept")
        if r["verdict"] == "kept":
            taken.add(c)
    for r in rows:
        r.setdefault("share", None)
        r.setdefault("repeats", 0.0)
        r.setdefault("verdict", r["screen"])
        parts = proposer_reward(r["share"], r["screen"], r["repeats"], o.repetition, o.leak, o.malformed)
        r.update(reward=parts.pop("reward"), parts=parts)
    return rows


def with_trained_tokens(log: list[dict]) -> list[dict]:
    """TRL's log rows, each with `trained_tokens`: the tokens its step trained on (TRL counts them cumulatively,
    `num_tokens`), which the round counts as compute (`acquire.tokens_spent`)."""
    seen = [0] + [int(h.get("num_tokens", 0)) for h in log]
    return [{**h, "trained_tokens": seen[i + 1] - seen[i]} for i, h in enumerate(log)]


def train_proposer(ctx: RunContext, round_: int, rows: list[dict], o: ProposerOptions) -> list[dict]:
    """The proposer's GRPO update on this round's questions (a prompt's questions are a group); its adapter
    is `rounds/rNN/proposer/`, its log `proposer_log.jsonl`. Returns the log."""
    start, store = proposer_weights(ctx, round_), ctx.store
    by_prompt: dict[int, list[dict]] = {}
    for r in rows:
        by_prompt.setdefault(r["prompt"], []).append(r)
    groups = [Group(rs[0]["asked"], [r["raw"] for r in rs], [r["reward"] for r in rs]) for rs in by_prompt.values()]
    a, m = ctx.config.adapt, ctx.config.model
    settings = UpdateSettings(o.learning_rate, o.groups_per_step, o.temperature, o.max_new_tokens, a.lora_r,
                              a.lora_alpha, a.lora_dropout, a.lora_target_modules, m.dtype, m.device,
                              m.trust_remote_code, ctx.config.run.seed + round_)
    work = store.path(layout.round_file(round_, PROPOSER_WORK))

    def build(tmp) -> None:
        ctx.backend.close()  # no model that sampled is alive while the proposer trains
        shutil.rmtree(work, ignore_errors=True)  # a killed update starts again: it is one short pass
        (tmp / "train_log.json").write_text(json.dumps(update(start, groups, tmp, work, settings)))

    folder = store.produce_dir(layout.round_file(round_, PROPOSER), build)
    log = store.produce_jsonl(layout.round_file(round_, layout.PROPOSER_LOG),
                              lambda: with_trained_tokens(json.loads((folder / "train_log.json").read_text())))
    shutil.rmtree(work, ignore_errors=True)
    return log


def proposer(ctx: RunContext, round_: int, weights: Weights, **options) -> list[Item]:
    """This round's questions, written by the proposer and kept within the band; the proposer is trained on
    how `weights` (the solver) answered them."""
    o = DECLARATION.read(options, "acquire.options")
    rows = ctx.store.produce_jsonl(layout.round_file(round_, layout.PROPOSED),
                                   lambda: score(ctx, round_, weights, write_questions(ctx, round_, o), o))
    log = train_proposer(ctx, round_, rows, o)
    solver = solver_of(ctx.task)
    kept = [Item(id=r["id"], question=r["text"], gold=solver.solve(r["text"]) if solver else None, origin="proposed")
            for r in rows if r["verdict"] == "kept"]
    rewards = [r["reward"] for r in rows]
    ctx.console.print(f"round {round_}: the proposer wrote {len(rows)} questions (mean reward "
                      f"{sum(rewards) / max(1, len(rewards)):.3f}), {len(kept)} kept in band {list(o.band)}; "
                      f"its update took {len(log)} steps: {dict(Counter(r['verdict'] for r in rows))}")
    return kept


def check(config, options: ProposerOptions, task) -> None:
    """Against the vote and the update's steps, before any work, naming the option."""
    if config.generate.k < 2:
        raise ValueError(f"the reward reads the solver's vote over K paths, and generate.k={config.generate.k} "
                         "gives no vote; set generate.k to 2 or more")
    if options.prompts % options.groups_per_step:
        raise ValueError(f"groups_per_step: {options.groups_per_step} does not divide prompts={options.prompts} "
                         "(every prompt's group is trained on once); give a divisor of prompts")


DECLARATION = Plugin("selfimprove.acquire.proposer:proposer", ProposerOptions, check,
                     traits=frozenset({RECORDS_TOKENS}),
                     artifacts=(record(layout.PROPOSED), record(PROPOSER), record(layout.PROPOSER_LOG)),
                     report="selfimprove.acquire.acquire_report:proposer_rounds")
