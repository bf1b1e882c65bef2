"""What every stage of a run shares: its config, run directory, task, engine and collected data.

The loop builds one `RunContext` per run and hands it to each stage's entry point; a stage reads
what it needs from it and writes its own artifact. Nothing here does work.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console

from selfimprove.rundir import layout
from selfimprove.backends import Backend
from selfimprove.rundir.finished import resolve_weights
from selfimprove.prompts import PromptStyle
from selfimprove.records import Item, Weights
from selfimprove.sections import Config
from selfimprove.rundir.store import RunStore


@dataclass(frozen=True)
class Collected:
    """The run's questions, collected once: the unlabeled pool, its hidden gold, held-out and anchor sets."""

    pool: list[Item]
    gold: dict[str, str]  # pool question id -> gold answer: diagnostics only, never training
    heldout: list[Item]
    anchor: list[Item]  # the original skill, for forgetting ([] when monitor.anchor_source is unset)


@dataclass
class RunContext:
    config: Config
    store: RunStore
    task: object  # tasks.base.Task
    backend: Backend  # created once per run; told per call which weights to use
    data: Collected
    style: PromptStyle  # how the sampling model is prompted
    console: Console
    # How the learner is prompted (its training pairs and held-out evaluation) when it is another model
    # than the sampler, with a tokenizer and chat template of its own; None = the same as `style`.
    learner_style: PromptStyle | None = None

    @property
    def base_sampler(self) -> Weights:
        """model.name's weights: the model, or the final weights of the finished run it names."""
        return resolve_weights(self.config.model.name)

    @property
    def base_learner(self) -> Weights:
        """The weights that are trained and evaluated before any round: the model itself, or a student."""
        return resolve_weights(self.config.adapt.learner) if self.config.adapt.learner else self.base_sampler

    @property
    def student_style(self) -> PromptStyle:
        """How the learner is prompted: its own style when a teacher samples for it."""
        return self.learner_style or self.style

    def round_gold(self, round_: int) -> dict[str, str]:
        """Gold answers of round `round_`'s questions, for diagnostics only: the collected pool's, plus those
        its acquisition knew (`rounds/rNN/pool_gold.jsonl`, written by a source that makes questions)."""
        name = layout.round_file(round_, layout.ROUND_GOLD)
        acquired = {r["id"]: r["gold"] for r in self.store.read_jsonl(name)} if self.store.done(name) else {}
        return {**self.data.gold, **acquired}

    @property
    def teacher_samples(self) -> bool:
        """True when another model (the teacher, model.name) samples for the learner (adapt.learner)."""
        return self.config.adapt.learner is not None
