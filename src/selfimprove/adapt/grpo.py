"""Label-free RL, the TTRL adaptation: GRPO (or RLOO) through TRL, rewarded by the round's own vote.

`grpo` and `rloo` are the `adapt.method: grpo | rloo` plug-ins; their knobs are `adapt.options`
(`rl_options.RLOptions`: rewards and weights, trained samples per question, share threshold, KL
coefficient, the collapse guard). A round's flow:

1. the loop has sampled the round's voters (`generate.k` paths a question) and voted (`stages/vote.py`,
   with `vote.require` the verified vote); `rewards.label_rows` turns the votes into the training
   questions, each with its label in a column (so every process scores against the same vote);
2. `train` runs TRL's trainer from the round's starting weights (LoRA or full, `adapt.tuning`):
   it samples `num_generations` completions a question, scores them (`rewards.build_scorer`),
   records every scored sample (`Recorder`), and the collapse guard (`guard.py`) probes, checkpoints
   and stops;
3. the round commits, through the store: the weights (`adapter/` or `model/`: the last step's, or
   the best probe's after a stop), `train_log.jsonl` (TRL's log; `num_tokens` = tokens sampled plus
   tokens trained), `rl_samples.jsonl` (every sample), `rl_guard.json` (probes and decision) and
   `rl_steps.jsonl` (per step: rewards, label-free signals, probe, and, where the pool's hidden gold
   exists, pseudo-label accuracy and reward accuracy: diagnostics computed after training, never
   seen by a reward).

Training runs in `rounds/rNN/rl_work/`; a killed round resumes from its last checkpoint (one at
every probe) and drops the records of the steps it redoes. The folder is removed once committed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from selfimprove.rundir import layout
from selfimprove.adapt.base import Adapted, AdaptInputs, start_weights
from selfimprove.adapt.dynamic import DROPPED_FILE, DynamicSampler
from selfimprove.adapt.guard import GUARD_FILE, START, CollapseGuard, greedy_probe
from selfimprove.adapt.rewards import (Policy, RewardContext, build_scorer, completion_text, label_rows, same)
from selfimprove.adapt.rl_options import RL_DROPPED, RL_TRAINER, RLOptions, check_rl
from selfimprove.adapt.signals import signals, zero_variance_share
from selfimprove.sections import AdaptConfig, ModelConfig, read_options
from selfimprove.gates import GateContext, build_gates
from selfimprove.records import Weights

SAMPLES_FILE = "samples.jsonl"
SETTINGS_FILE = "settings.json"  # the algorithm's effective settings (effective_settings)
TRAINER_DIR = "trainer"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_config.json", "config.json", "generation_config.json",
                "model.safetensors", "model.safetensors.index.json")


def grpo(ctx, round_: int, inputs: AdaptInputs, **options) -> Adapted:
    return adapt_rl(ctx, round_, inputs, "grpo", options)


def rloo(ctx, round_: int, inputs: AdaptInputs, **options) -> Adapted:
    return adapt_rl(ctx, round_, inputs, "rloo", options)


@dataclass
class RLJob:
    """Everything one RL training run needs, apart from the run context (tests build one directly)."""

    rows: list[dict]  # training questions: prompt, question_id, question, label, share, vote_counts
    start: Weights
    adapt: AdaptConfig
    options: RLOptions
    rewards: RewardContext
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    algorithm: str = "grpo"
    model: ModelConfig | None = None
    seed: int = 0
    probe_prompts: list = field(default_factory=list)  # held-out prompts for the guard ([] = no accuracy probe)
    probe_gold: list[str] = field(default_factory=list)
    probe_max_new_tokens: int = 256


def adapt_rl(ctx, round_: int, inputs: AdaptInputs, algorithm: str, options: dict) -> Adapted:
    opts = read_options(RLOptions, options, "adapt.options")
    check_rl(ctx.config, opts)
    cfg, gen = ctx.config.adapt, ctx.config.generate
    fmt = gen.formats[0]
    rows = [{"prompt": ctx.student_style.render(r["question"], fmt), **r}
            for r in label_rows(inputs.votes, inputs.items, opts.min_share)]
    if not rows:
        return Adapted(inputs.learner, [], 0)
    start = start_weights(ctx, inputs)
    gates = build_gates(ctx.config.vote.require, GateContext(ctx.task, ctx.backend, inputs.sampler, round_,
                                                             ctx.config.run.seed), "vote.require", before_vote=True)
    if opts.probe == "votes":  # label-free: the round's own labels
        probed = [(r["question"], r["label"]) for r in rows[:opts.probe_questions]]
    else:
        probed = [(i.question, i.gold) for i in ctx.data.heldout[:opts.probe_questions]]
    job = RLJob(rows=rows, start=start, adapt=cfg, options=opts, algorithm=algorithm, model=ctx.config.model,
                rewards=RewardContext(ctx.task, gates, ctx.config.run.seed + round_, task_name=ctx.config.task.name,
                                      require=ctx.config.vote.require),
                temperature=gen.temperature if opts.temperature is None else opts.temperature,
                top_p=gen.top_p if opts.top_p is None else opts.top_p, max_new_tokens=gen.max_new_tokens,
                seed=ctx.config.run.seed + round_,
                probe_prompts=[ctx.student_style.render(q, ctx.config.evaluate.format) for q, _ in probed],
                probe_gold=[label for _, label in probed],
                probe_max_new_tokens=ctx.config.evaluate.max_new_tokens or gen.max_new_tokens)
    return commit(ctx, round_, job, ctx.round_gold(round_))  # diagnostics only: never a reward


def commit(ctx, round_: int, job: RLJob, gold: dict[str, str]) -> Adapted:
    """Train (or resume) and commit the round's RL artifacts through the store."""
    store, lora = ctx.store, job.adapt.tuning == "lora"
    work = store.path(layout.round_file(round_, layout.RL_WORK))

    def build(tmp: Path) -> None:
        log = train_launched(job, work, tmp) if job.adapt.launch == "accelerate" else train(job, work, tmp)
        (tmp / "train_log.json").write_text(json.dumps(log))  # commits with the weights

    folder = store.produce_dir(layout.round_file(round_, layout.ADAPTER if lora else layout.MODEL), build)
    log = store.produce_jsonl(layout.round_file(round_, layout.TRAIN_LOG),
                              lambda: json.loads((folder / "train_log.json").read_text()))
    samples = store.produce_jsonl(layout.round_file(round_, layout.RL_SAMPLES), lambda: read_rows(work / SAMPLES_FILE))
    guard = store.produce_json(layout.round_file(round_, layout.RL_GUARD),
                               lambda: json.loads((work / GUARD_FILE).read_text()))
    store.produce_json(layout.round_file(round_, RL_TRAINER), lambda: json.loads((work / SETTINGS_FILE).read_text()))
    dropped = store.produce_jsonl(layout.round_file(round_, RL_DROPPED), lambda: read_rows(work / DROPPED_FILE))
    store.produce_jsonl(layout.round_file(round_, layout.RL_STEPS),
                        lambda: step_rows(samples, log, guard, gold, job.rewards.task, dropped))
    shutil.rmtree(work, ignore_errors=True)
    path = str(folder.resolve())
    return Adapted(Weights(job.start.model, path) if lora else Weights(path), log, len(job.rows))


# --- training -------------------------------------------------------------------------------------

def train_launched(job: RLJob, work: Path, out: Path) -> list[dict]:
    """`train` in adapt.num_processes processes under `accelerate launch` (launch.py): each process rebuilds
    the job (the task and vote.require's gates by name), samples and scores its share of every step (a
    question's label travels in its row, so every process scores against the same vote); the main one
    records and saves. adapt.batch_size stays the global batch."""
    from dataclasses import asdict

    from selfimprove.adapt.launch import launch

    per_process = job.adapt.batch_size // job.adapt.num_processes
    data = {"rows": job.rows, "start": asdict(job.start), "options": job.options.model_dump(mode="json"),
            "adapt": job.adapt.model_dump(mode="json") | {"launch": "process", "batch_size": per_process},
            "model": job.model.model_dump(mode="json") if job.model else None, "algorithm": job.algorithm,
            "task": job.rewards.task_name, "require": job.rewards.require, "reward_seed": job.rewards.seed,
            "temperature": job.temperature, "top_p": job.top_p, "max_new_tokens": job.max_new_tokens, "seed": job.seed,
            "probe_prompts": job.probe_prompts, "probe_gold": job.probe_gold,
            "probe_max_new_tokens": job.probe_max_new_tokens, "work": str(work), "out": str(out),
            "num_processes": job.adapt.num_processes}
    return launch(data, job.adapt, job.model, "selfimprove.adapt.grpo")


def run_launched(job_path: str) -> None:
    """One process of a launched RL job (see `train_launched`); the main one writes log.json beside it."""
    import os

    from selfimprove.tasks import get_task

    data = json.loads(Path(job_path).read_text())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world != data["num_processes"]:
        raise RuntimeError(f"launched as {world} process(es), adapt.num_processes is {data['num_processes']}")
    task = get_task(data["task"])
    gates = build_gates(data["require"], GateContext(task, None, None, 0, data["reward_seed"]), "vote.require",
                        before_vote=True)
    job = RLJob(rows=data["rows"], start=Weights(**data["start"]), adapt=AdaptConfig(**data["adapt"]),
                options=RLOptions(**data["options"]), algorithm=data["algorithm"],
                model=ModelConfig(**data["model"]) if data["model"] else None,
                rewards=RewardContext(task, gates, data["reward_seed"], task_name=data["task"], require=data["require"]),
                temperature=data["temperature"], top_p=data["top_p"], max_new_tokens=data["max_new_tokens"],
                seed=data["seed"], probe_prompts=data["probe_prompts"], probe_gold=data["probe_gold"],
                probe_max_new_tokens=data["probe_max_new_tokens"])
    log = train(job, Path(data["work"]), Path(data["out"]))
    if int(os.environ.get("RANK", "0")) == 0:
        (Path(job_path).parent / "log.json").write_text(json.dumps(log))


def read_rows(path: Path) -> list[dict]:
    """JSONL rows appended during training; a half-written last line (a kill) is dropped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


class Recorder:
    """Every scored batch's samples: kept in memory in every process (the guard's signals) and
    appended to the work folder by the main process. On resume, rows after `resumed_step` go
    (`truncate`, by the main process once every process has read them)."""

    def __init__(self, path: Path, task, resumed_step: int):
        self.path, self.task = path, task
        self.rows = [r for r in read_rows(path) if r["step"] <= resumed_step]

    def truncate(self) -> None:
        self.path.write_text("".join(json.dumps(r) + "\n" for r in self.rows))

    def __call__(self, columns: dict, completions: list, parts: dict, totals: list) -> None:
        from accelerate import PartialState
        from accelerate.utils import gather_object

        step = columns["trainer_state"].global_step + 1
        rank = PartialState().process_index
        local = []
        for i, c in enumerate(completions):
            text = completion_text(c)
            local.append({"step": step, "rank": rank, "question_id": columns["question_id"][i],
                          "label": columns["label"][i], "share": columns["share"][i],
                          "answer": self.task.extract(text), "tokens": len(columns["completion_ids"][i]),
                          "reward": totals[i], "rewards": {n: v[i] for n, v in parts.items()}, "completion": text})
        rows = gather_object(local)  # every process calls the reward in step, so this collective is safe
        self.rows += rows
        if PartialState().is_main_process:
            with open(self.path, "a") as f:
                f.write("".join(json.dumps(r) + "\n" for r in rows))

    def between(self, first: int, last: int) -> list[dict]:
        return [r for r in self.rows if first <= r["step"] <= last]


def last_checkpoint(folder: Path) -> tuple[str | None, int]:
    """The newest complete trainer checkpoint and its step (None, 0 when there is none)."""
    done = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    if not done:
        return None, 0
    newest = max(done, key=lambda p: int(p.name.split("-")[1]))
    return str(newest), int(newest.name.split("-")[1])


# The algorithm's settings as the trainer resolved them (TRL fills epsilon_high from epsilon, maps
# scale_rewards True/False): written to rl_trainer.json, so a round says what it ran with.
ALGORITHM = ("loss_type", "scale_rewards", "importance_sampling_level", "epsilon", "epsilon_high", "delta",
             "num_iterations", "mask_truncated_completions", "beta", "temperature", "top_p", "top_k", "min_p",
             "num_generations", "max_completion_length", "steps_per_generation", "generation_batch_size",
             "top_entropy_quantile", "learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps")


def trainer_args(job: RLJob, output_dir: Path, cuda: bool, bf16: bool) -> dict:
    cfg, opts = job.adapt, job.options
    grpo_only = dict(loss_type=opts.loss_type, scale_rewards=opts.scale_rewards,
                     importance_sampling_level=opts.importance_sampling_level) if job.algorithm == "grpo" else {}
    return dict(
        output_dir=str(output_dir), per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate, num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps, num_generations=opts.num_generations, max_completion_length=job.max_new_tokens,
        temperature=job.temperature, top_p=job.top_p, beta=opts.beta, epsilon=opts.epsilon,
        epsilon_high=opts.epsilon_high, num_iterations=opts.num_iterations,
        mask_truncated_completions=opts.mask_truncated_completions, **grpo_only, bf16=bf16,
        gradient_checkpointing=False, logging_steps=1, save_strategy="steps", save_steps=opts.probe_every,
        save_total_limit=1, report_to=[], seed=job.seed,  # run.report_to logs train_log.jsonl (outputs/tracking.py)
        data_seed=job.seed, use_cpu=not cuda,
        dataloader_num_workers=0, disable_tqdm=True, lr_scheduler_type="constant", warmup_steps=0,
        use_vllm=opts.use_vllm, vllm_mode="colocate")


def effective_settings(args, job: RLJob) -> dict:
    """What the round trained with: the trainer config's resolved algorithm fields (those its class has),
    TRL's version, and dynamic sampling's settings."""
    import dataclasses

    import trl

    known = {f.name for f in dataclasses.fields(args)}  # RLOOConfig has no loss_type, scale_rewards, ...
    settings = {k: getattr(args, k) for k in ALGORITHM if k in known}
    if settings["epsilon_high"] is None:  # the trainers clip at 1 + epsilon then
        settings["epsilon_high"] = settings["epsilon"]
    return {"algorithm": job.algorithm, "trl": trl.__version__, **settings,
            "dynamic_sampling": job.options.dynamic_sampling,
            "sampling_budget": job.options.sampling_budget if job.options.dynamic_sampling else None}


def train(job: RLJob, work: Path, out: Path) -> list[dict]:
    """Run (or resume) RL from `job.start`; save the round's final weights into `out`. Returns the
    training log, each row's `num_tokens` = completion tokens sampled + tokens trained so far."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    from selfimprove import models
    from selfimprove.adapt.sft import RichProgress

    cfg, opts = job.adapt, job.options
    dtype, device = (job.model.dtype, job.model.device) if job.model else ("auto", "auto")
    remote = job.model.trust_remote_code if job.model else False
    device = models.resolve_device(device)
    cuda = device.startswith("cuda")
    lora = cfg.tuning == "lora"
    work.mkdir(parents=True, exist_ok=True)
    resume, resumed_step = last_checkpoint(work / TRAINER_DIR)

    tokenizer = models.load_tokenizer(job.start, remote, padding_side="left")
    model = models.load_model(job.start if lora else Weights(job.start.model), dtype, device, remote,
                              trainable_adapter=True)
    peft_config = None
    if lora and not job.start.adapter:
        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                 target_modules=cfg.lora_target_modules, task_type="CAUSAL_LM")
    recorder = Recorder(work / SAMPLES_FILE, job.rewards.task, resumed_step)
    scorer = build_scorer(opts.rewards, job.rewards, recorder)
    # DAPO's dynamic sampling: TRL's rollout_func (one process; rl_options.check_algorithm)
    sampler = DynamicSampler(job.rows, scorer, opts.num_generations, opts.sampling_budget, job.seed,
                             work / DROPPED_FILE, resumed_step) if opts.dynamic_sampling else None

    def probe(m) -> float | None:
        if not job.probe_prompts:
            return None
        return greedy_probe(m, tokenizer, job.probe_prompts, job.probe_gold, job.rewards.task,
                            job.probe_max_new_tokens)

    guard = CollapseGuard(probe, recorder.between, opts.probe_every, opts.tolerance, opts.bands, work,
                           opts.patience, opts.load_best_at_end, opts.probe)
    config_cls, trainer_cls = (GRPOConfig, GRPOTrainer) if job.algorithm == "grpo" else (RLOOConfig, RLOOTrainer)
    args = config_cls(**trainer_args(job, work / TRAINER_DIR, cuda, cuda and torch.cuda.is_bf16_supported()))
    trainer = trainer_cls(model=model, reward_funcs=scorer, args=args, processing_class=tokenizer,
                          train_dataset=Dataset.from_list(job.rows), peft_config=peft_config,
                          callbacks=[guard, RichProgress()], **({"rollout_func": sampler} if sampler else {}))
    trainer.remove_callback(PrinterCallback)
    trainer.accelerator.wait_for_everyone()  # every process has read the records before they are cut back
    if trainer.accelerator.is_main_process:
        recorder.truncate()
        if sampler:
            sampler.truncate()
        (work / SETTINGS_FILE).write_text(json.dumps(effective_settings(args, job), indent=1))
    job.rewards.policy = Policy(trainer.model, tokenizer)  # for rewards that score with the policy
    if not already_stopped(work, resumed_step):
        trainer.train(resume_from_checkpoint=resume)
    else:  # a killed round whose guard had stopped it: nothing left to train
        guard.probes, guard.stopped = _saved_guard(work)
    if trainer.accelerator.is_main_process:
        save_final(trainer, tokenizer, guard, work, out)
    return log_rows(trainer.state.log_history, recorder.rows, sampler.records if sampler else [])


def _saved_guard(work: Path) -> tuple[list[dict], dict | None]:
    data = json.loads((work / GUARD_FILE).read_text())
    return data["probes"], data["stopped"]


def already_stopped(work: Path, resumed_step: int) -> bool:
    path = work / GUARD_FILE
    if not path.exists():
        return False
    stopped = json.loads(path.read_text())["stopped"]
    return bool(stopped) and stopped["step"] <= resumed_step


def save_final(trainer, tokenizer, guard: CollapseGuard, work: Path, out: Path) -> None:
    """The last step's weights, or (after a stop) the best probe's: its checkpoint, or the start."""
    step = guard.restore_step()
    if step is None:
        trainer.model.save_pretrained(out)
    else:
        source = work / START if step == 0 else work / TRAINER_DIR / f"checkpoint-{step}"
        for name in WEIGHT_FILES:
            if (source / name).exists():
                shutil.copy2(source / name, out / name)
    tokenizer.save_pretrained(out)
    (work / GUARD_FILE).write_text(json.dumps(guard.report(), indent=1))


def log_rows(history: list[dict], samples: list[dict], screened: list[dict] = ()) -> list[dict]:
    """TRL's per-step log with the compute count: `trained_tokens` (TRL's num_tokens: prompt and
    completion tokens through the trainer), `sampled_tokens` (completions generated: the trained ones
    and the groups dynamic sampling dropped) and their sum."""
    rows = []
    sampled_rows = [*samples, *(d for d in screened if d["dropped"])]
    for h in history:
        if "loss" not in h:
            continue
        sampled = sum(r["tokens"] for r in sampled_rows if r["step"] <= h["step"])
        trained = int(h.get("num_tokens", 0))
        rows.append({**h, "trained_tokens": trained, "sampled_tokens": sampled, "num_tokens": trained + sampled})
    return rows


# --- the per-step record ----------------------------------------------------------------------------

def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def step_rows(samples: list[dict], log: list[dict], guard: dict, gold: dict[str, str], task,
              dropped: list[dict] = ()) -> list[dict]:
    """One row per step: rewards, label-free signals, the share of trained groups whose rewards all
    agree (no gradient), the groups dynamic sampling dropped, TRL's mean per-token entropy of the trained
    samples, the guard's probe and, against the hidden gold where it exists, pseudo-label accuracy (is
    the vote right?) and reward accuracy (is a sample's label-match reward the reward gold would give?
    TTRL: often yes even when the label is wrong)."""
    by_step: dict[int, list[dict]] = {}
    for r in samples:
        by_step.setdefault(r["step"], []).append(r)
    probes = {p["step"]: p for p in guard["probes"]}
    logs = {h["step"]: h for h in log}
    stopped = guard["stopped"]
    out = []
    for step in sorted(set(by_step) | set(probes) | set(logs)):
        rows = by_step.get(step, [])
        labels = {r["question_id"]: r["label"] for r in rows}
        judged = [r for r in rows if r["question_id"] in gold]
        names = sorted({n for r in rows for n in r["rewards"]})
        probe = probes.get(step, {})
        out.append({
            "step": step, "samples": len(rows), "questions": len(labels),
            "reward": _mean(r["reward"] for r in rows),
            "rewards": {n: _mean(r["rewards"][n] for r in rows) for n in names},
            **signals(rows), "zero_variance_groups": zero_variance_share(rows),
            "dropped_groups": sum(1 for d in dropped if d["step"] == step and d["dropped"]),
            "token_entropy": logs.get(step, {}).get("entropy"),
            "loss": logs.get(step, {}).get("loss"), "kl": logs.get(step, {}).get("kl"),
            "pseudo_label_accuracy": _mean(float(same(task, lab, gold[q])) for q, lab in labels.items() if q in gold),
            "reward_accuracy": _mean(float(same(task, r["answer"], r["label"]) == same(task, r["answer"],
                                                                                      gold[r["question_id"]]))
                                     for r in judged),
            "gold_reward": _mean(float(same(task, r["answer"], gold[r["question_id"]])) for r in judged),
            "probe_accuracy": probe.get("accuracy"), "alarm": probe.get("alarm"),
            "stopped": bool(stopped) and stopped["step"] == step,
        })
    return out


if __name__ == "__main__":  # one process of `accelerate launch` (adapt.launch: accelerate)
    import sys

    run_launched(sys.argv[1])
