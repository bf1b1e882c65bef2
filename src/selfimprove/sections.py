"""The run configuration's schema: one small pydantic section per stage, composed into `Config`.

Each section forbids unknown keys and documents every default with why. Loading a YAML file, the
command-line overrides and where each key was set (file:line) are `config.py`'s, which also checks an
adaptation method's own options against the rest of the config; this module knows no method.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from selfimprove.names import FORMATS, GUARDED_SIGNALS, LMSI_FORMATS, SHOWS_EXEMPLARS
from selfimprove.plugins import read_options  # noqa: F401 - plug-ins read their options here too
from selfimprove.tasks.base import Fields


def _known_format(name: str) -> None:
    if name not in FORMATS:
        raise ValueError(f"unknown format {name!r}; use one of {', '.join(FORMATS)}")


def known_signals(values: dict[str, float], known, what: str) -> dict[str, float]:
    """{signal: non-negative number} over the signals in `known`."""
    for name, value in values.items():
        if name not in known:
            raise ValueError(f"unknown signal {name!r}; use one of {', '.join(known)}")
        if value < 0:
            raise ValueError(f"{what} {name}={value} must be >= 0")
    return values


class Section(BaseModel):
    # allow_inf_nan=False: `temperature: .inf` or `learning_rate: .nan` is a mistake, not a setting.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class NoOptions(Section):
    """The options model of a plug-in that takes none: any option given is named as unknown."""


class RunConfig(Section):
    out_dir: str = "runs/default"  # everything the run writes lives here; rerunning resumes it
    seed: int = Field(0, ge=0)  # numpy and torch seeds are unsigned
    rounds: int = Field(3, ge=1)  # LMSI fine-tunes once; STaR/ReST-EM gain over 2-5 rounds
    # CPU threads for torch (sampling and training). None = $SELFIMPROVE_THREADS, else $OMP_NUM_THREADS, else
    # the CPUs idle when the run starts (at least 1; models.default_threads): all of them (torch's default)
    # thrash when other jobs hold cores. The quick demo on 2 cores: 2 threads 1.16x faster than 1 when idle,
    # 1.43x slower beside one busy process (benchmarks/thread_default.py).
    threads: int | None = Field(None, ge=1)
    # Set by `selfimprove ttt`: the run adapts on the very questions it answers and is scored on.
    transductive: bool = False
    # Where each round's metrics and its training log go (transformers' `report_to` names): tensorboard
    # (RUN_DIR/tensorboard, the core install), wandb (offline under RUN_DIR/wandb unless WANDB_MODE says
    # otherwise; the `wandb` extra), mlflow (RUN_DIR/mlruns unless MLFLOW_TRACKING_URI names a store; the
    # `mlflow` extra), or none. TensorBoard by default: it needs nothing more and writes nothing outside the run.
    report_to: list[Literal["tensorboard", "wandb", "mlflow", "none"]] = ["tensorboard"]

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return [v] if isinstance(v, str) else v  # `report_to: wandb` as transformers takes it

    @field_validator("report_to")
    @classmethod
    def _none_alone(cls, v: list[str]) -> list[str]:
        if "none" in v and len(v) > 1:
            raise ValueError(f"'none' cannot be given with other trackers ({', '.join(v)}): give 'none' alone")
        if len(set(v)) < len(v):
            raise ValueError(f"a tracker is named twice ({', '.join(v)})")
        return v


class ModelConfig(Section):
    name: str  # Hugging Face id or local folder: the model that samples (and, unless adapt.learner is set, learns)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto = bf16 on GPU, fp32 on CPU
    device: str = "auto"  # auto = cuda when available, else cpu; or cpu, cuda, cuda:N, mps
    trust_remote_code: bool = False  # run the model repository's own Python code (only for repos you trust)
    chat: Literal["auto", "on", "off"] = "auto"  # auto = use the chat template when the tokenizer has one

    @field_validator("chat", mode="before")
    @classmethod
    def _chat_as_written(cls, v):
        """`chat: on` unquoted is YAML's boolean true (and `off` false): read as the words the user wrote."""
        return ("on" if v else "off") if isinstance(v, bool) else v

    @field_validator("device")
    @classmethod
    def _known_device(cls, v: str) -> str:
        if v in ("auto", "cpu", "cuda", "mps") or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        raise ValueError(f"unknown device {v!r}; use auto, cpu, cuda, cuda:N or mps")


class TaskConfig(Section):
    name: str = "gsm8k"
    source: str | None = None  # file, folder or dataset id; None = the task's public dataset
    split: str = "train"  # the unlabeled pool; its gold answers are hidden from training
    limit: int | None = Field(None, ge=1)  # the first `limit` questions of the pool; None = all
    fields: Fields | None = None  # which columns hold question / answer / id in your own file
    eval_source: str | None = None  # None = same as source
    # The held-out set's columns when they differ from the pool's (an unlabeled pool with `answer: null`
    # beside a labelled held-out file, say); None = task.fields.
    eval_fields: Fields | None = None
    eval_split: str = "test"
    eval_limit: int | None = Field(200, ge=0)  # held-out questions scored every round (0 = none)

    @model_validator(mode="after")
    def _name_eval_fields(self):
        if self.eval_fields is not None:
            self.eval_fields.named("task.eval_fields")  # so a data error names the key to fix
        return self

    @property
    def heldout_fields(self) -> Fields | None:
        return self.eval_fields if self.eval_fields is not None else self.fields


class AcquireConfig(Section):
    # Where a round's questions come from (acquire/): "pool" = the collected pool, every round (LMSI);
    # "written" = questions the model writes from a few examples; "variants" = easier variants of the
    # questions the last vote did not trust (LADDER); "schedule" = by difficulty (a task knob per round, or
    # a band of measured agreement); "mix" = several at once: options {sources: [{method: pool}, ...]}.
    # A method is a name in acquire.METHODS or "package.module:function"; `options` are its keyword arguments
    # (each built-in method's docstring lists them; preflight checks their ranges before any work).
    method: str = "pool"
    options: dict[str, Any] = {}


class GenerateConfig(Section):
    backend: str = "transformers"  # a name from `selfimprove ls`, or "package.module:factory"
    backend_options: dict[str, Any] = {}  # handed to the backend as keyword arguments (see its docstring)
    k: int = Field(8, ge=1)  # samples per question per format (LMSI: 32; 8 already gives most of the gain)
    temperature: float = Field(0.7, ge=0)  # LMSI samples at T=0.7
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(16, ge=1)  # prompts per generate call; each brings k sequences
    formats: list[str] = Field(["cot_fewshot"], min_length=1)  # prompt styles to sample with
    num_exemplars: int | None = Field(None, ge=0)  # few-shot exemplars used (None = all the task has)
    # Whose worked examples the few-shot formats show while sampling (stages/own_exemplars.py): "task" = the task's
    # hand-written ones; "self" = chosen each round from the model's own confident zero-shot answers
    # (LMSI section 5.2), num_exemplars of them (None: 4). Held-out evaluation keeps the task's.
    exemplars: Literal["task", "self"] = "task"
    # Questions of the round sampled zero-shot (K paths each) to choose them from: 64 gives a few dozen
    # clear majorities even at 30-50% agreement, for 64 x K extra samples a round, a fraction of the round's.
    exemplar_candidates: int = Field(64, ge=1)
    checkpoint_every: int = Field(64, ge=1)  # questions per checkpointed chunk: a kill loses at most one

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, v: list[str]) -> list[str]:
        for f in v:
            _known_format(f)
        return v

    @model_validator(mode="after")
    def _own_exemplars_are_used_and_voted(self):
        if self.exemplars != "self":
            return self
        if not any(f in SHOWS_EXEMPLARS for f in self.formats):
            raise ValueError(f"generate.exemplars=self chooses few-shot exemplars, but no format in generate.formats "
                             f"{self.formats} shows any; add cot_fewshot to generate.formats, or set "
                             "generate.exemplars=task")
        if self.num_exemplars == 0:
            raise ValueError("generate.exemplars=self with generate.num_exemplars=0 chooses none; give "
                             "generate.num_exemplars >= 1 (or null: 4), or set generate.exemplars=task")
        if self.k < 2:
            raise ValueError(f"generate.exemplars=self chooses exemplars by a vote over each candidate's K paths, but "
                             f"generate.k={self.k} is no vote; set generate.k >= 2, or generate.exemplars=task")
        return self


class VoteConfig(Section):
    # How a question's answer is reached (stages/vote.py): "majority" = self-consistency over extracted answers.
    # A method is a name in vote.METHODS or "package.module:function"; `options` are its keyword arguments.
    method: str = "majority"
    options: dict[str, Any] = {}
    tie_break: Literal["first", "logprob", "abstain"] = "first"  # first = answer seen first wins
    # Gates a path must pass to vote at all, e.g. [{name: arithmetic, require_equations: true}]: paths
    # whose written arithmetic is wrong abstain, so the majority is taken over checked reasoning only.
    # A gate that judges a path against the vote (its declaration's trait) is refused here by preflight.
    require: list[dict[str, Any]] = []


class CurateConfig(Section):
    # Each gate: {"name": ..., <params>}. A path is kept only if every gate passes it.
    # min_votes: a question where one path of K answered has a vote share of 1.0 but no majority worth
    # the name; two agreeing answers is the least evidence a pseudo-label should rest on.
    gates: list[dict[str, Any]] = [{"name": "majority"}, {"name": "min_share", "threshold": 0.5},
                                   {"name": "min_votes", "count": 2}, {"name": "not_truncated"}]
    max_paths_per_question: int = Field(4, ge=1)  # stops easy questions from dominating the data
    dedupe: bool = True  # drop exact duplicate rationales within a question


class AdaptConfig(Section):
    # The adaptation algorithm (adapt/): "sft" (fine-tune on the kept paths), or "package.module:function".
    method: str = "sft"
    options: dict[str, Any] = {}  # the method's own keyword arguments
    tuning: Literal["lora", "full"] = "lora"  # which weights change: a LoRA adapter, or all of them
    # The model that is trained and evaluated. None = model.name (the model improves itself); another
    # model = it learns from model.name's trusted paths (distillation: a teacher samples, a student learns).
    learner: str | None = None
    init: Literal["base", "previous"] = "base"  # base = each round restarts from the base model (ReST-EM)
    data: Literal["replace", "accumulate"] = "replace"  # accumulate = train on all earlier rounds' kept paths too
    formats: dict[str, float] = {f: 1.0 for f in LMSI_FORMATS}  # chance each kept path is used in each format
    replay: str | None = None  # JSONL of labelled question/rationale/answer rows mixed into every round
    learning_rate: float = Field(2e-4, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, ge=-1)  # > 0 overrides epochs; -1 = train for `epochs`
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(2048, ge=8)  # prompt + completion tokens; longer examples are truncated by TRL
    group_by_length: bool = False  # batches of similar length: less padding, so fewer FLOPs a step
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_target_modules: str | list[str] = "all-linear"
    # After each round, weights = ema * the round's starting weights + (1 - ema) * the trained ones.
    # None = off. LoRA needs init=previous: averaging unrelated adapters' A and B matrices means nothing.
    ema: float | None = Field(None, ge=0, lt=1)
    # Where training runs (SFT or RL): "process" = in the loop's process; "accelerate" = under `accelerate
    # launch` in num_processes processes (one per GPU; gloo CPU processes without one). batch_size stays the
    # global batch.
    launch: Literal["process", "accelerate"] = "process"
    num_processes: int = Field(2, ge=1)
    accelerate_config: str | None = None  # TRL's multi_gpu, zero1-3, fsdp1-2, or a YAML file; None = DDP

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, v: dict[str, float]) -> dict[str, float]:
        for f, w in v.items():
            _known_format(f)
            if not 0 <= w <= 1:
                raise ValueError(f"format weight {f}={w} must be within [0, 1]")
        return v

    @field_validator("method")
    @classmethod
    def _method_not_tuning(cls, v: str) -> str:
        if v in ("lora", "full"):  # the meaning of adapt.method before 0.2
            raise ValueError(f"adapt.method is the algorithm now (sft, or package.module:function); "
                             f"write `adapt.tuning: {v}` for {v} weights")
        return v

    @field_validator("max_steps")
    @classmethod
    def _steps_or_epochs(cls, v: int) -> int:
        if v == 0:
            raise ValueError("0 steps trains nothing; give -1 (train for adapt.epochs) or a number of steps >= 1")
        return v

    @model_validator(mode="after")
    def _launch_splits_the_batch(self):
        if self.launch == "accelerate":
            if self.batch_size % self.num_processes:
                raise ValueError(f"adapt.batch_size={self.batch_size} is the global batch: it must divide among "
                                 f"adapt.num_processes={self.num_processes} processes")
            if self.ema is not None and self.tuning == "full":
                raise ValueError("adapt.ema with tuning=full averages the whole model in memory; with "
                                 "launch=accelerate use tuning=lora (the adapter files are averaged)")
        return self

    @model_validator(mode="after")
    def _ema_needs_previous_adapter(self):
        if self.ema is not None and self.tuning == "lora" and self.init == "base":
            raise ValueError("adapt.ema with method=lora needs init=previous (each round continues one adapter)")
        return self


class EvaluateConfig(Section):
    format: str = "cot_fewshot"
    k: int = Field(8, ge=1)  # samples for majority-vote accuracy and pass@k
    temperature: float = Field(0.7, ge=0)
    max_new_tokens: int | None = Field(None, ge=1)  # None = generate.max_new_tokens
    # Prompts per generate call when scoring; None = generate.batch_size. Greedy scoring brings one sequence
    # per prompt where sampling brings k, so it can take a larger batch (128 scores ~1.4x faster than 16 on CPU).
    batch_size: int | None = Field(None, ge=1)

    @field_validator("format")
    @classmethod
    def _known_format(cls, v: str) -> str:
        _known_format(v)
        return v


class ProbeConfig(Section):
    # Before round 1, is the model competent enough for its own votes to teach it? (stages/probe.py)
    enabled: bool = True
    questions: int = Field(32, ge=1)  # pool questions sampled K times, as round 1 will
    # pass@K on the labelled held-out set (round 0): under 5%, the right answer is almost never sampled.
    min_pass_at_k: float = Field(0.05, ge=0, le=1)
    # Paths with an answer the task can read: a model that does not follow the answer format cannot vote.
    min_answer_rate: float = Field(0.3, ge=0, le=1)
    # The majority's votes over K, averaged over questions: 1/K when every path answers differently.
    # 0.3 asks for 3 agreeing paths of 8 (or 2 of 4, or 5 of 16) on an average question.
    min_consensus: float = Field(0.3, ge=0, le=1)
    max_truncation_rate: float = Field(0.5, ge=0, le=1)  # most paths cut short: max_new_tokens too small
    on_fail: Literal["stop", "warn"] = "stop"  # stop = fail the run before round 1, with the reasons


class MonitorConfig(Section):
    # A round's return = held-out accuracy points gained per million tokens spent (generated + trained).
    min_return: float | None = None  # stop when the return falls below this (0.0 = when a round stops helping)
    patience: int = Field(1, ge=1)  # stop only after this many rounds in a row under min_return (accuracy is noisy)
    reset_tolerance: float | None = None  # restore the best model when accuracy drops more than this
    # {signal: tolerance}: restore the best model when a signal degrades by more than this from its best
    # earlier value, e.g. {agreement: 0.15, abstention_rate: 0.1}. Works without any labels.
    signal_tolerance: dict[str, float] = {}
    # Forgetting: greedy accuracy on an anchor set from the original skill, every round including round 0.
    anchor_source: str | None = None  # the task's source syntax (file, dataset, knob string); None = no anchor
    anchor_split: str = "test"
    anchor_limit: int | None = Field(200, ge=1)
    # Stagnation (memory.stagnation): over the last `stagnation_window` rounds (the short-term buffer),
    # none of agreement, kept questions (share of the pool) and held-out accuracy rose more than
    # `stagnation_change` above its value at the window's start. None = not checked.
    stagnation_window: int | None = Field(None, ge=2)
    stagnation_change: float = Field(0.01, ge=0)
    on_stagnation: Literal["stop", "reset"] = "stop"  # reset = restore the best round's weights and go on

    @field_validator("signal_tolerance")
    @classmethod
    def _known_signals(cls, v: dict[str, float]) -> dict[str, float]:
        return known_signals(v, GUARDED_SIGNALS, "signal tolerance")


class MemoryConfig(Section):
    # Long-term memory (sampling/memory.py): proven (question, rationale, answer) triples, retrieved as few-shot
    # exemplars for similar questions by the `cot_retrieved` format (generate.formats, evaluate.format).
    # The memory is this run's earlier rounds' trusted paths plus these sources: earlier run directories,
    # or JSONL files of question/rationale/answer rows.
    sources: list[str] = []
    exemplars: int = Field(3, ge=1)  # retrieved per question
    min_share: float = Field(0.5, ge=0, le=1)  # a path is proven when kept and its question's vote share >= this


class Config(Section):
    run: RunConfig = RunConfig()
    model: ModelConfig
    task: TaskConfig = TaskConfig()
    acquire: AcquireConfig = AcquireConfig()
    generate: GenerateConfig = GenerateConfig()
    vote: VoteConfig = VoteConfig()
    curate: CurateConfig = CurateConfig()
    adapt: AdaptConfig = AdaptConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    probe: ProbeConfig = ProbeConfig()
    monitor: MonitorConfig = MonitorConfig()
    memory: MemoryConfig = MemoryConfig()
    _origins: Any = PrivateAttr(None)  # config.Origins, set by the loader

    def where(self, key: str) -> str:
        """Where `key` was set, for error messages: file:line, the override, or the key itself."""
        return self._origins.where(key) if self._origins is not None else "config"
