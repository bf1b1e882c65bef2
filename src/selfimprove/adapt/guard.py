"""The collapse guard of label-free RL: probe every N steps, stop and restore the best weights when
held-out accuracy falls or a label-free signal leaves its band.

Self-rewarded RL can rise and then collapse (SRT: "sudden and complete performance collapse";
INTUITOR#26: entropy collapse). `CollapseGuard` is a transformers `TrainerCallback`: at step 0 it
saves the starting weights (`start/`), then every `probe_every` steps and at the last step it
- measures greedy held-out accuracy with the in-memory model (`greedy_probe`; None without a
  held-out set, as in test-time training, where the questions' answers must not steer training),
  or with `probe: votes` its agreement with the round's own vote (label-free);
- averages the label-free signals of the steps since the last probe (`signals.py`: answer entropy and
  agreement within each question's group, completion length), and compares each banded signal with
  its value over the first probe window;
- stops training after `patience` alarms in a row (one, by default; a probe on a few hundred
  questions is noisy, and a dip that recovers is not a collapse), or on an alarm at the last step
  (a round never ends on alarming weights), and names the weights to restore: the best probe by
  accuracy (the last healthy probe without accuracy). With `load_best_at_end` (transformers'
  `load_best_model_at_end`) the best probe's weights end the round even without a stop: rounds
  chained this way never end below the best probe of the run.
The trainer saves a checkpoint at every healthy probe, and the guard marks the best one
(`state.best_model_checkpoint`) so checkpoint rotation keeps it.
Every probe and the decision are written to `guard.json` in the work folder (the round's
`rl_guard.json` once committed). On resume the probes after the resumed checkpoint are dropped:
they will be run again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from transformers import TrainerCallback

from selfimprove.adapt.signals import signals

GUARD_FILE = "guard.json"
START = "start"  # the step-0 weights, for a restore to before the first step


def greedy_probe(model, tokenizer, prompts: list, gold: list[str], task, max_new_tokens: int,
                 batch_size: int = 64) -> float:
    """Greedy accuracy of the in-memory model on labelled prompts (completion strings or chat messages)."""
    import torch

    from selfimprove.adapt.rewards import completion_text, same

    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"
    right = 0
    try:
        for start in range(0, len(prompts), batch_size):
            batch = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False)
                     if isinstance(p, list) else p for p in prompts[start:start + batch_size]]
            enc = tokenizer(batch, return_tensors="pt", padding=True).to(model.device)
            with torch.no_grad():
                out = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            right += sum(same(task, task.extract(completion_text(t)), g)
                         for t, g in zip(texts, gold[start:start + batch_size]))
    finally:
        model.train(was_training)
        tokenizer.padding_side = side
    return right / len(prompts)


class CollapseGuard(TrainerCallback):
    """See the module docstring. `probe(model) -> accuracy | None`; `rows(first, last)` -> the sample
    rows of steps first..last (the recorder's, the same in every process)."""

    def __init__(self, probe: Callable, rows: Callable[[int, int], list[dict]], probe_every: int,
                 tolerance: float, bands: dict[str, float], work: Path, patience: int = 1,
                 load_best_at_end: bool = False, kind: str = "heldout"):
        self.probe, self.rows = probe, rows
        self.probe_every, self.tolerance, self.bands, self.patience = probe_every, tolerance, bands, patience
        self.load_best_at_end, self.kind = load_best_at_end, kind  # kind: what `probe` scores against
        self.work = Path(work)
        self.probes: list[dict] = []
        self.stopped: dict | None = None  # {"step", "reason"} when an alarm stopped training

    # --- state -------------------------------------------------------------------------------------

    def save(self) -> None:
        (self.work / GUARD_FILE).write_text(json.dumps(self.report(), indent=1))

    def report(self) -> dict:
        best = self.best()
        return {"probes": self.probes, "stopped": self.stopped, "best_step": best["step"] if best else None,
                "best_accuracy": best["accuracy"] if best else None, "restore_step": self.restore_step(),
                "tolerance": self.tolerance, "bands": self.bands, "probe_every": self.probe_every,
                "patience": self.patience, "load_best_at_end": self.load_best_at_end, "probe": self.kind}

    def best(self) -> dict | None:
        """The probe whose weights are the best known: highest accuracy (earliest on a tie); without
        held-out accuracy, the last probe with no alarm."""
        healthy = [p for p in self.probes if p["alarm"] is None]
        scored = [p for p in healthy if p["accuracy"] is not None]
        if scored:
            return max(scored, key=lambda p: (p["accuracy"], -p["step"]))
        return healthy[-1] if healthy else None

    def restore_step(self) -> int | None:
        """The step whose weights end the round, when it is not the last step trained (else None)."""
        best = self.best()
        if best is None or not (self.stopped or self.load_best_at_end) or best is self.probes[-1]:
            return None
        return best["step"]

    # --- the checks --------------------------------------------------------------------------------

    def alarm(self, accuracy: float | None, window: dict) -> str | None:
        best = self.best()
        if accuracy is not None and best is not None and best["accuracy"] is not None:
            drop = best["accuracy"] - accuracy
            if drop > self.tolerance + 1e-9:  # a fall of exactly the tolerance is within it (float noise aside)
                return (f"held-out accuracy {accuracy:.3f} is {drop:.3f} below its best {best['accuracy']:.3f} "
                        f"(step {best['step']}), more than the tolerance {self.tolerance}")
        reference = next((p["signals"] for p in self.probes if p["step"] > 0 and p["signals"]), None)
        for name, band in self.bands.items():
            if reference is None or name not in window or name not in reference:
                continue
            ref, value = reference[name], window[name]
            moved = abs(value - ref) / abs(ref) if ref else abs(value - ref)
            if moved > band + 1e-9:
                return (f"{name} {value:.3f} left its band: moved {moved:.0%} from {ref:.3f} over the first "
                        f"probe window (band {band:.0%})")
        return None

    def check(self, step: int, model) -> dict:
        last = self.probes[-1]["step"] if self.probes else 0
        window = signals(self.rows(last + 1, step)) if step else {}
        accuracy = self.probe(model)
        probe = {"step": step, "accuracy": accuracy, "signals": window, "alarm": self.alarm(accuracy, window)}
        self.probes.append(probe)
        return probe

    # --- trainer events ----------------------------------------------------------------------------

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        saved = self.work / GUARD_FILE
        if saved.exists():  # a resumed run: keep what the resumed checkpoint had seen
            data = json.loads(saved.read_text())
            self.probes = [p for p in data["probes"] if p["step"] <= state.global_step]
            stopped = data["stopped"]
            self.stopped = stopped if stopped and stopped["step"] <= state.global_step else None
        if state.global_step == 0 and not self.probes:
            if state.is_world_process_zero:  # every process probes (same weights, same verdict); one writes
                model.save_pretrained(self.work / START)
            self.check(0, model)
            if state.is_world_process_zero:
                self.save()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        if step % self.probe_every and step < state.max_steps:
            return control
        probe = self.check(step, model)
        in_a_row = next((n for n, p in enumerate(reversed(self.probes)) if not p["alarm"]), len(self.probes))
        if probe["alarm"] and (in_a_row >= self.patience or step >= state.max_steps):
            self.stopped = {"step": step, "reason": probe["alarm"]}
            control.should_training_stop = True
        elif not probe["alarm"]:
            control.should_save = True  # every healthy probe is a checkpoint a later alarm can go back to
            if self.best() is probe:
                state.best_model_checkpoint = str(Path(args.output_dir) / f"checkpoint-{step}")
        if state.is_world_process_zero:
            self.save()
        return control
