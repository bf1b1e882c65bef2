"""Adapt: turn kept paths into training examples in the four formats and fine-tune with TRL.

Reads the round's kept samples (and, optionally, earlier rounds' and a labelled replay set);
writes `train.jsonl` (the exact prompt/completion pairs trained on), `train_log.jsonl` (TRL's
loss history) and the round's weights: a PEFT adapter folder (LoRA) or a full model folder.
The loss is on the completion only (TRL's prompt-completion format). With `adapt.ema` the saved
weights are averaged with the round's starting weights (see `ema.py`).
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from transformers import PrinterCallback, TrainerCallback

from selfimprove import ema, prompts
from selfimprove.generate import progress_bar
from selfimprove.config import AdaptConfig
from selfimprove.records import Example, Exemplar, TrustedPath, to_row


@dataclass(frozen=True)
class ModelState:
    """Which weights a round samples from: the base model plus an adapter, or a fully tuned model."""

    model: str
    adapter: str | None = None


def examples_for(paths: list[TrustedPath], formats: dict[str, float], exemplars: list[Exemplar], chat: bool,
                 round_: int, seed: int, answer_prefix: str = "The answer is") -> list[Example]:
    """Each path in each format with that format's probability (1.0 = always), deterministically."""
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


def read_replay(path: str) -> list[TrustedPath]:
    """A labelled set mixed into every round (replay against forgetting): JSONL of question/rationale/answer."""
    rows = []
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"adapt.replay file {path} does not exist")
    for n, line in enumerate(file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{n}: not valid JSON ({err.msg})") from None
        missing = [k for k in ("question", "answer") if k not in row]
        if missing:
            raise ValueError(f"{path}:{n}: missing field(s) {missing}; each row needs question, rationale, answer")
        rows.append(TrustedPath(f"replay/{n}", row["question"], row.get("rationale", ""), str(row["answer"])))
    return rows


def train(examples: list[dict], start: ModelState, base_model: str, cfg: AdaptConfig, out_dir: Path,
          seed: int, dtype: str = "auto", device: str = "auto") -> list[dict]:
    """Fine-tune `start` on `examples` and save the result into `out_dir`. Returns the loss history."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, PeftModel
    from trl import SFTConfig, SFTTrainer

    from selfimprove.backends.transformers import load_model_and_tokenizer, resolve_device

    device = resolve_device(device)
    model, tokenizer = load_model_and_tokenizer(start.model if cfg.method == "full" else base_model, dtype, device)
    tokenizer.padding_side = "right"  # training pads on the right; generation on the left
    peft_config = None
    if cfg.method == "lora":
        if start.adapter:
            model = PeftModel.from_pretrained(model, start.adapter, is_trainable=True)
        else:
            peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                     target_modules=cfg.lora_target_modules, task_type="CAUSAL_LM")
    cuda = device.startswith("cuda")
    scratch = tempfile.mkdtemp(prefix="selfimprove-trainer-")  # TRL's own files; the weights go to out_dir
    args = SFTConfig(
        output_dir=scratch, per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps, max_length=cfg.max_length,
        bf16=cuda and torch.cuda.is_bf16_supported(), gradient_checkpointing=False, logging_steps=1,
        save_strategy="no", report_to=[], seed=seed, data_seed=seed, completion_only_loss=True,
        lr_scheduler_type="constant_with_warmup" if cfg.method == "lora" else "cosine", warmup_steps=0,
        use_cpu=not cuda, dataloader_num_workers=0, disable_tqdm=True,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
    )
    dataset = Dataset.from_list([{"prompt": e["prompt"], "completion": e["completion"]} for e in examples])
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=peft_config, callbacks=[RichProgress()])
    trainer.remove_callback(PrinterCallback)  # RichProgress shows the loss; train_log.jsonl keeps it all
    trainer.train()
    shutil.rmtree(scratch, ignore_errors=True)
    tokenizer.padding_side = "left"
    if cfg.ema is not None and cfg.method == "full":
        ema.blend_model(trainer.model, start.model, cfg.ema, dtype, device)
    trainer.model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    if cfg.ema is not None and cfg.method == "lora" and start.adapter:  # round 1 has no adapter to average with
        ema.blend_adapter(start.adapter, out_dir, cfg.ema)
    return [h for h in trainer.state.log_history if "loss" in h]


class RichProgress(TrainerCallback):
    """A rich progress bar for training that shows the latest loss (TRL's own bar prints every log dict)."""

    def on_train_begin(self, args, state, control, **kwargs):
        self.bar = progress_bar()
        self.bar.start()
        self.task = self.bar.add_task("training", total=state.max_steps)

    def on_step_end(self, args, state, control, **kwargs):
        self.bar.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.bar.update(self.task, description=f"training (loss {float(logs['loss']):.3f})")

    def on_train_end(self, args, state, control, **kwargs):
        self.bar.stop()


def example_rows(examples: list[Example]) -> list[dict]:
    return [to_row(e) for e in examples]
