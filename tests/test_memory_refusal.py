"""A recipe whose estimated peak clearly exceeds the memory available (memory_estimate.over: RAM for the
CPU, a GPU's free memory) stops `validate`, `run` and `ttt` before any work, naming the keys that lower it;
`--allow-over-memory` lets it run. The model is a 6.7B-parameter Llama described by its config.json alone
(the fake weights of test_errors_cli: the estimate builds it on the meta device, reading no weights). Also:
the estimate counts the weights in the dtype the run loads them in (the tiny model, really loaded)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_errors_cli import base_config, cli, fake_model, write_config

from selfimprove import memory_estimate as me
from selfimprove.config import parse_config

# LLaMA-7B's dimensions (6.74B parameters): 13 GiB of bfloat16 weights, and a LoRA step of 8 x 512
# tokens keeps about 39 GiB of activations on a CPU, more than the machines the tests run on have free.
LLAMA_7B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
            "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 32, "vocab_size": 32000, "max_position_embeddings": 2048, "torch_dtype": "float16"}


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    folder = fake_model(tmp_path_factory.mktemp("big") / "llama-7b")
    (folder / "config.json").write_text(json.dumps(LLAMA_7B))
    return folder


def big_config(big: Path, tmp_path: Path, **model) -> Path:
    return write_config(tmp_path / "big.yaml", base_config(tmp_path, tmp_path / "run", model={
        "name": str(big), "device": "cpu", "dtype": "bfloat16", **model}))


def test_the_estimate_reads_the_size_from_config_json_alone(big):
    arch = me.architecture(str(big))
    assert abs(arch.parameters - 6.74e9) / 6.74e9 < 0.01
    e = me.estimate(parse_config({"model": {"name": str(big), "device": "cpu", "dtype": "bfloat16"}}))
    assert e.dtype == "bfloat16" and round(e.weights) == 13 and e.peak * me.GIB > me.available_memory("cpu")


def test_a_recipe_over_the_available_memory_stops_validate_run_and_ttt(big, tmp_path):
    config = big_config(big, tmp_path)
    for command in ("validate", "run", "ttt"):
        result = cli(command, config)
        assert result.returncode == 2, (command, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, (command, result.stderr)
        line = lines[0]
        assert line.startswith(f"error: {config}:") and f"model.name: {big}: the recipe needs about " in line, line
        assert re.search(r"needs about \d+ GiB at peak \(weights 13 \+ training \d+; 6\.74B parameters in bfloat16\), "
                         r"more than the [\d.]+ GiB of RAM available on cpu now: lower adapt\.batch_size", line), line
        assert line.endswith("To run anyway (the estimate is an estimate), pass --allow-over-memory"), line
    assert not (tmp_path / "run").exists()  # stopped before any work
    result = cli("validate", config, "--allow-over-memory")
    assert result.returncode == 0, result.stderr
    assert "memory: about" in result.stdout and "llama-7b, 6.74B parameters in bfloat16" in result.stdout


def test_the_message_names_dtype_and_tuning_when_they_would_help(big):
    cfg = parse_config({"model": {"name": str(big), "device": "cpu", "dtype": "float32"},
                        "adapt": {"tuning": "full"}, "generate": {"batch_size": 64, "k": 16}})
    message = me.over(cfg, me.estimate(cfg))
    assert "set model.dtype: bfloat16" in message and "use adapt.tuning: lora" in message
    assert "lower generate.batch_size" in message and ", then adapt.batch_size" in message  # sampling dominates


def test_the_available_memory_is_at_most_the_machines():
    available, total = me.available_memory("cpu"), me.device_memory("cpu")
    assert 0 < available <= total
    assert me.available_memory("mps") is None


@pytest.mark.parametrize("dtype", ["auto", "float32", "bfloat16", "float16"])
def test_the_weights_are_counted_in_the_dtype_the_run_loads(tiny_model, dtype):
    from selfimprove import models
    from selfimprove.records import Weights

    cfg = parse_config({"model": {"name": tiny_model, "device": "cpu", "dtype": dtype}})
    loaded = models.load_model(Weights(tiny_model), cfg.model.dtype, cfg.model.device)
    loaded_bytes = sum(p.numel() * p.element_size() for p in loaded.parameters())
    e = me.estimate(cfg)
    assert e.dtype == str(next(loaded.parameters()).dtype).removeprefix("torch.")
    assert e.weights * me.GIB == loaded_bytes
