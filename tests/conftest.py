"""Shared fixtures: tiny real Hugging Face models built locally (nothing is downloaded)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # two shared cores: one thread is several times faster for tiny models


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A random tiny Llama with a character tokenizer and no chat template (completion mode)."""
    from selfimprove.tiny import save_tiny_model

    return str(save_tiny_model(tmp_path_factory.mktemp("tiny") / "model"))


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory):
    """The same tiny Llama, with a chat template (chat mode)."""
    from selfimprove.tiny import save_tiny_model

    return str(save_tiny_model(tmp_path_factory.mktemp("tiny_chat") / "model", chat_template=True))


@pytest.fixture(scope="session")
def gsm8k_dir():
    from selfimprove.tasks import local_source

    path = local_source("gsm8k")
    if path is None:
        pytest.skip("../shared/data/gsm8k is not present")
    return str(path)


@pytest.fixture(scope="session")
def answering_model(tiny_model, gsm8k_dir, tmp_path_factory):
    """The tiny model, fully fine-tuned on GSM8K questions to reply "2 + 3 = 5. The answer is 5."."""
    import json
    from pathlib import Path

    from selfimprove.adapt.sft import train
    from selfimprove.records import Weights
    from selfimprove.config import AdaptConfig

    out = tmp_path_factory.mktemp("answering")
    lines = (Path(gsm8k_dir) / "train.jsonl").read_text().splitlines()[100:164]
    rows = [{"prompt": f"Q: {json.loads(line)['question']}\nA: Let's think step by step.",
             "completion": " 2 + 3 = 5. The answer is 5."} for line in lines]
    train(rows, Weights(tiny_model), AdaptConfig(tuning="full", learning_rate=5e-3, max_steps=120, batch_size=8, max_length=1024), out, seed=0)
    return str(out)
