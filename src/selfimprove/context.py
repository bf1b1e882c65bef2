"""What every stage of a run shares: its config, run directory, task, engine and collected data.

The loop builds one `RunContext` per run and hands it to each stage's entry point; a stage reads
what it needs from it and writes its own artifact. Nothing here does work.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console

from selfimprove.backends import Backend
from selfimprove.config import Config
from selfimprove.prompts import PromptStyle
from selfimprove.records import Item, Weights
from selfimprove.store import RunStore


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

    @property
    def base_sampler(self) -> Weights:
        return Weights(self.config.model.name)

    @property
    def base_learner(self) -> Weights:
        """The weights that are trained and evaluated before any round: the model itself, or a student."""
        return Weights(self.config.adapt.learner or self.config.model.name)

    @property
    def teacher_samples(self) -> bool:
        """True when another model (the teacher, model.name) samples for the learner (adapt.learner)."""
        return self.config.adapt.learner is not None
