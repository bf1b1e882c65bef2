"""Training under `accelerate launch` (adapt.launch: accelerate) in 2 CPU processes with gloo: the loss
history matches a single-process run on the same global batch, and the weights are saved once."""

import json
from pathlib import Path

import pytest
import torch

from selfimprove.adapt.launch import launch_command, train_distributed
from selfimprove.adapt.sft import train
from selfimprove.config import AdaptConfig, ConfigError, ModelConfig, parse_config
from selfimprove.records import Weights

ROWS = [{"prompt": f"Q: {a} + {b}?\nA:", "completion": f" {a} + {b} = {a + b}. The answer is {a + b}."}
        for a in range(4) for b in range(4)]


def test_two_processes_train_like_one(tiny_model, tmp_path):
    cfg = AdaptConfig(tuning="full", learning_rate=1e-3, max_steps=3, batch_size=4, max_length=64)
    model = ModelConfig(name=tiny_model, device="cpu")
    single = train(ROWS, Weights(tiny_model), cfg, tmp_path / "one", seed=0, model_cfg=model)
    cfg2 = cfg.model_copy(update={"launch": "accelerate", "num_processes": 2})
    double = train_distributed(ROWS, Weights(tiny_model), cfg2, tmp_path / "two", seed=0, model_cfg=model)
    assert [h["step"] for h in double] == [h["step"] for h in single] == [1, 2, 3]
    assert [h["loss"] for h in double] == pytest.approx([h["loss"] for h in single], rel=2e-3)
    assert single[-1]["loss"] < single[0]["loss"]
    saved = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert "model.safetensors" in saved and "training_args.bin" not in saved
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-3


def test_launch_config():
    cfg = AdaptConfig(launch="accelerate", num_processes=4, batch_size=8, accelerate_config="zero2")
    cmd = launch_command(cfg, Path("job.json"), cuda=True)
    assert cmd[cmd.index("--num_processes") + 1] == "4" and cmd[cmd.index("--config_file") + 1].endswith("zero2.yaml")
    assert cmd[-3:] == ["-m", "selfimprove.adapt.sft", "job.json"]
    assert "--multi_gpu" in launch_command(AdaptConfig(launch="accelerate"), Path("j"), cuda=False)
    with pytest.raises(ConfigError, match="global batch"):
        parse_config({"model": {"name": "m"}, "adapt": {"launch": "accelerate", "num_processes": 3, "batch_size": 8}})
