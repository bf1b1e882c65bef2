"""SFT, the LMSI / STaR / ReST-EM adaptation: fine-tune with TRL on the round's trusted paths.

`sft` (the `adapt.method: sft` plug-in) builds the round's training set (`examples.py`), trains
the learner's weights on it with TRL's `SFTTrainer` (loss on the completion only; LoRA or full
weights per `adapt.tuning`) and writes the round's weights (`adapter/`, a PEFT folder, or
`model/`) with `train_log.jsonl` (TRL's loss history). With `adapt.ema` the saved weights are
averaged with the round's starting weights (see `ema.py`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from transformers import PrinterCallback, TrainerCallback

from selfimprove.rundir import layout
from selfimprove.adapt import ema
from selfimprove.adapt.base import Adapted, AdaptInputs, start_weights
from selfimprove.adapt.examples import training_set
from selfimprove.sections import AdaptConfig, ModelConfig
from selfimprove.context import RunContext
from selfimprove.progress import progress_bar
from selfimprove.records import Weights


def sft(ctx: RunContext, round_: int, inputs: AdaptInputs) -> Adapted:
    """Train on the round's training set; no examples = the learner's weights stay as they are."""
    examples = training_set(ctx, round_, inputs.samples, inputs.verdicts, inputs.items)
    if not examples:
        return Adapted(inputs.learner, [], 0)
    start = start_weights(ctx, inputs)
    cfg = ctx.config.adapt
    name = layout.round_file(round_, layout.ADAPTER if cfg.tuning == "lora" else layout.MODEL)

    def build(tmp: Path) -> None:
        if cfg.launch == "accelerate":  # several processes; the loop waits here
            from selfimprove.adapt.launch import train_distributed

            log = train_distributed(examples, start, cfg, tmp, ctx.config.run.seed + round_, ctx.config.model)
        else:
            log = train(examples, start, cfg, tmp, ctx.config.run.seed + round_, ctx.config.model)
        (tmp / "train_log.json").write_text(json.dumps(log))  # commits with the weights: a kill can't split them

    folder = ctx.store.produce_dir(name, build)
    log = ctx.store.produce_jsonl(layout.round_file(round_, layout.TRAIN_LOG),
                                  lambda: json.loads((folder / "train_log.json").read_text()))
    path = str(folder.resolve())
    trained = Weights(start.model, path) if cfg.tuning == "lora" else Weights(path)
    return Adapted(trained, log, len(examples))


def train(examples: list[dict], start: Weights, cfg: AdaptConfig, out_dir: Path, seed: int,
          model_cfg: ModelConfig | None = None, world_size: int = 1) -> list[dict]:
    """Fine-tune `start` on `examples` (prompt/completion rows) and save the result into `out_dir`.
    LoRA continues `start.adapter` when there is one. Returns the loss history. `world_size` > 1: this is
    one of that many processes under `accelerate launch` (launch.py), each taking its share of the batch."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from selfimprove import models

    dtype, device = (model_cfg.dtype, model_cfg.device) if model_cfg else ("auto", "auto")
    remote = model_cfg.trust_remote_code if model_cfg else False
    device = models.resolve_device(device)
    tokenizer = models.load_tokenizer(start, remote, padding_side="right")  # training pads on the right
    model = models.load_model(start if cfg.tuning == "lora" else Weights(start.model), dtype, device, remote,
                              trainable_adapter=True)
    peft_config = None
    if cfg.tuning == "lora" and not start.adapter:
        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                 target_modules=cfg.lora_target_modules, task_type="CAUSAL_LM")
    cuda = device.startswith("cuda")
    scratch = tempfile.mkdtemp(prefix="selfimprove-trainer-")  # TRL's own files; the weights go to out_dir
    args = SFTConfig(
        output_dir=scratch, per_device_train_batch_size=cfg.batch_size // world_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps, max_length=cfg.max_length,
        bf16=cuda and torch.cuda.is_bf16_supported(), gradient_checkpointing=False, logging_steps=1,
        save_strategy="no", report_to=[], seed=seed,  # run.report_to logs train_log.jsonl: outputs/tracking.py says why
        data_seed=seed, completion_only_loss=True,
        lr_scheduler_type="constant_with_warmup" if cfg.tuning == "lora" else "cosine", warmup_steps=0,
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
    if world_size > 1:
        trainer.save_model(str(out_dir))  # gathers sharded weights (ZeRO-3, FSDP); the main process writes
        if trainer.is_world_process_zero():
            (Path(out_dir) / "training_args.bin").unlink(missing_ok=True)
            if cfg.ema is not None and start.adapter:
                ema.blend_adapter(start.adapter, out_dir, cfg.ema)
        return [h for h in trainer.state.log_history if "loss" in h]
    if cfg.ema is not None and cfg.tuning == "full":
        ema.blend_model(trainer.model, start.model, cfg.ema, dtype, device)
    trainer.model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    if cfg.ema is not None and cfg.tuning == "lora" and start.adapter:  # round 1 has no adapter to average with
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


if __name__ == "__main__":  # one process of `accelerate launch` (adapt.launch)
    import sys

    from selfimprove.adapt.launch import run_job

    run_job(sys.argv[1], train)
