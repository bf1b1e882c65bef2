"""Resume cost: work redone after a SIGKILL, as a share of the work finished before it.

Runs a small real loop (a tiny model fine-tuned to answer, two rounds on GSM8K) once uninterrupted,
then once per kill point (generation, voting, training, evaluation): SIGKILL, then the same command
again. For each point it records T (the killed run's seconds), R (the resumed run's seconds) and U (the
uninterrupted run's seconds); redone = T + R - U is what the kill cost, and redone / T its share of the
work done before the kill. Each resume also pays one process start (imports, model load), measured as S
and reported apart: redone - S, signed and never floored, is the work redone beyond one start-up.
Seconds are CPU seconds of the run's process (user + system, from its rusage): wall time on a shared
machine moved by tens of seconds between identical runs (a 2026-12-02 rerun beside other jobs measured
negative costs), CPU time by about a second. Wall times are recorded too. Writes JSON (default
benchmarks/results/resume_cost.json) with its provenance. Not run by CI; about five minutes on two CPU cores:

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python -m benchmarks.resume_cost     # make evidence-resume-cost
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

if __package__ in (None, ""):  # run as a file: import from the repository root, as `python -m benchmarks...` does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.evidence import provenance  # noqa: E402
from selfimprove.rundir import layout  # noqa: E402


def chunk(r: int, c: int) -> str:
    """Round r's c-th checkpointed generation chunk, as the run store names it while the round samples."""
    return f"{layout.round_file(r, layout.SAMPLES)}.parts/{c:05d}.jsonl"


POINTS = {
    "generation": lambda root, m: chunk(1, 2) in m,
    "voting": lambda root, m: layout.round_file(1, layout.SAMPLES) in m,
    "training": lambda root, m: (root / layout.round_dir(1) / f".{layout.ADAPTER}.tmp").exists(),
    "evaluation": lambda root, m: layout.round_file(1, layout.ADAPTER) in m,
    "round 2 generation": lambda root, m: chunk(2, 2) in m,
}


def manifest(root: Path) -> dict:
    try:
        return json.loads((root / "manifest.json").read_text())["artifacts"]
    except (OSError, ValueError):
        return {}


def cpu_seconds() -> float:
    """User + system seconds of this process's waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(config: Path, root: Path, kill_when=None) -> tuple[float, float, bool]:
    """(CPU seconds, wall seconds, killed) of one `selfimprove run`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    start, cpu = time.time(), cpu_seconds()
    proc = subprocess.Popen([sys.executable, "-m", "selfimprove.cli", "run", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while kill_when and proc.poll() is None:
        if kill_when(root, manifest(root)):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return cpu_seconds() - cpu, time.time() - start, True
        time.sleep(0.01)
    if proc.wait() != 0:
        raise RuntimeError(f"selfimprove run {config} failed")
    return cpu_seconds() - cpu, time.time() - start, False


def build_model(work: Path, gsm8k: str) -> str:
    from selfimprove.adapt.sft import train
    from selfimprove.config import AdaptConfig
    from selfimprove.records import Weights
    from selfimprove.tiny import save_tiny_model

    base = str(save_tiny_model(work / "tiny"))
    lines = (Path(gsm8k) / "train.jsonl").read_text().splitlines()[100:164]
    rows = [{"prompt": f"Q: {json.loads(line)['question']}\nA: Let's think step by step.",
             "completion": " 2 + 3 = 5. The answer is 5."} for line in lines]
    train(rows, Weights(base), AdaptConfig(tuning="full", learning_rate=5e-3, max_steps=120, batch_size=8,
                                           max_length=1024), work / "answering", seed=0)
    return str(work / "answering")


def config(model: str, out: Path, gsm8k: str) -> dict:
    return {"run": {"out_dir": str(out), "rounds": 2, "seed": 0}, "model": {"name": model, "chat": "off"},
            "task": {"name": "gsm8k", "source": gsm8k, "eval_source": gsm8k, "limit": 24, "eval_limit": 8},
            "generate": {"k": 4, "temperature": 0.8, "max_new_tokens": 40, "formats": ["cot_zeroshot"],
                         "checkpoint_every": 4},
            "curate": {"gates": [{"name": "majority"}, {"name": "min_share", "threshold": 0.5}]},
            "adapt": {"tuning": "lora", "max_steps": 10, "batch_size": 4, "max_length": 256,
                      "formats": {"cot_zeroshot": 1.0}},
            "evaluate": {"format": "cot_zeroshot", "k": 4}, "probe": {"on_fail": "warn"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/resume_cost.json")
    args = parser.parse_args()
    record = provenance.start(args)
    from selfimprove.tasks import local_source

    gsm8k = str(local_source("gsm8k"))
    work = Path(tempfile.mkdtemp(prefix="resume-cost-"))
    model = build_model(work, gsm8k)

    def setup(name):
        root = work / name
        path = work / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config(model, root, gsm8k)))
        return path, root

    path, root = setup("uninterrupted")
    uninterrupted, uninterrupted_wall, _ = timed_run(path, root)
    startup, startup_wall, _ = timed_run(path, root)  # a rerun of a finished run: start, model load, checks only
    results = {"seconds": "CPU (user + system) of the run process", "uninterrupted_s": round(uninterrupted, 2),
               "startup_s": round(startup, 2), "uninterrupted_wall_s": round(uninterrupted_wall, 2),
               "startup_wall_s": round(startup_wall, 2), "points": {}}
    for point, when in POINTS.items():
        path, root = setup(point.replace(" ", "-"))
        killed_at, killed_wall, killed = timed_run(path, root, when)
        resumed, resumed_wall, _ = timed_run(path, root)
        redone = killed_at + resumed - uninterrupted
        results["points"][point] = {
            "killed": killed, "killed_at_s": round(killed_at, 2), "resume_s": round(resumed, 2),
            "redone_s": round(redone, 2), "redone_share": round(redone / killed_at, 3),
            "redone_beyond_startup_s": round(redone - startup, 2),  # signed: no floor hides a cost
            "killed_at_wall_s": round(killed_wall, 2), "resume_wall_s": round(resumed_wall, 2)}
        print(point, results["points"][point], flush=True)
    results["provenance"] = provenance.finish(record)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
