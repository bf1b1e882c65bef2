"""The run directory's layout: the one place that spells where each artifact lives.

    config.yaml  environment.json  manifest.json  metrics.jsonl  summary.json
    pool.jsonl (questions, no answers)  pool_gold.jsonl (hidden; diagnostics only)  heldout.jsonl  anchor.jsonl
    rounds/rNN/  inputs.json pool.jsonl own_exemplars.jsonl samples.jsonl votes.jsonl verdicts.jsonl train.jsonl train_log.jsonl
                 (acquire/) pool_gold.jsonl written.jsonl variants.jsonl difficulty.jsonl proposed.jsonl
                            proposer_log.jsonl proposer/
                 adapter/ or model/  eval.json eval_samples.jsonl anchor_samples.jsonl metrics.json
                 (RL) rl_samples.jsonl rl_steps.jsonl rl_guard.json; rl_work/ while training runs
    answers.jsonl (`selfimprove ttt`: the adapted model's answers, transductive)
    review/marks.jsonl  review/log.jsonl  cache/  damaged/

Every module that reads or writes an artifact names it through this module; `round_of` parses a
name back, so nothing else slices path strings. `stage_rank` orders a round's artifacts by the stage
that writes them, so a damaged one is redone together with everything made from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CONFIG = "config.yaml"
ENVIRONMENT = "environment.json"
CONFIG_CHANGES = "config_changes.jsonl"
POOL = "pool.jsonl"
POOL_GOLD = "pool_gold.jsonl"
HELDOUT = "heldout.jsonl"
ANCHOR = "anchor.jsonl"
PROBE = "probe.json"  # the competence probe before round 1
HISTORY = "metrics.jsonl"
SUMMARY = "summary.json"
REVIEW_MARKS = "review/marks.jsonl"
REVIEW_LOG = "review/log.jsonl"

# Per round, under rounds/rNN/.
ROUND_POOL = "pool.jsonl"  # the questions this round samples (acquire)
ROUND_GOLD = "pool_gold.jsonl"  # gold of acquired questions where the task or loader knows it (diagnostics only)
WRITTEN = "written.jsonl"  # every question the model wrote, kept or dropped and why (acquire/written.py)
VARIANTS = "variants.jsonl"  # the tree question -> easier variants -> verdicts (acquire/variants.py)
DIFFICULTY = "difficulty.jsonl"  # measured agreement of the schedule's candidates (acquire/schedule.py)
PROPOSED = "proposed.jsonl"  # the trained proposer's questions: share, reward, kept or not (acquire/proposer.py)
PROPOSER_LOG = "proposer_log.jsonl"  # TRL's log of the proposer's update (acquire/proposer.py)
SAMPLES = "samples.jsonl"
OWN_EXEMPLARS = "own_exemplars.jsonl"  # the few-shot exemplars chosen from the model's own answers (stages/own_exemplars.py)
EXEMPLARS = "exemplars.jsonl"  # the exemplars retrieved from memory for each pool question (cot_retrieved)
EVAL_EXEMPLARS = "eval_exemplars.jsonl"  # the same for the held-out questions
VOTES = "votes.jsonl"
DEBATE = "debate.jsonl"  # every turn of every agent, when the vote is reached by debate (voting/debate.py)
VERDICTS = "verdicts.jsonl"
TRAIN = "train.jsonl"
TRAIN_LOG = "train_log.jsonl"
ADAPTER = "adapter"  # PEFT folder (LoRA)
MODEL = "model"  # full weights
EVAL = "eval.json"  # the scores of the round's weights (held-out, verified vote, anchor)
EVAL_SAMPLES = "eval_samples.jsonl"
ANCHOR_SAMPLES = "anchor_samples.jsonl"
METRICS = "metrics.json"
REVIEW_APPLIED = "review_applied.json"
INPUTS = "inputs.json"  # a digest of what the round started from: when it changes, the round is redone
# Label-free RL (adapt/grpo.py), per round.
RL_SAMPLES = "rl_samples.jsonl"  # every sample RL trained on: step, answer, its question's vote, its rewards
RL_STEPS = "rl_steps.jsonl"  # per step: reward, label-free signals, held-out probe, diagnostics against gold
RL_GUARD = "rl_guard.json"  # the collapse guard's probes and decision (stopped? which step's weights)
RL_WORK = "rl_work"  # the trainer's checkpoints and in-progress records; removed once the round commits
# Test-time training (ttt.py), at the run's top level.
ANSWERS = "answers.jsonl"

# A round's artifacts by the stage that writes them, in order; artifacts written together (by one
# stage's build) share a rank, so one of them missing redoes them all. A plug-in's own round files are
# not listed here: its declaration names each with its stage (`Artifact`), and the run passes them to
# `stage_rank`; a name neither lists ranks with the weights (the adaptation method's, say).
STAGES = {"acquire": (ROUND_POOL, ROUND_GOLD), "own_exemplars": (OWN_EXEMPLARS,), "generate": (EXEMPLARS, SAMPLES),
          "vote": (VOTES,), "curate": (VERDICTS,), "review": (REVIEW_APPLIED, TRAIN), "adapt": (ADAPTER, MODEL),
          "train_log": (TRAIN_LOG,), "evaluate": (EVAL_EXEMPLARS, EVAL, EVAL_SAMPLES, ANCHOR_SAMPLES),
          "metrics": (METRICS,)}


@dataclass(frozen=True)
class Artifact:
    """A round file a plug-in writes (under rounds/rNN/) and the stage (a `STAGES` key) it is written in:
    a damaged one is redone with that stage and everything after it."""

    name: str
    stage: str

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"artifact {self.name!r}: unknown stage {self.stage!r}; use one of {', '.join(STAGES)}")


_RANK = {stage: rank for rank, stage in enumerate(STAGES)}
_ROUND = re.compile(r"^rounds/r(\d+)/")


def round_dir(r: int) -> str:
    return f"rounds/r{r:02d}"


def round_file(r: int, name: str) -> str:
    return f"{round_dir(r)}/{name}"


def round_of(name: str) -> int | None:
    """The round an artifact name belongs to ("rounds/r03/votes.jsonl" -> 3), or None."""
    match = _ROUND.match(name)
    return int(match.group(1)) if match else None


def stage_rank(name: str, declared: tuple[Artifact, ...] = ()) -> int:
    """Where a round artifact's stage comes in the round (rounds/r01/samples.jsonl.parts/00003.jsonl
    ranks with samples.jsonl); `declared` are the run's plug-ins' own files, each at its stage."""
    first = _ROUND.sub("", name).split("/")[0].removesuffix(".parts")
    own = next((a.stage for a in declared if a.name == first), None)
    stage = own or next((stage for stage, names in STAGES.items() if first in names), "adapt")
    return _RANK[stage]


def finished_rounds(names) -> list[int]:
    """Rounds (0 = the base model's evaluation) whose metrics.json is among `names`, in order."""
    return sorted(r for name in names if (r := round_of(name)) is not None and name == round_file(r, METRICS))
