"""SIGKILL (or SIGINT, SIGTERM) a real `selfimprove run` at several points; rerunning the same command
gives the uninterrupted result.

The run directory is polled for each stage's files to know when to kill: generation (a chunk is
saved), voting (samples merged), training (the adapter's temporary folder exists), evaluation
(the adapter is committed). The fast variant kills a tiny random model's run during generation;
the slow one kills an answering model's two-round run at every point.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import selfimprove

from selfimprove.rundir.cache import canonical_adapter_config
from selfimprove.config import parse_config
from selfimprove.loop import run

POINTS = {  # kill point -> what in the run directory says that stage is under way
    "generation": lambda root, m: "rounds/r01/samples.jsonl.parts/00000.jsonl" in m,
    "voting": lambda root, m: "rounds/r01/samples.jsonl" in m,
    "training": lambda root, m: (root / "rounds/r01/.adapter.tmp").exists(),
    "evaluation": lambda root, m: "rounds/r01/adapter" in m,
}


def config_dict(model, out_dir, gsm8k_dir, rounds):
    return {
        "run": {"out_dir": str(out_dir), "rounds": rounds, "seed": 0},
        "model": {"name": model, "chat": "off"},
        "task": {"name": "gsm8k", "source": gsm8k_dir, "eval_source": gsm8k_dir, "limit": 6, "eval_limit": 3},
        "generate": {"k": 4, "temperature": 0.8, "max_new_tokens": 30, "formats": ["cot_zeroshot"],
                     "checkpoint_every": 1},
        "curate": {"gates": [{"name": "majority"}, {"name": "min_share", "threshold": 0.5}]},
        "adapt": {"tuning": "lora", "max_steps": 3, "batch_size": 4, "max_length": 256,
                  "formats": {"cot_zeroshot": 1.0, "direct_zeroshot": 1.0}},
        "evaluate": {"format": "cot_zeroshot", "k": 2},
        "probe": {"on_fail": "warn"},
    }


def manifest(root: Path) -> dict:
    try:
        return json.loads((root / "manifest.json").read_text())["artifacts"]
    except (OSError, ValueError):
        return {}


def run_cli(config: Path, root: Path, kill_when=None, timeout=300, sig=signal.SIGKILL) -> bool:
    """Run `selfimprove run CONFIG`; with `kill_when`, send it `sig` once that holds. True if it was stopped.
    SIGINT and SIGTERM must end it with 130 and 143 and the line saying how to resume."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(Path(selfimprove.__file__).resolve().parents[1])}  # this checkout's code
    log = root.with_name(root.name + ".log")  # a file, not a pipe: a full pipe would stall the child
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "selfimprove", "run", str(config)], env=env,
                                stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + timeout
    while kill_when and proc.poll() is None and time.time() < deadline:
        if kill_when(root, manifest(root)):
            proc.send_signal(sig)
            code = proc.wait(timeout=120)
            if sig != signal.SIGKILL:
                assert code == 128 + sig, log.read_text()[-3000:]
                assert "interrupted; rerun the same command to resume" in log.read_text()
            return True
        time.sleep(0.01)
    proc.wait(timeout=max(1, deadline - time.time()))
    assert proc.returncode == 0, log.read_text()[-3000:]
    return False


def _normal(obj, root: str):
    """Drop wall-clock fields; make the run directory's own path relative; floats to 4 decimals."""
    if isinstance(obj, dict):
        return {k: _normal(v, root) for k, v in obj.items() if k != "seconds"}
    if isinstance(obj, list):
        return [_normal(v, root) for v in obj]
    if isinstance(obj, float):  # log-probabilities differ in the last bits between processes (kernel choice)
        return round(obj, 4)
    return obj.replace(root, "RUN") if isinstance(obj, str) else obj


def final_artifacts(root: Path) -> dict:
    """Every result a run leaves, comparable across run directories (weights by checksum)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if not p.is_file() or rel.split("/")[0] in ("cache", "tensorboard", "damaged", "review") or rel in (
                "manifest.json", "environment.json", "config.yaml", "report.html", ".lock"):
            continue
        if p.suffix == ".jsonl":
            out[rel] = [_normal(json.loads(line), str(root.resolve())) for line in p.read_text().splitlines()]
        elif p.name == "adapter_config.json":
            out[rel] = canonical_adapter_config(p.read_text())
        elif p.suffix == ".json" and "adapter" not in rel:
            out[rel] = _normal(json.loads(p.read_text()), str(root.resolve()))
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def kill_and_resume(model, gsm8k_dir, tmp_path, point, rounds, reference, sig=signal.SIGKILL):
    root = tmp_path / f"killed-{point}-{sig.name}"
    config = tmp_path / f"{point}-{sig.name}.yaml"
    config.write_text(yaml.safe_dump(config_dict(model, root, gsm8k_dir, rounds)))
    assert run_cli(config, root, POINTS[point], sig=sig), f"the run finished before the {point} kill point"
    assert "summary.json" not in manifest(root)
    run_cli(config, root)  # the same command again resumes
    assert final_artifacts(root) == reference, f"resumed after a kill during {point} differs"
    return root


def test_kill_during_generation_then_resume_equals_uninterrupted(tiny_model, gsm8k_dir, tmp_path):
    reference_root = tmp_path / "reference"
    run(parse_config(config_dict(tiny_model, reference_root, gsm8k_dir, rounds=1)))
    reference = final_artifacts(reference_root)
    assert len(reference["rounds/r01/samples.jsonl"]) == 6 * 4
    root = kill_and_resume(tiny_model, gsm8k_dir, tmp_path, "generation", 1, reference)
    assert not (root / "rounds/r01/samples.jsonl.parts").exists()


@pytest.mark.slow
def test_kill_at_every_stage_then_resume_equals_uninterrupted(tiny_model, gsm8k_dir, tmp_path):
    from selfimprove.adapt.sft import train
    from selfimprove.records import Weights
    from selfimprove.config import AdaptConfig

    model = tmp_path / "answering"  # replies "2 + 3 = 5. The answer is 5.": paths get kept and trained on
    lines = (Path(gsm8k_dir) / "train.jsonl").read_text().splitlines()[100:164]
    rows = [{"prompt": f"Q: {json.loads(line)['question']}\nA: Let's think step by step.",
             "completion": " 2 + 3 = 5. The answer is 5."} for line in lines]
    train(rows, Weights(tiny_model), AdaptConfig(tuning="full", learning_rate=5e-3, max_steps=120, batch_size=8, max_length=1024), model, seed=0)
    reference_root = tmp_path / "reference"
    run(parse_config(config_dict(str(model), reference_root, gsm8k_dir, rounds=2)))
    reference = final_artifacts(reference_root)
    assert "rounds/r02/adapter/adapter_model.safetensors" in reference
    for point in POINTS:
        kill_and_resume(str(model), gsm8k_dir, tmp_path, point, 2, reference)
    kill_and_resume(str(model), gsm8k_dir, tmp_path, "generation", 2, reference, signal.SIGINT)  # exit 130
    kill_and_resume(str(model), gsm8k_dir, tmp_path, "training", 2, reference, signal.SIGTERM)  # exit 143
