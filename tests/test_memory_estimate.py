"""The memory estimate (memory_estimate.py) on real configs: the tiny model the project builds, and a
folder holding Qwen2.5-1.5B-Instruct's config.json (no weights: the model is built on the meta device).
Parameter counts are checked against the loaded model and the published size; the activation table
against torch's own count of what a training step keeps; `validate` and `run` through the command line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_errors_cli import base_config, cli, fake_model, write_config

from selfimprove import memory_estimate as me
from selfimprove.config import parse_config

# Qwen2.5-1.5B-Instruct's dimensions, as its config.json on the Hub gives them.
QWEN_1_5B = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 1536,
             "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
             "vocab_size": 151936, "tie_word_embeddings": True, "max_position_embeddings": 32768,
             "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "hidden_act": "silu"}
QWEN_1_5B_PARAMETERS = 1.54e9  # the model card's count


def model_folder(folder: Path, config: dict) -> Path:
    """A folder that passes preflight's model checks and describes `config`'s model; nothing loads it."""
    fake_model(folder)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def config_for(model: str, **sections) -> object:
    raw = {"model": {"name": model, "device": "cpu"}, **sections}
    return parse_config(raw)


@pytest.fixture(scope="module")
def qwen(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("qwen") / "Qwen2.5-1.5B-Instruct"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(QWEN_1_5B))
    return str(folder)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    from selfimprove.tiny import save_tiny_model

    return str(save_tiny_model(tmp_path_factory.mktemp("tiny") / "model"))


def test_the_parameter_count_is_the_published_one(qwen):
    arch = me.architecture(qwen)
    assert abs(arch.parameters - QWEN_1_5B_PARAMETERS) / QWEN_1_5B_PARAMETERS < 0.02
    assert (arch.layers, arch.kv_heads, arch.head_dim, arch.vocab) == (28, 2, 128, 151936)


def test_the_tiny_model_counts_as_loaded(tiny):
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(tiny)
    arch = me.architecture(tiny)
    assert arch.parameters == sum(p.numel() for p in loaded.parameters())
    e = me.estimate(config_for(tiny))
    assert (e.device, e.dtype) == ("cpu", "float32")
    assert e.weights * me.GIB == pytest.approx(arch.parameters * 4)
    assert e.peak == pytest.approx(e.weights + max(e.training, e.generation))


@pytest.mark.parametrize("targets", ["all-linear", ["q_proj", "v_proj"], r".*\.mlp\.(up|down)_proj"])
def test_the_adapter_size_is_peft_s(tiny, targets):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    cfg = config_for(tiny, adapt={"lora_r": 8, "lora_target_modules": targets})
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny),
                           LoraConfig(r=8, target_modules=targets, task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert me.lora_parameters(cfg, me.architecture(tiny)) == trainable


def test_lora_needs_less_than_full_weights_when_states_dominate(qwen):
    """LoRA trains 1% of the weights, so its optimizer states are small; but it keeps a float32 copy of every
    adapted layer's input, so with long batches its activations can cost more than full weights' states save."""
    short = {"adapt": {"batch_size": 1, "max_length": 256}, "generate": {"max_new_tokens": 64}}
    for device in ("cpu", "cuda"):
        lora = me.estimate(config_for(qwen, **short), device=device)
        full = me.estimate(config_for(qwen, **{**short, "adapt": {**short["adapt"], "tuning": "full"}}), device=device)
        assert lora.training < full.training / 3, device
        assert lora.weights == full.weights


def test_the_kv_cache_grows_with_k_and_new_tokens(qwen):
    def generation(**generate):
        return me.estimate(config_for(qwen, generate=generate, evaluate={"k": 1}), device="cuda").generation

    assert generation(k=4) < generation(k=8) < generation(k=16)
    assert generation(max_new_tokens=128) < generation(max_new_tokens=256) < generation(max_new_tokens=512)
    # beyond the prompts' shared prefill, the KV cache holds k sequences a prompt: linear in k
    assert generation(k=16) - generation(k=8) == pytest.approx(2 * (generation(k=8) - generation(k=4)))


def test_a_teacher_that_samples_does_not_train(qwen, tiny):
    cfg = config_for(qwen, adapt={"learner": tiny, "method": "distill"})
    teacher, student = me.estimates(cfg, device="cpu")
    assert (teacher.key, student.key) == ("model.name", "adapt.learner")
    assert teacher.training == 0 and teacher.generation > 0
    assert student.training > 0 and student.architecture.name == "model"


def test_models_that_cannot_be_read_are_unknown(tmp_path):
    from gguf_files import bare_gguf

    stand_in = fake_model(tmp_path / "stand_in")  # config.json with only a model_type: llama's defaults
    gguf = bare_gguf(tmp_path / "fresh.gguf", "llama")  # never converted
    for name, why in ((str(stand_in), "does not state the model's dimensions"),
                      (str(gguf), "not converted yet"),
                      ("selfimprove-tests/no-such-model", "not in the Hugging Face cache")):
        e = me.estimate(config_for(name))
        assert e.architecture is None and why in e.unknown, name
        assert me.describe(e) == f"memory: unknown for {name}: {e.unknown}"
        assert me.too_big(e) is None and me.warning(config_for(name), e) is None


def test_an_estimate_above_the_ram_is_warned_about(tiny):
    ram = me.device_memory("cpu")
    cfg = config_for(tiny, generate={"batch_size": 10_000, "k": 64, "max_new_tokens": 4096})
    e = me.estimate(cfg)
    assert e.peak * me.GIB > ram and e.weights * me.GIB < ram
    assert me.warning(cfg, e) == (f"warning: model.name model needs about {me.gib(e.peak)} GiB at peak, more than "
                                  f"the {me.gib(ram / me.GIB)} GiB of RAM on cpu: lower adapt.batch_size (raising "
                                  "adapt.grad_accum keeps the examples a step), generate.batch_size or "
                                  "evaluate.batch_size, or use a machine with more")
    assert me.too_big(e) is None  # the weights fit: a warning, not an error
    assert me.warning(config_for(tiny), me.estimate(config_for(tiny))) is None


def kept_per_token_and_layer(mode: str, setting, hidden: int, intermediate: int) -> float:
    """Bytes one token keeps for the backward in one decoder layer, as torch counts them: the tensors saved
    by a forward (weights left out), two layers less one."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Qwen2Config

    def kept(layers: int) -> int:
        torch.manual_seed(0)
        config = Qwen2Config(hidden_size=hidden, intermediate_size=intermediate, num_attention_heads=hidden // 64,
                             num_key_value_heads=2, num_hidden_layers=layers, vocab_size=256)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32 if setting == 4 else torch.bfloat16)
        if mode != "full":
            model = get_peft_model(model, LoraConfig(r=8, lora_dropout=0.05 if mode == "lora_dropout" else 0.0,
                                                     target_modules="all-linear", task_type="CAUSAL_LM"))
        model.train()
        weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
        saved = {}

        def pack(t):
            storage = t.untyped_storage()
            if storage.data_ptr() not in weights:
                saved[storage.data_ptr()] = storage.nbytes()
            return t

        ids = torch.randint(0, 256, (2, 32))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=setting == "autocast"):
            model(input_ids=ids, labels=ids)
        return sum(saved.values())

    return (kept(2) - kept(1)) / 64


@pytest.mark.parametrize("mode", sorted(me.KEPT))
@pytest.mark.parametrize("setting", [4, 2, "autocast"])
def test_the_activation_table_is_what_torch_keeps(mode, setting):
    hidden, intermediate = 512, 1536
    per_hidden, per_intermediate = me.KEPT[mode][setting]
    expected = per_hidden * hidden + per_intermediate * intermediate
    if (mode, setting) == ("lora_dropout", "autocast"):  # the GPU's row: a CPU's float32 dropout masks are 3 bytes
        expected += 3 * (6 * hidden + intermediate)  # wider than a GPU's one-byte ones, on each adapted input
    assert kept_per_token_and_layer(mode, setting, hidden, intermediate) == pytest.approx(expected, rel=0.1)


LINE = re.compile(r"^memory: about [\d.]+ GiB at peak on cpu \(weights [\d.]+ \+ (?:the larger of training [\d.]+ "
                  r"and generation [\d.]+, which run one after the other|training [\d.]+); (\S+), ([\d.]+[BMK]) "
                  r"parameters in (\w+)\): an estimate$", re.M)


def test_validate_prints_the_estimate(tiny, tmp_path):
    config = write_config(tmp_path / "tiny.yaml", {
        "run": {"out_dir": str(tmp_path / "run")}, "model": {"name": tiny, "device": "cpu", "chat": "off"},
        "task": {"name": "arithmetic", "source": "steps=2,n=8,seed=0", "eval_limit": 4}})
    result = cli("validate", config)
    assert result.returncode == 0, result.stderr
    assert LINE.search(result.stdout).groups()[::2] == ("model", "float32")
    assert "warning" not in result.stderr


def test_a_gpu_sized_model_on_the_cpu_is_warned_about(qwen, tmp_path):
    folder = model_folder(tmp_path / "Qwen2.5-1.5B-Instruct", QWEN_1_5B)
    config = write_config(tmp_path / "qwen.yaml", base_config(
        tmp_path, tmp_path / "run", model={"name": str(folder), "device": "cpu", "dtype": "bfloat16"}))
    result = cli("validate", config, "--allow-over-memory")  # its peak is over the RAM
    assert result.returncode == 0, result.stderr
    assert LINE.search(result.stdout).groups() == ("Qwen2.5-1.5B-Instruct", "1.54B", "bfloat16")
    warning = re.search(r"^warning: model.name Qwen2.5-1.5B-Instruct \(1.54B parameters\) is meant for a GPU with "
                        r"about (\d+) GiB; here it runs on the CPU", result.stderr, re.M)
    assert warning, result.stderr
    on_gpu = me.estimate(parse_config(base_config(tmp_path, tmp_path / "run", model={"name": str(folder)})),
                         device="cuda")
    assert int(warning.group(1)) == round(on_gpu.peak)


def test_a_hub_model_not_in_the_cache_is_unknown_and_valid(tmp_path):
    config = write_config(tmp_path / "hub.yaml", base_config(
        tmp_path, tmp_path / "run", model={"name": "selfimprove-tests/no-such-model"}))
    result = cli("validate", config)
    assert result.returncode == 0, result.stderr
    assert "memory: unknown for selfimprove-tests/no-such-model: not in the Hugging Face cache" in result.stdout


def test_weights_that_cannot_fit_stop_validate_and_run(tmp_path):
    # About 2 trillion parameters: no machine's RAM holds them.
    huge = {**QWEN_1_5B, "hidden_size": 65536, "intermediate_size": 262144, "num_attention_heads": 512,
            "num_key_value_heads": 8, "num_hidden_layers": 30, "vocab_size": 32000}
    folder = model_folder(tmp_path / "huge", huge)
    config = write_config(tmp_path / "huge.yaml", base_config(
        tmp_path, tmp_path / "run", model={"name": str(folder), "device": "cpu"}))
    for command in ("validate", "run"):
        result = cli(command, config)
        assert result.returncode == 2, (command, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {config}:"), lines
        assert re.search(r"model\.name: \S+huge: its weights alone take about \d+ GiB \(\d+\.\d+[BT] parameters in "
                         r"float32\), more than the [\d.]+ GiB of RAM on cpu", lines[0]), lines[0]
    assert not (tmp_path / "run").exists()  # stopped before any work
