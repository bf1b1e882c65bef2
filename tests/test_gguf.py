"""A GGUF file is a model, whatever its architecture: tiny random Llama and Qwen2 models written as F32
GGUF files here (tests/gguf_files.py) convert into plain folders that compute exactly what the
models they were written from compute, keep their chat template, and end generation where the
template ends a turn. Seconds each; no network. The same path on a real quantized model (SmolLM2's
Q4_1 file) is tests/test_real_model.py; the errors for a file that cannot be read are in
tests/test_errors_cli.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from gguf_files import CHATML, bare_gguf, tiny_gguf

from selfimprove import models
from selfimprove.backends import SamplingParams
from selfimprove.backends.transformers import TransformersBackend
from selfimprove.config import GenerateConfig, ModelConfig
from selfimprove.records import Weights

MESSAGES = [{"role": "user", "content": "Tom has 3 apples and buys 4 more. How many apples does he have?"}]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "CACHE", tmp_path / "cache")
    return tmp_path / "cache"


@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
def test_gguf_converts_to_a_folder_that_computes_what_its_source_model_does(architecture, tmp_path, cache):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, gguf = tiny_gguf(tmp_path / "files", architecture)
    folder = models.resolve(str(gguf))
    assert folder.startswith(str(cache)) and not list(cache.rglob("*.gguf"))  # loads without the GGUF file
    model, tok = models.load(Weights(str(gguf)), dtype="float32", device="cpu")
    assert model.config.model_type == architecture
    # The file names <|endoftext|> as its end token; the template ends turns with <|im_end|>.
    assert tok.chat_template == CHATML and tok.eos_token == "<|im_end|>" and tok.pad_token is not None
    assert model.generation_config.eos_token_id == tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")

    src_tok = AutoTokenizer.from_pretrained(source)
    src_model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
    prompt = src_tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True) == prompt
    ids = src_tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    assert tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids.tolist() == ids.tolist()
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, src_model(ids).logits, atol=1e-5, rtol=0)
        ours = model.generate(ids, max_new_tokens=12, do_sample=False)
        theirs = src_model.generate(ids, max_new_tokens=12, do_sample=False, eos_token_id=tok.eos_token_id,
                                    pad_token_id=tok.eos_token_id)
    assert ours.tolist() == theirs.tolist()
    # A byte-level vocabulary is written as GPT-2's, without dead SentencePiece steps that llama.cpp's
    # converter would misread (tests/test_export_gguf.py runs the GGUF it then writes).
    spec = json.loads((Path(folder) / "tokenizer.json").read_text())
    assert spec["model"]["byte_fallback"] is False and spec["decoder"]["type"] == "ByteLevel"


def test_two_processes_converting_one_gguf_at_once_both_get_the_folder(tmp_path):
    """Two runs started together on a new GGUF file (seeds side by side): the second to finish finds the
    first one's folder in place and uses it, instead of failing on "Directory not empty"."""
    _, gguf = tiny_gguf(tmp_path / "files", "llama")
    code = "import sys; from selfimprove import models; print(models.resolve(sys.argv[1]))"
    env = {**os.environ, "SELFIMPROVE_CACHE": str(tmp_path / "shared-cache")}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(gguf)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stdout.read().strip(), p.stderr.read()) for p in procs]
    assert [r[0] for r in results] == [0, 0], [r[2][-1500:] for r in results]
    assert results[0][1] == results[1][1] and (Path(results[0][1]) / "config.json").is_file()
    assert not list((tmp_path / "shared-cache" / "gguf").glob(".*.tmp"))  # the loser's copy is gone


@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
def test_generation_from_a_gguf_stops_at_the_end_of_the_assistant_turn(architecture, tmp_path):
    _, gguf = tiny_gguf(tmp_path / "files", architecture, ends_turns=True)
    engine = TransformersBackend(ModelConfig(name=str(gguf), device="cpu", dtype="float32"), GenerateConfig())
    [[done]] = engine.generate([MESSAGES], SamplingParams(n=1, temperature=0.0, max_new_tokens=16), Weights(str(gguf)))
    # It answers <|im_end|> at once: stopping there, not at the file's own end token, is what ends the turn.
    assert done.text == "" and not done.truncated, done


def test_a_converted_gguf_loads_without_the_gguf_package(tmp_path, monkeypatch):
    _, gguf = tiny_gguf(tmp_path / "files", "qwen2")
    other = bare_gguf(tmp_path / "other.gguf", "llama")
    folder = models.resolve(str(gguf))
    monkeypatch.setitem(sys.modules, "gguf", None)  # as if it were not installed
    assert models.resolve(str(gguf)) == folder
    with pytest.raises(models.ModelLoadError, match=r"pip install gguf==0\.19\.0"):
        models.resolve(str(other))


def test_an_architecture_transformers_cannot_read_is_named_with_those_it_can(tmp_path):
    with pytest.raises(models.ModelLoadError) as err:
        models.resolve(str(bare_gguf(tmp_path / "rwkv.gguf", "rwkv7")))
    assert "'rwkv7'" in str(err.value) and "llama" in str(err.value) and "qwen2" in str(err.value)
    # llama.cpp and transformers spell some architectures differently; those pass the check.
    for spelling in ("qwen2moe", "gpt-oss"):
        models.check_gguf(bare_gguf(tmp_path / f"{spelling}.gguf", spelling))


def test_a_folder_holding_one_gguf_file_is_that_model(tmp_path):
    from selfimprove.preflight_model import ModelFolderError, check_model_folder

    _, gguf = tiny_gguf(tmp_path / "files", "qwen2")
    folder = tmp_path / "downloaded"
    folder.mkdir()
    (folder / gguf.name).write_bytes(gguf.read_bytes())
    check_model_folder(str(folder))  # no config.json: the GGUF file carries it
    assert models.resolve(str(folder)) == models.resolve(str(folder / gguf.name))
    # Two quantizations side by side: which one is meant must be said.
    bare_gguf(folder / "model.Q8_0.gguf", "qwen2")
    for error, call in ((ModelFolderError, check_model_folder), (models.ModelLoadError, models.resolve)):
        with pytest.raises(error, match=r"2 \.gguf files .*name") as err:
            call(str(folder))
        assert gguf.name in str(err.value) and "model.Q8_0.gguf" in str(err.value)
