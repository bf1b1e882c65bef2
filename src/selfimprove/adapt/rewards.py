"""Rewards for label-free RL: plain callables in TRL's convention,
`reward(prompts, completions, **columns) -> list[float | None]` (None = does not apply).

A reward that depends on a sample's whole group (its question's majority) never computes the group
itself: the vote is taken before training, over the round's voters (`stages/vote.py`), and written into
the training set as columns (`label_rows`: `label`, `vote_counts`). TRL computes rewards in each
process before gathering them (trl#3896), so a majority taken inside a reward would see only
that process's share of a question's samples; a column is the same in every process.

Built-ins (`REWARDS`: each with what it needs from the rest of the config, which `rl_options.check_rl` asks):
  majority           1 when the answer is the question's vote (the verified vote under vote.require)
  verified_majority  majority, and 0 unless the path passes vote.require's gates (arithmetic, grounded)
  vote_share         the share of the voters that gave the sample's answer (a soft majority)
  gates              1 when the path passes vote.require's gates
  self_certainty     INTUITOR: mean KL(uniform || next-token distribution) over the completion
  token_entropy      RENT: minus the mean next-token entropy over the completion
  semantic_entropy   EMPO: the share of its question's trained samples with an equivalent answer
  random             a coin flip: the spurious-reward control (a gain here only unlocks format)
A user's reward is "package.module:factory", called as `factory(RewardContext)` like the built-ins.
`build_scorer` combines the configured rewards with their weights into the one function TRL sees.

Gold answers never reach a reward: none of these reads an item's gold, and the training columns
come from votes only (tests/test_rl.py checks both).
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

from selfimprove import plugins, prompts
from selfimprove.gates import Candidate, Gate, run_gates
from selfimprove.records import Item, Sample, Vote

Reward = Callable[..., list]


@dataclass(frozen=True)
class RewardEntry:
    """A built-in reward, declared once: where its factory is and what it needs from the config."""

    target: str  # "package.module:factory", called as factory(RewardContext)
    needs_vote: bool = False  # scores a sample against its question's vote: voting must be on (generate.k >= 2)
    needs_gates: bool = False  # judges a path by vote.require's gates, which must be given


REWARDS = {
    "majority": RewardEntry("selfimprove.adapt.rewards:majority", needs_vote=True),
    "verified_majority": RewardEntry("selfimprove.adapt.rewards:verified_majority", needs_vote=True, needs_gates=True),
    "vote_share": RewardEntry("selfimprove.adapt.rewards:vote_share", needs_vote=True),
    "gates": RewardEntry("selfimprove.adapt.rewards:gates", needs_gates=True),
    "self_certainty": RewardEntry("selfimprove.adapt.rewards:self_certainty"),
    "token_entropy": RewardEntry("selfimprove.adapt.rewards:token_entropy"),
    "semantic_entropy": RewardEntry("selfimprove.adapt.rewards:semantic_entropy"),
    "random": RewardEntry("selfimprove.adapt.rewards:random_reward"),
}


@dataclass
class Policy:
    """The model being trained, for rewards that score with it; filled in once the trainer exists."""

    model: Any = None
    tokenizer: Any = None


@dataclass
class RewardContext:
    task: Any
    gates: dict[str, Gate] = field(default_factory=dict)  # vote.require's gates (pre-vote: they judge a path alone)
    seed: int = 0
    policy: Policy = field(default_factory=Policy)
    # How a launched process (adapt.launch: accelerate) rebuilds `task` and `gates`: the task's name and
    # vote.require's specs.
    task_name: str | None = None
    require: list[dict] = field(default_factory=list)


def label_rows(votes: list[Vote], items: list[Item], min_share: float) -> list[dict]:
    """The training questions with their precomputed vote: one row per question with a clear majority.

    Reads the votes and the question text only (an item's gold is never read)."""
    question = {i.id: i.question for i in items}
    return [{"question_id": v.question_id, "question": question[v.question_id], "label": v.answer,
             "share": v.share, "vote_counts": json.dumps(v.counts)}
            for v in votes if v.answer is not None and v.share >= min_share and v.question_id in question]


def completion_text(completion) -> str:
    """A completion as text (chat completions are [{"role": "assistant", "content": ...}]), cut where
    sampling would have stopped: a completion-mode model that runs on writes the next question."""
    text = completion if isinstance(completion, str) else "".join(m["content"] for m in completion)
    for stop in prompts.STOP:
        text = text.split(stop)[0]
    return text


def answers(task, completions) -> list[str | None]:
    return [task.extract(completion_text(c)) for c in completions]


def same(task, a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and (a == b or task.is_equivalent(a, b))


def majority(ctx: RewardContext) -> Reward:
    def reward(prompts, completions, label, **_) -> list[float | None]:
        return [None if lab is None else float(same(ctx.task, a, lab))
                for a, lab in zip(answers(ctx.task, completions), label)]
    return reward


def _passes(ctx: RewardContext, completions, question, question_id) -> list[bool]:
    samples = [Sample(question_id=q, round=0, index=i, prompt_format="", seed=0, model="", adapter=None,
                      text=completion_text(c), answer=ctx.task.extract(completion_text(c)), num_tokens=0,
                      truncated=False, logprob=0.0)
               for i, (c, q) in enumerate(zip(completions, question_id))]
    verdicts = run_gates(ctx.gates, [Candidate(s, None, q) for s, q in zip(samples, question)])
    return [all(v.passed for v in per_gate.values()) for per_gate in verdicts]


def gates(ctx: RewardContext) -> Reward:
    def reward(prompts, completions, question, question_id, **_) -> list[float]:
        return [float(ok) for ok in _passes(ctx, completions, question, question_id)]
    return reward


def verified_majority(ctx: RewardContext) -> Reward:
    agree, checked = majority(ctx), gates(ctx)

    def reward(prompts, completions, **columns) -> list[float | None]:
        return [None if m is None else m * g
                for m, g in zip(agree(prompts, completions, **columns), checked(prompts, completions, **columns))]
    return reward


def vote_share(ctx: RewardContext) -> Reward:
    def reward(prompts, completions, vote_counts, **_) -> list[float | None]:
        out = []
        for a, raw in zip(answers(ctx.task, completions), vote_counts):
            counts = json.loads(raw)
            total = sum(counts.values())
            votes = next((n for ans, n in counts.items() if same(ctx.task, a, ans)), 0)
            out.append(votes / total if total else None)
        return out
    return reward


def random_reward(ctx: RewardContext) -> Reward:
    """1 or 0 by a seeded coin per (step, question, completion): no information about correctness."""
    def reward(prompts, completions, question_id, trainer_state=None, **_) -> list[float]:
        step = trainer_state.global_step if trainer_state is not None else 0
        return [float(zlib.crc32(f"{ctx.seed}/{step}/{q}/{completion_text(c)}/{i}".encode()) % 2)
                for i, (c, q) in enumerate(zip(completions, question_id))]
    return reward


def semantic_entropy(ctx: RewardContext) -> Reward:
    """EMPO: the share of its question's trained samples whose answer is equivalent to this one's (its
    semantic cluster's probability); 0 for a sample without an answer. A group's mean reward is
    sum_c p_c^2, so raising it lowers the semantic entropy of the group's answers. Unlike vote_share
    (the round's voters, fixed before training) the cluster is the trained group itself, so it needs no
    vote. A question's samples may be spread over processes (trl#3896): every process gathers the
    batch's answers (each calls the reward in step, as the Recorder's gather already relies on)."""
    def reward(prompts, completions, question_id, **_) -> list[float]:
        from accelerate.utils import gather_object

        mine = answers(ctx.task, completions)
        groups: dict[str, list] = {}
        for q, a in gather_object(list(zip(question_id, mine))):
            groups.setdefault(q, []).append(a)
        return [0.0 if a is None else sum(same(ctx.task, a, b) for b in groups[q]) / len(groups[q])
                for q, a in zip(question_id, mine)]
    return reward


def certainty(logp) -> float:
    """INTUITOR's self-certainty of one completion from its [tokens, vocab] log-probabilities: the mean
    over tokens of KL(uniform || p) = -log V - mean_j log p_j."""
    return float((-logp.mean(-1) - math.log(logp.shape[-1])).mean())


def negative_entropy(logp) -> float:
    """RENT's reward for one completion from its [tokens, vocab] log-probabilities: minus the mean over
    tokens of the next-token entropy H = -sum_j p_j log p_j (0 for a certain model, -log V at most)."""
    import torch

    return -float(torch.special.entr(logp.exp()).sum(-1).mean())


def self_certainty(ctx: RewardContext) -> Reward:
    """INTUITOR: `certainty` of the completion under the policy being trained (high when the model is
    sure of each next token)."""
    return _policy_reward(ctx, "self_certainty", certainty)


def token_entropy(ctx: RewardContext) -> Reward:
    """RENT: `negative_entropy` of the completion under the policy being trained. Both score the
    model's own next-token distribution (temperature 1), not the sampler's: the confidence of the
    model, whatever temperature the trained samples were drawn at."""
    return _policy_reward(ctx, "token_entropy", negative_entropy)


def _policy_reward(ctx: RewardContext, name: str, measure) -> Reward:
    """A reward computed by `measure(logp)` from the policy's log-probabilities at each completion token
    (None for an empty completion)."""
    def reward(prompts, completions, completion_ids, **_) -> list[float | None]:
        import torch

        model, tokenizer = ctx.policy.model, ctx.policy.tokenizer
        if model is None:
            raise RuntimeError(f"{name} needs the policy model (RewardContext.policy), which is not set")
        was_training = model.training
        model.eval()
        out = []
        try:
            with torch.no_grad():
                for prompt, ids in zip(prompts, completion_ids):
                    if not ids:
                        out.append(None)
                        continue
                    head = (tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
                            if isinstance(prompt, list) else tokenizer(prompt)["input_ids"])
                    head = list(head["input_ids"] if isinstance(head, dict) else head)
                    x = torch.tensor([head + list(ids)], device=model.device)
                    logp = torch.log_softmax(model(input_ids=x).logits[0, len(head) - 1:-1].float(), dim=-1)
                    out.append(measure(logp))
        finally:
            model.train(was_training)
        return out
    return reward


class Scorer:
    """The one reward function TRL sees: the weighted sum of the named rewards (None where none applies).

    `record(columns, completions, parts, totals)` is called after each batch (the step records)."""

    __name__ = "reward"

    def __init__(self, parts: dict[str, Reward], weights: dict[str, float], record=None):
        self.parts, self.weights, self.record = parts, weights, record

    def __call__(self, prompts, completions, **columns) -> list[float | None]:
        # Under dynamic sampling (dynamic.py) a slot may hold a replacement question, whose prompt comes
        # as a column: TRL passes the rewards the batch's original prompts.
        if "trained_prompt" in columns:
            prompts = columns.pop("trained_prompt")
        parts, totals = self.score(prompts, completions, **columns)
        if self.record is not None:
            self.record(columns, completions, parts, totals)
        return totals

    def score(self, prompts, completions, **columns) -> tuple[dict[str, list], list[float | None]]:
        """Each named reward's values and their weighted sum, unrecorded (dynamic sampling screens with it)."""
        parts = {name: fn(prompts, completions, **columns) for name, fn in self.parts.items()}
        totals = []
        for i in range(len(completions)):
            given = [(self.weights[n], v[i]) for n, v in parts.items() if v[i] is not None]
            totals.append(sum(w * x for w, x in given) if given else None)
        return parts, totals


def build_scorer(weights: dict[str, float], ctx: RewardContext, record=None) -> Scorer:
    """A Scorer from config names (built-in or 'package.module:factory') and their weights."""
    targets = {name: entry.target for name, entry in REWARDS.items()}
    parts = {name: plugins.resolve(name, targets, "adapt.options.rewards")(ctx) for name in weights}
    return Scorer(parts, dict(weights), record)
