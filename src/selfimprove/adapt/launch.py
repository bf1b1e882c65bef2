"""Training in several processes: `adapt.launch: accelerate` runs a round's `sft.train` (or RL's
`grpo.train`, through `launch`) under `accelerate launch` (one process per GPU; gloo over CPU
processes on a machine without one), while the loop itself stays one process that waits for it.

The loop writes the job (examples, weights, adapt config, seed) to a temporary folder, launches
`python -m accelerate.commands.launch ... -m selfimprove.adapt.sft JOB` (each process runs `run_job`
with sft's `train`), and reads back the
loss history that the main process wrote next to the saved weights. `adapt.batch_size` stays the
global batch: each process takes `batch_size / num_processes` examples a step, so a recipe trains
the same way on one process or eight. `adapt.accelerate_config` picks one of the configs TRL ships
(multi_gpu = DDP, zero1/zero2/zero3 = DeepSpeed, fsdp1/fsdp2) or a YAML file of your own; none = DDP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from selfimprove.sections import AdaptConfig, ModelConfig
from selfimprove.records import Weights

TRL_CONFIGS = ("multi_gpu", "zero1", "zero2", "zero3", "fsdp1", "fsdp2")


class LaunchError(RuntimeError):
    """The launched training processes failed; the message ends with their last lines of output."""


class LaunchConfigError(ValueError):
    """adapt.accelerate_config names neither one of TRL's configs nor a file: fixed in the config."""


def accelerate_config_file(name: str) -> str:
    """A TRL-shipped accelerate config by name, or a YAML file path as given."""
    if name in TRL_CONFIGS:
        import trl

        return str(Path(trl.__file__).parent / "accelerate_configs" / f"{name}.yaml")
    if not Path(name).is_file():
        raise LaunchConfigError(f"adapt.accelerate_config {name!r} is neither one of TRL's "
                                f"({', '.join(TRL_CONFIGS)}) nor a file: name one of those or the path of an "
                                "accelerate config YAML")
    return name


def launch_command(cfg: AdaptConfig, job: Path, cuda: bool, module: str = "selfimprove.adapt.sft") -> list[str]:
    args = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(cfg.num_processes),
            "--num_machines", "1", "--dynamo_backend", "no"]
    if cfg.accelerate_config:
        args += ["--config_file", accelerate_config_file(cfg.accelerate_config)]
    else:
        args += ["--multi_gpu"]  # torchrun: DDP over GPUs, or over CPU processes with gloo
    if not cuda:
        args += ["--mixed_precision", "no"]  # TRL's configs say bf16
    return args + ["-m", module, str(job)]


def train_distributed(examples: list[dict], start: Weights, cfg: AdaptConfig, out_dir: Path, seed: int,
                      model_cfg: ModelConfig | None = None) -> list[dict]:
    """`sft.train` in `cfg.num_processes` processes; returns the loss history (the main process's)."""
    return launch({"examples": examples, "start": asdict(start), "cfg": cfg.model_dump(mode="json"),
                   "out_dir": str(out_dir), "seed": seed, "model": model_cfg.model_dump(mode="json") if model_cfg else None},
                  cfg, model_cfg, "selfimprove.adapt.sft")


def launch(job_data: dict, cfg: AdaptConfig, model_cfg: ModelConfig | None, module: str) -> list[dict]:
    """Run `python -m module JOB` under accelerate launch in `cfg.num_processes` processes and wait; returns
    the log the main process wrote beside the job (`log.json`)."""
    from selfimprove import models

    cuda = models.resolve_device(model_cfg.device if model_cfg else "auto").startswith("cuda")
    with tempfile.TemporaryDirectory(prefix="selfimprove-launch-") as tmp:
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps(job_data))
        env = os.environ | {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        done = subprocess.run(launch_command(cfg, job, cuda, module), env=env, capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
            raise LaunchError(f"accelerate launch with {cfg.num_processes} processes failed "
                              f"(exit {done.returncode}):\n{tail}")
        return json.loads((Path(tmp) / "log.json").read_text())


def run_job(job_path: str, train) -> None:
    """One process of the launched job: `train` (sft.train, which calls this as its module's main, so this
    module needs no import of it) on the job's share (every rank runs this; the main one writes the results)."""
    job = json.loads(Path(job_path).read_text())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world != job["cfg"]["num_processes"]:
        raise LaunchError(f"launched as {world} process(es), adapt.num_processes is {job['cfg']['num_processes']}")
    cfg = AdaptConfig(**(job["cfg"] | {"launch": "process"}))
    model_cfg = ModelConfig(**job["model"]) if job["model"] else None
    log = train(job["examples"], Weights(**job["start"]), cfg, Path(job["out_dir"]), job["seed"], model_cfg,
                world_size=world)
    if int(os.environ.get("RANK", "0")) == 0:
        (Path(job_path).parent / "log.json").write_text(json.dumps(log))

