"""Model-folder checks before loading: each missing or damaged file is one error naming the folder,
the file and the fix. Folders are real tiny models (tiny.save_tiny_model) copied under pytest's
tmp_path and then damaged; nothing is downloaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selfimprove.preflight_model import ModelFolderError, check_model_folder


@pytest.fixture
def model(tiny_model, tmp_path) -> Path:
    """A copy of the intact tiny model to damage."""
    return Path(shutil.copytree(tiny_model, tmp_path / "model"))


@pytest.fixture
def sharded(tiny_model, tmp_path) -> Path:
    """The tiny model saved as three safetensors shards and an index, as large models are."""
    from transformers import AutoModelForCausalLM

    folder = Path(shutil.copytree(tiny_model, tmp_path / "sharded"))
    (folder / "model.safetensors").unlink()
    AutoModelForCausalLM.from_pretrained(tiny_model).save_pretrained(folder, max_shard_size="200KB")
    assert len(list(folder.glob("model-*-of-*.safetensors"))) > 1
    return folder


def cut(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def problem(folder: Path | str) -> str:
    with pytest.raises(ModelFolderError) as e:
        check_model_folder(str(folder))
    assert str(folder) in str(e.value), "the message names the folder"
    return str(e.value)


def test_intact_folders_pass(tiny_model, tiny_chat_model, sharded):
    for folder in (tiny_model, tiny_chat_model, sharded):
        assert check_model_folder(str(folder)) is None


def test_a_hub_id_is_not_checked_but_a_missing_local_path_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE")  # online, a Hub id is the loader's to fetch
    assert check_model_folder("Qwen/Qwen2.5-1.5B-Instruct") is None
    assert check_model_folder("gpt2") is None
    assert "no such folder" in problem("./models/mine")
    assert "no such folder" in problem(tmp_path / "absent")
    (tmp_path / "runs").mkdir()  # "runs/tiny-model" reads as owner/name, but runs/ is a folder here
    assert "no such folder" in problem("runs/tiny-model")


def test_offline_a_hub_id_must_be_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    message = problem("Qwen/Qwen2.5-1.5B-Instruct")
    assert "HF_HUB_OFFLINE=1" in message and "hf download Qwen/Qwen2.5-1.5B-Instruct" in message
    snapshot = tmp_path / "hub" / "models--Qwen--Qwen2.5-1.5B-Instruct" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--Qwen--Qwen2.5-1.5B-Instruct" / "refs").mkdir()
    (tmp_path / "hub" / "models--Qwen--Qwen2.5-1.5B-Instruct" / "refs" / "main").write_text("abc")
    assert check_model_folder("Qwen/Qwen2.5-1.5B-Instruct") is None  # cached: an offline load will find it


def test_a_file_instead_of_a_folder(model):
    assert "is a file; give the folder that holds it" in problem(model / "model.safetensors")


def test_config_missing_damaged_or_not_a_model_config(model):
    (model / "config.json").rename(model / "config.json.bak")
    assert "no config.json" in problem(model)
    (model / "adapter_config.json").write_text("{}")
    assert "LoRA/PEFT adapter, not a model" in problem(model)
    (model / "config.json.bak").rename(model / "config.json")
    cut(model / "config.json")
    assert "config.json is not valid JSON (line" in problem(model)
    (model / "config.json").write_text(json.dumps({"hidden_size": 64}))
    assert "config.json has no 'model_type'" in problem(model)


def test_no_weights_lists_what_the_folder_holds(model):
    (model / "model.safetensors").unlink()
    message = problem(model)
    assert "no weights file" in message and "model.safetensors" in message and ".gguf" in message
    assert "holds: config.json, generation_config.json, tokenizer.json" in message


def test_a_truncated_safetensors_file_is_named_with_its_sizes(model):
    weights = model / "model.safetensors"
    size = weights.stat().st_size
    cut(weights)
    message = problem(model)
    assert f"model.safetensors is cut short: {size // 2:,} bytes, but its header says its tensors end at byte {size:,}" \
        in message and "Download or copy it again" in message
    weights.write_bytes(b"\x01\x02")
    assert "too short for its own header" in problem(model)
    weights.write_bytes((8).to_bytes(8, "little") + b"notjson!")
    assert "its header is not a safetensors header" in problem(model)


def test_a_git_lfs_pointer_instead_of_the_weights(model):
    (model / "model.safetensors").write_text("version https://git-lfs.github.com/spec/v1\n"
                                             "oid sha256:4d7a2144\nsize 557328\n")
    assert "model.safetensors is a Git LFS pointer" in problem(model) and "git lfs pull" in problem(model)


def test_sharded_weights_missing_or_cut_short(sharded):
    shards = sorted(sharded.glob("model-*-of-*.safetensors"))
    cut(shards[-1], 0.9)
    assert f"{shards[-1].name} is cut short" in problem(sharded)
    shards[1].unlink()
    assert f"1 of the {len(shards)} weight shards named in model.safetensors.index.json is missing: " \
           f"{shards[1].name}" in problem(sharded)


def test_pytorch_bin_and_gguf_weights(model):
    weights = load_file(model / "model.safetensors")
    (model / "model.safetensors").unlink()
    torch.save(weights, model / "pytorch_model.bin")
    check_model_folder(str(model))
    cut(model / "pytorch_model.bin")
    assert "pytorch_model.bin is damaged or cut short" in problem(model)
    (model / "pytorch_model.bin").unlink()
    (model / "model-q4.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(32))  # the magic is all that is read
    check_model_folder(str(model))
    (model / "model-q4.gguf").write_bytes(b"<html>Not Found</html>")
    assert "model-q4.gguf is not a GGUF file" in problem(model)


def test_tokenizer_missing_or_damaged_names_the_folder_not_a_package(model):
    (model / "tokenizer.json").rename(model / "tokenizer.json.bak")
    message = problem(model)
    assert "no tokenizer files" in message and "will not help" in message and "save_pretrained" in message
    (model / "vocab.json").write_text('{"a": 0}')
    assert "vocab.json is there but merges.txt" in problem(model)
    (model / "merges.txt").write_text("#version: 0.2\n")
    check_model_folder(str(model))  # a BPE vocabulary pair is a tokenizer
    (model / "vocab.json").unlink()
    (model / "tokenizer.json.bak").rename(model / "tokenizer.json")
    cut(model / "tokenizer.json")
    assert "tokenizer.json is not valid JSON" in problem(model)
