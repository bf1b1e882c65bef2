"""DAPO's dynamic sampling for GRPO (`adapt.options.dynamic_sampling`): a group whose rewards all agree has
zero advantage and teaches nothing, so it is dropped and a fresh question of the round's pool is sampled
in its place.

TRL's GRPOTrainer stays underneath: `DynamicSampler` is its `rollout_func`, which the trainer hands each
generation batch's prompts (each repeated num_generations times) and whose completions it trains on. It
samples with the trainer's own generation (same temperature, top_p, vLLM or transformers), scores each
group with the round's reward (`rewards.Scorer.score`), keeps the informative groups and replaces the
others with questions the batch does not hold yet, until every slot holds an informative group or the
budget (`sampling_budget` x the batch's groups sampled) is spent; then the last uninformative groups stay.
A replacement's columns (label, vote, question) go back as TRL's extra fields, which TRL merges into the
batch's rows before it calls the reward, so every completion is scored against its own question.
`rollout_func` is experimental in the pinned TRL (it warns so), and the sampler draws through the
trainer's own `_tokenize_prompts` and `_generate_single_turn`: tests/test_rl_dynamic.py runs it through
the real trainer, so a TRL that changes them fails there. One process only: a question's group must be
whole in the batch the sampler sees (rl_options.check_algorithm).

Writes `dropped.jsonl` in the RL work folder (committed as the round's `rl_dropped.jsonl`): one row per
uninformative group, with the step, the question, its rewards, the tokens it cost, why, and whether it
was dropped or kept (budget spent, no fresh question left).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

DROPPED_FILE = "dropped.jsonl"
AGREE = 1e-6  # rewards this close count as equal: their group's advantages are ~0


@dataclass
class Group:
    row: dict  # the question's training row (prompt, question_id, label, ...)
    completion_ids: list[list[int]]
    logprobs: list | None  # the sampler's per-token log-probs (vLLM), None with transformers
    totals: list[float | None]  # each completion's reward


def why_uninformative(totals: list[float | None]) -> str | None:
    """None when the group's rewards differ (it has an advantage to learn from); otherwise why not."""
    scored = [t for t in totals if t is not None]
    if not scored:
        return "no reward applies to any sample"
    if len(scored) == 1:
        return "only one sample is scored"
    if max(scored) - min(scored) <= AGREE:
        return f"all {len(scored)} scored rewards are {scored[0]:g}"
    return None


def read_rows(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a half-written last line (a kill)
            break
    return rows


class DynamicSampler:
    """TRL's rollout_func for one round: fills each generation batch with informative groups."""

    def __init__(self, rows: list[dict], scorer, group: int, budget: float, seed: int, path: Path,
                 resumed_step: int = 0):
        self.rows, self.scorer, self.group, self.budget, self.seed, self.path = rows, scorer, group, budget, seed, path
        self.by_prompt = {json.dumps(r["prompt"]): r for r in rows}
        self.records = [r for r in read_rows(path) if r["step"] <= resumed_step]  # a resumed run redoes the rest

    def truncate(self) -> None:
        self.path.write_text("".join(json.dumps(r) + "\n" for r in self.records))

    def __call__(self, prompts: list, trainer) -> dict:
        step = trainer.state.global_step + 1
        slots = [self.by_prompt[json.dumps(p)] for p in prompts[::self.group]]
        groups = self.fill(slots, lambda rows: self.sample(rows, trainer), step)
        rows = [g.row for g in groups for _ in range(self.group)]
        out = {"prompt_ids": trainer._tokenize_prompts([r["prompt"] for r in rows])[0],
               "completion_ids": [ids for g in groups for ids in g.completion_ids],
               "logprobs": None if groups[0].logprobs is None else [lp for g in groups for lp in g.logprobs],
               # the trained prompt: TRL passes the rewards the batch's original prompts
               "trained_prompt": [r["prompt"] for r in rows]}
        return out | {k: [r[k] for r in rows] for k in rows[0] if k != "prompt"}

    def fill(self, slots: list[dict], sample, step: int) -> list[Group]:
        """One informative group per slot where the budget allows. `sample(rows) -> [Group]` draws a
        group for each row; questions come from the slots, then from a seeded order of the pool (seeded
        per step, so a resumed run draws the same ones)."""
        limit = int(self.budget * len(slots))
        fresh = iter(random.Random(f"{self.seed}/{step}").sample(self.rows, len(self.rows)))
        used = {r["question_id"] for r in slots}
        kept: list[Group | None] = [None] * len(slots)
        todo, drawn = list(range(len(slots))), 0
        while todo:
            groups = sample([slots[i] for i in todo])
            drawn += len(todo)
            again = []
            for i, g in zip(todo, groups):
                why = why_uninformative(g.totals)
                spent = drawn + len(again) >= limit  # one more replacement would pass the budget
                nxt = None if why is None or spent else next((r for r in fresh if r["question_id"] not in used), None)
                if nxt is None:
                    kept[i] = g
                    if why is not None:
                        self.record(step, g, why, dropped=False,
                                    kept_because="budget spent" if spent else "no fresh question left")
                    continue
                self.record(step, g, why, dropped=True)
                used.add(nxt["question_id"])
                slots[i] = nxt
                again.append(i)
            todo = again
        return kept

    def record(self, step: int, g: Group, why: str, dropped: bool, kept_because: str | None = None) -> None:
        row = {"step": step, "question_id": g.row["question_id"], "label": g.row.get("label"), "rewards": g.totals,
               "tokens": sum(len(ids) for ids in g.completion_ids), "why": why, "dropped": dropped,
               "kept_because": kept_because}
        self.records.append(row)
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")

    def sample(self, rows: list[dict], trainer) -> list[Group]:
        """A group of num_generations completions for each row, drawn and scored as TRL would."""
        prompts = [r["prompt"] for r in rows for _ in range(self.group)]
        prompt_ids = trainer._tokenize_prompts(prompts)[0]
        completion_ids, logprobs = trainer._generate_single_turn(prompt_ids, None, {}, self.group)
        texts = trainer.processing_class.batch_decode(completion_ids, skip_special_tokens=True)
        completions = texts if isinstance(prompts[0], str) else [[{"role": "assistant", "content": t}] for t in texts]
        columns = {k: [r[k] for r in rows for _ in range(self.group)] for k in rows[0] if k != "prompt"}
        _, totals = self.scorer.score(prompts, completions, completion_ids=completion_ids,
                                      trainer_state=trainer.state, **columns)
        n = self.group
        return [Group(r, completion_ids[i * n:(i + 1) * n], None if logprobs is None else logprobs[i * n:(i + 1) * n],
                      totals[i * n:(i + 1) * n]) for i, r in enumerate(rows)]
