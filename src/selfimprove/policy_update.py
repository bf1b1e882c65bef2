"""A policy-gradient update on completions a model already wrote, with rewards already computed: GRPO
through TRL's `GRPOTrainer`, which samples nothing itself.

    log = update(start, groups, out, work, UpdateSettings(...))

Each `Group` is one prompt with the completions sampled from it (by the run's engine, from `start`'s
weights) and one reward each. The trainer's `rollout_func` hands it back those completions, tokenized,
instead of sampling new ones, and its reward function returns the given rewards; TRL then computes
the group-relative advantages and the clipped policy-gradient loss as for any GRPO step. The update is
on-policy when `start` is the weights that sampled the groups (acquire/proposer.py: the proposer's
questions, rewarded by how the solver answers them).

Shared ground: a stage that trains a policy on its own scored samples (an acquisition source's
proposer) calls it; it reads nothing from the run directory. Writes the LoRA adapter (continued from
`start.adapter`, or a new one) into `out` and TRL's checkpoints into `work`; returns TRL's log rows.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path

from selfimprove.records import Prompt, Weights

REWARD_COLUMN = "given_reward"  # the extra column that carries each completion's reward to the reward function


@dataclass(frozen=True)
class Group:
    prompt: Prompt
    completions: list[str]  # as sampled (the text the engine returned)
    rewards: list[float]


@dataclass(frozen=True)
class UpdateSettings:
    learning_rate: float
    groups_per_step: int  # groups in one optimizer step; every group is trained on once
    temperature: float  # the temperature the groups were sampled at: TRL scales the logits by it
    max_new_tokens: int
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_target_modules: str | list[str] = "all-linear"
    dtype: str = "auto"
    device: str = "auto"
    trust_remote_code: bool = False
    seed: int = 0


class GivenRollouts:
    """TRL's rollout_func: each prompt of a generation batch gets the next completion given for it (prompts
    repeat once per completion of their group; equal prompts share one queue), with its reward as a column."""

    def __init__(self, groups: list[Group], tokenizer):
        self.tokenizer = tokenizer
        self.queues: dict[str, deque] = defaultdict(deque)
        for g in groups:
            self.queues[json.dumps(g.prompt)].extend(zip(g.completions, g.rewards))

    def __call__(self, prompts: list, trainer) -> dict:
        taken = []
        for p in prompts:
            queue = self.queues[json.dumps(p)]
            taken.append(queue[0])
            queue.rotate(-1)  # a second pass (more epochs) takes them again, in order
        ids = [self.tokenizer(text, add_special_tokens=False).input_ids or [self.tokenizer.eos_token_id]
               for text, _ in taken]
        return {"prompt_ids": trainer._tokenize_prompts(prompts)[0], "completion_ids": ids, "logprobs": None,
                REWARD_COLUMN: [reward for _, reward in taken]}


def given_reward(prompts, completions, **columns) -> list[float]:
    """The reward function: the rewards the rollout carried, one per completion."""
    return [float(r) for r in columns[REWARD_COLUMN]]


def update(start: Weights, groups: list[Group], out: Path, work: Path, s: UpdateSettings) -> list[dict]:
    """One pass of GRPO over `groups` from `start` (every group the same size); the adapter is saved to
    `out`. Returns TRL's per-step log (loss, reward, ..., num_tokens)."""
    import os

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    from selfimprove import models

    sizes = sorted({len(g.completions) for g in groups})
    if len(sizes) != 1 or sizes[0] < 2:
        raise ValueError(f"GRPO needs groups of one size, at least 2; got sizes {sizes}")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is experimental in the pinned TRL
    device = models.resolve_device(s.device)
    cuda = device.startswith("cuda")
    tokenizer = models.load_tokenizer(start, s.trust_remote_code, padding_side="left")
    model = models.load_model(start, s.dtype, device, s.trust_remote_code, trainable_adapter=True)
    lora = None if start.adapter else LoraConfig(r=s.lora_r, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout,
                                                 target_modules=s.lora_target_modules, task_type="CAUSAL_LM")
    per_step = min(s.groups_per_step, len(groups))
    args = GRPOConfig(
        output_dir=str(work), per_device_train_batch_size=per_step * sizes[0], gradient_accumulation_steps=1,
        num_generations=sizes[0], learning_rate=s.learning_rate, num_train_epochs=1,
        max_steps=len(groups) // per_step, max_completion_length=s.max_new_tokens, temperature=s.temperature,
        beta=0.0, logging_steps=1, save_strategy="no", report_to=[], seed=s.seed, data_seed=s.seed,
        use_cpu=not cuda, bf16=cuda and torch.cuda.is_bf16_supported(), gradient_checkpointing=False,
        dataloader_num_workers=0, disable_tqdm=True, lr_scheduler_type="constant", warmup_steps=0)
    trainer = GRPOTrainer(model=model, reward_funcs=given_reward, args=args, processing_class=tokenizer,
                          train_dataset=Dataset.from_list([{"prompt": g.prompt} for g in groups]), peft_config=lora,
                          rollout_func=GivenRollouts(groups, tokenizer))
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    trainer.model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return [h for h in trainer.state.log_history if "loss" in h]
